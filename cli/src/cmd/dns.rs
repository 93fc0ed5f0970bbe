//! The hidden `__dns` subcommand: the per-state-root DNS server for bridge networks. Started
//! (detached, own process group) by the engine on the first connect; exits by itself once no
//! network is left in the root.

use std::process::ExitCode;

use super::EngineOpts;

/// Serves DNS for every network of the root until none is left (returns at once when another
/// server already holds the root's `networks/dns.lock`).
pub fn run(engine: &EngineOpts) -> anyhow::Result<ExitCode> {
    berth_network::dns::run_blocking(&engine.root)?;
    Ok(ExitCode::SUCCESS)
}
