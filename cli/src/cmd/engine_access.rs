//! Reaching the Engine from a command: opening it on the CLI's state root, the tokio runtime a
//! command runs on, and engine errors as docker reports them (exit 125 with one sentence).

use anyhow::Context;
use berth_runtime::container::ContainerError;
use berth_runtime::{Engine, EngineOptions};

use super::{EngineOpts, ExitWith};

/// docker's exit code for errors of the engine itself.
pub const EXIT_ENGINE: u8 = 125;

/// A tokio runtime for one CLI command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens the engine on the CLI's state root.
pub fn engine(opts: &EngineOpts) -> anyhow::Result<Engine> {
    Engine::open(EngineOptions::new(&opts.root))
        .map_err(|e| ExitWith { code: EXIT_ENGINE, message: format!("berth: {e}") }.into())
}

/// An engine error as docker reports it: exit 125 with one sentence.
pub fn engine_err(e: ContainerError) -> anyhow::Error {
    ExitWith { code: EXIT_ENGINE, message: format!("berth: {e}") }.into()
}
