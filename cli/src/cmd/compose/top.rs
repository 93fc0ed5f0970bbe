//! `berth top [SERVICE...]`: the processes running in each of the project's containers.

use std::io::Write;
use std::process::ExitCode;

use berth_runtime::Engine;

use super::project::{ServicesArgs, print_table, targets};
use crate::cmd::ProjectOpts;
use crate::cmd::engine_access::engine_err;

/// Runs `berth top`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: ServicesArgs,
) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, &a.services).await?;
    let mut out = std::io::stdout().lock();
    for c in obs.iter().filter(|c| c.is_running()) {
        let t = engine.container_top(&c.id).await.map_err(engine_err)?;
        let _ = writeln!(out, "{}", c.name);
        let mut table = vec![t.titles.clone()];
        table.extend(t.processes.iter().cloned());
        print_table(&mut out, &table);
        let _ = writeln!(out);
    }
    Ok(ExitCode::SUCCESS)
}
