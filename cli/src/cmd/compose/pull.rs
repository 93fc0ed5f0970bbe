//! Compose's `pull` and `push`, and the image step `up` runs before it creates containers.

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::{self, PullPolicy, PullRequest, PushRequest};
use berth_runtime::Engine;
use compose_spec::model::Project;

use super::project::{load, plan_err, warn_one};
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Pull without printing progress information.
    #[arg(short, long)]
    quiet: bool,
    /// Pull what it can and ignore images with pull failures.
    #[arg(long)]
    ignore_pull_failures: bool,
    /// Also pull services declared as dependencies.
    #[arg(long)]
    include_deps: bool,
    /// Ignore images that can be built.
    #[arg(long)]
    ignore_buildable: bool,
    /// Apply pull policy ("missing"|"always").
    #[arg(long, value_parser = ["missing", "always"])]
    policy: Option<String>,
    /// Services to pull (default: all).
    services: Vec<String>,
}

/// `berth push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Push without printing progress information.
    #[arg(short, long)]
    quiet: bool,
    /// Push what it can and ignore images with push failures.
    #[arg(long)]
    ignore_push_failures: bool,
    /// Also push images of services declared as dependencies.
    #[arg(long)]
    include_deps: bool,
    /// Services to push (default: all).
    services: Vec<String>,
}

/// A policy named on the command line (`up --pull`, `pull --policy`).
pub(super) fn policy_arg(flag: &str, v: &str) -> anyhow::Result<PullPolicy> {
    PullPolicy::parse(v).map_err(|m| {
        ExitWith { code: EXIT_USAGE, message: format!("invalid {flag} value: {m}") }.into()
    })
}

/// `berth pull`.
pub(super) async fn run_pull(
    po: &ProjectOpts,
    engine: &Engine,
    a: PullArgs,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let mut p = load(po, false, &a.services)?;
    if a.ignore_buildable {
        p.services.retain(|_, s| s.build.is_none());
    }
    let req = PullRequest {
        services: a.services.clone(),
        include_deps: a.include_deps,
        policy: a.policy.as_deref().map(|v| policy_arg("--policy", v)).transpose()?,
        ignore_failures: a.ignore_pull_failures,
        for_up: false,
    };
    let quiet = berth_planner::no_progress();
    let shown = if a.quiet { &quiet } else { progress };
    let warnings = ops::pull(engine, &p, &req, shown).await;
    crate::progress::finish();
    warnings.map_err(plan_err)?.iter().for_each(|w| warn_one(w));
    Ok(ExitCode::SUCCESS)
}

/// `berth push`.
pub(super) async fn run_push(
    po: &ProjectOpts,
    engine: &Engine,
    a: PushArgs,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, false, &a.services)?;
    let req = PushRequest {
        services: a.services.clone(),
        include_deps: a.include_deps,
        ignore_failures: a.ignore_push_failures,
    };
    let quiet = berth_planner::no_progress();
    let shown = if a.quiet { &quiet } else { progress };
    let warnings = ops::push(engine, &p, &req, shown).await;
    crate::progress::finish();
    warnings.map_err(plan_err)?.iter().for_each(|w| warn_one(w));
    Ok(ExitCode::SUCCESS)
}

/// The image step of `up`: pulls what the services' policies (or `--pull`) ask for, before
/// anything is created; `never` with a missing image fails here.
pub(super) async fn pull_for_up(
    engine: &Engine,
    p: &Project,
    services: &[String],
    deps: bool,
    pull: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let req = PullRequest {
        services: services.to_vec(),
        include_deps: deps,
        policy: pull.map(|v| policy_arg("--pull", v)).transpose()?,
        ignore_failures: false,
        for_up: true,
    };
    let pulled = ops::pull(engine, p, &req, progress).await;
    // The pull block ends before the containers' one, as compose shows them.
    crate::progress::finish();
    pulled.map_err(plan_err)?;
    Ok(())
}
