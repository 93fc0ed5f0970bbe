//! One-off containers (`berth run SERVICE`): a container made from a service's configuration,
//! named `{project}-{service}-run-{12 hex}` and labelled `com.docker.compose.oneoff=True`, as
//! compose does. Its dependencies are brought up with [`crate::ops::up`] first.

use std::collections::BTreeMap;

use berth_runtime::Engine;
use berth_runtime::container::{ContainerCreateConfig, ContainerSummary, ListFilters};
use compose_spec::model::Project;

use crate::observe::{self, Observed, ObservedState};
use crate::ops::{self, RunOptions, UpOptions};
use crate::plan::{Action, Condition, Plan};
use crate::{PlanError, Progress, convert, labels};

/// The label holding a one-off container's full random slug (compose's name).
pub const SLUG: &str = "com.docker.compose.slug";

/// What `run` changes in the service's configuration.
#[derive(Debug, Clone, Default)]
pub struct OneOffOptions {
    /// The service.
    pub service: String,
    /// Command (None: the service's).
    pub command: Option<Vec<String>>,
    /// Entrypoint (None: the service's; empty: none).
    pub entrypoint: Option<Vec<String>>,
    /// Extra `KEY=value` environment entries (they win over the service's).
    pub env: Vec<String>,
    /// User override.
    pub user: Option<String>,
    /// Working directory override.
    pub workdir: Option<String>,
    /// Extra labels (they win over the service's).
    pub labels: Vec<(String, String)>,
    /// Extra `-v` mounts in docker's `src:dst[:ro]` syntax.
    pub volumes: Vec<String>,
    /// Keep the service's published ports (`--service-ports`); otherwise none are published.
    pub service_ports: bool,
    /// Container name (None: `{project}-{service}-run-{12 hex}`).
    pub name: Option<String>,
    /// Allocate a terminal (None: as the service says).
    pub tty: Option<bool>,
    /// Keep stdin open.
    pub interactive: bool,
    /// Remove the container when it exits (engine-side; for detached runs).
    pub auto_remove: bool,
    /// Keep the service's network aliases (`--use-aliases`); otherwise the one-off answers to
    /// its own name only, as in compose.
    pub use_aliases: bool,
}

/// A prepared one-off container: its name and create request.
#[derive(Debug, Clone)]
pub struct OneOff {
    /// Container name.
    pub name: String,
    /// The create request.
    pub config: ContainerCreateConfig,
}

/// Builds the one-off container's name and create request from the service's configuration.
pub async fn prepare(
    engine: &Engine,
    p: &Project,
    opts: &OneOffOptions,
) -> Result<OneOff, PlanError> {
    let svc = &opts.service;
    let Some(s) = p.services.get(svc) else {
        return Err(PlanError::NoSuchService(svc.clone()));
    };
    let slug = berth_runtime::ids::random_id().map_err(|e| PlanError::Invalid {
        service: svc.clone(),
        message: format!("cannot read /dev/urandom for the container name: {e}"),
    })?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => format!("{}-{svc}-run-{}", p.name, &slug[..12]),
    };
    if let Ok(other) = engine.container_inspect(&name).await {
        return Err(PlanError::Invalid {
            service: svc.clone(),
            message: format!(
                "container name {name:?} is already in use by container {}: choose another --name or remove it with `berth container rm {name}`",
                &other.id[..12.min(other.id.len())]
            ),
        });
    }
    let image = p.image_name(svc);
    let image_id = observe::image_id(svc, &image, Some(&observe::image(engine, &image).await))?;
    let hash = compose_spec::service_hash(s);
    // compose publishes no ports for a one-off unless asked (`--service-ports`); nor does it
    // apply `container_name` (it would clash with the service's own container).
    let mut p1 = p.clone();
    if let Some(s1) = p1.services.get_mut(svc) {
        if !opts.service_ports {
            s1.ports.clear();
        }
        s1.container_name = None;
    }
    let mut cfg = convert::create_config(&p1, svc, 1, &hash, &image_id)?;
    let c = &mut cfg.config;
    c.labels.insert(labels::ONEOFF.into(), "True".into());
    c.labels.insert(SLUG.into(), slug);
    for (k, v) in &opts.labels {
        c.labels.insert(k.clone(), v.clone());
    }
    if let Some(cmd) = &opts.command {
        c.cmd = Some(cmd.clone());
    }
    if let Some(ep) = &opts.entrypoint {
        c.entrypoint = Some(ep.clone());
    }
    for e in &opts.env {
        let key = e.split('=').next().unwrap_or(e);
        c.env.retain(|x| x.split('=').next() != Some(key));
        c.env.push(e.clone());
    }
    if let Some(u) = &opts.user {
        c.user = u.clone();
    }
    if let Some(w) = &opts.workdir {
        c.working_dir = w.clone();
    }
    if let Some(t) = opts.tty {
        c.tty = t;
    }
    c.open_stdin = opts.interactive;
    c.stdin_once = opts.interactive;
    c.attach_stdin = opts.interactive;
    c.attach_stdout = true;
    c.attach_stderr = true;
    cfg.host_config.binds.extend(opts.volumes.iter().cloned());
    cfg.host_config.auto_remove = opts.auto_remove;
    // compose does not restart one-offs.
    cfg.host_config.restart_policy = Default::default();
    if !opts.use_aliases {
        for ep in cfg.networking_config.endpoints_config.values_mut() {
            ep.aliases.clear();
        }
    }
    Ok(OneOff { name, config: cfg })
}

/// The services `service` depends on (transitively), in dependency order, without itself.
pub fn dependencies(p: &Project, service: &str) -> Result<Vec<String>, PlanError> {
    let all = ops::selected_services(p, &[service.to_string()], true)?;
    Ok(all.into_iter().filter(|s| s != service).collect())
}

/// Brings up the dependencies of `service` as `up` would (and creates the project's volumes).
pub async fn up_dependencies(
    engine: &Engine,
    p: &Project,
    service: &str,
    run: &RunOptions,
    progress: &Progress,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<(), PlanError> {
    let deps = dependencies(p, service)?;
    if deps.is_empty() {
        return Ok(());
    }
    let opts = UpOptions { services: deps, ..Default::default() };
    ops::up(engine, p, &opts, run, progress, warn).await
}

/// Creates the one-off container: the named volumes it mounts first, after waiting for the
/// `service_healthy` / `service_completed_successfully` conditions of its dependencies
/// (unless `no_deps`). Does not start it.
pub async fn create(
    engine: &Engine,
    p: &Project,
    service: &str,
    one: &OneOff,
    no_deps: bool,
    run: &RunOptions,
    progress: &Progress,
) -> Result<(), PlanError> {
    if !p.services.contains_key(service) {
        return Err(PlanError::NoSuchService(service.into()));
    }
    let containers = observe::containers(engine, &p.name).await?;
    let networks = observe::networks_used_by(engine, p, [&service.to_string()]).await?;
    let observed = ObservedState { containers, networks, ..Default::default() };
    let plan = plan_create(p, service, one, no_deps, &observed)?;
    if run.dry_run {
        plan.dry_run(progress);
        return Ok(());
    }
    plan.execute(engine, run.parallel, progress).await
}

/// Decides the plan of [`create`] from what exists. Pure: nothing is read or changed.
pub fn plan_create(
    p: &Project,
    service: &str,
    one: &OneOff,
    no_deps: bool,
    observed: &ObservedState,
) -> Result<Plan, PlanError> {
    let Some(s) = p.services.get(service) else {
        return Err(PlanError::NoSuchService(service.into()));
    };
    let mut plan = Plan::default();
    let create = plan.add(Action::Create {
        service: service.into(),
        name: one.name.clone(),
        config: Box::new(one.config.clone()),
        start: false,
        volumes_from: convert::volumes_from(p, service, s)?,
    });
    for v in s.volumes.iter().filter(|v| v.kind == "volume") {
        let Some(key) = &v.source else { continue };
        let Some(vol) = p.volumes.get(key) else { continue };
        let mut l: BTreeMap<String, String> =
            vol.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        l.insert(labels::PROJECT.into(), p.name.clone());
        l.insert(labels::VOLUME.into(), key.clone());
        l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
        l.insert(labels::CONFIG_HASH.into(), compose_spec::emit::volume_hash(vol));
        let n = plan.add(Action::CreateVolume {
            name: vol.name.clone().unwrap_or_else(|| format!("{}_{key}", p.name)),
            labels: l,
            driver_opts: vol.driver_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            external: vol.external,
        });
        plan.order(n, create);
    }
    // The networks it joins are created when missing (`run` before any `up`), as compose does;
    // a changed network in use is left for `up`/`down` to replace.
    let obs: Vec<&Observed> = observed.containers.iter().filter(|c| !c.oneoff).collect();
    let keep = UpOptions { no_recreate: true, ..Default::default() };
    let nets =
        ops::plan_networks(p, &observed.networks, &obs, &[service.to_string()], &keep, &mut plan)?;
    for node in nets.nodes.values() {
        plan.order(*node, create);
    }
    if !no_deps {
        for (dep, d) in &s.depends_on {
            let condition = match d.condition.as_str() {
                "service_healthy" => Condition::Healthy,
                "service_completed_successfully" => Condition::Completed,
                _ => continue,
            };
            let containers: Vec<String> =
                obs.iter().filter(|c| &c.service == dep).map(|c| c.name.clone()).collect();
            let w = plan.add(Action::Wait {
                service: service.into(),
                dependency: dep.clone(),
                containers,
                condition,
                required: d.required,
            });
            plan.order(w, create);
        }
    }
    Ok(plan)
}

/// The project's one-off containers (`oneoff=True`), as the engine lists them.
pub async fn containers(
    engine: &Engine,
    project: &str,
) -> Result<Vec<ContainerSummary>, PlanError> {
    let filters = ListFilters {
        label: vec![format!("{}={project}", labels::PROJECT), format!("{}=True", labels::ONEOFF)],
        ..Default::default()
    };
    engine
        .container_list(true, &filters)
        .await
        .map_err(|source| PlanError::Container { name: format!("(project {project})"), source })
}
