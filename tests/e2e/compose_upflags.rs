//! `up --wait` with one-shot services, `--attach-dependencies`, `--menu`.

use crate::compose_support::{LONG, Project};

#[test]
fn compose_up_wait_counts_finished_one_shots() {
    // web turns healthy once init has written its marker (its last act), so the wait sees
    // init finished rather than still running.
    let compose = |init: &str| {
        format!(
            r#"
services:
  init:
    image: bb
    network_mode: none
    volumes: ["v:/v"]
    command: ["sh", "-c", "echo migrated; touch /v/done; {init}"]
  web:
    image: bb
    network_mode: none
    volumes: ["v:/v"]
    command: {LONG}
    healthcheck:
      test: ["CMD", "test", "-f", "/v/done"]
      interval: 200ms
      start_interval: 100ms
volumes:
  v: {{}}
"#
        )
    };
    let Some(p) = Project::new("cwait", &compose("exit 0")) else { return };
    // No dependent waits for init's completion: compose would fail here; berth counts it done.
    p.ok(&["up", "-d", "--wait", "--wait-timeout", "30", "--menu=false"]);
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Health.Status}}"), "healthy");
    p.wait_for("init to exit", 10, || {
        p.inspect(&p.cname("init", 1), "{{.State.Status}}") == "exited"
    });
    assert_eq!(p.inspect(&p.cname("init", 1), "{{.State.ExitCode}}"), "0");

    // A one-shot that fails still fails the wait, naming the container.
    let Some(p) = Project::new("cwait2", &compose("exit 3")) else { return };
    let out = p.run(&["up", "-d", "--wait", "--wait-timeout", "30"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains(&format!("container {} exited (3)", p.cname("init", 1))), "{se}");
}

#[test]
fn compose_attached_up_attach_dependencies_and_menu() {
    let compose = r#"
services:
  db:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo db-line"]
  app:
    image: bb
    network_mode: none
    depends_on: [db]
    command: ["sh", "-c", "echo app-line"]
"#;
    let Some(p) = Project::new("cattach", compose) else { return };
    // Services named: only they are attached (compose), the dependency still starts.
    let (so, _) = p.ok(&["up", "--menu", "app"]);
    assert!(so.contains("app-1  | app-line"), "{so}");
    assert!(!so.contains("db-1"), "{so}");
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.ExitCode}}"), "0");
    // --attach-dependencies: the dependency's output too.
    let (so, _) = p.ok(&["up", "--attach-dependencies", "app"]);
    assert!(so.contains("app-1  | app-line") && so.contains("db-1   | db-line"), "{so}");
}
