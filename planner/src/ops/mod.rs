//! The compose operations: each observes the project ([`crate::observe`]), decides a [`Plan`]
//! from what it saw with a pure function ([`plan_up`], [`plan_down`], [`plan_lifecycle`]) and
//! runs (or prints) it, all under the project lock. `up`, `down` and the lifecycle commands each
//! have a submodule; this one holds the project lock and what they share (service selection,
//! orphans, stops in reverse dependency order).

use std::collections::{BTreeSet, HashMap};

use berth_runtime::Engine;
use berth_store::LockGuard;
use compose_spec::model::Project;
use petgraph::graph::NodeIndex;

use crate::PlanError;
use crate::observe::Observed;
use crate::plan::{Action, Plan};

/// Options shared by every operation.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Max actions at once (None: unlimited).
    pub parallel: Option<usize>,
}

/// Holds the project lock: two commands on one project never plan on the same observed state.
pub struct ProjectLock {
    _guard: LockGuard,
}

/// Takes the per-project lock under the state root (blocks while another command holds it).
pub async fn lock_project(engine: &Engine, project: &str) -> Result<ProjectLock, PlanError> {
    let dir = engine.root().path().join("compose");
    let project_s = project.to_string();
    let lerr = |message: String| PlanError::Lock { project: project_s.clone(), message };
    std::fs::create_dir_all(&dir).map_err(|e| lerr(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{project}.lock"));
    let guard = tokio::task::spawn_blocking(move || LockGuard::exclusive(&path))
        .await
        .map_err(|e| lerr(e.to_string()))?
        .map_err(|e| lerr(e.to_string()))?;
    Ok(ProjectLock { _guard: guard })
}

mod down;
mod lifecycle;
mod pull;
mod up;

pub use down::{DownOptions, RemoveImages, down, plan_down};
pub use lifecycle::{Lifecycle, lifecycle, plan_lifecycle};
pub use pull::{PullPolicy, PullRequest, PushRequest, pull, push};
pub(crate) use up::plan_networks;
pub use up::{UpOptions, network_request, plan_up, up};

/// The services to act on: the named ones (and with `deps`, what they depend on), in dependency order.
pub fn selected_services(
    p: &Project,
    names: &[String],
    deps: bool,
) -> Result<Vec<String>, PlanError> {
    for n in names {
        if !p.services.contains_key(n) {
            return Err(PlanError::NoSuchService(n.clone()));
        }
    }
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> =
        if names.is_empty() { p.services.keys().cloned().collect() } else { names.to_vec() };
    while let Some(n) = todo.pop() {
        if keep.insert(n.clone())
            && deps
            && let Some(s) = p.services.get(&n)
        {
            todo.extend(s.depends_on.keys().filter(|d| p.services.contains_key(*d)).cloned());
            // Services named by volumes_from are needed too (compose treats them as dependencies).
            for v in s.volumes_from.iter().filter(|v| !v.starts_with("container:")) {
                let v = v.strip_prefix("service:").unwrap_or(v);
                let name = v.split(':').next().unwrap_or(v);
                if p.services.contains_key(name) {
                    todo.push(name.to_string());
                }
            }
        }
    }
    Ok(p.dependency_order().into_iter().filter(|s| keep.contains(*s)).map(String::from).collect())
}

fn orphans<'a>(p: &Project, obs: &[&'a Observed]) -> Vec<&'a Observed> {
    obs.iter()
        .copied()
        .filter(|c| {
            !p.services.contains_key(&c.service) && !p.disabled_services.contains(&c.service)
        })
        .collect()
}

fn orphan_warning(orphans: &[&Observed]) -> String {
    let names: Vec<&str> = orphans.iter().map(|o| o.name.as_str()).collect();
    format!(
        "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
        names.join(" ")
    )
}

/// Adds stop actions for `targets`, dependents before their dependencies; returns the nodes
/// by container name.
fn stop_in_reverse_order(
    plan: &mut Plan,
    p: &Project,
    targets: &[&Observed],
    timeout: Option<i64>,
) -> HashMap<String, NodeIndex> {
    let mut by_service: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
    let mut out = HashMap::new();
    for c in targets {
        let n = plan.add(Action::Stop { name: c.name.clone(), timeout });
        by_service.entry(c.service.as_str()).or_default().push(n);
        out.insert(c.name.clone(), n);
    }
    for (svc, s) in &p.services {
        for dep in s.depends_on.keys() {
            for a in by_service.get(svc.as_str()).into_iter().flatten() {
                for b in by_service.get(dep.as_str()).into_iter().flatten() {
                    plan.order(*a, *b);
                }
            }
        }
    }
    out
}
