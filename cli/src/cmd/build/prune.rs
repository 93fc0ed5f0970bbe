//! `builder prune`.

use std::io::Write;
use std::process::ExitCode;

use super::super::EngineOpts;
use super::super::engine_access::engine;
use super::build_err;

/// `builder`: manage the build cache.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune {
        /// Also remove the content of RUN --mount=type=cache directories.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `builder` subcommand.
pub fn builder(opts: &EngineOpts, cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    let BuilderCommand::Prune { all, force } = cmd;
    if !force
        && !crate::cmd::image::confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        )
    {
        return Ok(ExitCode::SUCCESS);
    }
    let engine = engine(opts)?;
    let rt = crate::cmd::engine_access::runtime()?;
    let report = rt.block_on(berth_builder::prune::prune(&engine, all)).map_err(build_err)?;
    let mut out = std::io::stdout().lock();
    let deleted = report
        .images_deleted
        .iter()
        .filter(|i| matches!(i, berth_image::RemoveItem::Deleted(_)))
        .count();
    writeln!(out, "Deleted build cache objects: {deleted}")?;
    writeln!(out, "Total:\t{}", crate::cmd::system::human_size(report.space_reclaimed))?;
    Ok(ExitCode::SUCCESS)
}
