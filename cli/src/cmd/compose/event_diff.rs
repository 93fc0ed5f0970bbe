//! What `berth events` reports: the docker events that turn one look at a container into the
//! next (create, start, die, stop, restart, pause, unpause, health_status, destroy), and the
//! journaled ones (kill, exec) with compose's attributes. Pure: `events` does the looking.

use std::collections::BTreeMap;

use berth_runtime::events::JournalEvent;

/// What is known of one container between two looks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Service label.
    pub service: String,
    /// `created`, `running`, `paused`, `exited`, ...
    pub status: String,
    /// Start time of the current (or last) run.
    pub started_at: String,
    /// Health status (empty without a healthcheck).
    pub health: String,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// The last stop was asked for (stop/restart/down), not the process's own end.
    pub manual_stop: bool,
}

impl Seen {
    /// The attributes every event of this container carries (`name`, `image`).
    fn attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("name".to_string(), self.name.clone()),
            ("image".to_string(), self.image.clone()),
        ])
    }
}

/// One container event, with compose's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// When it was seen.
    pub time: chrono::DateTime<chrono::Utc>,
    /// docker's action name.
    pub action: String,
    /// Container id.
    pub id: String,
    /// Service.
    pub service: String,
    /// `name`, `image` (and `exitCode` for `die`).
    pub attributes: BTreeMap<String, String>,
}

impl ContainerEvent {
    /// compose's text line: `2026-11-23 13:00:00.000000 container start ID (image=.., name=..)`.
    pub fn text(&self) -> String {
        let attrs: Vec<String> = self.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} container {} {} ({})",
            self.time.format("%Y-%m-%d %H:%M:%S%.6f"),
            self.action,
            self.id,
            attrs.join(", ")
        )
    }

    /// compose's `--json` object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "time": self.time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            "type": "container",
            "action": self.action,
            "id": self.id,
            "service": self.service,
            "attributes": self.attributes,
        })
    }
}

/// The events that turn `before` into `after` (None: the container does not exist).
pub fn diff(
    id: &str,
    before: Option<&Seen>,
    after: Option<&Seen>,
    time: chrono::DateTime<chrono::Utc>,
) -> Vec<ContainerEvent> {
    let Some(now) = after.or(before) else { return Vec::new() };
    let ev = |action: &str, exit: Option<i64>| {
        let mut attributes = now.attributes();
        if let Some(code) = exit {
            attributes.insert("exitCode".to_string(), code.to_string());
        }
        ContainerEvent {
            time,
            action: action.to_string(),
            id: id.to_string(),
            service: now.service.clone(),
            attributes,
        }
    };
    let alive = |s: &Seen| matches!(s.status.as_str(), "running" | "paused" | "restarting");
    // A never-started container carries docker's zero time.
    let started = |s: &Seen| !s.started_at.is_empty() && !s.started_at.starts_with("0001-");
    let mut out = Vec::new();
    let empty = Seen::default();
    let (b, a) = match (before, after) {
        (None, None) => return out,
        (None, Some(a)) => {
            out.push(ev("create", None));
            (&empty, a)
        }
        (Some(b), None) => {
            if alive(b) {
                out.push(ev("die", Some(137)));
                out.push(ev("stop", None));
            }
            out.push(ev("destroy", None));
            return out;
        }
        (Some(b), Some(a)) => (b, a),
    };
    let stopped = |out: &mut Vec<ContainerEvent>| {
        out.push(ev("die", Some(a.exit_code)));
        if a.manual_stop {
            out.push(ev("stop", None));
        }
    };
    let restarted = started(b) && a.started_at != b.started_at;
    match (alive(b), alive(a)) {
        (false, true) => out.push(ev("start", None)),
        (true, false) => stopped(&mut out),
        // Stopped and started again between two looks.
        (true, true) if restarted => {
            stopped(&mut out);
            out.push(ev("start", None));
            out.push(ev("restart", None));
        }
        // Ran and ended between two looks.
        (false, false) if started(a) && a.started_at != b.started_at => {
            out.push(ev("start", None));
            stopped(&mut out);
        }
        _ => {}
    }
    match (b.status.as_str(), a.status.as_str()) {
        (x, "paused") if x != "paused" => out.push(ev("pause", None)),
        ("paused", x) if x != "paused" => out.push(ev("unpause", None)),
        _ => {}
    }
    if a.health != b.health && !a.health.is_empty() && a.health != "starting" {
        out.push(ev(&format!("health_status: {}", a.health), None));
    }
    out
}

/// A journaled event (kill, exec) of a container of the project, with compose's attributes.
pub(super) fn from_journal(j: JournalEvent, seen: &Seen) -> ContainerEvent {
    let mut attributes = seen.attributes();
    attributes.extend(j.attributes);
    ContainerEvent {
        time: j.time,
        action: j.action,
        id: j.id,
        service: seen.service.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: &str, started: &str) -> Seen {
        Seen {
            name: "p-web-1".into(),
            image: "bb".into(),
            service: "web".into(),
            status: status.into(),
            started_at: started.into(),
            ..Default::default()
        }
    }

    fn actions(b: Option<&Seen>, a: Option<&Seen>) -> Vec<String> {
        diff("id", b, a, chrono::Utc::now()).into_iter().map(|e| e.action).collect()
    }

    #[test]
    fn lifecycle_changes_become_docker_events() {
        let created = seen("created", "0001-01-01T00:00:00Z");
        let running = seen("running", "t1");
        assert_eq!(actions(None, Some(&created)), ["create"]);
        assert_eq!(actions(None, Some(&running)), ["create", "start"]);
        assert_eq!(actions(Some(&created), Some(&running)), ["start"]);
        let mut stopped = seen("exited", "t1");
        stopped.manual_stop = true;
        assert_eq!(actions(Some(&running), Some(&stopped)), ["die", "stop"]);
        let mut died = seen("exited", "t1");
        died.exit_code = 3;
        let e = diff("id", Some(&running), Some(&died), chrono::Utc::now());
        assert_eq!(e.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["die"]);
        assert_eq!(e[0].attributes["exitCode"], "3");
        assert_eq!(
            actions(Some(&running), Some(&seen("running", "t2"))),
            ["die", "start", "restart"]
        );
        assert_eq!(actions(Some(&running), Some(&seen("paused", "t1"))), ["pause"]);
        assert_eq!(actions(Some(&seen("paused", "t1")), Some(&running)), ["unpause"]);
        let mut healthy = seen("running", "t1");
        healthy.health = "healthy".into();
        assert_eq!(actions(Some(&running), Some(&healthy)), ["health_status: healthy"]);
        assert_eq!(actions(Some(&stopped), None), ["destroy"]);
        assert!(actions(Some(&running), Some(&running)).is_empty());
    }

    #[test]
    fn text_and_json_shapes() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-23T13:00:00.5Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let e = &diff("abc", None, Some(&seen("created", "")), t)[0];
        assert_eq!(
            e.text(),
            "2026-11-23 13:00:00.500000 container create abc (image=bb, name=p-web-1)"
        );
        let j = e.json();
        assert_eq!(j["time"], "2026-11-23T13:00:00.500000");
        assert_eq!(j["type"], "container");
        assert_eq!(j["action"], "create");
        assert_eq!(j["id"], "abc");
        assert_eq!(j["service"], "web");
        assert_eq!(j["attributes"]["name"], "p-web-1");
        assert_eq!(j["attributes"]["image"], "bb");
    }
}
