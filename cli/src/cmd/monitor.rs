//! The hidden `__monitor` subcommand (placeholder until the engine work lands).

use std::process::ExitCode;

/// Arguments of the monitor.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the monitor.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("monitor is not built yet")
}
