//! What deleted or damaged state roots left on the host, found and removed (`berth system
//! prune`): container monitors and the containers they ran, their cgroups, per-root DNS servers,
//! `cp` overlay mounts, bridges, nft rules and subnet elements, and `ip_forward` holders.
//!
//! Ownership: every such object names its state root (a monitor's and a DNS server's argv, a
//! mount's path, a bridge's alias, a holder's path) or is named by one (a cgroup by its
//! container's id, an nft rule by its network's id). An object is orphaned when its state root
//! no longer exists or no longer has the object's record; objects of a state root that still
//! knows them, and anything not berth's, are never touched. The roots considered are every root
//! any of these objects names, plus the caller's and the default one. docs/system.md has the
//! rules per kind and the races they avoid.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_cgroups::{Cgroup, Layout};
use berth_network::netlink::{self, HostLink};
use berth_network::nft::prune::TaggedNetwork;
use berth_network::orphans::{self, KnownNetwork};
use berth_network::{Ipv4Net, sysctl};
use berth_store::DEFAULT_ROOT;

use crate::process;

/// The kind of a host leftover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeftoverKind {
    /// A container's monitor process.
    Monitor,
    /// A container cgroup, with whatever still ran in it.
    Cgroup,
    /// A state root's DNS server process.
    DnsServer,
    /// An overlay mount a `berth cp` left.
    Mount,
    /// A network's bridge (with the veths still plugged into it).
    Bridge,
    /// A network's nft rules.
    Rules,
    /// An element of `ip berth`'s `subnets` set.
    SubnetElement,
    /// A whole berth nft table, once nothing of any network was left in it.
    Table,
    /// A network record listed in `/run/berth-network/ip_forward.json`.
    ForwardHolder,
}

impl LeftoverKind {
    /// How the kind is named in prune's output.
    pub fn label(self) -> &'static str {
        match self {
            LeftoverKind::Monitor => "monitor",
            LeftoverKind::Cgroup => "cgroup",
            LeftoverKind::DnsServer => "dns server",
            LeftoverKind::Mount => "mount",
            LeftoverKind::Bridge => "bridge",
            LeftoverKind::Rules => "nft rules",
            LeftoverKind::SubnetElement => "nft subnet element",
            LeftoverKind::Table => "nft table",
            LeftoverKind::ForwardHolder => "ip_forward holder",
        }
    }
}

/// One host object that belonged to a deleted or damaged state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// What it is.
    pub kind: LeftoverKind,
    /// Its name (`pid 1234`, `berth/<id>`, `brt-0123456789`, a path, a subnet).
    pub name: String,
    /// Why it is an orphan (`state root /x is gone`).
    pub reason: String,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.name)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

/// The result of [`prune_host`].
#[derive(Debug, Default)]
pub struct HostPruneReport {
    /// What was removed.
    pub removed: Vec<Leftover>,
    /// What was found but could not be removed, with the error.
    pub failed: Vec<(Leftover, LeftoverError)>,
    /// What looks like berth's but whose owner could not be determined: left alone.
    pub unknown: Vec<Leftover>,
}

impl HostPruneReport {
    fn done(&mut self, l: Leftover, r: Result<(), LeftoverError>) {
        match r {
            Ok(()) => self.removed.push(l),
            Err(e) => self.failed.push((l, e)),
        }
    }
}

/// Why a leftover could not be removed; each displays as one phrase after its name.
#[derive(Debug, thiserror::Error)]
pub enum LeftoverError {
    /// A leftover process could not be killed.
    #[error("kill pid {pid}: {source}")]
    Kill {
        /// The process.
        pid: i32,
        /// The error.
        source: std::io::Error,
    },
    /// A cgroup could not be removed.
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::CgroupError),
    /// A mount could not be unmounted.
    #[error("unmount: {0}")]
    Unmount(nix::Error),
    /// A port of a leftover bridge could not be deleted.
    #[error("delete its port {port}: {source}")]
    Port {
        /// The port's name.
        port: String,
        /// The error.
        source: Box<berth_network::NetworkError>,
    },
    /// The network side (bridges, rules, the machine lock) failed.
    #[error(transparent)]
    Network(Box<berth_network::NetworkError>),
}

impl From<berth_network::NetworkError> for LeftoverError {
    fn from(e: berth_network::NetworkError) -> Self {
        LeftoverError::Network(Box::new(e))
    }
}

/// A berth process found in /proc, pinned by a pidfd.
struct BerthProc {
    pid: i32,
    fd: OwnedFd,
    kind: ProcKind,
}

/// What a berth process is, from its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProcKind {
    /// `berth-monitor __monitor <root> <id> <berth>`.
    Monitor { root: PathBuf, id: String },
    /// `berth [--root R] __dns`.
    Dns { root: PathBuf },
}

/// Classifies a command line; the root may still be relative (to the process's cwd).
/// `env_root` is the process's `BERTH_ROOT`, for a DNS server started without `--root`.
fn classify(argv: &[&OsStr], env_root: Option<&OsStr>) -> Option<ProcKind> {
    let base = Path::new(argv.first()?).file_name()?.as_bytes();
    if argv.len() == 5 && argv[1] == "__monitor" && base.starts_with(b"berth") {
        let id = argv[3].to_str().filter(|id| orphans::is_hex_id(id))?;
        return Some(ProcKind::Monitor { root: PathBuf::from(argv[2]), id: id.to_string() });
    }
    if argv.last().is_some_and(|a| *a == "__dns") && base.starts_with(b"berth") {
        let mut root = env_root.map(PathBuf::from);
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].as_bytes();
            if a == b"--root" {
                root = argv.get(i + 1).map(PathBuf::from);
                i += 1;
            } else if let Some(r) = a.strip_prefix(b"--root=") {
                root = Some(PathBuf::from(OsStr::from_bytes(r)));
            }
            i += 1;
        }
        return Some(ProcKind::Dns { root: root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)) });
    }
    None
}

/// The berth monitors and DNS servers running now (this process excluded).
fn berth_processes() -> Vec<BerthProc> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Pinned first: what is read next belongs to this process as long as it still lives,
        // which the signal-0 check below confirms (a reused pid then fails one of them).
        let Some(fd) = process::pidfd_open(pid) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let argv: Vec<&OsStr> =
            cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(OsStr::from_bytes).collect();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let env_root = environ
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"BERTH_ROOT="))
            .map(OsStr::from_bytes);
        let Some(mut kind) = classify(&argv, env_root) else { continue };
        let root = match &mut kind {
            ProcKind::Monitor { root, .. } | ProcKind::Dns { root } => root,
        };
        if root.is_relative() {
            let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else { continue };
            // A deleted cwd reads as "<path> (deleted)": what the root was is unknown.
            if cwd.as_os_str().as_bytes().ends_with(b" (deleted)") {
                continue;
            }
            *root = cwd.join(&*root);
        }
        if process::pidfd_send_signal(&fd, 0).is_ok() {
            out.push(BerthProc { pid, fd, kind });
        }
    }
    out
}

/// Kills a pinned process and waits (bounded) for it to be gone.
fn kill_pinned(p: &BerthProc) -> Result<(), LeftoverError> {
    match process::pidfd_send_signal(&p.fd, libc::SIGKILL) {
        Ok(()) => {}
        // Already gone: nothing left to do.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(source) => return Err(LeftoverError::Kill { pid: p.pid, source }),
    }
    let mut fds = [nix::poll::PollFd::new(p.fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(2000u16));
    Ok(())
}

/// A `cp/` overlay mount under a state root's `containers/<dir>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CpMount {
    /// The mount point.
    path: PathBuf,
    /// The state root.
    root: PathBuf,
    /// The container directory's name (`<id>`, or `.rm-<id>` and the like).
    dir: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// The `containers/<dir>/cp` mount points in a mountinfo text.
fn cp_mounts(mountinfo: &str) -> Vec<CpMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else { continue };
        let path = unescape(point);
        let mut comps: Vec<&OsStr> = path.iter().collect();
        if comps.len() < 4 || comps.pop() != Some(OsStr::new("cp")) {
            continue;
        }
        let Some(dir) = comps.pop().and_then(OsStr::to_str) else { continue };
        let id = dir
            .strip_prefix(".rm-")
            .or_else(|| dir.strip_prefix(".new-"))
            .or_else(|| dir.strip_prefix(".free-"))
            .unwrap_or(dir);
        if !orphans::is_hex_id(id) || comps.pop() != Some(OsStr::new("containers")) {
            continue;
        }
        let root: PathBuf = comps.iter().collect();
        out.push(CpMount { path: path.clone(), root, dir: dir.to_string() });
    }
    out
}

/// What berth placed under `berth/` in the cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum BerthCgroup {
    /// `berth/<container id>`.
    Container(String),
    /// `berth/anon-<pid>-<n>`: made by a launch without a cgroup path, owned by process `pid`.
    Anon(String, i32),
}

impl BerthCgroup {
    fn path(&self) -> String {
        match self {
            BerthCgroup::Container(id) => format!("berth/{id}"),
            BerthCgroup::Anon(name, _) => format!("berth/{name}"),
        }
    }
}

/// Classifies a child of `berth/`; None for names berth's containers never use (tests' and
/// benchmarks' own cgroups stay untouched).
fn classify_cgroup(name: &str) -> Option<BerthCgroup> {
    if orphans::is_hex_id(name) {
        return Some(BerthCgroup::Container(name.to_string()));
    }
    let rest = name.strip_prefix("anon-")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    Some(BerthCgroup::Anon(name.to_string(), pid.parse().ok()?))
}

/// Every cgroup directly under `berth/` in any hierarchy.
fn berth_cgroups() -> BTreeSet<BerthCgroup> {
    let mut out = BTreeSet::new();
    let Ok(layout) = Layout::detect() else { return out };
    let roots: Vec<PathBuf> = match layout {
        Layout::V2(r) => vec![r],
        Layout::V1(m) => m.into_values().collect(),
        Layout::Hybrid { v1, unified } => v1.into_values().chain([unified]).collect(),
    };
    for r in roots {
        let Ok(rd) = std::fs::read_dir(r.join("berth")) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir())
                && let Some(c) = e.file_name().to_str().and_then(classify_cgroup)
            {
                out.insert(c);
            }
        }
    }
    out
}

/// What one state root knows, read without creating anything in it.
#[derive(Debug, Default)]
struct RootView {
    exists: bool,
    networks: Vec<KnownNetwork>,
}

/// The state roots seen, cached by path.
#[derive(Default)]
struct Roots {
    views: HashMap<PathBuf, RootView>,
}

impl Roots {
    fn add(&mut self, root: &Path) {
        if !self.views.contains_key(root) {
            let exists = root.is_dir();
            let networks = if exists { orphans::known_networks(root) } else { Vec::new() };
            self.views.insert(root.to_path_buf(), RootView { exists, networks });
        }
    }

    fn view(&mut self, root: &Path) -> &RootView {
        self.add(root);
        &self.views[root]
    }

    /// Why `root` no longer owns what it owned: gone, or a record missing.
    fn gone_reason(&mut self, root: &Path) -> String {
        if self.view(root).exists {
            format!("not known to state root {}", root.display())
        } else {
            format!("state root {} is gone", root.display())
        }
    }

    fn live(&self) -> impl Iterator<Item = (&PathBuf, &RootView)> {
        self.views.iter().filter(|(_, v)| v.exists)
    }

    /// Whether some existing root has container `id`'s record (or is removing it).
    fn knows_container(&self, id: &str) -> bool {
        self.live().any(|(r, _)| knows_container(r, id))
    }

    /// Whether some existing root has a network whose id starts with `prefix`.
    fn knows_network_prefix(&self, prefix: &str) -> bool {
        self.live().any(|(_, v)| v.networks.iter().any(|n| n.id.starts_with(prefix)))
    }

    /// Whether some existing root has a network `id`.
    fn knows_network(&self, id: &str) -> bool {
        self.live().any(|(_, v)| v.networks.iter().any(|n| n.id == id))
    }

    /// Whether some existing root's network record names bridge `name`.
    fn knows_bridge(&self, name: &str) -> bool {
        self.live().any(|(_, v)| {
            v.networks.iter().any(|n| match &n.bridge {
                Some(b) => b == name,
                // An unreadable record: its bridge is most likely the default name.
                None => orphans::default_bridge_name(&n.id) == name,
            })
        })
    }

    fn subnets(&self) -> Vec<Ipv4Net> {
        self.live().flat_map(|(_, v)| v.networks.iter().filter_map(|n| n.subnet)).collect()
    }
}

/// Whether the container directory `dir` holds a record: `config.json` or `state.json`, also
/// an unreadable one (a damaged container is still its root's, removable with `rm -f`). A
/// directory without either is what a deleted root leaves when `rm -rf` stops at a mount point.
fn has_record(dir: &Path) -> bool {
    dir.join("config.json").exists() || dir.join("state.json").exists()
}

/// Whether the state root `root` has container `id`'s record, or is removing it right now
/// (`containers/.rm-<id>`).
fn knows_container(root: &Path, id: &str) -> bool {
    let c = root.join("containers");
    // In this order: a removal renames `<id>` to `.rm-<id>`, so one of the two is seen.
    has_record(&c.join(id)) || c.join(format!(".rm-{id}")).exists()
}

/// Short form of an id for messages.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Finds and removes what deleted or damaged state roots left on the host. `current_root` is
/// the caller's state root (also judged: a damaged current root's orphans go too). Never fails
/// as a whole: each object that could not be removed is listed in `failed`.
pub fn prune_host(current_root: &Path) -> HostPruneReport {
    let mut report = HostPruneReport::default();
    // Cgroups before processes: a container's monitor starts before its cgroup is made, so
    // every cgroup seen here has its monitor in the process list below (unless it died).
    let cgroups = berth_cgroups();
    let procs = berth_processes();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = cp_mounts(&mountinfo);
    let links = netlink::host_links().unwrap_or_default();

    let mut roots = Roots::default();
    for r in [current_root, Path::new(DEFAULT_ROOT)] {
        roots.add(&std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf()));
    }
    for p in &procs {
        match &p.kind {
            ProcKind::Monitor { root, .. } | ProcKind::Dns { root } => roots.add(root),
        }
    }
    for m in &mounts {
        roots.add(&m.root);
    }
    for l in &links {
        if let Some((_, Some(root))) = l.alias.as_deref().and_then(orphans::parse_alias) {
            roots.add(&root);
        }
    }
    for h in sysctl::forwarding_holders() {
        if let Some(root) = h.parent().and_then(Path::parent) {
            roots.add(root);
        }
    }

    // 1. Monitors whose container no root knows; then their containers, through the cgroup.
    let mut kept_monitors = BTreeSet::new();
    for p in &procs {
        let ProcKind::Monitor { root, id } = &p.kind else { continue };
        if knows_container(root, id) {
            kept_monitors.insert(id.clone());
            continue;
        }
        let reason = format!("container {}: {}", short(id), roots.gone_reason(root));
        let l = Leftover { kind: LeftoverKind::Monitor, name: format!("pid {}", p.pid), reason };
        report.done(l, kill_pinned(p));
    }
    for cg in &cgroups {
        let reason = match cg {
            BerthCgroup::Container(id) => {
                if kept_monitors.contains(id) || roots.knows_container(id) {
                    continue;
                }
                format!("container {}: known to no state root", short(id))
            }
            BerthCgroup::Anon(_, pid) => {
                if Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                format!("its process {pid} is gone")
            }
        };
        let path = cg.path();
        let r = match Cgroup::open(&path) {
            Ok(c) => c.destroy().map_err(LeftoverError::from),
            Err(berth_cgroups::CgroupError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        };
        report.done(Leftover { kind: LeftoverKind::Cgroup, name: path, reason }, r);
    }

    // 2. DNS servers of roots that are gone or have no network left (a server notices that
    // itself within 100 ms, unless it is stuck).
    for p in &procs {
        let ProcKind::Dns { root } = &p.kind else { continue };
        let v = roots.view(root);
        if v.exists && !v.networks.is_empty() {
            continue;
        }
        let reason = if v.exists {
            format!("state root {} has no network", root.display())
        } else {
            format!("state root {} is gone", root.display())
        };
        let l = Leftover { kind: LeftoverKind::DnsServer, name: format!("pid {}", p.pid), reason };
        report.done(l, kill_pinned(p));
    }

    // 3. `cp` overlays of containers whose record is gone.
    for m in &mounts {
        if has_record(&m.root.join("containers").join(&m.dir)) {
            continue;
        }
        let reason = roots.gone_reason(&m.root);
        let r = nix::mount::umount2(&m.path, nix::mount::MntFlags::MNT_DETACH)
            .map_err(LeftoverError::Unmount);
        if r.is_ok() {
            // The mount point is berth's own empty directory.
            let _ = std::fs::remove_dir(&m.path);
        }
        let name = m.path.display().to_string();
        report.done(Leftover { kind: LeftoverKind::Mount, name, reason }, r);
    }

    // 4. Bridges, nft rules and elements, forwarding holders: under the machine lock, which
    // network create and remove hold from the bridge's creation to the record's write (and
    // from the bridge's deletion to the record's removal), so no half-made network is seen.
    let _machine = match sysctl::machine_lock() {
        Ok(l) => l,
        Err(e) => {
            let l = Leftover {
                kind: LeftoverKind::Bridge,
                name: "(all)".into(),
                reason: "the machine lock is needed".into(),
            };
            report.failed.push((l, e.into()));
            return report;
        }
    };
    let links = netlink::host_links().unwrap_or(links);
    prune_bridges(&links, &mut roots, &mut report);
    let links = netlink::host_links().unwrap_or_default();
    prune_rules(&links, &roots, &mut report);
    match sysctl::drop_stale_holders() {
        Ok(stale) => {
            for h in stale {
                report.removed.push(Leftover {
                    kind: LeftoverKind::ForwardHolder,
                    name: h.display().to_string(),
                    reason: "the network record is gone".into(),
                });
            }
        }
        Err(e) => {
            let l = Leftover {
                kind: LeftoverKind::ForwardHolder,
                name: sysctl::MACHINE_DIR.to_string() + "/ip_forward.json",
                reason: String::new(),
            };
            report.failed.push((l, e.into()));
        }
    }
    report
}

/// What prune makes of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BridgeVerdict {
    /// Not berth's, or its state root still has its network.
    Keep,
    /// Its state root is gone or no longer has its network (why).
    Orphan(String),
    /// berth's by its name, but nothing names its state root and no root found has it (why).
    UnknownOwner(String),
}

/// Judges bridge `l`. Only a bridge whose alias names its state root can be proven orphaned;
/// one without (made by a berth before aliases, or killed between the bridge's creation and
/// its alias) may belong to a live root nothing on the host points to, so it is left alone.
fn judge_bridge(l: &HostLink, roots: &mut Roots) -> BridgeVerdict {
    if !l.is_bridge {
        return BridgeVerdict::Keep;
    }
    match l.alias.as_deref().and_then(orphans::parse_alias) {
        Some((id, Some(root))) => {
            if orphans::record_path(&root, &id).exists() {
                return BridgeVerdict::Keep;
            }
            BridgeVerdict::Orphan(format!("network {}: {}", short(&id), roots.gone_reason(&root)))
        }
        // An alias without a root (the root's path did not fit in it).
        Some((id, None)) if !roots.knows_network(&id) => BridgeVerdict::UnknownOwner(format!(
            "network {}: known to no state root found, and its alias names none",
            short(&id)
        )),
        None if l.name.starts_with(orphans::BRIDGE_PREFIX) && !roots.knows_bridge(&l.name) => {
            BridgeVerdict::UnknownOwner(
                "no state root found has a network on it, and it has no owner alias".into(),
            )
        }
        _ => BridgeVerdict::Keep,
    }
}

fn prune_bridges(links: &[HostLink], roots: &mut Roots, report: &mut HostPruneReport) {
    for b in links {
        let reason = match judge_bridge(b, roots) {
            BridgeVerdict::Keep => continue,
            BridgeVerdict::UnknownOwner(reason) => {
                let name = b.name.clone();
                report.unknown.push(Leftover { kind: LeftoverKind::Bridge, name, reason });
                continue;
            }
            BridgeVerdict::Orphan(reason) => reason,
        };
        // The veths still plugged in are of containers killed above or already dead.
        let mut r = Ok(());
        for port in links.iter().filter(|p| p.master == Some(b.index)) {
            if let Err(e) = netlink::delete_link(&port.name) {
                r = Err(LeftoverError::Port { port: port.name.clone(), source: Box::new(e) });
            }
        }
        if r.is_ok() {
            r = netlink::delete_link(&b.name).map_err(LeftoverError::from);
        }
        report.done(Leftover { kind: LeftoverKind::Bridge, name: b.name.clone(), reason }, r);
    }
}

fn prune_rules(links: &[HostLink], roots: &Roots, report: &mut HostPruneReport) {
    let names: BTreeSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
    let alias_ids: Vec<String> = links
        .iter()
        .filter_map(|l| l.alias.as_deref().and_then(orphans::parse_alias))
        .map(|(id, _)| id)
        .collect();
    // A network's rules stay while some root knows it or while a bridge they name is still
    // there (kept above: so its owner is alive even if this process cannot see the root).
    let keep = |id12: &str, n: &TaggedNetwork| {
        roots.knows_network_prefix(id12)
            || alias_ids.iter().any(|a| a.starts_with(id12))
            || n.bridges.iter().any(|b| names.contains(b.as_str()))
    };
    let known = roots.subnets();
    // Host routes include every remaining bridge's subnet.
    let occupied: Vec<Ipv4Net> =
        berth_network::ipam::host_occupied().into_iter().map(|(n, _)| n).collect();
    let keep_subnet =
        |s: &Ipv4Net| known.iter().any(|k| k.overlaps(s)) || occupied.iter().any(|o| o.overlaps(s));
    match berth_network::nft::prune::prune_orphans(&keep, &keep_subnet) {
        Ok(p) => {
            for (id, n) in p.rules {
                report.removed.push(Leftover {
                    kind: LeftoverKind::Rules,
                    name: format!("of network {id}"),
                    reason: format!("{n} rules; the network is known to no state root"),
                });
            }
            for e in p.elements {
                report.removed.push(Leftover {
                    kind: LeftoverKind::SubnetElement,
                    name: e,
                    reason: "no known network has it".into(),
                });
            }
            for t in p.tables {
                report.removed.push(Leftover {
                    kind: LeftoverKind::Table,
                    name: t,
                    reason: "nothing of any network was left in it".into(),
                });
            }
        }
        Err(e) => {
            let l = Leftover {
                kind: LeftoverKind::Rules,
                name: "(berth tables)".into(),
                reason: String::new(),
            };
            report.failed.push((l, e.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn os(v: &[&str]) -> Vec<&'static OsStr> {
        v.iter().map(|s| OsStr::new(Box::leak(s.to_string().into_boxed_str()))).collect()
    }

    #[test]
    fn processes_are_recognised_by_their_argv() {
        let m = classify(
            &os(&["/usr/bin/berth-monitor", "__monitor", "/r", ID, "/usr/bin/berth"]),
            None,
        );
        assert_eq!(m, Some(ProcKind::Monitor { root: "/r".into(), id: ID.into() }));
        let d = classify(&os(&["/usr/bin/berth", "--root", "rel", "__dns"]), None);
        assert_eq!(d, Some(ProcKind::Dns { root: "rel".into() }));
        let d = classify(&os(&["berth", "--root=/x y", "__dns"]), None);
        assert_eq!(d, Some(ProcKind::Dns { root: "/x y".into() }));
        let d = classify(&os(&["berth", "__dns"]), Some(OsStr::new("/env")));
        assert_eq!(d, Some(ProcKind::Dns { root: "/env".into() }));
        let d = classify(&os(&["berth", "__dns"]), None);
        assert_eq!(d, Some(ProcKind::Dns { root: DEFAULT_ROOT.into() }));
        // Not ours: another program, a bad id, an editor with such a file name.
        assert_eq!(classify(&os(&["sleep", "__dns"]), None), None);
        assert_eq!(classify(&os(&["berth-monitor", "__monitor", "/r", "x", "/b"]), None), None);
        assert_eq!(classify(&os(&["vim", "__monitor", "/r", ID, "/b"]), None), None);
        assert_eq!(classify(&os(&["berth", "ps"]), None), None);
    }

    #[test]
    fn cp_mounts_are_found_in_mountinfo() {
        let info = format!(
            "36 35 98:0 / /mnt rw - ext4 /dev/x rw\n\
             90 30 0:77 / /tmp/a\\040b/containers/{ID}/cp rw - overlay overlay rw,lowerdir=x\n\
             91 90 0:5 / /tmp/a\\040b/containers/{ID}/cp/data rw - ext4 /dev/x rw\n\
             92 30 0:78 / /tmp/r/containers/.rm-{ID}/cp rw - overlay overlay rw\n\
             93 30 0:79 / /tmp/r/containers/notanid/cp rw - overlay overlay rw\n\
             94 30 0:80 / /tmp/r/other/{ID}/cp rw - overlay overlay rw\n"
        );
        let m = cp_mounts(&info);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].root, PathBuf::from("/tmp/a b"));
        assert_eq!(m[0].dir, ID);
        assert_eq!(m[1].dir, format!(".rm-{ID}"));
    }

    #[test]
    fn cgroup_names() {
        assert_eq!(classify_cgroup(ID), Some(BerthCgroup::Container(ID.into())));
        assert_eq!(classify_cgroup("anon-12-3"), Some(BerthCgroup::Anon("anon-12-3".into(), 12)));
        assert_eq!(classify_cgroup("lt123x4"), None);
        assert_eq!(classify_cgroup("bench-1-2"), None);
        assert_eq!(classify_cgroup("anon-x-1"), None);
    }

    #[test]
    fn bridges_are_judged_by_their_alias() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("networks")).expect("mkdir");
        std::fs::write(orphans::record_path(&root, ID), b"{}").expect("write");
        let other = ID.replace('0', "e");
        let bridge = |name: &str, alias: Option<String>| HostLink {
            name: name.into(),
            index: 7,
            alias,
            master: None,
            is_bridge: true,
        };
        let mut roots = Roots::default();
        roots.add(&root);
        let alias = |id: &str, r: &Path| Some(format!("berth {id} {}", r.display()));
        let orphan = |v: BridgeVerdict, what: &str| match v {
            BridgeVerdict::Orphan(w) => assert!(w.contains(what), "{w}"),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            judge_bridge(&bridge("brt-a", alias(ID, &root)), &mut roots),
            BridgeVerdict::Keep
        );
        orphan(
            judge_bridge(&bridge("brt-b", alias(&other, &root)), &mut roots),
            "not known to state root",
        );
        orphan(
            judge_bridge(&bridge("brt-c", alias(ID, &root.join("gone"))), &mut roots),
            "is gone",
        );
        // No alias: kept when a known record names it (an unreadable one: by the default
        // name); otherwise its owner is unknown and it stays too.
        assert_eq!(judge_bridge(&bridge("brt-0123456789", None), &mut roots), BridgeVerdict::Keep);
        let v = judge_bridge(&bridge("brt-9999999999", None), &mut roots);
        assert!(matches!(v, BridgeVerdict::UnknownOwner(_)), "{v:?}");
        let v = judge_bridge(&bridge("brt-d", Some(format!("berth {other}"))), &mut roots);
        assert!(matches!(v, BridgeVerdict::UnknownOwner(_)), "{v:?}");
        assert_eq!(
            judge_bridge(&bridge("brt-e", Some(format!("berth {ID}"))), &mut roots),
            BridgeVerdict::Keep
        );
        // Not berth's: other names, or not a bridge.
        assert_eq!(judge_bridge(&bridge("docker0", None), &mut roots), BridgeVerdict::Keep);
        let mut veth = bridge("brt-9999999999", alias(ID, &root.join("gone")));
        veth.is_bridge = false;
        assert_eq!(judge_bridge(&veth, &mut roots), BridgeVerdict::Keep);
    }

    #[test]
    fn container_records_count_until_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = dir.path().join("containers");
        std::fs::create_dir_all(c.join(ID)).expect("mkdir");
        assert!(!knows_container(dir.path(), ID), "a directory without its record");
        std::fs::write(c.join(ID).join("state.json"), b"").expect("write");
        assert!(knows_container(dir.path(), ID), "a state record alone counts");
        std::fs::remove_file(c.join(ID).join("state.json")).expect("rm");
        std::fs::write(c.join(ID).join("config.json"), b"").expect("write");
        assert!(knows_container(dir.path(), ID), "an unreadable record still counts");
        std::fs::rename(c.join(ID), c.join(format!(".rm-{ID}"))).expect("rename");
        assert!(knows_container(dir.path(), ID), "being removed");
        assert!(!knows_container(&dir.path().join("gone"), ID));
    }
}
