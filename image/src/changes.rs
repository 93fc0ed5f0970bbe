//! `docker import --change` instructions (Dockerfile syntax) applied to an image's run config.

use serde_json::{Map, Value, json};

use super::ImageError;

/// Splits words like a Dockerfile does for ENV/LABEL: whitespace separates, quotes group
/// (and are removed), a backslash escapes the next character.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// JSON-array form (`["a","b"]`) or, failing that, the shell form wrapped in `/bin/sh -c`.
fn exec_or_shell(rest: &str) -> Result<Value, String> {
    let t = rest.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return Ok(json!(v));
    }
    Ok(json!(["/bin/sh", "-c", t]))
}

fn key_values(rest: &str) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest)?;
    if ws.is_empty() {
        return Err("needs at least one argument".into());
    }
    if !ws[0].contains('=') {
        // Legacy `ENV key value with spaces`.
        let mut parts = rest.trim().splitn(2, char::is_whitespace);
        let k = parts.next().unwrap_or_default().to_string();
        let v = parts.next().map(str::trim).unwrap_or_default();
        let v = words(v)?.join(" ");
        return Ok(vec![(k, v)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("'{w}' is not KEY=VALUE")),
        })
        .collect()
}

fn set_map_keys(cfg: &mut Map<String, Value>, field: &str, keys: Vec<String>) {
    let entry = cfg.entry(field).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    if let Some(m) = entry.as_object_mut() {
        for k in keys {
            m.insert(k, json!({}));
        }
    }
}

/// Applies each change (`CMD`, `ENTRYPOINT`, `ENV`, `EXPOSE`, `LABEL`, `USER`, `VOLUME`,
/// `WORKDIR`, `STOPSIGNAL`) to `cfg`, the `config` object of a docker image config.
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<(), ImageError> {
    for change in changes {
        let bad = |reason: String| ImageError::InvalidChange(change.clone(), reason);
        let t = change.trim();
        let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let rest = rest.trim();
        match kw.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), exec_or_shell(rest).map_err(bad)?);
            }
            "ENTRYPOINT" => {
                cfg.insert("Entrypoint".into(), exec_or_shell(rest).map_err(bad)?);
            }
            "ENV" => {
                let kvs = key_values(rest).map_err(bad)?;
                let mut env: Vec<String> = cfg
                    .get("Env")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                for (k, v) in kvs {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                cfg.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let kvs = key_values(rest).map_err(bad)?;
                let entry = cfg.entry("Labels").or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                if let Some(m) = entry.as_object_mut() {
                    for (k, v) in kvs {
                        m.insert(k, json!(v));
                    }
                }
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for p in words(rest).map_err(bad)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let ok_num = num.split('-').all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                    if !ok_num || !["tcp", "udp", "sctp"].contains(&proto) {
                        return Err(bad(format!("invalid port '{p}'")));
                    }
                    ports.push(format!("{num}/{proto}"));
                }
                if ports.is_empty() {
                    return Err(bad("needs at least one port".into()));
                }
                set_map_keys(cfg, "ExposedPorts", ports);
            }
            "VOLUME" => {
                let vols = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(v) => v,
                    Err(_) => words(rest).map_err(bad)?,
                };
                if vols.is_empty() {
                    return Err(bad("needs at least one path".into()));
                }
                set_map_keys(cfg, "Volumes", vols);
            }
            "USER" if !rest.is_empty() => {
                cfg.insert("User".into(), json!(rest));
            }
            "WORKDIR" if !rest.is_empty() => {
                cfg.insert("WorkingDir".into(), json!(rest));
            }
            "STOPSIGNAL" if !rest.is_empty() => {
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" => return Err(bad("needs an argument".into())),
            other => return Err(bad(format!("{other} is not supported by import"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply() {
        let mut cfg = Map::new();
        let changes: Vec<String> = [
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /bin/run me",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "EXPOSE 80 53/udp",
            "LABEL x=y",
            "VOLUME /data",
            "WORKDIR /srv",
            "USER app",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut cfg, &changes).unwrap();
        assert_eq!(cfg["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(cfg["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run me"]));
        assert_eq!(cfg["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(cfg["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(cfg["Labels"], json!({"x": "y"}));
        assert_eq!(cfg["Volumes"], json!({"/data": {}}));
        assert_eq!(cfg["WorkingDir"], json!("/srv"));
        assert_eq!(cfg["User"], json!("app"));
        assert!(apply_changes(&mut cfg, &["RUN x".to_string()]).is_err());
        assert!(apply_changes(&mut cfg, &["EXPOSE abc".to_string()]).is_err());
    }
}
