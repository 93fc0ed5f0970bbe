//! `berth build` and `berth container commit` on real containers: FROM scratch + busybox,
//! COPY, RUN writing files, multi-stage COPY --from, cache hits on rebuild, a failing RUN,
//! and a container's changes committed as a layer. Each test has its own state root.

use std::fs;
use std::path::Path;

use crate::support::ContainerEnv;

/// A context directory beside the state root with these files.
fn context(env: &ContainerEnv, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = env.path().join(berth_testsupport::unique_name("ctx"));
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
    }
    dir
}

fn build(env: &ContainerEnv, ctx: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    env.run(&args)
}

fn ok_build(env: &ContainerEnv, ctx: &Path, extra: &[&str]) -> String {
    let out = build(env, ctx, extra);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build failed: {err}");
    err
}

/// Nothing of a build is left running or mounted in this root.
fn assert_clean(env: &ContainerEnv) {
    assert_eq!(env.ok(&["container", "ls", "-aq"]).trim(), "", "a build container was left");
    assert!(berth_testsupport::mounts_under(&env.path()).is_empty(), "a mount was left");
    let tmp = env.path().join("builder/tmp");
    let left: Vec<_> =
        fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "builder tmp left: {left:?}");
}

#[test]
fn build_from_scratch_multi_stage_and_cache() {
    let Some(env) = ContainerEnv::new() else { return };
    let ctx = context(
        &env,
        &[
            (
                "Dockerfile",
                "ARG BASE=bb\n\
                 FROM $BASE AS base\n\
                 ARG GREETING=hello\n\
                 ENV APP=/app\n\
                 WORKDIR $APP\n\
                 COPY hello.txt ./\n\
                 COPY src/ sub/\n\
                 RUN --network=none echo \"$GREETING from run\" > /app/run.txt && rm /etc/group\n\
                 LABEL stage=base\n\
                 \n\
                 FROM scratch\n\
                 COPY --from=base /bin/busybox /bin/busybox\n\
                 COPY --from=base /app/ /app/\n\
                 ENV PATH=/bin\n\
                 WORKDIR /app\n\
                 EXPOSE 8080/tcp\n\
                 VOLUME /data\n\
                 USER 0:0\n\
                 STOPSIGNAL SIGINT\n\
                 HEALTHCHECK --interval=5s CMD [\"/bin/busybox\", \"true\"]\n\
                 ENTRYPOINT [\"/bin/busybox\"]\n\
                 CMD [\"cat\", \"run.txt\", \"hello.txt\", \"sub/a.txt\"]\n",
            ),
            ("hello.txt", "hi there\n"),
            ("src/a.txt", "in a\n"),
            ("src/debug.log", "not copied\n"),
            (".dockerignore", "**/*.log\n"),
        ],
    );
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=howdy"]);
    assert!(!err.contains("CACHED"), "{err}");
    // The built image runs what CMD and ENTRYPOINT say, with the files COPY and RUN made.
    let out = env.ok(&["container", "run", "--rm", "demo:1"]);
    assert_eq!(out, "howdy from run\nhi there\nin a\n");
    // .dockerignore kept the log out; RUN's deletion is a whiteout in the base stage.
    let out = env.ok(&["container", "run", "--rm", "demo:1", "ls", "/app/sub"]);
    assert_eq!(out.trim(), "a.txt");
    // VOLUME makes an anonymous volume at run.
    let name = berth_testsupport::unique_name("vol");
    env.ok(&["container", "create", "--name", &name, "demo:1"]);
    let mounts = env.inspect(&name, "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}");
    assert_eq!(mounts, "volume /data");
    env.ok(&["container", "rm", "-v", &name]);
    // Arguments after the image replace CMD and go to the ENTRYPOINT.
    assert_eq!(env.ok(&["container", "run", "--rm", "demo:1", "echo", "hi"]), "hi\n");
    ok_build(&env, &ctx, &["-t", "demo:base", "--target", "base", "--build-arg", "GREETING=howdy"]);
    let out = env.ok(&["container", "run", "--rm", "demo:base", "ls", "/etc"]);
    assert!(!out.contains("group") && out.contains("passwd"), "{out}");
    // The config docker would write.
    let cfg = env.ok(&["image", "inspect", "-f", "{{json .Config}}", "demo:1"]);
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(cfg["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["User"], "0:0");
    assert_eq!(cfg["Healthcheck"]["Test"], serde_json::json!(["CMD", "/bin/busybox", "true"]));
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000i64);
    // A history entry per instruction.
    let hist = env.ok(&["image", "history", "--no-trunc", "demo:1"]);
    for want in [
        "COPY --from=base /bin/busybox /bin/busybox",
        "EXPOSE 8080/tcp",
        "HEALTHCHECK",
        "ENTRYPOINT [\"/bin/busybox\"]",
    ] {
        assert!(hist.contains(want), "{want} missing from\n{hist}");
    }
    let id1 = env.ok(&["image", "inspect", "-f", "{{.Id}}", "demo:1"]);

    // Unchanged: every step from the cache, the same image.
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=howdy"]);
    assert!(err.contains("(0 steps, 17 cached"), "{err}");
    assert_eq!(env.ok(&["image", "inspect", "-f", "{{.Id}}", "demo:1"]), id1);
    // An ignored file changing causes no rebuild either.
    fs::write(ctx.join("src/debug.log"), "still not copied\n").unwrap();
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=howdy"]);
    assert!(err.contains("(0 steps, 17 cached"), "{err}");
    // Editing a copied file reruns from the step that reads it: ENV, WORKDIR, COPY hello.txt
    // and the final stage's COPY of the unchanged busybox come from the cache.
    fs::write(ctx.join("src/a.txt"), "in a, edited\n").unwrap();
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=howdy"]);
    assert!(err.contains("(13 steps, 4 cached"), "{err}");
    let out = env.ok(&["container", "run", "--rm", "demo:1"]);
    assert_eq!(out, "howdy from run\nhi there\nin a, edited\n");
    // A changed build arg reruns from the RUN that sees it.
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=hey"]);
    assert!(err.contains("(12 steps, 5 cached"), "{err}");
    let out = env.ok(&["container", "run", "--rm", "demo:1"]);
    assert!(out.starts_with("hey from run\n"), "{out}");
    // --progress json: one JSON object a line.
    let out = env.run(&[
        "build",
        "--progress",
        "json",
        "-t",
        "demo:1",
        "--build-arg",
        "GREETING=hey",
        ctx.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.last().unwrap()["cached"], 17);
    assert!(lines.iter().any(|v| v["instruction"] == "EXPOSE 8080/tcp"));
    // --no-cache runs everything.
    let err = ok_build(&env, &ctx, &["-t", "demo:1", "--build-arg", "GREETING=hey", "--no-cache"]);
    assert!(err.contains("(17 steps, 0 cached"), "{err}");
    // Intermediate images stay out of `image ls` (replaced builds of demo:1 show as <none>,
    // as with docker); `-a` lists them.
    let tagged = env.ok(&["image", "ls", "-q", "--filter", "dangling=false"]);
    assert_eq!(tagged.lines().count(), 3, "{tagged}");
    let ls = env.ok(&["image", "ls", "-q"]);
    let dangling = env.ok(&["image", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(ls.lines().count(), 3 + dangling.lines().count(), "{ls}");
    let all = env.ok(&["image", "ls", "-a", "-q"]);
    assert!(all.lines().count() > ls.lines().count() + 10, "{all}");
    assert_clean(&env);
}

#[test]
fn failing_run_names_the_step_and_leaves_nothing() {
    let Some(env) = ContainerEnv::new() else { return };
    let ctx = context(
        &env,
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo ok > /f\nRUN echo before failing; exit 7\nRUN echo never\n",
        )],
    );
    let out = build(&env, &ctx, &["-t", "broken:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile:3: RUN echo before failing; exit 7: the command exited with code 7; its last output:\n  before failing"),
        "{err}"
    );
    assert!(!err.contains("never"), "{err}");
    // Nothing tagged, no container, no mount.
    let r = env.run(&["image", "inspect", "broken:1"]);
    assert!(!r.status.success());
    assert_clean(&env);

    // Bad input is named: an unknown instruction, a missing stage, a missing or excluded file.
    for (df, want) in [
        ("FROM bb\nFROBNICATE x\n", "Dockerfile:2:1: unknown instruction: FROBNICATE"),
        // (Images not in the store are pulled, here through a closed loopback proxy.)
        ("FROM bb\nCOPY --from=nowhere /x /x\n", "--from=nowhere: cannot pull nowhere: "),
        ("FROM nothere:1\n", "Dockerfile:1: FROM nothere:1: cannot pull nothere:1: "),
        ("FROM bb\nCOPY missing.txt /x\n", "missing.txt: not found in the build context"),
        ("FROM bb\nCOPY secret.txt /x\n", "secret.txt: excluded by .dockerignore"),
        ("FROM bb\nCOPY ../up /x\n", "../up: outside the build context"),
        ("FROM bb\nRUN <<EOF\necho\n", "unterminated heredoc"),
    ] {
        let c = context(
            &env,
            &[("Dockerfile", df), ("secret.txt", "s"), (".dockerignore", "secret.txt\n")],
        );
        let out = build(&env, &c, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{df:?}: {err}");
    }
    // A symlink in the context leading out finds nothing outside it.
    let c = context(&env, &[("Dockerfile", "FROM bb\nCOPY out /x\n")]);
    std::os::unix::fs::symlink("/etc/passwd", c.join("out")).unwrap();
    let out = build(&env, &c, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("out: not found in the build context"), "{err}");
    // -f names another Dockerfile; the .dockerignore beside it wins over the context's.
    let c = context(
        &env,
        &[
            ("sub/app.Dockerfile", "FROM bb\nCOPY . /ctx/\n"),
            ("sub/app.Dockerfile.dockerignore", "b.txt\nsub\n"),
            (".dockerignore", "a.txt\n"),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    let df = c.join("sub/app.Dockerfile");
    ok_build(&env, &c, &["-f", df.to_str().unwrap(), "-t", "named:1"]);
    let out = env.ok(&["container", "run", "--rm", "named:1", "ls", "-A", "/ctx"]);
    assert_eq!(out, ".dockerignore\na.txt\n");
    let out = build(&env, &ctx, &["--target", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("target stage \"nope\" could not be found")
    );
    assert_clean(&env);
}

#[test]
fn run_mounts_heredocs_shell_and_onbuild() {
    let Some(env) = ContainerEnv::new() else { return };
    let ctx = context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM bb AS parent\n\
                 ONBUILD RUN echo triggered > /onbuild.txt\n\
                 FROM parent\n\
                 SHELL [\"/bin/sh\", \"-ec\"]\n\
                 RUN --mount=type=cache,target=/cache echo cached-data >> /cache/log && cp /cache/log /from-cache\n\
                 RUN --mount=type=bind,source=data,target=/mnt cat /mnt/in.txt > /from-bind && test ! -e /mnt/ignored.txt\n\
                 RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/data/in.txt\n\
                 RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test ! -e /data-left\n\
                 RUN <<EOF\n\
                 echo line one > /heredoc.txt\n\
                 echo line two >> /heredoc.txt\n\
                 EOF\n\
                 RUN <<EOF\n\
                 #!/bin/sh -e\n\
                 echo \"from a script run by $0\" > /shebang.txt\n\
                 EOF\n\
                 COPY <<CONF /etc/app.conf\n\
                 key=$HOSTNAME_UNSET-value\n\
                 CONF\n\
                 ADD files.tar /unpacked/\n\
                 COPY --chown=1:2 --chmod=600 data/in.txt /owned\n\
                 VOLUME /vol\n\
                 RUN mkdir -p /vol && echo kept > /vol/f\n\
                 COPY --parents data/in.txt /p/\n\
                 COPY --exclude=*.md data /ex/\n\
                 USER 1:2\n\
                 WORKDIR /made/by/user\n\
                 RUN touch /made/by/user/writable\n",
            ),
            ("data/in.txt", "bound\n"),
            ("data/ignored.txt", "not in the context\n"),
            ("data/notes.md", "excluded by --exclude\n"),
            (".dockerignore", "data/ignored.txt\n"),
        ],
    );
    // A tar for ADD to extract.
    let tar_path = ctx.join("files.tar");
    {
        let f = fs::File::create(&tar_path).unwrap();
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "inner/x.txt", &b"tar\n"[..]).unwrap();
        b.finish().unwrap();
    }
    ok_build(&env, &ctx, &["-t", "mounts:1"]);
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "mounts:1",
        "sh",
        "-c",
        "cat /onbuild.txt /from-cache /from-bind /heredoc.txt /shebang.txt /etc/app.conf /unpacked/inner/x.txt; \
         stat -c '%u:%g %a' /owned /made/by/user /made; find /p /ex -type f | sort; cat /vol/f; \
         for d in /cache /mnt /ctx /scratch /dev/.berth-heredoc; do test -e $d && echo left $d; done; echo end",
    ]);
    // The rw bind mount wrote to a copy: the context is unchanged.
    assert_eq!(fs::read_to_string(ctx.join("data/in.txt")).unwrap(), "bound\n");
    // A mount source that is a symlink out of the context reaches nothing of the host.
    let secret_dir = env.path().join(berth_testsupport::unique_name("hostdir"));
    fs::create_dir_all(&secret_dir).unwrap();
    fs::write(secret_dir.join("marker"), "host\n").unwrap();
    let c2 = context(
        &env,
        &[(
            "Dockerfile",
            "FROM bb\nRUN --mount=type=bind,source=hostlink,target=/h cat /h/marker\n",
        )],
    );
    std::os::unix::fs::symlink(&secret_dir, c2.join("hostlink")).unwrap();
    let o2 = build(&env, &c2, &[]);
    let err = String::from_utf8_lossy(&o2.stderr);
    assert!(
        !o2.status.success() && err.contains("hostlink: not found in the build context"),
        "{err}"
    );
    assert!(!err.contains("#2 host"), "{err}");
    // Every file the steps made is there; mount points made only for RUN mounts are not.
    assert_eq!(
        out,
        "triggered\ncached-data\nbound\nline one\nline two\nfrom a script run by /dev/.berth-heredoc\nkey=-value\ntar\n1:2 600\n1:2 755\n1:2 755\n/ex/in.txt\n/p/data/in.txt\nkept\nend\n"
    );
    // The cache mount kept its content for the next build (--no-cache reruns the RUN).
    ok_build(&env, &ctx, &["-t", "mounts:2", "--no-cache"]);
    let out = env.ok(&["container", "run", "--rm", "mounts:2", "cat", "/from-cache"]);
    assert_eq!(out, "cached-data\ncached-data\n");
    assert_clean(&env);
}

#[test]
fn container_commit_writes_the_changes_as_a_layer() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("commit");
    env.ok(&[
        "container",
        "run",
        "--name",
        &name,
        "bb:latest",
        "sh",
        "-c",
        "echo data > /newfile; rm /etc/group; mkdir -p /d/e && echo x > /d/e/f; rm -rf /bin/vi",
    ]);
    let id = env.ok(&[
        "container",
        "commit",
        "-a",
        "tester",
        "-m",
        "my message",
        "-c",
        "CMD [\"cat\", \"/newfile\"]",
        "-c",
        "ENV X=1",
        &name,
        "snap:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(env.ok(&["container", "run", "--rm", "snap:1"]), "data\n");
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "echo $X; cat /d/e/f; ls /etc; test -e /bin/vi || echo no-vi",
    ]);
    assert_eq!(out, "1\nx\nhostname\nhosts\npasswd\nresolv.conf\nno-vi\n");
    let ins = env.ok(&["image", "inspect", "-f", "{{.Author}}|{{len .RootFS.Layers}}", "snap:1"]);
    assert_eq!(ins.trim(), "tester|2");
    let hist = env.ok(&["image", "history", "snap:1"]);
    assert!(hist.contains("my message"), "{hist}");
    // A bad --change is refused before anything is written.
    let r = env.run(&["container", "commit", "-c", "RUN x", &name, "snap:2"]);
    assert!(!r.status.success());
    assert!(!env.run(&["image", "inspect", "snap:2"]).status.success());
}

/// Two stages that each wait for the other's mark can only finish when they run at the same
/// time; a stage the target does not need (it would fail) is never built.
#[test]
fn independent_stages_run_side_by_side_and_unneeded_ones_not_at_all() {
    let Some(env) = ContainerEnv::new() else { return };
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --network=none --mount=type=cache,target=/sync,id=sync touch /sync/{me} && \
             timeout 60 sh -c 'until [ -e /sync/{other} ]; do sleep 0.1; done'\n"
        )
    };
    let df = format!(
        "FROM bb AS a\n{}FROM bb AS b\n{}FROM bb AS unused\nRUN exit 9\nFROM bb\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let ctx = context(&env, &[("Dockerfile", &df)]);
    let err = ok_build(&env, &ctx, &["-t", "par:1"]);
    assert!(!err.contains("[unused"), "{err}");
    assert_eq!(env.ok(&["container", "run", "--rm", "par:1", "ls", "/a", "/b"]), "/a\n/b\n");
    // builder prune drops the intermediate images (the tagged result stays) and the records.
    let cache_total = |env: &ContainerEnv| -> usize {
        let df = env.ok(&["system", "df"]);
        let line = df.lines().find(|l| l.starts_with("Build Cache")).expect("Build Cache line");
        line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).expect("a count")
    };
    assert!(cache_total(&env) > 0);
    let before = env.ok(&["image", "ls", "-a", "-q"]).lines().count();
    let out = env.ok(&["builder", "prune", "--force", "--all"]);
    assert!(out.starts_with("Deleted build cache objects: "), "{out}");
    let after = env.ok(&["image", "ls", "-a", "-q"]);
    assert!(after.lines().count() < before && after.lines().count() == 2, "{after}");
    assert!(!env.path().join("builder/cache-mounts").exists());
    assert_eq!(cache_total(&env), 0);
    let err = ok_build(&env, &ctx, &["-t", "par:1"]);
    assert!(err.contains("(4 steps, 0 cached"), "{err}");
    assert_clean(&env);
}

/// Compose's `build [SERVICE...]`: a service's `build:` (context, args, labels, target) becomes
/// the image `{project}-{service}`; `build PATH` stays docker's build.
#[test]
fn compose_build_builds_services_images() {
    let Some(env) = ContainerEnv::new() else { return };
    let project = berth_testsupport::unique_name("proj");
    let dir = context(
        &env,
        &[
            (
                "compose.yaml",
                "services:\n  web:\n    build:\n      context: app\n      dockerfile: web.Dockerfile\n      target: final\n      args:\n        MSG: from-compose\n      labels:\n        com.example.built: \"yes\"\n      additional_contexts:\n        extra: ./more\n      secrets: [tok]\n      extra_hosts:\n        myhost: 10.1.2.3\n      network: none\n  db:\n    image: bb:latest\nsecrets:\n  tok:\n    file: tok.txt\n",
            ),
            (
                "app/web.Dockerfile",
                "FROM bb AS final\nARG MSG=default\nCOPY --from=extra m.txt /m.txt\n\
                 RUN --mount=type=secret,id=tok cp /run/secrets/tok /tok && grep myhost /etc/hosts | tr -s ' \\t' ' ' > /hosts && echo $MSG > /msg\n\
                 CMD [\"cat\", \"/msg\"]\nFROM final AS unused\n",
            ),
            ("more/m.txt", "from a named context\n"),
            ("tok.txt", "s3cret\n"),
        ],
    );
    let file = dir.join("compose.yaml");
    let f = file.to_str().unwrap();
    let image = format!("{project}-web");
    let out = env.run(&["-f", f, "-p", &project, "build"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("Service web  Built ({image}")), "{err}");
    assert_eq!(env.ok(&["container", "run", "--rm", &image]), "from-compose\n");
    let out = env.ok(&["container", "run", "--rm", &image, "cat", "/m.txt", "/tok", "/hosts"]);
    assert_eq!(out, "from a named context\ns3cret\n10.1.2.3 myhost\n");
    let labels = env.ok(&["image", "inspect", "-f", "{{json .Config.Labels}}", &image]);
    assert_eq!(labels.trim(), "{\"com.example.built\":\"yes\"}");
    // --build-arg wins over the file's args; -q prints the id only.
    let id =
        env.ok(&["-f", f, "-p", &project, "build", "-q", "--build-arg", "MSG=from-cli", "web"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(env.ok(&["container", "run", "--rm", &image]), "from-cli\n");
    // `run` builds a missing image first (here from the cache).
    env.ok(&["image", "rm", &image]);
    let out = env.ok(&["-f", f, "-p", &project, "run", "--rm", "web"]);
    assert_eq!(out, "from-compose\n");
    env.ok(&["-f", f, "-p", &project, "down"]);
    // An unknown service is a usage error.
    let out = env.run(&["-f", f, "-p", &project, "build", "nosuch"]);
    assert_eq!(out.status.code(), Some(16), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean(&env);
}

/// Ctrl-C during a RUN stops the build and removes its container (exit 130).
#[test]
fn interrupted_build_removes_its_run_container() {
    let Some(env) = ContainerEnv::new() else { return };
    let ctx = context(&env, &[("Dockerfile", "FROM bb\nRUN --network=none sleep 60\n")]);
    let mut child = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["build", "--progress", "plain", ctx.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (with a deadline) until the RUN container exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ids = env.ok(&["container", "ls", "-q", "--filter", "label=berth.build.session"]);
        if !ids.trim().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the RUN container never appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_clean(&env);
}

/// `ADD http://...` downloads (here from a server on loopback that this test runs), checks
/// `--checksum`, and the file gets mode 0600; a wrong checksum fails the step.
#[test]
fn add_url_downloads_and_checks_the_checksum() {
    use std::io::{Read, Write};
    let Some(env) = ContainerEnv::new() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Answers every request with the same body until the test ends.
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ndownload\n",
            );
        }
    });
    let sum = format!("sha256:{}", "0".repeat(64));
    let good = {
        use std::process::Command;
        let out =
            Command::new("sh").args(["-c", "printf 'download\\n' | sha256sum"]).output().unwrap();
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap()
        )
    };
    let df = format!(
        "FROM bb\nADD --checksum={good} http://127.0.0.1:{port}/files/data.txt /dl/\nADD http://127.0.0.1:{port}/other /named.txt\n"
    );
    let ctx = context(&env, &[("Dockerfile", &df)]);
    ok_build(&env, &ctx, &["-t", "dl:1"]);
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "dl:1",
        "sh",
        "-c",
        "cat /dl/data.txt /named.txt; stat -c %a /dl/data.txt",
    ]);
    assert_eq!(out, "download\ndownload\n600\n");
    let bad = context(
        &env,
        &[("Dockerfile", &format!("FROM bb\nADD --checksum={sum} http://127.0.0.1:{port}/x /x\n"))],
    );
    let o = build(&env, &bad, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("the content has checksum {good}, not {sum}")),
        "{err}"
    );
    assert_clean(&env);
}

/// An `openssl s_server -HTTP` on loopback serving `dir` (each file is a whole HTTP response);
/// killed on drop.
struct HttpsServer(std::process::Child);

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ADD https://...` from a server on loopback whose certificate a CA made by the test signs:
/// trusted through the registry client's certificates directory (`BERTH_CERTS_DIR/<host:port>/
/// ca.crt`) or `SSL_CERT_FILE`, refused (naming the URL) when the CA is not trusted; a
/// redirect is followed, `--checksum` checked and `Last-Modified` becomes the file's mtime.
#[test]
fn add_https_url_trusts_the_certs_dir_ca_and_nothing_else() {
    let Some(env) = ContainerEnv::new() else { return };
    let port = crate::support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let tls = tempfile::tempdir().unwrap();
    let (cert, key, certs, _) = berth_testsupport::registry::make_tls(tls.path(), &addr, false);
    let www = tls.path().join("www");
    fs::create_dir_all(&www).unwrap();
    let body = "secure\n";
    fs::write(
        www.join("data.txt"),
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nLast-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n\r\n{body}"),
    )
    .unwrap();
    fs::write(www.join("moved"), "HTTP/1.0 302 Found\r\nLocation: /data.txt\r\n\r\n").unwrap();
    let child = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-accept", &addr, "-HTTP"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .current_dir(&www)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let _server = HttpsServer(child);
    env.wait_for("the https server", 10, || std::net::TcpStream::connect(&addr).is_ok());
    let sum = {
        let data = www.join("body");
        fs::write(&data, body).unwrap();
        let out = std::process::Command::new("sha256sum").arg(&data).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
    };
    let df = format!(
        "FROM bb\nADD --checksum=sha256:{sum} https://{addr}/data.txt /dl/\nADD https://{addr}/moved /moved.txt\n"
    );
    let ctx = context(&env, &[("Dockerfile", &df)]);
    let empty = tls.path().join("no-certs.d");
    fs::create_dir_all(&empty).unwrap();
    let build_with = |vars: &[(&str, &Path)], tag: &str| {
        let mut c = std::process::Command::new(crate::support::berth_bin());
        c.arg("--root").arg(env.path()).args(["build", "--progress", "plain", "-t", tag]);
        c.arg(&ctx)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9");
        c.env_remove("NO_PROXY").env_remove("no_proxy").env_remove("SSL_CERT_FILE");
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("spawn berth build")
    };
    // Not trusted: the handshake fails and the error names the URL.
    let o = build_with(&[("BERTH_CERTS_DIR", &empty)], "dls:0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "an untrusted certificate was accepted: {err}");
    assert!(
        err.contains(&format!("https://{addr}/data.txt")) && err.contains("certificate"),
        "{err}"
    );
    // The certificates directory, as for a registry.
    let o = build_with(&[("BERTH_CERTS_DIR", &certs)], "dls:1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "dls:1",
        "sh",
        "-c",
        "cat /dl/data.txt /moved.txt; stat -c '%a %Y' /dl/data.txt",
    ]);
    assert_eq!(out, "secure\nsecure\n600 784887151\n");
    // SSL_CERT_FILE replaces the system's roots (rustls-native-certs).
    let ca = tls.path().join("ca.crt");
    let o = build_with(&[("BERTH_CERTS_DIR", &empty), ("SSL_CERT_FILE", &ca)], "dls:2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_clean(&env);
}

/// `RUN --mount=type=ssh` gets the agent socket given with `--ssh` (here a socket this test
/// listens on) and SSH_AUTH_SOCK; a required agent that was not given fails the step.
#[test]
fn ssh_mount_binds_the_agent_socket() {
    let Some(env) = ContainerEnv::new() else { return };
    let sock = env.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ctx = context(
        &env,
        &[(
            "Dockerfile",
            "FROM bb\nRUN --network=none --mount=type=ssh test -S $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK > /agent\n",
        )],
    );
    let arg = format!("default={}", sock.display());
    ok_build(&env, &ctx, &["--ssh", &arg, "-t", "ssh:1"]);
    // The socket's mount point is not left in the image.
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "ssh:1",
        "sh",
        "-c",
        "cat /agent; test -e /run/buildkit && echo left || echo clean",
    ]);
    assert_eq!(out, "/run/buildkit/ssh_agent.0\nclean\n");
    let req = context(&env, &[("Dockerfile", "FROM bb\nRUN --mount=type=ssh,required true\n")]);
    let o = build(&env, &req, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ssh agent default is required"), "{err}");
    assert_clean(&env);
}

/// FROM an image that is only in a registry (a real one on loopback) pulls it, as `docker
/// build` does.
#[test]
fn from_pulls_an_image_missing_from_the_store() {
    use berth_testsupport::registry::{Registry, RegistryAuth};
    let Some(env) = ContainerEnv::new() else { return };
    let reg = Registry::start(RegistryAuth::None);
    let remote = format!("{}/base/bb:1", reg.addr);
    // Pushed from this root, then removed here: the build must fetch it.
    env.ok(&["image", "tag", "bb:latest", &remote]);
    env.ok(&["image", "push", &remote]);
    env.ok(&["image", "rm", &remote]);
    assert!(!env.run(&["image", "inspect", &remote]).status.success());
    let df = format!("FROM {remote}\nRUN --network=none echo built > /b\n");
    let ctx = context(&env, &[("Dockerfile", &df)]);
    ok_build(&env, &ctx, &["-t", "pulled:1"]);
    assert_eq!(env.ok(&["container", "run", "--rm", "pulled:1", "cat", "/b"]), "built\n");
    assert!(env.run(&["image", "inspect", &remote]).status.success());
    assert_clean(&env);
}

/// RUN steps run on berth's default bridge, as docker's builders run them on docker0: the
/// host's loopback services are out of their reach (127.0.0.1 is the step's own), while
/// `RUN --network=host` shares the host's network and reaches them.
#[test]
fn run_steps_do_not_reach_host_loopback_services_unless_network_host() {
    let Some(env) = ContainerEnv::new() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello-host",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let ctx = context(
        &env,
        &[(
            "Dockerfile",
            &format!(
                "FROM bb\n\
                 RUN if timeout 5 wget -q -O /got {url}; then echo reached > /default; else echo isolated > /default; fi\n\
                 RUN --network=host timeout 5 wget -q -O /got-host {url}\n"
            ),
        )],
    );
    let tag = berth_testsupport::unique_name("netiso").to_lowercase();
    ok_build(&env, &ctx, &["-t", &tag]);
    let out = env.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        &tag,
        "cat",
        "/default",
        "/got-host",
    ]);
    assert_eq!(out, "isolated\nhello-host");
    // The default bridge exists now (made on first use), as docker's docker0 always does.
    assert!(env.ok(&["network", "ls"]).contains(" bridge "), "no default bridge");
    assert_clean(&env);
}
