//! berth-planner: turns a compose Project and the Engine's observed state into a plan of actions.
//!
//! - [`observe`]: what exists (containers, networks, volumes, images), read before deciding.
//! - [`names`]: the engine-side names of a project's containers and networks.
//! - [`container_config`]: one service replica -> the Engine's create request.
//! - [`plan`]: the plan, a petgraph DAG of [`plan::Action`]s, and its bounded-parallel executor.
//! - [`ops`]: the compose operations (`up`, `down`, `stop`, `start`, ...): observe, decide the
//!   plan with a pure function, execute it.
//! - [`oneoff`]: `run SERVICE`'s one-off containers.

pub mod container_config;
pub mod names;
pub mod observe;
pub mod oneoff;
pub mod ops;
pub mod plan;

use std::sync::Arc;

use berth_image::ImageError;
use berth_runtime::container::ContainerError;
use berth_runtime::volume::VolumeError;

/// Compose label keys (docker compose v2 names).
pub mod labels {
    /// The project name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// The service name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// The replica number.
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// `True` for `run` containers.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// The service config hash.
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    /// The project directory.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// The compose files, comma separated.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// `dep:condition:restart` entries, comma separated.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// The image reference.
    pub const IMAGE: &str = "com.docker.compose.image";
    /// The compose version that made the resource.
    pub const VERSION: &str = "com.docker.compose.version";
    /// The network key in the compose file.
    pub const NETWORK: &str = "com.docker.compose.network";
    /// The volume key in the compose file.
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// The version written into `VERSION` labels.
    pub const COMPOSE_VERSION: &str = "2.30.0";
}

/// Errors of planning and executing; each displays as one sentence naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A service named on the command line does not exist.
    #[error("no such service: {0}")]
    NoSuchService(String),
    /// The service uses something berth does not support yet.
    #[error("service {service:?}: {what} is not supported by berth yet")]
    Unsupported {
        /// The service.
        service: String,
        /// What.
        what: String,
    },
    /// The service's configuration cannot be applied.
    #[error("service {service:?}: {message}")]
    Invalid {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// A container operation failed.
    #[error("container {name}: {source}")]
    Container {
        /// The container name.
        name: String,
        /// The engine's error.
        source: ContainerError,
    },
    /// A volume operation failed.
    #[error("volume {name}: {source}")]
    Volume {
        /// The volume name.
        name: String,
        /// The engine's error.
        source: VolumeError,
    },
    /// An image operation failed.
    #[error("image {name}: {source}")]
    Image {
        /// The image reference.
        name: String,
        /// The engine's error.
        source: ImageError,
    },
    /// A network operation failed (the message names the network).
    #[error("{message}")]
    Network {
        /// The engine-side network name.
        name: String,
        /// One sentence naming the network and what to do.
        message: String,
    },
    /// A dependency did not reach its condition.
    #[error("dependency failed to start: {0}")]
    Dependency(String),
    /// `--wait` saw a container fail or ran out of time.
    #[error("{0}")]
    Wait(String),
    /// The project lock could not be taken.
    #[error("cannot lock project {project}: {message}")]
    Lock {
        /// The project.
        project: String,
        /// Why.
        message: String,
    },
    /// An executor task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One progress event, as compose prints them (` Container p-web-1  Started`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `Container`, `Volume`, `Network` or `Image`.
    pub kind: &'static str,
    /// The resource name.
    pub name: String,
    /// `Creating`, `Created`, `Starting`, `Started`, `Running`, `Stopping`, ...
    pub status: String,
    /// Whether this event ends the resource's work (Created, Started, Removed...).
    pub done: bool,
}

/// Where progress events go.
pub type Progress = Arc<dyn Fn(Event) + Send + Sync>;

/// A progress sink that drops everything.
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

pub(crate) fn emit(p: &Progress, kind: &'static str, name: &str, status: &str, done: bool) {
    p(Event { kind, name: name.to_string(), status: status.to_string(), done });
}
