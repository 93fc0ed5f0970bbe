//! `berth ls`: the compose projects found in the state root, with their containers' states.

use std::io::Write;
use std::process::ExitCode;

use berth_planner::observe;
use berth_runtime::Engine;

use super::project::{plan_err, print_table};
use crate::cmd::{EXIT_USAGE, ExitWith};

/// `berth ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects.
    #[arg(short, long)]
    all: bool,
    /// Only display project names.
    #[arg(short, long)]
    quiet: bool,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Filter output based on conditions provided (`name=SUBSTRING`).
    #[arg(long)]
    filter: Vec<String>,
}

/// Runs `berth ls`.
pub(super) async fn run(engine: &Engine, a: LsArgs) -> anyhow::Result<ExitCode> {
    let mut names = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("name", v)) => names.push(v.to_string()),
            _ => {
                return Err(ExitWith {
                    code: EXIT_USAGE,
                    message: format!("invalid filter {f:?}: only name=VALUE is supported"),
                }
                .into());
            }
        }
    }
    let mut projects = observe::projects(engine).await.map_err(plan_err)?;
    projects.retain(|(name, _, _)| names.iter().all(|n| name.contains(n.as_str())));
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for (name, states, files) in projects {
        let running = states.iter().filter(|s| s.as_str() == "running").count();
        if !a.all && running == 0 {
            continue;
        }
        // compose: `running(2)`, or every state with its count, comma separated.
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in &states {
            match counts.iter_mut().find(|(n, _)| n == s) {
                Some((_, c)) => *c += 1,
                None => counts.push((s.clone(), 1)),
            }
        }
        let status: Vec<String> = counts.iter().map(|(s, c)| format!("{s}({c})")).collect();
        rows.push((name, status.join(", "), files));
    }
    if a.quiet {
        for (n, _, _) in &rows {
            let _ = writeln!(out, "{n}");
        }
    } else if a.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s, f)| serde_json::json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(v));
    } else {
        let mut table = vec![vec!["NAME".to_string(), "STATUS".into(), "CONFIG FILES".into()]];
        table.extend(rows.into_iter().map(|(n, s, f)| vec![n, s, f]));
        print_table(&mut out, &table);
    }
    Ok(ExitCode::SUCCESS)
}
