//! `build` (and the build context) of a service.

use super::Normalizer;
use super::devices::ulimits;
use super::service::extra_hosts;
use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

impl Normalizer<'_> {
    pub(super) fn build(&mut self, n: &Node, path: &str) -> R<Build> {
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
}
