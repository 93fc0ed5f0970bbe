//! `berth restart [SERVICE...]`: stop and start the containers of the services again.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::lifecycle;
use super::stop::StopArgs;
use crate::cmd::ProjectOpts;

/// Runs `berth restart`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: StopArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Restart(a.timeout), run, progress).await
}
