//! The hidden `__monitor` subcommand: the per-container monitor process (see
//! `berth_runtime::monitor`). Started by the engine, never by users.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of the monitor.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// State root.
    root: PathBuf,
    /// Container id.
    id: String,
}

/// Runs the monitor: detaches, then supervises the container until it is done.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match berth_runtime::monitor::daemonize() {
        Ok(false) => Ok(ExitCode::SUCCESS),
        Ok(true) => {
            let code = berth_runtime::monitor::run(&args.root, &args.id);
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        Err(e) => anyhow::bail!("monitor: {e}"),
    }
}
