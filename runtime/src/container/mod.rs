//! Containers: Docker-shaped API types, on-disk records, naming, and the `impl Engine` methods
//! (create/start/stop/kill/restart/remove/inspect/list/wait/logs/exec/pause/top/stats/rename).
//!
//! Each container lives in `containers/<id>/` (records, logs, hostname/hosts/resolv.conf, the
//! writable layer). A running container has one monitor process (see [`crate::monitor`]);
//! names are checked under the root lock, a container's records under its own lock file.

pub mod api;
mod copy;
mod create;
mod damaged;
pub mod exec;
mod liveness;
mod names;
pub mod network;
mod ops;
pub use ops::Attached;
pub use ops::human_duration as ops_human_duration;
pub mod record;
pub mod rt;
pub mod spec;
pub mod sync;
pub mod sys;
pub mod user;

use std::path::PathBuf;

use berth_store::StoreError;

pub use api::*;
pub use copy::CopyOptions;
pub use sync::{SyncChange, SyncReport};
pub use exec::ExecOutput;

use crate::Engine;
use record::{ContainerPaths, ContainerRecord, StateRecord};

/// Errors of container operations; each displays as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container has this id, name or id prefix.
    #[error("No such container: {0}")]
    NotFound(String),
    /// The name is taken.
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The container holding it.
        id: String,
    },
    /// An id prefix matches several containers.
    #[error("multiple containers match {0:?}: use more characters of the id")]
    Ambiguous(String),
    /// The request is invalid (bad name, option, mount, user...).
    #[error("{0}")]
    Invalid(String),
    /// The image could not be resolved.
    #[error("{0}")]
    Image(String),
    /// The container's process could not be started.
    #[error("{0}")]
    Start(String),
    /// The operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The operation needs the container not to be paused.
    #[error("container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    /// Removing a running container without force.
    #[error(
        "cannot remove container \"/{0}\": container is running: stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    /// A wait or stop did not finish in time.
    #[error("timed out waiting for container {0}")]
    Timeout(String),
    /// State on disk.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other I/O.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something went wrong in a background task.
    #[error("{0}")]
    Internal(String),
    /// A record of the container can't be read: only removal is possible.
    #[error(
        "container {container} cannot be used: {damage}; remove it with `berth container rm -f {container}`"
    )]
    Damaged {
        /// Its name, or its id when no name is known.
        container: String,
        /// The damaged file and what is wrong with it.
        damage: record::Damage,
    },
    /// A removal found the container alive (asked of the kernel, not of its records).
    #[error("container {container} is still alive ({evidence}): {hint}")]
    Alive {
        /// Its name, or its id.
        container: String,
        /// What shows it alive.
        evidence: String,
        /// What to do.
        hint: &'static str,
    },
}

impl ContainerError {
    /// The exit status docker uses for a failed start: 127 not found, 126 not executable, else 125.
    pub fn start_exit_code(&self) -> u8 {
        match self {
            ContainerError::Start(m) => start_error_code(m) as u8,
            _ => 125,
        }
    }
}

/// Maps launcher error text to docker's exit codes (127 not found, 126 cannot execute, else 125).
pub fn start_error_code(msg: &str) -> i64 {
    // The launcher words every exec failure as `exec: "prog": ...` (docker's wording).
    if !msg.starts_with("exec: \"") {
        125
    } else if msg.contains("executable file not found")
        || msg.ends_with("no such file or directory")
    {
        127
    } else {
        126
    }
}

fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |source| ContainerError::Io { op, path, source }
}

/// A container as loaded from disk, its state already corrected for dead monitors.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub paths: ContainerPaths,
    pub rec: ContainerRecord,
    pub st: StateRecord,
}

impl Engine {
    /// Every usable container record on disk (damaged ones are left out).
    pub(crate) fn all_records(&self) -> Vec<ContainerRecord> {
        self.scan_containers()
            .into_iter()
            .filter_map(|e| match e {
                damaged::Entry::Ok(r) => Some(r),
                damaged::Entry::Damaged(_) => None,
            })
            .collect()
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix; a
    /// damaged one is an error naming its file.
    pub(crate) fn find(&self, key: &str) -> Result<ContainerRecord, ContainerError> {
        match self.find_entry(key)? {
            damaged::Entry::Ok(r) => Ok(r),
            damaged::Entry::Damaged(d) => Err(d.error()),
        }
    }

    /// Loads a container and repairs its state if its monitor died behind our back; a
    /// damaged one is an error naming its file.
    pub(crate) fn load(&self, key: &str) -> Result<Loaded, ContainerError> {
        match self.load_entry(key)? {
            damaged::LoadedEntry::Ok(l) => Ok(l),
            damaged::LoadedEntry::Damaged(d) => Err(d.error()),
        }
    }

    /// Reads the state; when it claims running/restarting but the monitor is gone, kills what
    /// may be left of the container, destroys its cgroup and records it as exited.
    pub(crate) fn checked_state(
        &self,
        paths: &ContainerPaths,
    ) -> Result<StateRecord, ContainerError> {
        let damaged = |damage| ContainerError::Damaged {
            container: paths
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            damage,
        };
        let st = paths.read_state_checked().map_err(damaged)?;
        if !claims_alive(&st) || record::process_alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        let _g = paths.lock()?;
        let mut st = paths.read_state_checked().map_err(damaged)?;
        if !claims_alive(&st) || record::process_alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        repair_dead(&mut st);
        paths.write_state(&st)?;
        drop(_g);
        // Its monitor can't detach it any more: drop its addresses, names and port rules.
        if let Some(id) = paths.dir.file_name().and_then(|n| n.to_str()) {
            network::release(self.root(), id);
        }
        Ok(st)
    }
}

/// Whether the record says a monitor should be alive.
pub(crate) fn claims_alive(st: &StateRecord) -> bool {
    st.state.running || st.state.restarting || st.monitor_pid > 0
}

/// Marks a container whose monitor died as exited, killing its leftovers.
pub(crate) fn repair_dead(st: &mut StateRecord) {
    if st.state.running {
        if let Some(cg) = st.cgroup.as_ref().and_then(|p| p.to_str()) {
            let _ = rt::cgroup_set_frozen(cg, false);
        }
        let _ = sys::signal_verified(st.state.pid as i32, st.pid_start, libc::SIGKILL);
        if let Some(cg) = st.cgroup.as_ref().and_then(|p| p.to_str()) {
            for pid in rt::cgroup_pids(cg) {
                // SAFETY: kill has no memory effects; these pids are in the container's cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            rt::cgroup_destroy(cg);
        }
        st.state.exit_code = 137;
        st.state.error = "the container's monitor process died".into();
        st.state.finished_at = record::now_rfc3339();
    }
    st.state.running = false;
    st.state.paused = false;
    st.state.restarting = false;
    st.state.pid = 0;
    st.state.status = if st.has_been_started { "exited".into() } else { "created".into() };
    st.monitor_pid = 0;
    st.monitor_start = 0;
}
