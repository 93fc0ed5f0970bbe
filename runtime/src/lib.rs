//! berth-runtime: the Engine that runs containers on berth's own namespaces, cgroups and overlayfs.
//!
//! Below it, each its own crate: `berth-image` (the image store), `berth-launch` (the launcher:
//! a launch spec in, a pid out), `berth-cgroups`, `berth-store` (the state root on disk) and
//! `berth-timing` (opt-in start-up marks).
//!
//! Layout (one module per concern):
//! - [`image`]: Engine methods for images (the store is the crate berth-image).
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
