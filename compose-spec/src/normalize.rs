//! Loaded tree -> typed [`Project`] in long syntax, as `docker compose config` prints it.
//!
//! Typing and normalising happen in one pass: every key is checked against the keys the schema
//! allows (unknown keys get a "did you mean"), every value converted to its type with a
//! positioned error on failure, and short syntax expanded. Defaults compose injects (the
//! `default` network, resource names, `dockerfile: Dockerfile`, implicit dependencies) are added
//! only when [`NormalizeOptions::defaults`] is set (`--no-normalize` clears it).

use std::collections::HashMap;
use std::path::PathBuf;

use indexmap::IndexMap;

use crate::convert::*;
use crate::error::LoadError;
use crate::model::*;
use crate::tree::{Mapping, Mark, Node, Value};

/// What normalisation needs besides the tree.
#[derive(Debug, Clone, Default)]
pub struct NormalizeOptions {
    /// The project name (already decided by the loader).
    pub project_name: String,
    /// Absolute project directory, for relative paths.
    pub project_dir: PathBuf,
    /// Variables used to resolve `environment` / `args` entries without a value.
    pub environment: IndexMap<String, String>,
    /// Make relative host paths absolute.
    pub resolve_paths: bool,
    /// Inject compose's defaults (false for `--no-normalize`).
    pub defaults: bool,
}

/// Positions of keys that later checks point at, by key path (`services.web.depends_on.db`).
#[derive(Debug, Clone, Default)]
pub struct Marks(pub HashMap<String, Mark>);

impl Marks {
    /// The mark recorded for `path`, else for the closest recorded parent path.
    pub fn find(&self, path: &str) -> Option<Mark> {
        let mut p = path;
        loop {
            if let Some(m) = self.0.get(p) {
                return Some(m.clone());
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
    fn put(&mut self, path: String, mark: &Mark) {
        self.0.insert(path, mark.clone());
    }
}

/// Top-level keys the schema allows (besides `x-*`).
pub const TOP_KEYS: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

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

/// Normalises a loaded (merged, interpolated) tree into a [`Project`]; returns warnings too.
pub fn normalize(
    root: &Node,
    opts: &NormalizeOptions,
) -> Result<(Project, Marks, Vec<String>), LoadError> {
    let mut n = Normalizer { opts, marks: Marks::default(), warnings: Vec::new() };
    let project = n.project(root)?;
    Ok((project, n.marks, n.warnings))
}

struct Normalizer<'a> {
    opts: &'a NormalizeOptions,
    marks: Marks,
    warnings: Vec<String>,
}

impl Normalizer<'_> {
    fn project(&mut self, root: &Node) -> R<Project> {
        if matches!(root.value, Value::Null) {
            return Err(err(root, "", "the compose file is empty"));
        }
        let (m, extensions) = object(root, "", TOP_KEYS)?;
        let mut p = Project {
            name: self.opts.project_name.clone(),
            working_dir: self.opts.project_dir.clone(),
            extensions,
            ..Project::default()
        };
        if let Some(v) = get(m, "version") {
            scalar(v, "version")?;
            self.warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                v.mark.file
            ));
        }
        if let Some(v) = get(m, "name") {
            string(v, "name")?;
        }
        if let Some(s) = get(m, "services") {
            let sm = s.as_map().ok_or_else(|| {
                err(s, "services", format!("must be a mapping, not a {}", s.type_name()))
            })?;
            for (name, (km, node)) in sm {
                let path = format!("services.{name}");
                self.marks.put(path.clone(), km);
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return Err(err_at(
                        km,
                        &path,
                        format!(
                            "\"{name}\" is not a valid service name (letters, digits, \".\", \"_\" and \"-\" only)"
                        ),
                    ));
                }
                let svc = self.service(node, &path, km)?;
                p.services.insert(name.clone(), svc);
            }
        }
        for (key, field) in
            [("networks", 0), ("volumes", 1), ("secrets", 2), ("configs", 3), ("models", 4)]
        {
            let Some(s) = get(m, key) else { continue };
            let sm = s.as_map().ok_or_else(|| {
                err(s, key, format!("must be a mapping, not a {}", s.type_name()))
            })?;
            for (name, (km, node)) in sm {
                let path = format!("{key}.{name}");
                self.marks.put(path.clone(), km);
                match field {
                    0 => {
                        let v = self.network(node, &path)?;
                        p.networks.insert(name.clone(), v);
                    }
                    1 => {
                        let v = self.volume(node, &path)?;
                        p.volumes.insert(name.clone(), v);
                    }
                    2 => {
                        let v = self.file_object(node, &path, true)?;
                        p.secrets.insert(name.clone(), v);
                    }
                    3 => {
                        let v = self.file_object(node, &path, false)?;
                        p.configs.insert(name.clone(), v);
                    }
                    _ => {
                        let v = self.model(node, &path)?;
                        p.models.insert(name.clone(), v);
                    }
                }
            }
        }
        if self.opts.defaults {
            self.apply_defaults(&mut p);
        }
        Ok(p)
    }

    /// compose's implicit defaults: default network, resource names, implicit dependencies.
    fn apply_defaults(&self, p: &mut Project) {
        let mut uses_default = false;
        for svc in p.services.values_mut() {
            if svc.networks.is_empty() && svc.network_mode.is_none() {
                svc.networks.insert("default".into(), None);
            }
            uses_default |= svc.networks.contains_key("default");
            if svc.pull_policy.as_deref() == Some("if_not_present") {
                svc.pull_policy = Some("missing".into());
            }
            if let Some(b) = &mut svc.build {
                if b.context.is_none() {
                    b.context = Some(self.path_str(".", true));
                }
                if b.dockerfile.is_none() && b.dockerfile_inline.is_none() {
                    b.dockerfile = Some("Dockerfile".into());
                }
            }
            let mut implicit: Vec<(String, bool)> = Vec::new();
            for link in &svc.links {
                let name = link.split(':').next().unwrap_or(link);
                implicit.push((name.to_string(), true));
            }
            for ns in
                [&svc.network_mode, &svc.ipc, &svc.pid, &svc.uts, &svc.cgroup].into_iter().flatten()
            {
                if let Some(name) = ns.strip_prefix("service:") {
                    implicit.push((name.to_string(), true));
                }
            }
            for vf in &svc.volumes_from {
                if !vf.starts_with("container:") {
                    let name = vf.split(':').next().unwrap_or(vf);
                    implicit.push((name.to_string(), false));
                }
            }
            for (name, restart) in implicit {
                svc.depends_on
                    .entry(name)
                    .or_insert(Dependency { restart, ..Dependency::default() });
            }
        }
        if uses_default && !p.networks.contains_key("default") {
            p.networks.insert("default".into(), Network::default());
        }
        let proj = &p.name;
        for (k, n) in p.networks.iter_mut() {
            if n.name.is_none() {
                n.name = Some(if n.external { k.clone() } else { format!("{proj}_{k}") });
            }
        }
        for (k, v) in p.volumes.iter_mut() {
            if v.name.is_none() {
                v.name = Some(if v.external { k.clone() } else { format!("{proj}_{k}") });
            }
        }
        for (k, v) in p.secrets.iter_mut().chain(p.configs.iter_mut()) {
            if v.name.is_none() {
                v.name = Some(if v.external { k.clone() } else { format!("{proj}_{k}") });
            }
        }
    }

    /// Makes a host path absolute against the project directory (when resolving paths).
    fn path_str(&self, p: &str, force: bool) -> String {
        if !(self.opts.resolve_paths || force) {
            return p.to_string();
        }
        let home = self.opts.environment.get("HOME").map(String::as_str);
        crate::paths::absolute(&self.opts.project_dir, p, home)
    }

    fn is_remote(s: &str) -> bool {
        crate::paths::is_remote_context(s)
    }

    fn resolve_env(&self, m: Map<Option<String>>) -> Map<Option<String>> {
        m.into_iter()
            .map(|(k, v)| {
                let v = v.or_else(|| self.opts.environment.get(&k).cloned());
                (k, v)
            })
            .collect()
    }

    fn service(&mut self, node: &Node, path: &str, key_mark: &Mark) -> R<Service> {
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

    fn build(&mut self, n: &Node, path: &str) -> R<Build> {
        if let Value::String(ctx) = &n.value {
            return Ok(Build { context: Some(self.context(ctx)), ..Build::default() });
        }
        const KEYS: &[&str] = &[
            "context",
            "dockerfile",
            "dockerfile_inline",
            "entitlements",
            "args",
            "ssh",
            "labels",
            "cache_from",
            "cache_to",
            "no_cache",
            "no_cache_filter",
            "additional_contexts",
            "network",
            "provenance",
            "sbom",
            "pull",
            "target",
            "shm_size",
            "extra_hosts",
            "isolation",
            "privileged",
            "secrets",
            "tags",
            "ulimits",
            "platforms",
        ];
        let (m, extensions) = object(n, path, KEYS)?;
        let p = path;
        let mut b = Build { extensions, ..Build::default() };
        b.context = opt_string(m, "context", p)?.map(|c| self.context(&c));
        b.dockerfile = opt_string(m, "dockerfile", p)?;
        b.dockerfile_inline = opt_string(m, "dockerfile_inline", p)?;
        if b.dockerfile.is_some()
            && let Some(di) = get(m, "dockerfile_inline")
            && b.dockerfile_inline.is_some()
        {
            return Err(err(
                di,
                &join(p, "dockerfile_inline"),
                "\"dockerfile\" and \"dockerfile_inline\" are mutually exclusive",
            ));
        }
        b.entitlements = opt_strings(m, "entitlements", p)?;
        let args = opt_list_or_dict(m, "args", p)?;
        b.args = if self.opts.defaults { self.resolve_env(args) } else { args };
        b.provenance = opt_scalar(m, "provenance", p)?;
        b.sbom = opt_scalar(m, "sbom", p)?;
        b.ssh = match get(m, "ssh") {
            Some(s) => match &s.value {
                Value::Map(_) => list_or_dict(s, &join(p, "ssh"))?
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k,
                    })
                    .collect(),
                Value::Seq(items) => {
                    let sp = join(p, "ssh");
                    let mut keys = Vec::new();
                    for (i, it) in items.iter().enumerate() {
                        let ipath = idx(&sp, i);
                        let key = string(it, &ipath)?;
                        // compose: `id=path`, or `default` alone (the agent's socket).
                        if !key.contains('=') && key != "default" {
                            return Err(err(
                                it,
                                &ipath,
                                format!("invalid ssh key {key:?}: expected id=path or default"),
                            ));
                        }
                        keys.push(key);
                    }
                    keys
                }
                _ => {
                    return Err(err(
                        s,
                        &join(p, "ssh"),
                        format!("must be a mapping or a list of id=path, not a {}", s.type_name()),
                    ));
                }
            },
            None => Vec::new(),
        };
        b.labels = opt_string_map(m, "labels", p)?;
        b.cache_from = opt_strings(m, "cache_from", p)?;
        b.cache_to = opt_strings(m, "cache_to", p)?;
        b.no_cache = flag(m, "no_cache", p)?;
        b.no_cache_filter = opt_string_or_list(m, "no_cache_filter", p)?;
        b.additional_contexts = opt_string_map(m, "additional_contexts", p)?
            .into_iter()
            .map(|(k, v)| {
                let v = if v.contains(':') { v } else { self.context(&v) };
                (k, v)
            })
            .collect();
        b.network = opt_string(m, "network", p)?;
        b.pull = flag(m, "pull", p)?;
        b.target = opt_string(m, "target", p)?;
        b.shm_size = opt_bytes(m, "shm_size", p)?;
        if let Some(h) = get(m, "extra_hosts") {
            b.extra_hosts = extra_hosts(h, &join(p, "extra_hosts"))?;
        }
        b.isolation = opt_string(m, "isolation", p)?;
        b.privileged = flag(m, "privileged", p)?;
        b.secrets = self.file_refs(m, "secrets", p, Some("/run/secrets/"))?;
        b.tags = opt_strings(m, "tags", p)?;
        if let Some(u) = get(m, "ulimits") {
            b.ulimits = ulimits(u, &join(p, "ulimits"))?;
        }
        b.platforms = opt_strings(m, "platforms", p)?;
        Ok(b)
    }

    fn context(&self, c: &str) -> String {
        if Self::is_remote(c) { c.to_string() } else { self.path_str(c, false) }
    }

    fn develop(&mut self, n: &Node, path: &str) -> R<Develop> {
        let (m, extensions) = object(n, path, &["watch"])?;
        let mut d = Develop { extensions, ..Develop::default() };
        if let Some(w) = get(m, "watch") {
            let wp = join(path, "watch");
            let seq = w.as_seq().ok_or_else(|| err(w, &wp, "must be a list"))?;
            for (i, item) in seq.iter().enumerate() {
                let ip = idx(&wp, i);
                let (im, ext) = object(
                    item,
                    &ip,
                    &["ignore", "include", "path", "action", "target", "exec", "initial_sync"],
                )?;
                let req = |k: &str| -> R<String> {
                    match get(im, k) {
                        Some(v) => string(v, &join(&ip, k)),
                        None => Err(err(item, &ip, format!("\"{k}\" is required"))),
                    }
                };
                let action = req("action")?;
                if !matches!(
                    action.as_str(),
                    "rebuild" | "sync" | "restart" | "sync+restart" | "sync+exec"
                ) {
                    let an = get(im, "action").unwrap_or(item);
                    return Err(err(
                        an,
                        &join(&ip, "action"),
                        format!("\"{action}\" is not a valid watch action"),
                    ));
                }
                let wpath = req("path")?;
                if wpath.is_empty() {
                    let pn = get(im, "path").unwrap_or(item);
                    return Err(err(pn, &join(&ip, "path"), "value can't be blank"));
                }
                let target = opt_string(im, "target", &ip)?;
                if target.as_deref().is_none_or(str::is_empty)
                    && !matches!(action.as_str(), "rebuild" | "restart")
                {
                    return Err(err(
                        item,
                        &join(&ip, "target"),
                        format!("is required for the \"{action}\" action"),
                    ));
                }
                d.watch.push(WatchRule {
                    path: self.path_str(&wpath, false),
                    action,
                    target,
                    exec: get(im, "exec")
                        .map(|e| hook(e, &join(&ip, "exec"), false))
                        .transpose()?,
                    ignore: opt_string_or_list(im, "ignore", &ip)?,
                    include: opt_string_or_list(im, "include", &ip)?,
                    initial_sync: flag(im, "initial_sync", &ip)?,
                    extensions: ext,
                });
            }
        }
        Ok(d)
    }

    fn file_refs(
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

    fn ports(&mut self, n: &Node, path: &str) -> R<Vec<Port>> {
        let seq = n
            .as_seq()
            .ok_or_else(|| err(n, path, format!("must be a list, not a {}", n.type_name())))?;
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = idx(path, i);
            match &item.value {
                Value::Int(_) | Value::String(_) | Value::Float(_) => {
                    let spec = scalar(item, &ip)?;
                    let ports = parse_port_spec(&spec).ok_or_else(|| {
                        err(item, &ip, format!("\"{spec}\" is not a valid port mapping"))
                    })?;
                    out.extend(ports);
                }
                _ => {
                    let (m, ext) = object(
                        item,
                        &ip,
                        &[
                            "name",
                            "mode",
                            "host_ip",
                            "target",
                            "published",
                            "protocol",
                            "app_protocol",
                        ],
                    )?;
                    let target = match get(m, "target") {
                        Some(t) => {
                            let v = int(t, &join(&ip, "target"))?;
                            if !(1..=65535).contains(&v) {
                                return Err(err(
                                    t,
                                    &join(&ip, "target"),
                                    format!("{v} is not a valid port"),
                                ));
                            }
                            v as u32
                        }
                        None => return Err(err(item, &ip, "\"target\" is required")),
                    };
                    let published = match get(m, "published") {
                        Some(pn) => {
                            let v = scalar(pn, &join(&ip, "published"))?;
                            if parse_range(&v).is_none() {
                                return Err(err(
                                    pn,
                                    &join(&ip, "published"),
                                    format!("\"{v}\" is not a valid port or port range"),
                                ));
                            }
                            Some(v)
                        }
                        None => None,
                    };
                    let protocol = opt_string(m, "protocol", &ip)?.unwrap_or_else(|| "tcp".into());
                    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                        let pn = get(m, "protocol").unwrap_or(item);
                        return Err(err(
                            pn,
                            &join(&ip, "protocol"),
                            format!("\"{protocol}\" is not a valid protocol (tcp, udp or sctp)"),
                        ));
                    }
                    let mode = opt_string(m, "mode", &ip)?.unwrap_or_else(|| "ingress".into());
                    if !matches!(mode.as_str(), "ingress" | "host") {
                        let mn = get(m, "mode").unwrap_or(item);
                        return Err(err(
                            mn,
                            &join(&ip, "mode"),
                            format!("\"{mode}\" is not a valid port mode (ingress or host)"),
                        ));
                    }
                    out.push(Port {
                        name: opt_string(m, "name", &ip)?,
                        mode,
                        host_ip: match (opt_string(m, "host_ip", &ip)?, get(m, "host_ip")) {
                            (Some(h), Some(hn)) if h.parse::<std::net::IpAddr>().is_err() => {
                                return Err(err(
                                    hn,
                                    &join(&ip, "host_ip"),
                                    format!("invalid ip address: {h}"),
                                ));
                            }
                            (h, _) => h,
                        },
                        target,
                        published,
                        protocol,
                        app_protocol: opt_string(m, "app_protocol", &ip)?,
                        extensions: ext,
                    });
                }
            }
        }
        Ok(out)
    }

    fn service_volumes(&mut self, n: &Node, path: &str) -> R<Vec<ServiceVolume>> {
        let seq = n
            .as_seq()
            .ok_or_else(|| err(n, path, format!("must be a list, not a {}", n.type_name())))?;
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = idx(path, i);
            self.marks.put(ip.clone(), &item.mark);
            let mut v = match &item.value {
                Value::String(spec) => parse_volume_spec(spec).ok_or_else(|| {
                    err(item, &ip, format!("\"{spec}\" is not a valid volume specification"))
                })?,
                _ => self.long_volume(item, &ip)?,
            };
            if v.kind == "bind"
                && let Some(src) = &v.source
            {
                v.source = Some(self.path_str(src, false));
            }
            out.push(v);
        }
        Ok(out)
    }

    fn long_volume(&mut self, item: &Node, ip: &str) -> R<ServiceVolume> {
        let (m, ext) = object(
            item,
            ip,
            &[
                "type",
                "source",
                "target",
                "read_only",
                "consistency",
                "bind",
                "volume",
                "tmpfs",
                "image",
            ],
        )?;
        let kind = match get(m, "type") {
            Some(t) => string(t, &join(ip, "type"))?,
            None => return Err(err(item, ip, "\"type\" is required")),
        };
        if !matches!(kind.as_str(), "bind" | "volume" | "tmpfs" | "cluster" | "npipe" | "image") {
            let tn = get(m, "type").unwrap_or(item);
            return Err(err(
                tn,
                &join(ip, "type"),
                format!(
                    "\"{kind}\" is not a valid mount type (bind, volume, tmpfs, cluster, npipe or image)"
                ),
            ));
        }
        let target = match get(m, "target") {
            Some(t) => string(t, &join(ip, "target"))?,
            None if kind == "tmpfs" || kind == "bind" || kind == "volume" || kind == "image" => {
                return Err(err(item, ip, "\"target\" is required"));
            }
            None => String::new(),
        };
        let source = opt_string(m, "source", ip)?;
        if kind == "bind" && source.as_deref().is_none_or(str::is_empty) {
            let at = get(m, "source").unwrap_or(item);
            return Err(err(
                at,
                &join(ip, "source"),
                "invalid mount config for type \"bind\": field Source must not be empty",
            ));
        }
        let mut v = ServiceVolume {
            kind,
            source,
            target,
            read_only: flag(m, "read_only", ip)?,
            consistency: opt_string(m, "consistency", ip)?,
            extensions: ext,
            ..ServiceVolume::default()
        };
        if let Some(b) = m.get("bind").map(|(_, n)| n) {
            let bp = join(ip, "bind");
            if matches!(b.value, Value::Null) {
                v.bind = Some(BindOptions::default());
            } else {
                let (bm, bext) =
                    object(b, &bp, &["propagation", "create_host_path", "recursive", "selinux"])?;
                v.bind = Some(BindOptions {
                    selinux: opt_string(bm, "selinux", &bp)?,
                    propagation: opt_string(bm, "propagation", &bp)?,
                    create_host_path: opt_bool(bm, "create_host_path", &bp)?.unwrap_or(true),
                    recursive: opt_string(bm, "recursive", &bp)?,
                    extensions: bext,
                });
            }
        }
        if let Some(vo) = m.get("volume").map(|(_, n)| n) {
            let vp = join(ip, "volume");
            if matches!(vo.value, Value::Null) {
                v.volume = Some(VolumeOptions::default());
            } else {
                let (vm, vext) = object(vo, &vp, &["labels", "nocopy", "subpath"])?;
                v.volume = Some(VolumeOptions {
                    labels: opt_string_map(vm, "labels", &vp)?,
                    nocopy: flag(vm, "nocopy", &vp)?,
                    subpath: opt_string(vm, "subpath", &vp)?,
                    extensions: vext,
                });
            }
        }
        if let Some(t) = get(m, "tmpfs") {
            let tp = join(ip, "tmpfs");
            let (tm, text) = object(t, &tp, &["size", "mode"])?;
            let mode = match get(tm, "mode") {
                // compose keeps the tmpfs mode as the number written (1777 stays 1777).
                Some(mn) => Some(
                    u32::try_from(int(mn, &join(&tp, "mode"))?)
                        .map_err(|_| err(mn, &join(&tp, "mode"), "is not a valid mode"))?,
                ),
                None => None,
            };
            let size = opt_bytes(tm, "size", &tp)?;
            if let (Some(sz), Some(sn)) = (&size, get(tm, "size"))
                && sz.0 < 0
            {
                return Err(err(sn, &join(&tp, "size"), "must be greater than or equal to 0"));
            }
            v.tmpfs = Some(TmpfsOptions { size, mode, extensions: text });
        }
        if let Some(im) = get(m, "image") {
            let imp = join(ip, "image");
            let (imm, iext) = object(im, &imp, &["subpath"])?;
            v.image =
                Some(ImageOptions { subpath: opt_string(imm, "subpath", &imp)?, extensions: iext });
        }
        Ok(v)
    }

    fn network(&mut self, n: &Node, path: &str) -> R<Network> {
        if matches!(n.value, Value::Null) {
            return Ok(Network::default());
        }
        const KEYS: &[&str] = &[
            "name",
            "driver",
            "driver_opts",
            "ipam",
            "external",
            "internal",
            "enable_ipv4",
            "enable_ipv6",
            "attachable",
            "labels",
        ];
        let (m, extensions) = object(n, path, KEYS)?;
        let (external, name) = self.external_and_name(m, path, Some(EXTERNAL_CONFLICTS))?;
        let mut ipam = Ipam::default();
        if let Some(i) = get(m, "ipam") {
            let ip = join(path, "ipam");
            let (im, iext) = object(i, &ip, &["driver", "config", "options"])?;
            ipam.extensions = iext;
            ipam.driver = opt_string(im, "driver", &ip)?;
            ipam.options = opt_string_map(im, "options", &ip)?;
            if let Some(c) = get(im, "config") {
                let cp = join(&ip, "config");
                let seq = c.as_seq().ok_or_else(|| err(c, &cp, "must be a list"))?;
                for (k, pool) in seq.iter().enumerate() {
                    let pp = idx(&cp, k);
                    let (pm, pext) =
                        object(pool, &pp, &["subnet", "ip_range", "gateway", "aux_addresses"])?;
                    ipam.config.push(IpamPool {
                        subnet: opt_string(pm, "subnet", &pp)?,
                        gateway: opt_string(pm, "gateway", &pp)?,
                        ip_range: opt_string(pm, "ip_range", &pp)?,
                        aux_addresses: opt_string_map(pm, "aux_addresses", &pp)?,
                        extensions: pext,
                    });
                }
            }
        }
        Ok(Network {
            name,
            driver: opt_string(m, "driver", path)?,
            driver_opts: opt_string_map(m, "driver_opts", path)?,
            ipam,
            external,
            internal: flag(m, "internal", path)?,
            attachable: flag(m, "attachable", path)?,
            labels: opt_string_map(m, "labels", path)?,
            enable_ipv4: opt_bool(m, "enable_ipv4", path)?,
            enable_ipv6: opt_bool(m, "enable_ipv6", path)?,
            extensions,
        })
    }

    fn volume(&mut self, n: &Node, path: &str) -> R<Volume> {
        if matches!(n.value, Value::Null) {
            return Ok(Volume::default());
        }
        let (m, extensions) =
            object(n, path, &["name", "driver", "driver_opts", "external", "labels"])?;
        // compose refuses every other attribute on an external volume.
        let (external, name) = self.external_and_name(m, path, None)?;
        let driver = opt_string(m, "driver", path)?;
        let mut driver_opts = opt_string_map(m, "driver_opts", path)?;
        if self.opts.defaults
            && driver.as_deref().is_none_or(|d| d == "local")
            && driver_opts.get("o").is_some_and(|o| o.split(',').any(|x| x == "bind"))
        {
            // A local volume that is really a bind mount: its device is a host path.
            if let Some(dev) = driver_opts.get("device").cloned() {
                driver_opts.insert("device".into(), self.path_str(&dev, false));
            }
        }
        Ok(Volume {
            name,
            driver,
            driver_opts,
            external,
            labels: opt_string_map(m, "labels", path)?,
            extensions,
        })
    }

    fn file_object(&mut self, n: &Node, path: &str, secret: bool) -> R<FileObject> {
        let keys: &[&str] = if secret {
            &[
                "name",
                "environment",
                "file",
                "external",
                "labels",
                "driver",
                "driver_opts",
                "template_driver",
            ]
        } else {
            &["name", "content", "environment", "file", "external", "labels", "template_driver"]
        };
        let (m, extensions) = object(n, path, keys)?;
        let (external, name) = self.external_and_name(m, path, Some(EXTERNAL_CONFLICTS))?;
        let o = FileObject {
            name,
            file: opt_string(m, "file", path)?.map(|f| self.path_str(&f, false)),
            environment: opt_string(m, "environment", path)?,
            content: opt_string(m, "content", path)?,
            external,
            labels: opt_string_map(m, "labels", path)?,
            driver: opt_string(m, "driver", path)?,
            driver_opts: opt_string_map(m, "driver_opts", path)?,
            template_driver: opt_string(m, "template_driver", path)?,
            extensions,
        };
        let exclusive = [o.file.is_some(), o.environment.is_some(), o.content.is_some()];
        if exclusive.iter().filter(|b| **b).count() > 1 {
            return Err(err(
                n,
                path,
                if secret {
                    "file|environment attributes are mutually exclusive"
                } else {
                    "file|environment|content attributes are mutually exclusive"
                },
            ));
        }
        let sources = [o.file.is_some(), o.environment.is_some(), o.content.is_some(), o.external]
            .iter()
            .filter(|b| **b)
            .count();
        if sources == 0 {
            let what = if secret { "secret" } else { "config" };
            return Err(err(
                n,
                path,
                format!(
                    "{what} needs one of \"file\", \"environment\"{} or \"external\"",
                    if secret { "" } else { ", \"content\"" }
                ),
            ));
        }
        Ok(o)
    }

    /// `external` and the resource's name, checked as compose does: attributes that make no
    /// sense on an external resource (`conflicting`, or every one but `name` when None) are
    /// refused, and the deprecated `external.name` is adopted unless it contradicts `name`.
    fn external_and_name(
        &mut self,
        m: &Mapping,
        path: &str,
        conflicting: Option<&[&str]>,
    ) -> R<(bool, Option<String>)> {
        let (external, ext_name) = external(m, path)?;
        if external {
            for (k, (km, _)) in m {
                let conflicts = match conflicting {
                    Some(list) => list.contains(&k.as_str()),
                    None => !matches!(k.as_str(), "name" | "external") && !k.starts_with("x-"),
                };
                if conflicts {
                    return Err(err_at(
                        km,
                        &join(path, k),
                        format!("conflicting parameters \"external\" and \"{k}\" specified"),
                    ));
                }
            }
        }
        let name = opt_string(m, "name", path)?;
        let Some(en) = ext_name else { return Ok((external, name)) };
        self.warnings.push(format!(
            "{path}: external.name is deprecated. Please set name and external: true"
        ));
        match name {
            Some(n) if n != en => {
                let at = key_mark_of(m, "name");
                Err(LoadError::invalid(
                    at,
                    Some(path.to_string()),
                    "name and external.name conflict; only use name",
                ))
            }
            _ => Ok((external, Some(en))),
        }
    }

    fn model(&mut self, n: &Node, path: &str) -> R<Model> {
        if matches!(n.value, Value::Null) {
            return Ok(Model::default());
        }
        let (m, extensions) = object(n, path, &["name", "model", "context_size", "runtime_flags"])?;
        Ok(Model {
            name: opt_string(m, "name", path)?,
            model: opt_string(m, "model", path)?,
            context_size: opt_int(m, "context_size", path)?,
            runtime_flags: opt_strings(m, "runtime_flags", path)?,
            extensions,
        })
    }
}

fn key_mark_of(m: &Mapping, key: &str) -> Option<Mark> {
    key_mark(m, key)
}

/// Attributes refused on an external network, config or secret.
const EXTERNAL_CONFLICTS: &[&str] = &["driver", "driver_opts", "labels"];

/// `external: true | false | {name}` -> (external, legacy name).
fn external(m: &Mapping, path: &str) -> R<(bool, Option<String>)> {
    let Some(e) = get(m, "external") else { return Ok((false, None)) };
    let ep = join(path, "external");
    match &e.value {
        Value::Map(_) => {
            let (em, _) = object(e, &ep, &["name"])?;
            Ok((true, opt_string(em, "name", &ep)?))
        }
        _ => Ok((boolean(e, &ep)?, None)),
    }
}

/// A file mode: an integer, or a string in octal (`"0440"`).
fn file_mode(n: &Node, path: &str) -> R<u32> {
    match &n.value {
        // compose reads `mode: 0440` as YAML 1.1 octal; the core-schema parser has made it the
        // integer 440, so integers written only with octal digits are taken as octal.
        Value::Int(i) if (0..=7777).contains(i) && i.to_string().bytes().all(|b| b < b'8') => {
            u32::from_str_radix(&i.to_string(), 8)
                .map_err(|_| err(n, path, format!("{i} is not a valid file mode")))
        }
        Value::Int(i) if (0..=0o7777).contains(i) => Ok(*i as u32),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|v| *v <= 0o7777)
            .ok_or_else(|| err(n, path, format!("\"{s}\" is not a valid file mode"))),
        _ => Err(err(n, path, "must be a file mode (an integer or an octal string)")),
    }
}

fn hook(n: &Node, path: &str, pre_start: bool) -> R<Hook> {
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

fn healthcheck(n: &Node, path: &str) -> R<Healthcheck> {
    let (m, extensions) = object(
        n,
        path,
        &["disable", "interval", "retries", "test", "timeout", "start_period", "start_interval"],
    )?;
    let test = match get(m, "test") {
        Some(t) => match &t.value {
            Value::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            _ => strings(t, &join(path, "test"))?,
        },
        None => Vec::new(),
    };
    if let (Some(first), Some(t)) = (test.first(), get(m, "test"))
        && t.as_seq().is_some()
        && !matches!(first.as_str(), "NONE" | "CMD" | "CMD-SHELL")
    {
        return Err(err(
            t,
            &join(path, "test"),
            format!("must start with NONE, CMD or CMD-SHELL, not \"{first}\""),
        ));
    }
    let retries = opt_int(m, "retries", path)?;
    if let (Some(r), Some(rn)) = (retries, get(m, "retries"))
        && r < 0
    {
        return Err(err(
            rn,
            &join(path, "retries"),
            format!("{r} is not a valid number of retries"),
        ));
    }
    Ok(Healthcheck {
        test,
        timeout: opt_duration(m, "timeout", path)?,
        interval: opt_duration(m, "interval", path)?,
        retries,
        start_period: opt_duration(m, "start_period", path)?,
        start_interval: opt_duration(m, "start_interval", path)?,
        disable: flag(m, "disable", path)?,
        extensions,
    })
}

fn blkio(n: &Node, path: &str) -> R<Blkio> {
    let (m, extensions) = object(
        n,
        path,
        &[
            "device_read_bps",
            "device_read_iops",
            "device_write_bps",
            "device_write_iops",
            "weight",
            "weight_device",
        ],
    )?;
    let rates = |key: &str| -> R<Vec<BlkioRate>> {
        let Some(l) = get(m, key) else { return Ok(Vec::new()) };
        let lp = join(path, key);
        let seq = l.as_seq().ok_or_else(|| err(l, &lp, "must be a list"))?;
        seq.iter()
            .enumerate()
            .map(|(i, item)| {
                let ip = idx(&lp, i);
                let (im, _) = object(item, &ip, &["path", "rate"])?;
                Ok(BlkioRate {
                    path: opt_string(im, "path", &ip)?.unwrap_or_default(),
                    rate: opt_bytes(im, "rate", &ip)?.unwrap_or_default(),
                })
            })
            .collect()
    };
    let mut weight_device = Vec::new();
    if let Some(l) = get(m, "weight_device") {
        let lp = join(path, "weight_device");
        let seq = l.as_seq().ok_or_else(|| err(l, &lp, "must be a list"))?;
        for (i, item) in seq.iter().enumerate() {
            let ip = idx(&lp, i);
            let (im, _) = object(item, &ip, &["path", "weight"])?;
            weight_device.push(BlkioWeight {
                path: opt_string(im, "path", &ip)?.unwrap_or_default(),
                weight: opt_int(im, "weight", &ip)?.unwrap_or_default(),
            });
        }
    }
    Ok(Blkio {
        weight: opt_int(m, "weight", path)?,
        weight_device,
        device_read_bps: rates("device_read_bps")?,
        device_read_iops: rates("device_read_iops")?,
        device_write_bps: rates("device_write_bps")?,
        device_write_iops: rates("device_write_iops")?,
        extensions,
    })
}

fn deploy(n: &Node, path: &str) -> R<Deploy> {
    const KEYS: &[&str] = &[
        "mode",
        "endpoint_mode",
        "replicas",
        "labels",
        "rollback_config",
        "update_config",
        "resources",
        "restart_policy",
        "placement",
    ];
    let (m, extensions) = object(n, path, KEYS)?;
    let update = |key: &str| -> R<Option<UpdateConfig>> {
        let Some(u) = get(m, key) else { return Ok(None) };
        let up = join(path, key);
        let (um, ext) = object(
            u,
            &up,
            &["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"],
        )?;
        Ok(Some(UpdateConfig {
            parallelism: opt_int(um, "parallelism", &up)?,
            delay: opt_duration(um, "delay", &up)?,
            failure_action: opt_string(um, "failure_action", &up)?,
            monitor: opt_duration(um, "monitor", &up)?,
            max_failure_ratio: opt_float(um, "max_failure_ratio", &up)?,
            order: opt_string(um, "order", &up)?,
            extensions: ext,
        }))
    };
    let mut resources = Resources::default();
    if let Some(r) = get(m, "resources") {
        let rp = join(path, "resources");
        let (rm, rext) = object(r, &rp, &["limits", "reservations"])?;
        resources.extensions = rext;
        for (key, limits) in [("limits", true), ("reservations", false)] {
            let Some(l) = get(rm, key) else { continue };
            let lp = join(&rp, key);
            let keys: &[&str] = if limits {
                &["cpus", "memory", "pids"]
            } else {
                &["cpus", "memory", "generic_resources", "devices"]
            };
            let (lm, lext) = object(l, &lp, keys)?;
            let mut res = Resource {
                cpus: opt_float(lm, "cpus", &lp)?,
                memory: opt_bytes(lm, "memory", &lp)?,
                pids: opt_int(lm, "pids", &lp)?,
                extensions: lext,
                ..Resource::default()
            };
            if let Some(d) = get(lm, "devices") {
                res.devices = device_requests(d, &join(&lp, "devices"), true)?;
            }
            if let Some(g) = get(lm, "generic_resources") {
                let gp = join(&lp, "generic_resources");
                let seq = g.as_seq().ok_or_else(|| err(g, &gp, "must be a list"))?;
                for (i, item) in seq.iter().enumerate() {
                    let ip = idx(&gp, i);
                    let (im, iext) = object(item, &ip, &["discrete_resource_spec"])?;
                    let spec = match get(im, "discrete_resource_spec") {
                        Some(s) => {
                            let sp = join(&ip, "discrete_resource_spec");
                            let (sm, sext) = object(s, &sp, &["kind", "value"])?;
                            Some(DiscreteResource {
                                kind: opt_string(sm, "kind", &sp)?.unwrap_or_default(),
                                value: opt_int(sm, "value", &sp)?.unwrap_or_default(),
                                extensions: sext,
                            })
                        }
                        None => None,
                    };
                    res.generic_resources
                        .push(GenericResource { discrete_resource_spec: spec, extensions: iext });
                }
            }
            if limits {
                resources.limits = Some(res);
            } else {
                resources.reservations = Some(res);
            }
        }
    }
    let restart_policy = match get(m, "restart_policy") {
        Some(r) => {
            let rp = join(path, "restart_policy");
            let (rm, ext) = object(r, &rp, &["condition", "delay", "max_attempts", "window"])?;
            Some(RestartPolicy {
                condition: opt_string(rm, "condition", &rp)?,
                delay: opt_duration(rm, "delay", &rp)?,
                max_attempts: opt_int(rm, "max_attempts", &rp)?,
                window: opt_duration(rm, "window", &rp)?,
                extensions: ext,
            })
        }
        None => None,
    };
    let mut placement = Placement::default();
    if let Some(pl) = get(m, "placement") {
        let pp = join(path, "placement");
        let (pm, ext) = object(pl, &pp, &["constraints", "preferences", "max_replicas_per_node"])?;
        placement.extensions = ext;
        placement.constraints = opt_strings(pm, "constraints", &pp)?;
        placement.max_replicas_per_node = opt_int(pm, "max_replicas_per_node", &pp)?;
        if let Some(prefs) = get(pm, "preferences") {
            let prp = join(&pp, "preferences");
            let seq = prefs.as_seq().ok_or_else(|| err(prefs, &prp, "must be a list"))?;
            for (i, item) in seq.iter().enumerate() {
                let ip = idx(&prp, i);
                let (im, _) = object(item, &ip, &["spread"])?;
                placement.preferences.push(
                    opt_string(im, "spread", &ip)?
                        .map(|s| IndexMap::from([("spread".to_string(), s)]))
                        .unwrap_or_default(),
                );
            }
        }
    }
    let replicas = opt_int(m, "replicas", path)?;
    if let (Some(r), Some(rn)) = (replicas, get(m, "replicas"))
        && r < 0
    {
        return Err(err(
            rn,
            &join(path, "replicas"),
            format!("{r} is not a valid number of replicas"),
        ));
    }
    let mode = opt_string(m, "mode", path)?;
    if let (Some(md), Some(mn)) = (&mode, get(m, "mode"))
        && !matches!(md.as_str(), "replicated" | "global" | "replicated-job" | "global-job")
    {
        return Err(err(
            mn,
            &join(path, "mode"),
            format!(
                "\"{md}\" is not a valid deploy mode (replicated, global, replicated-job or global-job)"
            ),
        ));
    }
    Ok(Deploy {
        mode,
        replicas,
        labels: opt_string_map(m, "labels", path)?,
        update_config: update("update_config")?,
        rollback_config: update("rollback_config")?,
        resources,
        restart_policy,
        placement,
        endpoint_mode: opt_string(m, "endpoint_mode", path)?,
        extensions,
    })
}

/// Device requests of `deploy.resources.reservations.devices` (where the schema requires
/// `capabilities`) or of `gpus` (where it does not).
fn device_requests(n: &Node, path: &str, need_capabilities: bool) -> R<Vec<DeviceRequest>> {
    let seq = n
        .as_seq()
        .ok_or_else(|| err(n, path, format!("must be a list, not a {}", n.type_name())))?;
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = idx(path, i);
        let (m, ext) =
            object(item, &ip, &["capabilities", "count", "device_ids", "driver", "options"])?;
        let count = match get(m, "count") {
            Some(c) if c.as_str().is_some_and(|s| s.eq_ignore_ascii_case("all")) => Some(-1),
            Some(c) => Some(int(c, &join(&ip, "count"))?),
            None => None,
        };
        let device_ids = opt_strings(m, "device_ids", &ip)?;
        if let (Some(_), Some(ids)) = (get(m, "count"), get(m, "device_ids")) {
            return Err(err(
                ids,
                &join(&ip, "device_ids"),
                "\"count\" and \"device_ids\" attributes are exclusive",
            ));
        }
        if need_capabilities && get(m, "capabilities").is_none() {
            return Err(err(item, &ip, "\"capabilities\" is required"));
        }
        // compose defaults to every device when neither a count nor ids are given.
        let count = if count.is_none() && device_ids.is_empty() { Some(-1) } else { count };
        out.push(DeviceRequest {
            capabilities: opt_strings(m, "capabilities", &ip)?,
            driver: opt_string(m, "driver", &ip)?,
            count,
            device_ids,
            options: opt_string_map(m, "options", &ip)?,
            extensions: ext,
        });
    }
    Ok(out)
}

fn devices(n: &Node, path: &str) -> R<Vec<Device>> {
    let seq = n
        .as_seq()
        .ok_or_else(|| err(n, path, format!("must be a list, not a {}", n.type_name())))?;
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = idx(path, i);
        let d = match &item.value {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [a] => Device {
                        source: a.to_string(),
                        target: a.to_string(),
                        permissions: "rwm".into(),
                        ..Device::default()
                    },
                    [a, b] => Device {
                        source: a.to_string(),
                        target: b.to_string(),
                        permissions: "rwm".into(),
                        ..Device::default()
                    },
                    [a, b, c] => Device {
                        source: a.to_string(),
                        target: b.to_string(),
                        permissions: c.to_string(),
                        ..Device::default()
                    },
                    _ => {
                        return Err(err(
                            item,
                            &ip,
                            format!("\"{s}\" is not a valid device mapping"),
                        ));
                    }
                }
            }
            _ => {
                let (m, ext) = object(item, &ip, &["source", "target", "permissions"])?;
                let source = match get(m, "source") {
                    Some(v) => string(v, &join(&ip, "source"))?,
                    None => return Err(err(item, &ip, "\"source\" is required")),
                };
                Device {
                    target: opt_string(m, "target", &ip)?.unwrap_or_else(|| source.clone()),
                    source,
                    permissions: opt_string(m, "permissions", &ip)?.unwrap_or_else(|| "rwm".into()),
                    extensions: ext,
                }
            }
        };
        out.push(d);
    }
    Ok(out)
}

fn extra_hosts(n: &Node, path: &str) -> R<Map<Vec<String>>> {
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

fn ulimits(n: &Node, path: &str) -> R<Map<Ulimit>> {
    let m = n
        .as_map()
        .ok_or_else(|| err(n, path, format!("must be a mapping, not a {}", n.type_name())))?;
    let mut out = IndexMap::new();
    for (name, (_, v)) in m {
        let up = join(path, name);
        let u = match &v.value {
            Value::Map(_) => {
                let (um, _) = object(v, &up, &["soft", "hard"])?;
                let soft =
                    opt_int(um, "soft", &up)?.ok_or_else(|| err(v, &up, "\"soft\" is required"))?;
                let hard =
                    opt_int(um, "hard", &up)?.ok_or_else(|| err(v, &up, "\"hard\" is required"))?;
                if soft > hard && hard >= 0 {
                    return Err(err(
                        v,
                        &up,
                        format!("soft limit {soft} is greater than hard limit {hard}"),
                    ));
                }
                Ulimit::SoftHard { soft, hard }
            }
            _ => Ulimit::Single(int(v, &up)?),
        };
        out.insert(name.clone(), u);
    }
    Ok(out)
}

/// `start[-end]` port range (0-65535).
fn parse_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u32 = a.parse().ok()?;
    let b: u32 = b.parse().ok()?;
    (a <= b && b <= 65535).then_some((a, b))
}

/// Short port syntax `[ip:][host[-range]:]container[-range][/proto]`, as docker parses it.
pub fn parse_port_spec(spec: &str) -> Option<Vec<Port>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let parts: Vec<&str> = body.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => ("".to_string(), ""),
        2 => ("".to_string(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    if container.is_empty() {
        return None;
    }
    let (cs, ce) = parse_range(container)?;
    if cs == 0 {
        return None;
    }
    let host_range = if host.is_empty() { None } else { Some(parse_range(host)?) };
    if let Some((hs, he)) = host_range
        && he - hs != ce - cs
        && ce != cs
    {
        return None;
    }
    let mut ports: Vec<Port> = Vec::new();
    for i in 0..=(ce - cs) {
        let published = match host_range {
            None => None,
            Some((hs, he)) if he - hs == ce - cs => Some((hs + i).to_string()),
            Some(_) => Some(host.to_string()),
        };
        ports.push(Port {
            mode: "ingress".into(),
            host_ip: (!ip.is_empty()).then(|| ip.clone()),
            target: cs + i,
            published,
            protocol: proto.clone(),
            ..Port::default()
        });
    }
    // docker sorts the expanded ports by their "port/proto" text.
    ports.sort_by_key(|p| p.target.to_string());
    Some(ports)
}

/// Short volume syntax `[source:]target[:options]`, as compose parses it.
pub fn parse_volume_spec(spec: &str) -> Option<ServiceVolume> {
    if spec.is_empty() {
        return None;
    }
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return None;
    }
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return None,
    };
    let mut v = ServiceVolume {
        source: source.map(str::to_string),
        target: target.to_string(),
        ..ServiceVolume::default()
    };
    let is_path = source.is_some_and(|s| s.starts_with(['.', '/', '~']));
    let mut bind = BindOptions::default();
    let mut vol = VolumeOptions::default();
    for o in opts.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => v.read_only = true,
            "rw" => v.read_only = false,
            "nocopy" => vol.nocopy = true,
            "z" | "Z" => bind.selinux = Some(o.to_string()),
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                bind.propagation = Some(o.to_string())
            }
            "cached" | "delegated" | "consistent" => v.consistency = Some(o.to_string()),
            _ => return None,
        }
    }
    if is_path {
        v.kind = "bind".into();
        v.bind = Some(bind);
    } else {
        v.kind = "volume".into();
        v.volume = Some(vol);
    }
    Some(v)
}
