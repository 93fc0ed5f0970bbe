//! `up` flags: `--wait` with one-shots, `--attach-dependencies`, `--menu`, `--abort-on-container-failure`, `--no-log-prefix`, `--no-color`, `-V`, `--always-recreate-deps`; `logs --index`.

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

    // A one-shot that fails still fails the wait, naming the container. It writes no marker,
    // so web never turns healthy and the wait can only end on init's failure (with the marker,
    // a loaded machine could see web healthy while init had yet to exit, and succeed).
    let failing = compose("exit 3").replace("touch /v/done; ", "");
    let Some(p) = Project::new("cwait2", &failing) else { return };
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

#[test]
fn compose_abort_on_container_failure_prefix_and_color_flags() {
    // `bad` starts only after `ok` exited 0, so a successful exit provably doesn't abort.
    let compose = format!(
        r#"
services:
  long:
    image: bb
    network_mode: none
    command: {LONG}
  ok:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo fine; exit 0"]
  bad:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo failing; exit 3"]
    depends_on:
      ok: {{condition: service_completed_successfully}}
"#
    );
    let Some(p) = Project::new("abortfail", &compose) else { return };
    let out = p.run(&[
        "--ansi",
        "always",
        "up",
        "--abort-on-container-failure",
        "--no-log-prefix",
        "--no-color",
        "-t",
        "2",
    ]);
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{so}\n{se}");
    assert!(so.lines().any(|l| l == "failing"), "no prefix: {so}");
    assert!(!so.contains('\x1b'), "no colour: {so:?}");
    assert_eq!(p.inspect(&p.cname("long", 1), "{{.State.Status}}"), "exited");
    assert_eq!(p.inspect(&p.cname("ok", 1), "{{.State.ExitCode}}"), "0");
}

#[test]
fn compose_renew_anon_volumes_and_always_recreate_deps() {
    let compose = |tag: &str| {
        format!(
            r#"
services:
  db:
    image: bb
    network_mode: none
    command: {LONG}
  app:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; echo {tag}; sleep 3600 & wait"]
    volumes: ["/data"]
    depends_on: [db]
"#
        )
    };
    let Some(p) = Project::new("renew", &compose("one")) else { return };
    p.ok(&["up", "-d"]);
    p.ok(&["exec", "-T", "app", "sh", "-c", "echo kept > /data/f"]);
    // A plain recreate carries the anonymous volume over ...
    p.write(&compose("two"));
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["exec", "-T", "app", "cat", "/data/f"]);
    assert_eq!(so.trim(), "kept");
    // ... -V gives the new container a fresh one.
    p.write(&compose("three"));
    p.ok(&["up", "-d", "-V"]);
    let out = p.run(&["exec", "-T", "app", "cat", "/data/f"]);
    assert!(!out.status.success(), "the old anonymous volume must not be reused");
    // --always-recreate-deps recreates the named service's unchanged dependencies only.
    let (db, app) = (p.id(&p.cname("db", 1)), p.id(&p.cname("app", 1)));
    p.ok(&["up", "-d", "app"]);
    assert_eq!(p.id(&p.cname("db", 1)), db);
    p.ok(&["up", "-d", "--always-recreate-deps", "app"]);
    assert_ne!(p.id(&p.cname("db", 1)), db, "dependency recreated");
    assert_eq!(p.id(&p.cname("app", 1)), app, "unchanged named service kept");
    let (vols, _) = p.ok(&["ps", "-q"]);
    assert_eq!(vols.lines().count(), 2);
}

#[test]
fn compose_logs_index_selects_one_replica() {
    let compose = r#"
services:
  w:
    image: bb
    network_mode: none
    scale: 2
    command: ["sh", "-c", "echo I am $$(hostname); trap 'exit 0' TERM; sleep 3600 & wait"]
"#;
    let Some(p) = Project::new("logidx", compose) else { return };
    p.ok(&["up", "-d"]);
    let id2 = p.id(&p.cname("w", 2));
    p.wait_for("both replicas logged", 10, || {
        p.ok(&["logs", "w"]).0.lines().filter(|l| l.contains("I am")).count() == 2
    });
    let (so, _) = p.ok(&["logs", "--index", "2", "--no-log-prefix", "w"]);
    assert_eq!(so.trim(), format!("I am {}", &id2[..12]));
}
