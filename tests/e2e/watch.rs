//! Watch mode (issue 12) on real containers and real file events: `berth watch` syncs edits,
//! new directories, deletions and renames into every replica, never copies ignored paths or
//! what `include` leaves out, keeps owner and mode, applies a burst of 500 files, runs
//! `sync+restart` and `sync+exec`, rebuilds only the service of a `rebuild` rule; `berth up
//! --watch` applies compose-file edits (a new service, a changed environment, a changed port,
//! a service removed) and refuses an invalid one without touching anything. Every wait polls
//! with a deadline.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::compose_support::{LONG, Project};

/// A `berth` process of the test (watch, up --watch): interrupted, then killed, when dropped;
/// its output goes to a file the test reads.
struct Bg {
    child: Child,
    out: tempfile::NamedTempFile,
}

impl Bg {
    fn start(p: &Project, args: &[&str]) -> Bg {
        let out = tempfile::NamedTempFile::new().expect("output file");
        let child = p
            .command(args)
            .stdout(out.reopen().expect("reopen"))
            .stderr(out.reopen().expect("reopen"))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn berth");
        Bg { child, out }
    }

    fn output(&self) -> String {
        let mut s = String::new();
        let _ = self.out.reopen().and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// Waits until the output contains `what` (panics with the output after `secs`).
    fn wait_output(&mut self, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.output();
            if out.contains(what) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("berth exited ({st}) before printing {what:?}:\n{out}");
            }
            assert!(Instant::now() < deadline, "no {what:?} in:\n{out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C, then waits for the exit (killed after 20 s).
    fn interrupt(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.interrupt();
        }
    }
}

/// `sh -c script` in replica `index` of `svc`: (exit success, stdout). By container name: the
/// compose file may be invalid at the time (a test's edit).
fn sh_in(p: &Project, svc: &str, index: u32, script: &str) -> (bool, String) {
    let name = p.cname(svc, index);
    let out = p.env.run(&["container", "exec", &name, "sh", "-c", script]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Polls until `script` succeeds in every replica in `indexes` of `svc`.
fn wait_in(p: &Project, svc: &str, indexes: &[u32], what: &str, script: &str) {
    for &i in indexes {
        p.wait_for(&format!("{what} in {svc} #{i}"), 20, || sh_in(p, svc, i, script).0);
    }
}

/// As [`wait_in`], with the watch's output in the failure message.
fn wait_watched(w: &Bg, p: &Project, svc: &str, indexes: &[u32], what: &str, script: &str) {
    for &i in indexes {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sh_in(p, svc, i, script).0 {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} in {svc} #{i}:\n{}",
                w.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A loopback TCP port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write(path: &Path, data: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, data).expect("write");
}

#[test]
fn watch_syncs_into_every_replica_and_skips_ignored_paths() {
    let compose = format!(
        r#"services:
  web:
    image: bb
    command: {LONG}
    network_mode: none
    deploy:
      replicas: 2
    develop:
      watch:
        - path: ./src
          action: sync
          target: /app
          initial_sync: true
          ignore:
            - "*.tmp"
            - cache/
        - path: ./inc
          action: sync
          target: /inc
          include:
            - "*.py"
"#
    );
    let Some(p) = Project::new("wsync", &compose) else { return };
    let src = p.path().join("src");
    std::fs::create_dir_all(p.path().join("inc")).expect("mkdir");
    write(&src.join("a.txt"), "v1");
    write(&src.join("cache/old"), "never");
    let mut w = Bg::start(&p, &["watch"]);
    w.wait_output("Watch enabled", 60);
    // initial_sync: what was there before the watch.
    wait_in(&p, "web", &[1, 2], "initial sync", "test \"$(cat /app/a.txt)\" = v1");
    for i in [1, 2] {
        assert!(!sh_in(&p, "web", i, "test -e /app/cache").0, "ignored dir synced initially");
    }
    // An edit.
    write(&src.join("a.txt"), "v2");
    wait_in(&p, "web", &[1, 2], "the edit", "test \"$(cat /app/a.txt)\" = v2");
    // A new directory with a file, owner and mode as on the host.
    write(&src.join("new/b.txt"), "b");
    std::os::unix::fs::chown(src.join("new/b.txt"), Some(1234), Some(2345)).expect("chown");
    std::fs::set_permissions(
        src.join("new/b.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .expect("chmod");
    wait_in(
        &p,
        "web",
        &[1, 2],
        "the new file with its owner and mode",
        "test \"$(stat -c '%u:%g %a' /app/new/b.txt)\" = '1234:2345 640'",
    );
    // A rename and a deletion.
    std::fs::rename(src.join("new/b.txt"), src.join("new/c.txt")).expect("rename");
    std::fs::remove_file(src.join("a.txt")).expect("rm");
    wait_in(
        &p,
        "web",
        &[1, 2],
        "the rename and the deletion",
        "test -e /app/new/c.txt && ! test -e /app/new/b.txt && ! test -e /app/a.txt",
    );
    // Ignored paths, then a marker written after them: once the marker is there, the
    // ignored ones would have been too.
    write(&src.join("x.tmp"), "no");
    write(&src.join("cache/y"), "no");
    write(&src.join(".a.swp"), "no");
    write(&src.join("marker"), "m");
    wait_in(&p, "web", &[1, 2], "the marker", "test -e /app/marker");
    for i in [1, 2] {
        let (_, ls) = sh_in(&p, "web", i, "ls -a /app");
        for ignored in ["x.tmp", "cache", ".a.swp"] {
            assert!(!ls.split_whitespace().any(|f| f == ignored), "{ignored} synced: {ls}");
        }
    }
    // include: only what matches is synced.
    write(&p.path().join("inc/skip.txt"), "no");
    write(&p.path().join("inc/a.py"), "yes");
    wait_in(&p, "web", &[1, 2], "the included file", "test \"$(cat /inc/a.py)\" = yes");
    for i in [1, 2] {
        assert!(!sh_in(&p, "web", i, "test -e /inc/skip.txt").0, "a file include leaves out");
    }
    // A burst of 500 files (as a `git checkout`): all of them arrive.
    for n in 0..500 {
        write(&src.join(format!("burst/f{n:03}")), &n.to_string());
    }
    wait_in(&p, "web", &[1, 2], "500 files", "test \"$(ls /app/burst | wc -l)\" -eq 500");
    wait_in(&p, "web", &[1, 2], "the last file's content", "test \"$(cat /app/burst/f499)\" = 499");
    let out = w.output();
    assert!(out.contains("Syncing service \"web\" after"), "{out}");
    w.interrupt();
}

#[test]
fn watch_sync_restart_restarts_and_sync_exec_runs_its_command() {
    let compose = format!(
        r#"services:
  app:
    image: bb
    command: {LONG}
    network_mode: none
    develop:
      watch:
        - path: ./conf
          action: sync+restart
          target: /etc/app
        - path: ./hooks
          action: sync+exec
          target: /hooks
          exec:
            command: ["sh", "-c", "cat /hooks/h > /tmp/ran-$$HOOK_TAG"]
            environment:
              HOOK_TAG: tagged
"#
    );
    let Some(p) = Project::new("wrst", &compose) else { return };
    std::fs::create_dir_all(p.path().join("conf")).expect("mkdir");
    std::fs::create_dir_all(p.path().join("hooks")).expect("mkdir");
    let mut w = Bg::start(&p, &["watch"]);
    w.wait_output("Watch enabled", 60);
    let name = p.cname("app", 1);
    let started = p.inspect(&name, "{{.State.StartedAt}}");
    write(&p.path().join("conf/app.ini"), "x=1");
    w.wait_output("service(s) [\"app\"] restarted", 30);
    assert_ne!(p.inspect(&name, "{{.State.StartedAt}}"), started, "not restarted");
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    wait_in(&p, "app", &[1], "the synced config", "test \"$(cat /etc/app/app.ini)\" = x=1");
    write(&p.path().join("hooks/h"), "hooked");
    wait_in(&p, "app", &[1], "the hook's output", "test \"$(cat /tmp/ran-tagged)\" = hooked");
    w.interrupt();
}

#[test]
fn up_watch_applies_compose_file_edits_and_refuses_invalid_ones() {
    let svc = |name: &str, env: &str| {
        format!(
            "  {name}:\n    image: bb\n    command: {LONG}\n    network_mode: none\n    environment:\n      V: \"{env}\"\n"
        )
    };
    let watch_rule = "    develop:\n      watch:\n        - path: ./src\n          action: sync\n          target: /src\n";
    // A service with a published port (on the project network), whose port the edit changes.
    let web = |port: u16| {
        format!(
            "  web:\n    image: bb\n    command: {LONG}\n    ports: [\"127.0.0.1:{port}:80\"]\n"
        )
    };
    let port1 = free_port();
    let port2 = std::iter::repeat_with(free_port).find(|p| *p != port1).expect("a second port");
    let first =
        format!("services:\n{}{}{}{}", svc("a", "1"), watch_rule, svc("b", "1"), web(port1));
    let Some(p) = Project::new("wup", &first) else { return };
    std::fs::create_dir_all(p.path().join("src")).expect("mkdir");
    let mut w = Bg::start(&p, &["up", "--watch"]);
    w.wait_output("Watch enabled", 60);
    let (a, b) = (p.cname("a", 1), p.cname("b", 1));
    let (a_id, b_id) = (p.id(&a), p.id(&b));
    let web_c = p.cname("web", 1);
    let web_id = p.id(&web_c);
    // A new service, a changed environment and a changed port: c starts, a and web are
    // recreated, b is left alone.
    let second = format!(
        "services:\n{}{}{}{}{}",
        svc("a", "2"),
        watch_rule,
        svc("b", "1"),
        svc("c", "1"),
        web(port2)
    );
    p.write(&second);
    let c = p.cname("c", 1);
    p.wait_for("service c running", 30, || {
        p.env.run(&["container", "inspect", &c]).status.success()
            && p.inspect(&c, "{{.State.Status}}") == "running"
    });
    p.wait_for("a recreated", 30, || {
        p.env.run(&["container", "inspect", &a]).status.success() && p.id(&a) != a_id
    });
    assert_eq!(sh_in(&p, "a", 1, "echo $V").1, "2");
    p.wait_for("web recreated on its new port", 30, || {
        p.env.run(&["container", "inspect", &web_c]).status.success()
            && p.id(&web_c) != web_id
            && p.env.ok(&["container", "port", &web_c]).contains(&format!(":{port2}"))
    });
    assert_eq!(p.id(&b), b_id, "an untouched service was recreated");
    // An invalid edit: a message, nothing changed, the watch goes on.
    let a_id2 = p.id(&a);
    p.write("services:\n  a:\n    image: bb\n    ports: [\"not-a-port\"]\n");
    w.wait_output("compose file not applied", 30);
    assert_eq!(p.id(&a), a_id2);
    assert_eq!(p.id(&b), b_id);
    assert_eq!(p.inspect(&c, "{{.State.Status}}"), "running");
    // Watch rules still act.
    write(&p.path().join("src/f"), "still");
    wait_watched(
        &w,
        &p,
        "a",
        &[1],
        "a sync after the invalid edit",
        "test \"$(cat /src/f)\" = still",
    );
    // A service removed: its container goes, the others stay as they are.
    let third =
        format!("services:\n{}{}{}{}", svc("a", "2"), watch_rule, svc("b", "1"), web(port2));
    p.write(&third);
    p.wait_for("service c removed", 30, || {
        !p.env.run(&["container", "inspect", &c]).status.success()
    });
    assert_eq!(p.id(&a), a_id2);
    assert_eq!(p.id(&b), b_id);
    w.interrupt();
}

#[test]
fn watch_rebuild_recreates_only_that_service_and_a_failed_build_keeps_it_running() {
    let compose = format!(
        r#"services:
  web:
    build: .
    network_mode: none
    develop:
      watch:
        - path: ./src
          action: rebuild
        - path: ./Dockerfile
          action: rebuild
  other:
    image: bb
    command: {LONG}
    network_mode: none
"#
    );
    let Some(p) = Project::new("wreb", &compose) else { return };
    let dockerfile = format!("FROM bb\nCOPY src/ /src/\nCMD {LONG}\n");
    write(&p.path().join("Dockerfile"), &dockerfile);
    write(&p.path().join("src/v"), "1");
    let mut w = Bg::start(&p, &["watch"]);
    w.wait_output("Watch enabled", 120);
    let (web, other) = (p.cname("web", 1), p.cname("other", 1));
    let (web_id, other_id) = (p.id(&web), p.id(&other));
    assert_eq!(sh_in(&p, "web", 1, "cat /src/v").1, "1");
    write(&p.path().join("src/v"), "2");
    w.wait_output("service(s) [\"web\"] successfully built", 120);
    wait_watched(&w, &p, "web", &[1], "the rebuilt image's file", "test \"$(cat /src/v)\" = 2");
    assert_ne!(p.id(&web), web_id, "web was not recreated");
    assert_eq!(p.id(&other), other_id, "a service without the rule was recreated");
    // A build that fails: the message, and the running container stays.
    let web_id = p.id(&web);
    write(&p.path().join("Dockerfile"), &format!("FROM bb\nRUN exit 3\nCMD {LONG}\n"));
    w.wait_output("Build failed", 120);
    assert_eq!(p.id(&web), web_id);
    assert_eq!(p.inspect(&web, "{{.State.Status}}"), "running");
    w.interrupt();
}
