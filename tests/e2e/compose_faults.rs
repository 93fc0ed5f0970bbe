//! Interrupted `up`/`down` (the CLI killed with SIGKILL) converge on the next run; command-line
//! mistakes name the service and what to do.

use std::process::{Child, Stdio};

use crate::compose_support::{LONG, Project};

/// A background berth CLI, killed (SIGKILL) when dropped so a failing test leaves no CLI behind.
struct Background(Child);

impl Background {
    /// SIGKILLs the CLI and reaps it.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `berth ARGS` for the project in the background.
fn spawn(p: &Project, args: &[&str]) -> Background {
    let child =
        p.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn berth");
    Background(child)
}

/// Running containers of the project, by name.
fn running(p: &Project) -> Vec<String> {
    let (so, _) = p.ok(&["ps", "--status", "running", "--format", "json"]);
    let mut v: Vec<String> = so
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("ps json")["Name"].to_string())
        .map(|n| n.trim_matches('"').to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn compose_killed_up_and_down_converge_on_rerun() {
    // `up` blocks on `gate` becoming healthy, which only happens once the test creates
    // /tmp/ready in it: the CLI is killed while it provably waits there.
    let compose = format!(
        r#"
services:
  gate:
    image: bb
    network_mode: none
    command: {LONG}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 100ms
      retries: 1000
  a:
    image: bb
    network_mode: none
    command: {LONG}
    scale: 2
    depends_on:
      gate:
        condition: service_healthy
  b:
    image: bb
    network_mode: none
    command: {LONG}
    depends_on: [a]
  stubborn:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
    stop_grace_period: 60s
"#
    );
    let Some(p) = Project::new("killed", &compose) else { return };
    let mut up = spawn(&p, &["up", "-d"]);
    p.wait_for("gate running while up waits on it", 20, || {
        running(&p).contains(&p.cname("gate", 1))
    });
    up.kill();
    assert!(!p.containers().contains(&p.cname("b", 1)), "b must not exist before gate is healthy");
    p.ok(&["exec", "-T", "gate", "touch", "/tmp/ready"]);
    p.ok(&["up", "-d"]);
    let all = vec![
        p.cname("a", 1),
        p.cname("a", 2),
        p.cname("b", 1),
        p.cname("gate", 1),
        p.cname("stubborn", 1),
    ];
    assert_eq!(p.containers(), all, "one container per replica after the rerun");
    assert_eq!(running(&p), all);
    let gate_id = p.id(&p.cname("gate", 1));

    // `down` waits up to 60 s for `stubborn` (it ignores SIGTERM): kill it while it does.
    let mut down = spawn(&p, &["down"]);
    p.wait_for("every other container removed by down", 30, || {
        p.containers() == vec![p.cname("stubborn", 1)]
    });
    down.kill();
    p.ok(&["down", "-t", "1"]);
    assert!(p.containers().is_empty());
    p.env.assert_no_leftovers(&gate_id);
}

#[test]
fn compose_unknown_service_and_exec_into_stopped_service_say_what_to_do() {
    let compose =
        format!("services:\n  web:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("mistakes", &compose) else { return };
    for args in [&["up", "-d", "nosuch"][..], &["logs", "nosuch"], &["restart", "nosuch"]] {
        let out = p.run(args);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no such service: nosuch"), "{args:?}: {err}");
    }
    p.ok(&["up", "-d"]);
    p.ok(&["stop", "-t", "1", "web"]);
    let out = p.run(&["exec", "-T", "web", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"web\" is not running") && err.contains("berth up -d web"), "{err}");
}
