//! `berth start [SERVICE...]`: start the existing containers of the services.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::lifecycle;
use crate::cmd::ProjectOpts;

/// `berth start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Services.
    pub(super) services: Vec<String>,
}

/// Runs `berth start`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: StartArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Start, run, progress).await
}
