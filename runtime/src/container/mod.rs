//! Containers: Docker-shaped API types, on-disk records, naming, and the `impl Engine` methods
//! (create/start/stop/kill/restart/remove/inspect/list/wait/logs/exec/pause/top/stats/rename).
//!
//! Each container lives in `containers/<id>/` (records, logs, hostname/hosts/resolv.conf, the
//! writable layer). A running container has one monitor process (see [`crate::monitor`]);
//! names are checked under the root lock, a container's records under its own lock file.
//!
//! The files form layers, each importing only from those above it in this list:
//! `api` (types) → `record`, `user` → `error` → `rt` (the crates below) → `spec` →
//! `network` → `liveness` → `names` → `damaged` (finding and loading) → `create`, `ops`,
//! `exec`, `copy` (the Engine methods).

pub mod api;
mod copy;
mod create;
mod damaged;
mod error;
pub mod exec;
mod liveness;
mod names;
pub mod network;
mod ops;
pub mod record;
pub mod rt;
pub mod spec;
pub mod user;

pub use api::*;
pub use copy::CopyOptions;
pub use error::{ContainerError, StartError};
pub use exec::ExecOutput;
pub(crate) use liveness::{claims_alive, repair_dead};
pub use ops::Attached;
pub(crate) use ops::remove_exited;
