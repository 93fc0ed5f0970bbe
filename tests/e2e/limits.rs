//! Binds of existing host files, killing a fork bomb, the default pids limit, and invalid
//! limits refused with docker's messages.

use std::path::PathBuf;

use crate::compose_support::Project;
use crate::support::ContainerEnv;

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn run_binds_existing_host_files_onto_new_and_existing_targets() {
    let Some(env) = ContainerEnv::new() else { return };
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("f.txt");
    std::fs::write(&file, "host file\n").unwrap();
    let f = file.display().to_string();
    // The issue's case: an existing host file read-only onto a path missing in the image.
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    let so = env.ok(&["container", "run", "--rm", "-v", "/etc/hostname:/x:ro", "bb", "cat", "/x"]);
    assert_eq!(so, hostname);
    // Onto a file the image has, onto a missing nested path, and read-only is enforced.
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "-v",
        &format!("{f}:/etc/passwd:ro"),
        "-v",
        &format!("{f}:/new/deep/f"),
        "bb",
        "sh",
        "-c",
        "cat /etc/passwd /new/deep/f; echo x > /etc/passwd || echo refused",
    ]);
    assert_eq!(so, "host file\nhost file\nrefused\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "host file\n");
    // A directory onto a directory the image has.
    let so = env.ok(&[
        "container",
        "run",
        "--rm",
        "-v",
        &format!("{}:/tmp", host.path().display()),
        "bb",
        "cat",
        "/tmp/f.txt",
    ]);
    assert_eq!(so, "host file\n");
    // A file onto a directory (and the reverse) is refused with a sentence saying so.
    for (bind, what) in [(format!("{f}:/tmp"), "file onto dir"), ("/etc:/etc/passwd".into(), "dir")]
    {
        let (code, _, se) = out(&env.run(&["container", "run", "--rm", "-v", &bind, "bb", "true"]));
        assert_eq!(code, Some(125), "{what}: {se}");
        assert!(se.contains("cannot be bound onto each other"), "{what}: {se}");
    }
    assert_eq!(env.ok(&["container", "ls", "-aq"]).trim(), "");
}

#[test]
fn compose_binds_existing_host_files_like_run() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("f.txt");
    std::fs::write(&file, "host file\n").unwrap();
    let compose = format!(
        r#"
services:
  a:
    image: bb
    network_mode: none
    command: ["sh", "-c", "cat /x /etc/passwd /new/deep/f; ls -d /made"]
    volumes:
      - /etc/hostname:/x:ro
      - {f}:/etc/passwd:ro
      - {f}:/new/deep/f
      - ./made:/made
"#,
        f = file.display()
    );
    let Some(p) = Project::new("bindf", &compose) else { return };
    p.ok(&["up"]);
    let (logs, _) = p.ok(&["logs", "--no-log-prefix", "a"]);
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    assert_eq!(logs, format!("{hostname}host file\nhost file\n/made\n"));
    assert!(p.path().join("made").is_dir(), "a missing bind source directory is created");
}

/// The container's cgroup directories that still exist, with the processes each holds.
fn cgroup_tasks(id: &str) -> Vec<(PathBuf, String)> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let dir = entry.path().join("berth").join(id);
        // v1 hierarchies list `tasks`; cgroup2 (and the hybrid's unified) `cgroup.procs`.
        for f in ["tasks", "cgroup.procs"] {
            if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
                left.push((dir.join(f), t));
                break;
            }
        }
    }
    left
}

/// Asserts no process of container `id` is left (its cgroup gone or empty in every hierarchy).
fn assert_cgroup_empty(id: &str, after: &str) {
    for (file, tasks) in cgroup_tasks(id) {
        assert!(
            tasks.trim().is_empty(),
            "{after} returned with {} tasks in {}",
            tasks.lines().count(),
            file.display()
        );
    }
}

/// The number of processes in container `id`'s pids cgroup (v1 or v2).
fn pids_current(id: &str) -> u64 {
    ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .find_map(|r| {
            let f = PathBuf::from(r).join("berth").join(id).join("pids.current");
            std::fs::read_to_string(f).ok()?.trim().parse().ok()
        })
        .unwrap_or(0)
}

/// A bounded fork bomb: PID 1 keeps forking sleeps until 2500 run (above the default pids
/// limit, so the tests raise it), then waits. It ignores SIGTERM (a shell as PID 1).
const BOMB: &str =
    "i=0; while [ $i -lt 2500 ]; do sleep 1000 & i=$((i+1)); done; echo spawned; wait";

#[test]
fn kill_and_rm_force_return_only_when_a_fork_bomb_is_gone() {
    let Some(env) = ContainerEnv::new() else { return };
    for how in ["kill", "rm -f"] {
        let name = berth_testsupport::unique_name("bomb");
        env.ok(&[
            "container",
            "run",
            "-d",
            "--name",
            &name,
            "--pids-limit",
            "3000",
            "bb",
            "sh",
            "-c",
            BOMB,
        ]);
        let id = env.id(&name);
        // Killed while it is still forking.
        env.wait_for("the bomb to fork 300 processes", 30, || pids_current(&id) >= 300);
        match how {
            "kill" => {
                env.ok(&["container", "kill", &name]);
                assert_cgroup_empty(&id, "kill");
                assert_eq!(
                    env.inspect(&name, "{{.State.Status}} {{.State.ExitCode}}"),
                    "exited 137"
                );
                env.ok(&["container", "rm", &name]);
            }
            _ => {
                env.ok(&["container", "rm", "-f", &name]);
                assert_cgroup_empty(&id, "rm -f");
            }
        }
        env.assert_no_leftovers(&id);
    }
}

#[test]
fn down_returns_only_when_a_fork_bomb_is_gone() {
    let compose = format!(
        r#"
services:
  bomb:
    image: bb
    network_mode: none
    pids_limit: 3000
    stop_grace_period: 1s
    command: ["sh", "-c", "{bomb}"]
"#,
        bomb = BOMB.replace('$', "$$")
    );
    let Some(p) = Project::new("bombdown", &compose) else { return };
    p.ok(&["up", "-d"]);
    let id = p.id(&p.cname("bomb", 1));
    p.wait_for("the bomb to fork 300 processes", 30, || pids_current(&id) >= 300);
    p.ok(&["down"]);
    assert_cgroup_empty(&id, "down");
}

#[test]
fn default_pids_limit_applies_and_pids_limit_overrides_it() {
    let compose = format!(
        r#"
services:
  capped:
    image: bb
    network_mode: none
    command: ["sh", "-c", "{bomb}"]
  raised:
    image: bb
    network_mode: none
    pids_limit: 3000
    command: ["sh", "-c", "{bomb}"]
  unlimited:
    image: bb
    network_mode: none
    pids_limit: -1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
"#,
        bomb = BOMB.replace('$', "$$")
    );
    let Some(p) = Project::new("pidsdef", &compose) else { return };
    p.ok(&["up", "-d"]);
    let max = |svc: &str| {
        let id = p.id(&p.cname(svc, 1));
        ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .iter()
            .find_map(|r| {
                std::fs::read_to_string(PathBuf::from(r).join("berth").join(&id).join("pids.max"))
                    .ok()
            })
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(max("capped"), "2048");
    assert_eq!(max("raised"), "3000");
    assert_eq!(max("unlimited"), "max");
    // The capped bomb's shell fails to fork at the limit (and exits); the raised one spawns all.
    let capped = p.cname("capped", 1);
    p.wait_for("the capped bomb to end", 60, || {
        p.inspect(&capped, "{{.State.Status}}") == "exited"
    });
    let (logs, _) = p.ok(&["logs", "--no-log-prefix", "capped"]);
    assert!(logs.contains("can't fork"), "{logs}");
    assert!(!logs.contains("spawned"), "{logs}");
    p.wait_for("the raised bomb to spawn every process", 60, || {
        p.ok(&["logs", "--no-log-prefix", "raised"]).0.contains("spawned")
    });
    // docker shows no limit it was not given.
    assert_eq!(p.inspect(&capped, "{{.HostConfig.PidsLimit}}"), "<no value>");
}

#[test]
fn run_refuses_limits_docker_refuses_and_creates_nothing() {
    let Some(env) = ContainerEnv::new() else { return };
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let range =
        format!("Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available");
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "1"], "Minimum memory limit allowed is 6MB"),
        (&["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
        (
            &["--memory-swap", "1g"],
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (
            &["-m", "64m", "--memory-swap", "32m"],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (&["--cpus", "-1"], &range),
        (&["--cpus=1000"], &range),
        (&["--cpu-quota", "10"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (&["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["container", "run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        let (code, _, se) = out(&env.run(&args));
        assert_eq!(code, Some(125), "{flags:?}: {se}");
        assert_eq!(se.trim(), format!("berth: {want}"), "{flags:?}");
    }
    assert_eq!(env.ok(&["container", "ls", "-aq"]).trim(), "", "a refused run created a container");
    // Negative shares are clamped to the kernel's minimum, as docker does.
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "shares",
        "--cpu-shares",
        "-5",
        "bb",
        "sleep",
        "60",
    ]);
    let id = env.id("shares");
    let v1 = std::path::Path::new("/sys/fs/cgroup/cpu/berth").join(&id).join("cpu.shares");
    if let Ok(shares) = std::fs::read_to_string(&v1) {
        assert_eq!(shares.trim(), "2");
    }
    env.ok(&["container", "rm", "-f", "shares"]);
}

#[test]
fn compose_refuses_invalid_limits_and_unreadable_env_files_at_the_key() {
    let Some(p) = Project::new("badlim", "services:\n  a:\n    image: bb\n    mem_limit: 1\n")
    else {
        return;
    };
    let (code, _, se) = out(&p.run(&["up", "-d"]));
    assert_eq!(code, Some(15), "{se}");
    assert!(
        se.contains("compose.yaml:4:5: services.a.mem_limit: Minimum memory limit allowed is 6MB"),
        "{se}"
    );
    p.write("services:\n  a:\n    image: bb\n    cpus: -1\n");
    let (code, _, se) = out(&p.run(&["up", "-d"]));
    assert_eq!(code, Some(15), "{se}");
    assert!(se.contains("compose.yaml:4:5: services.a.cpus: -1 is out of range"), "{se}");
    // A device or a FIFO as env_file: the true reason, and no hang on the FIFO.
    let fifo = p.path().join("fifo.env");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()));
    for (file, shown) in
        [("/dev/zero", "/dev/zero".to_string()), ("fifo.env", fifo.display().to_string())]
    {
        p.write(&format!("services:\n  a:\n    image: bb\n    env_file: {file}\n"));
        let (code, _, se) = out(&p.run(&["config"]));
        assert_eq!(code, Some(15), "{se}");
        assert!(
            se.contains(&format!(
                "compose.yaml:4:15: services.a.env_file: cannot read env file {shown}: not a regular file"
            )),
            "{se}"
        );
    }
    p.write("services:\n  a:\n    image: bb\n    network_mode: none\n    command: [\"true\"]\n");
    assert_eq!(p.env.ok(&["container", "ls", "-aq"]).trim(), "");
}

#[test]
fn a_damaged_image_index_is_reported_by_path_never_read_as_empty() {
    let Some(p) = Project::new(
        "badidx",
        "services:\n  a:\n    image: bb\n    network_mode: none\n    command: [\"true\"]\n",
    ) else {
        return;
    };
    let index = p.env.path().join("images/index.json");
    let good = std::fs::read(&index).unwrap();
    for (damage, reason) in
        [(&b"{\"images\": {"[..], "EOF while parsing"), (b"", "the file is empty")]
    {
        std::fs::write(&index, damage).unwrap();
        let want = format!("the image index {} is damaged ({reason}", index.display());
        let (code, _, se) = out(&p.env.run(&["image", "ls"]));
        assert_eq!(code, Some(1), "{se}");
        assert!(se.contains(&want), "{se}");
        let (code, _, se) = out(&p.run(&["up"]));
        assert_ne!(code, Some(0), "{se}");
        assert!(se.contains(&format!("service \"a\": image \"bb\": {want}")), "{se}");
        assert!(!se.contains("not found"), "{se}");
        let (code, _, se) = out(&p.env.run(&["container", "run", "--rm", "bb", "true"]));
        assert_eq!(code, Some(125), "{se}");
        assert!(se.contains(&want), "{se}");
    }
    std::fs::write(&index, good).unwrap();
    p.ok(&["up"]);
}
