//! `--progress json|plain|quiet|tty` on real commands.

use crate::compose_support::{LONG, Project};

#[test]
fn compose_progress_json_plain_quiet_tty() {
    let compose =
        format!("services:\n  web:\n    image: bb\n    network_mode: none\n    command: {LONG}\n");
    let Some(p) = Project::new("cprog", &compose) else { return };
    let web = p.cname("web", 1);

    // json: every stderr line is one object; the container's last one says Started, done.
    let (_, se) = p.ok(&["--progress", "json", "up", "-d"]);
    let events: Vec<serde_json::Value> = se
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let mine: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["id"] == format!("Container {web}")).collect();
    let texts: Vec<&str> = mine.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(texts, ["Creating", "Created", "Starting", "Started"], "{se}");
    assert_eq!(mine.last().map(|e| e["done"].clone()), Some(serde_json::Value::Bool(true)));
    assert!(mine.iter().all(|e| e.get("dry-run").is_none()));
    let (_, se) = p.ok(&["--dry-run", "--progress", "json", "restart"]);
    let ev: serde_json::Value =
        serde_json::from_str(se.lines().last().expect("event")).expect("json");
    assert_eq!(ev["dry-run"], true);

    // quiet: nothing.
    let (_, se) = p.ok(&["--progress", "quiet", "restart", "-t", "2"]);
    assert_eq!(se, "");

    // tty forced on a pipe: the header, the tick, and the cursor moves of a redraw.
    let (_, se) = p.ok(&["--progress", "tty", "stop", "-t", "2"]);
    assert!(se.contains("[+] Running 1/1"), "{se:?}");
    assert!(se.contains(&format!(" ✔ Container {web}  Stopped")), "{se:?}");
    assert!(se.contains("\x1b[2K") && se.contains("\x1b[2A"), "{se:?}");

    // plain (also the default off a terminal): one line per event.
    let (_, se) = p.ok(&["--progress", "plain", "down", "-t", "2"]);
    assert!(se.lines().any(|l| l == format!(" Container {web}  Removed")), "{se}");
    let (_, se) = p.ok(&["up", "-d"]);
    assert!(se.lines().any(|l| l == format!(" Container {web}  Started")), "{se}");
}
