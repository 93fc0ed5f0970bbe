//! Watch mode (`berth watch`, `up --watch`): what compose's `develop.watch` does, in three
//! stages that data flows through one way:
//!
//! - [`events`]: file events from the kernel (inotify through `notify`), batched by a short
//!   quiet period so that an editor's save or a `git checkout` becomes one batch;
//! - [`rules`]: a service's `develop.watch` rules compiled (paths, targets, ignore and include
//!   patterns with `.dockerignore` semantics, the build context's `.dockerignore`, editor
//!   temporary files and `.git`);
//! - [`plan`]: what one batch asks of each service (files to sync, restart, rebuild, exec
//!   hooks), as plain data that the CLI carries out on the runtime.

pub mod events;
pub mod plan;
pub mod rules;

/// What can go wrong while watching.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kernel refused a watch (a path vanished, the inotify limits were reached).
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The path.
        path: std::path::PathBuf,
        /// Why.
        source: notify::Error,
    },
    /// A watched path does not exist.
    #[error("service {service:?}: develop.watch path {path} does not exist")]
    MissingPath {
        /// The service.
        service: String,
        /// The path.
        path: std::path::PathBuf,
    },
    /// An ignore or include pattern (or a `.dockerignore` line) is not valid.
    #[error("service {service:?}: {source}")]
    Pattern {
        /// The service.
        service: String,
        /// The pattern error.
        source: berth_builder::ignore::IgnoreError,
    },
    /// A `.dockerignore` could not be read.
    #[error("service {service:?}: read {path}: {source}")]
    Read {
        /// The service.
        service: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The event source ended (the watcher thread is gone).
    #[error("the file watcher stopped")]
    Stopped,
}
