//! berth-runtime: the Engine that runs containers on berth's own namespaces, cgroups and overlayfs.
//!
//! Layout (one module per concern):
//! - [`image`]: content-addressed image store, import/load/save, safe layer unpacking.
//! - [`volume`]: local-driver named volumes.
//! - [`container`]: container records, create/start/stop/inspect/list/exec, Docker-shaped API types.
//! - [`monitor`]: the per-container monitor process (stdio, logs, exit code, restart, healthcheck).
//! - [`logs`]: docker json-file log writing (with rotation) and reading.
//! - [`fsutil`]: in-place file rewrites and directory emptying (no new inodes).
//! - [`network`]: Engine network methods (create/list/inspect/remove/prune/connect/disconnect).
//! - [`system`]: disk usage, engine and machine facts, and host leftovers of deleted state roots.
//! - [`engine`]: the async, bollard-like facade the planner and CLI drive.
//! - [`sealed_exe`]: berth's own executables opened so no container can overwrite them.

pub mod container;
pub mod engine;
pub mod events;
pub mod fsutil;
pub mod image;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod sealed_exe;
pub mod system;
pub mod volume;

pub use engine::{Engine, EngineOptions};
