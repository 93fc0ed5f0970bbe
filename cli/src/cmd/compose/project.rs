//! What every compose command shares: the arguments of the commands that take service names
//! only, loading the project, selecting its containers, running a lifecycle operation, turning
//! planner errors into exit codes, warnings and tables.

use std::io::Write;
use std::process::ExitCode;

use berth_planner::observe::{self, Observed};
use berth_planner::ops::{self, Lifecycle, RunOptions};
use berth_planner::{PlanError, Progress};
use berth_runtime::Engine;
use compose_spec::ErrorKind;
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;

use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// Arguments of the commands that take service names only (`start`, `pause`, `unpause`, `top`).
#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    /// Services.
    pub(super) services: Vec<String>,
}

fn warn_all(w: &[String]) {
    w.iter().for_each(|w| warn_one(w));
}

/// A warning line as compose prints it.
pub(super) fn warn_one(w: &str) {
    eprintln!("WARN[0000] {w}");
}

/// A planner error as one sentence; an unknown service is a command-line error.
pub(crate) fn plan_err(e: PlanError) -> anyhow::Error {
    let code = match e {
        PlanError::NoSuchService(_) => EXIT_USAGE,
        _ => 1,
    };
    ExitWith { code, message: e.to_string() }.into()
}

/// Loads the project; with `allow_missing` and `-p`, a missing compose file gives an empty
/// project of that name (so `down -p x` works from anywhere, as with compose).
/// `services` named on the command line enable their profiles, as in compose.
pub(crate) fn load(
    po: &ProjectOpts,
    allow_missing: bool,
    services: &[String],
) -> anyhow::Result<Project> {
    let working_dir = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))?;
    let opts = LoadOptions {
        working_dir,
        files: po.files.clone(),
        stdin: None,
        project_directory: po.project_directory.clone(),
        project_name: po.project_name.clone(),
        env_files: po.env_files.clone(),
        profiles: po.profiles.clone(),
        services: services.to_vec(),
        environment: std::env::vars().collect(),
        interpolate: true,
        resolve_paths: true,
        defaults: true,
        consistency: true,
    };
    match compose_spec::load_project(&opts) {
        Ok((p, warnings)) => {
            warn_all(&warnings);
            Ok(p)
        }
        // Only a missing file falls back: a broken one must not make `down` act on labels alone.
        Err(e) => match (&po.project_name, allow_missing && e.kind == ErrorKind::NotFound) {
            (Some(name), true) => Ok(Project { name: name.clone(), ..Default::default() }),
            _ => Err(ExitWith { code: e.exit_code(), message: e.to_string() }.into()),
        },
    }
}

/// Runs one lifecycle operation (start, stop, kill, rm, pause, ...) on the named services.
pub(super) async fn lifecycle(
    po: &ProjectOpts,
    engine: &Engine,
    services: &[String],
    what: Lifecycle,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, true, services)?;
    ops::lifecycle(engine, &p, services, what, run, progress).await.map_err(plan_err)?;
    Ok(ExitCode::SUCCESS)
}

/// The project and its containers of `services` (all when empty); unknown services are errors.
pub(super) async fn targets(
    po: &ProjectOpts,
    engine: &Engine,
    services: &[String],
) -> anyhow::Result<(Project, Vec<Observed>)> {
    let p = load(po, true, services)?;
    for s in services {
        if !p.services.is_empty() && !p.services.contains_key(s) {
            return Err(plan_err(PlanError::NoSuchService(s.clone())));
        }
    }
    // With the damaged containers that kept only their name (listed dead).
    let obs = observe::containers_of(engine, &p).await.map_err(plan_err)?;
    let obs = obs.into_iter().filter(|c| services.is_empty() || services.contains(&c.service));
    Ok((p, obs.collect()))
}

/// Whether to colour output for `--ansi` (auto: when stdout is a terminal).
pub(super) fn use_color(ansi: &str) -> bool {
    match ansi {
        "never" => false,
        "always" => true,
        _ => std::io::IsTerminal::is_terminal(&std::io::stdout()),
    }
}

/// Prints `rows` (the first is the header) as a table with columns padded as docker does.
pub(super) fn print_table(out: &mut impl Write, rows: &[Vec<String>]) {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}   ", w = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
