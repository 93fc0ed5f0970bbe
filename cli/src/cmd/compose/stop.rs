//! `berth stop [SERVICE...]`: stop the running containers of the services.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::lifecycle;
use crate::cmd::ProjectOpts;

/// `berth stop` / `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long)]
    pub(super) timeout: Option<i64>,
    /// Services.
    pub(super) services: Vec<String>,
}

/// Runs `berth stop`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: StopArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Stop(a.timeout), run, progress).await
}
