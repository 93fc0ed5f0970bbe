//! Why a monitor could not start (or restart) its container.

use std::path::PathBuf;

use berth_store::StoreError;

use crate::container::ContainerError;
use crate::container::net::NetAttachError;
use crate::container::spec::SpecError;
use crate::monitor_protocol::StatusReport;

/// Why a monitor could not start (or restart) its container; each displays as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A system call of the monitor's own setup failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call (`fork`, `pipe`, ...).
        call: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// A descriptor could not be duplicated.
    #[error("dup: {0}")]
    Dup(std::io::Error),
    /// A file of the container could not be opened.
    #[error("open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
    /// The state root or a record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container is gone, or its records are damaged.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The launch spec could not be built.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The networks could not be set up, or the launcher failed.
    #[error(transparent)]
    Net(#[from] NetAttachError),
    /// A healthcheck process could not be started.
    #[error(transparent)]
    Launch(#[from] berth_launch::LaunchError),
}

impl MonitorError {
    /// docker's exit status for a start that failed this way: 127 the program was not found,
    /// 126 it could not be executed, else 125.
    pub(crate) fn exit_code(&self) -> u8 {
        let launch = match self {
            MonitorError::Net(NetAttachError::Launch(e)) | MonitorError::Launch(e) => e,
            _ => return 125,
        };
        launch.exit_code().and_then(|c| u8::try_from(c).ok()).unwrap_or(125)
    }

    /// The report on a start that failed this way.
    pub(crate) fn report(&self) -> StatusReport {
        match self.exit_code() {
            125 => StatusReport::Failed { msg: self.to_string() },
            code => StatusReport::ExecFailed { code, msg: self.to_string() },
        }
    }
}

/// Shorthand for a failed system call.
pub(crate) fn sys(call: &'static str) -> impl FnOnce(nix::Error) -> MonitorError {
    move |source| MonitorError::Sys { call, source }
}
