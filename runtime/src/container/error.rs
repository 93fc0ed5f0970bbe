//! The errors of container operations.

use std::path::PathBuf;

use berth_image::ImageError;
use berth_launch::LaunchError;
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
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The container's process (or an exec'd one) could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
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
            ContainerError::Start(e) => e.exit_code(),
            _ => 125,
        }
    }
}

impl From<LaunchError> for ContainerError {
    fn from(e: LaunchError) -> Self {
        ContainerError::Start(StartError::Launch(e))
    }
}

/// Why a container's process, or a process exec'd in it, did not start. It knows the exit
/// status docker gives such a failure (127 program not found, 126 not executable, else 125).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The launcher failed in this process.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The container's program could not be executed, as its monitor reported.
    #[error("{message}")]
    Exec {
        /// docker's exit status for it (126 or 127).
        code: u8,
        /// What happened, naming the program.
        message: String,
    },
    /// The start failed before the program (its monitor's report, or no monitor to ask).
    #[error("{0}")]
    Failed(String),
}

impl StartError {
    /// docker's exit status for this failure: 127 the program was not found, 126 it could not
    /// be executed, 125 the container could not be set up.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Launch(e) => {
                e.exit_code().and_then(|c| u8::try_from(c).ok()).unwrap_or(125)
            }
            StartError::Exec { code, .. } => *code,
            StartError::Failed(_) => 125,
        }
    }

    /// `docker exec`'s exit status for a process that did not start: 127 when its program is
    /// not in $PATH, 126 when it could not be executed otherwise, else 125.
    pub fn exec_exit_code(&self) -> u8 {
        match self {
            StartError::Launch(LaunchError::ExecNotFound { .. }) => 127,
            e if e.exit_code() == 125 => 125,
            _ => 126,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_know_dockers_exit_codes() {
        let program = || "sh".to_string();
        let launch = |e| StartError::Launch(e);
        let not_found = launch(LaunchError::ExecNotFound { program: program() });
        assert_eq!((not_found.exit_code(), not_found.exec_exit_code()), (127, 127));
        let no_file = launch(LaunchError::ExecNoSuchFile { program: program() });
        assert_eq!((no_file.exit_code(), no_file.exec_exit_code()), (127, 126));
        let denied = launch(LaunchError::ExecPermissionDenied { program: program() });
        assert_eq!((denied.exit_code(), denied.exec_exit_code()), (126, 126));
        let setup = launch(LaunchError::PreStart("network attach failed".into()));
        assert_eq!((setup.exit_code(), setup.exec_exit_code()), (125, 125));
        let reported = StartError::Exec { code: 127, message: "exec: \"x\"".into() };
        assert_eq!(reported.exit_code(), 127);
        assert_eq!(StartError::Failed("no monitor".into()).exit_code(), 125);
        let e = ContainerError::from(LaunchError::ExecNotFound { program: program() });
        assert_eq!(e.start_exit_code(), 127);
        assert_eq!(e.to_string(), "exec: \"sh\": executable file not found in $PATH");
        assert_eq!(ContainerError::NotRunning("c".into()).start_exit_code(), 125);
    }
}
