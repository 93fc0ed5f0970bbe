//! Translation of one compose service replica into the Engine's create request (Docker's
//! `Config` + `HostConfig`), with the compose labels the planner later diffs through.

use berth_runtime::container::{
    BindOptions, ContainerCreateConfig, DeviceMapping, HealthConfig, LogConfig, MountSpec,
    RestartPolicy, TmpfsOptions, Ulimit, VolumeOptions,
};
use berth_runtime::container::{EndpointIpamConfig, EndpointRequest, PortBinding};
use compose_spec::model::{Project, Service, ServiceNetwork};
use indexmap::IndexMap;

use crate::PlanError;
use crate::labels;
use crate::names::{container_name, network_name};

/// The compose labels of a container of `service` (replica `number`, config `hash`).
pub fn container_labels(
    p: &Project,
    service: &str,
    s: &Service,
    number: u32,
    hash: &str,
    image_id: &str,
) -> IndexMap<String, String> {
    let mut l: IndexMap<String, String> = IndexMap::new();
    for (k, v) in &s.labels {
        l.insert(k.clone(), v.clone());
    }
    l.insert(labels::PROJECT.into(), p.name.clone());
    l.insert(labels::SERVICE.into(), service.into());
    l.insert(labels::NUMBER.into(), number.to_string());
    l.insert(labels::ONEOFF.into(), "False".into());
    l.insert(labels::CONFIG_HASH.into(), hash.into());
    l.insert(labels::WORKING_DIR.into(), p.working_dir.to_string_lossy().to_string());
    let files: Vec<String> =
        p.config_files.iter().map(|f| f.to_string_lossy().to_string()).collect();
    l.insert(labels::CONFIG_FILES.into(), files.join(","));
    // compose's format: `dep:condition:restart`, comma separated.
    let deps: Vec<String> =
        s.depends_on.iter().map(|(d, c)| format!("{d}:{}:{}", c.condition, c.restart)).collect();
    l.insert(labels::DEPENDS_ON.into(), deps.join(","));
    // compose records the image id here and recreates when the image changed.
    l.insert(labels::IMAGE.into(), image_id.into());
    l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
    l
}

/// The create request for replica `number` of `service`.
pub fn create_config(
    p: &Project,
    service: &str,
    number: u32,
    hash: &str,
    image_id: &str,
) -> Result<ContainerCreateConfig, PlanError> {
    let s = p.services.get(service).ok_or_else(|| PlanError::NoSuchService(service.into()))?;
    let unsupported = |what: String| PlanError::Unsupported { service: service.to_string(), what };
    let mut cfg = ContainerCreateConfig::default();
    let c = &mut cfg.config;
    c.image = p.image_name(service);
    c.labels = container_labels(p, service, s, number, hash, image_id);
    c.env =
        s.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
    // An explicit empty list clears the image's value, as in compose.
    c.cmd = s.command.clone();
    c.entrypoint = s.entrypoint.clone();
    c.user = s.user.clone().unwrap_or_default();
    c.working_dir = s.working_dir.clone().unwrap_or_default();
    c.hostname = s.hostname.clone().unwrap_or_default();
    c.domainname = s.domainname.clone().unwrap_or_default();
    c.tty = s.tty;
    c.open_stdin = s.stdin_open;
    c.stop_signal = s.stop_signal.clone();
    c.stop_timeout = s.stop_grace_period.map(|d| d.0 / 1_000_000_000);
    if let Some(h) = &s.healthcheck {
        let test = if h.disable { vec!["NONE".to_string()] } else { h.test.clone() };
        let ns = |d: Option<compose_spec::model::Duration>| d.map(|d| d.0).unwrap_or(0);
        c.healthcheck = Some(HealthConfig {
            test,
            interval: ns(h.interval),
            timeout: ns(h.timeout),
            retries: h.retries.unwrap_or(0),
            start_period: ns(h.start_period),
            start_interval: ns(h.start_interval),
        });
    }
    if !s.expose.is_empty() {
        let mut m = IndexMap::new();
        for e in &s.expose {
            let k = if e.contains('/') { e.clone() } else { format!("{e}/tcp") };
            m.insert(k, Default::default());
        }
        c.exposed_ports = Some(m);
    }

    apply_network(p, service, s, &mut cfg)?;
    let hc = &mut cfg.host_config;
    hc.cap_add = s.cap_add.clone();
    hc.cap_drop = s.cap_drop.clone();
    hc.privileged = s.privileged;
    hc.readonly_rootfs = s.read_only;
    hc.init = s.init;
    hc.security_opt = s.security_opt.clone();
    hc.group_add = s.group_add.clone();
    hc.oom_score_adj = s.oom_score_adj.unwrap_or(0) as i32;
    hc.sysctls = s.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    hc.shm_size = s.shm_size.map(|b| b.0).unwrap_or(0);
    hc.ulimits = s
        .ulimits
        .iter()
        .map(|(name, u)| {
            let (soft, hard) = u.limits();
            Ulimit { name: name.clone(), soft, hard }
        })
        .collect();
    if let Some(l) = &s.logging {
        hc.log_config = LogConfig {
            typ: l.driver.clone().unwrap_or_default(),
            config: l.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
    }
    // Legacy resource keys first; deploy.resources wins where both are set (as compose).
    hc.memory = s.mem_limit.map(|b| b.0).unwrap_or(0);
    hc.memory_reservation = s.mem_reservation.map(|b| b.0).unwrap_or(0);
    hc.memory_swap = s.memswap_limit.map(|b| b.0).unwrap_or(0);
    hc.nano_cpus = s.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0);
    hc.cpu_shares = s.cpu_shares.unwrap_or(0);
    hc.cpu_quota = s.cpu_quota.unwrap_or(0);
    hc.cpu_period = s.cpu_period.unwrap_or(0);
    hc.cpuset_cpus = s.cpuset.clone().unwrap_or_default();
    hc.pids_limit = s.pids_limit;
    if let Some(b) = &s.blkio_config
        && let Some(w) = b.weight
    {
        hc.blkio_weight = w as u16;
    }
    if let Some(d) = &s.deploy {
        if let Some(l) = &d.resources.limits {
            if let Some(m) = l.memory {
                hc.memory = m.0;
            }
            if let Some(c) = l.cpus {
                hc.nano_cpus = (c * 1e9) as i64;
            }
            if let Some(pids) = l.pids {
                hc.pids_limit = Some(pids);
            }
        }
        if let Some(r) = &d.resources.reservations
            && let Some(m) = r.memory
        {
            hc.memory_reservation = m.0;
        }
    }
    hc.restart_policy = restart_policy(service, s)?;
    hc.devices = s
        .devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: d.source.clone(),
            path_in_container: if d.target.is_empty() {
                d.source.clone()
            } else {
                d.target.clone()
            },
            cgroup_permissions: if d.permissions.is_empty() {
                "rwm".into()
            } else {
                d.permissions.clone()
            },
        })
        .collect();

    // Mounts: named volumes get their project-scoped engine name; binds and tmpfs as written.
    for v in &s.volumes {
        let mut m =
            MountSpec { target: v.target.clone(), read_only: v.read_only, ..Default::default() };
        match v.kind.as_str() {
            "volume" => {
                m.typ = "volume".into();
                m.source = match &v.source {
                    None => String::new(),
                    Some(key) => match p.volumes.get(key) {
                        Some(vol) => {
                            vol.name.clone().unwrap_or_else(|| format!("{}_{key}", p.name))
                        }
                        None => {
                            return Err(PlanError::Invalid {
                                service: service.into(),
                                message: format!("service uses undefined volume {key:?}"),
                            });
                        }
                    },
                };
                if v.volume.as_ref().is_some_and(|o| o.nocopy) {
                    m.volume_options = Some(VolumeOptions { no_copy: true });
                }
            }
            "bind" => {
                m.typ = "bind".into();
                m.source = v.source.clone().unwrap_or_default();
                let create = v.bind.as_ref().is_none_or(|b| b.create_host_path);
                m.bind_options = Some(BindOptions { create_mountpoint: create });
            }
            "tmpfs" => {
                m.typ = "tmpfs".into();
                if let Some(t) = &v.tmpfs {
                    m.tmpfs_options = Some(TmpfsOptions {
                        size_bytes: t.size.map(|b| b.0).unwrap_or(0),
                        mode: t.mode.unwrap_or(0),
                    });
                }
            }
            other => return Err(unsupported(format!("volume type {other:?}"))),
        }
        hc.mounts.push(m);
    }
    for t in &s.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        hc.tmpfs.insert(path.to_string(), opts.to_string());
    }
    // File-based secrets and configs are read-only binds, as compose does without swarm.
    for (refs, defs, kind, base) in [
        (&s.secrets, &p.secrets, "secret", "/run/secrets/"),
        (&s.configs, &p.configs, "config", "/"),
    ] {
        for r in refs {
            let Some(def) = defs.get(&r.source) else {
                return Err(PlanError::Invalid {
                    service: service.into(),
                    message: format!("service uses undefined {kind} {:?}", r.source),
                });
            };
            let Some(file) = &def.file else {
                return Err(unsupported(format!(
                    "{kind} {:?} without `file:` (environment, content or external)",
                    r.source
                )));
            };
            let target = match &r.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) => format!("{base}{t}"),
                None => format!("{base}{}", r.source),
            };
            hc.mounts.push(MountSpec {
                typ: "bind".into(),
                source: file.clone(),
                target,
                read_only: true,
                ..Default::default()
            });
        }
    }
    Ok(cfg)
}

/// The service's networks as compose orders them: `priority` descending, then by key.
pub fn networks_by_priority(s: &Service) -> Vec<(&str, ServiceNetwork)> {
    let mut v: Vec<(&str, ServiceNetwork)> =
        s.networks.iter().map(|(k, n)| (k.as_str(), n.clone().unwrap_or_default())).collect();
    v.sort_by(|a, b| b.1.priority.unwrap_or(0).cmp(&a.1.priority.unwrap_or(0)).then(a.0.cmp(b.0)));
    v
}

/// Network mode, endpoints, published ports, DNS settings and extra hosts of a service.
fn apply_network(
    p: &Project,
    service: &str,
    s: &Service,
    cfg: &mut ContainerCreateConfig,
) -> Result<(), PlanError> {
    let invalid = |message: String| PlanError::Invalid { service: service.to_string(), message };
    let hc = &mut cfg.host_config;
    match s.network_mode.as_deref() {
        Some(m @ ("none" | "host" | "bridge")) => hc.network_mode = m.into(),
        Some(m) if m.starts_with("container:") => hc.network_mode = m.into(),
        Some(m) if m.starts_with("service:") => {
            let target = &m["service:".len()..];
            let t = p.services.get(target).ok_or_else(|| {
                invalid(format!("network_mode {m:?} names undefined service {target:?}"))
            })?;
            // As compose: the first replica of that service (ordered first by depends_on).
            hc.network_mode = format!("container:{}", container_name(&p.name, target, t, 1));
        }
        Some(m) if !m.is_empty() => {
            return Err(invalid(format!(
                "unsupported network_mode {m:?} (use host, none, bridge, service:NAME or container:NAME)"
            )));
        }
        _ => {
            let nets = networks_by_priority(s);
            for (i, (key, sn)) in nets.iter().enumerate() {
                let name = network_name(p, key);
                if i == 0 {
                    hc.network_mode = name.clone();
                }
                let ipam_config =
                    (sn.ipv4_address.is_some() || sn.ipv6_address.is_some()).then(|| {
                        EndpointIpamConfig {
                            ipv4_address: sn.ipv4_address.clone().unwrap_or_default(),
                            ipv6_address: sn.ipv6_address.clone().unwrap_or_default(),
                        }
                    });
                // The service-level mac_address belongs to the first network, as in compose.
                let mac = sn
                    .mac_address
                    .clone()
                    .or_else(|| if i == 0 { s.mac_address.clone() } else { None });
                // Priority keeps compose's interface order; gw_priority picks the default route.
                let gw_priority = sn.gw_priority.unwrap_or(sn.priority.unwrap_or(0));
                cfg.networking_config.endpoints_config.insert(
                    name,
                    EndpointRequest {
                        aliases: sn.aliases.clone(),
                        ipam_config,
                        mac_address: mac.unwrap_or_default(),
                        gw_priority: gw_priority.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
                    },
                );
            }
            if nets.is_empty() {
                // Only without compose's normalisation (`--no-normalize`): nothing to join.
                hc.network_mode = "none".into();
            }
        }
    }
    for port in &s.ports {
        let protocol = if port.protocol.is_empty() { "tcp" } else { port.protocol.as_str() };
        if protocol != "tcp" && protocol != "udp" {
            return Err(invalid(format!(
                "port {}: protocol {protocol:?} is not supported (tcp or udp)",
                port.target
            )));
        }
        hc.port_bindings.entry(format!("{}/{protocol}", port.target)).or_default().push(
            PortBinding {
                host_ip: port.host_ip.clone().unwrap_or_default(),
                host_port: port.published.clone().unwrap_or_default(),
            },
        );
    }
    hc.dns = s.dns.clone();
    hc.dns_search = s.dns_search.clone();
    hc.dns_options = s.dns_opt.clone();
    hc.extra_hosts = s
        .extra_hosts
        .iter()
        .flat_map(|(host, addrs)| addrs.iter().map(move |a| format!("{host}:{a}")))
        .collect();
    // `links: [svc[:alias]]` name the service's first replica; the alias (default: the service
    // name) then resolves for this container only. `external_links` name containers directly.
    for link in &s.links {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        let Some(ts) = p.services.get(target) else {
            return Err(invalid(format!("links: {target:?} is not a service of the project")));
        };
        hc.links.push(format!("{}:{alias}", container_name(&p.name, target, ts, 1)));
    }
    for link in &s.external_links {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        hc.links.push(format!("{target}:{alias}"));
    }
    Ok(())
}

/// `volumes_from` as (container name, read-only): `service:x` and bare `x` name the first replica
/// of service x, `container:name` a container by name.
pub fn volumes_from(
    p: &Project,
    service: &str,
    s: &Service,
) -> Result<Vec<(String, bool)>, PlanError> {
    let mut out = Vec::new();
    for v in &s.volumes_from {
        let (kind, rest) = match v.split_once(':') {
            Some(("service", r)) => ("service", r),
            Some(("container", r)) => ("container", r),
            _ => ("service", v.as_str()),
        };
        let (name, mode) = rest.split_once(':').unwrap_or((rest, "rw"));
        let ro = mode == "ro";
        let container = if kind == "container" {
            name.to_string()
        } else {
            let src = p.services.get(name).ok_or_else(|| PlanError::Invalid {
                service: service.into(),
                message: format!("volumes_from names undefined service {name:?}"),
            })?;
            container_name(&p.name, name, src, 1)
        };
        out.push((container, ro));
    }
    Ok(out)
}

/// Service keys berth reads but cannot apply yet (the planner warns about each).
pub fn ignored_keys(s: &Service) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |set: bool, key: &'static str| {
        if set {
            out.push(key);
        }
    };
    check(s.pid.is_some(), "pid");
    check(s.ipc.is_some(), "ipc");
    check(s.uts.is_some(), "uts");
    check(s.userns_mode.is_some(), "userns_mode");
    check(s.cgroup_parent.is_some(), "cgroup_parent");
    check(s.cgroup.is_some(), "cgroup");
    check(!s.gpus.is_empty(), "gpus");
    check(!s.device_cgroup_rules.is_empty(), "device_cgroup_rules");
    check(!s.storage_opt.is_empty(), "storage_opt");
    check(s.runtime.is_some(), "runtime");
    check(s.oom_kill_disable, "oom_kill_disable");
    check(s.mem_swappiness.is_some(), "mem_swappiness");
    check(s.cpu_rt_period.is_some() || s.cpu_rt_runtime.is_some(), "cpu_rt_period/cpu_rt_runtime");
    check(!s.post_start.is_empty() || !s.pre_stop.is_empty(), "post_start/pre_stop");
    out
}

/// The engine restart policy from `restart:` or `deploy.restart_policy`.
fn restart_policy(service: &str, s: &Service) -> Result<RestartPolicy, PlanError> {
    if let Some(r) = &s.restart {
        let (name, count) = r.split_once(':').unwrap_or((r.as_str(), ""));
        let maximum_retry_count = if count.is_empty() {
            0
        } else {
            count.parse().map_err(|_| PlanError::Invalid {
                service: service.into(),
                message: format!("invalid restart policy {r:?}"),
            })?
        };
        return Ok(RestartPolicy { name: name.into(), maximum_retry_count });
    }
    if let Some(rp) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        let name = match rp.condition.as_deref() {
            Some("none") => "no",
            Some("on-failure") => "on-failure",
            // compose maps `any` (the default condition) to `always`.
            _ => "always",
        };
        return Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: rp.max_attempts.unwrap_or(0),
        });
    }
    Ok(RestartPolicy::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use compose_spec::model::{Deploy, Resource, Resources};

    fn project(s: Service) -> Project {
        let mut p = Project { name: "p".into(), ..Default::default() };
        p.services.insert("web".into(), s);
        p
    }

    #[test]
    fn names_and_labels() {
        let s = Service { image: Some("busybox".into()), ..Default::default() };
        assert_eq!(container_name("p", "web", &s, 2), "p-web-2");
        let p = project(s);
        let c = create_config(&p, "web", 2, "abc", "sha256:x").unwrap();
        assert_eq!(c.config.labels[labels::PROJECT], "p");
        assert_eq!(c.config.labels[labels::NUMBER], "2");
        assert_eq!(c.config.labels[labels::CONFIG_HASH], "abc");
        assert_eq!(c.host_config.network_mode, "none");
    }

    #[test]
    fn resources_and_restart() {
        let s = Service {
            image: Some("busybox".into()),
            mem_limit: Some(compose_spec::model::ByteSize(100)),
            restart: Some("on-failure:3".into()),
            deploy: Some(Deploy {
                resources: Resources {
                    limits: Some(Resource {
                        memory: Some(compose_spec::model::ByteSize(200)),
                        cpus: Some(0.5),
                        pids: Some(20),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = create_config(&project(s), "web", 1, "h", "sha256:x").unwrap();
        assert_eq!(c.host_config.memory, 200);
        assert_eq!(c.host_config.nano_cpus, 500_000_000);
        assert_eq!(c.host_config.pids_limit, Some(20));
        assert_eq!(c.host_config.restart_policy.name, "on-failure");
        assert_eq!(c.host_config.restart_policy.maximum_retry_count, 3);
    }

    #[test]
    fn networks_ports_and_modes() {
        use compose_spec::model::{Network, Port};
        let net = |priority: Option<i64>, alias: &str| {
            Some(ServiceNetwork {
                priority,
                aliases: vec![alias.into()],
                ipv4_address: (alias == "b").then(|| "10.9.0.5".into()),
                ..Default::default()
            })
        };
        let mut s = Service { image: Some("busybox".into()), ..Default::default() };
        s.networks.insert("zeta".into(), net(None, "z"));
        s.networks.insert("back".into(), net(None, "b"));
        s.networks.insert("front".into(), net(Some(10), "f"));
        s.mac_address = Some("02:42:ac:11:00:02".into());
        s.ports.push(Port {
            target: 80,
            host_ip: Some("127.0.0.1".into()),
            protocol: "tcp".into(),
            ..Default::default()
        });
        s.extra_hosts.insert("gw".into(), vec!["host-gateway".into()]);
        s.dns = vec!["1.1.1.1".into()];
        let mut p = project(s);
        p.networks.insert("front".into(), Network::default());
        p.networks
            .insert("back".into(), Network { name: Some("shared".into()), ..Default::default() });
        p.networks.insert("zeta".into(), Network::default());
        let c = create_config(&p, "web", 1, "h", "sha256:x").unwrap();
        // priority first, then by key; the first is the network mode and gets the service MAC.
        assert_eq!(c.host_config.network_mode, "p_front");
        let eps: Vec<&String> = c.networking_config.endpoints_config.keys().collect();
        assert_eq!(eps, ["p_front", "shared", "p_zeta"]);
        let front = &c.networking_config.endpoints_config["p_front"];
        assert_eq!((front.mac_address.as_str(), front.gw_priority), ("02:42:ac:11:00:02", 10));
        let back = &c.networking_config.endpoints_config["shared"];
        assert_eq!(back.ipam_config.as_ref().unwrap().ipv4_address, "10.9.0.5");
        assert_eq!(back.mac_address, "");
        let b = &c.host_config.port_bindings["80/tcp"][0];
        assert_eq!((b.host_ip.as_str(), b.host_port.as_str()), ("127.0.0.1", ""));
        assert_eq!(c.host_config.extra_hosts, ["gw:host-gateway"]);
        assert_eq!(c.host_config.dns, ["1.1.1.1"]);

        let mut p2 = p.clone();
        let mut y = Service { image: Some("busybox".into()), ..Default::default() };
        y.network_mode = Some("service:web".into());
        p2.services.insert("y".into(), y);
        let c = create_config(&p2, "y", 1, "h", "sha256:x").unwrap();
        assert_eq!(c.host_config.network_mode, "container:p-web-1");
        p2.services["y"].network_mode = Some("service:nope".into());
        let e = create_config(&p2, "y", 1, "h", "sha256:x").unwrap_err().to_string();
        assert!(e.contains("\"y\"") && e.contains("nope"), "{e}");
    }
}
