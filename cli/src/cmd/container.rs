//! `berth container` subcommands (placeholder until the runtime work lands).

use std::process::ExitCode;

use super::EngineOpts;

/// `berth container` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List.
    Ls,
}

/// Runs a `berth container` subcommand.
pub fn run(_engine: &EngineOpts, _cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth container is not built yet")
}
