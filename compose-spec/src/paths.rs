//! Relative paths made absolute against the right directory: `build.context` (not URLs),
//! `build.additional_contexts`, bind sources starting with `.` or `~` (short and long volume
//! syntax), `env_file`, `label_file`, `extends.file`, and top-level configs/secrets `file:`.
//! `build.dockerfile` stays relative to the context, as compose prints it.

use std::path::{Component, Path, PathBuf};

use crate::tree::{Node, Value};

/// Lexically normalises `p` (drops `.`, resolves `..`) without touching the file system.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// `p` made absolute against `base` (and `~` expanded with `home`), normalised.
pub fn absolute(base: &Path, p: &str, home: Option<&str>) -> String {
    let expanded = expand_home(p, home);
    let path = Path::new(&expanded);
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    clean(&joined).to_string_lossy().into_owned()
}

fn expand_home(p: &str, home: Option<&str>) -> String {
    match (p, home) {
        ("~", Some(h)) => h.to_string(),
        (_, Some(h)) if p.starts_with("~/") => format!("{h}{}", &p[1..]),
        _ => p.to_string(),
    }
}

/// Whether a build context is a remote reference rather than a directory.
pub fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn is_bind_source(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('~') || s.starts_with('/')
}

/// Makes a string node absolute (keeps marks and tags).
fn abs_node(n: &mut Node, base: &Path, home: Option<&str>) {
    if let Value::String(s) = &mut n.value {
        *s = absolute(base, s, home);
    }
}

/// Resolves relative paths of a whole file tree (services, configs, secrets) against `base`.
pub fn resolve_tree(root: &mut Node, base: &Path, home: Option<&str>) {
    let Some(m) = root.as_map_mut() else { return };
    if let Some((_, services)) = m.get_mut("services")
        && let Some(sm) = services.as_map_mut()
    {
        for (_, (_, svc)) in sm.iter_mut() {
            resolve_service(svc, base, home);
        }
    }
    for section in ["configs", "secrets"] {
        if let Some((_, sec)) = m.get_mut(section)
            && let Some(sm) = sec.as_map_mut()
        {
            for (_, (_, item)) in sm.iter_mut() {
                if let Some((_, f)) = item.as_map_mut().and_then(|im| im.get_mut("file")) {
                    abs_node(f, base, home);
                }
            }
        }
    }
}

/// Resolves the relative paths of one service definition against `base`.
pub fn resolve_service(svc: &mut Node, base: &Path, home: Option<&str>) {
    let Some(m) = svc.as_map_mut() else { return };
    if let Some((_, build)) = m.get_mut("build") {
        match &mut build.value {
            Value::String(s) if !is_remote_context(s) => *s = absolute(base, s, home),
            Value::Map(bm) => {
                if let Some((_, ctx)) = bm.get_mut("context")
                    && ctx.as_str().is_some_and(|s| !is_remote_context(s))
                {
                    abs_node(ctx, base, home);
                }
                if let Some((_, ac)) = bm.get_mut("additional_contexts") {
                    resolve_additional_contexts(ac, base, home);
                }
            }
            _ => {}
        }
    }
    if let Some((_, vols)) = m.get_mut("volumes")
        && let Value::Seq(items) = &mut vols.value
    {
        for v in items {
            resolve_volume(v, base, home);
        }
    }
    for key in ["env_file", "label_file"] {
        if let Some((_, ef)) = m.get_mut(key) {
            resolve_file_list(ef, base, home);
        }
    }
    if let Some((_, ext)) = m.get_mut("extends")
        && let Some((_, f)) = ext.as_map_mut().and_then(|em| em.get_mut("file"))
    {
        abs_node(f, base, home);
    }
}

fn resolve_additional_contexts(ac: &mut Node, base: &Path, home: Option<&str>) {
    let fix = |s: &mut String| {
        if !is_remote_context(s) && !s.starts_with("docker-image:") && !s.starts_with("service:") {
            *s = absolute(base, s, home);
        }
    };
    match &mut ac.value {
        Value::Map(m) => {
            for (_, (_, v)) in m.iter_mut() {
                if let Value::String(s) = &mut v.value {
                    fix(s);
                }
            }
        }
        Value::Seq(items) => {
            for it in items {
                if let Value::String(s) = &mut it.value
                    && let Some((k, v)) = s.split_once('=')
                {
                    let mut v = v.to_string();
                    fix(&mut v);
                    *s = format!("{k}={v}");
                }
            }
        }
        _ => {}
    }
}

/// `env_file` / `label_file`: a string, a list of strings, or long `{path, required}` items.
fn resolve_file_list(n: &mut Node, base: &Path, home: Option<&str>) {
    match &mut n.value {
        Value::String(s) => *s = absolute(base, s, home),
        Value::Seq(items) => {
            for it in items {
                match &mut it.value {
                    Value::String(s) => *s = absolute(base, s, home),
                    Value::Map(m) => {
                        if let Some((_, p)) = m.get_mut("path") {
                            abs_node(p, base, home);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn resolve_volume(v: &mut Node, base: &Path, home: Option<&str>) {
    match &mut v.value {
        Value::String(s) => {
            // `source:target[:mode]`; only sources that look like paths are binds.
            if let Some((src, rest)) = s.split_once(':')
                && is_bind_source(src)
                && !src.starts_with('/')
            {
                *s = format!("{}:{rest}", absolute(base, src, home));
            }
        }
        Value::Map(m) => {
            let is_bind = m.get("type").and_then(|(_, t)| t.as_str()) == Some("bind");
            if is_bind
                && let Some((_, src)) = m.get_mut("source")
                && src.as_str().is_some_and(|s| !s.starts_with('/'))
            {
                abs_node(src, base, home);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths() {
        let b = Path::new("/p/q");
        assert_eq!(absolute(b, "./a/../b", None), "/p/q/b");
        assert_eq!(absolute(b, "../x", None), "/p/x");
        assert_eq!(absolute(b, "/abs", None), "/abs");
        assert_eq!(absolute(b, "~/d", Some("/home/u")), "/home/u/d");
        assert_eq!(absolute(b, ".", None), "/p/q");
    }
}
