//! A service: its keys, and the sub-objects without a file of their own (depends_on,
//! env_file, models, networks, configs/secrets references, hooks, extra_hosts).

use indexmap::IndexMap;

use super::deploy::deploy;
use super::devices::{blkio, device_requests, devices, ulimits};
use super::healthcheck::healthcheck;
use super::resources::file_mode;
use super::{Normalizer, key_mark_of};
use crate::convert::*;
use crate::model::*;
use crate::tree::{Mapping, Mark, Node, Value};

/// Service keys the schema allows (besides `x-*`).
pub const SERVICE_KEYS: &[&str] = &[
    "develop",
    "deploy",
    "annotations",
    "attach",
    "build",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "label_file",
    "environment",
    "expose",
    "extends",
    "provider",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "models",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "pre_start",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "security_opt",
    "shm_size",
    "secrets",
    "sysctls",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "uts",
    "userns_mode",
    "volumes",
    "volumes_from",
    "working_dir",
];

impl Normalizer<'_> {
    pub(super) fn service(&mut self, node: &Node, path: &str, key_mark: &Mark) -> R<Service> {
        if matches!(node.value, Value::Null) {
            return Err(err_at(key_mark, path, "must be a mapping, not a null"));
        }
        let (m, extensions) = object(node, path, SERVICE_KEYS)?;
        let p = path;
        let mut s = Service { extensions, ..Service::default() };
        for key in [
            "depends_on",
            "network_mode",
            "container_name",
            "links",
            "volumes_from",
            "extends",
            "image",
            "build",
            "deploy",
            "scale",
            // Resource limits, checked in validation.
            "mem_limit",
            "mem_reservation",
            "memswap_limit",
            "mem_swappiness",
            "cpus",
            "cpu_quota",
            "cpu_period",
            "oom_score_adj",
            "shm_size",
        ] {
            if let Some(km) = key_mark_of(m, key) {
                self.marks.put(join(p, key), &km);
            }
        }
        if let Some(bm) = get(m, "blkio_config").and_then(Node::as_map)
            && let Some(km) = key_mark_of(bm, "weight")
        {
            self.marks.put(join(&join(p, "blkio_config"), "weight"), &km);
        }
        let resources = get(m, "deploy").and_then(Node::as_map).and_then(|d| get(d, "resources"));
        for set in ["limits", "reservations"] {
            let Some(rm) = resources.and_then(Node::as_map).and_then(|r| get(r, set)) else {
                continue;
            };
            for key in ["cpus", "memory"] {
                if let Some(km) = rm.as_map().and_then(|lm| key_mark_of(lm, key)) {
                    let rp = format!("{p}.deploy.resources.{set}.{key}");
                    self.marks.put(rp, &km);
                }
            }
        }
        for key in ["links", "volumes_from"] {
            if let Some(seq) = get(m, key).and_then(Node::as_seq) {
                for (i, item) in seq.iter().enumerate() {
                    self.marks.put(idx(&join(p, key), i), &item.mark);
                }
            }
        }
        s.profiles = opt_strings(m, "profiles", p)?;
        s.annotations = opt_string_map(m, "annotations", p)?;
        s.attach = opt_bool(m, "attach", p)?;
        if let Some(b) = get(m, "build") {
            s.build = Some(self.build(b, &join(p, "build"))?);
        }
        if let Some(d) = get(m, "develop") {
            s.develop = Some(self.develop(d, &join(p, "develop"))?);
        }
        if let Some(b) = get(m, "blkio_config") {
            s.blkio_config = Some(blkio(b, &join(p, "blkio_config"))?);
        }
        s.cap_add = opt_strings(m, "cap_add", p)?;
        s.cap_drop = opt_strings(m, "cap_drop", p)?;
        s.cgroup_parent = opt_string(m, "cgroup_parent", p)?;
        s.cgroup = opt_string(m, "cgroup", p)?;
        s.cpu_count = opt_int(m, "cpu_count", p)?;
        s.cpu_percent = opt_float(m, "cpu_percent", p)?;
        s.cpu_period = opt_int(m, "cpu_period", p)?;
        s.cpu_quota = opt_int(m, "cpu_quota", p)?;
        s.cpu_rt_period = opt_int(m, "cpu_rt_period", p)?;
        s.cpu_rt_runtime = opt_int(m, "cpu_rt_runtime", p)?;
        s.cpus = opt_float(m, "cpus", p)?;
        s.cpuset = opt_string(m, "cpuset", p)?;
        s.cpu_shares = opt_int(m, "cpu_shares", p)?;
        s.command = get(m, "command").map(|n| command(n, &join(p, "command"))).transpose()?;
        s.configs = self.file_refs(m, "configs", p, None)?;
        s.container_name = opt_string(m, "container_name", p)?;
        if let Some(c) = get(m, "credential_spec") {
            let cp = join(p, "credential_spec");
            let (cm, ext) = object(c, &cp, &["config", "file", "registry"])?;
            s.credential_spec = Some(CredentialSpec {
                config: opt_string(cm, "config", &cp)?,
                file: opt_string(cm, "file", &cp)?,
                registry: opt_string(cm, "registry", &cp)?,
                extensions: ext,
            });
        }
        if let Some(d) = get(m, "depends_on") {
            s.depends_on = self.depends_on(d, &join(p, "depends_on"))?;
        }
        if let Some(d) = get(m, "deploy") {
            s.deploy = Some(deploy(d, &join(p, "deploy"))?);
        }
        s.device_cgroup_rules = opt_strings(m, "device_cgroup_rules", p)?;
        if let Some(d) = get(m, "devices") {
            s.devices = devices(d, &join(p, "devices"))?;
        }
        s.dns = opt_string_or_list(m, "dns", p)?;
        s.dns_opt = opt_strings(m, "dns_opt", p)?;
        s.dns_search = opt_string_or_list(m, "dns_search", p)?;
        s.domainname = opt_string(m, "domainname", p)?;
        s.entrypoint =
            get(m, "entrypoint").map(|n| command(n, &join(p, "entrypoint"))).transpose()?;
        if let Some(pr) = get(m, "provider") {
            let pp = join(p, "provider");
            let (pm, ext) = object(pr, &pp, &["type", "options"])?;
            let kind = match get(pm, "type") {
                Some(t) => string(t, &join(&pp, "type"))?,
                None => return Err(err(pr, &pp, "\"type\" is required")),
            };
            let mut options = IndexMap::new();
            if let Some(o) = get(pm, "options") {
                let op = join(&pp, "options");
                let om = o.as_map().ok_or_else(|| err(o, &op, "must be a mapping"))?;
                for (k, (_, v)) in om {
                    options.insert(k.clone(), to_json(v));
                }
            }
            s.provider = Some(Provider { kind, options, extensions: ext });
        }
        let env = opt_list_or_dict(m, "environment", p)?;
        s.environment = if self.opts.defaults { self.resolve_env(env) } else { env };
        if let Some(e) = get(m, "env_file") {
            s.env_file = self.env_files(e, &join(p, "env_file"))?;
        }
        s.expose = opt_strings(m, "expose", p)?;
        if let Some(e) = get(m, "extends") {
            let ep = join(p, "extends");
            s.extends = Some(match &e.value {
                Value::String(name) => Extends { file: None, service: name.clone() },
                _ => {
                    let (em, _) = object(e, &ep, &["service", "file"])?;
                    let service = match get(em, "service") {
                        Some(v) => string(v, &join(&ep, "service"))?,
                        None => return Err(err(e, &ep, "\"service\" is required")),
                    };
                    Extends { file: opt_string(em, "file", &ep)?, service }
                }
            });
        }
        s.external_links = opt_strings(m, "external_links", p)?;
        if let Some(h) = get(m, "extra_hosts") {
            s.extra_hosts = extra_hosts(h, &join(p, "extra_hosts"))?;
        }
        s.group_add = opt_strings(m, "group_add", p)?;
        if let Some(g) = get(m, "gpus") {
            let gp = join(p, "gpus");
            s.gpus = match &g.value {
                Value::String(v) if v == "all" => {
                    vec![DeviceRequest { count: Some(-1), ..DeviceRequest::default() }]
                }
                _ => device_requests(g, &gp, false)?,
            };
        }
        s.hostname = opt_string(m, "hostname", p)?;
        if let Some(h) = get(m, "healthcheck") {
            s.healthcheck = Some(healthcheck(h, &join(p, "healthcheck"))?);
        }
        s.image = opt_string(m, "image", p)?;
        s.init = opt_bool(m, "init", p)?;
        s.ipc = opt_string(m, "ipc", p)?;
        s.isolation = opt_string(m, "isolation", p)?;
        s.labels = opt_string_map(m, "labels", p)?;
        s.label_file = opt_string_or_list(m, "label_file", p)?
            .into_iter()
            .map(|f| self.path_str(&f, false))
            .collect();
        s.links = opt_strings(m, "links", p)?;
        if let Some(l) = get(m, "logging") {
            let lp = join(p, "logging");
            let (lm, ext) = object(l, &lp, &["driver", "options"])?;
            s.logging = Some(Logging {
                driver: opt_string(lm, "driver", &lp)?,
                options: opt_string_map(lm, "options", &lp)?,
                extensions: ext,
            });
        }
        s.mem_limit = opt_bytes(m, "mem_limit", p)?;
        s.mem_reservation = opt_bytes(m, "mem_reservation", p)?;
        s.memswap_limit = opt_bytes(m, "memswap_limit", p)?;
        s.mem_swappiness = opt_int(m, "mem_swappiness", p)?.map(ByteSize);
        s.mac_address = opt_string(m, "mac_address", p)?;
        if let Some(md) = get(m, "models") {
            s.models = self.service_models(md, &join(p, "models"))?;
        }
        s.network_mode = opt_string(m, "network_mode", p)?;
        if let Some(nw) = get(m, "networks") {
            s.networks = self.service_networks(nw, &join(p, "networks"))?;
        }
        s.oom_kill_disable = flag(m, "oom_kill_disable", p)?;
        s.oom_score_adj = opt_int(m, "oom_score_adj", p)?;
        s.pid = opt_string(m, "pid", p)?;
        s.pids_limit = opt_int(m, "pids_limit", p)?;
        s.platform = opt_string(m, "platform", p)?;
        if let Some(ports) = get(m, "ports") {
            s.ports = self.ports(ports, &join(p, "ports"))?;
        }
        for (key, slot) in [("pre_start", 0), ("post_start", 1), ("pre_stop", 2)] {
            let Some(h) = get(m, key) else { continue };
            let hp = join(p, key);
            let seq = h
                .as_seq()
                .ok_or_else(|| err(h, &hp, format!("must be a list, not a {}", h.type_name())))?;
            let mut hooks = Vec::new();
            for (i, item) in seq.iter().enumerate() {
                hooks.push(hook(item, &idx(&hp, i), slot == 0)?);
            }
            match slot {
                0 => s.pre_start = hooks,
                1 => s.post_start = hooks,
                _ => s.pre_stop = hooks,
            }
        }
        s.privileged = flag(m, "privileged", p)?;
        s.pull_policy = opt_string(m, "pull_policy", p)?;
        if let (Some(pp), Some(n)) = (&s.pull_policy, get(m, "pull_policy")) {
            let ok = matches!(
                pp.as_str(),
                "always"
                    | "never"
                    | "if_not_present"
                    | "missing"
                    | "build"
                    | "daily"
                    | "weekly"
                    | "refresh"
            ) || pp.starts_with("every_");
            if !ok {
                return Err(err(
                    n,
                    &join(p, "pull_policy"),
                    format!("\"{pp}\" is not a valid pull policy"),
                ));
            }
        }
        s.pull_refresh_after = opt_scalar(m, "pull_refresh_after", p)?;
        s.read_only = flag(m, "read_only", p)?;
        s.restart = opt_string(m, "restart", p)?;
        if let (Some(r), Some(n)) = (&s.restart, get(m, "restart")) {
            let base = r.split(':').next().unwrap_or(r);
            let ok = matches!(base, "no" | "always" | "on-failure" | "unless-stopped")
                && (base == "on-failure" || !r.contains(':'));
            if !ok {
                return Err(err(
                    n,
                    &join(p, "restart"),
                    format!("\"{r}\" is not a valid restart policy"),
                ));
            }
        }
        s.runtime = opt_string(m, "runtime", p)?;
        s.scale = opt_int(m, "scale", p)?;
        if let (Some(sc), Some(sn)) = (s.scale, get(m, "scale"))
            && sc < 0
        {
            return Err(err(sn, &join(p, "scale"), "must be greater than or equal to 0"));
        }
        s.secrets = self.file_refs(m, "secrets", p, Some("/run/secrets/"))?;
        s.security_opt = opt_strings(m, "security_opt", p)?;
        s.shm_size = opt_bytes(m, "shm_size", p)?;
        s.stdin_open = flag(m, "stdin_open", p)?;
        s.stop_grace_period = opt_duration(m, "stop_grace_period", p)?;
        s.stop_signal = opt_string(m, "stop_signal", p)?;
        s.storage_opt = opt_string_map(m, "storage_opt", p)?;
        s.sysctls = opt_string_map(m, "sysctls", p)?;
        s.tmpfs = opt_string_or_list(m, "tmpfs", p)?;
        s.tty = flag(m, "tty", p)?;
        if let Some(u) = get(m, "ulimits") {
            s.ulimits = ulimits(u, &join(p, "ulimits"))?;
        }
        s.use_api_socket = flag(m, "use_api_socket", p)?;
        s.user = opt_string(m, "user", p)?;
        s.userns_mode = opt_string(m, "userns_mode", p)?;
        s.uts = opt_string(m, "uts", p)?;
        if let Some(v) = get(m, "volumes") {
            s.volumes = self.service_volumes(v, &join(p, "volumes"))?;
        }
        s.volumes_from = opt_strings(m, "volumes_from", p)?;
        s.working_dir = opt_string(m, "working_dir", p)?;
        Ok(s)
    }

    pub(super) fn file_refs(
        &mut self,
        m: &Mapping,
        key: &str,
        parent: &str,
        target_prefix: Option<&str>,
    ) -> R<Vec<FileRef>> {
        let Some(n) = get(m, key) else { return Ok(Vec::new()) };
        let path = join(parent, key);
        let seq = n
            .as_seq()
            .ok_or_else(|| err(n, &path, format!("must be a list, not a {}", n.type_name())))?;
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = idx(&path, i);
            self.marks.put(ip.clone(), &item.mark);
            let mut r = match &item.value {
                Value::String(s) => FileRef { source: s.clone(), ..FileRef::default() },
                _ => {
                    let (im, ext) = object(item, &ip, &["source", "target", "uid", "gid", "mode"])?;
                    let source = match get(im, "source") {
                        Some(v) => string(v, &join(&ip, "source"))?,
                        None => return Err(err(item, &ip, "\"source\" is required")),
                    };
                    let mode = match get(im, "mode") {
                        None => None,
                        Some(v) => Some(FileMode(file_mode(v, &join(&ip, "mode"))?)),
                    };
                    FileRef {
                        source,
                        target: opt_string(im, "target", &ip)?,
                        uid: opt_scalar(im, "uid", &ip)?,
                        gid: opt_scalar(im, "gid", &ip)?,
                        mode,
                        extensions: ext,
                    }
                }
            };
            if let (Some(prefix), None) = (target_prefix, &r.target)
                && self.opts.defaults
            {
                r.target = Some(format!("{prefix}{}", r.source));
            }
            out.push(r);
        }
        Ok(out)
    }

    fn depends_on(&mut self, n: &Node, path: &str) -> R<Map<Dependency>> {
        let mut out = IndexMap::new();
        match &n.value {
            Value::Seq(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    let name = string(item, &idx(path, i))?;
                    self.marks.put(join(path, &name), &item.mark);
                    out.insert(name, Dependency::default());
                }
            }
            Value::Map(m) => {
                for (name, (km, v)) in m {
                    let dp = join(path, name);
                    self.marks.put(dp.clone(), km);
                    let mut d = Dependency::default();
                    if !matches!(v.value, Value::Null) {
                        let (dm, ext) = object(v, &dp, &["restart", "required", "condition"])?;
                        d.extensions = ext;
                        if let Some(c) = get(dm, "condition") {
                            let cond = string(c, &join(&dp, "condition"))?;
                            if !matches!(
                                cond.as_str(),
                                "service_started"
                                    | "service_healthy"
                                    | "service_completed_successfully"
                            ) {
                                return Err(err(
                                    c,
                                    &join(&dp, "condition"),
                                    format!(
                                        "\"{cond}\" is not a valid condition (service_started, service_healthy or service_completed_successfully)"
                                    ),
                                ));
                            }
                            d.condition = cond;
                        }
                        d.restart = flag(dm, "restart", &dp)?;
                        d.required = opt_bool(dm, "required", &dp)?.unwrap_or(true);
                    }
                    out.insert(name.clone(), d);
                }
            }
            _ => {
                return Err(err(
                    n,
                    path,
                    format!("must be a list or a mapping, not a {}", n.type_name()),
                ));
            }
        }
        Ok(out)
    }

    fn env_files(&self, n: &Node, path: &str) -> R<Vec<EnvFile>> {
        let items: Vec<(Node, String)> = match &n.value {
            Value::Seq(s) => s.iter().enumerate().map(|(i, x)| (x.clone(), idx(path, i))).collect(),
            _ => vec![(n.clone(), path.to_string())],
        };
        let mut out = Vec::new();
        for (item, ip) in items {
            let f = match &item.value {
                Value::String(s) => {
                    EnvFile { path: self.path_str(s, false), required: true, format: None }
                }
                _ => {
                    let (m, _) = object(&item, &ip, &["path", "format", "required"])?;
                    let p = match get(m, "path") {
                        Some(v) => string(v, &join(&ip, "path"))?,
                        None => return Err(err(&item, &ip, "\"path\" is required")),
                    };
                    EnvFile {
                        path: self.path_str(&p, false),
                        required: opt_bool(m, "required", &ip)?.unwrap_or(true),
                        format: opt_string(m, "format", &ip)?,
                    }
                }
            };
            out.push(f);
        }
        Ok(out)
    }

    fn service_models(&mut self, n: &Node, path: &str) -> R<Map<Option<ServiceModel>>> {
        self.names_or_objects(n, path, |v, mp| {
            let (mm, ext) = object(v, mp, &["endpoint_var", "model_var"])?;
            Ok(ServiceModel {
                endpoint_var: opt_string(mm, "endpoint_var", mp)?,
                model_var: opt_string(mm, "model_var", mp)?,
                extensions: ext,
            })
        })
    }

    fn service_networks(&mut self, n: &Node, path: &str) -> R<Map<Option<ServiceNetwork>>> {
        const KEYS: &[&str] = &[
            "aliases",
            "interface_name",
            "ipv4_address",
            "ipv6_address",
            "link_local_ips",
            "mac_address",
            "driver_opts",
            "priority",
            "gw_priority",
        ];
        self.names_or_objects(n, path, |v, np| {
            let (nm, ext) = object(v, np, KEYS)?;
            Ok(ServiceNetwork {
                aliases: opt_strings(nm, "aliases", np)?,
                driver_opts: opt_string_map(nm, "driver_opts", np)?,
                gw_priority: opt_int(nm, "gw_priority", np)?,
                interface_name: opt_string(nm, "interface_name", np)?,
                ipv4_address: opt_string(nm, "ipv4_address", np)?,
                ipv6_address: opt_string(nm, "ipv6_address", np)?,
                link_local_ips: opt_strings(nm, "link_local_ips", np)?,
                mac_address: opt_string(nm, "mac_address", np)?,
                priority: opt_int(nm, "priority", np)?,
                extensions: ext,
            })
        })
    }

    /// A list of names, or a mapping of name -> object (null = no settings), as a service's
    /// `networks:` and `models:` are written; `parse` reads one object at its path.
    fn names_or_objects<T>(
        &mut self,
        n: &Node,
        path: &str,
        parse: impl Fn(&Node, &str) -> R<T>,
    ) -> R<Map<Option<T>>> {
        let mut out = IndexMap::new();
        match &n.value {
            Value::Seq(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    let name = string(item, &idx(path, i))?;
                    self.marks.put(join(path, &name), &item.mark);
                    out.insert(name, None);
                }
            }
            Value::Map(m) => {
                for (name, (km, v)) in m {
                    let np = join(path, name);
                    self.marks.put(np.clone(), km);
                    let val =
                        if matches!(v.value, Value::Null) { None } else { Some(parse(v, &np)?) };
                    out.insert(name.clone(), val);
                }
            }
            _ => {
                return Err(err(
                    n,
                    path,
                    format!("must be a list or a mapping, not a {}", n.type_name()),
                ));
            }
        }
        Ok(out)
    }
}

pub(super) fn hook(n: &Node, path: &str, pre_start: bool) -> R<Hook> {
    let keys: &[&str] = if pre_start {
        &["command", "image", "user", "privileged", "working_dir", "environment", "per_replica"]
    } else {
        &["command", "user", "privileged", "working_dir", "environment"]
    };
    let (m, extensions) = object(n, path, keys)?;
    let command = match get(m, "command") {
        Some(c) => command(c, &join(path, "command"))?,
        None if pre_start => Vec::new(),
        None => return Err(err(n, path, "\"command\" is required")),
    };
    Ok(Hook {
        command,
        image: opt_string(m, "image", path)?,
        per_replica: flag(m, "per_replica", path)?,
        user: opt_string(m, "user", path)?,
        privileged: flag(m, "privileged", path)?,
        working_dir: opt_string(m, "working_dir", path)?,
        environment: opt_list_or_dict(m, "environment", path)?,
        extensions,
    })
}

pub(super) fn extra_hosts(n: &Node, path: &str) -> R<Map<Vec<String>>> {
    let mut out: Map<Vec<String>> = IndexMap::new();
    match &n.value {
        Value::Map(m) => {
            for (host, (_, v)) in m {
                let ips = string_or_list(v, &join(path, host))?;
                out.entry(host.clone()).or_default().extend(ips);
            }
        }
        Value::Seq(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let ip = idx(path, i);
                let s = scalar(item, &ip)?;
                let (host, addr) =
                    s.split_once('=').or_else(|| s.split_once(':')).ok_or_else(|| {
                        err(item, &ip, format!("\"{s}\" is not a valid host entry (host=ip)"))
                    })?;
                let addr = addr.trim_start_matches('[').trim_end_matches(']');
                out.entry(host.to_string()).or_default().push(addr.to_string());
            }
        }
        _ => {
            return Err(err(
                n,
                path,
                format!("must be a list or a mapping, not a {}", n.type_name()),
            ));
        }
    }
    Ok(out)
}
