//! `berth run`: exit codes, output, process environment, mounts, limits and default security.

use crate::support::ContainerEnv;

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_exit_codes_and_output() {
    let Some(env) = ContainerEnv::new() else { return };
    let (code, so, _) = out(&env.run(&["container", "run", "--rm", "bb:latest", "echo", "hello"]));
    assert_eq!((code, so.as_str()), (Some(0), "hello\n"));
    let (code, so, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    assert_eq!((code, so.as_str(), se.as_str()), (Some(3), "out\n", "err\n"));
    let (code, _, se) = out(&env.run(&["container", "run", "--rm", "bb", "nosuchcmd"]));
    assert_eq!(code, Some(127), "{se}");
    assert!(se.contains("exec: \"nosuchcmd\": executable file not found in $PATH"), "{se}");
    let (code, _, se) = out(&env.run(&["container", "run", "--rm", "bb", "/etc/passwd"]));
    assert_eq!(code, Some(126), "{se}");
    // berth's own errors are 125.
    let (code, _, se) = out(&env.run(&["container", "run", "--rm", "nosuchimage", "true"]));
    assert_eq!(code, Some(125), "{se}");
    assert!(se.contains("Unable to find image 'nosuchimage:latest' locally"), "{se}");
    assert!(se.contains("cannot reach the registry docker.io"), "{se}");
    let (code, _, se) =
        out(&env.run(&["container", "run", "--rm", "--pull", "never", "nosuchimage", "true"]));
    assert_eq!(code, Some(125), "{se}");
    assert_eq!(se.trim(), "berth: no such image: nosuchimage:latest");
    // --rm left nothing behind.
    assert_eq!(env.ok(&["container", "ls", "-aq"]).trim(), "");
}

#[test]
fn run_process_environment() {
    let Some(env) = ContainerEnv::new() else { return };
    let so = env.ok(&["container", "run", "--rm", "bb", "sh", "-c", "echo $$"]);
    assert_eq!(so.trim(), "1", "the command is PID 1");
    let so = env.ok(&["container", "run", "--rm", "--hostname", "box1", "bb", "hostname"]);
    assert_eq!(so.trim(), "box1");
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "app",
        "bb",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u) $(id -g) $(id -G) $HOME",
    ]);
    assert_eq!(so.trim(), "1 /tmp 1000 1000 1000 50 /home/app");
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "--name",
        "named1",
        "bb",
        "sh",
        "-c",
        "echo $HOSTNAME; cat /etc/hostname; grep -c localhost /etc/hosts",
    ]);
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines[0], lines[1]);
    assert_eq!(lines[0].len(), 12, "default hostname is the short id");
    // The name is taken while the container exists.
    env.ok(&["container", "create", "--name", "dup", "bb", "true"]);
    let (code, _, se) = out(&env.run(&["container", "run", "--name", "dup", "bb", "true"]));
    assert_eq!(code, Some(125));
    assert!(
        se.contains("Conflict. The container name \"/dup\" is already in use by container"),
        "{se}"
    );
}

#[test]
fn run_mounts_binds_volumes_tmpfs() {
    let Some(env) = ContainerEnv::new() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from host").unwrap();
    let ro = format!("{}:/data:ro", host.path().display());
    let (code, so, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "-v",
        &ro,
        "bb",
        "sh",
        "-c",
        "cat /data/f; echo x > /data/g",
    ]));
    assert_ne!(code, Some(0));
    assert!(so.contains("from host"), "{so}");
    assert!(se.contains("Read-only file system"), "{se}");
    assert!(!host.path().join("g").exists());
    // A missing bind source directory is created, and writes go through.
    let newdir = host.path().join("made/by/berth");
    let rw = format!("{}:/out", newdir.display());
    env.ok(&["container", "run", "--rm", "-v", &rw, "bb", "sh", "-c", "echo hi > /out/x"]);
    assert_eq!(std::fs::read_to_string(newdir.join("x")).unwrap(), "hi\n");
    // A fresh named volume is populated from the image and outlives its containers.
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "-v",
        "etcvol:/etc",
        "bb",
        "sh",
        "-c",
        "cat /etc/group | head -1; echo kept > /etc/marker",
    ]);
    assert_eq!(so.trim(), "root:x:0:");
    let so = env.ok(&["container", "run", "--rm", "-v", "etcvol:/etc", "bb", "cat", "/etc/marker"]);
    assert_eq!(so.trim(), "kept");
    assert!(env.ok(&["volume", "ls", "-q"]).contains("etcvol"));
    // tmpfs with size and mode.
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m,mode=1770",
        "bb",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts; stat -c %a /scratch",
    ]);
    assert!(so.contains("tmpfs /scratch tmpfs"), "{so}");
    assert!(so.contains("size=1024k"), "{so}");
    assert!(so.contains("1770"), "{so}");
    // Read-only root filesystem.
    let (code, _, se) =
        out(&env.run(&["container", "run", "--rm", "--read-only", "bb", "touch", "/x"]));
    assert_ne!(code, Some(0));
    assert!(se.contains("Read-only file system"), "{se}");
}

#[test]
fn run_resource_limits() {
    let Some(env) = ContainerEnv::new() else { return };
    // Memory: the OOM killer ends it; exit 137 and OOMKilled recorded.
    let (code, ..) = out(&env.run(&[
        "container",
        "run",
        "--name",
        "oom",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        "bb",
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo done",
    ]));
    assert_eq!(code, Some(137));
    assert_eq!(env.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "true 137");
    // pids limit stops a fork bomb.
    let (_, _, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "--pids-limit",
        "8",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 2 & done; wait",
    ]));
    assert!(se.contains("can't fork") || se.contains("Resource temporarily unavailable"), "{se}");
    // CPU quota reaches the cgroup.
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "cpu",
        "--cpus",
        "0.5",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let id = env.id("cpu");
    let v1 =
        std::path::Path::new("/sys/fs/cgroup/cpu").join("berth").join(&id).join("cpu.cfs_quota_us");
    let v2 = std::path::Path::new("/sys/fs/cgroup").join("berth").join(&id).join("cpu.max");
    let quota = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .expect("cpu quota file");
    assert!(quota.starts_with("50000"), "{quota}");
    env.ok(&["container", "stop", "cpu"]);
}

#[test]
fn run_default_security() {
    let Some(env) = ContainerEnv::new() else { return };
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert!(so.contains("CapEff:\t00000000a80425fb"), "{so}");
    assert!(so.contains("Seccomp:\t2"), "{so}");
    assert!(so.contains("NoNewPrivs:\t0"), "{so}");
    let (code, _, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "bb",
        "ip",
        "addr",
        "add",
        "10.9.9.9/32",
        "dev",
        "lo",
    ]));
    assert_ne!(code, Some(0), "no CAP_NET_ADMIN by default");
    assert!(se.contains("not permitted"), "{se}");
    let (code, _, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "bb",
        "ip",
        "link",
        "add",
        "d0",
        "type",
        "dummy",
    ]));
    assert_ne!(code, Some(0), "{se}");
    let (code, _, se) =
        out(&env.run(&["container", "run", "--rm", "bb", "mount", "-t", "tmpfs", "none", "/tmp"]));
    assert_ne!(code, Some(0), "no mount by default");
    assert!(se.contains("denied") || se.contains("not permitted"), "{se}");
    let so = env.ok(&["container", "run", "--rm", "bb", "sh", "-c", "head -c 1 /proc/kcore 2>/dev/null | wc -c; echo x > /proc/sys/kernel/hostname 2>/dev/null || echo ro"]);
    assert_eq!(so.split_whitespace().collect::<Vec<_>>(), vec!["0", "ro"]);
    env.ok(&[
        "container",
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "bb",
        "ip",
        "addr",
        "add",
        "10.9.9.9/32",
        "dev",
        "lo",
    ]);
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "--privileged",
        "bb",
        "sh",
        "-c",
        "mount -t tmpfs none /tmp && echo mounted",
    ]);
    assert_eq!(so.trim(), "mounted");
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        "seccomp=unconfined",
        "bb",
        "sh",
        "-c",
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    ]);
    assert!(so.contains("Seccomp:\t0") && so.contains("NoNewPrivs:\t1"), "{so}");
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "bb",
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert!(so.contains("0000000000000000"), "{so}");
}

#[test]
fn run_interactive_stdin() {
    use std::io::Write;
    let Some(env) = ContainerEnv::new() else { return };
    let mut child = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["container", "run", "--rm", "-i", "bb", "sh", "-c", "tr a-z A-Z; echo end"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\nworld\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "HELLO\nWORLD\nend\n");
    // Detached -i keeps stdin open: `cat` keeps running.
    env.ok(&["container", "run", "-d", "-i", "--name", "held", "bb", "cat"]);
    assert_eq!(env.inspect("held", "{{.State.Running}}"), "true");
    // A tty container gets a terminal.
    let so = env.ok(&["container", "run", "--rm", "-t", "bb", "sh", "-c", "test -t 1 && echo tty"]);
    assert_eq!(so.trim(), "tty");
    // -it: our input reaches the shell through its pty.
    let mut child = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["container", "run", "--rm", "-it", "bb", "sh"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"echo got-$((40+2))\nexit 5\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stdout).contains("got-42"));
}

/// `--init`: the container's PID 1 is berth's init (a forked copy of the monitor), the monitor
/// survives its start-up trimming (it once discarded pages the forked init still shared and
/// crashed), and a stop reaches the process through init: exit 143, no "monitor died" error.
#[test]
fn run_init_container_survives_and_stops_cleanly() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "run", "-d", "--name", "ini", "--init", "bb", "sleep", "3600"]);
    env.wait_for("ini running", 10, || env.inspect("ini", "{{.State.Running}}") == "true");
    let ps = env.ok(&["container", "exec", "ini", "ps", "-o", "pid,args"]);
    assert!(
        ps.lines().any(|l| l.trim_start().starts_with("2 ") && l.contains("sleep 3600")),
        "{ps}"
    );
    assert!(!ps.lines().any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep")), "{ps}");
    env.ok(&["container", "stop", "ini"]);
    assert_eq!(env.inspect("ini", "{{.State.Error}}"), "");
    assert_eq!(env.inspect("ini", "{{.State.ExitCode}}"), "143");
    let id = env.id("ini");
    env.ok(&["container", "rm", "ini"]);
    env.assert_no_leftovers(&id);
}

/// docker's short flags after the subcommand (`rm -f`, `ls -f`, `inspect -f`) and `run --env-file`:
/// compose-level options go before the subcommand, so these are the subcommands' own.
#[test]
fn run_env_file_and_docker_short_flags() {
    let Some(env) = ContainerEnv::new() else { return };
    let file = env.path().join("vars.env");
    std::fs::write(&file, "# comment\nGREETING=from-file\n").unwrap();
    let (code, so, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "--env-file",
        file.to_str().unwrap(),
        "bb",
        "sh",
        "-c",
        "echo $GREETING",
    ]));
    assert_eq!((code, so.as_str()), (Some(0), "from-file\n"), "{se}");
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "shorty",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    assert_eq!(env.ok(&["container", "ls", "-q", "-f", "name=shorty"]).trim().len(), 12);
    assert_eq!(
        env.ok(&["container", "inspect", "-f", "{{.State.Running}}", "shorty"]).trim(),
        "true"
    );
    let id = env.id("shorty");
    env.ok(&["container", "rm", "-f", "shorty"]);
    env.assert_no_leftovers(&id);
}

/// `image rm` and `volume rm` refuse what a container (even a stopped one) uses, like docker.
#[test]
fn images_and_volumes_in_use_are_not_removed() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "create", "--name", "user", "-v", "keep:/data", "bb", "true"]);
    let img = env.run(&["image", "rm", "bb"]);
    assert!(!img.status.success(), "image rm of a used image succeeded");
    let vol = env.run(&["volume", "rm", "keep"]);
    assert!(!vol.status.success(), "volume rm of a used volume succeeded");
    assert!(env.ok(&["image", "ls", "-q"]).trim().len() >= 12, "image gone");
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "keep");
    env.ok(&["container", "rm", "user"]);
    env.ok(&["volume", "rm", "keep"]);
    env.ok(&["image", "rm", "bb"]);
}

/// What is left on the host of the container whose id starts with `short`: its directory (a
/// recycled pool entry is renamed `.free-…` and holds nothing of it), cgroups, mounts.
fn leftovers_of(env: &ContainerEnv, short: &str) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir(env.path().join("containers")).expect("containers dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(short) {
            left.push(format!("directory {name}"));
        }
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for cg in std::fs::read_dir(h.path().join("berth")).into_iter().flatten().flatten() {
            if cg.file_name().to_string_lossy().starts_with(short) {
                left.push(format!("cgroup {}", cg.path().display()));
            }
        }
    }
    left.extend(
        berth_testsupport::mounts_under(&env.path()).into_iter().map(|m| format!("mount {m}")),
    );
    left
}

/// An attached `run --rm` returns the container's exit code and all of its output once the
/// container is removed: no record, cgroup or mount is left at that moment. Its writable layer
/// is mounted `volatile` (nothing to sync when it is thrown away); a container that is kept is
/// not, and starts again.
#[test]
fn run_rm_returns_after_removal_and_leaves_nothing() {
    let Some(env) = ContainerEnv::new() else { return };
    let (code, so, se) = out(&env.run(&[
        "container",
        "run",
        "--rm",
        "bb",
        "sh",
        "-c",
        "hostname; seq 1 20000; echo done >&2; exit 7",
    ]));
    assert_eq!(code, Some(7), "{se}");
    assert_eq!(se, "done\n");
    let lines: Vec<&str> = so.lines().collect();
    assert_eq!(lines.len(), 20001, "every line printed");
    assert_eq!(lines.last(), Some(&"20000"));
    // The default hostname is the short id.
    let short = lines[0];
    assert_eq!(short.len(), 12, "{short}");
    assert_eq!(leftovers_of(&env, short), Vec::<String>::new());
    assert_eq!(env.ok(&["container", "ls", "-aq"]).trim(), "");

    let root_mount =
        |o: &str| o.lines().find(|l| l.split(' ').nth(1) == Some("/")).map(str::to_string);
    let so = env.ok(&["container", "run", "--rm", "bb", "cat", "/proc/mounts"]);
    let rm_root = root_mount(&so).expect("root mount");
    assert!(rm_root.contains("volatile"), "{rm_root}");
    let so = env.ok(&["container", "run", "--name", "keep", "bb", "cat", "/proc/mounts"]);
    let kept_root = root_mount(&so).expect("root mount");
    assert!(!kept_root.contains("volatile"), "{kept_root}");
    let so = env.ok(&["container", "start", "-a", "keep"]);
    assert!(so.contains(" / overlay "), "{so}");
    env.ok(&["container", "rm", "keep"]);

    // As docker: --rm is auto-remove, which a restart policy contradicts.
    let (code, _, se) =
        out(&env.run(&["container", "run", "--rm", "--restart", "always", "bb", "true"]));
    assert_eq!(code, Some(125), "{se}");
    assert!(se.contains("cannot specify both --restart and --rm"), "{se}");
}

/// A `run --rm` whose CLI is killed while the container runs: the container still goes once
/// it has stopped (its monitor removes it, as docker's daemon does).
#[test]
fn run_rm_container_is_removed_when_its_cli_is_gone() {
    let Some(env) = ContainerEnv::new() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().join("go");
    let bind = format!("{}:/ctl", dir.path().display());
    let mut cli = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["container", "run", "--rm", "--name", "orphan", "-v", &bind, "bb", "sh", "-c"])
        .arg("while [ ! -e /ctl/go ]; do sleep 0.05; done")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth");
    env.wait_for("the container to run", 20, || {
        env.run(&["container", "inspect", "-f", "{{.State.Status}}", "orphan"]).stdout
            == b"running\n"
    });
    let id = env.id("orphan");
    cli.kill().expect("kill the CLI");
    cli.wait().expect("reap the CLI");
    std::fs::write(&go, "").expect("write");
    env.wait_for("the container to be removed", 20, || {
        env.ok(&["container", "ls", "-aq"]).trim().is_empty()
    });
    env.assert_no_leftovers(&id);
}
