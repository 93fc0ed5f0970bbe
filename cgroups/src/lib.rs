//! Cgroup placement, limits, stats and freezer for containers, on cgroup v2 (unified with
//! controllers), v1 (one hierarchy per controller) and the hybrid layout (v1 controllers plus a
//! controller-less cgroup2 at `/sys/fs/cgroup/unified`, where limits go to v1 and the unified
//! hierarchy is used for process tracking and `cgroup.kill`).
//!
//! A [`Cgroup`] is named by a path relative to each hierarchy's root (OCI `cgroupsPath`, e.g.
//! `berth/<id>`); [`Cgroup::open`] rebuilds the same handle in another process.

mod control_file;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use control_file::{read_trimmed, write_file};

/// The mount point of the cgroup filesystems.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers berth places containers in (when mounted).
const V1_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer"];

/// Errors from cgroup operations; each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy was found.
    #[error("no usable cgroup filesystem found under {CGROUP_ROOT}")]
    NoCgroupFs,
    /// The cgroup path is empty, absolute outside the hierarchy, or contains `..`.
    #[error("invalid cgroup path {0:?}: must be a relative path without '..'")]
    InvalidPath(String),
    /// Creating a cgroup directory failed.
    #[error("cannot create cgroup directory {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused a limit.
    #[error("cannot set cgroup limit {file} = {value:?}: {source}")]
    Limit {
        /// The control file.
        file: PathBuf,
        /// The value written.
        value: String,
        /// The OS error.
        source: io::Error,
    },
    /// A requested limit cannot be expressed on this machine.
    #[error("unsupported cgroup setting: {0}")]
    Unsupported(String),
    /// Reading or writing a control file failed.
    #[error("cgroup file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A cgroup to open does not exist.
    #[error("cgroup {0:?} does not exist")]
    NotFound(String),
    /// Processes were still running in the cgroup after killing them.
    #[error("cgroup {path} still busy after killing its processes")]
    Busy {
        /// The directory.
        path: PathBuf,
    },
    /// Freezing did not complete in time.
    #[error("timed out waiting for cgroup {0} to freeze")]
    FreezeTimeout(PathBuf),
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, CgroupError>;

/// Which cgroup layout the machine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Pure cgroup v2 at the given mount point.
    V2(PathBuf),
    /// Only v1 hierarchies (controller -> mount point).
    V1(BTreeMap<String, PathBuf>),
    /// v1 controllers plus a controller-less cgroup2 mount.
    Hybrid {
        /// Controller -> v1 mount point.
        v1: BTreeMap<String, PathBuf>,
        /// The cgroup2 mount point.
        unified: PathBuf,
    },
}

impl Layout {
    /// Detects the layout from /proc/self/mountinfo, once per process: cgroup hierarchies are
    /// mounted at boot, and a container's start, exit and removal each asked several times.
    pub fn detect() -> Result<Layout> {
        static DETECTED: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        if let Some(l) = DETECTED.get() {
            return Ok(l.clone());
        }
        let info = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|source| CgroupError::Io { path: "/proc/self/mountinfo".into(), source })?;
        let layout = Self::from_mountinfo(&info)?;
        Ok(DETECTED.get_or_init(|| layout).clone())
    }

    /// Parses a mountinfo text (testable without a machine).
    pub fn from_mountinfo(info: &str) -> Result<Layout> {
        let mut v1 = BTreeMap::new();
        let mut v2: Option<PathBuf> = None;
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount_point = match left.split(' ').nth(4) {
                Some(m) => unescape_mount(m),
                None => continue,
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let opts = r.next().unwrap_or("");
            match fstype {
                // Prefer the canonical location when several are mounted.
                "cgroup2" if v2.is_none() || mount_point == Path::new(CGROUP_ROOT) => {
                    v2 = Some(mount_point);
                }
                "cgroup" => {
                    for opt in opts.split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            v1.entry(opt.to_string()).or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        match (v1.is_empty(), v2) {
            (true, Some(u)) => Ok(Layout::V2(u)),
            (false, Some(u)) => Ok(Layout::Hybrid { v1, unified: u }),
            (false, None) => Ok(Layout::V1(v1)),
            (true, None) => Err(CgroupError::NoCgroupFs),
        }
    }

    fn v1(&self) -> Option<&BTreeMap<String, PathBuf>> {
        match self {
            Layout::V2(_) => None,
            Layout::V1(m) | Layout::Hybrid { v1: m, .. } => Some(m),
        }
    }
}

/// Undoes the octal escapes (`\040` for space) mountinfo uses.
fn unescape_mount(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Resource usage of a cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Total CPU time consumed, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Current memory usage, bytes.
    pub memory_usage: u64,
    /// Memory limit in bytes, None when unlimited.
    pub memory_limit: Option<u64>,
    /// Number of processes (tasks) in the cgroup.
    pub pids_current: u64,
    /// pids limit, None when unlimited.
    pub pids_limit: Option<u64>,
    /// Inactive file cache, bytes: docker subtracts it from the usage it shows.
    pub memory_inactive_file: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written to block devices.
    pub block_write: u64,
}

/// A container's cgroup across every hierarchy of the machine's layout.
#[derive(Debug, Clone)]
pub struct Cgroup {
    rel: String,
    layout: Layout,
    /// v2 (or the hybrid unified) directory.
    unified: Option<PathBuf>,
    /// v1 controller -> directory (several controllers may share one).
    v1: BTreeMap<String, PathBuf>,
}

/// v1 "unlimited" values are huge numbers near i64::MAX rounded to the page size.
const V1_UNLIMITED_THRESHOLD: u64 = 1 << 62;

impl Cgroup {
    /// Builds the handle (no I/O beyond detection).
    fn handle(path: &str) -> Result<Cgroup> {
        Self::handle_in(Layout::detect()?, path)
    }

    /// Builds the handle for a given layout (tests give one rooted in a scratch directory).
    fn handle_in(layout: Layout, path: &str) -> Result<Cgroup> {
        let rel = normalize(path)?;
        let (unified, v1) = match &layout {
            Layout::V2(root) => (Some(root.join(&rel)), BTreeMap::new()),
            Layout::V1(m) => (None, m.iter().map(|(c, p)| (c.clone(), p.join(&rel))).collect()),
            Layout::Hybrid { v1, unified } => (
                Some(unified.join(&rel)),
                v1.iter().map(|(c, p)| (c.clone(), p.join(&rel))).collect(),
            ),
        };
        Ok(Cgroup { rel, layout, unified, v1 })
    }

    /// Creates the cgroup (and missing parents) in every hierarchy and applies `resources`.
    /// On any failure, the directories created here are removed again.
    pub fn create(path: &str, resources: &LinuxResources) -> Result<Cgroup> {
        Self::create_in(Self::handle(path)?, resources)
    }

    fn create_in(cg: Cgroup, resources: &LinuxResources) -> Result<Cgroup> {
        let mut created: Vec<PathBuf> = Vec::new();
        let res = cg.create_dirs(&mut created).and_then(|()| cg.apply(resources));
        if let Err(e) = res {
            for d in created.iter().rev() {
                let _ = fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Reattaches to an existing cgroup created by [`Cgroup::create`] (possibly in another process).
    pub fn open(path: &str) -> Result<Cgroup> {
        let cg = Self::handle(path)?;
        if !cg.dirs().iter().any(|d| d.is_dir()) {
            return Err(CgroupError::NotFound(cg.rel.clone()));
        }
        Ok(cg)
    }

    /// The cgroup path relative to each hierarchy root.
    pub fn path(&self) -> &str {
        &self.rel
    }

    /// The machine's layout this handle was built for.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Every directory of this cgroup (deduplicated; co-mounted controllers share one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.unified.iter().cloned().collect();
        for d in self.v1.values() {
            if !v.contains(d) {
                v.push(d.clone());
            }
        }
        v
    }

    fn create_dirs(&self, created: &mut Vec<PathBuf>) -> Result<()> {
        if let Layout::V2(root) = &self.layout {
            // Controllers must be enabled in every ancestor's subtree_control.
            enable_v2_controllers(root, &self.rel, created)?;
            return Ok(());
        }
        if let Some(u) = &self.unified {
            mkdir_tracked(u, created)?;
        }
        if let Some(map) = self.layout.v1() {
            for (ctrl, root) in map {
                let dir = root.join(&self.rel);
                if ctrl == "cpuset" {
                    mkdir_cpuset(root, &self.rel, created)?;
                } else {
                    mkdir_tracked(&dir, created)?;
                }
            }
        }
        Ok(())
    }

    /// Applies resource limits (also usable for `update`).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if matches!(self.layout, Layout::V2(_)) { self.apply_v2(r) } else { self.apply_v1(r) }
    }

    fn v1_dir(&self, ctrl: &str) -> Option<&PathBuf> {
        self.v1.get(ctrl)
    }

    fn v1_set(&self, ctrl: &str, file: &str, value: String) -> Result<()> {
        match self.v1_dir(ctrl) {
            Some(d) => set_limit(&d.join(file), &value),
            None => Err(CgroupError::Unsupported(format!(
                "{file} = {value}: the {ctrl} cgroup controller is not mounted"
            ))),
        }
    }

    fn apply_v1(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                self.v1_set("memory", "memory.limit_in_bytes", limit.to_string())?;
            }
            if let Some(res) = m.reservation() {
                self.v1_set("memory", "memory.soft_limit_in_bytes", res.to_string())?;
            }
            if let Some(swap) = m.swap() {
                // OCI swap is memory+swap, which is exactly memsw; without swap accounting the
                // file is missing and (like docker) the swap limit is ignored.
                if let Some(d) = self.v1_dir("memory") {
                    let f = d.join("memory.memsw.limit_in_bytes");
                    if f.exists() {
                        set_limit(&f, &swap.to_string())?;
                    } else {
                        tracing::warn!("swap limit ignored: no swap accounting (memory.memsw)");
                    }
                }
            }
            if let Some(sw) = m.swappiness() {
                self.v1_set("memory", "memory.swappiness", sw.to_string())?;
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(p) = c.period() {
                self.v1_set("cpu", "cpu.cfs_period_us", p.to_string())?;
            }
            if let Some(q) = c.quota() {
                self.v1_set("cpu", "cpu.cfs_quota_us", q.to_string())?;
            }
            if let Some(s) = c.shares() {
                self.v1_set("cpu", "cpu.shares", s.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                self.v1_set("cpuset", "cpuset.cpus", cpus.clone())?;
            }
            if let Some(mems) = c.mems() {
                self.v1_set("cpuset", "cpuset.mems", mems.clone())?;
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
            self.v1_set("pids", "pids.max", v)?;
        }
        if let Some(b) = r.block_io()
            && let Some(w) = b.weight()
        {
            // CFQ's file went with CFQ; BFQ has its own. Without either, docker discards the
            // weight with a warning: do the same rather than fail the container.
            let f = self.v1_dir("blkio").and_then(|d| {
                ["blkio.weight", "blkio.bfq.weight"].iter().map(|f| d.join(f)).find(|f| f.exists())
            });
            match f {
                Some(f) => set_limit(&f, &w.to_string())?,
                None => tracing::warn!("blkio weight {w} discarded: not supported by the kernel"),
            }
        }
        if let Some(devs) = r.devices()
            && let Some(d) = self.v1_dir("devices")
        {
            for dev in devs {
                let file = if dev.allow() { "devices.allow" } else { "devices.deny" };
                let typ = dev.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".into());
                let num = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
                let line = if typ == "a" && dev.major().is_none() && dev.minor().is_none() {
                    "a".to_string()
                } else {
                    format!(
                        "{typ} {}:{} {}",
                        num(dev.major()),
                        num(dev.minor()),
                        dev.access().clone().unwrap_or_else(|| "rwm".into())
                    )
                };
                set_limit(&d.join(file), &line)?;
            }
        }
        Ok(())
    }

    fn v2_set(&self, file: &str, value: String) -> Result<()> {
        match &self.unified {
            Some(d) => set_limit(&d.join(file), &value),
            None => Err(CgroupError::NoCgroupFs),
        }
    }

    fn apply_v2(&self, r: &LinuxResources) -> Result<()> {
        let max = |v: i64| if v < 0 { "max".to_string() } else { v.to_string() };
        if let Some(m) = r.memory() {
            if let Some(limit) = m.limit() {
                self.v2_set("memory.max", max(limit))?;
            }
            if let Some(res) = m.reservation() {
                self.v2_set("memory.low", max(res))?;
            }
            if let Some(swap) = m.swap() {
                // OCI swap is memory+swap; v2 limits swap alone.
                let v = match (swap, m.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                if self.unified.as_ref().is_some_and(|d| d.join("memory.swap.max").exists()) {
                    self.v2_set("memory.swap.max", v)?;
                }
            }
        }
        if let Some(c) = r.cpu() {
            if c.quota().is_some() || c.period().is_some() {
                let q = c.quota().map(max).unwrap_or_else(|| "max".into());
                let p = c.period().unwrap_or(100_000);
                self.v2_set("cpu.max", format!("{q} {p}"))?;
            }
            if let Some(s) = c.shares() {
                self.v2_set("cpu.weight", shares_to_weight(s).to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                self.v2_set("cpuset.cpus", cpus.clone())?;
            }
            if let Some(mems) = c.mems() {
                self.v2_set("cpuset.mems", mems.clone())?;
            }
        }
        if let Some(p) = r.pids() {
            self.v2_set(
                "pids.max",
                if p.limit() > 0 { p.limit().to_string() } else { "max".into() },
            )?;
        }
        if let Some(b) = r.block_io()
            && let Some(w) = b.weight()
        {
            // blkio 10..=1000 -> io 1..=10000, as runc converts.
            let w = 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
            self.v2_set("io.weight", w.to_string())?;
        }
        if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            // v2 device control needs an eBPF program; berth does not install one yet.
            tracing::debug!("device cgroup rules ignored on cgroup v2");
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    /// Where a new process can place itself without anyone writing `cgroup.procs`: the cgroup2
    /// directory (for clone3's `CLONE_INTO_CGROUP`) and every v1 hierarchy's `tasks` file. A
    /// `cgroup.procs` write takes the kernel's global threadgroup lock for writing, which waits
    /// for an RCU grace period (5-15 ms on this VM); a thread writing "0" to `tasks` moves only
    /// itself and skips that lock, and so does a clone straight into the cgroup.
    pub fn self_join_paths(&self) -> (Option<PathBuf>, Vec<PathBuf>) {
        let mut tasks: Vec<PathBuf> = Vec::new();
        for d in self.v1.values() {
            let t = d.join("tasks");
            if !tasks.contains(&t) {
                tasks.push(t);
            }
        }
        (self.unified.clone(), tasks)
    }

    /// Moves process `pid` (all its threads) into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: Pid) -> Result<()> {
        for d in self.dirs() {
            write_file(&d.join("cgroup.procs"), &pid.as_raw().to_string())
                .map_err(|source| CgroupError::Io { path: d.join("cgroup.procs"), source })?;
        }
        Ok(())
    }

    /// Current usage and limits.
    pub fn stats(&self) -> Result<CgroupStats> {
        let mut s = CgroupStats::default();
        if let (Layout::V2(_), Some(d)) = (&self.layout, &self.unified) {
            let cpu = read_trimmed(&d.join("cpu.stat")).unwrap_or_default();
            s.cpu_usage_ns = kv(&cpu, "usage_usec").unwrap_or(0) * 1000;
            s.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
            s.memory_limit = read_max(&d.join("memory.max"));
            s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_max(&d.join("pids.max"));
            let mem = read_trimmed(&d.join("memory.stat")).unwrap_or_default();
            s.memory_inactive_file = kv(&mem, "inactive_file").unwrap_or(0);
            let io = read_trimmed(&d.join("io.stat")).unwrap_or_default();
            (s.block_read, s.block_write) = io_stat_v2(&io);
            return Ok(s);
        }
        if let Some(d) = self.v1_dir("cpuacct") {
            s.cpu_usage_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
        }
        if let Some(d) = self.v1_dir("memory") {
            s.memory_usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
            s.memory_limit =
                read_u64(&d.join("memory.limit_in_bytes")).filter(|&l| l < V1_UNLIMITED_THRESHOLD);
            let mem = read_trimmed(&d.join("memory.stat")).unwrap_or_default();
            s.memory_inactive_file = kv(&mem, "total_inactive_file").unwrap_or(0);
        }
        if let Some(d) = self.v1_dir("blkio") {
            let io = read_trimmed(&d.join("blkio.throttle.io_service_bytes")).unwrap_or_default();
            (s.block_read, s.block_write) = io_service_bytes_v1(&io);
        }
        if let Some(d) = self.v1_dir("pids") {
            s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_max(&d.join("pids.max"));
        }
        Ok(s)
    }

    /// Whether the kernel OOM-killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = match (&self.layout, &self.unified, self.v1_dir("memory")) {
            (Layout::V2(_), Some(d), _) => (d.join("memory.events"), "oom_kill"),
            (_, _, Some(d)) => (d.join("memory.oom_control"), "oom_kill"),
            _ => return false,
        };
        read_trimmed(&file).ok().and_then(|t| kv(&t, key)).is_some_and(|n| n > 0)
    }

    /// PIDs of every process in the cgroup and its descendants (as seen from the host).
    pub fn pids(&self) -> Result<Vec<Pid>> {
        let dir = match (&self.layout, &self.unified) {
            (Layout::V2(_), Some(d)) => d.clone(),
            _ => match self
                .v1_dir("pids")
                .or_else(|| self.v1_dir("memory"))
                .or(self.unified.as_ref())
            {
                Some(d) => d.clone(),
                None => return Ok(Vec::new()),
            },
        };
        let mut out = Vec::new();
        collect_pids(&dir, &mut out)?;
        out.sort_by_key(|p| p.as_raw());
        out.dedup();
        Ok(out)
    }

    /// Freezes every process (docker pause).
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup (docker unpause).
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// Whether the cgroup is currently frozen.
    pub fn is_frozen(&self) -> bool {
        match (&self.layout, &self.unified, self.v1_dir("freezer")) {
            (Layout::V2(_), Some(d), _) => {
                read_trimmed(&d.join("cgroup.events")).ok().and_then(|t| kv(&t, "frozen"))
                    == Some(1)
            }
            (_, _, Some(d)) => read_trimmed(&d.join("freezer.state")).is_ok_and(|s| s == "FROZEN"),
            _ => false,
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        match (&self.layout, &self.unified, self.v1_dir("freezer")) {
            (Layout::V2(_), Some(d), _) => {
                set_limit(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
                let want = u64::from(frozen);
                while read_trimmed(&d.join("cgroup.events")).ok().and_then(|t| kv(&t, "frozen"))
                    != Some(want)
                {
                    if Instant::now() > deadline {
                        return Err(CgroupError::FreezeTimeout(d.clone()));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            }
            (_, _, Some(d)) => {
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let f = d.join("freezer.state");
                loop {
                    // v1 may report FREEZING for a while; writing again retries stuck tasks.
                    set_limit(&f, want)?;
                    if read_trimmed(&f).is_ok_and(|s| s == want) {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        let _ = write_file(&f, "THAWED");
                        return Err(CgroupError::FreezeTimeout(d.clone()));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            _ => Err(CgroupError::Unsupported("freezer controller not available".into())),
        }
    }

    /// Whether no process is left in the cgroup or its descendants (a cgroup already removed
    /// is empty). Exited processes leave their cgroup before they are reaped, so a zombie does
    /// not count.
    pub fn is_empty(&self) -> bool {
        // Without cgroup.events (no unified hierarchy, or the cgroup is gone): count tasks.
        if let Some(u) = &self.unified
            && let Ok(t) = read_trimmed(&u.join("cgroup.events"))
        {
            return kv(&t, "populated") == Some(0);
        }
        self.pids().is_ok_and(|p| p.is_empty())
    }

    /// Kills every process of the cgroup and its descendants with SIGKILL and waits until
    /// none is left (or `timeout` passes: [`CgroupError::Busy`]).
    ///
    /// Signalling a list of pids races a process that forks in between (a fork bomb outruns
    /// it for seconds), so, as runc does: `cgroup.kill` where the kernel has it (cgroup2,
    /// also the unified hierarchy of the hybrid layout), which kills the whole tree and any
    /// fork in flight at once; otherwise freeze, signal every task, thaw (a frozen task dies
    /// as soon as it is thawed), and repeat for stragglers.
    pub fn kill_all(&self, timeout: Duration) -> Result<()> {
        let kill_file = self.unified.as_ref().map(|u| u.join("cgroup.kill"));
        self.kill_rounds(timeout, kill_file.filter(|k| k.exists()))
    }

    /// [`Cgroup::kill_all`] the way it works without `cgroup.kill` (kernels before 5.14, v1
    /// only): freeze, SIGKILL every task, thaw. `kill_all` falls back to it by itself; public
    /// so that it is tested on kernels that have `cgroup.kill`.
    pub fn kill_all_frozen(&self, timeout: Duration) -> Result<()> {
        self.kill_rounds(timeout, None)
    }

    fn kill_rounds(&self, timeout: Duration, kill_file: Option<PathBuf>) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut first = true;
        loop {
            if self.is_empty() {
                return Ok(());
            }
            let killed = kill_file.as_ref().is_some_and(|k| write_file(k, "1").is_ok());
            // A cgroup frozen by v1's freezer (pause on v1 and hybrid) keeps SIGKILLed tasks
            // alive until it thaws.
            if killed {
                if self.is_frozen() {
                    let _ = self.thaw();
                }
            } else {
                // Only the first round freezes: a freeze that times out (a task stuck in the
                // kernel) is not worth repeating every round.
                let frozen = first && self.freeze().is_ok();
                for p in self.pids().unwrap_or_default() {
                    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
                }
                if frozen || self.is_frozen() {
                    let _ = self.thaw();
                }
            }
            first = false;
            // Dying takes each task a trip through the scheduler: give them a moment.
            let round = Instant::now() + Duration::from_millis(100);
            while Instant::now() < round {
                if self.is_empty() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if Instant::now() > deadline {
                let path = self.dirs().into_iter().next().unwrap_or_default();
                return Err(CgroupError::Busy { path });
            }
        }
    }

    /// Kills every remaining process and removes the cgroup from every hierarchy.
    /// Idempotent: a cgroup already gone is fine.
    pub fn destroy(&self) -> Result<()> {
        let dirs = self.dirs();
        if !dirs.iter().any(|d| d.exists()) {
            return Ok(());
        }
        self.kill_all(Duration::from_secs(30))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids().unwrap_or_default();
            for p in &pids {
                let _ = nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGKILL);
            }
            let mut busy = None;
            for d in &dirs {
                if let Err(e) = remove_tree(d) {
                    busy = Some((d.clone(), e));
                }
            }
            match busy {
                None => return Ok(()),
                Some((path, e)) => {
                    if Instant::now() > deadline {
                        return if e.raw_os_error() == Some(libc::EBUSY) {
                            Err(CgroupError::Busy { path })
                        } else {
                            Err(CgroupError::Io { path, source: e })
                        };
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Removes `dir` and its child cgroups, deepest first; a missing dir is fine.
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<Pid>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(t) => out.extend(t.lines().filter_map(|l| l.trim().parse().ok()).map(Pid::from_raw)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(CgroupError::Io { path: procs, source }),
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out)?;
            }
        }
    }
    Ok(())
}

/// docker/runc's conversion of cpu shares (2..=262144) to cgroup v2 cpu.weight (1..=10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn normalize(path: &str) -> Result<String> {
    let rel = path.trim_matches('/');
    if rel.is_empty() || rel.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(CgroupError::InvalidPath(path.to_string()));
    }
    Ok(rel.to_string())
}

fn mkdir_tracked(dir: &Path, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: d, source }),
        }
    }
    Ok(())
}

/// v1 cpuset children start with empty cpus/mems, which makes adding a task fail: copy the
/// parent's values into every level created.
fn mkdir_cpuset(root: &Path, rel: &str, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut cur = root.to_path_buf();
    for comp in rel.split('/') {
        let parent = cur.clone();
        cur.push(comp);
        let before = created.len();
        mkdir_tracked(&cur, created)?;
        if created.len() > before
            || read_trimmed(&cur.join("cpuset.cpus")).is_ok_and(|s| s.is_empty())
        {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = read_trimmed(&parent.join(f))
                    .map_err(|source| CgroupError::Io { path: parent.join(f), source })?;
                if read_trimmed(&cur.join(f)).is_ok_and(|s| s.is_empty()) {
                    set_limit(&cur.join(f), &v)?;
                }
            }
        }
    }
    Ok(())
}

/// On v2, creates each level and enables the available controllers for its children.
fn enable_v2_controllers(root: &Path, rel: &str, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut cur = root.to_path_buf();
    let comps = rel.split('/');
    for comp in comps {
        // Enable in `cur` (the parent of the next level) what we need below it.
        let avail = read_trimmed(&cur.join("cgroup.controllers")).unwrap_or_default();
        let enabled = read_trimmed(&cur.join("cgroup.subtree_control")).unwrap_or_default();
        for c in ["cpu", "cpuset", "memory", "pids", "io"] {
            if avail.split(' ').any(|a| a == c) && !enabled.split(' ').any(|a| a == c) {
                // Best effort: a controller busy in a threaded subtree is skipped, and a limit
                // that needs it fails later with a named file.
                let _ = write_file(&cur.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
        cur.push(comp);
        mkdir_tracked(&cur, created)?;
    }
    Ok(())
}

fn set_limit(file: &Path, value: &str) -> Result<()> {
    write_file(file, value).map_err(|source| CgroupError::Limit {
        file: file.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn read_u64(p: &Path) -> Option<u64> {
    read_trimmed(p).ok()?.parse().ok()
}

fn read_max(p: &Path) -> Option<u64> {
    read_u64(p)
}

/// Value of `key` in a "key value" per-line file.
fn kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// (read, write) bytes summed over devices from v2 `io.stat` (`8:0 rbytes=1 wbytes=2 ...`).
fn io_stat_v2(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            r += v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            w += v.parse().unwrap_or(0);
        }
    }
    (r, w)
}

/// (read, write) bytes summed over devices from v1 `blkio.throttle.io_service_bytes`
/// (`8:0 Read 4096` lines; the `Total` lines are skipped).
fn io_service_bytes_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(_dev), Some(op), Some(n)) = (it.next(), it.next(), it.next()) else { continue };
        let n: u64 = n.parse().unwrap_or(0);
        match op {
            "Read" => r += n,
            "Write" => w += n,
            _ => {}
        }
    }
    (r, w)
}

#[cfg(test)]
mod tests {
    #[test]
    fn block_io_parsers_sum_devices() {
        let v2 = "8:0 rbytes=4096 wbytes=100 rios=1 wios=1\n8:16 rbytes=1 wbytes=2 rios=0 wios=0";
        assert_eq!(super::io_stat_v2(v2), (4097, 102));
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\nTotal 4608";
        assert_eq!(super::io_service_bytes_v1(v1), (4096, 512));
    }

    use super::*;

    #[test]
    fn detects_hybrid() {
        let info = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        match Layout::from_mountinfo(info) {
            Ok(Layout::Hybrid { v1, unified }) => {
                assert_eq!(unified, PathBuf::from("/sys/fs/cgroup/unified"));
                assert_eq!(v1.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn detects_v2_and_comounted_v1() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(Layout::from_mountinfo(v2).ok(), Some(Layout::V2("/sys/fs/cgroup".into())));
        let v1 = "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        match Layout::from_mountinfo(v1) {
            Ok(Layout::V1(m)) => {
                assert_eq!(m["cpu"], m["cpuacct"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn weights_and_paths() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10000);
        assert!(normalize("../x").is_err());
        assert_eq!(normalize("/berth/abc").ok().as_deref(), Some("berth/abc"));
    }

    /// A cgroup2 tree as the kernel shows it: every level lists the controllers, and the
    /// container's directory already holds its control files (the kernel makes them on mkdir;
    /// here they are made in advance, so the writes land in files the test reads back).
    fn fake_v2_tree(files: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let leaf = root.path().join("berth/c1");
        fs::create_dir_all(&leaf).expect("mkdir");
        for dir in [root.path(), &root.path().join("berth")] {
            fs::write(dir.join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n")
                .expect("controllers");
            fs::write(dir.join("cgroup.subtree_control"), "").expect("subtree_control");
        }
        for f in files {
            fs::write(leaf.join(f), "").expect("control file");
        }
        root
    }

    fn limits() -> LinuxResources {
        use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids};
        let mut r = LinuxResources::default();
        let mut m = LinuxMemory::default();
        m.set_limit(Some(64 << 20)).set_reservation(Some(32 << 20)).set_swap(Some(96 << 20));
        let mut c = LinuxCpu::default();
        c.set_quota(Some(50_000)).set_period(Some(100_000)).set_shares(Some(512));
        c.set_cpus(Some("0".into())).set_mems(Some("0".into()));
        let mut p = LinuxPids::default();
        p.set_limit(20);
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(500));
        r.set_memory(Some(m)).set_cpu(Some(c)).set_pids(Some(p)).set_block_io(Some(b));
        r
    }

    const V2_FILES: [&str; 9] = [
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "cpu.max",
        "cpu.weight",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
    ];

    // This machine's cgroup2 hierarchy has no controllers (hybrid layout), so the v2 writer is
    // checked against a scratch tree: file names and value formats as the kernel reads them.
    #[test]
    fn v2_limits_are_written_in_the_kernels_formats() {
        let tree = fake_v2_tree(&V2_FILES);
        let layout = Layout::V2(tree.path().to_path_buf());
        let cg = Cgroup::handle_in(layout, "/berth/c1").expect("handle");
        let cg = Cgroup::create_in(cg, &limits()).expect("create");
        let leaf = tree.path().join("berth/c1");
        let read = |f: &str| fs::read_to_string(leaf.join(f)).expect(f);
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.low"), (32u64 << 20).to_string());
        // OCI's swap is memory+swap; v2's is swap alone.
        assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cpu.weight"), shares_to_weight(512).to_string());
        assert_eq!(read("cpuset.cpus"), "0");
        assert_eq!(read("pids.max"), "20");
        // blkio 10..=1000 maps onto io 1..=10000.
        assert_eq!(read("io.weight"), "4950");
        // Controllers are enabled for the children of each level above the container.
        let subtree = fs::read_to_string(tree.path().join("cgroup.subtree_control")).unwrap();
        assert!(subtree.starts_with('+'), "{subtree}");
        assert_eq!(cg.dirs(), vec![leaf.clone()]);

        // Unlimited values read "max".
        let mut r = LinuxResources::default();
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(0);
        r.set_pids(Some(p));
        cg.apply(&r).expect("apply");
        assert_eq!(read("pids.max"), "max");
    }

    #[test]
    fn v2_missing_control_file_is_named_and_new_dirs_go() {
        // No pids controller file in the container's cgroup: the limit fails naming the file.
        let tree = fake_v2_tree(&V2_FILES[..7]);
        fs::remove_dir_all(tree.path().join("berth")).expect("rm");
        fs::create_dir(tree.path().join("berth")).expect("mkdir");
        let layout = Layout::V2(tree.path().to_path_buf());
        let mut r = LinuxResources::default();
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(5);
        r.set_pids(Some(p));
        let cg = Cgroup::handle_in(layout, "berth/c2").expect("handle");
        match Cgroup::create_in(cg, &r) {
            Err(CgroupError::Limit { file, value, .. }) => {
                assert!(file.ends_with("berth/c2/pids.max"), "{file:?}");
                assert_eq!(value, "5");
            }
            other => panic!("expected a Limit error, got {other:?}"),
        }
        // The directory this create made is gone again; the pre-existing parent stays.
        assert!(!tree.path().join("berth/c2").exists());
        assert!(tree.path().join("berth").is_dir());
    }
}
