//! The plan: a DAG of actions (edge a -> b: a must finish before b starts), executed with
//! bounded parallelism in dependency order, or only printed (`--dry-run`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use berth_image::ImageError;
use berth_network::{NetworkCreate, NetworkError};
use berth_runtime::Engine;
use berth_runtime::container::{ContainerCreateConfig, ContainerError, MountSpec};
use berth_runtime::networks::EngineNetworkError;
use berth_runtime::volume::VolumeError;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use tokio::task::JoinSet;

use crate::{PlanError, Progress, emit};

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Every container of the dependency is healthy.
    Healthy,
    /// Every container of the dependency exited with status 0.
    Completed,
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub enum Action {
    /// Create a named volume unless it exists (external: only check that it exists).
    CreateVolume {
        /// Engine-side name.
        name: String,
        /// Labels for a new volume.
        labels: BTreeMap<String, String>,
        /// Driver options for a new volume.
        driver_opts: BTreeMap<String, String>,
        /// Managed outside the project: never created.
        external: bool,
    },
    /// Create a project network (its existence and config were checked while planning).
    CreateNetwork {
        /// The create request (engine-side name, compose labels, IPAM, options).
        request: Box<NetworkCreate>,
    },
    /// Remove a network; one still in use by other containers is left with a warning.
    RemoveNetwork {
        /// Engine-side name.
        name: String,
    },
    /// Create a container, then start it when `start`.
    Create {
        /// Service.
        service: String,
        /// Container name.
        name: String,
        /// The create request.
        config: Box<ContainerCreateConfig>,
        /// Start after creating.
        start: bool,
        /// `volumes_from`: (container, read-only), resolved when the action runs.
        volumes_from: Vec<(String, bool)>,
    },
    /// Replace an outdated container by a new one with the same name.
    Recreate {
        /// Service.
        service: String,
        /// Container name.
        name: String,
        /// The create request.
        config: Box<ContainerCreateConfig>,
        /// Start after creating.
        start: bool,
        /// Grace period for stopping the old container.
        timeout: Option<i64>,
        /// `volumes_from`: (container, read-only), resolved when the action runs.
        volumes_from: Vec<(String, bool)>,
        /// Don't carry the old container's anonymous volumes over (`up -V`): remove them.
        renew_anon_volumes: bool,
    },
    /// Start an existing, up-to-date container.
    Start {
        /// Service.
        service: String,
        /// Container name.
        name: String,
    },
    /// Leave a running, up-to-date container alone.
    Keep {
        /// Service.
        service: String,
        /// Container name.
        name: String,
    },
    /// Wait until the dependency's containers reach `condition`.
    Wait {
        /// The dependent service.
        service: String,
        /// The dependency.
        dependency: String,
        /// Container names of the dependency.
        containers: Vec<String>,
        /// What to wait for.
        condition: Condition,
        /// A failure only warns when false.
        required: bool,
    },
    /// Stop a container.
    Stop {
        /// Container name.
        name: String,
        /// Grace period (None: the container's own).
        timeout: Option<i64>,
    },
    /// Restart a container.
    Restart {
        /// Container name.
        name: String,
        /// Grace period (None: the container's own).
        timeout: Option<i64>,
    },
    /// Send a signal to a running container.
    Kill {
        /// Container name.
        name: String,
        /// Signal (None: SIGKILL).
        signal: Option<String>,
    },
    /// Freeze (`true`) or thaw (`false`) a container's processes.
    Pause {
        /// Container name.
        name: String,
        /// Pause or unpause.
        pause: bool,
    },
    /// Remove a container (it is stopped first when `force`).
    Remove {
        /// Container name.
        name: String,
        /// Kill it first if it runs.
        force: bool,
        /// Also remove its anonymous volumes.
        volumes: bool,
    },
    /// Remove a named volume.
    RemoveVolume {
        /// Engine-side name.
        name: String,
    },
    /// Remove an image (`down --rmi`); one a container still uses is left with a warning.
    RemoveImage {
        /// The image reference.
        name: String,
    },
}

impl Action {
    /// (kind, name, final status) as the progress line of a finished action shows it.
    pub fn summary(&self) -> (&'static str, &str, &'static str) {
        match self {
            Action::CreateVolume { name, external, .. } => {
                ("Volume", name, if *external { "Exists" } else { "Created" })
            }
            Action::CreateNetwork { request } => ("Network", &request.name, "Created"),
            Action::RemoveNetwork { name } => ("Network", name, "Removed"),
            Action::Create { name, start, .. } => {
                ("Container", name, if *start { "Started" } else { "Created" })
            }
            Action::Recreate { name, start, .. } => {
                ("Container", name, if *start { "Started" } else { "Recreated" })
            }
            Action::Start { name, .. } => ("Container", name, "Started"),
            Action::Keep { name, .. } => ("Container", name, "Running"),
            Action::Wait { dependency, condition, .. } => (
                "Service",
                dependency,
                match condition {
                    Condition::Healthy => "Healthy",
                    Condition::Completed => "Exited",
                },
            ),
            Action::Stop { name, .. } => ("Container", name, "Stopped"),
            Action::Restart { name, .. } => ("Container", name, "Started"),
            Action::Kill { name, .. } => ("Container", name, "Killed"),
            Action::Pause { name, pause: true } => ("Container", name, "Paused"),
            Action::Pause { name, pause: false } => ("Container", name, "Unpaused"),
            Action::Remove { name, .. } => ("Container", name, "Removed"),
            Action::RemoveVolume { name } => ("Volume", name, "Removed"),
            Action::RemoveImage { name } => ("Image", name, "Removed"),
        }
    }
}

/// A plan: actions and their ordering, plus warnings to show before it runs.
#[derive(Debug, Default)]
pub struct Plan {
    /// The DAG; an edge a -> b means a finishes before b starts.
    pub graph: DiGraph<Action, ()>,
    /// Warnings found while planning (orphans, ignored options).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Adds an action and returns its node.
    pub fn add(&mut self, a: Action) -> NodeIndex {
        self.graph.add_node(a)
    }

    /// Orders `before` ahead of `after`.
    pub fn order(&mut self, before: NodeIndex, after: NodeIndex) {
        if before != after && self.graph.find_edge(before, after).is_none() {
            self.graph.add_edge(before, after, ());
        }
    }

    /// The actions in an order that respects every edge.
    pub fn ordered(&self) -> Vec<&Action> {
        match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => order.into_iter().map(|n| &self.graph[n]).collect(),
            // Planning never adds cycles; fall back to insertion order rather than fail.
            Err(_) => self.graph.node_weights().collect(),
        }
    }

    /// Emits the event each action would end with, changing nothing (`--dry-run`).
    pub fn dry_run(&self, progress: &Progress) {
        for a in self.ordered() {
            let (kind, name, status) = a.summary();
            emit(progress, kind, name, status, true);
        }
    }

    /// Runs the actions in dependency order, at most `parallel` at a time (None: unlimited).
    /// After the first failure nothing new starts; running actions finish; the error returns.
    pub async fn execute(
        self,
        engine: &Engine,
        parallel: Option<usize>,
        progress: &Progress,
    ) -> Result<(), PlanError> {
        let g = self.graph;
        let n = g.node_count();
        let mut indegree: Vec<usize> = g
            .node_indices()
            .map(|i| g.neighbors_directed(i, Direction::Incoming).count())
            .collect();
        let mut ready: VecDeque<NodeIndex> =
            g.node_indices().filter(|i| indegree[i.index()] == 0).collect();
        let limit = parallel.unwrap_or(usize::MAX).max(1);
        let actions: Arc<Vec<Action>> = Arc::new(g.node_weights().cloned().collect());
        let mut running: JoinSet<(NodeIndex, Result<(), PlanError>)> = JoinSet::new();
        let mut first_err: Option<PlanError> = None;
        let mut done = 0usize;
        loop {
            while first_err.is_none() && running.len() < limit {
                let Some(i) = ready.pop_front() else { break };
                let (e, acts, p) = (engine.clone(), actions.clone(), progress.clone());
                running.spawn(async move { (i, run(&e, &acts[i.index()], &p).await) });
            }
            let Some(joined) = running.join_next().await else { break };
            let (i, res) = joined.map_err(|e| PlanError::Internal(e.to_string()))?;
            done += 1;
            match res {
                Ok(()) => {
                    for next in g.neighbors_directed(i, Direction::Outgoing) {
                        indegree[next.index()] -= 1;
                        if indegree[next.index()] == 0 {
                            ready.push_back(next);
                        }
                    }
                }
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if done != n {
            return Err(PlanError::Internal("the plan has a dependency cycle".into()));
        }
        Ok(())
    }
}

fn cerr(name: &str) -> impl FnOnce(ContainerError) -> PlanError + '_ {
    move |source| PlanError::Container { name: name.to_string(), source }
}

fn verr(name: &str) -> impl FnOnce(VolumeError) -> PlanError + '_ {
    move |source| PlanError::Volume { name: name.to_string(), source }
}

async fn start(engine: &Engine, service: &str, name: &str, p: &Progress) -> Result<(), PlanError> {
    emit(p, "Container", name, "Starting", false);
    // Name the service too: a start fails for its config (a published port in use...).
    engine.container_start(name).await.map_err(|e| PlanError::Invalid {
        service: service.into(),
        message: format!("container {name}: {e}"),
    })?;
    emit(p, "Container", name, "Started", true);
    Ok(())
}

/// Carries out one action.
async fn run(engine: &Engine, a: &Action, p: &Progress) -> Result<(), PlanError> {
    match a {
        Action::CreateVolume { name, labels, driver_opts, external } => {
            match engine.volume_inspect(name.clone()).await {
                Ok(_) => return Ok(()),
                Err(VolumeError::NoSuchVolume(_)) if !*external => {}
                Err(VolumeError::NoSuchVolume(_)) => {
                    return Err(PlanError::Invalid {
                        service: String::new(),
                        message: format!(
                            "external volume {name:?} not found: create it with `berth volume create {name}`"
                        ),
                    });
                }
                Err(e) => return Err(verr(name)(e)),
            }
            emit(p, "Volume", name, "Creating", false);
            engine
                .volume_create(Some(name.clone()), labels.clone(), driver_opts.clone())
                .await
                .map_err(verr(name))?;
            emit(p, "Volume", name, "Created", true);
        }
        Action::CreateNetwork { request } => {
            let name = &request.name;
            emit(p, "Network", name, "Creating", false);
            match engine.network_create((**request).clone()).await {
                // Another command created it since planning: the config was checked there.
                Ok(_) | Err(EngineNetworkError::Network(NetworkError::AlreadyExists(_))) => {}
                Err(e) => {
                    return Err(PlanError::Network { name: name.clone(), message: e.to_string() });
                }
            }
            emit(p, "Network", name, "Created", true);
        }
        Action::RemoveNetwork { name } => {
            emit(p, "Network", name, "Removing", false);
            berth_timing::mark("network: remove begin");
            let removed = engine.network_remove(name).await;
            berth_timing::mark("network: remove end");
            match removed {
                Ok(()) | Err(EngineNetworkError::Network(NetworkError::NotFound(_))) => {}
                // As compose: a network another project's container still uses is left alone.
                Err(EngineNetworkError::Network(NetworkError::InUse { .. })) => {
                    emit(p, "Network", name, "Resource is still in use", true);
                    return Ok(());
                }
                Err(e) => {
                    return Err(PlanError::Network { name: name.clone(), message: e.to_string() });
                }
            }
            emit(p, "Network", name, "Removed", true);
        }
        Action::Create { service, name, config, start: st, volumes_from } => {
            emit(p, "Container", name, "Creating", false);
            let mut config = (**config).clone();
            add_volumes_from(engine, &mut config, volumes_from).await?;
            engine
                .container_create(Some(name), config)
                .await
                .map_err(|e| create_error(service, name, e))?;
            emit(p, "Container", name, "Created", !*st);
            if *st {
                start(engine, service, name, p).await?;
            }
        }
        Action::Recreate {
            service,
            name,
            config,
            start: st,
            timeout,
            volumes_from,
            renew_anon_volumes,
        } => {
            emit(p, "Container", name, "Recreate", false);
            // As compose: create the replacement under a temporary name first, so a config the
            // engine refuses leaves the old container untouched.
            let old = engine.container_inspect(name).await.map_err(cerr(name))?;
            let tmp = format!("{}_{name}", &old.id[..12.min(old.id.len())]);
            // As compose: the old container's anonymous volumes move to the new one wherever
            // the new config mounts nothing else, so their data survives the recreate.
            let mut config = (**config).clone();
            add_volumes_from(engine, &mut config, volumes_from).await?;
            let mut dropped = Vec::new();
            for m in old.mounts.iter().filter(|m| m.typ == "volume" && is_anonymous(&m.name)) {
                if *renew_anon_volumes {
                    dropped.push(m.name.clone());
                    continue;
                }
                // An anonymous volume declared again at the same path takes the old one.
                if let Some(x) =
                    config.host_config.mounts.iter_mut().find(|x| {
                        x.typ == "volume" && x.source.is_empty() && x.target == m.destination
                    })
                {
                    x.source = m.name.clone();
                    continue;
                }
                let hc = &config.host_config;
                let taken = hc.mounts.iter().any(|x| x.target == m.destination)
                    || hc.tmpfs.contains_key(&m.destination)
                    || hc.binds.iter().any(|b| b.split(':').nth(1) == Some(m.destination.as_str()));
                if taken {
                    dropped.push(m.name.clone());
                } else {
                    config.host_config.mounts.push(MountSpec {
                        typ: "volume".into(),
                        source: m.name.clone(),
                        target: m.destination.clone(),
                        read_only: !m.rw,
                        ..Default::default()
                    });
                }
            }
            engine
                .container_create(Some(&tmp), config)
                .await
                .map_err(|e| create_error(service, name, e))?;
            engine.container_stop(&old.id, *timeout).await.map_err(cerr(name))?;
            engine.container_remove(&old.id, true, false).await.map_err(cerr(name))?;
            for v in dropped {
                match engine.volume_remove(v.clone(), false, Vec::new()).await {
                    Ok(()) | Err(VolumeError::NoSuchVolume(_)) => {}
                    Err(e) => return Err(verr(&v)(e)),
                }
            }
            engine.container_rename(&tmp, name).await.map_err(cerr(name))?;
            emit(p, "Container", name, "Recreated", !*st);
            if *st {
                start(engine, service, name, p).await?;
            }
        }
        Action::Start { service, name } => start(engine, service, name, p).await?,
        Action::Keep { name, .. } => emit(p, "Container", name, "Running", true),
        Action::Wait { service, dependency, containers, condition, required } => {
            for c in containers {
                emit(p, "Container", c, "Waiting", false);
                match wait_condition(engine, dependency, c, *condition).await {
                    Ok(status) => emit(p, "Container", c, status, true),
                    Err(e) if !*required => {
                        emit(p, "Container", c, "Error", true);
                        tracing::warn!("optional dependency {dependency} of {service}: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Action::Stop { name, timeout } => {
            emit(p, "Container", name, "Stopping", false);
            match engine.container_stop(name, *timeout).await {
                // A damaged record can't be stopped, only removed (which kills it): every
                // plan that stops a container removes or replaces it after.
                Ok(()) | Err(ContainerError::Damaged { .. }) => {}
                Err(e) => return Err(cerr(name)(e)),
            }
            emit(p, "Container", name, "Stopped", true);
        }
        Action::Restart { name, timeout } => {
            emit(p, "Container", name, "Restarting", false);
            engine.container_restart(name, *timeout).await.map_err(cerr(name))?;
            emit(p, "Container", name, "Started", true);
        }
        Action::Kill { name, signal } => {
            emit(p, "Container", name, "Killing", false);
            engine.container_kill(name, signal.as_deref()).await.map_err(cerr(name))?;
            emit(p, "Container", name, "Killed", true);
        }
        Action::Pause { name, pause } => {
            if *pause {
                emit(p, "Container", name, "Pausing", false);
                engine.container_pause(name).await.map_err(cerr(name))?;
                emit(p, "Container", name, "Paused", true);
            } else {
                emit(p, "Container", name, "Unpausing", false);
                engine.container_unpause(name).await.map_err(cerr(name))?;
                emit(p, "Container", name, "Unpaused", true);
            }
        }
        Action::Remove { name, force, volumes } => {
            emit(p, "Container", name, "Removing", false);
            match engine.container_remove(name, *force, *volumes).await {
                Ok(()) | Err(ContainerError::NotFound(_)) => {}
                Err(e) => return Err(cerr(name)(e)),
            }
            emit(p, "Container", name, "Removed", true);
        }
        Action::RemoveVolume { name } => {
            emit(p, "Volume", name, "Removing", false);
            match engine.volume_remove(name.clone(), false, Vec::new()).await {
                Ok(()) | Err(VolumeError::NoSuchVolume(_)) => {}
                Err(e) => return Err(verr(name)(e)),
            }
            emit(p, "Volume", name, "Removed", true);
        }
        Action::RemoveImage { name } => {
            emit(p, "Image", name, "Removing", false);
            let in_use = engine.container_images_in_use().await;
            // As compose: an image still in use, or gone already, is a warning, not a failure.
            let status = match engine.image_remove(name.clone(), false, in_use).await {
                Ok(_) => "Removed",
                Err(ImageError::InUse { .. }) => "Resource is still in use",
                Err(ImageError::NoSuchImage(_)) => "Warning: No resource found to remove",
                Err(source) => return Err(PlanError::Image { name: name.clone(), source }),
            };
            emit(p, "Image", name, status, true);
        }
    }
    Ok(())
}

/// Adds the volume and bind mounts of each `volumes_from` container where the config mounts
/// nothing at that path yet.
async fn add_volumes_from(
    engine: &Engine,
    config: &mut ContainerCreateConfig,
    from: &[(String, bool)],
) -> Result<(), PlanError> {
    for (container, ro) in from {
        let src = engine.container_inspect(container).await.map_err(cerr(container))?;
        for m in &src.mounts {
            let hc = &mut config.host_config;
            if hc.mounts.iter().any(|x| x.target == m.destination) {
                continue;
            }
            let (typ, source) = match m.typ.as_str() {
                "volume" => ("volume", m.name.clone()),
                "bind" => ("bind", m.source.clone()),
                _ => continue,
            };
            hc.mounts.push(MountSpec {
                typ: typ.into(),
                source,
                target: m.destination.clone(),
                read_only: *ro || !m.rw,
                ..Default::default()
            });
        }
    }
    Ok(())
}

/// Whether a volume name is an anonymous one (64 hex digits, as the engine generates).
pub fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn create_error(service: &str, name: &str, e: ContainerError) -> PlanError {
    match e {
        ContainerError::Image(e @ berth_image::ImageError::NoSuchImage(_)) => PlanError::Invalid {
            service: service.into(),
            message: format!(
                "{e} (berth cannot pull or build yet: load the image with `berth image import` or `berth image load`)"
            ),
        },
        e => PlanError::Container { name: name.into(), source: e },
    }
}

/// Polls a dependency container until it meets `cond`; returns the final status word.
pub(crate) async fn wait_condition(
    engine: &Engine,
    dependency: &str,
    container: &str,
    cond: Condition,
) -> Result<&'static str, PlanError> {
    loop {
        let i = engine.container_inspect(container).await.map_err(cerr(container))?;
        let s = &i.state;
        let alive = s.running || s.restarting;
        match cond {
            Condition::Healthy => {
                let Some(h) = &s.health else {
                    return Err(PlanError::Dependency(format!(
                        "container {container} has no healthcheck configured"
                    )));
                };
                match h.status.as_str() {
                    "healthy" => return Ok("Healthy"),
                    "unhealthy" => {
                        return Err(PlanError::Dependency(format!(
                            "container {container} is unhealthy (service {dependency:?})"
                        )));
                    }
                    _ if !alive => {
                        return Err(PlanError::Dependency(format!(
                            "container {container} exited ({}) before it became healthy (service {dependency:?})",
                            s.exit_code
                        )));
                    }
                    _ => {}
                }
            }
            Condition::Completed => {
                if !alive && s.status != "created" {
                    if s.exit_code == 0 {
                        return Ok("Exited");
                    }
                    return Err(PlanError::Dependency(format!(
                        "service {dependency:?} didn't complete successfully: exit {}",
                        s.exit_code
                    )));
                }
                if s.status == "created" {
                    return Err(PlanError::Dependency(format!(
                        "container {container} of service {dependency:?} was not started"
                    )));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
