//! Relative paths made absolute against the right directory: `build.context` (not URLs),
//! `build.additional_contexts`, bind sources starting with `.` or `~` (short and long volume
//! syntax), `env_file`, `label_file`, `extends.file`, and top-level configs/secrets `file:`.
//! `build.dockerfile` stays relative to the context, as compose prints it.

use std::path::{Component, Path, PathBuf};

use crate::tree::{Node, Value};

/// Maps one path as written to its rewritten form.
type Fix<'a> = &'a dyn Fn(&str) -> String;

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

/// Rewrites a string node with `fix` (keeps marks and tags).
fn abs_node(n: &mut Node, fix: Fix) {
    if let Value::String(s) = &mut n.value {
        *s = fix(s);
    }
}

/// Resolves relative paths of a whole file tree (services, configs, secrets) against `base`.
pub fn resolve_tree(root: &mut Node, base: &Path, home: Option<&str>) {
    let fix = |p: &str| absolute(base, p, home);
    let fix: Fix = &fix;
    let Some(m) = root.as_map_mut() else { return };
    if let Some((_, services)) = m.get_mut("services")
        && let Some(sm) = services.as_map_mut()
    {
        for (_, (_, svc)) in sm.iter_mut() {
            rewrite_service(svc, fix);
        }
    }
    for section in ["configs", "secrets"] {
        if let Some((_, sec)) = m.get_mut(section)
            && let Some(sm) = sec.as_map_mut()
        {
            for (_, (_, item)) in sm.iter_mut() {
                if let Some((_, f)) = item.as_map_mut().and_then(|im| im.get_mut("file")) {
                    abs_node(f, fix);
                }
            }
        }
    }
}

/// Resolves the relative paths of one service definition against `base`.
pub fn resolve_service(svc: &mut Node, base: &Path, home: Option<&str>) {
    rewrite_service(svc, &|p: &str| absolute(base, p, home));
}

/// Rewrites the relative paths of a service defined in directory `from` so they stay correct
/// when read from directory `to` (both absolute); absolute and `~` paths are kept.
pub fn rebase_service(svc: &mut Node, from: &Path, to: &Path) {
    rewrite_service(svc, &|p: &str| {
        if p.starts_with('~') || Path::new(p).is_absolute() {
            p.to_string()
        } else {
            let r = relative(&clean(&from.join(p)), to).to_string_lossy().into_owned();
            // Keep a leading `.` so a volume source still reads as a path, not a volume name.
            if r.starts_with('.') { r } else { format!("./{r}") }
        }
    });
}

/// `target` relative to `base` (both absolute and clean): `../x/y`, or `.` when equal.
pub fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// Applies `fix` to every relative-path attribute of a service.
fn rewrite_service(svc: &mut Node, fix: Fix) {
    let Some(m) = svc.as_map_mut() else { return };
    if let Some((_, build)) = m.get_mut("build") {
        match &mut build.value {
            Value::String(s) if !is_remote_context(s) => *s = fix(s),
            Value::Map(bm) => {
                if let Some((_, ctx)) = bm.get_mut("context")
                    && ctx.as_str().is_some_and(|s| !is_remote_context(s))
                {
                    abs_node(ctx, fix);
                }
                if let Some((_, ac)) = bm.get_mut("additional_contexts") {
                    resolve_additional_contexts(ac, fix);
                }
            }
            _ => {}
        }
    }
    if let Some((_, vols)) = m.get_mut("volumes")
        && let Value::Seq(items) = &mut vols.value
    {
        for v in items {
            resolve_volume(v, fix);
        }
    }
    for key in ["env_file", "label_file"] {
        if let Some((_, ef)) = m.get_mut(key) {
            resolve_file_list(ef, fix);
        }
    }
    if let Some((_, ext)) = m.get_mut("extends")
        && let Some((_, f)) = ext.as_map_mut().and_then(|em| em.get_mut("file"))
    {
        abs_node(f, fix);
    }
}

fn resolve_additional_contexts(ac: &mut Node, fix: Fix) {
    let fix = |s: &mut String| {
        if !is_remote_context(s) && !s.starts_with("docker-image:") && !s.starts_with("service:") {
            *s = fix(s);
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
fn resolve_file_list(n: &mut Node, fix: Fix) {
    match &mut n.value {
        Value::String(s) => *s = fix(s),
        Value::Seq(items) => {
            for it in items {
                match &mut it.value {
                    Value::String(s) => *s = fix(s),
                    Value::Map(m) => {
                        if let Some((_, p)) = m.get_mut("path") {
                            abs_node(p, fix);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn resolve_volume(v: &mut Node, fix: Fix) {
    match &mut v.value {
        Value::String(s) => {
            // `source:target[:mode]`; only sources that look like paths are binds.
            if let Some((src, rest)) = s.split_once(':')
                && is_bind_source(src)
                && !src.starts_with('/')
            {
                *s = format!("{}:{rest}", fix(src));
            }
        }
        Value::Map(m) => {
            let is_bind = m.get("type").and_then(|(_, t)| t.as_str()) == Some("bind");
            if is_bind
                && let Some((_, src)) = m.get_mut("source")
                // An empty source stays empty: the loader refuses it, as compose does.
                && src.as_str().is_some_and(|s| !s.is_empty() && !s.starts_with('/'))
            {
                abs_node(src, fix);
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
        assert_eq!(
            relative(Path::new("/a/commons/x"), Path::new("/a/main")),
            Path::new("../commons/x")
        );
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b")), Path::new("."));
    }
}
