//! `berth image history`: docker's table (IMAGE, CREATED, CREATED BY, SIZE, COMMENT), `-q`,
//! `--no-trunc`, `--format json` or a Go template.

use std::io::Write;
use std::process::ExitCode;

use berth_image::{ImageStore, short_id};
use berth_store::StateRoot;

use super::EngineOpts;

/// `berth image history` flags.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The image.
    pub image: String,
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Print sizes and dates in human readable format (default true).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Output format: `table` (default), `json`, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Runs `berth image history`.
pub fn run(engine: &EngineOpts, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = ImageStore::open(&StateRoot::open(&engine.root)?)?;
    let rows = store.history(&args.image)?;
    let mut out = std::io::stdout().lock();
    let id_of = |id: &str| {
        if id == "<missing>" || args.no_trunc { id.to_string() } else { short_id(id) }
    };
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", id_of(&r.id))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let created = |ts: i64| {
        if ts <= 0 {
            "N/A".to_string()
        } else if args.human {
            super::human::human_since(ts)
        } else {
            chrono::DateTime::from_timestamp(ts, 0).map(|t| t.to_rfc3339()).unwrap_or_default()
        }
    };
    let size = |n: u64| if args.human { super::human::human_size(n) } else { n.to_string() };
    let by = |s: &str| {
        let s = s.replace('\t', " ");
        if args.no_trunc || s.chars().count() <= 45 {
            s
        } else {
            format!("{}…", s.chars().take(44).collect::<String>())
        }
    };
    match args.format.as_deref() {
        None | Some("table") => {
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|r| {
                    [
                        id_of(&r.id),
                        created(r.created),
                        by(&r.created_by),
                        size(r.size),
                        r.comment.clone(),
                    ]
                })
                .collect();
            let heads = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];
            let widths: Vec<usize> = (0..4)
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                        .max(heads[i].len())
                })
                .collect();
            let line = |cells: [&str; 5]| {
                let mut s = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i < 4 {
                        s.push_str(&format!("{c:<w$}   ", w = widths[i]));
                    } else {
                        s.push_str(c);
                    }
                }
                s.trim_end().to_string()
            };
            writeln!(out, "{}", line(heads))?;
            for r in &table {
                writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
            }
        }
        Some("json") => {
            for r in &rows {
                let v = serde_json::json!({
                    "Comment": r.comment, "CreatedAt": created(r.created), "CreatedBy": r.created_by,
                    "CreatedSince": created(r.created), "ID": id_of(&r.id), "Size": size(r.size),
                });
                writeln!(out, "{v}")?;
            }
        }
        Some(t) => {
            for r in &rows {
                let v = serde_json::json!({
                    "ID": id_of(&r.id), "CreatedSince": created(r.created), "CreatedAt": created(r.created),
                    "CreatedBy": by(&r.created_by), "Size": size(r.size), "Comment": r.comment,
                });
                writeln!(out, "{}", super::template::render(t, &v)?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
