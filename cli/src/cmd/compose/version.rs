//! `berth version`: berth's version, as `docker compose version` prints its own.

use std::io::Write;
use std::process::ExitCode;

/// `berth version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Format the output: `pretty` (default) or `json`.
    #[arg(short, long, default_value = "pretty")]
    format: String,
    /// Show only the version number.
    #[arg(long)]
    short: bool,
}

/// Prints berth's version like `docker compose version` (`--short`, `--format json`).
pub(super) fn run(a: VersionArgs) -> anyhow::Result<ExitCode> {
    let v = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    let _ = match (a.short, a.format.as_str()) {
        (true, _) => writeln!(out, "{v}"),
        (false, "json") => writeln!(out, "{}", serde_json::json!({ "version": v })),
        _ => writeln!(out, "berth version v{v}"),
    };
    Ok(ExitCode::SUCCESS)
}
