//! `down`: its options, the pure [`plan_down`] and running it.

use std::collections::BTreeSet;

use berth_runtime::Engine;
use compose_spec::model::Project;

use super::{RunOptions, lock_project, orphan_warning, orphans, stop_in_reverse_order};
use crate::names::network_name;
use crate::observe::{self, Observed, ObservedNetwork, ObservedState};
use crate::plan::{Action, Plan};
use crate::{PlanError, Progress, labels};

/// `down` options.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Also remove orphan containers.
    pub remove_orphans: bool,
    /// Also remove named volumes of the project and anonymous volumes of its containers.
    pub volumes: bool,
    /// Grace period for stops (seconds).
    pub timeout: Option<i64>,
    /// `--rmi`: also remove the services' images.
    pub images: Option<RemoveImages>,
}

/// Which images `down --rmi` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveImages {
    /// Only images without a custom tag (compose's default `{project}-{service}` name).
    Local,
    /// Every image a service uses.
    All,
}

/// Decides the plan of `down` from the project and what exists. Pure: nothing is read or
/// changed.
pub fn plan_down(
    p: &Project,
    observed: &ObservedState,
    opts: &DownOptions,
) -> Result<Plan, PlanError> {
    let obs: Vec<&Observed> = observed.containers.iter().filter(|c| !c.oneoff).collect();
    let mut plan = Plan::default();
    let orph = orphans(p, &obs);
    if !orph.is_empty() && !opts.remove_orphans && !p.services.is_empty() {
        plan.warnings.push(orphan_warning(&orph));
    }
    // One-off (`run`) containers go too: compose takes them only with --remove-orphans, but
    // they are the project's and would keep its networks in use.
    let oneoffs = observed.containers.iter().filter(|c| c.oneoff);
    // With no compose file (services empty) everything labelled with the project goes.
    let targets: Vec<&Observed> = obs
        .iter()
        .copied()
        .chain(oneoffs)
        .filter(|c| {
            // Services disabled by profiles go too (compose's down removes them).
            p.services.is_empty()
                || opts.remove_orphans
                || p.services.contains_key(&c.service)
                || p.disabled_services.contains(&c.service)
        })
        .collect();
    let running: Vec<&Observed> = targets.iter().copied().filter(|c| c.is_running()).collect();
    let stops = stop_in_reverse_order(&mut plan, p, &running, opts.timeout);
    let mut removes = Vec::new();
    // What a network removal waits for: a container's stop when it runs (a stopped container
    // has left its networks, so their teardown overlaps the removal of the containers' files),
    // else its removal.
    let mut off_network = Vec::new();
    for c in &targets {
        let rm =
            plan.add(Action::Remove { name: c.name.clone(), force: true, volumes: opts.volumes });
        match stops.get(&c.name) {
            Some(s) => {
                plan.order(*s, rm);
                off_network.push(*s);
            }
            None => off_network.push(rm),
        }
        removes.push(rm);
    }
    // The project's networks go once its containers left them (external ones are never
    // removed).
    let external: BTreeSet<String> =
        p.networks.iter().filter(|(_, n)| n.external).map(|(k, _)| network_name(p, k)).collect();
    let project_label = |r: &&ObservedNetwork| r.labels.get(labels::PROJECT) == Some(&p.name);
    for rec in
        observed.networks.iter().filter(project_label).filter(|r| !external.contains(&r.name))
    {
        let n = plan.add(Action::RemoveNetwork { name: rec.name.clone() });
        for c in &off_network {
            plan.order(*c, n);
        }
    }
    if opts.volumes {
        let external: BTreeSet<String> = p
            .volumes
            .iter()
            .filter(|(_, v)| v.external)
            .map(|(k, v)| v.name.clone().unwrap_or_else(|| k.clone()))
            .collect();
        let mut names: BTreeSet<String> =
            observed.volumes.iter().filter(|n| !external.contains(*n)).cloned().collect();
        // Anonymous volumes a recreate carried over are mounted by name in the new container,
        // so its own removal does not take them: remove them here.
        for c in &targets {
            for m in &c.summary.mounts {
                if m.typ == "volume" && crate::plan::is_anonymous(&m.name) {
                    names.insert(m.name.clone());
                }
            }
        }
        for name in names {
            let n = plan.add(Action::RemoveVolume { name });
            for rm in &removes {
                plan.order(*rm, n);
            }
        }
    }
    if let Some(mode) = opts.images {
        for name in images_to_remove(p, &targets, mode) {
            let n = plan.add(Action::RemoveImage { name });
            for rm in &removes {
                plan.order(*rm, n);
            }
        }
    }
    Ok(plan)
}

/// The images `down --rmi` removes, as compose picks them: `all` takes every service's image
/// (and, with `--remove-orphans`, the images of the orphans going), `local` only images named
/// by compose itself (a service without `image:` gets `{project}-{service}`).
fn images_to_remove(p: &Project, targets: &[&Observed], mode: RemoveImages) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, svc) in &p.services {
        match (&svc.image, mode) {
            (Some(image), RemoveImages::All) => {
                names.insert(image.clone());
            }
            (None, _) => {
                names.insert(format!("{}-{name}", p.name));
            }
            (Some(_), RemoveImages::Local) => {}
        }
    }
    if mode == RemoveImages::All {
        for c in targets.iter().filter(|c| !p.services.contains_key(&c.service)) {
            names.insert(c.summary.image.clone());
        }
    }
    names
}

/// `down`: stop and remove the project's containers (and with `-v` its volumes); the plan's
/// warnings go to `warn` first.
pub async fn down(
    engine: &Engine,
    p: &Project,
    opts: &DownOptions,
    run: &RunOptions,
    progress: &Progress,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<(), PlanError> {
    let _lock = lock_project(engine, &p.name).await?;
    let observed = observe::for_down(engine, p, opts.volumes).await?;
    let plan = plan_down(p, &observed, opts)?;
    plan.warnings.iter().for_each(|w| warn(w));
    if run.dry_run {
        plan.dry_run(progress);
        return Ok(());
    }
    plan.execute(engine, run.parallel, progress).await?;
    // Materialised secrets and configs go with the containers that used them.
    let files = engine.root().path().join("compose").join(&p.name);
    match std::fs::remove_dir_all(&files) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PlanError::Invalid {
            service: String::new(),
            message: format!("cannot remove {}: {e}", files.display()),
        }),
    }
}
