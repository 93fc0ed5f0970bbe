//! `berth events`: container events of the project, text and `--json`, filtered by service.

use crate::compose_logs::Follower;
use crate::compose_support::{LONG, Project};

#[test]
fn compose_events_json_and_text() {
    let compose = format!(
        "services:\n  web:\n    image: bb\n    network_mode: none\n    command: {LONG}\n  other:\n    image: bb\n    network_mode: none\n    command: {LONG}\n"
    );
    let Some(p) = Project::new("cev", &compose) else { return };
    let web = p.cname("web", 1);
    // --verbose says when the first look is taken: later changes are events.
    let json = Follower::start(&p, &["--verbose", "events", "--json", "web"]);
    let text = Follower::start(&p, &["--verbose", "events"]);
    p.wait_for("events to watch", 10, || {
        json.errors().contains("events: watching") && text.errors().contains("events: watching")
    });

    p.ok(&["up", "-d"]);
    let id = p.id(&web);
    let actions = |f: &Follower| -> Vec<serde_json::Value> {
        f.text().lines().map(|l| serde_json::from_str(l).expect("event json")).collect()
    };
    p.wait_for("create and start", 10, || actions(&json).len() >= 2);
    // The TERM trap is set once sleep runs (a PID 1 without a handler ignores the stop's TERM).
    p.wait_for("web's trap", 10, || p.ok(&["top", "web"]).0.contains("sleep 3600"));
    // An exec and a stop leave no trace in the container's state: they come from the journal.
    p.ok(&["exec", "-T", "web", "true"]);
    p.wait_for("the exec's events", 10, || actions(&json).len() >= 5);
    p.ok(&["stop", "-t", "2"]);
    p.wait_for("kill, die and stop", 10, || actions(&json).len() >= 8);
    let evs = actions(&json);
    let names: Vec<&str> = evs.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        names,
        [
            "create",
            "start",
            "exec_create: true",
            "exec_start: true",
            "exec_die",
            "kill",
            "die",
            "stop"
        ],
        "{evs:?}"
    );
    let exec_id = evs[2]["attributes"]["execID"].as_str().expect("execID");
    assert!(exec_id.len() >= 12, "{exec_id}");
    assert_eq!(evs[3]["attributes"]["execID"], exec_id);
    assert_eq!(evs[4]["attributes"]["execID"], exec_id);
    assert_eq!(evs[4]["attributes"]["exitCode"], "0");
    assert_eq!(evs[5]["attributes"]["signal"], "15");
    for e in &evs {
        assert_eq!(e["type"], "container");
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["service"], "web");
        assert_eq!(e["attributes"]["name"], web.as_str());
        assert_eq!(e["attributes"]["image"], "bb");
        let t = e["time"].as_str().expect("time");
        assert!(chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(), "{t}");
    }
    // SIGTERM trapped with exit 0.
    assert_eq!(evs[6]["attributes"]["exitCode"], "0");

    // Text: compose's line shape, both services.
    p.wait_for("text events of both services", 10, || {
        let t = text.text();
        t.lines().filter(|l| l.contains(" container stop ")).count() == 2
    });
    let t = text.text();
    let start = format!(" container start {id} (image=bb, name={web})");
    let line = t.lines().find(|l| l.ends_with(&start)).unwrap_or_else(|| panic!("{t}"));
    let stamp = &line[..line.len() - start.len()];
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.6f").is_ok(),
        "{line}"
    );
    assert!(t.contains(&format!("name={}", p.cname("other", 1))), "{t}");

    // down: destroy.
    p.ok(&["down", "-t", "2"]);
    p.wait_for("destroy", 10, || actions(&json).iter().any(|e| e["action"] == "destroy"));
}
