//! `berth cp SERVICE:SRC DEST` / `berth cp SRC SERVICE:DEST`: copy files between a service
//! container (running or stopped) and the host, with docker cp's path rules.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_planner::PlanError;
use berth_planner::observe;
use berth_runtime::Engine;
use berth_runtime::container::CopyOptions;

use super::project::{load, plan_err};
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth cp`.
#[derive(Debug, clap::Args)]
pub struct CpArgs {
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH (not supported: links are copied as links).
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// `SERVICE:SRC_PATH` or a host path.
    source: String,
    /// A host path or `SERVICE:DEST_PATH`.
    destination: String,
}

fn usage(message: String) -> anyhow::Error {
    ExitWith { code: EXIT_USAGE, message }.into()
}

/// Runs `berth cp`.
pub async fn run(po: &ProjectOpts, engine: &Engine, a: CpArgs) -> anyhow::Result<ExitCode> {
    if a.follow_link {
        return Err(usage(
            "--follow-link is not supported by berth: symlinks are copied as symlinks".into(),
        ));
    }
    if a.source == "-" || a.destination == "-" {
        return Err(usage(
            "copying a tar stream from or to stdin/stdout (`-`) is not supported by berth".into(),
        ));
    }
    let p = load(po, true, &[])?;
    // `SERVICE:PATH` only when SERVICE is one of the project's services, so host paths with a
    // colon stay host paths.
    let service_of = |s: &str| {
        s.split_once(':')
            .filter(|(svc, _)| {
                p.services.contains_key(*svc) || (p.services.is_empty() && !svc.contains('/'))
            })
            .map(|(svc, path)| (svc.to_string(), path.to_string()))
    };
    let (service, path, into) = match (service_of(&a.source), service_of(&a.destination)) {
        (Some((svc, path)), None) => (svc, path, false),
        (None, Some((svc, path))) => (svc, path, true),
        (Some(_), Some(_)) => {
            return Err(usage(
                "copying between services is not supported: one side must be a host path".into(),
            ));
        }
        (None, None) => {
            return Err(usage(format!(
                "one of {:?} and {:?} must be SERVICE:PATH with a service of the project",
                a.source, a.destination
            )));
        }
    };
    if path.is_empty() {
        return Err(usage(format!("{service}: the container path is empty")));
    }
    let obs = observe::containers(engine, &p.name).await.map_err(plan_err)?;
    let Some(c) = obs.iter().find(|c| c.service == service && c.number == a.index) else {
        return Err(ExitWith {
            code: 1,
            message: format!(
                "service {service:?} has no container with index {}: create it with `berth up -d {service}`",
                a.index
            ),
        }
        .into());
    };
    let opts = CopyOptions { archive: a.archive };
    let res = if into {
        engine.container_copy_in(&c.id, &PathBuf::from(&a.source), &path, opts).await
    } else {
        engine.container_copy_out(&c.id, &path, &PathBuf::from(&a.destination), opts).await
    };
    res.map_err(|e| plan_err(PlanError::Container { name: c.name.clone(), source: e }))?;
    Ok(ExitCode::SUCCESS)
}
