//! Service `volumes`: long and short syntax.

use super::Normalizer;
use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

impl Normalizer<'_> {
    pub(super) fn service_volumes(&mut self, n: &Node, path: &str) -> R<Vec<ServiceVolume>> {
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
