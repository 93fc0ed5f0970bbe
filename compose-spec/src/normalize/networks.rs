//! Top-level `networks`.

use super::Normalizer;
use super::resources::EXTERNAL_CONFLICTS;
use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

impl Normalizer<'_> {
    pub(super) fn network(&mut self, n: &Node, path: &str) -> R<Network> {
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
}
