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

mod build;
mod deploy;
mod develop;
mod devices;
mod healthcheck;
mod networks;
mod ports;
mod resources;
mod service;
mod volumes;

pub use ports::parse_port_spec;
pub use service::SERVICE_KEYS;
pub use volumes::parse_volume_spec;

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
}

fn key_mark_of(m: &Mapping, key: &str) -> Option<Mark> {
    key_mark(m, key)
}
