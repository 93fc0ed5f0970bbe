//! Containers: Docker-shaped API types, on-disk records, naming, and the `impl Engine` methods
//! (create/start/stop/kill/restart/remove/inspect/list/wait/logs/exec/pause/top/stats/rename).
//!
//! Each container lives in `containers/<id>/` (records, logs, hostname/hosts/resolv.conf, the
//! writable layer). A running container has one monitor process (see [`crate::monitor`]);
//! names are checked under the root lock, a container's records under its own lock file.
//!
//! The files form layers, each importing only from those before it in this list:
//! `api` (Docker-shaped types) → `record` (on-disk records), `user` → `error` →
//! `launcher`, `cgroup`, `stores` (the crates below: berth-launch, berth-cgroups, the image
//! and volume stores) → `spec` (the launch spec) → `net` (networks: ports, settings, attach)
//! → `liveness` (is it alive; repairing a dead monitor's record) → `name_index` (the name index,
//! removal of directories) → `damaged` (finding and loading containers, damaged ones too) →
//! `create` → `lifecycle` (start/stop/kill/remove/...), `follow` (logs), `query` (inspect,
//! list, top, stats), `exec`, `copy`: the Engine methods.

pub mod api;
pub(crate) mod cgroup;
mod copy;
mod create;
mod damaged;
mod error;
pub mod exec;
mod follow;
pub(crate) mod launcher;
mod lifecycle;
mod liveness;
mod name_index;
pub mod net;
mod query;
pub mod record;
pub mod spec;
mod stores;
pub mod sync;
pub mod user;

pub use api::*;
pub use copy::CopyOptions;
pub use error::{ContainerError, StartError};
pub use exec::{ExecChild, ExecOutput, ExecStreams};
pub use lifecycle::Attached;
pub(crate) use lifecycle::remove_exited;
pub(crate) use liveness::{claims_alive, repair_dead};
pub use sync::{SyncChange, SyncReport};
