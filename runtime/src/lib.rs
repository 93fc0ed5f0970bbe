//! berth-runtime: the Engine that runs containers on berth's own namespaces, cgroups and overlayfs.
//!
//! Below it, each its own crate: `berth-image` (the image store), `berth-launch` (the launcher:
//! a launch spec in, a pid out), `berth-cgroups`, `berth-store` (the state root on disk) and
//! `berth-timing` (opt-in start-up marks).
//!
//! Layout (one module per concern), in layers: each module imports only from the layers
//! below it, so the crate has no import cycle.
//!
//! 1. Leaves, importing nothing of the crate: [`time`] (docker's timestamps and durations),
//!    [`process`] (/proc, pidfds, verified signals, exit codes), [`ids`], [`inplace`] (in-place
//!    file rewrites, directory emptying, without new inodes), [`events`] (the event journal),
//!    [`sealed_exe`] (berth's own executables opened so no container can overwrite them),
//!    [`monitor_protocol`] (what the starting CLI and a monitor share: the status pipe and its
//!    typed report) and [`logs`] (docker json-file logs, over `time`).
//! 2. [`engine`]: the Engine handle and `blocking`, which every async method uses.
//! 3. [`volume`] (local-driver named volumes and their Engine methods) and [`images`] (the
//!    Engine's image methods; the store is the crate berth-image).
//! 4. [`container`]: records, create/start/stop/inspect/list/exec, Docker-shaped API types,
//!    attaching to networks.
//! 5. [`monitor`]: the per-container monitor process (stdio, logs, exit code, restart,
//!    healthcheck); it uses `container` and nothing uses it.
//! 6. [`networks`] (the Engine's network methods: create/list/inspect/remove/prune/connect/
//!    disconnect) and [`system`] (disk usage, engine and machine facts, host leftovers).

pub mod container;
pub mod engine;
pub mod events;
pub mod ids;
pub mod images;
pub mod inplace;
pub mod logs;
pub mod monitor;
pub mod monitor_protocol;
pub mod networks;
pub mod process;
pub mod sealed_exe;
pub mod system;
pub mod time;
pub mod volume;

pub use engine::{Engine, EngineOptions};
