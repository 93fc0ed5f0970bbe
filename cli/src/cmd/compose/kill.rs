//! `berth kill [SERVICE...]`: send a signal (SIGKILL by default) to the services' containers.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{Lifecycle, RunOptions};
use berth_runtime::Engine;

use super::project::lifecycle;
use crate::cmd::ProjectOpts;

/// `berth kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container.
    #[arg(short, long, default_value = "SIGKILL")]
    signal: String,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Services.
    services: Vec<String>,
}

/// Runs `berth kill`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: KillArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let _ = a.remove_orphans;
    let what = Lifecycle::Kill(Some(a.signal));
    lifecycle(po, engine, &a.services, what, run, progress).await
}
