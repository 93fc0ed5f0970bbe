//! `berth volume` subcommands (placeholder until the runtime work lands).

use std::process::ExitCode;

use super::EngineOpts;

/// `berth volume` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List.
    Ls,
}

/// Runs a `berth volume` subcommand.
pub fn run(_engine: &EngineOpts, _cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth volume is not built yet")
}
