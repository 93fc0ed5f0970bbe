//! `berth pause` / `berth unpause`: freeze and thaw the services' running containers.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::{ServicesArgs, lifecycle};
use crate::cmd::ProjectOpts;

/// Runs `berth pause`.
pub(super) async fn pause(
    po: &ProjectOpts,
    engine: &Engine,
    a: ServicesArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Pause(true), run, progress).await
}

/// Runs `berth unpause`.
pub(super) async fn unpause(
    po: &ProjectOpts,
    engine: &Engine,
    a: ServicesArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    lifecycle(po, engine, &a.services, Lifecycle::Pause(false), run, progress).await
}
