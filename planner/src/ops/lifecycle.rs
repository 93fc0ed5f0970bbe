//! `stop`, `start`, `restart`, `kill`, `pause`, `unpause` and `rm` on selected services: the pure
//! [`plan_lifecycle`] and running it.

use std::collections::HashMap;

use berth_runtime::Engine;
use compose_spec::model::Project;
use petgraph::graph::NodeIndex;

use super::{RunOptions, lock_project, selected_services, stop_in_reverse_order};
use crate::observe::{self, Observed, ObservedState};
use crate::plan::{Action, Condition, Plan};
use crate::{PlanError, Progress};

/// What a lifecycle command does to each selected container.
#[derive(Debug, Clone)]
pub enum Lifecycle {
    /// `stop -t`.
    Stop(Option<i64>),
    /// `start`.
    Start,
    /// `restart -t`.
    Restart(Option<i64>),
    /// `kill -s`.
    Kill(Option<String>),
    /// `pause` (true) / `unpause` (false).
    Pause(bool),
    /// `rm` (stop first, remove anonymous volumes).
    Remove {
        /// Stop running containers first (`-s`).
        stop: bool,
        /// Remove anonymous volumes (`-v`).
        volumes: bool,
    },
}

/// `stop`/`start`/`restart`/`kill`/`rm` on the selected services' containers, in dependency
/// order (reverse order for stop).
pub async fn lifecycle(
    engine: &Engine,
    p: &Project,
    services: &[String],
    what: Lifecycle,
    run: &RunOptions,
    progress: &Progress,
) -> Result<(), PlanError> {
    let _lock = lock_project(engine, &p.name).await?;
    let selected = selected_for_lifecycle(p, services)?;
    let observed = observe::for_lifecycle(engine, p).await?;
    let plan = plan_for(p, &selected, what, &observed);
    if run.dry_run {
        plan.dry_run(progress);
        return Ok(());
    }
    plan.execute(engine, run.parallel, progress).await
}

/// The services a lifecycle command acts on (empty: every container of the project).
fn selected_for_lifecycle(p: &Project, services: &[String]) -> Result<Vec<String>, PlanError> {
    if services.is_empty() && p.services.is_empty() {
        Ok(Vec::new())
    } else {
        selected_services(p, services, false)
    }
}

/// Decides the plan of a lifecycle command (`stop`, `start`, `restart`, `kill`, `pause`,
/// `unpause`, `rm`) on `services` (empty: all) from what exists. Pure: nothing is read or
/// changed.
pub fn plan_lifecycle(
    p: &Project,
    services: &[String],
    what: Lifecycle,
    observed: &ObservedState,
) -> Result<Plan, PlanError> {
    let selected = selected_for_lifecycle(p, services)?;
    Ok(plan_for(p, &selected, what, observed))
}

fn plan_for(p: &Project, selected: &[String], what: Lifecycle, observed: &ObservedState) -> Plan {
    let targets: Vec<&Observed> = observed
        .containers
        .iter()
        .filter(|c| !c.oneoff)
        .filter(|c| selected.is_empty() || selected.contains(&c.service))
        .collect();
    let mut plan = Plan::default();
    match what {
        Lifecycle::Stop(t) => {
            let running: Vec<&Observed> = targets.into_iter().filter(|c| c.is_running()).collect();
            stop_in_reverse_order(&mut plan, p, &running, t);
        }
        Lifecycle::Remove { stop, volumes } => {
            let stops = if stop {
                let running: Vec<&Observed> =
                    targets.iter().copied().filter(|c| c.is_running()).collect();
                stop_in_reverse_order(&mut plan, p, &running, None)
            } else {
                HashMap::new()
            };
            for c in &targets {
                if c.is_running() && !stop {
                    continue;
                }
                let rm = plan.add(Action::Remove { name: c.name.clone(), force: false, volumes });
                if let Some(s) = stops.get(&c.name) {
                    plan.order(*s, rm);
                }
            }
        }
        other => {
            // Dependencies first.
            let mut by_service: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
            for c in &targets {
                let a = match &other {
                    Lifecycle::Start if c.is_running() => continue,
                    Lifecycle::Start => {
                        Action::Start { service: c.service.clone(), name: c.name.clone() }
                    }
                    Lifecycle::Restart(t) => Action::Restart { name: c.name.clone(), timeout: *t },
                    Lifecycle::Kill(sig) if c.is_running() => {
                        Action::Kill { name: c.name.clone(), signal: sig.clone() }
                    }
                    Lifecycle::Pause(true) if c.state == "running" => {
                        Action::Pause { name: c.name.clone(), pause: true }
                    }
                    Lifecycle::Pause(false) if c.state == "paused" => {
                        Action::Pause { name: c.name.clone(), pause: false }
                    }
                    _ => continue,
                };
                let n = plan.add(a);
                by_service.entry(c.service.as_str()).or_default().push(n);
            }
            let starting = matches!(other, Lifecycle::Start);
            for (svc, s) in &p.services {
                for (dep, d) in &s.depends_on {
                    let (Some(dep_nodes), Some(svc_nodes)) =
                        (by_service.get(dep.as_str()), by_service.get(svc.as_str()))
                    else {
                        continue;
                    };
                    // `start` honours healthy/completed conditions as `up` does.
                    let cond = match d.condition.as_str() {
                        "service_healthy" if starting => Some(Condition::Healthy),
                        "service_completed_successfully" if starting => Some(Condition::Completed),
                        _ => None,
                    };
                    let gate = match cond {
                        Some(condition) => {
                            let containers = targets
                                .iter()
                                .filter(|c| &c.service == dep)
                                .map(|c| c.name.clone())
                                .collect();
                            let w = plan.add(Action::Wait {
                                service: svc.clone(),
                                dependency: dep.clone(),
                                containers,
                                condition,
                                required: d.required,
                            });
                            for a in dep_nodes {
                                plan.order(*a, w);
                            }
                            vec![w]
                        }
                        None => dep_nodes.clone(),
                    };
                    for a in &gate {
                        for b in svc_nodes {
                            plan.order(*a, *b);
                        }
                    }
                }
            }
        }
    }
    plan
}
