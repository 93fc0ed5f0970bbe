//! A service's `deploy`.

use indexmap::IndexMap;

use super::devices::device_requests;
use crate::convert::*;
use crate::model::*;
use crate::tree::Node;

pub(super) fn deploy(n: &Node, path: &str) -> R<Deploy> {
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
