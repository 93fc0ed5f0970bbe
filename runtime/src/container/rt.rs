//! The engine's narrow seam to the launcher, cgroups, image store and volumes: every call the
//! container code makes into those modules goes through here, keeping their typed errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_cgroups::{Cgroup, CgroupError};
use berth_image::{ImageError, ImageStore};
use berth_launch::{self as launch, LaunchError, SeccompMode, Stdio};
use berth_store::StateRoot;
use nix::unistd::Pid;

use crate::volume::{VolumeError, VolumeStore};

use super::api::HealthConfig;
use super::error::StartError;

/// A started container process.
#[derive(Debug, Clone)]
pub struct Started {
    /// Host pid of the container's first process.
    pub pid: i32,
    /// Its cgroup path (relative to the hierarchy roots).
    pub cgroup: String,
}

/// Starts `process` inside the running container `pid`; returns the new process's host pid
/// (a direct child of the caller).
pub fn exec_in(
    pid: i32,
    process: &oci_spec::runtime::Process,
    cgroup: &str,
    seccomp: SeccompMode,
    stdio: Stdio,
) -> Result<i32, LaunchError> {
    let cg = Cgroup::open(cgroup)?;
    let child = launch::exec_in(Pid::from_raw(pid), process, &cg, seccomp, stdio)?;
    Ok(child.pid.as_raw())
}

/// Like [`exec_in`] with a new terminal allocated inside the container (its own devpts, so
/// `tty` names it); returns the process's host pid and the terminal's master side.
pub fn exec_in_tty(
    pid: i32,
    process: &oci_spec::runtime::Process,
    cgroup: &str,
    seccomp: SeccompMode,
) -> Result<(i32, std::os::fd::OwnedFd), StartError> {
    let cg = Cgroup::open(cgroup).map_err(LaunchError::from)?;
    let child = launch::exec_in(Pid::from_raw(pid), process, &cg, seccomp, Stdio::NewPty)?;
    let pid = child.pid.as_raw();
    match child.pty_master {
        Some(m) => Ok((pid, m)),
        None => {
            let _ = nix::sys::signal::kill(child.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = launch::wait(child.pid);
            Err(StartError::Failed("the exec'd process got no terminal".into()))
        }
    }
}

/// Whether the OOM killer struck in the cgroup.
pub fn cgroup_oom_killed(cgroup: &str) -> bool {
    Cgroup::open(cgroup).map(|c| c.oom_killed()).unwrap_or(false)
}

/// Kills every process of the cgroup and waits until none is left (a cgroup already gone is
/// fine); the error names the cgroup that stayed busy.
pub fn cgroup_kill_all(cgroup: &str, timeout: std::time::Duration) -> Result<(), CgroupError> {
    match Cgroup::open(cgroup) {
        Ok(c) => c.kill_all(timeout),
        Err(CgroupError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the cgroup (best effort; the launcher kills anything left in it).
pub fn cgroup_destroy(cgroup: &str) {
    if let Ok(c) = Cgroup::open(cgroup) {
        let _ = c.destroy();
    }
}

/// Freezes or thaws the cgroup.
pub fn cgroup_set_frozen(cgroup: &str, frozen: bool) -> Result<(), CgroupError> {
    let c = Cgroup::open(cgroup)?;
    if frozen { c.freeze() } else { c.thaw() }
}

/// PIDs in the cgroup.
pub fn cgroup_pids(cgroup: &str) -> Vec<i32> {
    Cgroup::open(cgroup)
        .and_then(|c| c.pids())
        .map(|v| v.into_iter().map(|p| p.as_raw()).collect())
        .unwrap_or_default()
}

/// Usage figures of a cgroup.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// CPU time, ns.
    pub cpu_ns: u64,
    /// Memory in use, bytes.
    pub memory: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// Processes.
    pub pids: u64,
    /// Inactive file cache, bytes (docker shows usage minus this).
    pub memory_inactive_file: u64,
    /// Block device bytes read.
    pub block_read: u64,
    /// Block device bytes written.
    pub block_write: u64,
}

/// Usage of a cgroup.
pub fn cgroup_usage(cgroup: &str) -> Result<Usage, CgroupError> {
    let s = Cgroup::open(cgroup).and_then(|c| c.stats())?;
    Ok(Usage {
        cpu_ns: s.cpu_usage_ns,
        memory: s.memory_usage,
        memory_limit: s.memory_limit.unwrap_or(0),
        pids: s.pids_current,
        memory_inactive_file: s.memory_inactive_file,
        block_read: s.block_read,
        block_write: s.block_write,
    })
}

/// Bytes (received, transmitted) on every interface but `lo` of `pid`'s network namespace.
pub fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

/// Sums `/proc/net/dev` counters (columns: rx bytes is the 1st, tx bytes the 9th), skipping `lo`.
fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else { continue };
        if iface.trim() == "lo" {
            continue;
        }
        let cols: Vec<u64> = counters.split_whitespace().map(|c| c.parse().unwrap_or(0)).collect();
        if cols.len() >= 9 {
            rx += cols[0];
            tx += cols[8];
        }
    }
    (rx, tx)
}

/// What the engine needs from an image.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// `sha256:...`.
    pub id: String,
    /// The image's runtime config, if it has one.
    pub config: Option<oci_spec::image::Config>,
    /// The image's healthcheck (docker extension), if any.
    pub healthcheck: Option<HealthConfig>,
    /// Layer directories, topmost first.
    pub layers: Vec<PathBuf>,
}

/// Resolves an image reference in the local store.
pub fn resolve_image(root: &StateRoot, reference: &str) -> Result<ImageInfo, ImageError> {
    let store = ImageStore::open(root)?;
    let img = store.resolve(reference)?;
    let healthcheck = img.healthcheck.map(|h| HealthConfig {
        test: h.test.unwrap_or_default(),
        interval: h.interval.unwrap_or(0),
        timeout: h.timeout.unwrap_or(0),
        retries: h.retries.unwrap_or(0),
        start_period: h.start_period.unwrap_or(0),
        start_interval: h.start_interval.unwrap_or(0),
    });
    Ok(ImageInfo {
        id: img.id,
        config: img.config.config().clone(),
        healthcheck,
        layers: img.layers,
    })
}

/// Creates (if missing) the named volume; returns its mount source and whether it was just made.
pub fn volume_ensure(
    root: &StateRoot,
    name: &str,
    anonymous: bool,
) -> Result<(PathBuf, bool), VolumeError> {
    let vs = VolumeStore::open(root);
    let existed = vs.inspect(name).is_ok();
    let mut labels = BTreeMap::new();
    if anonymous {
        labels.insert("com.docker.volume.anonymous".to_string(), String::new());
    }
    vs.create(Some(name), if existed { BTreeMap::new() } else { labels }, BTreeMap::new())
        .or_else(|e| if existed { vs.inspect(name) } else { Err(e) })?;
    let src = vs.mount_source(name)?;
    Ok((src, !existed))
}

/// Copies image content at `path` into a volume never populated before (docker's copy-up).
pub fn volume_populate(
    root: &StateRoot,
    name: &str,
    image: &str,
    path: &str,
) -> Result<(), VolumeError> {
    let vs = VolumeStore::open(root);
    let images = ImageStore::open(root)?;
    vs.populate_from_image(name, &images, image, path).map(|_| ())
}

/// Removes a volume (anonymous volumes on `rm -v`).
pub fn volume_remove(root: &StateRoot, name: &str) -> Result<(), VolumeError> {
    VolumeStore::open(root).remove(name, true, &|_| false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
 eth0:    1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0\n  \
 eth1:      10       1    0    0    0     0          0         0        3       1    0    0    0     0       0          0\n";
        assert_eq!(super::parse_net_dev(text), (1510, 703));
    }
}
