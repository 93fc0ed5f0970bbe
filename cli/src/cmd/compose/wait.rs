//! `berth wait SERVICE...`: block until the services' containers stop; exit with the first
//! one's code (and, with `--down-project`, take the project down).

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{self, DownOptions, RunOptions};
use berth_runtime::Engine;

use super::project::{plan_err, targets, warn_one};
use crate::cmd::ProjectOpts;
use crate::cmd::engine_access::engine_err;

/// `berth wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Drops project when the first container stops.
    #[arg(long)]
    down_project: bool,
    /// Services to wait for.
    #[arg(required = true)]
    services: Vec<String>,
}

/// Runs `berth wait`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: WaitArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let (p, obs) = targets(po, engine, &a.services).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for c in obs {
        let e = engine.clone();
        tasks.spawn(async move { e.container_wait(&c.id).await });
    }
    // compose prints nothing and exits with the first container's exit code.
    let mut code = 0;
    if let Some(r) = tasks.join_next().await {
        code = r.map_err(|e| anyhow::anyhow!("wait task failed: {e}"))?.map_err(engine_err)?;
    }
    if a.down_project {
        ops::down(engine, &p, &DownOptions::default(), run, progress, &warn_one)
            .await
            .map_err(plan_err)?;
    } else {
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| anyhow::anyhow!("wait task failed: {e}"))?.map_err(engine_err)?;
        }
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
