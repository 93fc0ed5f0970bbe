//! Host resources a service uses: `devices`, device (GPU) requests, `blkio_config`, `ulimits`.

use indexmap::IndexMap;

use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

pub(super) fn blkio(n: &Node, path: &str) -> R<Blkio> {
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

/// Device requests of `deploy.resources.reservations.devices` (where the schema requires
/// `capabilities`) or of `gpus` (where it does not).
pub(super) fn device_requests(
    n: &Node,
    path: &str,
    need_capabilities: bool,
) -> R<Vec<DeviceRequest>> {
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

pub(super) fn devices(n: &Node, path: &str) -> R<Vec<Device>> {
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

pub(super) fn ulimits(n: &Node, path: &str) -> R<Map<Ulimit>> {
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
