//! `berth rm [SERVICE...]`: remove the stopped containers of the services.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::lifecycle;
use crate::cmd::ProjectOpts;

/// `berth rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal (berth never asks).
    #[arg(short = 'f', long)]
    force: bool,
    /// Stop the containers, if required, before removing.
    #[arg(short, long)]
    stop: bool,
    /// Remove any anonymous volumes attached to containers.
    #[arg(short, long)]
    volumes: bool,
    /// Services.
    services: Vec<String>,
}

/// Runs `berth rm`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: RmArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let _ = a.force;
    let what = Lifecycle::Remove { stop: a.stop, volumes: a.volumes };
    lifecycle(po, engine, &a.services, what, run, progress).await
}
