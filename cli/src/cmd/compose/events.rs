//! `berth events [--json] [SERVICE...]`: compose's container event stream. berth has no daemon
//! to publish events, so the project's containers are watched instead (listed and inspected
//! every 100 ms) and each change becomes docker's event: create, start, die, stop, restart,
//! pause, unpause, health_status, destroy. What leaves no trace in a container's state (a
//! signal sent, an exec) comes from the state root's event journal: kill, exec_create,
//! exec_start, exec_die.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use berth_planner::labels;
use berth_runtime::Engine;
use berth_runtime::container::ListFilters;
use berth_runtime::events::JournalReader;

use super::event_diff::{ContainerEvent, Seen, diff, from_journal};
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
        // Only what no look shows (kill, exec_*): the journaled lifecycle events are the looks'.
        let journaled = journal.read_new();
        let mut events: Vec<ContainerEvent> = journaled
            .into_iter()
            .filter(|j| {
                j.kind == "container" && (j.action == "kill" || j.action.starts_with("exec_"))
            })
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
