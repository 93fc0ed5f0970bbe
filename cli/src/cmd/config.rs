//! `berth config` (placeholder until the compose-spec work lands).

use std::process::ExitCode;

use super::ProjectOpts;

/// Arguments of `berth config`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `berth config`.
pub fn run(_project: &ProjectOpts, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("berth config is not built yet")
}
