//! `berth image` subcommands (placeholder until the runtime work lands).

use std::process::ExitCode;

use super::EngineOpts;

/// `berth image` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List.
    Ls,
}

/// Runs a `berth image` subcommand.
pub fn run(_engine: &EngineOpts, _cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth image is not built yet")
}
