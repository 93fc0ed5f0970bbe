//! The errors of container operations.

use std::path::PathBuf;

use berth_store::StoreError;

use super::record;

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

impl From<tokio::task::JoinError> for ContainerError {
    fn from(e: tokio::task::JoinError) -> Self {
        ContainerError::Internal(format!("background task failed: {e}"))
    }
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |source| ContainerError::Io { op, path, source }
}
