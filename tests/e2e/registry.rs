//! `berth image pull|push|history`, `berth login|logout` against a real registry
//! (Debian's docker-registry) on loopback, through the real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_testsupport::registry::{Registry, RegistryAuth};
use berth_testsupport::{TempRoot, require_root};

use super::support::berth_bin;

/// Runs berth in `root` with `DOCKER_CONFIG=cfg` and `stdin` fed in.
fn berth_in(root: &Path, cfg: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(berth_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    if let Some(mut i) = c.stdin.take() {
        std::io::Write::write_all(&mut i, stdin.as_bytes()).expect("stdin");
    }
    c.wait_with_output().expect("berth")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "failed ({:?}):\nstdout: {out}\nstderr: {err}", o.status.code());
    out
}

fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    err
}

fn import_bb(root: &Path, cfg: &Path, reference: &str) {
    let tar = root.join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).expect("busybox tar");
    ok(berth_in(root, cfg, &["image", "import", tar.to_str().unwrap(), reference], ""));
    std::fs::remove_file(tar).expect("rm tar");
}

#[test]
fn login_push_pull_history_logout_through_the_cli() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::Basic { user: "ci".into(), password: "pw-ci".into() });
    let cfg = tempfile::tempdir().unwrap();
    let (a, b, c) = (TempRoot::new().unwrap(), TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/bb:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);

    let err = fails(berth_in(&a.path(), cfg.path(), &["image", "push", &r], ""));
    assert!(err.contains(&format!("push access denied for {}/team/bb", reg.addr)), "{err}");
    assert!(err.contains(&format!("berth login {}", reg.addr)), "{err}");
    let err = fails(berth_in(
        &a.path(),
        cfg.path(),
        &["login", "-u", "ci", "--password-stdin", &reg.addr],
        "wrong\n",
    ));
    assert!(err.contains("refused the credentials of \"ci\""), "{err}");
    assert!(!cfg.path().join("config.json").exists());
    let out = ok(berth_in(
        &a.path(),
        cfg.path(),
        &["login", "-u", "ci", "--password-stdin", &reg.addr],
        "pw-ci\n",
    ));
    assert_eq!(out, "Login Succeeded\n");

    let out = ok(berth_in(&a.path(), cfg.path(), &["image", "push", &r], ""));
    assert!(
        out.starts_with(&format!("The push refers to repository [{}/team/bb]\n", reg.addr)),
        "{out}"
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let digest_line = out.lines().last().unwrap().to_string();
    assert!(
        digest_line.starts_with("1: digest: sha256:") && digest_line.contains(" size: "),
        "{out}"
    );
    let digest = digest_line.split_whitespace().nth(2).unwrap().to_string();

    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "pull", &r], ""));
    assert!(out.starts_with("1: Pulling from team/bb\n"), "{out}");
    assert!(out.contains(": Pull complete\n"), "{out}");
    assert!(
        out.contains(&format!("Digest: {digest}\nStatus: Downloaded newer image for {r}\n{r}\n")),
        "{out}"
    );
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "pull", "-q", &r], ""));
    assert_eq!(out, format!("{r}\n"));
    let out = ok(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "inspect", "-f", "{{json .RepoDigests}}", &r],
        "",
    ));
    assert_eq!(out.trim(), format!("[\"{}/team/bb@{digest}\"]", reg.addr));
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "history", &r], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE ")
            && lines[0].contains("CREATED BY")
            && lines[0].ends_with("COMMENT"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].contains("Imported from -"), "{out}");
    let ids = ok(berth_in(&b.path(), cfg.path(), &["image", "history", "-q", &r], ""));
    let id = ok(berth_in(&b.path(), cfg.path(), &["image", "inspect", "-f", "{{.Id}}", &r], ""));
    assert_eq!(ids.trim(), &id.trim()[7..19]);
    let err = fails(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "pull", &format!("{}/team/bb:nope", reg.addr)],
        "",
    ));
    assert!(err.contains("manifest for") && err.contains("not found: manifest unknown"), "{err}");
    let err = fails(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "pull", "--platform", "linux/s390x", &r],
        "",
    ));
    assert!(
        err.contains(
            "does not match the specified platform: wanted linux/s390x, actual: linux/amd64"
        ),
        "{err}"
    );

    let out = ok(berth_in(&a.path(), cfg.path(), &["logout", &reg.addr], ""));
    assert_eq!(out, format!("Removing login credentials for {}\n", reg.addr));
    let out = ok(berth_in(&a.path(), cfg.path(), &["logout", &reg.addr], ""));
    assert_eq!(out, format!("Not logged in to {}\n", reg.addr));
    let err = fails(berth_in(&c.path(), cfg.path(), &["image", "pull", &r], ""));
    assert!(err.contains("pull access denied"), "{err}");
    let out = ok(berth_in(&c.path(), cfg.path(), &["image", "ls", "-q"], ""));
    assert_eq!(out, "");
}

#[test]
fn two_processes_pulling_one_image_fetch_and_store_it_once() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/both:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));
    let spawn = || {
        Command::new(berth_bin())
            .arg("--root")
            .arg(b.path())
            .args(["image", "pull", "-q", &r])
            .env("DOCKER_CONFIG", cfg.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (p1, p2) = (spawn(), spawn());
    ok(p1.wait_with_output().unwrap());
    ok(p2.wait_with_output().unwrap());
    let layers: Vec<_> = std::fs::read_dir(b.path().join("images/layers")).unwrap().collect();
    assert_eq!(layers.len(), 1);
    let blob_gets = reg
        .log()
        .lines()
        .filter(|l| {
            l.contains("http.request.method=GET")
                && l.contains("/blobs/")
                && l.contains("response completed")
        })
        .count();
    // The config (each process reads it) and the layer (fetched once).
    assert_eq!(blob_gets, 3, "{}", reg.log());
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "ls", "-q"], ""));
    assert_eq!(out.lines().count(), 1);
}
