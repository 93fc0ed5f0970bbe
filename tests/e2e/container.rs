//! `berth container ...`: lifecycle, stop/kill, logs, exec, restart policies, healthchecks,
//! liveness after a dead monitor, and complete cleanup on rm.

use std::time::{Duration, Instant};

use crate::support::ContainerEnv;

const TRAP: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

#[test]
fn container_lifecycle_and_cleanup() {
    let Some(env) = ContainerEnv::new() else { return };
    let id = env.ok(&[
        "container",
        "create",
        "--name",
        "life",
        "--label",
        "a=b",
        "bb",
        "sh",
        "-c",
        TRAP,
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(env.inspect("life", "{{.State.Status}}"), "created");
    env.ok(&["container", "start", "life"]);
    assert_eq!(env.inspect(&id[..10], "{{.State.Status}} {{.State.Running}}"), "running true");
    let pid: i32 = env.inspect("life", "{{.State.Pid}}").parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // list with filters
    assert!(env.ok(&["container", "ls", "--filter", "label=a=b", "-q"]).contains(&id[..12]));
    assert_eq!(env.ok(&["container", "ls", "--filter", "label=a=c", "-q"]).trim(), "");
    assert!(
        env.ok(&["container", "ls", "--filter", "status=running", "--format", "json"])
            .contains("\"Names\":\"life\"")
    );
    // top, stats, pause/unpause, rename
    let top = env.ok(&["container", "top", "life"]);
    assert!(top.starts_with("UID") && top.contains("sleep 3600"), "{top}");
    assert!(env.ok(&["container", "stats", "--no-stream", "life"]).contains("life"));
    env.ok(&["container", "pause", "life"]);
    assert_eq!(env.inspect("life", "{{.State.Status}} {{.State.Paused}}"), "paused true");
    env.ok(&["container", "unpause", "life"]);
    env.ok(&["container", "rename", "life", "life2"]);
    assert_eq!(env.inspect(&id, "{{.Name}}"), "/life2");
    // rm of a running container needs force
    let o = env.run(&["container", "rm", "life2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("container is running"));
    env.ok(&["container", "rm", "--force", "life2"]);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            // The pid may be reused by now; it must at least not be our sleep.
            !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .contains("sleep")
        }
    );
    env.assert_no_leftovers(&id);
    let o = env.run(&["container", "inspect", "life2"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such container: life2"));
}

#[test]
fn container_stop_grace_then_kill() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "run", "-d", "--name", "polite", "bb", "sh", "-c", TRAP]);
    let t = Instant::now();
    env.ok(&["container", "stop", "polite"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a TERM handler stops at once: {:?}",
        t.elapsed()
    );
    assert_eq!(env.inspect("polite", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    // PID 1 without a TERM handler ignores it: SIGKILL after the grace period.
    env.ok(&["container", "run", "-d", "--name", "stubborn", "bb", "sleep", "3600"]);
    let t = Instant::now();
    env.ok(&["container", "stop", "-t", "1", "stubborn"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(env.inspect("stubborn", "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    // kill with a signal of choice; a stopped container starts again.
    env.ok(&["container", "start", "stubborn"]);
    assert_eq!(env.inspect("stubborn", "{{.State.Running}}"), "true");
    env.ok(&["container", "kill", "stubborn"]);
    assert_eq!(env.ok(&["container", "wait", "stubborn"]).trim(), "137");
}

#[test]
fn container_logs_survive_cli_and_rotate() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "bb",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; echo to-stderr >&2",
    ]);
    assert_eq!(env.ok(&["container", "wait", "chatty"]).trim(), "0");
    let dir = env.path().join("containers").join(env.id("chatty"));
    let cur = std::fs::read_to_string(dir.join("container-json.log")).unwrap();
    assert!(dir.join("container-json.log.1").exists() && dir.join("container-json.log.2").exists());
    assert!(!dir.join("container-json.log.3").exists());
    for f in ["container-json.log", "container-json.log.1"] {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() <= 1024 + 100);
    }
    let last = cur.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["log"], "to-stderr\n");
    assert_eq!(v["stream"], "stderr");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let o = env.run(&["container", "logs", "--tail", "2", "chatty"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line 299\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "to-stderr\n");
    let all = env.ok(&["container", "logs", "chatty"]);
    assert!(all.lines().count() < 300, "oldest lines were rotated away");
    assert!(all.ends_with("line 299\n"));
    let ts = env.ok(&["container", "logs", "-t", "--tail", "2", "chatty"]);
    assert!(ts.starts_with("20") && ts.contains("Z line 299"), "{ts}");
    // Follow streams until the container stops; attach streams from now on.
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "slow",
        "bb",
        "sh",
        "-c",
        "echo one; sleep 0.5; echo two; exit 4",
    ]);
    let attach = std::process::Command::new(crate::support::berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["container", "attach", "slow"])
        .output()
        .unwrap();
    let f = env.ok(&["container", "logs", "--follow", "slow"]);
    assert_eq!(f, "one\ntwo\n");
    assert_eq!(attach.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&attach.stdout).ends_with("two\n"));
}

#[test]
fn container_exec_runs_in_the_container() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "run", "-d", "--name", "ex", "-e", "BASE=1", "bb", "sh", "-c", TRAP]);
    let so = env.ok(&[
        "container",
        "exec",
        "-e",
        "X=2",
        "-w",
        "/tmp",
        "-u",
        "app",
        "ex",
        "sh",
        "-c",
        "echo $BASE $X $(pwd) $(id -u) $(hostname)",
    ]);
    let host = env.inspect("ex", "{{.Config.Hostname}}");
    assert_eq!(so.trim(), format!("1 2 /tmp 1000 {host}"));
    let o = env.run(&["container", "exec", "ex", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = env.run(&["container", "exec", "ex", "nosuch"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("executable file not found"));
    // The exec'd process shares the container's pid namespace.
    let so = env.ok(&["container", "exec", "ex", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(so.contains("sleep 3600 & wait"), "{so}");
    env.ok(&["container", "exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg"]);
    env.wait_for("detached exec", 5, || {
        env.run(&["container", "exec", "ex", "cat", "/tmp/bg"]).status.success()
    });
    env.ok(&["container", "stop", "ex"]);
    let o = env.run(&["container", "exec", "ex", "true"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not running"));
}

#[test]
fn container_restart_policies() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "bb",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(env.ok(&["container", "wait", "flaky"]).trim(), "3");
    assert_eq!(env.inspect("flaky", "{{.RestartCount}} {{.State.Status}}"), "2 exited");
    // on-failure doesn't restart a success.
    env.ok(&["container", "run", "-d", "--name", "fine", "--restart", "on-failure", "bb", "true"]);
    assert_eq!(env.ok(&["container", "wait", "fine"]).trim(), "0");
    assert_eq!(env.inspect("fine", "{{.RestartCount}}"), "0");
    // always restarts, even after exit 0; a user stop ends it for good.
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "echo run; sleep 0.2",
    ]);
    env.wait_for("two restarts", 15, || {
        env.inspect("loop", "{{.RestartCount}}").parse::<i64>().unwrap() >= 2
    });
    env.ok(&["container", "stop", "loop"]);
    let n = env.inspect("loop", "{{.RestartCount}}");
    assert_eq!(env.inspect("loop", "{{.State.Status}}"), "exited");
    // The monitor records its final decision (no restart) with MonitorPid 0, atomically.
    env.wait_for("the monitor's final decision", 10, || {
        env.state_record("loop")["MonitorPid"] == 0
    });
    assert_eq!(env.inspect("loop", "{{.RestartCount}} {{.State.Status}}"), format!("{n} exited"));
    assert!(env.ok(&["container", "logs", "loop"]).matches("run").count() >= 2);
    // A user start lifts the stop: the policy restarts it again, counting from zero (docker).
    let runs = || env.ok(&["container", "logs", "loop"]).matches("run").count();
    let (before_runs, before_count) = (runs(), n.parse::<usize>().unwrap());
    env.ok(&["container", "start", "loop"]);
    env.wait_for("a restart after the user start", 15, || runs() >= before_runs + 2);
    env.ok(&["container", "stop", "loop"]);
    let new_runs = runs() - before_runs;
    let count: usize = env.inspect("loop", "{{.RestartCount}}").parse().unwrap();
    // Without the reset it would be at least before_count + new_runs - 1 > new_runs.
    assert!(count <= new_runs, "RestartCount {count} after {new_runs} runs (was {before_count})");
}

#[test]
fn container_healthcheck_transitions() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "doc",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "bb",
        "sh",
        "-c",
        TRAP,
    ]);
    assert_eq!(env.inspect("doc", "{{.State.Health.Status}}"), "starting");
    env.ok(&["container", "exec", "doc", "sh", "-c", "echo fine > /tmp/ok"]);
    env.wait_for("healthy", 10, || env.inspect("doc", "{{.State.Health.Status}}") == "healthy");
    let log = env.inspect("doc", "{{json .State.Health.Log}}");
    assert!(log.contains("\"Output\":\"fine\\n\"") && log.contains("\"ExitCode\":0"), "{log}");
    assert!(env.ok(&["container", "ls"]).contains("(healthy)"));
    env.ok(&["container", "exec", "doc", "rm", "/tmp/ok"]);
    env.wait_for("unhealthy", 10, || env.inspect("doc", "{{.State.Health.Status}}") == "unhealthy");
    let v: serde_json::Value =
        serde_json::from_str(&env.inspect("doc", "{{json .State.Health}}")).unwrap();
    assert!(v["FailingStreak"].as_i64().unwrap() >= 2);
    assert!(v["Log"].as_array().unwrap().len() <= 5);
    env.ok(&["container", "stop", "doc"]);
}

#[test]
fn container_dead_monitor_reads_as_exited_and_restarts() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "run", "-d", "--name", "orphan", "bb", "sh", "-c", TRAP]);
    let pid: i32 = env.inspect("orphan", "{{.State.Pid}}").parse().unwrap();
    let mon = env.state_record("orphan")["MonitorPid"].as_i64().unwrap() as i32;
    assert!(mon > 0);
    let k = std::process::Command::new("kill").args(["-9", &mon.to_string()]).status().unwrap();
    assert!(k.success());
    env.wait_for("monitor gone", 5, || {
        std::fs::read_to_string(format!("/proc/{mon}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    assert_eq!(env.inspect("orphan", "{{.State.Status}} {{.State.Running}}"), "exited false");
    assert!(!env.ok(&["container", "ls"]).contains("orphan"));
    env.wait_for("container process gone", 5, || {
        !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .contains("sleep")
    });
    env.ok(&["container", "start", "orphan"]);
    assert_eq!(env.inspect("orphan", "{{.State.Status}}"), "running");
    let id = env.id("orphan");
    env.ok(&["container", "rm", "--force", "orphan"]);
    env.assert_no_leftovers(&id);
}

#[test]
fn container_subcommand_help_parses() {
    // clap's own consistency checks (duplicate flags etc.) only fire when a command is parsed.
    for c in [
        "create", "ls", "inspect", "logs", "exec", "start", "stop", "restart", "kill", "rm", "top",
        "stats", "pause", "unpause", "rename", "wait", "attach",
    ] {
        let o = std::process::Command::new(crate::support::berth_bin())
            .args(["container", c, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success(), "container {c} --help: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = std::process::Command::new(crate::support::berth_bin())
        .args(["container", "run", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn container_auto_remove_and_concurrent_starts() {
    let Some(env) = ContainerEnv::new() else { return };
    // -d --rm: the monitor removes the container (and its anonymous volumes) when it exits.
    let id = env.ok(&[
        "container",
        "run",
        "-d",
        "--rm",
        "-v",
        "/anon",
        "bb",
        "sh",
        "-c",
        "echo x > /anon/f",
    ]);
    let id = id.trim().to_string();
    env.wait_for("auto-removal", 10, || !env.path().join("containers").join(&id).exists());
    env.assert_no_leftovers(&id);
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "", "anonymous volume removed too");
    // Two CLIs starting the same container at once start it once.
    env.ok(&["container", "create", "--name", "twice", "bb", "sh", "-c", TRAP]);
    let spawn = || {
        std::process::Command::new(crate::support::berth_bin())
            .arg("--root")
            .arg(env.path())
            .args(["container", "start", "twice"])
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let id = env.id("twice");
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).to_string();
            cmd.contains("__monitor") && cmd.contains(&id)
        })
        .count();
    assert_eq!(monitors, 1);
    env.ok(&["container", "rm", "--force", "twice"]);
    env.assert_no_leftovers(&id);
}

/// `berth ARGS` running with a pseudo-terminal as its stdin/stdout/stderr, as from a user's
/// shell; the test holds the terminal's master side. Killed on drop if still running.
struct OnTerminal {
    child: std::process::Child,
    master: std::os::fd::OwnedFd,
    slave: std::fs::File,
    before: nix::sys::termios::Termios,
    out: Vec<u8>,
}

impl OnTerminal {
    fn spawn(env: &ContainerEnv, args: &[&str], rows: u16, cols: u16) -> OnTerminal {
        Self::spawn_in(None, env, args, rows, cols)
    }

    /// As [`OnTerminal::spawn`], in directory `dir`.
    fn spawn_in(
        dir: Option<&std::path::Path>,
        env: &ContainerEnv,
        args: &[&str],
        rows: u16,
        cols: u16,
    ) -> OnTerminal {
        use std::os::fd::AsFd;
        use std::process::Stdio;
        let ws = nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let before = nix::sys::termios::tcgetattr(pty.slave.as_fd()).expect("tcgetattr");
        let slave = std::fs::File::from(pty.slave);
        let mut cmd = std::process::Command::new(crate::support::berth_bin());
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let child = cmd
            .arg("--root")
            .arg(env.path())
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()))
            .spawn()
            .expect("spawn berth");
        let master = pty.master;
        let fl = nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
        nix::fcntl::fcntl(
            master.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )
        .unwrap();
        OnTerminal { child, master, slave, before, out: Vec::new() }
    }

    /// Collects output for up to 50 ms.
    fn pump(&mut self) {
        use std::os::fd::AsFd;
        let mut p = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(50u16));
        let mut buf = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(&self.master, &mut buf) {
            if n == 0 {
                break;
            }
            self.out.extend_from_slice(&buf[..n]);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// Waits (bounded) until the output contains `what`.
    fn wait_output(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.text().contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} on the terminal: {:?}", self.text());
            self.pump();
        }
    }

    /// Resizes the terminal and tells berth, as a terminal emulator does.
    fn resize(&self, rows: u16, cols: u16) {
        use nix::libc;
        use std::os::fd::AsRawFd;
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from the struct we own.
        assert_eq!(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
        // berth isn't in the terminal's session here, so the kernel won't signal it itself.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).expect("signal berth");
    }

    /// Waits (bounded) for berth to exit; returns its exit code, the whole output and whether
    /// the terminal's settings are back to what they were.
    fn finish(mut self) -> (i32, String, bool) {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            let exited = self.child.try_wait().expect("wait berth");
            self.pump();
            if let Some(st) = exited {
                break st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "berth did not finish: {:?}", self.text());
        };
        let after = nix::sys::termios::tcgetattr(self.slave.as_fd()).expect("tcgetattr");
        let restored = self.before.local_flags == after.local_flags
            && self.before.input_flags == after.input_flags
            && self.before.output_flags == after.output_flags;
        (code, self.text(), restored)
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn container_exec_with_a_tty() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("tty");
    env.ok(&["container", "run", "-d", "--name", &name, "bb", "sh", "-c", TRAP]);
    // The exec'd process gets a terminal of the container's own devpts.
    let (code, out, restored) =
        OnTerminal::spawn(&env, &["container", "exec", "-t", &name, "tty"], 24, 80).finish();
    assert_eq!(code, 0, "{out}");
    let line = out.trim();
    assert!(
        line.starts_with("/dev/pts/") && line["/dev/pts/".len()..].parse::<u32>().is_ok(),
        "{out:?}"
    );
    assert!(restored, "the terminal's settings were not restored");
    // Its size is the caller's terminal's, and TERM is set like docker's.
    let (code, out, _) = OnTerminal::spawn(
        &env,
        &["container", "exec", "-t", &name, "sh", "-c", "stty size; echo $TERM; exit 3"],
        33,
        77,
    )
    .finish();
    assert_eq!(code, 3, "{out}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["33 77", "xterm"], "{out:?}");
    // A resize of the caller's terminal reaches the process (SIGWINCH + the new size); input
    // typed on the caller's terminal reaches it too.
    // (A trap interrupts `read`, hence the loop.)
    let script = "trap 'stty size' WINCH; echo ready; \
                  while :; do read line && [ -n \"$line\" ] && break; done; echo got:$line";
    let mut t =
        OnTerminal::spawn(&env, &["container", "exec", "-t", &name, "sh", "-c", script], 24, 80);
    t.wait_output("ready");
    t.resize(40, 100);
    t.wait_output("40 100");
    nix::unistd::write(&t.master, b"hello\r").unwrap();
    let (code, out, restored) = t.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(restored, "the terminal's settings were not restored");
    // Without -t the caller's terminal is passed through as plain stdio: no terminal of the
    // container's own (busybox `tty` can't name a host terminal).
    let (code, out, _) =
        OnTerminal::spawn(&env, &["container", "exec", &name, "tty"], 24, 80).finish();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a tty"), "{out:?}");
    let id = env.id(&name);
    env.ok(&["container", "rm", "-f", &name]);
    env.assert_no_leftovers(&id);
}

#[test]
fn compose_exec_uses_a_tty_when_stdin_is_one() {
    let compose = format!(
        "services:\n  web:\n    image: bb\n    network_mode: none\n    command: {}\n",
        crate::compose_support::LONG
    );
    let Some(p) = crate::compose_support::Project::new("ctty", &compose) else { return };
    p.ok(&["up", "-d"]);
    let dir = p.path();
    // On a terminal: a terminal inside, by default.
    let (code, out, restored) =
        OnTerminal::spawn_in(Some(&dir), &p.env, &["-p", &p.name, "exec", "web", "tty"], 24, 80)
            .finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.trim().starts_with("/dev/pts/"), "{out:?}");
    assert!(restored, "the terminal's settings were not restored");
    // -T: none.
    let (code, out, _) = OnTerminal::spawn_in(
        Some(&dir),
        &p.env,
        &["-p", &p.name, "exec", "-T", "web", "tty"],
        24,
        80,
    )
    .finish();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not a tty"), "{out:?}");
    // stdin not a terminal (as here): none either.
    let (so, _) = p.ok(&["exec", "web", "sh", "-c", "tty || true"]);
    assert_eq!(so.trim(), "not a tty");
}

/// The monitor is the `berth-monitor` executable beside `berth`, single-threaded; a `berth`
/// without it fails the start with a sentence naming the missing file, leaving the container
/// created and nothing else behind.
#[test]
fn container_monitor_is_berth_monitor_beside_berth() {
    let Some(env) = ContainerEnv::new() else { return };
    env.ok(&["container", "run", "-d", "--name", "mon", "bb", "sh", "-c", TRAP]);
    let mon = env.state_record("mon")["MonitorPid"].as_i64().expect("monitor pid");
    // It runs from a read-only detached mount of that file (docs/launch.md "Sealed
    // executables"): the same inode, on a read-only mount; its command line names the file.
    let exe = format!("/proc/{mon}/exe");
    let beside = std::path::Path::new(crate::support::berth_bin()).with_file_name("berth-monitor");
    assert_eq!(crate::support::inode(std::path::Path::new(&exe)), crate::support::inode(&beside));
    let f = std::fs::File::open(&exe).expect("monitor exe");
    let vfs = nix::sys::statvfs::fstatvfs(&f).expect("statvfs");
    assert!(vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY), "writable monitor exe");
    let cmdline = std::fs::read(format!("/proc/{mon}/cmdline")).expect("cmdline");
    assert!(cmdline.starts_with(beside.as_os_str().as_encoded_bytes()), "{cmdline:?}");
    let comm = std::fs::read_to_string(format!("/proc/{mon}/comm")).expect("comm");
    assert_eq!(comm, "berth-monitor\n");
    let status = std::fs::read_to_string(format!("/proc/{mon}/status")).expect("status");
    assert!(status.lines().any(|l| l == "Threads:\t1"), "monitor threads:\n{status}");
    let id = env.id("mon");
    env.ok(&["container", "rm", "--force", "mon"]);
    env.assert_no_leftovers(&id);

    // A `berth` with no `berth-monitor` beside it (a hard link elsewhere, or a copy).
    let dir = berth_testsupport::TempRoot::new().expect("temp dir");
    let lone = dir.path().join("berth");
    if std::fs::hard_link(crate::support::berth_bin(), &lone).is_err() {
        std::fs::copy(crate::support::berth_bin(), &lone).expect("copy berth");
    }
    let out = std::process::Command::new(&lone)
        .arg("--root")
        .arg(env.path())
        .args(["container", "run", "-d", "--name", "nomon", "bb", "true"])
        .output()
        .expect("run lone berth");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a monitor executable: {err}");
    let want = format!("{} is missing", dir.path().join("berth-monitor").display());
    assert!(err.contains(&want) && err.contains("install berth-monitor beside"), "stderr: {err}");
    assert_eq!(env.inspect("nomon", "{{.State.Status}}"), "created");
    let id = env.id("nomon");
    env.ok(&["container", "rm", "nomon"]);
    env.assert_no_leftovers(&id);
}
