//! The compose commands (`up`, `down`, `ps`, `logs`, `run`, `exec`, ...), with docker compose
//! v2's names, flags and output shapes: one module per command, and this one parses the command
//! line into them and dispatches. Thin: the planner decides and acts; the commands parse, load
//! the project (see `project`) and print.

// `config` reads the compose files only (no engine): dispatched beside this group, by `cmd`.
pub(super) mod config;
mod cp;
mod create;
mod down;
mod event_diff;
mod events;
mod exec;
mod images;
mod kill;
mod log_stream;
mod logs;
mod ls;
mod pause;
mod port;
mod project;
mod ps;
mod pull;
mod restart;
mod rm;
mod run;
mod scale;
mod start;
mod stop;
mod top;
mod up;
mod version;
mod wait;
mod watch;

use std::process::ExitCode;

use berth_planner::Progress;
use berth_planner::ops::RunOptions;

// `build [SERVICE...]` (cmd::build) loads the project and reports planner errors the same way.
pub(crate) use project::{load, plan_err};

use super::engine_access::engine;
use super::{EngineOpts, ProjectOpts};

/// The compose commands (flattened into the top-level command list).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create and start containers.
    Up(up::UpArgs),
    /// Stop and remove containers and volumes.
    Down(down::DownArgs),
    /// List containers.
    Ps(ps::PsArgs),
    /// Print the public port for a port binding.
    Port(port::PortArgs),
    /// View output from containers.
    Logs(logs::LogsArgs),
    /// Start services.
    Start(project::ServicesArgs),
    /// Stop services.
    Stop(stop::StopArgs),
    /// Restart service containers.
    Restart(stop::StopArgs),
    /// Force stop service containers.
    Kill(kill::KillArgs),
    /// Removes stopped service containers.
    Rm(rm::RmArgs),
    /// Execute a command in a running container.
    Exec(exec::ExecArgs),
    /// List running compose projects.
    Ls(ls::LsArgs),
    /// Pause services.
    Pause(project::ServicesArgs),
    /// Unpause services.
    Unpause(project::ServicesArgs),
    /// Display the running processes.
    Top(project::ServicesArgs),
    /// Creates containers for a service.
    Create(create::CreateArgs),
    /// List images used by the created containers.
    Images(images::ImagesArgs),
    /// Block until containers of all (or specified) services stop.
    Wait(wait::WaitArgs),
    /// Scale services.
    Scale(scale::ScaleArgs),
    /// Show the berth version information.
    Version(version::VersionArgs),
    /// Run a one-off command on a service.
    Run(Box<run::RunArgs>),
    /// Receive real time events from containers.
    Events(events::EventsArgs),
    /// Copy files/folders between a service container and the local filesystem.
    Cp(cp::CpArgs),
    /// Pull service images.
    Pull(pull::PullArgs),
    /// Push service images.
    Push(pull::PushArgs),
    /// Watch the build context for services and rebuild/refresh containers when files are updated.
    Watch(watch::WatchArgs),
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
        let (engine, run, progress) = (&engine, &run, &progress);
        match cmd {
            Command::Up(a) => up::run(po, engine, a, run, progress).await,
            Command::Down(a) => down::run(po, engine, a, run, progress).await,
            Command::Ps(a) => ps::run(po, engine, a).await,
            Command::Port(a) => port::run(po, engine, a).await,
            Command::Logs(a) => logs::run(po, engine, a).await,
            Command::Start(a) => start::run(po, engine, a, run, progress).await,
            Command::Stop(a) => stop::run(po, engine, a, run, progress).await,
            Command::Restart(a) => restart::run(po, engine, a, run, progress).await,
            Command::Kill(a) => kill::run(po, engine, a, run, progress).await,
            Command::Rm(a) => rm::run(po, engine, a, run, progress).await,
            Command::Exec(a) => exec::run(po, engine, a).await,
            Command::Ls(a) => ls::run(engine, a).await,
            Command::Pause(a) => pause::pause(po, engine, a, run, progress).await,
            Command::Unpause(a) => pause::unpause(po, engine, a, run, progress).await,
            Command::Top(a) => top::run(po, engine, a).await,
            Command::Create(a) => up::run(po, engine, a.into(), run, progress).await,
            Command::Images(a) => images::run(po, engine, a).await,
            Command::Wait(a) => wait::run(po, engine, a, run, progress).await,
            Command::Scale(a) => up::run(po, engine, a.into(), run, progress).await,
            Command::Version(a) => version::run(a),
            Command::Run(a) => run::run(po, engine, *a, run, progress).await,
            Command::Events(a) => events::run(po, engine, a).await,
            Command::Cp(a) => cp::run(po, engine, a).await,
            Command::Pull(a) => pull::run_pull(po, engine, a, progress).await,
            Command::Push(a) => pull::run_push(po, engine, a, progress).await,
            Command::Watch(a) => watch::run(po, engine, a, run, progress).await,
        }
    });
    crate::progress::finish();
    result
}

/// Progress as compose prints it (see `crate::progress`).
fn progress_sink(mode: &str, ansi: &str, dry_run: bool) -> Progress {
    crate::progress::sink(crate::progress::Mode::choose(mode, ansi), dry_run)
}
