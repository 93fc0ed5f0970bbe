//! `berth run` (placeholder until the engine work lands).

use std::process::ExitCode;

use super::EngineOpts;

/// Arguments of `berth run`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `berth run`.
pub fn run(_engine: &EngineOpts, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth run is not built yet")
}
