//! `berth events [--json] [SERVICE...]`: compose's container event stream. berth has no daemon
//! to publish events, so the project's containers are watched instead (listed and inspected
//! every 100 ms) and each change becomes docker's event: create, start, die, stop, restart,
//! pause, unpause, health_status, destroy. What leaves no trace in a container's state (a
//! signal sent, an exec) comes from the state root's event journal: kill, exec_create,
//! exec_start, exec_die.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use berth_planner::labels;
use berth_runtime::Engine;
use berth_runtime::container::ListFilters;
use berth_runtime::events::{JournalEvent, JournalReader};

use super::project::load;
use crate::cmd::engine_access::engine_err;
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects.
    #[arg(long)]
    json: bool,
    /// Services to watch (default: all).
    services: Vec<String>,
}

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
fn from_journal(j: JournalEvent, seen: &Seen) -> ContainerEvent {
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

/// Runs `berth events` until interrupted.
pub async fn run(po: &ProjectOpts, engine: &Engine, a: EventsArgs) -> anyhow::Result<ExitCode> {
    let p = load(po, true, &a.services)?;
    for s in &a.services {
        if !p.services.is_empty() && !p.services.contains_key(s) {
            return Err(
                ExitWith { code: EXIT_USAGE, message: format!("no such service: {s}") }.into()
            );
        }
    }
    let mut journal = JournalReader::at_end(engine.root().path());
    let mut known = look(engine, &p.name, &a.services).await?;
    tracing::debug!(project = %p.name, containers = known.len(), "events: watching");
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = look(engine, &p.name, &a.services).await?;
        let time = chrono::Utc::now();
        // The journal after the look: a kill is written before its signal goes, so one that
        // caused a die this look saw is read now, and sorts before it.
        let journaled = journal.read_new();
        let mut events: Vec<ContainerEvent> = journaled
            .into_iter()
            .filter_map(|j| {
                let seen = now.get(&j.id).or_else(|| known.get(&j.id))?;
                Some(from_journal(j, seen))
            })
            .collect();
        for (id, seen) in &now {
            events.extend(diff(id, known.get(id), Some(seen), time));
        }
        for (id, seen) in &known {
            if !now.contains_key(id) {
                events.extend(diff(id, Some(seen), None, time));
            }
        }
        // Stable: events of one look keep their order after the journal's earlier ones.
        events.sort_by_key(|e| e.time);
        let mut out = std::io::stdout().lock();
        for e in events {
            let line = if a.json { e.json().to_string() } else { e.text() };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // Nobody reads any more.
                return Ok(ExitCode::SUCCESS);
            }
        }
        known = now;
    }
}

/// The project's containers (one-offs included) as they are now.
async fn look(
    engine: &Engine,
    project: &str,
    services: &[String],
) -> anyhow::Result<HashMap<String, Seen>> {
    let filters =
        ListFilters { label: vec![format!("{}={project}", labels::PROJECT)], ..Default::default() };
    let list = engine.container_list(true, &filters).await.map_err(engine_err)?;
    let mut out = HashMap::new();
    for c in list {
        let service = c.labels.get(labels::SERVICE).cloned().unwrap_or_default();
        if !services.is_empty() && !services.contains(&service) {
            continue;
        }
        // Gone between the list and the inspect: the next look reports it.
        let Ok(i) = engine.container_inspect(&c.id).await else { continue };
        let manual_stop = engine.container_stop_was_requested(&c.id);
        let seen = Seen {
            name: i.name.trim_start_matches('/').to_string(),
            image: c.image.clone(),
            service,
            status: i.state.status.clone(),
            started_at: i.state.started_at.clone(),
            health: i.state.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
            exit_code: i.state.exit_code,
            manual_stop,
        };
        out.insert(c.id, seen);
    }
    Ok(out)
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
