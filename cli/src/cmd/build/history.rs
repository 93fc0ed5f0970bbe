//! `image history`.

use std::io::Write;
use std::process::ExitCode;

use super::super::engine_access::engine;
use super::super::{EngineOpts, ExitWith};

/// `image history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// The image.
    image: String,
}

/// `5 minutes ago`-style age of an RFC 3339 time (as `image ls`).
fn age(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => crate::cmd::image::human_since(t.timestamp()),
        Err(_) => "N/A".into(),
    }
}

/// Runs `image history`: newest first, one row per history entry; the top row carries the id.
pub fn history(opts: &EngineOpts, a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(opts)?;
    let store = engine.images()?;
    let st = store
        .image_state(&a.image)
        .map_err(|e| ExitWith { code: 1, message: format!("berth: {e}") })?;
    let hist = st.config.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
    let sizes = store.layer_sizes(&st.chains)?;
    let mut layer = sizes.len();
    let mut rows = Vec::new();
    for (i, h) in hist.iter().enumerate().rev() {
        let empty = h.get("empty_layer").and_then(|v| v.as_bool()).unwrap_or(false);
        let size = if empty || layer == 0 {
            0
        } else {
            layer -= 1;
            sizes[layer]
        };
        let id = if i + 1 == hist.len() {
            if a.no_trunc { st.id.clone() } else { berth_image::short_id(&st.id) }
        } else {
            "<missing>".to_string()
        };
        let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let mut by = s("created_by");
        if !a.no_trunc && by.chars().count() > 45 {
            by = format!("{}…", by.chars().take(44).collect::<String>());
        }
        rows.push((id, age(&s("created")), by, size, s("comment")));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r.0)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Columns as docker's tabwriter lays them out: as wide as their widest cell, 3 apart.
    let cells: Vec<[String; 5]> =
        std::iter::once(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from))
            .chain(rows.into_iter().map(|(id, created, by, size, comment)| {
                [id, created, by, crate::cmd::system::human_size(size), comment]
            }))
            .collect();
    let mut widths = [0usize; 4];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i < 4 {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}
