//! The Engine: the async, bollard-like facade over images, containers, volumes and networks.
//!
//! Methods live beside their concern as `impl Engine` blocks (e.g. container methods in
//! `container`, image methods in `images`); this file holds only the shared handle and
//! `blocking`, which every async method uses to run its blocking work.

use std::path::PathBuf;

use berth_store::{StateRoot, StoreError};

/// How to open an Engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The state root (images, containers, volumes, networks).
    pub root: PathBuf,
    /// The `berth` binary that runs the hidden monitor subcommand (default: the current executable).
    pub helper_exe: Option<PathBuf>,
}

impl EngineOptions {
    /// Options for the state root `root` and the current executable as helper.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        EngineOptions { root: root.into(), helper_exe: None }
    }
}

/// The handle every caller uses; cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    root: StateRoot,
    helper_exe: PathBuf,
}

impl Engine {
    /// Opens the engine on its state root, creating the layout if needed.
    pub fn open(opts: EngineOptions) -> Result<Self, StoreError> {
        let root = StateRoot::open(opts.root)?;
        let helper_exe = match opts.helper_exe {
            Some(p) => p,
            // A berth re-executed from a protected copy has no usable /proc/self/exe path.
            None => crate::sealed_exe::original_exe()
                .map_err(|e| StoreError::io("find current executable", "/proc/self/exe", e))?,
        };
        Ok(Engine { root, helper_exe })
    }

    /// An Engine on an open state root for work that spawns no monitor (a monitor removing its
    /// `auto_remove` container, a `container:` network mode finding its target).
    pub(crate) fn on_root(root: StateRoot) -> Self {
        Engine { root, helper_exe: PathBuf::from("/proc/self/exe") }
    }

    /// The state root.
    pub fn root(&self) -> &StateRoot {
        &self.root
    }

    /// The `berth` binary used to spawn monitor processes.
    pub fn helper_exe(&self) -> &std::path::Path {
        &self.helper_exe
    }
}

/// Runs blocking engine work on tokio's blocking pool; a task that panicked or was cancelled
/// becomes the caller's error type.
pub(crate) async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static + From<tokio::task::JoinError>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}
