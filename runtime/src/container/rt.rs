//! The engine's narrow seam to the launcher, cgroups, image store and volumes: every call the
//! container code makes into those modules goes through here, with errors flattened to text.
//!
//! (Stub until the launcher and image work is merged.)

use std::path::PathBuf;

use crate::launch::{LaunchSpec, SeccompMode, Stdio};
use crate::store::StateRoot;

/// A started container process.
#[derive(Debug, Clone)]
pub struct Started {
    /// Host pid of the container's first process.
    pub pid: i32,
    /// Its cgroup path (relative to the hierarchy roots).
    pub cgroup: String,
}

/// Starts the container's first process.
pub fn spawn(_spec: &LaunchSpec, _stdio: Stdio) -> Result<Started, String> {
    Err("the launcher is not available in this build".into())
}

/// Starts `process` inside the running container `pid`; returns the new process's host pid.
pub fn exec_in(
    _pid: i32,
    _process: &oci_spec::runtime::Process,
    _cgroup: &str,
    _seccomp: SeccompMode,
    _stdio: Stdio,
) -> Result<i32, String> {
    Err("the launcher is not available in this build".into())
}

/// Whether the OOM killer struck in the cgroup.
pub fn cgroup_oom_killed(_cgroup: &str) -> bool {
    false
}

/// Removes the cgroup (best effort: killing anything left in it).
pub fn cgroup_destroy(_cgroup: &str) {}

/// Freezes or thaws the cgroup.
pub fn cgroup_set_frozen(_cgroup: &str, _frozen: bool) -> Result<(), String> {
    Err("the cgroup freezer is not available in this build".into())
}

/// PIDs in the cgroup.
pub fn cgroup_pids(_cgroup: &str) -> Vec<i32> {
    Vec::new()
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
}

/// Usage of a cgroup.
pub fn cgroup_usage(_cgroup: &str) -> Result<Usage, String> {
    Err("cgroup stats are not available in this build".into())
}

/// What the engine needs from an image.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// `sha256:...`.
    pub id: String,
    /// The image's runtime config, if it has one.
    pub config: Option<oci_spec::image::Config>,
    /// Layer directories, topmost first.
    pub layers: Vec<PathBuf>,
}

/// Resolves an image reference in the local store.
pub fn resolve_image(_root: &StateRoot, reference: &str) -> Result<ImageInfo, String> {
    Err(format!("No such image: {reference}"))
}

/// Creates (if missing) the named volume; returns its mountpoint and whether it was just made.
pub fn volume_ensure(
    _root: &StateRoot,
    name: &str,
    _labels: &[(String, String)],
) -> Result<(PathBuf, bool), String> {
    Err(format!("volume {name}: volumes are not available in this build"))
}

/// Copies image content at `path` into a fresh volume (docker's copy-up).
pub fn volume_populate(
    _root: &StateRoot,
    _name: &str,
    _layers: &[PathBuf],
    _path: &str,
) -> Result<(), String> {
    Ok(())
}

/// Removes a volume (anonymous volumes on `rm -v`).
pub fn volume_remove(_root: &StateRoot, _name: &str) -> Result<(), String> {
    Ok(())
}
