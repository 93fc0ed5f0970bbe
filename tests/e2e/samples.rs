//! The stacks in samples/ end to end: each is copied into its own project directory, brought up
//! in its own state root under a unique project name (`-p`) with its published port moved to a
//! free one, checked through HTTP bodies, DNS, volume files and exit codes, and taken down with
//! `down -v` (the Project guard then asserts nothing is left).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::compose_support::Project;
use crate::support::{free_port, http_body as get};

/// `ps -a --format json` rows.
fn ps(p: &Project) -> Vec<serde_json::Value> {
    let (so, _) = p.ok(&["ps", "-a", "--format", "json"]);
    so.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("ps json"))
        .collect()
}

#[test]
fn sample_hello_serves_what_init_wrote() {
    let port = free_port();
    let Some(p) = Project::sample("smphello", "hello", &[("HELLO_PORT", port.to_string())]) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let body = get(port, "/");
    assert!(body.starts_with("hello from berth, written by "), "{body}");
    let rows = ps(&p);
    let init = rows.iter().find(|r| r["Service"] == "init").expect("init row");
    assert_eq!(init["ExitCode"], 0, "{init}");
    p.ok(&["down", "-v"]);
}

#[test]
fn sample_web_static_serves_the_site_folder() {
    let port = free_port();
    let Some(p) = Project::sample("smpweb", "web-static", &[("WEB_PORT", port.to_string())]) else {
        return;
    };
    p.ok(&["up", "-d"]);
    let want = std::fs::read_to_string(p.path().join("site/index.html")).expect("index.html");
    assert_eq!(get(port, "/"), want);
    let (so, _) = p.ok(&["port", "web", "80"]);
    assert_eq!(so.trim(), format!("127.0.0.1:{port}"));
    p.ok(&["down", "-v"]);
}

#[test]
fn sample_visit_counter_keeps_its_count_until_down_v() {
    let port = free_port();
    let Some(p) =
        Project::sample("smpvisit", "visit-counter", &[("COUNTER_PORT", port.to_string())])
    else {
        return;
    };
    p.ok(&["up", "-d"]);
    // web asks db by service name over TCP; db may still be starting its listener.
    assert!(get(port, "/cgi-bin/visit").contains("visits: 1"));
    assert!(get(port, "/cgi-bin/visit").contains("visits: 2"));
    // The count lives in the named volume: it survives down/up ...
    p.ok(&["down"]);
    p.ok(&["up", "-d"]);
    assert!(get(port, "/cgi-bin/visit").contains("visits: 3"));
    let (so, _) = p.ok(&["exec", "-T", "db", "cat", "/data/count"]);
    assert_eq!(so.trim(), "3");
    // ... and is gone after down -v.
    p.ok(&["down", "-v"]);
    p.ok(&["up", "-d"]);
    assert!(get(port, "/cgi-bin/visit").contains("visits: 1"));
    p.ok(&["down", "-v"]);
}

/// The container id of `service`'s first replica.
fn cid(p: &Project, service: &str) -> String {
    let (so, _) = p.ok(&["ps", "-q", service]);
    so.trim().to_string()
}

#[test]
fn sample_visit_counter_up_build_recreates_only_the_edited_service() {
    let port = free_port();
    let Some(p) =
        Project::sample("smpbuild", "visit-counter", &[("COUNTER_PORT", port.to_string())])
    else {
        return;
    };
    // `up` builds the missing web image from app/Dockerfile.
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.contains("Service web  Built"), "{se}");
    assert_eq!(get(port, "/"), "visit counter: see /cgi-bin/visit\n");
    assert!(get(port, "/cgi-bin/visit").contains("visits: 1"));
    let (db, web) = (cid(&p, "db"), cid(&p, "web"));
    // Nothing changed: every step cached, nothing recreated.
    let (_, se) = p.ok(&["up", "-d", "--build"]);
    assert_eq!(se.matches(" CACHED\n").count(), 2, "{se}");
    assert_eq!((cid(&p, "db"), cid(&p, "web")), (db.clone(), web.clone()));
    // db.sh is .dockerignored in the web image: editing it rebuilds nothing.
    let dbsh = p.path().join("app/db.sh");
    let text = std::fs::read_to_string(&dbsh).expect("db.sh");
    std::fs::write(&dbsh, format!("{text}\n")).expect("edit db.sh");
    p.ok(&["up", "-d", "--build"]);
    assert_eq!(cid(&p, "web"), web);
    // An edit of the site: web is rebuilt and recreated, db is untouched.
    std::fs::write(p.path().join("app/www/index.html"), "edited\n").expect("edit index.html");
    p.ok(&["up", "-d", "--build"]);
    assert_eq!(cid(&p, "db"), db);
    assert_ne!(cid(&p, "web"), web);
    assert_eq!(get(port, "/"), "edited\n");
    assert!(get(port, "/cgi-bin/visit").contains("visits: 2"));
    // --no-build with the image gone is the planner's clear error.
    p.ok(&["down", "-v", "--rmi", "local"]);
    let out = p.run(&["up", "-d", "--no-build"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    p.ok(&["down", "-v"]);
}

#[test]
fn sample_health_chain_starts_in_order_when_healthy() {
    let port = free_port();
    let Some(p) = Project::sample("smphealth", "health-chain", &[("CHAIN_PORT", port.to_string())])
    else {
        return;
    };
    // up returns once web started, which needs api healthy, which needs db healthy.
    p.ok(&["up", "-d"]);
    assert_eq!(get(port, "/"), "chain-ok\n");
    let rows = ps(&p);
    for svc in ["db", "api"] {
        let row = rows.iter().find(|r| r["Service"] == svc).expect("service row");
        assert_eq!(row["Health"], "healthy", "{row}");
    }
    p.ok(&["down", "-v"]);
}

#[test]
fn sample_migrate_runs_once_before_the_app() {
    let port = free_port();
    let Some(p) = Project::sample("smpmig", "migrate", &[("MIGRATE_PORT", port.to_string())])
    else {
        return;
    };
    p.ok(&["up", "-d"]);
    assert_eq!(get(port, "/"), "schema v2\n");
    let rows = ps(&p);
    let m = rows.iter().find(|r| r["Service"] == "migrate").expect("migrate row");
    assert_eq!((m["State"].as_str(), m["ExitCode"].as_i64()), (Some("exited"), Some(0)), "{m}");
    let (so, _) = p.ok(&["exec", "-T", "app", "cat", "/data/migrations.log"]);
    assert_eq!(so.lines().count(), 1, "{so}");
    p.ok(&["down", "-v"]);
}

#[test]
fn sample_worker_pool_round_robins_over_three_replicas() {
    let port = free_port();
    let Some(p) = Project::sample("smppool", "worker-pool", &[("POOL_PORT", port.to_string())])
    else {
        return;
    };
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["exec", "-T", "front", "nslookup", "worker"]);
    let addrs = so.lines().filter(|l| l.starts_with("Address: ")).count();
    assert_eq!(addrs, 3, "{so}");
    // Each request resolves `worker` again; the DNS rotates the order, so every replica answers.
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "only {seen:?} answered");
        seen.insert(get(port, "/cgi-bin/ask").trim().to_string());
    }
    p.ok(&["down", "-v"]);
}
