//! `container commit` (berth-builder's commit).

use std::process::ExitCode;

use berth_builder::commit::CommitOptions;

use super::super::engine_access::{EXIT_ENGINE, engine};
use super::super::{EngineOpts, ExitWith};

/// `container commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g. "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container.
    container: String,
    /// `REPOSITORY[:TAG]`.
    reference: Option<String>,
}

/// Runs `container commit`.
pub fn commit(opts: &EngineOpts, a: CommitArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(opts)?;
    let rt = crate::cmd::engine_access::runtime()?;
    let co = CommitOptions {
        reference: a.reference,
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
    };
    let id = rt
        .block_on(berth_builder::commit::commit(&engine, &a.container, co))
        .map_err(|e| ExitWith { code: EXIT_ENGINE, message: format!("berth: {e}") })?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
