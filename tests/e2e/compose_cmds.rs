//! `ps`, `logs`, `exec`, `stop`/`start`, `ls`, `scale`, `version` on a running project.

use crate::compose_support::{LONG, Project};

const COMPOSE: &str = r#"
services:
  web:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; echo hello from web; sleep 3600 & wait"]
  worker:
    image: bb
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; echo line1; echo line2; sleep 3600 & wait"]
"#;

#[test]
fn compose_ps_logs_exec_stop_start_ls() {
    let Some(p) = Project::new("cmds", COMPOSE) else { return };
    p.ok(&["up", "-d"]);

    // ps --format json: one object per line with compose's fields.
    let (so, _) = p.ok(&["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> =
        so.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(rows.len(), 2, "{so}");
    let web = rows.iter().find(|r| r["Service"] == "web").expect("web row");
    assert_eq!(web["Name"], p.cname("web", 1));
    assert_eq!(web["Project"], p.name.as_str());
    assert_eq!(web["State"], "running");
    assert_eq!(web["Image"], "bb");
    assert_eq!(web["ExitCode"], 0);
    assert!(web["ID"].as_str().is_some_and(|s| s.len() == 64));
    assert!(web["Status"].as_str().is_some_and(|s| s.starts_with("Up")));
    let (so, _) = p.ok(&["ps", "--services"]);
    assert_eq!(so, "web\nworker\n");

    // logs: prefixed per container; --no-log-prefix and --tail.
    p.wait_for("worker output", 10, || p.ok(&["logs", "worker"]).0.contains("line2"));
    let (so, _) = p.ok(&["logs"]);
    assert!(so.contains("web-1     | hello from web"), "{so}");
    assert!(so.contains("worker-1  | line1"), "{so}");
    let (so, _) = p.ok(&["logs", "--no-log-prefix", "--tail", "1", "worker"]);
    assert_eq!(so, "line2\n");
    let (so, _) = p.ok(&["--ansi", "always", "logs", "worker"]);
    assert!(so.starts_with("\x1b[36mworker-1  |\x1b[0m line1"), "{so:?}");

    // exec: output and exit code.
    let (so, _) =
        p.ok(&["exec", "-T", "-e", "X=42", "-w", "/tmp", "web", "sh", "-c", "echo $X $PWD"]);
    assert_eq!(so, "42 /tmp\n");
    let out = p.run(&["exec", "-T", "web", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    // ls lists the project.
    let (so, _) = p.ok(&["ls", "--format", "json"]);
    assert!(so.contains(&format!("\"Name\":\"{}\"", p.name)) && so.contains("running(2)"), "{so}");
    let (so, _) = p.ok(&["ls", "-q", "--filter", &format!("name={}", &p.name[1..])]);
    assert_eq!(so.trim(), p.name);
    let (so, _) = p.ok(&["ls", "-q", "--filter", "name=no-such-project-name"]);
    assert_eq!(so.trim(), "");

    // stop / start keep the same containers.
    let id = p.id(&p.cname("web", 1));
    let (_, se) = p.ok(&["stop", "-t", "2", "web"]);
    assert!(se.contains(&format!(" Container {}  Stopped", p.cname("web", 1))), "{se}");
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "exited");
    assert_eq!(p.inspect(&p.cname("worker", 1), "{{.State.Status}}"), "running");
    let (so, _) = p.ok(&["ps", "-q"]);
    assert_eq!(so.lines().count(), 1);
    let (so, _) = p.ok(&["ps", "--filter", "status=exited", "--format", "json"]);
    assert!(so.lines().count() == 1 && so.contains("\"Service\":\"web\""), "{so}");
    p.ok(&["start"]);
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "running");
    assert_eq!(p.id(&p.cname("web", 1)), id);

    // progress as JSON: one object per event.
    let (_, se) = p.ok(&["--progress", "json", "restart", "-t", "2", "worker"]);
    let ev: serde_json::Value =
        serde_json::from_str(se.lines().last().expect("event")).expect("json");
    assert_eq!(ev["id"], format!("Container {}", p.cname("worker", 1)));
    assert_eq!(ev["status"], "Started");
}

#[test]
fn compose_pause_unpause_top_logs_since() {
    let Some(p) = Project::new("pause", COMPOSE) else { return };
    p.ok(&["up", "-d"]);
    let (_, se) = p.ok(&["pause", "web"]);
    assert!(se.contains(&format!(" Container {}  Paused", p.cname("web", 1))), "{se}");
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "paused");
    p.ok(&["unpause"]);
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "running");
    let (so, _) = p.ok(&["top", "worker"]);
    assert!(
        so.starts_with(&format!("{}\n", p.cname("worker", 1))) && so.contains("sleep 3600"),
        "{so}"
    );
    p.wait_for("worker output", 10, || p.ok(&["logs", "worker"]).0.contains("line2"));
    let (so, _) = p.ok(&["logs", "--since", "1h", "worker"]);
    assert!(so.contains("line1"), "{so}");
    let (so, _) = p.ok(&["logs", "--until", "1h", "worker"]);
    assert_eq!(so, "", "nothing is older than an hour");
}

#[test]
fn compose_images_and_wait() {
    let compose = r#"
services:
  job:
    image: bb
    network_mode: none
    command: ["sh", "-c", "sleep 0.5; exit 5"]
"#;
    let Some(p) = Project::new("imgwait", compose) else { return };
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["images"]);
    let line = so.lines().nth(1).expect("one image row");
    assert!(
        line.starts_with(&p.cname("job", 1)) && line.contains("bb") && line.contains("latest"),
        "{so}"
    );
    let out = p.run(&["wait", "job"]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn compose_logs_follow_ends_when_containers_stop() {
    let compose = r#"
services:
  t:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo start; sleep 1; echo end"]
"#;
    let Some(p) = Project::new("follow", compose) else { return };
    p.ok(&["up", "-d"]);
    let (so, _) = p.ok(&["logs", "--follow"]);
    assert_eq!(so, "t-1  | start\nt-1  | end\n");
}

#[test]
fn compose_scale_command_keeps_existing_containers() {
    let compose = |cmd: &str| {
        format!(
            "services:\n  a:\n    image: bb\n    network_mode: none\n    command: {cmd}\n  b:\n    image: bb\n    network_mode: none\n    command: {LONG}\n"
        )
    };
    let Some(p) = Project::new("scalecmd", &compose(LONG)) else { return };
    p.ok(&["up", "-d"]);
    let (a1, b1) = (p.id(&p.cname("a", 1)), p.id(&p.cname("b", 1)));
    p.ok(&["scale", "a=3"]);
    assert_eq!(
        p.containers(),
        vec![p.cname("a", 1), p.cname("a", 2), p.cname("a", 3), p.cname("b", 1)]
    );
    // A changed service is scaled, not recreated: `scale` never touches existing containers.
    p.write(&compose(r#"["sh", "-c", "trap 'exit 0' TERM; sleep 3601 & wait"]"#));
    p.ok(&["scale", "a=1"]);
    assert_eq!(p.containers(), vec![p.cname("a", 1), p.cname("b", 1)]);
    assert_eq!((p.id(&p.cname("a", 1)), p.id(&p.cname("b", 1))), (a1, b1));
    let bad = p.run(&["scale", "nosuch=2"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such service: nosuch"));
    let (v, _) = p.ok(&["version", "--short"]);
    assert_eq!(v.trim(), env!("CARGO_PKG_VERSION"));
    let (j, _) = p.ok(&["version", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
}
