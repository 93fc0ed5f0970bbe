//! `up`: its options, the pure [`plan_up`] (containers, volumes, networks), and running it
//! (secrets/configs from content, `--wait`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use berth_network::{IpamRequest, NetworkCreate};
use berth_runtime::Engine;
use compose_spec::model::{Network, Project};
use indexmap::IndexMap;
use petgraph::graph::NodeIndex;

use super::{RunOptions, lock_project, orphan_warning, orphans, selected_services};
use crate::names::{container_name, network_name};
use crate::observe::{self, Observed, ObservedNetwork, ObservedState};
use crate::plan::{Action, Condition, Plan};
use crate::{PlanError, Progress, container_config, labels};

/// `up` options (docker compose v2 flags).
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services named on the command line (empty: all).
    pub services: Vec<String>,
    /// `--scale svc=N`.
    pub scale: HashMap<String, u32>,
    /// Recreate even unchanged containers.
    pub force_recreate: bool,
    /// Never recreate existing containers.
    pub no_recreate: bool,
    /// Recreate the dependencies of the named services even when unchanged.
    pub always_recreate_deps: bool,
    /// Recreated containers get fresh anonymous volumes instead of the old ones' (`-V`).
    pub renew_anon_volumes: bool,
    /// Don't start linked services.
    pub no_deps: bool,
    /// Create but don't start.
    pub no_start: bool,
    /// Remove containers of services no longer in the project.
    pub remove_orphans: bool,
    /// Grace period for stops (seconds).
    pub timeout: Option<i64>,
    /// Wait for running/healthy after starting.
    pub wait: bool,
    /// Bound of `wait`.
    pub wait_timeout: Option<Duration>,
}

/// Whether `name` is the temporary `{12 hex}_{expected}` name of an interrupted recreate.
fn is_recreate_leftover(name: &str, expected: &str) -> bool {
    name.len() == expected.len() + 13
        && name.ends_with(expected)
        && name.as_bytes()[12] == b'_'
        && name[..12].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Decides the plan of `up` from the project and what exists (one-off containers are not
/// `up`'s business). Pure: nothing is read or changed.
pub fn plan_up(p: &Project, observed: &ObservedState, opts: &UpOptions) -> Result<Plan, PlanError> {
    let obs: Vec<&Observed> = observed.containers.iter().filter(|c| !c.oneoff).collect();
    let selected = selected_services(p, &opts.services, !opts.no_deps)?;
    let mut plan = Plan::default();

    let nets = plan_networks(p, &observed.networks, &obs, &selected, opts, &mut plan)?;

    let orph = orphans(p, &obs);
    if !orph.is_empty() {
        if opts.remove_orphans {
            for o in orph {
                let stop = plan.add(Action::Stop { name: o.name.clone(), timeout: opts.timeout });
                let rm =
                    plan.add(Action::Remove { name: o.name.clone(), force: true, volumes: false });
                plan.order(stop, rm);
            }
        } else {
            plan.warnings.push(orphan_warning(&orph));
        }
    }

    // Volumes: every named, non-external volume of the project, created with compose's labels.
    let mut volume_nodes: Vec<NodeIndex> = Vec::new();
    for (key, v) in &p.volumes {
        let name = v.name.clone().unwrap_or_else(|| format!("{}_{key}", p.name));
        let mut l: BTreeMap<String, String> =
            v.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        l.insert(labels::PROJECT.into(), p.name.clone());
        l.insert(labels::VOLUME.into(), key.clone());
        l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
        l.insert(labels::CONFIG_HASH.into(), compose_spec::emit::volume_hash(v));
        if let Some(d) = &v.driver
            && d != "local"
        {
            return Err(PlanError::Invalid {
                service: String::new(),
                message: format!("volume {key:?}: driver {d:?} is not supported (only local)"),
            });
        }
        volume_nodes.push(plan.add(Action::CreateVolume {
            name,
            labels: l,
            driver_opts: v.driver_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            external: v.external,
        }));
    }

    // Containers, per service; remember each service's nodes and container names for ordering.
    let mut nodes: HashMap<String, Vec<NodeIndex>> = HashMap::new();
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<(String, Vec<NodeIndex>)> = Vec::new();
    for svc in &selected {
        let Some(s) = p.services.get(svc) else { continue };
        let want = match opts.scale.get(svc) {
            Some(n) => *n,
            None => s.replicas().max(0) as u32,
        };
        if s.container_name.is_some() && want > 1 {
            return Err(PlanError::Invalid {
                service: svc.clone(),
                message: format!(
                    "container_name {:?} can't be used with {want} replicas: remove container_name or scale to 1",
                    s.container_name.as_deref().unwrap_or_default()
                ),
            });
        }
        let ignored = container_config::ignored_keys(s);
        if !ignored.is_empty() {
            plan.warnings.push(format!(
                "service {svc:?}: {} not supported by berth yet, ignored",
                ignored.join(", ")
            ));
        }
        let hash = compose_spec::service_hash(s);
        let vf = container_config::volumes_from(p, svc, s)?;
        let image_id = observed.image_id(p, svc)?;
        let (leftovers, existing): (Vec<&Observed>, Vec<&Observed>) =
            obs.iter().copied().filter(|c| &c.service == svc).partition(|c| {
                is_recreate_leftover(&c.name, &container_name(&p.name, svc, s, c.number))
            });
        // A recreate interrupted before its rename left `{id[:12]}_{name}`: remove it.
        for o in leftovers {
            plan.add(Action::Remove { name: o.name.clone(), force: true, volumes: true });
        }
        // A container whose record is damaged (listed dead) is never started or kept: it is
        // removed (killed first if it still runs) and its replica made again, so a service
        // never gets a duplicate of a container the engine can't manage.
        let (dead, mut existing): (Vec<&Observed>, Vec<&Observed>) =
            existing.into_iter().partition(|c| c.is_dead());
        let dead_removals: Vec<NodeIndex> = dead
            .iter()
            .map(|o| {
                let name = if o.name.is_empty() { o.id.clone() } else { o.name.clone() };
                plan.add(Action::Remove { name, force: true, volumes: false })
            })
            .collect();
        existing.sort_by_key(|c| c.number);
        // Scaling down removes the highest numbers first.
        while existing.len() > want as usize {
            if let Some(o) = existing.pop() {
                let stop = match nets.stops.get(&o.name) {
                    Some(n) => *n,
                    None => plan.add(Action::Stop { name: o.name.clone(), timeout: opts.timeout }),
                };
                let rm =
                    plan.add(Action::Remove { name: o.name.clone(), force: true, volumes: true });
                plan.order(stop, rm);
            }
        }
        let mut svc_nodes = Vec::new();
        let mut svc_names = Vec::new();
        // A recreated network takes its services' containers with it (as compose).
        let net_changed = s.networks.keys().any(|k| nets.changed.contains(k));
        for o in &existing {
            let outdated = o.hash != hash || o.image_id != image_id || net_changed;
            // A service pulled in only as a dependency of the named ones.
            let is_dep = !opts.services.is_empty() && !opts.services.contains(svc);
            let forced = opts.force_recreate || (opts.always_recreate_deps && is_dep);
            let action = if (forced || outdated) && !opts.no_recreate {
                Action::Recreate {
                    service: svc.clone(),
                    name: o.name.clone(),
                    config: Box::new(container_config::create_config(
                        p, svc, o.number, &hash, &image_id,
                    )?),
                    start: !opts.no_start,
                    timeout: opts.timeout,
                    volumes_from: vf.clone(),
                    renew_anon_volumes: opts.renew_anon_volumes,
                }
            } else if o.is_running()
                && s.depends_on.iter().any(|(d, c)| c.restart && recreated.contains(d))
            {
                // `depends_on.restart: true`: restart when the dependency was recreated.
                Action::Restart { name: o.name.clone(), timeout: opts.timeout }
            } else if o.is_running() || opts.no_start {
                Action::Keep { service: svc.clone(), name: o.name.clone() }
            } else {
                Action::Start { service: svc.clone(), name: o.name.clone() }
            };
            if matches!(action, Action::Recreate { .. }) {
                recreated.insert(svc.clone());
            }
            let node = plan.add(action);
            if let Some(stop) = nets.stops.get(&o.name) {
                plan.order(*stop, node);
            }
            svc_nodes.push(node);
            svc_names.push(o.name.clone());
        }
        // New replicas take the lowest free numbers (gaps are filled).
        let used: BTreeSet<u32> = existing.iter().map(|o| o.number).collect();
        let mut number = 0u32;
        for _ in existing.len()..want as usize {
            number += 1;
            while used.contains(&number) {
                number += 1;
            }
            let name = container_name(&p.name, svc, s, number);
            let config = container_config::create_config(p, svc, number, &hash, &image_id)?;
            svc_nodes.push(plan.add(Action::Create {
                service: svc.clone(),
                name: name.clone(),
                config: Box::new(config),
                start: !opts.no_start,
                volumes_from: vf.clone(),
            }));
            svc_names.push(name);
        }
        for n in &svc_nodes {
            for v in &volume_nodes {
                plan.order(*v, *n);
            }
            for rm in &dead_removals {
                plan.order(*rm, *n);
            }
            for key in s.networks.keys() {
                if let Some(net) = nets.nodes.get(key) {
                    plan.order(*net, *n);
                }
            }
        }
        // Dependencies come first: plain edges for service_started, a wait node otherwise.
        for (dep, d) in &s.depends_on {
            let Some(dep_nodes) = nodes.get(dep).cloned() else {
                if d.required && !p.services.contains_key(dep) {
                    return Err(PlanError::Invalid {
                        service: svc.clone(),
                        message: format!("depends on undefined service {dep:?}"),
                    });
                }
                continue;
            };
            let cond = match d.condition.as_str() {
                "service_healthy" => Some(Condition::Healthy),
                "service_completed_successfully" => Some(Condition::Completed),
                _ => None,
            };
            let gate = match cond {
                Some(condition) if !opts.no_start => {
                    let w = plan.add(Action::Wait {
                        service: svc.clone(),
                        dependency: dep.clone(),
                        containers: names.get(dep).cloned().unwrap_or_default(),
                        condition,
                        required: d.required,
                    });
                    for dn in &dep_nodes {
                        plan.order(*dn, w);
                    }
                    vec![w]
                }
                _ => dep_nodes,
            };
            for g in &gate {
                for n in &svc_nodes {
                    plan.order(*g, *n);
                }
            }
        }
        // volumes_from services come first too (their order is not in depends_on).
        for v in &s.volumes_from {
            let src = v.strip_prefix("service:").unwrap_or(v);
            if v.starts_with("container:") {
                continue;
            }
            let src = src.split(':').next().unwrap_or(src).to_string();
            pending.push((src, svc_nodes.clone()));
        }
        nodes.insert(svc.clone(), svc_nodes);
        names.insert(svc.clone(), svc_names);
    }
    for (src, after) in pending {
        for a in nodes.get(&src).into_iter().flatten() {
            for b in &after {
                plan.order(*a, *b);
            }
        }
    }
    Ok(plan)
}

/// The create request compose would send for network `key`.
pub fn network_request(p: &Project, key: &str, n: &Network) -> NetworkCreate {
    let mut l: IndexMap<String, String> =
        n.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    l.insert(labels::PROJECT.into(), p.name.clone());
    l.insert(labels::NETWORK.into(), key.into());
    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    l.insert(labels::CONFIG_HASH.into(), compose_spec::emit::network_hash(n));
    NetworkCreate {
        name: network_name(p, key),
        driver: Some("bridge".into()),
        internal: n.internal,
        attachable: n.attachable,
        labels: l,
        options: n.driver_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ipam: n
            .ipam
            .config
            .iter()
            .map(|c| IpamRequest {
                subnet: c.subnet.clone(),
                ip_range: c.ip_range.clone(),
                gateway: c.gateway.clone(),
            })
            .collect(),
        enable_ipv6: n.enable_ipv6.unwrap_or(false),
    }
}

/// What [`plan_networks`] decided.
#[derive(Default)]
pub(crate) struct NetworkPlan {
    /// Network key -> its create node (the containers using it follow it).
    pub(crate) nodes: HashMap<String, NodeIndex>,
    /// Keys of networks recreated because their config changed: their services' containers are
    /// recreated too.
    changed: BTreeSet<String>,
    /// Stop nodes of the containers a network recreate detaches, by container name.
    stops: HashMap<String, NodeIndex>,
}

/// Plans the networks the selected services use: external ones must exist; project ones are
/// created when missing, reused when their config hash matches, and recreated when it changed
/// (as compose: the attached containers of the selected services are stopped first and then
/// recreated; containers of other services or projects attached to it, or `--no-recreate`,
/// make it an error asking for `down`).
pub(crate) fn plan_networks(
    p: &Project,
    existing: &[ObservedNetwork],
    obs: &[&Observed],
    selected: &[String],
    opts: &UpOptions,
    plan: &mut Plan,
) -> Result<NetworkPlan, PlanError> {
    // Network key -> the first service using it (named in errors).
    let mut used: BTreeMap<&str, &str> = BTreeMap::new();
    for svc in selected {
        let Some(s) = p.services.get(svc) else { continue };
        for key in s.networks.keys() {
            if !p.networks.contains_key(key) {
                return Err(PlanError::Invalid {
                    service: svc.clone(),
                    message: format!("service refers to undefined network {key:?}"),
                });
            }
            used.entry(key.as_str()).or_insert(svc.as_str());
        }
    }
    let mut out = NetworkPlan::default();
    if used.is_empty() {
        return Ok(out);
    }
    for (key, svc) in used {
        let n = &p.networks[key];
        let name = network_name(p, key);
        let found = existing.iter().find(|r| r.name == name);
        if n.external {
            if found.is_none() {
                return Err(PlanError::Invalid {
                    service: svc.into(),
                    message: format!(
                        "network {name} declared as external, but could not be found: create it with `berth network create {name}`"
                    ),
                });
            }
            continue;
        }
        if let Some(d) = n.driver.as_deref()
            && d != "bridge"
        {
            return Err(PlanError::Invalid {
                service: svc.into(),
                message: format!("network {key:?}: driver {d:?} is not supported (only bridge)"),
            });
        }
        let req = network_request(p, key, n);
        let Some(rec) = found else {
            out.nodes.insert(
                key.to_string(),
                plan.add(Action::CreateNetwork { request: Box::new(req) }),
            );
            continue;
        };
        let label = |k: &str| rec.labels.get(k).map(String::as_str);
        let Some(owner) = label(labels::PROJECT) else {
            plan.warnings.push(format!(
                "a network with name {name} exists but was not created by compose. Set `external: true` to use an existing network"
            ));
            continue;
        };
        let wrong = if owner != p.name {
            Some((labels::PROJECT, owner, p.name.as_str()))
        } else {
            label(labels::NETWORK).filter(|k| *k != key).map(|k| (labels::NETWORK, k, key))
        };
        if let Some((which, found, expected)) = wrong {
            return Err(PlanError::Network {
                name: name.clone(),
                message: format!(
                    "network {name} was found but has incorrect label {which} set to {found:?} (expected {expected:?}): remove it or pick another network name"
                ),
            });
        }
        let want_hash = &req.labels[labels::CONFIG_HASH];
        if label(labels::CONFIG_HASH).is_none_or(|h| h == want_hash) {
            continue;
        }
        // Attached containers must all be this `up`'s to be stopped and recreated with it.
        let attached: Vec<&str> = rec.containers.iter().map(String::as_str).collect();
        let ours = |n: &str| obs.iter().any(|o| o.name == n && selected.contains(&o.service));
        if !attached.is_empty() && (opts.no_recreate || !attached.iter().all(|n| ours(n))) {
            return Err(PlanError::Network {
                name: name.clone(),
                message: format!(
                    "network {name} was found but has incorrect config (network {key:?} changed in the compose file) and containers use it ({}): run `berth down` first to recreate it",
                    attached.join(", ")
                ),
            });
        }
        // Changed: replace it, as compose recreates a diverged network.
        let rm = plan.add(Action::RemoveNetwork { name: name.clone() });
        for c in attached {
            let stop = *out.stops.entry(c.to_string()).or_insert_with(|| {
                plan.add(Action::Stop { name: c.to_string(), timeout: opts.timeout })
            });
            plan.order(stop, rm);
        }
        let create = plan.add(Action::CreateNetwork { request: Box::new(req) });
        plan.order(rm, create);
        out.nodes.insert(key.to_string(), create);
        out.changed.insert(key.to_string());
    }
    Ok(out)
}

/// `up`: converge the project to its compose file; the plan's warnings go to `warn` first.
pub async fn up(
    engine: &Engine,
    p: &Project,
    opts: &UpOptions,
    run: &RunOptions,
    progress: &Progress,
    warn: &(dyn Fn(&str) + Sync),
) -> Result<(), PlanError> {
    let _lock = lock_project(engine, &p.name).await?;
    let p = &materialize_file_objects(engine, p, run.dry_run)?;
    let observed = observe::for_up(engine, p).await?;
    let plan = plan_up(p, &observed, opts)?;
    plan.warnings.iter().for_each(|w| warn(w));
    if run.dry_run {
        plan.dry_run(progress);
        return Ok(());
    }
    plan.execute(engine, run.parallel, progress).await?;
    if opts.wait && !opts.no_start {
        wait_running(engine, p, opts).await?;
    }
    Ok(())
}

/// Secrets and configs given as `content:` or `environment:` become files under
/// `{root}/compose/{project}/{secrets|configs}/` (written unless `dry_run`), so they mount like
/// file-based ones.
fn materialize_file_objects(
    engine: &Engine,
    p: &Project,
    dry_run: bool,
) -> Result<Project, PlanError> {
    let mut p = p.clone();
    let base = engine.root().path().join("compose").join(&p.name);
    let env = p.environment.clone();
    for (kind, defs) in [("secrets", &mut p.secrets), ("configs", &mut p.configs)] {
        for (key, def) in defs.iter_mut() {
            let text = match (&def.content, &def.environment) {
                (Some(c), _) => c.clone(),
                (None, Some(var)) => env.get(var).cloned().unwrap_or_default(),
                _ => continue,
            };
            let dir = base.join(kind);
            let path = dir.join(key);
            if !dry_run {
                let io = |e: std::io::Error| PlanError::Invalid {
                    service: String::new(),
                    message: format!("cannot write {kind} {key:?} to {}: {e}", path.display()),
                };
                std::fs::create_dir_all(&dir).map_err(io)?;
                std::fs::write(&path, text.as_bytes()).map_err(io)?;
            }
            def.file = Some(path.to_string_lossy().to_string());
            def.content = None;
            def.environment = None;
        }
    }
    Ok(p)
}

/// `--wait`: every selected container running (and healthy when it has a healthcheck); a
/// container that exited 0 is a finished one-shot and counts as done (compose fails there).
async fn wait_running(engine: &Engine, p: &Project, opts: &UpOptions) -> Result<(), PlanError> {
    let selected = selected_services(p, &opts.services, !opts.no_deps)?;
    let deadline = opts.wait_timeout.map(|t| Instant::now() + t);
    loop {
        let obs = observe::containers(engine, &p.name).await?;
        let mut pending = None;
        for c in obs.iter().filter(|c| selected.contains(&c.service)) {
            let i = engine
                .container_inspect(&c.id)
                .await
                .map_err(|source| PlanError::Container { name: c.name.clone(), source })?;
            let s = &i.state;
            if !s.running && !s.restarting {
                if s.exit_code == 0 && s.status == "exited" {
                    continue;
                }
                return Err(PlanError::Wait(format!(
                    "container {} exited ({}): see `berth logs {}`",
                    c.name, s.exit_code, c.service
                )));
            }
            match s.health.as_ref().map(|h| h.status.as_str()) {
                Some("unhealthy") => {
                    return Err(PlanError::Wait(format!("container {} is unhealthy", c.name)));
                }
                Some("healthy") | None => {}
                Some(_) => pending = Some(c.name.clone()),
            }
        }
        let Some(name) = pending else { return Ok(()) };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(PlanError::Wait(format!(
                "timed out waiting for container {name} to become healthy"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::is_recreate_leftover;

    #[test]
    fn recreate_leftovers() {
        assert!(is_recreate_leftover("0123456789ab_p-web-1", "p-web-1"));
        assert!(!is_recreate_leftover("p-web-1", "p-web-1"));
        assert!(!is_recreate_leftover("0123456789xy_p-web-1", "p-web-1"));
        assert!(!is_recreate_leftover("0123456789ab-p-web-1", "p-web-1"));
    }
}
