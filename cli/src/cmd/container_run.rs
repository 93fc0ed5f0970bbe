//! `berth container run` (and `container create`): docker-compatible flags turned into a
//! `ContainerCreateConfig`; attached runs stream the output and exit with the container's code.

use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::container::{
    ContainerCreateConfig, DeviceMapping, HealthConfig, RestartPolicy, Ulimit,
};
use berth_runtime::logs::parse_size;

use super::attach::{RawTerminal, attach_and_wait, open_stdin_fifo};
use super::engine_access::{EXIT_ENGINE, engine, runtime};
use super::time_args::parse_duration;
use super::{EngineOpts, ExitWith};

/// Flags shared by `run` and `container create`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=value, or KEY to copy it from this environment).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from files (`KEY=value` lines).
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Bind mount a host path or a named volume (`src:dst[:ro]`), or an anonymous volume (`dst`).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs (`/path[:size=64m,mode=1777]`).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (`name|uid[:group|gid]`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional groups to join.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Overwrite the default entrypoint of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit (`512m`, `1g`).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Memory + swap limit (-1: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (`1.5`).
    #[arg(long, allow_hyphen_values = true)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true)]
    pub cpu_shares: Option<i64>,
    /// CFS quota, microseconds.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period, microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// CPUs in which to allow execution (`0-1`).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Ulimit options (`nofile=1024:2048`).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Restart policy (`no`, `always`, `unless-stopped`, `on-failure[:max-retries]`).
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (`30s`).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run.
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before counting retries.
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period.
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Security options (`seccomp=unconfined`, `no-new-privileges`).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Sysctl options (`net.ipv4.ip_forward=1`).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Add a host device (`/dev/fuse[:/dev/fuse[:rwm]]`).
    #[arg(long)]
    pub device: Vec<String>,
    /// Set metadata on a container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep STDIN open (not forwarded yet).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Network mode: `none` (default, or `bridge` when ports are published), `host`, `bridge`,
    /// a network name or `container:NAME`; repeat for more networks (the first gets the
    /// default route).
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// Ports, aliases, addresses, DNS and hosts entries for bridge networks.
    #[command(flatten)]
    pub net: super::netflags::NetFlags,
    /// Logging driver (`json-file`).
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options (`max-size=10m`, `max-file=3`).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Tune the host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// Run on this directory as root filesystem instead of an image (IMAGE is then the command).
    #[arg(long)]
    pub rootfs: Option<std::path::PathBuf>,
    /// Pull image before running ("always"|"missing"|"never").
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Platform to pull for a multi-platform image (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Image to run.
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Arguments of `berth container run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub create: Box<CreateFlags>,
}

fn size(flag: &str, v: &Option<String>) -> anyhow::Result<i64> {
    match v {
        None => Ok(0),
        Some(s) if s == "-1" => Ok(-1),
        Some(s) => parse_size(s)
            .map(|n| n as i64)
            .with_context(|| format!("invalid size for {flag}: {s:?}")),
    }
}

fn kv_list(flag: &str, items: &[String]) -> anyhow::Result<indexmap::IndexMap<String, String>> {
    let mut m = indexmap::IndexMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            anyhow::bail!("invalid {flag} {i:?}");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// Reads `--env-file` files: `KEY=value` lines, `#` comments, bare `KEY` taken from our env.
fn env_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading env file {}", f.display()))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.extend(env_entry(line));
        }
    }
    Ok(out)
}

fn env_entry(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

impl CreateFlags {
    /// The create request these flags describe (and the name).
    pub fn to_config(
        &self,
        auto_remove: bool,
        attached: bool,
    ) -> anyhow::Result<ContainerCreateConfig> {
        let mut cfg = ContainerCreateConfig::default();
        let c = &mut cfg.config;
        let mut command = self.command.clone();
        if let Some(dir) = &self.rootfs {
            cfg.rootfs = Some(dir.clone());
            command.insert(0, self.image.clone());
        } else {
            c.image = self.image.clone();
        }
        if !command.is_empty() {
            c.cmd = Some(command);
        }
        if let Some(ep) = &self.entrypoint {
            c.entrypoint = Some(if ep.is_empty() { vec![] } else { vec![ep.clone()] });
        }
        let mut env = env_files(&self.env_file)?;
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));
        c.env = env;
        c.working_dir = self.workdir.clone().unwrap_or_default();
        c.user = self.user.clone().unwrap_or_default();
        c.hostname = self.hostname.clone().unwrap_or_default();
        c.labels = kv_list("--label", &self.label)?;
        c.tty = self.tty;
        c.open_stdin = self.interactive;
        // An attached -i closes the container's stdin with ours; -d -i keeps it open.
        c.stdin_once = self.interactive && attached;
        c.attach_stdin = self.interactive && attached;
        c.attach_stdout = true;
        c.attach_stderr = true;
        c.stop_signal = self.stop_signal.clone();
        c.stop_timeout = self.stop_timeout;
        if self.no_healthcheck {
            c.healthcheck = Some(HealthConfig { test: vec!["NONE".into()], ..Default::default() });
        } else if let Some(cmd) = &self.health_cmd {
            let d = |v: &Option<String>| {
                v.as_deref().map(parse_duration).transpose().map(|x| x.unwrap_or(0))
            };
            c.healthcheck = Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), cmd.clone()],
                interval: d(&self.health_interval)?,
                timeout: d(&self.health_timeout)?,
                retries: self.health_retries.unwrap_or(0),
                start_period: d(&self.health_start_period)?,
                start_interval: d(&self.health_start_interval)?,
            });
        }
        let h = &mut cfg.host_config;
        h.binds = self.volume.clone();
        for t in &self.tmpfs {
            let (p, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
            h.tmpfs.insert(p.to_string(), o.to_string());
        }
        h.memory = size("--memory", &self.memory)?;
        h.memory_reservation = size("--memory-reservation", &self.memory_reservation)?;
        h.memory_swap = size("--memory-swap", &self.memory_swap)?;
        h.nano_cpus = self.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0);
        h.cpu_shares = self.cpu_shares.unwrap_or(0);
        h.cpu_quota = self.cpu_quota.unwrap_or(0);
        h.cpu_period = self.cpu_period.unwrap_or(0);
        h.cpuset_cpus = self.cpuset_cpus.clone().unwrap_or_default();
        h.pids_limit = self.pids_limit;
        h.blkio_weight = self.blkio_weight.unwrap_or(0);
        h.cap_add = self.cap_add.clone();
        h.cap_drop = self.cap_drop.clone();
        h.privileged = self.privileged;
        h.readonly_rootfs = self.read_only;
        h.init = self.init.then_some(true);
        for u in &self.ulimit {
            let (name, lim) = u.split_once('=').with_context(|| format!("invalid ulimit {u:?}"))?;
            let (soft, hard) = lim.split_once(':').unwrap_or((lim, lim));
            let p = |x: &str| -> anyhow::Result<i64> {
                x.parse().with_context(|| format!("invalid ulimit {u:?}"))
            };
            h.ulimits.push(Ulimit { name: name.to_string(), soft: p(soft)?, hard: p(hard)? });
        }
        let (pname, max) = self.restart.split_once(':').unwrap_or((self.restart.as_str(), "0"));
        h.restart_policy = RestartPolicy {
            name: if pname == "no" { String::new() } else { pname.to_string() },
            maximum_retry_count: max
                .parse()
                .with_context(|| format!("invalid restart policy {:?}", self.restart))?,
        };
        if h.restart_policy.maximum_retry_count != 0 && pname != "on-failure" {
            anyhow::bail!("maximum retry count cannot be used with restart policy '{pname}'");
        }
        h.security_opt = self.security_opt.clone();
        h.sysctls = kv_list("--sysctl", &self.sysctl)?;
        h.shm_size = size("--shm-size", &self.shm_size)?;
        for d in &self.device {
            let parts: Vec<&str> = d.split(':').collect();
            h.devices.push(DeviceMapping {
                path_on_host: parts[0].to_string(),
                path_in_container: parts.get(1).unwrap_or(&parts[0]).to_string(),
                cgroup_permissions: parts.get(2).unwrap_or(&"rwm").to_string(),
            });
        }
        h.log_config.typ = self.log_driver.clone().unwrap_or_else(|| "json-file".into());
        h.log_config.config = kv_list("--log-opt", &self.log_opt)?;
        h.network_mode = self.network.first().cloned().unwrap_or_else(|| "none".into());
        h.auto_remove = auto_remove;
        h.group_add = self.group_add.clone();
        h.oom_score_adj = self.oom_score_adj.unwrap_or(0);
        self.net.apply(&self.network, &mut cfg)?;
        Ok(cfg)
    }
}

/// Runs `berth container run`.
pub fn run(opts: &EngineOpts, args: Args) -> anyhow::Result<ExitCode> {
    let cfg = args
        .create
        .to_config(args.rm, !args.detach)
        .map_err(|e| ExitWith { code: EXIT_ENGINE, message: format!("berth: {e:#}") })?;
    let engine = engine(opts)?;
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let id = create_pulling(&engine, &args.create, cfg).await?;
        // An attached -i run feeds our stdin to the container through its fifo, opened before
        // the start so the container's first read waits for it rather than seeing end-of-file.
        let stdin_fifo = if args.create.interactive && !args.detach {
            open_stdin_fifo(&engine, &id)
        } else {
            None
        };
        // Attached, the output is followed from the start on (woken by the monitor).
        let started = if args.detach {
            engine.container_start(&id).await.map(|()| None)
        } else {
            engine.container_start_attached(&id).await.map(Some)
        };
        let output = match started {
            Ok(output) => output,
            Err(e) => {
                let code = e.start_exit_code();
                if args.rm {
                    let _ = engine.container_remove(&id, true, true).await;
                }
                return Err(ExitWith { code, message: format!("berth: {e}") }.into());
            }
        };
        let Some(output) = output else {
            println!("{id}");
            return Ok(ExitCode::SUCCESS);
        };
        if let Some(fifo) = stdin_fifo {
            std::thread::spawn(move || {
                let mut fifo = fifo;
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut fifo);
                // Dropping the last writer gives the container end-of-file.
            });
        }
        // A terminal for -it: our keystrokes go through raw, the container's pty echoes.
        let _raw =
            if args.create.tty && args.create.interactive { RawTerminal::enter() } else { None };
        let code = attach_and_wait(&engine, &id, output).await?;
        Ok(ExitCode::from(code.clamp(0, 255) as u8))
    });
    // Everything it ran has finished: no need to wait for its idle threads on the way out.
    rt.shutdown_background();
    result
}

/// docker's image step of `run` and `create` around the create: `--pull always` pulls first,
/// `missing` (the default) pulls when the create finds no image ("Unable to find image …
/// locally") and creates again, `never` leaves the create's error. Pull lines go to stderr.
pub async fn create_pulling(
    engine: &berth_runtime::Engine,
    flags: &CreateFlags,
    cfg: berth_runtime::container::ContainerCreateConfig,
) -> anyhow::Result<String> {
    use super::engine_access::{EXIT_ENGINE, engine_err};
    let pulls = flags.rootfs.is_none();
    let pull = || async {
        let store = berth_image::ImageStore::open(engine.root())?;
        let lines = Some(super::image_pull::LayerLines::on_stderr());
        super::image_pull::pull_image(&store, &flags.image, flags.platform.as_deref(), lines).await
    };
    let failed = |e: anyhow::Error| -> anyhow::Error {
        super::ExitWith { code: EXIT_ENGINE, message: format!("berth: {e:#}") }.into()
    };
    if pulls && flags.pull == "always" {
        pull().await.map_err(failed)?;
    }
    match engine.container_create(flags.name.as_deref(), cfg.clone()).await {
        Err(berth_runtime::container::ContainerError::Image(
            berth_image::ImageError::NoSuchImage(_),
        )) if pulls && flags.pull == "missing" => {
            let shown = berth_image::Reference::parse(&flags.image)
                .map(|r| r.to_string())
                .unwrap_or_default();
            eprintln!("Unable to find image '{shown}' locally");
            pull().await.map_err(failed)?;
            engine.container_create(flags.name.as_deref(), cfg).await.map_err(engine_err)
        }
        r => r.map_err(engine_err),
    }
}
