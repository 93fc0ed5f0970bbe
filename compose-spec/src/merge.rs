//! Merging compose files (and extends, multi-document YAML) with the compose-spec merge rules,
//! as compose-go applies them: mappings merge recursively, sequences append, scalars are
//! replaced; `command`/`entrypoint`/`healthcheck.test` are replaced; key/value attributes
//! (`environment`, `labels`, `sysctls`, ...) merge by key; `ports`, `volumes`, `secrets`,
//! `configs`, `devices` merge by their unique key; `!reset` removes and `!override` replaces.

use indexmap::IndexMap;

use crate::error::LoadError;
use crate::tree::{Mapping, Mark, Node, Value};

/// Tag that removes the value it replaces.
pub const RESET: &str = "!reset";
/// Tag that replaces instead of merging.
pub const OVERRIDE: &str = "!override";

/// Merges `over` into `base`; `path` is the dotted key path of both (empty at the root).
/// Tags of `over` are honoured; call [`strip_tags`] on the result when merging is done.
pub fn merge_nodes(base: Node, over: Node, path: &str) -> Result<Node, LoadError> {
    let mut segs: Vec<String> = split_path(path);
    merge_at(base, over, &mut segs)
}

/// Merges service definitions (`services.<name>`), e.g. for extends.
pub fn merge_service(base: Node, over: Node, name: &str) -> Result<Node, LoadError> {
    let mut segs = vec!["services".to_string(), name.to_string()];
    merge_at(base, over, &mut segs)
}

/// Removes entries tagged `!reset` and clears `!override` tags, recursively.
pub fn strip_tags(node: &mut Node) {
    if node.tag.as_deref() == Some(OVERRIDE) || node.tag.as_deref() == Some(RESET) {
        node.tag = None;
    }
    match &mut node.value {
        Value::Map(m) => {
            m.retain(|_, (_, v)| v.tag.as_deref() != Some(RESET));
            for (_, (_, v)) in m.iter_mut() {
                strip_tags(v);
            }
        }
        Value::Seq(s) => {
            s.retain(|v| v.tag.as_deref() != Some(RESET));
            for v in s.iter_mut() {
                strip_tags(v);
            }
        }
        _ => {}
    }
}

fn split_path(path: &str) -> Vec<String> {
    if path.is_empty() { Vec::new() } else { path.split('.').map(str::to_string).collect() }
}

fn render(segs: &[String]) -> String {
    segs.join(".")
}

/// `pattern` is dotted with `*` for any segment.
fn matches(segs: &[String], pattern: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    pat.len() == segs.len() && pat.iter().zip(segs).all(|(p, s)| *p == "*" || p == s)
}

fn any_match(segs: &[String], patterns: &[&str]) -> bool {
    patterns.iter().any(|p| matches(segs, p))
}

const REPLACED: &[&str] =
    &["services.*.command", "services.*.entrypoint", "services.*.healthcheck.test"];

const KEY_VALUE: &[&str] = &[
    "services.*.environment",
    "services.*.labels",
    "services.*.annotations",
    "services.*.sysctls",
    "services.*.build.args",
    "services.*.build.labels",
    "services.*.build.additional_contexts",
    "services.*.deploy.labels",
    "services.*.volumes.*.volume.labels",
    "networks.*.labels",
    "volumes.*.labels",
    "networks.*.driver_opts",
    "volumes.*.driver_opts",
];

const APPEND_UNIQUE: &[&str] = &[
    "services.*.dns",
    "services.*.dns_opt",
    "services.*.dns_search",
    "services.*.tmpfs",
    "services.*.cap_add",
    "services.*.cap_drop",
    "services.*.profiles",
    "services.*.expose",
    "services.*.external_links",
    "services.*.security_opt",
    "services.*.group_add",
    "services.*.label_file",
    "services.*.build.tags",
    "services.*.build.platforms",
    "services.*.build.cache_from",
    "services.*.build.cache_to",
    "services.*.networks.*.aliases",
    "services.*.networks.*.link_local_ips",
];

fn merge_at(base: Node, over: Node, segs: &mut Vec<String>) -> Result<Node, LoadError> {
    if over.tag.as_deref() == Some(OVERRIDE)
        || base.tag.as_deref() == Some(RESET)
        || any_match(segs, REPLACED)
    {
        return Ok(over);
    }
    // An explicit null (`key:`) in the later file leaves the earlier value alone.
    if matches!(over.value, Value::Null) && over.tag.is_none() {
        return Ok(base);
    }
    if matches!(base.value, Value::Null) {
        return Ok(over);
    }
    if segs.last().is_some_and(|s| s.starts_with("x-")) {
        return Ok(over);
    }
    if any_match(segs, KEY_VALUE) {
        return merge_key_value(base, over, segs);
    }
    if any_match(segs, APPEND_UNIQUE) {
        return Ok(append_unique(base, over, |n| Some(scalar_text(n))));
    }
    if matches(segs, "services.*.links") {
        // compose keys a link by the text before `=`: a later `db=alias` replaces `db`.
        return Ok(replace_by_key(base, over, |n| {
            let t = scalar_text(n);
            Some(t.split_once('=').map_or(t.clone(), |(k, _)| k.to_string()))
        }));
    }
    if matches(segs, "services.*.ports") {
        return Ok(append_unique(base, over, port_key));
    }
    if matches(segs, "services.*.volumes") {
        return merge_by_key(base, over, segs, volume_key);
    }
    if matches(segs, "services.*.secrets") {
        return merge_by_key(base, over, segs, |n| mount_key(n, "/run/secrets/"));
    }
    if matches(segs, "services.*.configs") {
        return merge_by_key(base, over, segs, |n| mount_key(n, "/"));
    }
    if matches(segs, "services.*.devices") {
        return merge_by_key(base, over, segs, device_key);
    }
    if matches(segs, "services.*.env_file") {
        return Ok(append_unique(base, over, env_file_key));
    }
    if matches(segs, "services.*.extra_hosts") || matches(segs, "services.*.build.extra_hosts") {
        return merge_extra_hosts(base, over);
    }
    if matches(segs, "networks.*.ipam.config") {
        return merge_by_key(base, over, segs, |n| {
            n.get("subnet").map(scalar_text).or_else(|| Some(scalar_text(n)))
        });
    }
    if matches(segs, "services.*.depends_on") {
        let b = list_to_map(base, Some(depends_on_default));
        let o = list_to_map(over, Some(depends_on_default));
        return merge_plain(b, o, segs);
    }
    if matches(segs, "services.*.networks") || matches(segs, "services.*.models") {
        // Short (list) and long (mapping) syntax merge into one mapping.
        let b = list_to_map(base, None);
        let o = list_to_map(over, None);
        return merge_plain(b, o, segs);
    }
    if matches(segs, "services.*.build") {
        return merge_plain(string_to_map(base, "context"), string_to_map(over, "context"), segs);
    }
    if matches(segs, "services.*.logging") {
        let bd = base.get("driver").map(scalar_text);
        let od = over.get("driver").map(scalar_text);
        if bd.is_some() && od.is_some() && bd != od {
            return Ok(over);
        }
    }
    if matches(segs, "services.*.ulimits.*") && (base.as_map().is_none() || over.as_map().is_none())
    {
        return Ok(over);
    }
    merge_plain(base, over, segs)
}

/// The default rule: mappings recursively, sequences appended, scalars replaced.
fn merge_plain(base: Node, over: Node, segs: &mut Vec<String>) -> Result<Node, LoadError> {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, (km, v)) in o {
                if v.tag.as_deref() == Some(RESET) {
                    // Keep the tagged node as a tombstone so later merges (extends, then the
                    // next file) also drop the key; strip_tags removes it at the end.
                    b.shift_remove(&k);
                    b.insert(k, (km, v));
                    continue;
                }
                let merged = match b.get_mut(&k) {
                    Some((_, old)) => {
                        let old = std::mem::replace(old, Node::new(Value::Null, km.clone()));
                        segs.push(k.clone());
                        let r = merge_at(old, v, segs);
                        segs.pop();
                        r?
                    }
                    None => v,
                };
                match b.get_mut(&k) {
                    Some(slot) => slot.1 = merged,
                    None => {
                        b.insert(k, (km, merged));
                    }
                }
            }
            Ok(Node { value: Value::Map(b), mark: base.mark, tag: base.tag })
        }
        (Value::Seq(mut b), Value::Seq(o)) => {
            b.extend(o);
            Ok(Node { value: Value::Seq(b), mark: base.mark, tag: base.tag })
        }
        (Value::Map(_), ov) => Err(mismatch(segs, &over.mark, "mapping", &ov)),
        (Value::Seq(mut b), ov @ (Value::String(_) | Value::Int(_) | Value::Float(_))) => {
            // A scalar where a list was: treat it as a one-item list (e.g. `dns: 8.8.8.8`).
            b.push(Node { value: ov, mark: over.mark, tag: over.tag });
            Ok(Node { value: Value::Seq(b), mark: base.mark, tag: base.tag })
        }
        (Value::Seq(_), ov) => Err(mismatch(segs, &over.mark, "sequence", &ov)),
        (_, ov) => Ok(Node { value: ov, mark: over.mark, tag: over.tag }),
    }
}

fn mismatch(segs: &[String], mark: &Mark, want: &str, got: &Value) -> LoadError {
    let got = Node::new(got.clone(), mark.clone());
    LoadError::invalid(
        Some(mark.clone()),
        Some(render(segs)),
        format!("cannot override a {want} with {}", got.a_type_name()),
    )
}

/// Text of a scalar (or a debug form of anything else), for unique keys.
fn scalar_text(n: &Node) -> String {
    match &n.value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}

fn as_list(n: Node) -> (Vec<Node>, Mark, Option<String>) {
    match n.value {
        Value::Seq(s) => (s, n.mark, n.tag),
        Value::Null => (Vec::new(), n.mark, n.tag),
        v => {
            let item = Node::new(v, n.mark.clone());
            (vec![item], n.mark, n.tag)
        }
    }
}

/// Appends the items of `over` whose key is not in `base` yet.
fn append_unique(base: Node, over: Node, key: impl Fn(&Node) -> Option<String>) -> Node {
    let (mut b, mark, tag) = as_list(base);
    let (o, _, _) = as_list(over);
    for item in o {
        let k = key(&item);
        let dup = k.is_some() && b.iter().any(|e| key(e) == k);
        if !dup {
            b.push(item);
        }
    }
    Node { value: Value::Seq(b), mark, tag }
}

/// Items sharing a key are replaced in place by the later one, new ones appended.
fn replace_by_key(base: Node, over: Node, key: impl Fn(&Node) -> Option<String>) -> Node {
    let (mut b, mark, tag) = as_list(base);
    let (o, _, _) = as_list(over);
    for item in o {
        let k = key(&item);
        match b.iter().position(|e| k.is_some() && key(e) == k) {
            Some(i) => b[i] = item,
            None => b.push(item),
        }
    }
    Node { value: Value::Seq(b), mark, tag }
}

/// Items sharing a key are merged (later wins), new ones appended.
fn merge_by_key(
    base: Node,
    over: Node,
    segs: &mut Vec<String>,
    key: impl Fn(&Node) -> Option<String>,
) -> Result<Node, LoadError> {
    let (mut b, mark, tag) = as_list(base);
    let (o, _, _) = as_list(over);
    for item in o {
        let k = key(&item);
        let pos = if k.is_some() { b.iter().position(|e| key(e) == k) } else { None };
        match pos {
            Some(i) => {
                let old = std::mem::replace(&mut b[i], Node::new(Value::Null, item.mark.clone()));
                b[i] = if old.as_map().is_some() && item.as_map().is_some() {
                    segs.push("[]".to_string());
                    let r = merge_plain(old, item, segs);
                    segs.pop();
                    r?
                } else {
                    item
                };
            }
            None => b.push(item),
        }
    }
    Ok(Node { value: Value::Seq(b), mark, tag })
}

fn port_key(n: &Node) -> Option<String> {
    match &n.value {
        Value::Map(_) => {
            let f = |k: &str| n.get(k).map(scalar_text).unwrap_or_default();
            let proto = n.get("protocol").map(scalar_text).unwrap_or_else(|| "tcp".into());
            Some(format!("{}:{}:{}/{}", f("host_ip"), f("published"), f("target"), proto))
        }
        _ => Some(scalar_text(n)),
    }
}

fn volume_key(n: &Node) -> Option<String> {
    match &n.value {
        Value::Map(_) => n.get("target").map(scalar_text),
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(match parts.len() {
                1 => parts[0].to_string(),
                _ => parts[1].to_string(),
            })
        }
        _ => None,
    }
}

fn mount_key(n: &Node, default_dir: &str) -> Option<String> {
    match &n.value {
        Value::Map(_) => match n.get("target").map(scalar_text) {
            Some(t) if t.starts_with('/') => Some(t),
            Some(t) => Some(format!("{default_dir}{t}")),
            None => n.get("source").map(|s| format!("{default_dir}{}", scalar_text(s))),
        },
        Value::String(s) => Some(format!("{default_dir}{s}")),
        _ => None,
    }
}

fn device_key(n: &Node) -> Option<String> {
    match &n.value {
        Value::Map(_) => n.get("target").map(scalar_text),
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(parts.get(1).unwrap_or(&parts[0]).to_string())
        }
        _ => None,
    }
}

fn env_file_key(n: &Node) -> Option<String> {
    match &n.value {
        Value::Map(_) => n.get("path").map(scalar_text),
        _ => Some(scalar_text(n)),
    }
}

/// `environment`-like attributes: both sides as mappings, later keys win.
fn merge_key_value(base: Node, over: Node, segs: &[String]) -> Result<Node, LoadError> {
    let mark = base.mark.clone();
    let tag = base.tag.clone();
    let mut b = key_value_map(base, segs)?;
    let o = key_value_map(over, segs)?;
    for (k, (km, v)) in o {
        if v.tag.as_deref() == Some(RESET) {
            b.shift_remove(&k);
            b.insert(k, (km, v));
            continue;
        }
        match b.get_mut(&k) {
            Some(slot) => slot.1 = v,
            None => {
                b.insert(k, (km, v));
            }
        }
    }
    Ok(Node { value: Value::Map(b), mark, tag })
}

/// `["A=1", "B"]` or `{A: 1, B: null}` as a mapping (`B` without `=` maps to null).
pub fn key_value_map(n: Node, segs: &[String]) -> Result<Mapping, LoadError> {
    match n.value {
        Value::Map(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        Value::Seq(items) => {
            let mut m = Mapping::new();
            for it in items {
                let text = match &it.value {
                    Value::String(s) => s.clone(),
                    Value::Int(_) | Value::Float(_) | Value::Bool(_) => scalar_text(&it),
                    _ => {
                        return Err(LoadError::invalid(
                            Some(it.mark.clone()),
                            Some(render(segs)),
                            format!("expected \"KEY=VALUE\" strings, found {}", it.a_type_name()),
                        ));
                    }
                };
                let (k, v) = match text.split_once('=') {
                    Some((k, v)) => (k.to_string(), Value::String(v.to_string())),
                    None => (text, Value::Null),
                };
                m.insert(k, (it.mark.clone(), Node { value: v, mark: it.mark, tag: it.tag }));
            }
            Ok(m)
        }
        other => {
            let got = Node::new(other, n.mark.clone());
            Err(LoadError::invalid(
                Some(n.mark),
                Some(render(segs)),
                format!(
                    "expected a mapping or a list of \"KEY=VALUE\", found {}",
                    got.a_type_name()
                ),
            ))
        }
    }
}

fn depends_on_default(mark: &Mark) -> Node {
    let mut m = Mapping::new();
    m.insert(
        "condition".into(),
        (mark.clone(), Node::new(Value::String("service_started".into()), mark.clone())),
    );
    m.insert("required".into(), (mark.clone(), Node::new(Value::Bool(true), mark.clone())));
    Node::new(Value::Map(m), mark.clone())
}

/// A list of names as a mapping name -> default (or null).
fn list_to_map(n: Node, default: Option<fn(&Mark) -> Node>) -> Node {
    match n.value {
        Value::Seq(items) => {
            let mut m: IndexMap<String, (Mark, Node)> = IndexMap::new();
            for it in items {
                let v = match default {
                    Some(f) => f(&it.mark),
                    None => Node::new(Value::Null, it.mark.clone()),
                };
                m.insert(scalar_text(&it), (it.mark, v));
            }
            Node { value: Value::Map(m), mark: n.mark, tag: n.tag }
        }
        v => Node { value: v, mark: n.mark, tag: n.tag },
    }
}

fn string_to_map(n: Node, key: &str) -> Node {
    match n.value {
        Value::String(s) => {
            let mut m = Mapping::new();
            m.insert(key.into(), (n.mark.clone(), Node::new(Value::String(s), n.mark.clone())));
            Node { value: Value::Map(m), mark: n.mark, tag: n.tag }
        }
        v => Node { value: v, mark: n.mark, tag: n.tag },
    }
}

fn merge_extra_hosts(base: Node, over: Node) -> Result<Node, LoadError> {
    if base.as_map().is_some() && over.as_map().is_some() {
        let mut segs = Vec::new();
        return merge_plain(base, over, &mut segs);
    }
    let to_list = |n: Node| -> Node {
        match n.value {
            Value::Map(m) => {
                let items = m
                    .into_iter()
                    .map(|(k, (km, v))| {
                        Node::new(Value::String(format!("{k}={}", scalar_text(&v))), km)
                    })
                    .collect();
                Node { value: Value::Seq(items), mark: n.mark, tag: n.tag }
            }
            v => Node { value: v, mark: n.mark, tag: n.tag },
        }
    };
    Ok(append_unique(to_list(base), to_list(over), |n| Some(scalar_text(n))))
}

/// Within each service, entries of `ports`, `volumes`, `secrets`, `configs` and `devices` that
/// share a unique key are collapsed (the later one wins, at the earlier position), as compose
/// does after loading each file.
pub fn enforce_unique(root: &mut Node) {
    let Some(services) =
        root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(|(_, s)| s.as_map_mut())
    else {
        return;
    };
    for (_, (_, svc)) in services.iter_mut() {
        let Some(m) = svc.as_map_mut() else { continue };
        type KeyFn = fn(&Node) -> Option<String>;
        let rules: [(&str, KeyFn); 5] = [
            ("ports", port_key),
            ("volumes", volume_key),
            ("secrets", |n| mount_key(n, "/run/secrets/")),
            ("configs", |n| mount_key(n, "/")),
            ("devices", device_key),
        ];
        for (attr, key) in rules {
            if let Some((_, Node { value: Value::Seq(items), .. })) = m.get_mut(attr) {
                let old = std::mem::take(items);
                let mut out: Vec<Node> = Vec::with_capacity(old.len());
                for it in old {
                    let k = key(&it);
                    match k
                        .as_ref()
                        .and_then(|k| out.iter().position(|e| key(e).as_ref() == Some(k)))
                    {
                        Some(i) => out[i] = it,
                        None => out.push(it),
                    }
                }
                *items = out;
            }
        }
    }
}
