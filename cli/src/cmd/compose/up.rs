//! `berth up` (and `create`, `scale`, which are detached `up`s): create and start the project,
//! then, attached, stream the selected containers' logs until they stop or Ctrl-C.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use berth_planner::observe::{self, Observed};
use berth_planner::ops::{self, Lifecycle, RunOptions, UpOptions};
use berth_planner::{PlanError, Progress};
use berth_runtime::Engine;
use berth_runtime::container::LogsOptions;

use super::log_stream::{self, EndOn, LogStyle};
use super::project::{load, plan_err, use_color, warn_one};
use super::watch::Watch;
use crate::cmd::engine_access::engine_err;
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth up`.
#[derive(Debug, Default, clap::Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short, long)]
    pub(super) detach: bool,
    /// Build images before starting containers.
    #[arg(long, conflicts_with = "no_build")]
    pub(super) build: bool,
    /// Don't build an image, even if it's missing.
    #[arg(long)]
    pub(super) no_build: bool,
    /// Scale SERVICE to NUM instances (overrides `scale` in the compose file).
    #[arg(long, value_name = "SERVICE=NUM")]
    pub(super) scale: Vec<String>,
    /// Wait for services to be running|healthy (implies detached mode).
    #[arg(long)]
    pub(super) wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy.
    #[arg(long)]
    pub(super) wait_timeout: Option<u64>,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    pub(super) remove_orphans: bool,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long, conflicts_with = "no_recreate")]
    pub(super) force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long)]
    pub(super) no_recreate: bool,
    /// Don't start linked services.
    #[arg(long)]
    pub(super) no_deps: bool,
    /// Don't start the services after creating them.
    #[arg(long)]
    pub(super) no_start: bool,
    /// Use this timeout in seconds for container shutdown.
    #[arg(short = 't', long)]
    pub(super) timeout: Option<i64>,
    /// Stops all containers if any container was stopped (attached mode).
    #[arg(long, conflicts_with = "detach")]
    pub(super) abort_on_container_exit: bool,
    /// Return the exit code of the selected service container (implies --abort-on-container-exit).
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub(super) exit_code_from: Option<String>,
    /// Restrict attaching to the specified services.
    #[arg(long, value_name = "SERVICE")]
    pub(super) attach: Vec<String>,
    /// Do not attach (stream logs) to the specified services.
    #[arg(long, value_name = "SERVICE")]
    pub(super) no_attach: Vec<String>,
    /// Show timestamps (attached mode).
    #[arg(long)]
    pub(super) timestamps: bool,
    /// Stops all containers if any container exited with failure (attached mode).
    #[arg(long, conflicts_with = "detach")]
    pub(super) abort_on_container_failure: bool,
    /// Don't print prefix in logs (attached mode).
    #[arg(long)]
    pub(super) no_log_prefix: bool,
    /// Produce monochrome output (attached mode).
    #[arg(long)]
    pub(super) no_color: bool,
    /// Recreate anonymous volumes instead of retrieving data from the previous containers.
    #[arg(short = 'V', long)]
    pub(super) renew_anon_volumes: bool,
    /// Recreate dependent containers. Incompatible with --no-recreate.
    #[arg(long, conflicts_with = "no_recreate")]
    pub(super) always_recreate_deps: bool,
    /// Automatically attach to log output of dependent services.
    #[arg(long)]
    pub(super) attach_dependencies: bool,
    /// Enable interactive shortcuts when running attached (berth has none: accepted, ignored).
    #[arg(long, require_equals = true, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub(super) menu: Option<bool>,
    /// Pull image before running ("always"|"missing"|"never"|"build").
    #[arg(long, value_parser = ["always", "missing", "never", "build"])]
    pub(super) pull: Option<String>,
    /// Watch source code and rebuild/refresh containers when files are updated (attached mode).
    #[arg(short = 'w', long, conflicts_with = "detach")]
    pub(super) watch: bool,
    /// Services to start (and their dependencies).
    pub(super) services: Vec<String>,
}

/// Runs `berth up`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: UpArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, false, &a.services)?;
    let mut scale = HashMap::new();
    for s in &a.scale {
        let parsed = s.split_once('=').and_then(|(k, v)| v.parse::<u32>().ok().map(|n| (k, n)));
        let Some((k, n)) = parsed else {
            return Err(ExitWith {
                code: EXIT_USAGE,
                message: format!("invalid --scale value {s:?}: use SERVICE=NUMBER"),
            }
            .into());
        };
        if !p.services.contains_key(k) {
            return Err(plan_err(PlanError::NoSuchService(k.into())));
        }
        scale.insert(k.to_string(), n);
    }
    if let Some(svc) = &a.exit_code_from
        && !p.services.contains_key(svc)
    {
        return Err(plan_err(PlanError::NoSuchService(svc.clone())));
    }
    let opts = UpOptions {
        services: a.services.clone(),
        scale,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        always_recreate_deps: a.always_recreate_deps,
        renew_anon_volumes: a.renew_anon_volumes,
        no_deps: a.no_deps,
        no_start: a.no_start,
        remove_orphans: a.remove_orphans,
        timeout: a.timeout,
        wait: a.wait,
        wait_timeout: a.wait_timeout.map(Duration::from_secs),
    };
    if !run.dry_run {
        let selected = ops::selected_services(&p, &a.services, !a.no_deps).map_err(plan_err)?;
        crate::cmd::build::build_for_up(
            engine,
            &p,
            &selected,
            a.build,
            a.no_build,
            &po.progress,
            &po.ansi,
        )
        .await?;
    }
    let since = chrono::Utc::now().timestamp_nanos_opt().map(|n| n as i128);
    // Attached: take over SIGINT before the plan runs, so a Ctrl-C while containers are being
    // started still ends in a graceful stop instead of killing berth midway.
    let attached = !(a.detach || a.wait || a.no_start || run.dry_run);
    let mut sigint = if attached {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| anyhow::anyhow!("cannot handle SIGINT: {e}"))?,
        )
    } else {
        None
    };
    if !run.dry_run {
        super::pull::pull_for_up(engine, &p, &a.services, !a.no_deps, a.pull.as_deref(), progress)
            .await?;
    }
    let planned = ops::up(engine, &p, &opts, run, progress, &warn_one).await;
    // The progress block ends before logs or the error follow it.
    crate::progress::finish();
    planned.map_err(plan_err)?;
    let Some(sigint) = sigint.as_mut() else { return Ok(ExitCode::SUCCESS) };
    // Attached: stream every selected container's output until all stop or Ctrl-C.
    let selected = ops::selected_services(&p, &a.services, !a.no_deps).map_err(plan_err)?;
    let obs = observe::containers(engine, &p.name).await.map_err(plan_err)?;
    // Attached services: --attach wins, else all but `attach: false` and --no-attach ones.
    let _ = a.menu;
    let attached = |svc: &str| {
        if !a.attach.is_empty() {
            return a.attach.iter().any(|s| s == svc);
        }
        // compose: with services named, their dependencies only with --attach-dependencies.
        if !a.services.is_empty() && !a.attach_dependencies && !a.services.iter().any(|s| s == svc)
        {
            return false;
        }
        let off = p.services.get(svc).and_then(|s| s.attach) == Some(false);
        !off && !a.no_attach.iter().any(|s| s == svc)
    };
    let targets: Vec<Observed> =
        obs.into_iter().filter(|c| selected.contains(&c.service) && attached(&c.service)).collect();
    let opts =
        LogsOptions { follow: true, stdout: true, stderr: true, since, ..Default::default() };
    let end_on = if a.abort_on_container_exit || a.exit_code_from.is_some() {
        EndOn::AnyExit
    } else if a.abort_on_container_failure {
        EndOn::Failure
    } else {
        EndOn::Idle
    };
    let abort = end_on != EndOn::Idle;
    let style = LogStyle {
        prefix: !a.no_log_prefix,
        timestamps: a.timestamps,
        color: !a.no_color && use_color(&po.ansi),
    };
    // Replicas added, recreated or restarted while attached are followed too.
    let select = |c: &Observed| selected.contains(&c.service) && attached(&c.service);
    let streams = log_stream::follow(engine, &p.name, &targets, &select, opts, style, end_on);
    // With --watch, the watch runs beside the logs; all containers stopping (a restart, a
    // rebuild) does not end it, only Ctrl-C or a watch failure does.
    let w = Watch {
        po,
        engine,
        services: a.services.clone(),
        run,
        progress,
        reload: true,
        quiet: false,
        prune: true,
    };
    let watching =
        async { if a.watch { w.run(p.clone()).await } else { std::future::pending().await } };
    tokio::pin!(streams);
    tokio::pin!(watching);
    /// How attaching ended.
    enum End {
        /// The log streams ended (the id of the container whose exit ended them).
        Logs(Option<String>),
        /// Ctrl-C.
        Interrupted,
    }
    let end = tokio::select! {
        ended = &mut streams => End::Logs(ended),
        r = &mut watching => return r.map(|()| ExitCode::SUCCESS),
        _ = sigint.recv() => End::Interrupted,
    };
    let end = match end {
        // Logs ended (every container stopped): watching goes on until Ctrl-C.
        End::Logs(_) if a.watch && !abort => tokio::select! {
            r = &mut watching => return r.map(|()| ExitCode::SUCCESS),
            _ = sigint.recv() => End::Interrupted,
        },
        e => e,
    };
    match end {
        End::Logs(ended) => {
            // Ended by itself: everything stopped, or (--abort-on-container-failure) nothing failed.
            if !abort || (ended.is_none() && end_on == EndOn::Failure) {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("Aborting on container exit...");
            ops::lifecycle(engine, &p, &a.services, Lifecycle::Stop(a.timeout), run, progress)
                .await
                .map_err(plan_err)?;
            // The exit code of --exit-code-from's service, else of the first container that exited.
            let from = match &a.exit_code_from {
                Some(svc) => targets.iter().find(|c| &c.service == svc).map(|c| c.id.clone()),
                None => ended,
            };
            let code = match from {
                Some(id) => {
                    engine.container_inspect(&id).await.map_err(engine_err)?.state.exit_code
                }
                None => 0,
            };
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        End::Interrupted => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            let stop =
                ops::lifecycle(engine, &p, &a.services, Lifecycle::Stop(a.timeout), run, progress);
            tokio::select! {
                r = stop => { r.map_err(plan_err)?; }
                _ = sigint.recv() => {}
            }
            Ok(ExitCode::from(130))
        }
    }
}
