//! `RUN --mount=...` values (BuildKit's syntax): `type=bind|cache|tmpfs|secret|ssh` and options.

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A directory of the context or of another stage/image, read-only unless `rw`.
    Bind,
    /// A directory kept between builds (by `id`, default the target).
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file (`/run/secrets/<id>` by default).
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// One parsed `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// Its type (default bind).
    pub typ: MountType,
    /// Where it appears in the RUN container.
    pub target: Option<String>,
    /// The path inside `from` (or the context).
    pub source: Option<String>,
    /// Stage or image providing `source` (bind, cache).
    pub from: Option<String>,
    /// Cache or secret id.
    pub id: Option<String>,
    /// Writable (bind) / read-only (cache).
    pub readonly: Option<bool>,
    /// `shared`, `private` or `locked` (cache).
    pub sharing: Option<String>,
    /// File mode (octal) of a cache directory or secret.
    pub mode: Option<u32>,
    /// Owner of a cache directory or secret.
    pub uid: Option<u32>,
    /// Group of a cache directory or secret.
    pub gid: Option<u32>,
    /// `required` (secret, ssh).
    pub required: bool,
    /// `size` of a tmpfs in bytes.
    pub size: Option<u64>,
}

/// Parses a `--mount` value.
pub fn parse_mount(s: &str) -> Result<RunMount, String> {
    let mut m = RunMount {
        typ: MountType::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        readonly: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
    };
    let bool_of = |k: &str, v: Option<&str>| -> Result<bool, String> {
        match v {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(o) => Err(format!("--mount: invalid value {o:?} for {k}")),
        }
    };
    let num = |k: &str, v: &str, radix: u32| -> Result<u32, String> {
        u32::from_str_radix(v, radix).map_err(|_| format!("--mount: invalid value {v:?} for {k}"))
    };
    for field in s.split(',') {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| -> Result<String, String> {
            v.map(str::to_string).ok_or_else(|| format!("--mount: {k} needs a value"))
        };
        match k.as_str() {
            "type" => {
                m.typ = match need(v)?.as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    o => {
                        return Err(format!(
                            "--mount: unsupported type {o:?} (bind, cache, tmpfs, secret or ssh)"
                        ));
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = Some(need(v)?),
            "source" | "src" => m.source = Some(need(v)?),
            "from" => m.from = Some(need(v)?),
            "id" => m.id = Some(need(v)?),
            "ro" | "readonly" => m.readonly = Some(bool_of(&k, v)?),
            "rw" | "readwrite" => m.readonly = Some(!bool_of(&k, v)?),
            "sharing" => {
                let s = need(v)?;
                if !matches!(s.as_str(), "shared" | "private" | "locked") {
                    return Err(format!("--mount: invalid sharing {s:?}"));
                }
                m.sharing = Some(s);
            }
            "mode" => m.mode = Some(num(&k, &need(v)?, 8)?),
            "uid" => m.uid = Some(num(&k, &need(v)?, 10)?),
            "gid" => m.gid = Some(num(&k, &need(v)?, 10)?),
            "required" => m.required = bool_of(&k, v)?,
            "size" => {
                let v = need(v)?;
                m.size =
                    Some(parse_bytes(&v).ok_or_else(|| format!("--mount: invalid size {v:?}"))?);
            }
            "env" => {}
            o => return Err(format!("--mount: unknown option {o:?}")),
        }
    }
    if m.target.is_none() && !matches!(m.typ, MountType::Secret | MountType::Ssh) {
        return Err("--mount: a target is required".into());
    }
    Ok(m)
}

/// `64m`, `1g`, `4096`: bytes (powers of 1024), as `--mount size=` and `--shm-size` take them.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (n, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    n.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse() {
        let m = parse_mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1")
            .unwrap();
        assert_eq!(m.typ, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!((m.mode, m.uid), (Some(0o700), Some(1)));
        let m = parse_mount("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!((m.typ, m.readonly), (MountType::Bind, Some(false)));
        let m = parse_mount("type=secret,id=tok,required").unwrap();
        assert!(m.required && m.target.is_none());
        assert_eq!(parse_mount("type=tmpfs,target=/t,size=64m").unwrap().size, Some(64 << 20));
        assert!(parse_mount("type=cache").is_err());
        assert!(parse_mount("type=nope,target=/x").is_err());
        assert!(parse_mount("target=/x,bogus=1").is_err());
    }
}
