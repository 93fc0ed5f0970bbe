//! A container's cgroup through berth-cgroups: kill everything in it, freeze and thaw, its
//! processes and usage, and removal after exit.

use berth_cgroups::{Cgroup, CgroupError};

/// Whether the OOM killer struck in the cgroup.
pub fn oom_killed(cgroup: &str) -> bool {
    Cgroup::open(cgroup).map(|c| c.oom_killed()).unwrap_or(false)
}

/// Kills every process of the cgroup and waits until none is left (a cgroup already gone is
/// fine); the error names the cgroup that stayed busy.
pub fn kill_all(cgroup: &str, timeout: std::time::Duration) -> Result<(), CgroupError> {
    match Cgroup::open(cgroup) {
        Ok(c) => c.kill_all(timeout),
        Err(CgroupError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the cgroup (best effort; the launcher kills anything left in it).
pub fn destroy(cgroup: &str) {
    if let Ok(c) = Cgroup::open(cgroup) {
        let _ = c.destroy();
    }
}

/// Freezes or thaws the cgroup.
pub fn set_frozen(cgroup: &str, frozen: bool) -> Result<(), CgroupError> {
    let c = Cgroup::open(cgroup)?;
    if frozen { c.freeze() } else { c.thaw() }
}

/// PIDs in the cgroup.
pub fn pids(cgroup: &str) -> Vec<i32> {
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
pub fn usage(cgroup: &str) -> Result<Usage, CgroupError> {
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
