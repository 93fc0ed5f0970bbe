//! Docker-Engine-API-shaped types (PascalCase JSON) for creating, inspecting and listing containers.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The body of a create request: the portable config plus host-specific settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateConfig {
    /// Portable container configuration.
    #[serde(flatten)]
    pub config: Config,
    /// Host-specific configuration.
    pub host_config: HostConfig,
    /// berth extension (like podman's `--rootfs`): run on this directory instead of an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<std::path::PathBuf>,
    /// Networks to join beyond `HostConfig.NetworkMode`, with aliases and static addresses.
    pub networking_config: NetworkingConfig,
}

/// The portable part of a container's configuration (docker's `Config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    /// Hostname of the container (default: the first 12 hex digits of its id).
    pub hostname: String,
    /// NIS domain name.
    pub domainname: String,
    /// `user`, `user:group`, `uid` or `uid:gid`.
    pub user: String,
    /// Whether stdin is attached.
    pub attach_stdin: bool,
    /// Whether stdout is attached.
    pub attach_stdout: bool,
    /// Whether stderr is attached.
    pub attach_stderr: bool,
    /// Exposed ports (`"80/tcp": {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<IndexMap<String, Empty>>,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub open_stdin: bool,
    /// Close stdin after the first attached client detaches.
    pub stdin_once: bool,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
    /// Command (arguments to the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Healthcheck test and timings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Image reference the container was created from.
    pub image: String,
    /// Anonymous volume mount points (`"/data": {}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<IndexMap<String, Empty>>,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: IndexMap<String, String>,
    /// Signal that stops the container (default SIGTERM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before SIGKILL (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
}

/// An empty JSON object (`{}`), as docker uses for set-like maps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Empty {}

/// Healthcheck configuration; durations in nanoseconds, 0 means the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Time between checks (default 30s).
    pub interval: i64,
    /// Time a check may take (default 30s).
    pub timeout: i64,
    /// Consecutive failures that make the container unhealthy (default 3).
    pub retries: i64,
    /// Initialisation time during which failures don't count (default 0).
    pub start_period: i64,
    /// Time between checks during the start period (default 5s).
    pub start_interval: i64,
}

/// Host-specific configuration (docker's `HostConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `host-path-or-volume:container-path[:ro|rw]`.
    pub binds: Vec<String>,
    /// Structured mounts.
    pub mounts: Vec<MountSpec>,
    /// tmpfs mounts: path -> options (`size=64m,mode=1777`).
    pub tmpfs: IndexMap<String, String>,
    /// Memory limit in bytes.
    pub memory: i64,
    /// Memory soft limit in bytes.
    pub memory_reservation: i64,
    /// Memory + swap limit in bytes (-1 unlimited).
    pub memory_swap: i64,
    /// CPU quota in units of 1e-9 CPUs.
    pub nano_cpus: i64,
    /// CFS quota in microseconds.
    pub cpu_quota: i64,
    /// CFS period in microseconds.
    pub cpu_period: i64,
    /// Relative CPU weight.
    pub cpu_shares: i64,
    /// CPUs allowed (`0-1`).
    pub cpuset_cpus: String,
    /// Max number of processes (0 or -1 unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    pub blkio_weight: u16,
    /// Capabilities to add (`ALL` allowed).
    pub cap_add: Vec<String>,
    /// Capabilities to drop (`ALL` allowed).
    pub cap_drop: Vec<String>,
    /// Full privileges.
    pub privileged: bool,
    /// Mount the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// Run an init as PID 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Resource limits.
    pub ulimits: Vec<Ulimit>,
    /// Namespaced kernel parameters.
    pub sysctls: IndexMap<String, String>,
    /// `seccomp=unconfined`, `no-new-privileges[:true]`, ...
    pub security_opt: Vec<String>,
    /// Size of /dev/shm in bytes (default 64 MiB).
    pub shm_size: i64,
    /// Host devices to add.
    pub devices: Vec<DeviceMapping>,
    /// Restart policy.
    pub restart_policy: RestartPolicy,
    /// Logging driver and options.
    pub log_config: LogConfig,
    /// `none`, `host`, `bridge`, a network name, or `container:NAME`.
    pub network_mode: String,
    /// Published ports: `"80/tcp": [{HostIp, HostPort}]`.
    pub port_bindings: IndexMap<String, Vec<PortBinding>>,
    /// Publish every exposed port to a random host port (`-P`).
    pub publish_all_ports: bool,
    /// DNS servers (upstreams of berth's DNS on bridge networks).
    pub dns: Vec<String>,
    /// DNS search domains.
    pub dns_search: Vec<String>,
    /// resolv.conf options.
    pub dns_options: Vec<String>,
    /// Extra /etc/hosts entries (`name:ip`, `ip` may be `host-gateway`).
    pub extra_hosts: Vec<String>,
    /// Links `NAME[:ALIAS]` (`--link`, compose `links:`): ALIAS (default NAME) resolves to
    /// container NAME for this container only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// Supplementary groups (names or ids).
    pub group_add: Vec<String>,
    /// OOM score adjustment.
    pub oom_score_adj: i32,
}

/// A structured mount (docker's `Mount`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// Host path (bind) or volume name (volume; empty for anonymous).
    pub source: String,
    /// Path in the container.
    pub target: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Options for bind mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    /// Options for volume mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// Options for tmpfs mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// Bind mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    /// Create the host path when missing.
    pub create_mountpoint: bool,
}

/// Volume mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    /// Don't copy image content into a fresh volume.
    pub no_copy: bool,
}

/// tmpfs mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    /// Size in bytes (0: unlimited, the kernel's half of RAM).
    pub size_bytes: i64,
    /// Permission bits.
    pub mode: u32,
}

/// One resource limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// Name (`nofile`, `nproc`, ...).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// A host device made available in the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    /// Device path on the host.
    pub path_on_host: String,
    /// Path in the container (default: the same).
    pub path_in_container: String,
    /// `rwm` subset.
    pub cgroup_permissions: String,
}

/// When to restart a container that exits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `""`/`no`, `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// Retries for `on-failure` (0: unlimited).
    pub maximum_retry_count: i64,
}

/// Logging driver (`json-file` only) and its options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// Driver name.
    #[serde(rename = "Type")]
    pub typ: String,
    /// Driver options (`max-size`, `max-file`).
    pub config: IndexMap<String, String>,
}

/// What `inspect` returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    /// Full 64-hex id.
    pub id: String,
    /// Creation time (RFC 3339, nanoseconds).
    pub created: String,
    /// The executable run.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Runtime state.
    pub state: ContainerState,
    /// Image id (`sha256:...`).
    pub image: String,
    /// Path of the container's resolv.conf.
    pub resolv_conf_path: String,
    /// Path of the container's hostname file.
    pub hostname_path: String,
    /// Path of the container's hosts file.
    pub hosts_path: String,
    /// Path of the json-file log.
    pub log_path: String,
    /// Name with a leading slash.
    pub name: String,
    /// Times the restart policy restarted the container.
    pub restart_count: i64,
    /// Storage driver.
    pub driver: String,
    /// Platform.
    pub platform: String,
    /// Host configuration.
    pub host_config: HostConfig,
    /// Mounts as seen in the container.
    pub mounts: Vec<MountPoint>,
    /// Container configuration (merged with the image's).
    pub config: Config,
    /// Network settings (minimal until networking lands).
    pub network_settings: NetworkSettings,
}

/// Runtime state of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub status: String,
    /// Running (also while paused).
    pub running: bool,
    /// Frozen.
    pub paused: bool,
    /// Waiting to be restarted by its policy.
    pub restarting: bool,
    /// The last exit was caused by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Unusable.
    pub dead: bool,
    /// PID of the container's first process on the host (0 when not running).
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Last start error.
    pub error: String,
    /// Last start time.
    pub started_at: String,
    /// Last exit time.
    pub finished_at: String,
    /// Health, when a healthcheck is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// Zero time in docker's format.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// Healthcheck state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    /// Consecutive failed checks.
    pub failing_streak: i64,
    /// The last (up to 5) check results.
    pub log: Vec<HealthLogEntry>,
}

/// One healthcheck result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthLogEntry {
    /// Start time.
    pub start: String,
    /// End time.
    pub end: String,
    /// Exit code (-1: could not run or timed out).
    pub exit_code: i64,
    /// Output (truncated to 4 KiB).
    pub output: String,
}

/// A mount as reported by inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// Volume name (volumes only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Volume driver (volumes only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// Mode string (`ro`, `z`, ...).
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Bind propagation.
    pub propagation: String,
}

/// Network settings (placeholder shape until bridge networks land).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// Networks by name.
    pub networks: BTreeMap<String, serde_json::Value>,
    /// Published ports: `"80/tcp": [{HostIp, HostPort}]` (null when not published).
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// Address on the default `bridge` network (docker's legacy top-level fields).
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Gateway on the default `bridge` network.
    pub gateway: String,
    /// Prefix length on the default `bridge` network.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// MAC address on the default `bridge` network.
    pub mac_address: String,
}

/// One row of `list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Names, each with a leading slash.
    pub names: Vec<String>,
    /// Image reference as given.
    pub image: String,
    /// Image id.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// Command line.
    pub command: String,
    /// Creation time (unix seconds).
    pub created: i64,
    /// Labels.
    pub labels: IndexMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`.
    pub state: String,
    /// Human status (`Up 3 seconds`, `Exited (0) 2 minutes ago`).
    pub status: String,
    /// Mounts.
    pub mounts: Vec<MountPoint>,
    /// Published ports.
    pub ports: Vec<PortSummary>,
}

/// Filters for `list` (docker's `label`, `name`, `status`, `id`).
#[derive(Debug, Clone, Default)]
pub struct ListFilters {
    /// `key` or `key=value`; all must match.
    pub label: Vec<String>,
    /// Substring of the name; any may match.
    pub name: Vec<String>,
    /// State names; any may match.
    pub status: Vec<String>,
    /// Id prefixes; any may match.
    pub id: Vec<String>,
    /// Also list damaged containers (state `dead`) that have no compose project label left,
    /// whatever `label` asks: compose claims those whose names its naming rule gives (one
    /// listing instead of a second one for them).
    pub or_unlabelled_damaged: bool,
}

impl ListFilters {
    /// Whether a list row (container `id` named `name` with `labels`, in `status`) passes the
    /// filters other than `all`.
    pub(crate) fn matches(
        &self,
        id: &str,
        name: &str,
        labels: &IndexMap<String, String>,
        status: &str,
    ) -> bool {
        if !self.status.is_empty() && !self.status.iter().any(|f| f == status) {
            return false;
        }
        if !self.id.is_empty() && !self.id.iter().any(|f| id.starts_with(f.as_str())) {
            return false;
        }
        if !self.name.is_empty()
            && !self.name.iter().any(|f| name.contains(f.trim_start_matches('/')))
        {
            return false;
        }
        self.label.iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f),
        })
    }
}

/// Options for `logs`.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this time (unix nanoseconds).
    pub since: Option<i128>,
    /// Only entries before this time (unix nanoseconds).
    pub until: Option<i128>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Only the last N lines (None: all).
    pub tail: Option<usize>,
}

/// Options for `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Extra environment.
    pub env: Vec<String>,
    /// User (default: the container's).
    pub user: Option<String>,
    /// Working directory (default: the container's).
    pub working_dir: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Relay our stdin to the process (`-i`); without, its stdin is empty.
    pub interactive: bool,
    /// Don't wait for the process.
    pub detach: bool,
    /// Run with full privileges.
    pub privileged: bool,
}

/// One sample of resource usage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Name (without slash).
    pub name: String,
    /// Total CPU time used, nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// Number of processes.
    pub pids: u64,
    /// Inactive file cache included in `memory_usage`, bytes (docker subtracts it).
    pub memory_inactive_file: u64,
    /// Bytes received on the container's interfaces (loopback excluded).
    pub net_rx: u64,
    /// Bytes sent on the container's interfaces (loopback excluded).
    pub net_tx: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written to block devices.
    pub block_write: u64,
    /// When the sample was taken, nanoseconds since the Unix epoch.
    pub read_ns: u64,
}

/// What `top` returns: ps-like columns and rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TopResult {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

/// docker's `NetworkingConfig` of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    /// Endpoint settings per network name.
    pub endpoints_config: IndexMap<String, EndpointRequest>,
}

/// What a container asks of one network (docker's `EndpointSettings` in a create request).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRequest {
    /// Network-scoped DNS aliases.
    pub aliases: Vec<String>,
    /// Static addresses.
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// Static MAC address.
    pub mac_address: String,
    /// Higher connects first; the first non-internal network gets the default route.
    pub gw_priority: i32,
}

/// Static addresses of an endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EndpointIpamConfig {
    /// Static IPv4 address.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Static IPv6 address (IPv6-enabled networks).
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
}

/// One host binding of a published port (docker's `PortBinding`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (empty: every address).
    pub host_ip: String,
    /// Host port (empty or 0: a free one).
    pub host_port: String,
}

/// One published port as `list` reports it (docker's `Port`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortSummary {
    /// Host address.
    #[serde(rename = "IP")]
    pub ip: String,
    /// Container port.
    pub private_port: u16,
    /// Host port.
    pub public_port: u16,
    /// `tcp` or `udp`.
    #[serde(rename = "Type")]
    pub typ: String,
}
