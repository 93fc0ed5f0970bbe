//! Project lock (concurrent `up`s), attached `up`, an unhealthy dependency, image changes.

use crate::compose_support::{LONG, Project};

#[test]
fn compose_concurrent_ups_never_duplicate() {
    let compose = format!(
        "services:\n  a:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    scale: 3\n  b:\n    image: bb\n    network_mode: none\n    command: {LONG}\n"
    );
    let Some(p) = Project::new("lock", &compose) else { return };
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(|| p.run(&["up", "-d"]))).collect();
        hs.into_iter().map(|h| h.join().expect("up thread")).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        p.containers(),
        vec![p.cname("a", 1), p.cname("a", 2), p.cname("a", 3), p.cname("b", 1)]
    );
}

#[test]
fn compose_attached_up_streams_logs_until_exit() {
    let compose = r#"
services:
  one:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo first; echo second"]
  two:
    image: bb
    network_mode: none
    command: ["echo", "from two"]
  quiet:
    image: bb
    network_mode: none
    attach: false
    command: ["echo", "not shown"]
"#;
    let Some(p) = Project::new("attach", compose) else { return };
    let (so, _) = p.ok(&["up"]);
    assert!(so.contains("one-1  | first") && so.contains("one-1  | second"), "{so}");
    assert!(so.contains("two-1  | from two"), "{so}");
    assert!(!so.contains("not shown"), "attach: false is not streamed: {so}");
    let (so, _) = p.ok(&["up", "--no-attach", "one"]);
    assert!(!so.contains("one-1") && so.contains("two-1  | from two"), "{so}");
}

#[test]
fn compose_unhealthy_dependency_is_named() {
    let compose = format!(
        r#"
services:
  db:
    image: bb
    network_mode: none
    command: {LONG}
    healthcheck:
      test: ["CMD", "false"]
      interval: 100ms
      retries: 2
  app:
    image: bb
    network_mode: none
    command: {LONG}
    depends_on:
      db: {{condition: service_healthy}}
"#
    );
    let Some(p) = Project::new("unhealthy", &compose) else { return };
    let out = p.run(&["up", "-d"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!(
            "dependency failed to start: container {} is unhealthy",
            p.cname("db", 1)
        )),
        "{se}"
    );
    assert_eq!(p.containers(), vec![p.cname("db", 1)], "app never created");
}

#[test]
fn compose_missing_image_is_one_sentence() {
    // `pull_policy: never`: `up` would otherwise try Docker Hub (tests stay on loopback).
    let compose =
        "services:\n  x:\n    image: nosuchimage\n    pull_policy: never\n    network_mode: none\n";
    let Some(p) = Project::new("noimg", compose) else { return };
    let out = p.run(&["up", "-d"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(se.starts_with("service \"x\": image \"nosuchimage\" not found"), "{se}");
    assert_eq!(se.lines().count(), 1, "{se}");
}

#[test]
fn compose_attached_up_ctrl_c_stops_gracefully() {
    let compose =
        format!("services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("sigint", &compose) else { return };
    let child = std::process::Command::new(crate::support::berth_bin())
        .current_dir(p.path())
        .arg("--root")
        .arg(p.env.path())
        .args(["-p", &p.name, "up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth up");
    let running = || {
        let o =
            p.env.run(&["container", "inspect", "--format", "{{.State.Status}}", &p.cname("s", 1)]);
        String::from_utf8_lossy(&o.stdout).trim() == "running"
    };
    p.wait_for("the attached up to start s-1", 20, running);
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("wait berth up");
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{se}");
    assert!(se.contains("Gracefully stopping..."), "{se}");
    assert_eq!(p.inspect(&p.cname("s", 1), "{{.State.Status}}"), "exited");
}

#[test]
fn compose_wait_kill_rm() {
    let compose = format!(
        r#"
services:
  h:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 0.5; touch /tmp/ok; sleep 3600 & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 100ms
      retries: 100
  k:
    image: bb
    network_mode: none
    command: {LONG}
"#
    );
    let Some(p) = Project::new("wait", &compose) else { return };
    p.ok(&["up", "-d", "--wait", "--wait-timeout", "30"]);
    assert_eq!(p.inspect(&p.cname("h", 1), "{{.State.Health.Status}}"), "healthy");
    p.ok(&["kill", "-s", "SIGTERM", "k"]);
    p.wait_for("k to exit", 10, || p.inspect(&p.cname("k", 1), "{{.State.Status}}") == "exited");
    p.ok(&["rm", "k"]);
    assert_eq!(p.containers(), vec![p.cname("h", 1)]);
    p.ok(&["rm", "-s", "-v"]);
    assert!(p.containers().is_empty());
}

#[test]
fn compose_down_by_project_name_without_file() {
    let compose =
        format!("services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("nofile", &compose) else { return };
    p.ok(&["up", "-d"]);
    std::fs::remove_file(p.path().join("compose.yaml")).expect("remove compose.yaml");
    let (so, _) = p.ok(&["ps"]);
    assert!(so.contains(&p.cname("s", 1)), "{so}");
    let (_, se) = p.ok(&["down", "-t", "2"]);
    assert!(se.contains(&format!(" Container {}  Removed", p.cname("s", 1))), "{se}");
    assert!(p.containers().is_empty());
}

#[test]
fn compose_refused_recreate_keeps_old_container() {
    let ok =
        format!("services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("refused", &ok) else { return };
    p.ok(&["up", "-d"]);
    let id = p.id(&p.cname("s", 1));
    p.write(&format!("{ok}    user: nosuchuser\n"));
    let out = p.run(&["up", "-d"]);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{se}");
    assert!(se.contains("nosuchuser"), "{se}");
    assert_eq!(p.id(&p.cname("s", 1)), id, "old container kept");
    assert_eq!(p.inspect(&p.cname("s", 1), "{{.State.Status}}"), "running");
    assert_eq!(p.containers(), vec![p.cname("s", 1)], "no temporary container left");
}

#[test]
fn compose_interrupted_recreate_leftover_is_cleaned() {
    let ok =
        format!("services:\n  s:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("leftover", &ok) else { return };
    p.ok(&["up", "-d"]);
    // As if a recreate died after removing the old container, before its rename.
    let tmp = format!("0123456789ab_{}", p.cname("s", 1));
    p.env.ok(&["container", "rename", &p.cname("s", 1), &tmp]);
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers(), vec![p.cname("s", 1)]);
    assert_eq!(p.inspect(&p.cname("s", 1), "{{.State.Status}}"), "running");
}

#[test]
fn compose_abort_on_container_exit_and_exit_code_from() {
    let compose = format!(
        r#"
services:
  long:
    image: bb
    network_mode: none
    command: {LONG}
  test:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo testing; exit 4"]
"#
    );
    let Some(p) = Project::new("abort", &compose) else { return };
    let out = p.run(&["up", "--exit-code-from", "test", "-t", "2"]);
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{so}\n{se}");
    assert!(so.contains("test-1  | testing"), "{so}");
    assert!(se.contains("Aborting on container exit..."), "{se}");
    assert_eq!(p.inspect(&p.cname("long", 1), "{{.State.Status}}"), "exited");
    let out = p.run(&["up", "--abort-on-container-exit", "-t", "2"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn compose_optional_dependency_failure_only_warns() {
    let compose = format!(
        r#"
services:
  setup:
    image: bb
    network_mode: none
    command: ["sh", "-c", "exit 2"]
  app:
    image: bb
    network_mode: none
    command: {LONG}
    depends_on:
      setup: {{condition: service_completed_successfully, required: false}}
"#
    );
    let Some(p) = Project::new("optional", &compose) else { return };
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("didn't complete successfully: exit 2"), "{se}");
    assert_eq!(p.inspect(&p.cname("app", 1), "{{.State.Status}}"), "running");
}

#[test]
fn compose_named_service_enables_its_profile() {
    let compose = format!(
        "services:\n  a:\n    image: bb\n    network_mode: none\n    command: {LONG}\n  dbg:\n    image: bb\n    network_mode: none\n    command: {LONG}\n    profiles: [debug]\n"
    );
    let Some(p) = Project::new("profiles", &compose) else { return };
    p.ok(&["up", "-d"]);
    assert_eq!(p.containers(), vec![p.cname("a", 1)]);
    p.ok(&["up", "-d", "dbg"]);
    assert_eq!(p.containers(), vec![p.cname("a", 1), p.cname("dbg", 1)]);
    // A plain `up` leaves the profiled service alone: not an orphan.
    let (_, se) = p.ok(&["up", "-d", "--remove-orphans"]);
    assert!(!se.contains("orphan"), "{se}");
    assert_eq!(p.containers().len(), 2);
    p.ok(&["stop", "-t", "2", "dbg"]);
    assert_eq!(p.inspect(&p.cname("dbg", 1), "{{.State.Status}}"), "exited");
    p.ok(&["down"]);
    assert!(p.containers().is_empty(), "down removes the profiled service's container too");
}

#[test]
fn compose_down_rmi_removes_service_images_but_not_used_ones() {
    let svc = |name: &str, image: &str| {
        format!("  {name}:\n    image: {image}\n    network_mode: none\n    command: {LONG}\n")
    };
    let compose = format!(
        "services:\n{}{}{}",
        svc("own", "rmi-own:1"),
        svc("tag", "rmi-tag:1"),
        svc("used", "rmi-used:1")
    );
    let Some(p) = Project::new("rmi", &compose) else { return };
    // Two images of their own (a changed config gives a new id) and a second tag of bb.
    let tar = p.env.path().join("bb.tar");
    let tar = tar.to_str().expect("utf-8 path");
    p.env.ok(&["image", "import", "-c", "ENV RMI=own", tar, "rmi-own:1"]);
    p.env.ok(&["image", "import", "-c", "ENV RMI=used", tar, "rmi-used:1"]);
    p.env.ok(&["image", "tag", "bb:latest", "rmi-tag:1"]);
    // A container outside the project keeps rmi-used:1 in use.
    let outside = berth_testsupport::unique_name("rmi-outside");
    p.env.ok(&["container", "create", "--name", &outside, "rmi-used:1", "true"]);
    let exists = |image: &str| p.env.run(&["image", "inspect", image]).status.success();

    p.ok(&["up", "-d"]);
    let (_, se) = p.ok(&["down", "-t", "1", "--rmi", "local"]);
    assert!(!se.contains(" Image "), "local: every service names its image: {se}");
    assert!(exists("rmi-own:1") && exists("rmi-tag:1") && exists("rmi-used:1"));

    p.ok(&["up", "-d"]);
    let (_, se) = p.ok(&["down", "-t", "1", "--rmi", "all"]);
    assert!(se.contains(" Image rmi-own:1  Removed"), "{se}");
    assert!(se.contains(" Image rmi-tag:1  Removed"), "{se}");
    assert!(se.contains(" Image rmi-used:1  Resource is still in use"), "{se}");
    assert!(!exists("rmi-own:1") && !exists("rmi-tag:1"));
    // The untagged image's other name and the image in use stay.
    assert!(exists("bb:latest") && exists("rmi-used:1"));
    assert!(p.containers().is_empty());
    p.env.ok(&["container", "rm", &outside]);
}
