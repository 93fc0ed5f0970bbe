//! `berth start [SERVICE...]`: start the existing containers of the services.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::{ServicesArgs, lifecycle};
use crate::cmd::ProjectOpts;

/// Runs `berth start`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: ServicesArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Start, run, progress).await
}
