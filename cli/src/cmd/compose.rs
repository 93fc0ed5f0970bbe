//! The compose commands (`up`, `down`, `ps`, `logs`, `start`, `stop`, `restart`, `kill`, `rm`,
//! `exec`, `ls`), with docker compose v2's names, flags and output shapes. Thin: the planner
//! decides and acts; this module parses, loads the project and prints.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::compose_logs::EndOn;
use berth_planner::observe::{self, Observed};
use berth_planner::ops::{self, DownOptions, Lifecycle, RunOptions, UpOptions};
use berth_planner::{PlanError, Progress, labels};
use berth_runtime::Engine;
use berth_runtime::container::{ExecConfig, LogsOptions};
use compose_spec::ErrorKind;
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;

use super::run::{engine, engine_err};
use super::{EXIT_USAGE, EngineOpts, ExitWith, ProjectOpts};

/// `berth up`.
#[derive(Debug, Default, clap::Args)]
pub struct UpArgs {
    /// Detached mode: run containers in the background.
    #[arg(short, long)]
    detach: bool,
    /// Scale SERVICE to NUM instances (overrides `scale` in the compose file).
    #[arg(long, value_name = "SERVICE=NUM")]
    scale: Vec<String>,
    /// Wait for services to be running|healthy (implies detached mode).
    #[arg(long)]
    wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy.
    #[arg(long)]
    wait_timeout: Option<u64>,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long, conflicts_with = "no_recreate")]
    force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long)]
    no_recreate: bool,
    /// Don't start linked services.
    #[arg(long)]
    no_deps: bool,
    /// Don't start the services after creating them.
    #[arg(long)]
    no_start: bool,
    /// Use this timeout in seconds for container shutdown.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    /// Stops all containers if any container was stopped (attached mode).
    #[arg(long, conflicts_with = "detach")]
    abort_on_container_exit: bool,
    /// Return the exit code of the selected service container (implies --abort-on-container-exit).
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    exit_code_from: Option<String>,
    /// Restrict attaching to the specified services.
    #[arg(long, value_name = "SERVICE")]
    attach: Vec<String>,
    /// Do not attach (stream logs) to the specified services.
    #[arg(long, value_name = "SERVICE")]
    no_attach: Vec<String>,
    /// Show timestamps (attached mode).
    #[arg(long)]
    timestamps: bool,
    /// Stops all containers if any container exited with failure (attached mode).
    #[arg(long, conflicts_with = "detach")]
    abort_on_container_failure: bool,
    /// Don't print prefix in logs (attached mode).
    #[arg(long)]
    no_log_prefix: bool,
    /// Produce monochrome output (attached mode).
    #[arg(long)]
    no_color: bool,
    /// Recreate anonymous volumes instead of retrieving data from the previous containers.
    #[arg(short = 'V', long)]
    renew_anon_volumes: bool,
    /// Recreate dependent containers. Incompatible with --no-recreate.
    #[arg(long, conflicts_with = "no_recreate")]
    always_recreate_deps: bool,
    /// Automatically attach to log output of dependent services.
    #[arg(long)]
    attach_dependencies: bool,
    /// Enable interactive shortcuts when running attached (berth has none: accepted, ignored).
    #[arg(long, require_equals = true, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    menu: Option<bool>,
    /// Pull image before running ("always"|"missing"|"never"|"build").
    #[arg(long, value_parser = ["always", "missing", "never", "build"])]
    pull: Option<String>,
    /// Services to start (and their dependencies).
    services: Vec<String>,
}

/// `berth create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Scale SERVICE to NUM instances.
    #[arg(long, value_name = "SERVICE=NUM")]
    scale: Vec<String>,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long, conflicts_with = "no_recreate")]
    force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long)]
    no_recreate: bool,
    /// Pull image before running ("always"|"missing"|"never"|"build").
    #[arg(long, value_parser = ["always", "missing", "never", "build"])]
    pull: Option<String>,
    /// Services to create (and their dependencies).
    services: Vec<String>,
}

impl From<CreateArgs> for UpArgs {
    fn from(c: CreateArgs) -> Self {
        UpArgs {
            detach: true,
            scale: c.scale,
            remove_orphans: c.remove_orphans,
            force_recreate: c.force_recreate,
            no_recreate: c.no_recreate,
            no_start: true,
            pull: c.pull,
            services: c.services,
            ..Default::default()
        }
    }
}

/// `berth scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Don't start linked services.
    #[arg(long)]
    no_deps: bool,
    /// SERVICE=REPLICAS pairs.
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    scale: Vec<String>,
}

impl From<ScaleArgs> for UpArgs {
    /// `scale` is a detached `up` of the named services that adds or removes replicas and
    /// leaves existing containers as they are.
    fn from(a: ScaleArgs) -> Self {
        let services = a.scale.iter().map(|s| s.split('=').next().unwrap_or(s).to_string());
        UpArgs {
            detach: true,
            no_recreate: true,
            no_deps: a.no_deps,
            services: services.collect(),
            scale: a.scale,
            ..Default::default()
        }
    }
}

/// `berth version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Format the output: `pretty` (default) or `json`.
    #[arg(short, long, default_value = "pretty")]
    format: String,
    /// Show only the version number.
    #[arg(long)]
    short: bool,
}

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

/// `berth ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all stopped containers.
    #[arg(short, long)]
    all: bool,
    /// Only display IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Display services.
    #[arg(long)]
    services: bool,
    /// Filter services by status (created, running, exited, paused, restarting, removing, dead).
    #[arg(long)]
    status: Vec<String>,
    /// Filter services by a property (supported filters: status).
    #[arg(long)]
    filter: Vec<String>,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Services to list.
    service_names: Vec<String>,
}

/// `berth port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// The service.
    service: String,
    /// The container port.
    private_port: u16,
}

/// `berth logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Index of the container if the service has multiple replicas.
    #[arg(long)]
    index: Option<u32>,
    /// Produce monochrome output.
    #[arg(long)]
    no_color: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Don't print prefix in logs.
    #[arg(long)]
    no_log_prefix: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    until: Option<String>,
    /// Services whose logs to show.
    services: Vec<String>,
}

/// `berth stop` / `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds.
    #[arg(short = 't', long)]
    timeout: Option<i64>,
    /// Services.
    services: Vec<String>,
}

/// `berth start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Services.
    services: Vec<String>,
}

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

/// `berth exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    env: Vec<String>,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Give extended privileges to the process.
    #[arg(long)]
    privileged: bool,
    /// Run the command as this user.
    #[arg(short, long)]
    user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short, long)]
    workdir: Option<String>,
    /// The service.
    service: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `berth ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects.
    #[arg(short, long)]
    all: bool,
    /// Only display project names.
    #[arg(short, long)]
    quiet: bool,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Filter output based on conditions provided (`name=SUBSTRING`).
    #[arg(long)]
    filter: Vec<String>,
}

/// The compose commands (flattened into the top-level command list).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create and start containers.
    Up(UpArgs),
    /// Stop and remove containers and volumes.
    Down(DownArgs),
    /// List containers.
    Ps(PsArgs),
    /// Print the public port for a port binding.
    Port(PortArgs),
    /// View output from containers.
    Logs(LogsArgs),
    /// Start services.
    Start(StartArgs),
    /// Stop services.
    Stop(StopArgs),
    /// Restart service containers.
    Restart(StopArgs),
    /// Force stop service containers.
    Kill(KillArgs),
    /// Removes stopped service containers.
    Rm(RmArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// List running compose projects.
    Ls(LsArgs),
    /// Pause services.
    Pause(StartArgs),
    /// Unpause services.
    Unpause(StartArgs),
    /// Display the running processes.
    Top(StartArgs),
    /// Creates containers for a service.
    Create(CreateArgs),
    /// List images used by the created containers.
    Images(ImagesArgs),
    /// Block until containers of all (or specified) services stop.
    Wait(WaitArgs),
    /// Scale services.
    Scale(ScaleArgs),
    /// Show the berth version information.
    Version(VersionArgs),
    /// Run a one-off command on a service.
    Run(Box<super::compose_run::RunArgs>),
    /// Receive real time events from containers.
    Events(super::compose_events::EventsArgs),
    /// Pull service images.
    Pull(super::compose_pull::PullArgs),
    /// Push service images.
    Push(super::compose_pull::PushArgs),
    /// Copy files/folders between a service container and the local filesystem.
    Cp(super::compose_cp::CpArgs),
}

/// `berth images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Only display IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Format the output: table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Services.
    services: Vec<String>,
}

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

/// Runs one compose command.
pub fn run(po: &ProjectOpts, eo: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    let engine = engine(eo)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    let run = RunOptions {
        dry_run: po.dry_run,
        parallel: if po.parallel > 0 { Some(po.parallel as usize) } else { None },
    };
    let progress = progress_sink(&po.progress, &po.ansi, po.dry_run);
    let result = rt.block_on(async move {
        match cmd {
            Command::Up(a) => up(po, &engine, a, &run, &progress).await,
            Command::Down(a) => {
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
                ops::down(&engine, &p, &opts, &run, &progress, &warn_one)
                    .await
                    .map_err(plan_err)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Ps(a) => ps(po, &engine, a).await,
            Command::Port(a) => port(po, &engine, a).await,
            Command::Logs(a) => logs(po, &engine, a).await,
            Command::Start(a) => {
                lifecycle(po, &engine, &a.services, Lifecycle::Start, &run, &progress).await
            }
            Command::Stop(a) => {
                lifecycle(po, &engine, &a.services, Lifecycle::Stop(a.timeout), &run, &progress)
                    .await
            }
            Command::Restart(a) => {
                lifecycle(po, &engine, &a.services, Lifecycle::Restart(a.timeout), &run, &progress)
                    .await
            }
            Command::Kill(a) => {
                let _ = a.remove_orphans;
                let what = Lifecycle::Kill(Some(a.signal));
                lifecycle(po, &engine, &a.services, what, &run, &progress).await
            }
            Command::Rm(a) => {
                let _ = a.force;
                let what = Lifecycle::Remove { stop: a.stop, volumes: a.volumes };
                lifecycle(po, &engine, &a.services, what, &run, &progress).await
            }
            Command::Exec(a) => exec(po, &engine, a).await,
            Command::Ls(a) => ls(&engine, a).await,
            Command::Pause(a) => {
                lifecycle(po, &engine, &a.services, Lifecycle::Pause(true), &run, &progress).await
            }
            Command::Unpause(a) => {
                lifecycle(po, &engine, &a.services, Lifecycle::Pause(false), &run, &progress).await
            }
            Command::Top(a) => top(po, &engine, a).await,
            Command::Create(a) => up(po, &engine, a.into(), &run, &progress).await,
            Command::Images(a) => images(po, &engine, a).await,
            Command::Wait(a) => wait(po, &engine, a, &run, &progress).await,
            Command::Scale(a) => up(po, &engine, a.into(), &run, &progress).await,
            Command::Version(a) => version(a),
            Command::Run(a) => super::compose_run::run(po, eo, &engine, *a, &run, &progress).await,
            Command::Events(a) => super::compose_events::run(po, &engine, a).await,
            Command::Cp(a) => super::compose_cp::run(po, &engine, a).await,
            Command::Pull(a) => super::compose_pull::run_pull(po, &engine, a, &progress).await,
            Command::Push(a) => super::compose_pull::run_push(po, &engine, a, &progress).await,
        }
    });
    crate::progress::finish();
    result
}

/// Progress as compose prints it (see `crate::progress`).
fn progress_sink(mode: &str, ansi: &str, dry_run: bool) -> Progress {
    crate::progress::sink(crate::progress::Mode::choose(mode, ansi), dry_run)
}

fn warn_all(w: &[String]) {
    w.iter().for_each(|w| warn_one(w));
}

/// A warning line as compose prints it.
pub(super) fn warn_one(w: &str) {
    eprintln!("WARN[0000] {w}");
}

pub(super) fn plan_err(e: PlanError) -> anyhow::Error {
    let code = match e {
        PlanError::NoSuchService(_) => EXIT_USAGE,
        _ => 1,
    };
    ExitWith { code, message: e.to_string() }.into()
}

/// Loads the project; with `allow_missing` and `-p`, a missing compose file gives an empty
/// project of that name (so `down -p x` works from anywhere, as with compose).
/// `services` named on the command line enable their profiles, as in compose.
pub(super) fn load(
    po: &ProjectOpts,
    allow_missing: bool,
    services: &[String],
) -> anyhow::Result<Project> {
    let working_dir = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))?;
    let opts = LoadOptions {
        working_dir,
        files: po.files.clone(),
        stdin: None,
        project_directory: po.project_directory.clone(),
        project_name: po.project_name.clone(),
        env_files: po.env_files.clone(),
        profiles: po.profiles.clone(),
        services: services.to_vec(),
        environment: std::env::vars().collect(),
        interpolate: true,
        resolve_paths: true,
    };
    match compose_spec::load_project(&opts) {
        Ok((p, warnings)) => {
            warn_all(&warnings);
            Ok(p)
        }
        // Only a missing file falls back: a broken one must not make `down` act on labels alone.
        Err(e) => match (&po.project_name, allow_missing && e.kind == ErrorKind::NotFound) {
            (Some(name), true) => Ok(Project { name: name.clone(), ..Default::default() }),
            _ => Err(ExitWith { code: e.exit_code(), message: e.to_string() }.into()),
        },
    }
}

async fn up(
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
        let pulled = super::compose_pull::pull_for_up(
            engine,
            &p,
            &a.services,
            !a.no_deps,
            a.pull.as_deref(),
            progress,
        )
        .await;
        pulled?;
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
    let streams =
        super::compose_logs::follow(engine, &p.name, &targets, &select, opts, style, end_on);
    tokio::select! {
        ended = streams => {
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
                Some(id) => engine.container_inspect(&id).await.map_err(engine_err)?.state.exit_code,
                None => 0,
            };
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        _ = sigint.recv() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            let stop = ops::lifecycle(engine, &p, &a.services, Lifecycle::Stop(a.timeout), run, progress);
            tokio::select! {
                r = stop => { r.map_err(plan_err)?; }
                _ = sigint.recv() => {}
            }
            Ok(ExitCode::from(130))
        }
    }
}

/// The log prefix of a container: `service-N` for compose-named ones, else the name.
pub(super) fn prefix_of(c: &Observed) -> String {
    let project = c.summary.labels.get(labels::PROJECT).cloned().unwrap_or_default();
    c.name.strip_prefix(&format!("{project}-")).unwrap_or(&c.name).to_string()
}

/// How log lines are printed.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogStyle {
    /// `name  | ` prefixes.
    pub(super) prefix: bool,
    /// The entry's timestamp before the text.
    pub(super) timestamps: bool,
    /// Coloured prefixes.
    pub(super) color: bool,
}

/// Whether to colour output for `--ansi` (auto: when stdout is a terminal).
fn use_color(ansi: &str) -> bool {
    match ansi {
        "never" => false,
        "always" => true,
        _ => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    }
}

/// Streams the logs of `targets` with `name  | ` prefixes; returns when every stream ended, or
/// with `first`, when the first one ended (with that container's id).
async fn stream_logs(
    engine: &Engine,
    targets: &[Observed],
    opts: LogsOptions,
    style: LogStyle,
    first: bool,
) -> Option<String> {
    let width = targets.iter().map(|c| prefix_of(c).len()).max().unwrap_or(0);
    let out = Arc::new(Mutex::new(()));
    let mut tasks = tokio::task::JoinSet::new();
    let timestamps = style.timestamps;
    for (i, c) in targets.iter().enumerate() {
        let Ok(mut rx) = engine.container_logs(&c.id, opts.clone()).await else { continue };
        let pfx = super::compose_logs::prefix_for(c, i, width, style);
        let out = out.clone();
        let id = c.id.clone();
        tasks.spawn(async move {
            while let Some(e) = rx.recv().await {
                let text = if timestamps { format!("{} {}", e.time, e.text) } else { e.text };
                let _g = out.lock();
                let mut line = format!("{pfx}{text}");
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(line.as_bytes());
                let _ = o.flush();
            }
            id
        });
    }
    while let Some(done) = tasks.join_next().await {
        if first {
            return done.ok();
        }
    }
    None
}

async fn lifecycle(
    po: &ProjectOpts,
    engine: &Engine,
    services: &[String],
    what: Lifecycle,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, true, services)?;
    ops::lifecycle(engine, &p, services, what, run, progress).await.map_err(plan_err)?;
    Ok(ExitCode::SUCCESS)
}

async fn targets(
    po: &ProjectOpts,
    engine: &Engine,
    services: &[String],
) -> anyhow::Result<(Project, Vec<Observed>)> {
    let p = load(po, true, services)?;
    for s in services {
        if !p.services.is_empty() && !p.services.contains_key(s) {
            return Err(plan_err(PlanError::NoSuchService(s.clone())));
        }
    }
    // With the damaged containers that kept only their name (listed dead).
    let obs = observe::containers_of(engine, &p).await.map_err(plan_err)?;
    let obs = obs.into_iter().filter(|c| services.is_empty() || services.contains(&c.service));
    Ok((p, obs.collect()))
}

async fn ps(po: &ProjectOpts, engine: &Engine, mut a: PsArgs) -> anyhow::Result<ExitCode> {
    for f in &a.filter {
        match f.split_once('=') {
            Some(("status", v)) => a.status.push(v.to_string()),
            _ => {
                return Err(ExitWith {
                    code: EXIT_USAGE,
                    message: format!("invalid filter {f:?}: only status=STATE is supported"),
                }
                .into());
            }
        }
    }
    let (p, mut obs) = targets(po, engine, &a.service_names).await?;
    // compose lists `run` containers too.
    let oneoffs = berth_planner::oneoff::containers(engine, &p.name).await.map_err(plan_err)?;
    obs.extend(
        oneoffs
            .into_iter()
            .map(Observed::from_summary)
            .filter(|c| a.service_names.is_empty() || a.service_names.contains(&c.service)),
    );
    let shown: Vec<&Observed> = obs
        .iter()
        .filter(|c| {
            if !a.status.is_empty() {
                return a.status.contains(&c.state);
            }
            a.all || c.is_running()
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if a.services {
        let mut names: Vec<&str> = if p.services.is_empty() {
            shown.iter().map(|c| c.service.as_str()).collect::<BTreeSet<_>>().into_iter().collect()
        } else {
            p.services
                .keys()
                .map(String::as_str)
                .filter(|s| a.service_names.is_empty() || a.service_names.iter().any(|n| n == s))
                .collect()
        };
        names.dedup();
        for n in names {
            let _ = writeln!(out, "{n}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.quiet {
        for c in &shown {
            let _ = writeln!(out, "{}", c.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for c in &shown {
        let i = match engine.container_inspect(&c.id).await {
            Ok(i) => i,
            // A damaged record (listed dead) has no inspect view: what the list knows is shown.
            Err(_) if c.is_dead() => Default::default(),
            // Removed between the list and here (a concurrent `down`): not shown.
            Err(_) => continue,
        };
        let s = &c.summary;
        let created = chrono::DateTime::from_timestamp(s.created, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
            .unwrap_or_default();
        let running_for = berth_runtime::container::ops_human_duration(
            chrono::Utc::now()
                - chrono::DateTime::from_timestamp(s.created, 0).unwrap_or_else(chrono::Utc::now),
        );
        rows.push(serde_json::json!({
            "Command": format!("\"{}\"", truncate(&s.command, 20)),
            "CreatedAt": created,
            "ExitCode": i.state.exit_code,
            "Health": i.state.health.as_ref().map(|h| h.status.clone()).unwrap_or_default(),
            "ID": c.id,
            "Image": s.image,
            "Labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            "LocalVolumes": s.mounts.iter().filter(|m| m.typ == "volume").count().to_string(),
            "Mounts": s.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
            "Name": c.name,
            "Names": c.name,
            // compose: the names of the networks the container is on, comma separated.
            "Networks": if i.network_settings.networks.is_empty() {
                i.host_config.network_mode.clone()
            } else {
                i.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(",")
            },
            "Ports": super::netflags::ports_column(&s.ports),
            "Project": p.name,
            "Publishers": s.ports.iter().map(|p| serde_json::json!({
                "URL": p.ip,
                "TargetPort": p.private_port,
                "PublishedPort": p.public_port,
                "Protocol": p.typ,
            })).collect::<Vec<_>>(),
            "RunningFor": format!("{running_for} ago"),
            "Service": c.service,
            "Size": "0B",
            "State": c.state,
            "Status": s.status,
        }));
    }
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                let _ = writeln!(out, "{r}");
            }
        }
        "table" => {
            let mut table = vec![vec![
                "NAME".to_string(),
                "IMAGE".into(),
                "COMMAND".into(),
                "SERVICE".into(),
                "CREATED".into(),
                "STATUS".into(),
                "PORTS".into(),
            ]];
            for r in &rows {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                table.push(vec![
                    f("Name"),
                    f("Image"),
                    f("Command"),
                    f("Service"),
                    f("RunningFor"),
                    f("Status"),
                    f("Ports"),
                ]);
            }
            print_table(&mut out, &table);
        }
        other => {
            return Err(ExitWith {
                code: EXIT_USAGE,
                message: format!("unsupported --format {other:?}: use table or json"),
            }
            .into());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `port SERVICE PRIVATE_PORT`: the host address and port of a published port, as compose
/// prints it (`127.0.0.1:49153`).
async fn port(po: &ProjectOpts, engine: &Engine, a: PortArgs) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, std::slice::from_ref(&a.service)).await?;
    let Some(c) = obs.iter().find(|c| c.number == a.index) else {
        return Err(ExitWith {
            code: 1,
            message: format!("service {:?} has no container with index {}", a.service, a.index),
        }
        .into());
    };
    let found =
        c.summary.ports.iter().find(|p| {
            p.private_port == a.private_port && p.typ == a.protocol && p.public_port != 0
        });
    match found {
        Some(p) => {
            // compose prints the first binding only (the IPv4 one when `[::]` is served too).
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                super::netflags::host_port(&p.ip, p.public_port)
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Err(ExitWith {
            code: 1,
            message: format!(
                "no port {}/{} published for container {} (service {:?})",
                a.private_port, a.protocol, c.name, a.service
            ),
        }
        .into()),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn print_table(out: &mut impl Write, rows: &[Vec<String>]) {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}   ", w = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

async fn logs(po: &ProjectOpts, engine: &Engine, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let (p, mut obs) = targets(po, engine, &a.services).await?;
    if let Some(n) = a.index {
        obs.retain(|c| c.number == n);
    }
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        t => Some(t.parse::<usize>().map_err(|_| ExitWith {
            code: EXIT_USAGE,
            message: format!("invalid --tail value {t:?}: use a number or all"),
        })?),
    };
    let opts = LogsOptions {
        follow: a.follow,
        stdout: true,
        stderr: true,
        tail,
        since: a.since.as_deref().map(super::run::parse_time_arg).transpose()?,
        until: a.until.as_deref().map(super::run::parse_time_arg).transpose()?,
        timestamps: a.timestamps,
    };
    let style = LogStyle {
        prefix: !a.no_log_prefix,
        timestamps: a.timestamps,
        color: !a.no_color && use_color(&po.ansi),
    };
    if a.follow {
        // New, recreated and restarted containers of the selected services are followed too.
        let select = |c: &Observed| {
            (a.services.is_empty() || a.services.contains(&c.service))
                && a.index.is_none_or(|n| c.number == n)
        };
        super::compose_logs::follow(engine, &p.name, &obs, &select, opts, style, EndOn::Idle).await;
    } else {
        stream_logs(engine, &obs, opts, style, false).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn exec(po: &ProjectOpts, engine: &Engine, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, std::slice::from_ref(&a.service)).await?;
    let Some(c) = obs.iter().find(|c| c.number == a.index && c.is_running()) else {
        return Err(ExitWith {
            code: 1,
            message: format!(
                "service {:?} is not running (no running container with index {}): start it with `berth up -d {}`",
                a.service, a.index, a.service
            ),
        }
        .into());
    };
    let cfg = ExecConfig {
        cmd: a.command,
        env: a.env,
        user: a.user,
        working_dir: a.workdir,
        // A terminal unless -T, and only when stdin is one (compose's default).
        tty: !a.no_tty && std::io::IsTerminal::is_terminal(&std::io::stdin()),
        // compose's exec keeps stdin open (`-i` defaults to true).
        interactive: true,
        detach: a.detach,
        privileged: a.privileged,
    };
    match engine.container_exec(&c.id, cfg).await {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        Err(e) => Err(ExitWith {
            code: if e.start_exit_code() == 127 { 127 } else { 126 },
            message: format!("service {:?}: {e}", a.service),
        }
        .into()),
    }
}

async fn top(po: &ProjectOpts, engine: &Engine, a: StartArgs) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, &a.services).await?;
    let mut out = std::io::stdout().lock();
    for c in obs.iter().filter(|c| c.is_running()) {
        let t = engine.container_top(&c.id).await.map_err(engine_err)?;
        let _ = writeln!(out, "{}", c.name);
        let mut table = vec![t.titles.clone()];
        table.extend(t.processes.iter().cloned());
        print_table(&mut out, &table);
        let _ = writeln!(out);
    }
    Ok(ExitCode::SUCCESS)
}

async fn images(po: &ProjectOpts, engine: &Engine, a: ImagesArgs) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, &a.services).await?;
    let mut rows = Vec::new();
    for c in &obs {
        let Ok(i) = engine.image_inspect(c.summary.image.clone()).await else { continue };
        let (repo, tag) = match c.summary.image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
            _ => (c.summary.image.clone(), "latest".to_string()),
        };
        rows.push((c.name.clone(), repo, tag, i.id, i.size));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let ids: BTreeSet<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        for id in ids {
            let _ = writeln!(out, "{id}");
        }
    } else if a.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(c, r, t, id, size)| {
                serde_json::json!({"ContainerName": c, "Repository": r, "Tag": t, "ID": id, "Size": size})
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(v));
    } else {
        let mut table = vec![vec![
            "CONTAINER".to_string(),
            "REPOSITORY".into(),
            "TAG".into(),
            "IMAGE ID".into(),
            "SIZE".into(),
        ]];
        for (c, r, t, id, size) in rows {
            let short = id.trim_start_matches("sha256:").chars().take(12).collect();
            table.push(vec![c, r, t, short, human_size(size)]);
        }
        print_table(&mut out, &table);
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes as docker prints them (`4.2MB`).
fn human_size(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.3}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.3}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

async fn wait(
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

async fn ls(engine: &Engine, a: LsArgs) -> anyhow::Result<ExitCode> {
    let mut names = Vec::new();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("name", v)) => names.push(v.to_string()),
            _ => {
                return Err(ExitWith {
                    code: EXIT_USAGE,
                    message: format!("invalid filter {f:?}: only name=VALUE is supported"),
                }
                .into());
            }
        }
    }
    let mut projects = observe::projects(engine).await.map_err(plan_err)?;
    projects.retain(|(name, _, _)| names.iter().all(|n| name.contains(n.as_str())));
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    for (name, states, files) in projects {
        let running = states.iter().filter(|s| s.as_str() == "running").count();
        if !a.all && running == 0 {
            continue;
        }
        // compose: `running(2)`, or every state with its count, comma separated.
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in &states {
            match counts.iter_mut().find(|(n, _)| n == s) {
                Some((_, c)) => *c += 1,
                None => counts.push((s.clone(), 1)),
            }
        }
        let status: Vec<String> = counts.iter().map(|(s, c)| format!("{s}({c})")).collect();
        rows.push((name, status.join(", "), files));
    }
    if a.quiet {
        for (n, _, _) in &rows {
            let _ = writeln!(out, "{n}");
        }
    } else if a.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, s, f)| serde_json::json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(v));
    } else {
        let mut table = vec![vec!["NAME".to_string(), "STATUS".into(), "CONFIG FILES".into()]];
        table.extend(rows.into_iter().map(|(n, s, f)| vec![n, s, f]));
        print_table(&mut out, &table);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints berth's version like `docker compose version` (`--short`, `--format json`).
fn version(a: VersionArgs) -> anyhow::Result<ExitCode> {
    let v = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    let _ = match (a.short, a.format.as_str()) {
        (true, _) => writeln!(out, "{v}"),
        (false, "json") => writeln!(out, "{}", serde_json::json!({ "version": v })),
        _ => writeln!(out, "berth version v{v}"),
    };
    Ok(ExitCode::SUCCESS)
}
