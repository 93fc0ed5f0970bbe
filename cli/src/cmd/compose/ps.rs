//! `berth ps`: the project's containers (one-offs included) as a table, JSON lines, ids or
//! service names.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use berth_planner::observe::Observed;
use berth_runtime::Engine;

use super::project::{plan_err, print_table, targets};
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all stopped containers.
    #[arg(short, long)]
    all: bool,
    /// Only display IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Display services.
    #[arg(long)]
    services: bool,
    /// Filter services by status (created, running, exited, paused, restarting, removing, dead).
    #[arg(long)]
    status: Vec<String>,
    /// Filter services by a property (supported filters: status).
    #[arg(long)]
    filter: Vec<String>,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Services to list.
    service_names: Vec<String>,
}

/// Runs `berth ps`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    mut a: PsArgs,
) -> anyhow::Result<ExitCode> {
    for f in &a.filter {
        match f.split_once('=') {
            Some(("status", v)) => a.status.push(v.to_string()),
            _ => {
                return Err(ExitWith {
                    code: EXIT_USAGE,
                    message: format!("invalid filter {f:?}: only status=STATE is supported"),
                }
                .into());
            }
        }
    }
    let (p, mut obs) = targets(po, engine, &a.service_names).await?;
    // compose lists `run` containers too.
    let oneoffs = berth_planner::oneoff::containers(engine, &p.name).await.map_err(plan_err)?;
    obs.extend(
        oneoffs
            .into_iter()
            .map(Observed::from_summary)
            .filter(|c| a.service_names.is_empty() || a.service_names.contains(&c.service)),
    );
    let shown: Vec<&Observed> = obs
        .iter()
        .filter(|c| {
            if !a.status.is_empty() {
                return a.status.contains(&c.state);
            }
            a.all || c.is_running()
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if a.services {
        let mut names: Vec<&str> = if p.services.is_empty() {
            shown.iter().map(|c| c.service.as_str()).collect::<BTreeSet<_>>().into_iter().collect()
        } else {
            p.services
                .keys()
                .map(String::as_str)
                .filter(|s| a.service_names.is_empty() || a.service_names.iter().any(|n| n == s))
                .collect()
        };
        names.dedup();
        for n in names {
            let _ = writeln!(out, "{n}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.quiet {
        for c in &shown {
            let _ = writeln!(out, "{}", c.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for c in &shown {
        let i = match engine.container_inspect(&c.id).await {
            Ok(i) => i,
            // A damaged record (listed dead) has no inspect view: what the list knows is shown.
            Err(_) if c.is_dead() => Default::default(),
            // Removed between the list and here (a concurrent `down`): not shown.
            Err(_) => continue,
        };
        let s = &c.summary;
        let created = chrono::DateTime::from_timestamp(s.created, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
            .unwrap_or_default();
        let running_for = berth_runtime::time::human_duration(
            chrono::Utc::now()
                - chrono::DateTime::from_timestamp(s.created, 0).unwrap_or_else(chrono::Utc::now),
        );
        rows.push(serde_json::json!({
            "Command": format!("\"{}\"", truncate(&s.command, 20)),
            "CreatedAt": created,
            "ExitCode": i.state.exit_code,
            "Health": i.state.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
            "ID": c.id,
            "Image": s.image,
            "Labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "LocalVolumes": s.mounts.iter().filter(|m| m.typ == "volume").count().to_string(),
            "Mounts": s.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
            "Name": c.name,
            "Names": c.name,
            // compose: the names of the networks the container is on, comma separated.
            "Networks": if i.network_settings.networks.is_empty() {
                i.host_config.network_mode.clone()
            } else {
                i.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(",")
            },
            "Ports": crate::cmd::netflags::ports_column(&s.ports),
            "Project": p.name,
            "Publishers": s.ports.iter().map(|p| serde_json::json!({
                "URL": p.ip,
                "TargetPort": p.private_port,
                "PublishedPort": p.public_port,
                "Protocol": p.typ,
            })).collect::<Vec<_>>(),
            "RunningFor": format!("{running_for} ago"),
            "Service": c.service,
            "Size": "0B",
            "State": c.state,
            "Status": s.status,
        }));
    }
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                let _ = writeln!(out, "{r}");
            }
        }
        "table" => {
            let mut table = vec![vec![
                "NAME".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "SERVICE".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
            ]];
            for r in &rows {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                table.push(vec![
                    f("Name"),
                    f("Image"),
                    f("Command"),
                    f("Service"),
                    f("RunningFor"),
                    f("Status"),
                    f("Ports"),
                ]);
            }
            print_table(&mut out, &table);
        }
        other => {
            return Err(ExitWith {
                code: EXIT_USAGE,
                message: format!("unsupported --format {other:?}: use table or json"),
            }
            .into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
