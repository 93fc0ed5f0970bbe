//! `extends`: a service inherits another service's definition, from the same file or from
//! `file:`, recursively, with cycle detection. The base is merged under the extending service
//! with the file merge rules; paths of a base from another file are made relative to that file.
//! `depends_on` and `volumes_from` of the base are not inherited.

use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::loader::Ctx;
use crate::merge::{merge_service, strip_tags};
use crate::tree::{Mapping, Node, Value};

/// Resolves `extends` for every service of `root` (a file's tree loaded from `file`).
pub(crate) fn resolve(root: &mut Node, file: &Path, ctx: &mut Ctx) -> Result<(), LoadError> {
    let Some(services) = root.get("services").and_then(Node::as_map).cloned() else {
        return Ok(());
    };
    if !services.values().any(|(_, s)| s.get("extends").is_some()) {
        return Ok(());
    }
    let mut resolved = Vec::new();
    for (name, (_, svc)) in &services {
        if svc.get("extends").is_some() {
            let mut stack = Vec::new();
            let node = resolve_service(&services, file, name, &mut stack, ctx)?;
            resolved.push((name.clone(), node));
        }
    }
    if let Some(sm) =
        root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(|(_, s)| s.as_map_mut())
    {
        for (name, node) in resolved {
            if let Some(slot) = sm.get_mut(&name) {
                slot.1 = node;
            }
        }
    }
    Ok(())
}

/// The service `name` of `services` (from `file`) with its `extends` chain applied.
fn resolve_service(
    services: &Mapping,
    file: &Path,
    name: &str,
    stack: &mut Vec<(PathBuf, String)>,
    ctx: &mut Ctx,
) -> Result<Node, LoadError> {
    let Some((_, svc)) = services.get(name) else {
        return Err(LoadError::invalid(None, None, format!("service {name:?} not found")));
    };
    let mut svc = svc.clone();
    let Some(ext) = svc.as_map_mut().and_then(|m| m.shift_remove("extends")) else {
        return Ok(svc);
    };
    let (ext_mark, ext) = ext;
    let path = format!("services.{name}.extends");
    let here = (file.to_path_buf(), name.to_string());
    if stack.contains(&here) {
        let mut chain: Vec<String> = stack.iter().map(|(_, s)| s.clone()).collect();
        chain.push(name.to_string());
        return Err(LoadError::invalid(
            Some(ext_mark),
            Some(path),
            format!("circular extends reference: {}", chain.join(" -> ")),
        ));
    }
    let (base_name, base_file) = match &ext.value {
        Value::String(s) => (s.clone(), None),
        Value::Map(m) => {
            let service = match m.get("service").map(|(_, n)| &n.value) {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(LoadError::invalid(
                        Some(ext.mark.clone()),
                        Some(path),
                        "extends requires a \"service\" name",
                    ));
                }
            };
            let f = match m.get("file").map(|(_, n)| n) {
                None => None,
                Some(Node { value: Value::String(s), .. }) => Some(s.clone()),
                Some(other) => {
                    return Err(LoadError::invalid(
                        Some(other.mark.clone()),
                        Some(format!("{path}.file")),
                        format!("must be a string, found {}", other.a_type_name()),
                    ));
                }
            };
            (service, f)
        }
        _ => {
            return Err(LoadError::invalid(
                Some(ext.mark.clone()),
                Some(path),
                format!("must be a string or a mapping, found {}", ext.a_type_name()),
            ));
        }
    };
    stack.push(here);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = match base_file {
        None => {
            if !services.contains_key(&base_name) {
                stack.pop();
                return Err(LoadError::invalid(
                    Some(ext.mark.clone()),
                    Some(path),
                    format!("cannot extend service {name:?}: service {base_name:?} not found"),
                ));
            }
            resolve_service(services, file, &base_name, stack, ctx)?
        }
        Some(f) => {
            let other = crate::paths::clean(&dir.join(&f));
            let tree = ctx.read_tree(&other).map_err(|e| {
                if e.mark.is_none() {
                    LoadError::invalid(Some(ext.mark.clone()), Some(path.clone()), e.message)
                } else {
                    e
                }
            })?;
            let other_services =
                tree.get("services").and_then(Node::as_map).cloned().unwrap_or_default();
            if !other_services.contains_key(&base_name) {
                stack.pop();
                return Err(LoadError::invalid(
                    Some(ext.mark.clone()),
                    Some(path),
                    format!(
                        "cannot extend service {name:?}: service {base_name:?} not found in {}",
                        other.display()
                    ),
                ));
            }
            let mut base = resolve_service(&other_services, &other, &base_name, stack, ctx)?;
            strip_tags(&mut base);
            let other_dir = other.parent().map(Path::to_path_buf).unwrap_or_default();
            if ctx.resolve_paths {
                crate::paths::resolve_service(&mut base, &other_dir, ctx.home.as_deref());
            } else {
                // Keep paths relative, but relative to this file's directory (as compose prints).
                crate::paths::rebase_service(&mut base, &other_dir, &dir);
            }
            base
        }
    };
    stack.pop();
    // Dependencies on other services are never inherited (compose-spec "extends" restrictions).
    let mut base = base;
    if let Some(m) = base.as_map_mut() {
        m.shift_remove("depends_on");
        m.shift_remove("volumes_from");
    }
    merge_service(base, svc, name)
}
