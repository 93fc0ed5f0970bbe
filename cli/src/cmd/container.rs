//! `berth container` subcommands: run, create, ls, inspect, logs, exec, start, stop, restart, kill,
//! rm, top, stats, pause, unpause, rename, wait, port. Output columns and `--format json` like docker's.

use std::io::Write;
use std::process::ExitCode;

use berth_runtime::container::{ContainerSummary, ExecConfig, ListFilters, LogsOptions};

use super::container_run::CreateFlags;
use super::engine_access::{EXIT_ENGINE, engine, engine_err, runtime};
use super::{EngineOpts, ExitWith};

/// println! that ignores a closed stdout (`berth container ls | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `berth container` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create and run a new container from an image (docker's `run`).
    Run(super::container_run::Args),
    /// Create a new container.
    Create(CreateArgs),
    /// List containers.
    #[command(alias = "ps", alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more containers.
    Inspect(InspectArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Display the running processes of a container.
    Top(One),
    /// Display a sample of containers' resource usage.
    Stats(super::stats::StatsArgs),
    /// Pause all processes within one or more containers.
    Pause(Many),
    /// Unpause all processes within one or more containers.
    Unpause(Many),
    /// Rename a container.
    Rename(RenameArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait(Many),
    /// Stream a running container's output until it stops (output only).
    Attach(One),
    /// List port mappings or a specific mapping for the container.
    Port(PortArgs),
    /// Create a new image from a container's changes.
    Commit(super::build::CommitArgs),
}

/// `container port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// Container.
    container: String,
    /// `PRIVATE_PORT[/PROTO]` (default protocol tcp).
    private_port: Option<String>,
}

/// `container create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    create: Box<CreateFlags>,
}

/// `container ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Filter output (`label=k[=v]`, `name=x`, `status=running`, `id=abc`).
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Format output: `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
}

/// `container inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Format output: `json` (default) or a Go template (`{{.State.Status}}`, `{{range ...}}`).
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs (`all`).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (RFC 3339) or relative time (`10m`).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (RFC 3339) or relative time (`10m`).
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Container.
    container: String,
}

/// `container exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short, long)]
    env: Vec<String>,
    /// Username or UID.
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    privileged: bool,
    /// Container.
    container: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `container start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach output and wait for the container to exit.
    #[arg(short, long)]
    attach: bool,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container stop` / `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<i64>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Force the removal of a running container.
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short, long)]
    volumes: bool,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// One container.
#[derive(Debug, clap::Args)]
pub struct One {
    /// Container.
    container: String,
}

/// Several containers.
#[derive(Debug, clap::Args)]
pub struct Many {
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container rename`.
#[derive(Debug, clap::Args)]
pub struct RenameArgs {
    /// Container.
    container: String,
    /// New name.
    new_name: String,
}

/// Runs a `berth container` subcommand.
pub fn run(opts: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    let cmd = match cmd {
        Command::Run(args) => return super::container_run::run(opts, args),
        Command::Commit(args) => return super::build::commit(opts, args),
        other => other,
    };
    let engine = engine(opts)?;
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            // Dispatched above, before this runtime exists (it builds its own).
            Command::Run(_) => unreachable!("container run is dispatched before"),
            Command::Commit(_) => unreachable!("container commit is dispatched before"),
            Command::Create(a) => {
                let cfg = a.create.to_config(false, false).map_err(|e| ExitWith {
                    code: EXIT_ENGINE,
                    message: format!("berth: {e:#}"),
                })?;
                let id = super::container_run::create_pulling(&engine, &a.create, cfg).await?;
                outln!("{id}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Ls(a) => ls(&engine, a).await,
            Command::Inspect(a) => {
                let mut all = Vec::new();
                let mut failed = None;
                for c in &a.containers {
                    match engine.container_inspect(c).await {
                        Ok(i) => all.push(serde_json::to_value(i)?),
                        Err(e) => {
                            eprintln!("Error: {e}");
                            failed = Some(1u8);
                        }
                    }
                }
                super::template::print_inspected(
                    &all,
                    a.format.as_deref(),
                    &mut std::io::stdout().lock(),
                )?;
                Ok(ExitCode::from(failed.unwrap_or(0)))
            }
            Command::Logs(a) => logs(&engine, a).await,
            Command::Exec(a) => {
                let cfg = ExecConfig {
                    cmd: a.command,
                    env: a.env,
                    user: a.user,
                    working_dir: a.workdir,
                    tty: a.tty,
                    interactive: a.interactive,
                    detach: a.detach,
                    privileged: a.privileged,
                };
                match engine.container_exec(&a.container, cfg).await {
                    Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
                    Err(berth_runtime::container::ContainerError::Start(e)) => {
                        Err(ExitWith { code: e.exec_exit_code(), message: format!("berth: {e}") }
                            .into())
                    }
                    Err(e) => Err(engine_err(e)),
                }
            }
            Command::Start(a) => {
                for c in &a.containers {
                    let start_err = |e: berth_runtime::container::ContainerError| {
                        let code = e.start_exit_code();
                        anyhow::Error::from(ExitWith { code, message: format!("berth: {e}") })
                    };
                    if a.attach {
                        let output = engine.container_start_attached(c).await.map_err(start_err)?;
                        let code = super::attach::attach_and_wait(&engine, c, output).await?;
                        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
                    }
                    engine.container_start(c).await.map_err(start_err)?;
                    outln!("{c}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Stop(a) => {
                each(&a.containers, |c| {
                    let e = engine.clone();
                    async move { e.container_stop(&c, a.time).await }
                })
                .await
            }
            Command::Restart(a) => {
                each(&a.containers, |c| {
                    let e = engine.clone();
                    async move { e.container_restart(&c, a.time).await }
                })
                .await
            }
            Command::Kill(a) => {
                let sig = a.signal.clone();
                each(&a.containers, |c| {
                    let e = engine.clone();
                    let sig = sig.clone();
                    async move { e.container_kill(&c, Some(&sig)).await }
                })
                .await
            }
            Command::Rm(a) => {
                each(&a.containers, |c| {
                    let e = engine.clone();
                    async move { e.container_remove(&c, a.force, a.volumes).await }
                })
                .await
            }
            Command::Pause(a) => {
                each(&a.containers, |c| {
                    let e = engine.clone();
                    async move { e.container_pause(&c).await }
                })
                .await
            }
            Command::Unpause(a) => {
                each(&a.containers, |c| {
                    let e = engine.clone();
                    async move { e.container_unpause(&c).await }
                })
                .await
            }
            Command::Top(a) => {
                let top = engine.container_top(&a.container).await.map_err(engine_err)?;
                let mut rows = vec![top.titles.clone()];
                rows.extend(top.processes.iter().cloned());
                print_table(&rows);
                Ok(ExitCode::SUCCESS)
            }
            Command::Stats(a) => super::stats::run(&engine, a).await,
            Command::Rename(a) => {
                engine.container_rename(&a.container, &a.new_name).await.map_err(engine_err)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Attach(a) => {
                let mut rx = engine.container_attach(&a.container).await.map_err(engine_err)?;
                while let Some(e) = rx.recv().await {
                    if e.stream == "stderr" {
                        let _ = std::io::stderr().write_all(e.text.as_bytes());
                    } else {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(e.text.as_bytes());
                        let _ = out.flush();
                    }
                }
                let code = engine.container_wait(&a.container).await.map_err(engine_err)?;
                Ok(ExitCode::from(code.clamp(0, 255) as u8))
            }
            Command::Port(a) => {
                let i = engine.container_inspect(&a.container).await.map_err(engine_err)?;
                let lines = super::netflags::port_lines(
                    &i.network_settings.ports,
                    a.private_port.as_deref(),
                    &a.container,
                )
                .map_err(|m| ExitWith { code: 1, message: format!("Error: {m}") })?;
                for l in lines {
                    outln!("{l}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Wait(a) => {
                for c in &a.containers {
                    let code = engine.container_wait(c).await.map_err(engine_err)?;
                    outln!("{code}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Runs `f` for each container, printing its name on success and the error otherwise
/// (docker's behaviour); exit 1 if any failed.
async fn each<F, Fut>(containers: &[String], f: F) -> anyhow::Result<ExitCode>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), berth_runtime::container::ContainerError>>,
{
    let mut failed = false;
    for c in containers {
        match f(c.clone()).await {
            Ok(()) => outln!("{c}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn parse_filters(f: &[String]) -> anyhow::Result<ListFilters> {
    let mut lf = ListFilters::default();
    for item in f {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {item}"))?;
        match k {
            "label" => lf.label.push(v.to_string()),
            "name" => lf.name.push(v.to_string()),
            "status" => lf.status.push(v.to_string()),
            "id" => lf.id.push(v.to_string()),
            _ => anyhow::bail!("invalid filter '{k}'"),
        }
    }
    Ok(lf)
}

fn quoted_command(c: &ContainerSummary, trunc: bool) -> String {
    let mut cmd = c.command.clone();
    if trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    format!("\"{cmd}\"")
}

async fn ls(engine: &berth_runtime::Engine, a: LsArgs) -> anyhow::Result<ExitCode> {
    let filters = parse_filters(&a.filter)?;
    let list = engine.container_list(a.all, &filters).await.map_err(engine_err)?;
    if a.quiet {
        for c in &list {
            outln!("{}", if a.no_trunc { &c.id[..] } else { &c.id[..12] });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now().timestamp();
    let ago = |t: i64| {
        format!("{} ago", berth_runtime::time::human_duration(chrono::Duration::seconds(now - t)))
    };
    if a.format == "json" {
        for c in &list {
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let created = chrono::DateTime::from_timestamp(c.created, 0).unwrap_or_default();
            let j = serde_json::json!({
                "Command": quoted_command(c, !a.no_trunc),
                "CreatedAt": created.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
                "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
                "Image": c.image,
                "Labels": labels.join(","),
                "LocalVolumes": c.mounts.iter().filter(|m| m.typ == "volume").count().to_string(),
                "Mounts": c.mounts.iter().map(|m| if m.name.is_empty() { m.source.clone() } else { m.name.clone() }).collect::<Vec<_>>().join(","),
                "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Networks": "",
                "Ports": super::netflags::ports_column(&c.ports),
                "RunningFor": ago(c.created),
                "Size": "0B",
                "State": c.state,
                "Status": c.status,
            });
            outln!("{j}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "CONTAINER ID".to_string(),
        "IMAGE".into(),
        "COMMAND".into(),
        "CREATED".into(),
        "STATUS".into(),
        "PORTS".into(),
        "NAMES".into(),
    ]];
    for c in &list {
        rows.push(vec![
            if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
            c.image.clone(),
            quoted_command(c, !a.no_trunc),
            ago(c.created),
            c.status.clone(),
            super::netflags::ports_column(&c.ports),
            c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

async fn logs(engine: &berth_runtime::Engine, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let tail = if a.tail == "all" || a.tail == "-1" {
        None
    } else {
        Some(
            a.tail
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("invalid --tail value {:?}", a.tail))?,
        )
    };
    let opts = LogsOptions {
        follow: a.follow,
        stdout: true,
        stderr: true,
        since: a.since.as_deref().map(super::time_args::parse_time_arg).transpose()?,
        until: a.until.as_deref().map(super::time_args::parse_time_arg).transpose()?,
        timestamps: a.timestamps,
        tail,
    };
    let mut rx = engine.container_logs(&a.container, opts).await.map_err(engine_err)?;
    while let Some(e) = rx.recv().await {
        let text = if a.timestamps { format!("{} {}", e.time, e.text) } else { e.text };
        if e.stream == "stderr" {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
    Ok(ExitCode::SUCCESS)
}
