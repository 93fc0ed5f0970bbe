//! The typed compose model: a [`Project`] in the long syntax `docker compose config` prints.
//!
//! Field order in each struct is the order compose prints keys (compose-go's struct order);
//! maps keep declaration order in memory but serialise sorted by key, as Go maps print.
//! Serialisation goes through `serde_json::Value` (see [`crate::emit`]); a thread-local switch
//! selects the few places where compose's JSON differs from its YAML.

use std::cell::Cell;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// A map keeping declaration order in memory (equality ignores order).
pub type Map<V> = IndexMap<String, V>;

thread_local! {
    static JSON_MODE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with JSON-specific serialisation switched on (compose's JSON differs slightly).
pub fn with_json_mode<T>(on: bool, f: impl FnOnce() -> T) -> T {
    let prev = JSON_MODE.with(|m| m.replace(on));
    let out = f();
    JSON_MODE.with(|m| m.set(prev));
    out
}

fn json_mode() -> bool {
    JSON_MODE.with(|m| m.get())
}

/// Serialises a map sorted by key (Go prints maps sorted).
pub fn sorted<S: Serializer, V: Serialize>(m: &Map<V>, s: S) -> Result<S::Ok, S::Error> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut out = s.serialize_map(Some(keys.len()))?;
    for k in keys {
        out.serialize_entry(k, &m[k])?;
    }
    out.end()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `x-*` extension keys of one object; printed sorted in YAML, omitted from JSON (as compose).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extensions(pub Map<serde_json::Value>);

impl Extensions {
    /// True when there are no extensions.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Extensions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if json_mode() {
            return s.serialize_map(Some(0))?.end();
        }
        sorted(&self.0, s)
    }
}

/// A duration in nanoseconds, printed like Go's `time.Duration` (`1m30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub i64);

impl Duration {
    /// Go's `time.Duration.String()` format.
    pub fn to_go_string(self) -> String {
        go_duration(self.0)
    }
    /// As a std duration (negative clamps to zero).
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0.max(0) as u64)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_go_string())
    }
}

fn go_duration(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Sub-second: one unit with a fraction, as Go does.
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
        return out;
    }
    let secs_total = u / 1_000_000_000;
    let nanos = u % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(s * 1_000_000_000 + nanos, 1_000_000_000));
    out.push('s');
    out
}

/// `v / div` with the fraction's trailing zeros removed (`1.5`, `2`).
fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rest:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// A byte size, printed as a quoted decimal string as compose does (`"1073741824"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ByteSize(pub i64);

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// A file mode, printed in octal as a string (`"0440"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0{:o}", self.0))
    }
}

/// A whole compose project after loading.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Project {
    /// Project name (already normalised).
    pub name: String,
    /// Services by name.
    #[serde(serialize_with = "sorted")]
    pub services: Map<Service>,
    /// Networks by key.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub networks: Map<Network>,
    /// Volumes by key.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub volumes: Map<Volume>,
    /// Secrets by key.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub secrets: Map<FileObject>,
    /// Configs by key.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub configs: Map<FileObject>,
    /// AI models by key.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub models: Map<Model>,
    /// Top-level `x-*` keys (the JSON emitter adds them back, as compose prints them there).
    #[serde(flatten)]
    pub extensions: Extensions,
    /// Absolute project directory (not printed).
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The compose files loaded, in order (not printed).
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    /// Names of the services disabled by profiles (not printed).
    #[serde(skip)]
    pub disabled_services: Vec<String>,
    /// The interpolation environment: process env over `.env` (not printed).
    #[serde(skip)]
    pub environment: Map<String>,
    /// The active profiles (not printed).
    #[serde(skip)]
    pub profiles: Vec<String>,
}

/// One service, keys in compose's print order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Service {
    /// Profiles enabling this service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// OCI annotations.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String>,
    /// Whether `up` attaches to its logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    /// Build configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// `develop` (watch) configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    /// Block IO limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Blkio>,
    /// Capabilities added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Parent cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Cgroup namespace mode (`host`/`private`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// CPU count (Windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// CPU percent (Windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CFS period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CFS quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// RT period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    /// RT runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs (fractional).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPU set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// CPU shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Command (None: the image's; Some(empty): cleared). JSON always prints it.
    #[serde(skip_serializing_if = "skip_command")]
    pub command: Option<Vec<String>>,
    /// Configs mounted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
    /// Fixed container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Windows credential spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    /// Dependencies.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub depends_on: Map<Dependency>,
    /// Deploy section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Device cgroup rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// DNS servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// DNS search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// Domain name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Entrypoint (as `command`).
    #[serde(skip_serializing_if = "skip_command")]
    pub entrypoint: Option<Vec<String>>,
    /// Provider (service implemented by a plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Environment (None value: unset, passed through if the host has it).
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub environment: Map<Option<String>>,
    /// Env files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// Exposed ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// `extends` (normally resolved away by the loader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    /// External links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// Extra /etc/hosts entries: host -> addresses.
    #[serde(serialize_with = "ser_hosts", skip_serializing_if = "Map::is_empty")]
    pub extra_hosts: Map<Vec<String>>,
    /// Supplementary groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// GPU requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    /// Hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Image reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run an init process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// IPC mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Isolation (Windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// Label files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<String>,
    /// Links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Logging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<ByteSize>,
    /// Memory reservation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<ByteSize>,
    /// Memory + swap limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<ByteSize>,
    /// Swappiness (compose prints it as a byte size string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<ByteSize>,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Models used.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub models: Map<Option<ServiceModel>>,
    /// Network mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks joined.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub networks: Map<Option<ServiceNetwork>>,
    /// Disable the OOM killer.
    #[serde(skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    /// OOM score adjustment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// PID mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// PIDs limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Published ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Privileged.
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Pull policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// Refresh period for `pull_policy: refresh`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_refresh_after: Option<String>,
    /// Read-only root filesystem.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Restart policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// OCI runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Replica count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<i64>,
    /// Secrets mounted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    /// Security options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// /dev/shm size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// Keep stdin open.
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    /// Grace period before SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    /// Stop signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Storage driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub storage_opt: Map<String>,
    /// Sysctls.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub sysctls: Map<String>,
    /// tmpfs mounts (`path[:options]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Allocate a TTY.
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Resource limits.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub ulimits: Map<Ulimit>,
    /// Mount the engine API socket.
    #[serde(skip_serializing_if = "is_false")]
    pub use_api_socket: bool,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User namespace mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// UTS mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Default volume driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<String>,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    /// Volumes from other services/containers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Hooks run before the container starts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_start: Vec<Hook>,
    /// Hooks run after start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    /// Hooks run before stop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Project {
    /// Service names with every service after the services it depends on (declaration order
    /// otherwise). Validation has ruled out cycles; a cycle here is broken arbitrarily.
    pub fn dependency_order(&self) -> Vec<&str> {
        fn visit<'a>(
            p: &'a Project,
            name: &'a str,
            seen: &mut Vec<&'a str>,
            out: &mut Vec<&'a str>,
        ) {
            if seen.contains(&name) {
                return;
            }
            seen.push(name);
            if let Some((key, s)) = p.services.get_key_value(name) {
                for dep in s.depends_on.keys() {
                    visit(p, dep, seen, out);
                }
                out.push(key);
            }
        }
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for name in self.services.keys() {
            visit(self, name, &mut seen, &mut out);
        }
        out
    }

    /// The image a service runs: its `image`, else `{project}-{service}` as compose names builds.
    pub fn image_name(&self, service: &str) -> String {
        match self.services.get(service).and_then(|s| s.image.clone()) {
            Some(i) => i,
            None => format!("{}-{service}", self.name),
        }
    }
}

impl Service {
    /// The replica count compose would start (`scale`, else `deploy.replicas`, else 1).
    pub fn replicas(&self) -> i64 {
        self.scale.or_else(|| self.deploy.as_ref().and_then(|d| d.replicas)).unwrap_or(1)
    }
}

fn skip_command(c: &Option<Vec<String>>) -> bool {
    // compose's JSON always has `command`/`entrypoint` (null when unset); YAML omits empties.
    if json_mode() {
        return false;
    }
    c.as_ref().is_none_or(|v| v.is_empty())
}

fn ser_hosts<S: Serializer>(m: &Map<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut entries = Vec::new();
    for k in keys {
        for ip in &m[k] {
            entries.push(format!("{k}={ip}"));
        }
    }
    let mut seq = s.serialize_seq(Some(entries.len()))?;
    for e in &entries {
        seq.serialize_element(e)?;
    }
    seq.end()
}

/// `build` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Build {
    /// Context directory or URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Dockerfile path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Inline Dockerfile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Entitlements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// Build args.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub args: Map<Option<String>>,
    /// Provenance attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// SBOM attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    /// SSH agent sockets/keys (`default` or `id=path`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<String>,
    /// Image labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// Cache sources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Cache exports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// Disable the cache.
    #[serde(skip_serializing_if = "is_false")]
    pub no_cache: bool,
    /// Stages not cached.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_cache_filter: Vec<String>,
    /// Named additional contexts.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub additional_contexts: Map<String>,
    /// Always pull base images.
    #[serde(skip_serializing_if = "is_false")]
    pub pull: bool,
    /// Extra hosts during build.
    #[serde(serialize_with = "ser_hosts", skip_serializing_if = "Map::is_empty")]
    pub extra_hosts: Map<Vec<String>>,
    /// Isolation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Network during build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Target stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Build secrets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    /// /dev/shm size during build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// Extra tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Build ulimits.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub ulimits: Map<Ulimit>,
    /// Target platforms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Privileged build.
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `develop` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Develop {
    /// Watch rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<WatchRule>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `develop.watch` rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WatchRule {
    /// Watched path.
    pub path: String,
    /// Action (`sync`, `rebuild`, `restart`, `sync+restart`, `sync+exec`).
    pub action: String,
    /// Target in the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Command for `sync+exec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Hook>,
    /// Ignored patterns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Included patterns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Initial sync.
    #[serde(skip_serializing_if = "is_false")]
    pub initial_sync: bool,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `blkio_config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Blkio {
    /// Weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Per-device weights.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<BlkioWeight>,
    /// Read bytes/s limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<BlkioRate>,
    /// Read IO/s limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<BlkioRate>,
    /// Write bytes/s limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<BlkioRate>,
    /// Write IO/s limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<BlkioRate>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A device weight.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioWeight {
    /// Device path.
    pub path: String,
    /// Weight.
    pub weight: i64,
}

/// A device rate limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioRate {
    /// Device path.
    pub path: String,
    /// Rate.
    pub rate: ByteSize,
}

/// A service's reference to a secret or config.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileRef {
    /// Secret/config key.
    pub source: String,
    /// Path in the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Windows credential spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CredentialSpec {
    /// Config name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// File.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    pub condition: String,
    /// Restart this service when the dependency is updated.
    #[serde(skip_serializing_if = "is_false")]
    pub restart: bool,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
    /// Fail if the dependency is missing.
    pub required: bool,
}

impl Default for Dependency {
    fn default() -> Self {
        Dependency {
            condition: "service_started".into(),
            restart: false,
            extensions: Extensions::default(),
            required: true,
        }
    }
}

/// `deploy` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deploy {
    /// `replicated` / `global`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Service labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// Update config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// Rollback config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Resources.
    #[serde(skip_serializing_if = "Resources::skip")]
    pub resources: Resources,
    /// Restart policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Placement.
    #[serde(skip_serializing_if = "Placement::skip")]
    pub placement: Placement,
    /// Endpoint mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Rolling update settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateConfig {
    /// Parallelism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// Delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Failure action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    /// Monitor period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Duration>,
    /// Max failure ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    /// Order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Limits and reservations.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    /// Limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    /// Reservations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Resources {
    fn skip(&self) -> bool {
        // YAML omits an empty struct; Go's JSON always prints it.
        !json_mode() && *self == Resources::default()
    }
}

/// One resource set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resource {
    /// CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// PIDs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
    /// Generic resources.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<GenericResource>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A device request (GPUs and similar).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceRequest {
    /// Capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Count (-1: all, printed as -1 like compose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Device ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub options: Map<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A generic resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GenericResource {
    /// Discrete spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteResource>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Kind and value of a discrete generic resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiscreteResource {
    /// Kind.
    pub kind: String,
    /// Value.
    pub value: i64,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Swarm-style restart policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RestartPolicy {
    /// Condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Max attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    /// Window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Placement constraints.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Placement {
    /// Constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Preferences (`spread`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<Map<String>>,
    /// Max replicas per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<i64>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Placement {
    fn skip(&self) -> bool {
        !json_mode() && *self == Placement::default()
    }
}

/// A device mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Device {
    /// Host path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Container path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Cgroup permissions.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub permissions: String,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service implemented by a provider plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Provider {
    /// Provider type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Options (values are strings or lists of strings).
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub options: Map<serde_json::Value>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// An env file reference.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvFile {
    /// Path.
    pub path: String,
    /// Whether it must exist.
    pub required: bool,
    /// Format (`raw`).
    pub format: Option<String>,
}

impl Serialize for EnvFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // compose prints a required plain file as a bare path.
        if self.required && self.format.is_none() {
            return s.serialize_str(&self.path);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("path", &self.path)?;
        if let Some(f) = &self.format {
            m.serialize_entry("format", f)?;
        }
        m.serialize_entry("required", &self.required)?;
        m.end()
    }
}

/// `extends`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Extends {
    /// File.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Service.
    pub service: String,
}

/// Healthcheck.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Healthcheck {
    /// Test command (`["CMD", ...]`, `["CMD-SHELL", s]`, `["NONE"]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Start period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// Start interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    /// Disabled.
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Logging.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Logging {
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub options: Map<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service's use of a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceModel {
    /// Variable receiving the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_var: Option<String>,
    /// Variable receiving the model name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_var: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A service's attachment to a network.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceNetwork {
    /// Aliases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub driver_opts: Map<String>,
    /// Gateway priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    /// Interface name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Static IPv4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Static IPv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Link-local IPs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A published port (long syntax).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Port {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ingress` / `host`.
    pub mode: String,
    /// Host IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Container port.
    pub target: u32,
    /// Host port or range, as a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp` / `udp` / `sctp`.
    pub protocol: String,
    /// Application protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A mount (long syntax).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceVolume {
    /// `bind`, `volume`, `tmpfs`, `npipe`, `cluster`, `image`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Source (volume name, host path, image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Container path.
    pub target: String,
    /// Read-only.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Consistency (ignored on Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Image options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOptions>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Bind mount options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindOptions {
    /// SELinux relabel (`z`/`Z`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Propagation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path when missing (default true).
    pub create_host_path: bool,
    /// Recursive read-only mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            selinux: None,
            propagation: None,
            create_host_path: true,
            recursive: None,
            extensions: Extensions::default(),
        }
    }
}

/// Volume mount options.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VolumeOptions {
    /// Labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// Don't copy image data.
    #[serde(skip_serializing_if = "is_false")]
    pub nocopy: bool,
    /// Sub-path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// tmpfs mount options.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TmpfsOptions {
    /// Size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    /// Mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// Image mount options.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageOptions {
    /// Sub-path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A ulimit: one value or soft/hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ulimit {
    /// `nproc: 65535`.
    Single(i64),
    /// `nofile: {soft, hard}`.
    SoftHard {
        /// Soft limit.
        soft: i64,
        /// Hard limit.
        hard: i64,
    },
}

impl Ulimit {
    /// (soft, hard).
    pub fn limits(self) -> (i64, i64) {
        match self {
            Ulimit::Single(v) => (v, v),
            Ulimit::SoftHard { soft, hard } => (soft, hard),
        }
    }
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ulimit::Single(v) => s.serialize_i64(*v),
            Ulimit::SoftHard { soft, hard } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("soft", soft)?;
                m.serialize_entry("hard", hard)?;
                m.end()
            }
        }
    }
}

/// A lifecycle hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hook {
    /// Command.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Image of the init container (`pre_start` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run once per replica (`pre_start` only).
    #[serde(skip_serializing_if = "is_false")]
    pub per_replica: bool,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Privileged.
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Environment.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub environment: Map<Option<String>>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level network.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Network {
    /// Engine-side name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub driver_opts: Map<String>,
    /// IPAM.
    #[serde(skip_serializing_if = "Ipam::skip")]
    pub ipam: Ipam,
    /// Managed outside compose.
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    /// No external connectivity.
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    /// Attachable.
    #[serde(skip_serializing_if = "is_false")]
    pub attachable: bool,
    /// Labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// IPv4 enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// IPv6 enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// IPAM configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ipam {
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub options: Map<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

impl Ipam {
    fn skip(&self) -> bool {
        !json_mode() && *self == Ipam::default()
    }
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpamPool {
    /// Subnet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Auxiliary addresses.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub aux_addresses: Map<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Volume {
    /// Engine-side name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub driver_opts: Map<String>,
    /// Managed outside compose.
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    /// Labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileObject {
    /// Engine-side name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Source file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Source environment variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Managed outside compose.
    #[serde(skip_serializing_if = "is_false")]
    pub external: bool,
    /// Labels.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String>,
    /// Driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(serialize_with = "sorted", skip_serializing_if = "Map::is_empty")]
    pub driver_opts: Map<String>,
    /// Template driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level AI model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Model {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Model reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Context size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_size: Option<i64>,
    /// Runtime flags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_flags: Vec<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_order() {
        let mut p = Project::default();
        let mut web = Service::default();
        web.depends_on.insert("db".into(), Dependency::default());
        p.services.insert("web".into(), web);
        p.services.insert("db".into(), Service::default());
        assert_eq!(p.dependency_order(), ["db", "web"]);
    }

    #[test]
    fn go_durations() {
        let s = 1_000_000_000;
        assert_eq!(go_duration(90 * s), "1m30s");
        assert_eq!(go_duration(10 * s), "10s");
        assert_eq!(go_duration(60 * s), "1m0s");
        assert_eq!(go_duration(3600 * s), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(0), "0s");
    }
}
