//! `GET /events`: docker's container events, streamed as JSON lines. No daemon publishes them:
//! the service looks at the state root's containers every 100 ms (as `berth events` does) and
//! reports what turns one look into the next (create, start, die, pause, unpause, destroy),
//! plus the journaled ones (kill, exec_*). Past events are not kept, so `since` only delays.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::container::{ContainerSummary, ListFilters};
use bytes::Bytes;

use crate::http::{ApiError, Query, R};
use crate::state::State;

/// One look at a container.
#[derive(Clone, PartialEq)]
struct Look {
    name: String,
    image: String,
    state: String,
    labels: BTreeMap<String, String>,
}

fn look(c: &ContainerSummary) -> Look {
    Look {
        name: c.names.first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default(),
        image: c.image.clone(),
        state: c.state.clone(),
        labels: c.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The actions that turn `before` into `after` (None: absent).
fn diff(before: Option<&Look>, after: Option<&Look>) -> Vec<&'static str> {
    let running = |s: &str| matches!(s, "running" | "paused" | "restarting");
    match (before, after) {
        (None, None) => vec![],
        (None, Some(a)) => {
            let mut v = vec!["create"];
            if running(&a.state) {
                v.push("start");
            } else if a.state == "exited" {
                v.extend(["start", "die"]);
            }
            v
        }
        (Some(b), None) => {
            if running(&b.state) {
                vec!["die", "destroy"]
            } else {
                vec!["destroy"]
            }
        }
        (Some(b), Some(a)) => match (b.state.as_str(), a.state.as_str()) {
            (x, y) if x == y => vec![],
            ("running", "paused") => vec!["pause"],
            ("paused", "running") => vec!["unpause"],
            (x, y) if !running(x) && running(y) => vec!["start"],
            (x, y) if running(x) && !running(y) => vec!["die"],
            _ => vec![],
        },
    }
}

struct Filter(HashMap<String, Vec<String>>);

impl Filter {
    fn pass(&self, id: &str, action: &str, l: &Look) -> bool {
        let any = |k: &str, f: &dyn Fn(&str) -> bool| {
            self.0.get(k).is_none_or(|vals| vals.is_empty() || vals.iter().any(|v| f(v)))
        };
        let base = action.split(':').next().unwrap_or(action);
        any("type", &|v| v == "container")
            && any("event", &|v| v == base || v == action)
            && any("container", &|v| id.starts_with(v) || l.name == v)
            && any("image", &|v| l.image == v)
            && self.0.get("label").is_none_or(|vals| {
                vals.iter().all(|f| match f.split_once('=') {
                    Some((k, v)) => l.labels.get(k).is_some_and(|x| x == v),
                    None => l.labels.contains_key(f.as_str()),
                })
            })
    }
}

fn event_json(id: &str, action: &str, l: &Look, extra: &BTreeMap<String, String>) -> Bytes {
    let now = chrono::Utc::now();
    let mut attrs = l.labels.clone();
    attrs.insert("name".into(), l.name.clone());
    attrs.insert("image".into(), l.image.clone());
    attrs.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let v = serde_json::json!({
        "status": action, "id": id, "from": l.image, "Type": "container", "Action": action,
        "Actor": {"ID": id, "Attributes": attrs}, "scope": "local",
        "time": now.timestamp(), "timeNano": now.timestamp_nanos_opt().unwrap_or(0),
    });
    Bytes::from(format!("{v}\n"))
}

fn unix_time(v: Option<&str>) -> Result<Option<f64>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Ok(Some(t.timestamp() as f64));
            }
            s.parse::<f64>().map(Some).map_err(|_| ApiError::bad(format!("invalid time {s:?}")))
        }
    }
}

/// Streams events until the client goes or `until` passes.
pub async fn events(state: Arc<State>, q: &Query) -> R {
    let filter = Filter(q.filters()?);
    let since = unix_time(q.get("since"))?;
    let until = unix_time(q.get("until"))?;
    let (tx, resp) = crate::stream::channel_body("application/json");
    let engine = state.engine.clone();
    let guard = state.activity.enter();
    let now = || chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let snapshot = |engine: berth_runtime::Engine| async move {
        let rows = engine.container_list(true, &ListFilters::default()).await.unwrap_or_default();
        rows.iter().map(|c| (c.id.clone(), look(c))).collect::<HashMap<_, _>>()
    };
    let mut seen = snapshot(engine.clone()).await;
    let mut journal = berth_runtime::events::JournalReader::at_end(engine.root().path());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => break,
            }
            let t = now();
            if until.is_some_and(|u| t > u) {
                break;
            }
            let cur = snapshot(engine.clone()).await;
            let mut out = Vec::new();
            for je in journal.read_new() {
                if let Some(l) = cur.get(&je.id).or_else(|| seen.get(&je.id)) {
                    out.push((je.id.clone(), je.action.clone(), l.clone(), je.attributes.clone()));
                }
            }
            for (id, l) in &cur {
                for a in diff(seen.get(id), Some(l)) {
                    out.push((id.clone(), a.to_string(), l.clone(), BTreeMap::new()));
                }
            }
            for (id, l) in &seen {
                if !cur.contains_key(id) {
                    for a in diff(Some(l), None) {
                        out.push((id.clone(), a.to_string(), l.clone(), BTreeMap::new()));
                    }
                }
            }
            seen = cur;
            if since.is_some_and(|s| t < s) {
                continue;
            }
            for (id, action, l, extra) in out {
                if filter.pass(&id, &action, &l)
                    && tx.send(event_json(&id, &action, &l, &extra)).await.is_err()
                {
                    drop(guard);
                    return;
                }
            }
        }
        drop(guard);
    });
    Ok(resp)
}
