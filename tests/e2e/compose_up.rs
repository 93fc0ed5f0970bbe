//! `berth up` / `down`: dependency order, idempotence, selective recreate, scale, orphans,
//! depends_on conditions, named volumes, dry run.

use crate::compose_support::{LONG, Project};

fn three_services(extra_env: &str) -> String {
    format!(
        r#"
services:
  db:
    image: bb
    network_mode: none
    command: {LONG}
  api:
    image: bb
    network_mode: none
    command: {LONG}
    depends_on: [db]
  web:
    image: bb
    network_mode: none
    command: {LONG}
    environment:
      MODE: "{extra_env}"
    depends_on: [api]
"#
    )
}

#[test]
fn compose_up_order_idempotent_and_selective_recreate() {
    let Some(p) = Project::new("order", &three_services("a")) else { return };
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains(&format!(" Container {}  Started", p.cname("web", 1))), "{se}");
    // Started in dependency order: db, then api, then web.
    let started = |s: &str| p.inspect(&p.cname(s, 1), "{{.State.StartedAt}}");
    let (db, api, web) = (started("db"), started("api"), started("web"));
    assert!(db <= api && api <= web, "start order db={db} api={api} web={web}");
    let ids = |p: &Project| -> Vec<String> {
        ["db", "api", "web"].iter().map(|s| p.id(&p.cname(s, 1))).collect()
    };
    let before = ids(&p);

    // No change: nothing is recreated.
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("Running"), "{se}");
    assert_eq!(ids(&p), before);

    // One service changed: only it is recreated.
    p.write(&three_services("b"));
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains(&format!(" Container {}  Recreate", p.cname("web", 1))), "{se}");
    let after = ids(&p);
    assert_eq!(after[..2], before[..2], "db and api kept");
    assert_ne!(after[2], before[2], "web recreated");
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "running");

    // --force-recreate recreates everything.
    p.ok(&["up", "-d", "--force-recreate"]);
    let forced = ids(&p);
    assert!(forced.iter().zip(&after).all(|(a, b)| a != b), "all recreated");
}

#[test]
fn compose_scale_up_down_fills_gaps() {
    let compose = format!(
        "services:\n  w:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    scale: 2\n"
    );
    let Some(p) = Project::new("scale", &compose) else { return };
    // `create` makes the containers without starting them; `up` (one action at a time) starts them.
    p.ok(&["create"]);
    assert_eq!(p.inspect(&p.cname("w", 2), "{{.State.Status}}"), "created");
    p.ok(&["--parallel", "1", "up", "-d"]);
    assert_eq!(p.containers(), vec![p.cname("w", 1), p.cname("w", 2)]);
    assert_eq!(p.inspect(&p.cname("w", 2), "{{.State.Status}}"), "running");
    p.ok(&["up", "-d", "--scale", "w=4"]);
    assert_eq!(p.containers().len(), 4);
    let first = p.id(&p.cname("w", 1));
    // Scaling down removes the highest numbers first.
    p.ok(&["up", "-d", "--scale", "w=2"]);
    assert_eq!(p.containers(), vec![p.cname("w", 1), p.cname("w", 2)]);
    assert_eq!(p.id(&p.cname("w", 1)), first, "kept replicas are not recreated");
    // A gap (number 1 removed by hand) is filled first.
    p.env.ok(&["container", "rm", "--force", &p.cname("w", 1)]);
    p.ok(&["up", "-d", "--scale", "w=3"]);
    assert_eq!(p.containers(), vec![p.cname("w", 1), p.cname("w", 2), p.cname("w", 3)]);
}

#[test]
fn compose_orphans_removed_with_flag() {
    let two = format!(
        "services:\n  a:\n    image: bb\n    network_mode: none\n    command: {LONG}\n  b:\n    image: bb\n    network_mode: none\n    command: {LONG}\n"
    );
    let Some(p) = Project::new("orphans", &two) else { return };
    p.ok(&["up", "-d"]);
    let one =
        format!("services:\n  a:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    p.write(&one);
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("Found orphan containers") && se.contains(&p.cname("b", 1)), "{se}");
    assert_eq!(p.containers().len(), 2, "orphan kept without the flag");
    p.ok(&["up", "-d", "--remove-orphans"]);
    assert_eq!(p.containers(), vec![p.cname("a", 1)]);
}

#[test]
fn compose_depends_on_conditions() {
    let compose = format!(
        r#"
services:
  init:
    image: bb
    network_mode: none
    command: ["sh", "-c", "sleep 0.3; exit 0"]
  db:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1; touch /tmp/ready; sleep 3600 & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 200ms
      retries: 30
  app:
    image: bb
    network_mode: none
    command: {LONG}
    depends_on:
      init: {{condition: service_completed_successfully}}
      db: {{condition: service_healthy}}
"#
    );
    let Some(p) = Project::new("cond", &compose) else { return };
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("Healthy") && se.contains("Exited"), "{se}");
    let app_started = p.inspect(&p.cname("app", 1), "{{.State.StartedAt}}");
    let init_finished = p.inspect(&p.cname("init", 1), "{{.State.FinishedAt}}");
    assert!(init_finished <= app_started, "app started after init completed");
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.Health.Status}}"), "healthy");

    // `start` after `stop` waits on the same conditions.
    p.ok(&["stop", "-t", "2"]);
    let (_, se) = p.ok(&["start"]);
    assert!(se.contains("Healthy") && se.contains("Exited"), "{se}");
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.Health.Status}}"), "healthy");
    assert_eq!(p.inspect(&p.cname("app", 1), "{{.State.Status}}"), "running");

    // A failing dependency stops the plan and is named.
    let failing = r#"
services:
  init:
    image: bb
    network_mode: none
    command: ["sh", "-c", "exit 3"]
  app:
    image: bb
    network_mode: none
    command: ["sleep", "1"]
    depends_on:
      init: {condition: service_completed_successfully}
"#;
    p.ok(&["down", "-t", "2"]);
    p.write(failing);
    let out = p.run(&["up", "-d"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("service \"init\" didn't complete successfully: exit 3"), "{se}");
    // The dependent was never created; a second `up` fails the same way, `down` cleans.
    assert_eq!(p.containers(), vec![p.cname("init", 1)]);
    let again = p.run(&["up", "-d"]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn compose_named_volume_survives_down_until_v() {
    let compose = format!(
        "services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    volumes: [data:/data]\nvolumes:\n  data: {{}}\n"
    );
    let Some(p) = Project::new("vol", &compose) else { return };
    p.ok(&["up", "-d"]);
    let vol = format!("{}_data", p.name);
    let labels = p.env.ok(&["volume", "inspect", &vol]);
    assert!(labels.contains("com.docker.compose.volume"), "{labels}");
    p.ok(&["exec", "-T", "s", "sh", "-c", "echo kept > /data/f"]);
    p.ok(&["down"]);
    assert!(p.env.ok(&["volume", "ls", "-q"]).contains(&vol));
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["exec", "-T", "s", "cat", "/data/f"]);
    assert_eq!(so.trim(), "kept");
    p.ok(&["down", "-v"]);
    assert!(!p.env.ok(&["volume", "ls", "-q"]).contains(&vol), "volume removed by down -v");
}

#[test]
fn compose_dry_run_changes_nothing() {
    let Some(p) = Project::new("dry", &three_services("x")) else { return };
    let (_, se) = p.ok(&["--dry-run", "up", "-d"]);
    assert!(se.contains("DRY-RUN MODE"), "{se}");
    assert!(p.containers().is_empty(), "dry run created containers");
    p.ok(&["up", "-d"]);
    let id = p.id(&p.cname("db", 1));
    p.ok(&["--dry-run", "down"]);
    assert_eq!(p.id(&p.cname("db", 1)), id);
    assert_eq!(p.inspect(&p.cname("db", 1), "{{.State.Status}}"), "running");
}

#[test]
fn compose_recreate_keeps_anonymous_volume_data() {
    let file = |v: &str| {
        format!(
            "services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    environment:\n      V: \"{v}\"\n    volumes: [/data]\n"
        )
    };
    let Some(p) = Project::new("anon", &file("1")) else { return };
    p.ok(&["up", "-d"]);
    p.ok(&["exec", "-T", "s", "sh", "-c", "echo kept > /data/f"]);
    let id = p.id(&p.cname("s", 1));
    p.write(&file("2"));
    p.ok(&["up", "-d"]);
    assert_ne!(p.id(&p.cname("s", 1)), id, "recreated");
    let (so, _) = p.ok(&["exec", "-T", "s", "cat", "/data/f"]);
    assert_eq!(so, "kept\n");
    // The Drop guard's `down -v` asserts the carried volume is removed too.
}

#[test]
fn compose_down_then_up_reuses_container_directories_clean() {
    let compose = "services:\n  a:\n    image: bb\n    network_mode: none\n    command: [\"sh\", \"-c\", \"test -e /marker && echo stale; touch /marker; echo started; trap 'exit 0' TERM; sleep 3600 & wait\"]\n";
    let Some(p) = Project::new("pool", compose) else { return };
    let containers = p.env.path().join("containers");
    let ino = |id: &str| crate::support::inode(&containers.join(id));
    let logs = || p.ok(&["logs", "--no-log-prefix", "a"]).0;
    p.ok(&["up", "-d"]);
    p.wait_for("the first container's output", 10, || logs().contains("started"));
    let first = p.id(&p.cname("a", 1));
    let first_ino = ino(&first);
    p.ok(&["down", "-t", "2"]);
    // Kept as a pool entry, which no listing shows.
    assert!(containers.join(format!(".free-{first}")).is_dir());
    assert!(p.containers().is_empty());
    assert_eq!(p.env.ok(&["container", "ls", "-a", "-q"]).trim(), "");

    p.ok(&["up", "-d"]);
    p.wait_for("the second container's output", 10, || logs().contains("started"));
    let second = p.id(&p.cname("a", 1));
    assert_ne!(second, first);
    assert_eq!(ino(&second), first_ino, "the directory was reused");
    // Nothing of the first container: its file, its log, its state.
    assert_eq!(logs(), "started\n");
    assert_eq!(p.containers(), vec![p.cname("a", 1)]);
    assert_eq!(
        p.inspect(&p.cname("a", 1), "{{.State.Status}} {{.RestartCount}} {{.Config.Hostname}}"),
        format!("running 0 {}", &second[..12])
    );
    assert_eq!(p.env.ok(&["container", "ls", "-a", "-q"]).lines().count(), 1);
}
