//! `berth images`: the images the project's containers use.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use berth_runtime::Engine;

use super::project::{print_table, targets};
use crate::cmd::ProjectOpts;

/// `berth images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Only display IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Services.
    services: Vec<String>,
}

/// Runs `berth images`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: ImagesArgs,
) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, &a.services).await?;
    let mut rows = Vec::new();
    for c in &obs {
        let Ok(i) = engine.image_inspect(c.summary.image.clone()).await else { continue };
        let (repo, tag) = match c.summary.image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (c.summary.image.clone(), "latest".to_string()),
        };
        rows.push((c.name.clone(), repo, tag, i.id, i.size));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let ids: BTreeSet<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        for id in ids {
            let _ = writeln!(out, "{id}");
        }
    } else if a.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(c, r, t, id, size)| {
                serde_json::json!({"ContainerName": c, "Repository": r, "Tag": t, "ID": id, "Size": size})
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(v));
    } else {
        let mut table = vec![vec![
            "CONTAINER".to_string(),
            "REPOSITORY".into(),
            "TAG".into(),
            "IMAGE ID".into(),
            "SIZE".into(),
        ]];
        for (c, r, t, id, size) in rows {
            let short = id.trim_start_matches("sha256:").chars().take(12).collect();
            table.push(vec![c, r, t, short, human_size(size)]);
        }
        print_table(&mut out, &table);
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes as docker prints them (`4.2MB`).
fn human_size(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.3}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.3}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}
