//! `berth down`: stop and remove the project's containers and networks (and, when asked, its
//! volumes and images).

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{self, DownOptions, RunOptions};
use berth_runtime::Engine;

use super::project::{load, plan_err, warn_one};
use crate::cmd::ProjectOpts;

/// `berth down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the volumes section and anonymous volumes.
    #[arg(short, long)]
    volumes: bool,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    /// Remove images used by services: "local" only those without a custom tag, "all" every one.
    #[arg(long, value_name = "TYPE")]
    rmi: Option<RmiArg>,
}

/// `down --rmi` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RmiArg {
    /// Images without a custom tag (`{project}-{service}`).
    Local,
    /// Every image a service uses.
    All,
}

/// Runs `berth down`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: DownArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, true, &[])?;
    let opts = DownOptions {
        remove_orphans: a.remove_orphans,
        volumes: a.volumes,
        timeout: a.timeout,
        images: a.rmi.map(|r| match r {
            RmiArg::Local => ops::RemoveImages::Local,
            RmiArg::All => ops::RemoveImages::All,
        }),
    };
    ops::down(engine, &p, &opts, run, progress, &warn_one).await.map_err(plan_err)?;
    Ok(ExitCode::SUCCESS)
}
