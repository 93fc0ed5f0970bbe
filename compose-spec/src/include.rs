//! `include`: other compose files loaded as their own sub-projects (own project directory and
//! env file, relative paths resolved against it) whose services, networks, volumes, configs,
//! secrets and models are added to the including file; a name defined differently on both
//! sides is an error.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::discovery::Source;
use crate::error::LoadError;
use crate::loader::Ctx;
use crate::paths::clean;
use crate::tree::{Mark, Node, Value};

/// Sections imported from included files.
const SECTIONS: [&str; 6] = ["services", "networks", "volumes", "configs", "secrets", "models"];

/// One `include` entry, paths absolute.
struct Include {
    paths: Vec<PathBuf>,
    project_dir: PathBuf,
    env_files: Vec<PathBuf>,
    mark: Mark,
}

/// Loads the `include` entries of `root` (a file in `dir`) and adds their resources.
/// `stack` holds the files being loaded, to detect include cycles.
pub(crate) fn resolve(
    root: &mut Node,
    dir: &Path,
    ctx: &mut Ctx,
    stack: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    let Some((_, inc)) = root.as_map_mut().and_then(|m| m.shift_remove("include")) else {
        return Ok(());
    };
    let entries = parse_entries(&inc, dir)?;
    for (i, e) in entries.into_iter().enumerate() {
        let path = format!("include[{i}]");
        let imported = load_included(&e, ctx, stack, &path)?;
        import(root, imported, &e, &path)?;
    }
    Ok(())
}

fn parse_entries(inc: &Node, dir: &Path) -> Result<Vec<Include>, LoadError> {
    let items: Vec<&Node> = match &inc.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => {
            return Err(LoadError::invalid(
                Some(inc.mark.clone()),
                Some("include".into()),
                format!("must be a list, found {}", inc.a_type_name()),
            ));
        }
    };
    let mut out = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        let path = format!("include[{i}]");
        let bad = |n: &Node, what: &str| {
            LoadError::invalid(
                Some(n.mark.clone()),
                Some(path.clone()),
                format!("{what}, found {}", n.a_type_name()),
            )
        };
        let strings = |n: &Node, what: &str| -> Result<Vec<String>, LoadError> {
            match &n.value {
                Value::String(s) => Ok(vec![s.clone()]),
                Value::Seq(v) => v
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(|| bad(x, what)))
                    .collect(),
                _ => Err(bad(n, what)),
            }
        };
        let (paths, project_dir, env_files) = match &it.value {
            Value::String(s) => (vec![s.clone()], None, Vec::new()),
            Value::Map(_) => {
                let p = it.get("path").ok_or_else(|| {
                    LoadError::invalid(
                        Some(it.mark.clone()),
                        Some(path.clone()),
                        "missing \"path\"",
                    )
                })?;
                let paths = strings(p, "path must be a string or a list of strings")?;
                let pd = match it.get("project_directory") {
                    Some(n) => Some(
                        n.as_str()
                            .ok_or_else(|| bad(n, "project_directory must be a string"))?
                            .to_string(),
                    ),
                    None => None,
                };
                let ef = match it.get("env_file") {
                    Some(n) => strings(n, "env_file must be a string or a list of strings")?,
                    None => Vec::new(),
                };
                (paths, pd, ef)
            }
            _ => return Err(bad(it, "an include entry must be a string or a mapping")),
        };
        if paths.is_empty() {
            return Err(LoadError::invalid(Some(it.mark.clone()), Some(path), "empty \"path\""));
        }
        let paths: Vec<PathBuf> = paths.iter().map(|p| clean(&dir.join(p))).collect();
        let project_dir = match project_dir {
            Some(pd) => clean(&dir.join(pd)),
            None => paths[0].parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let env_files = env_files.iter().map(|p| clean(&dir.join(p))).collect();
        out.push(Include { paths, project_dir, env_files, mark: it.mark.clone() });
    }
    Ok(out)
}

fn load_included(
    e: &Include,
    ctx: &mut Ctx,
    stack: &mut Vec<PathBuf>,
    path: &str,
) -> Result<Node, LoadError> {
    for p in &e.paths {
        if stack.contains(p) {
            return Err(LoadError::invalid(
                Some(e.mark.clone()),
                Some(path.to_string()),
                format!("include cycle: {} is already being loaded", p.display()),
            ));
        }
        if !p.is_file() {
            return Err(LoadError::invalid(
                Some(e.mark.clone()),
                Some(path.to_string()),
                format!("cannot read included file {}: no such file or directory", p.display()),
            ));
        }
    }
    // The sub-project's variables: its env files (or its .env), under the parent's environment.
    let env_files = if e.env_files.is_empty() {
        let dflt = e.project_dir.join(".env");
        if dflt.is_file() { vec![dflt] } else { Vec::new() }
    } else {
        e.env_files.clone()
    };
    let mut env: IndexMap<String, String> = IndexMap::new();
    for f in &env_files {
        let lookup = |k: &str| ctx.env.get(k).cloned().or_else(|| env.get(k).cloned());
        let vars = crate::dotenv::read_file(f, &lookup).map_err(|err| {
            if err.mark.is_none() {
                LoadError::invalid(Some(e.mark.clone()), Some(path.to_string()), err.message)
            } else {
                err
            }
        })?;
        env.extend(vars);
    }
    for (k, v) in &ctx.env {
        env.insert(k.clone(), v.clone());
    }
    let saved_env = std::mem::replace(&mut ctx.env, env);
    let saved_resolve = ctx.resolve_paths;
    // Included files always get absolute paths: their directory means nothing to the includer.
    ctx.resolve_paths = true;
    let sources: Vec<Source> = e.paths.iter().cloned().map(Source::File).collect();
    let result = ctx.load_files(&sources, &e.project_dir, stack);
    ctx.env = saved_env;
    ctx.resolve_paths = saved_resolve;
    let mut tree = result?;
    crate::paths::resolve_tree(&mut tree, &e.project_dir, ctx.home.as_deref());
    Ok(tree)
}

fn import(root: &mut Node, imported: Node, e: &Include, path: &str) -> Result<(), LoadError> {
    let Value::Map(im) = imported.value else { return Ok(()) };
    let Some(rm) = root.as_map_mut() else { return Ok(()) };
    for (section, (skm, snode)) in im {
        if !SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let Value::Map(items) = snode.value else { continue };
        let entry = rm.entry(section.clone()).or_insert_with(|| {
            (skm.clone(), Node::new(Value::Map(Default::default()), skm.clone()))
        });
        if matches!(entry.1.value, Value::Null) {
            entry.1.value = Value::Map(Default::default());
        }
        let Some(target) = entry.1.as_map_mut() else { continue };
        for (name, (km, node)) in items {
            if let Some((_, existing)) = target.get(&name) {
                if !same(existing, &node) {
                    let kind = section.trim_end_matches('s');
                    let files: Vec<String> =
                        e.paths.iter().map(|p| p.display().to_string()).collect();
                    return Err(LoadError::invalid(
                        Some(e.mark.clone()),
                        Some(path.to_string()),
                        format!(
                            "imported compose file {} defines conflicting {kind} {name}",
                            files.join(", ")
                        ),
                    ));
                }
                continue;
            }
            target.insert(name, (km, node));
        }
    }
    Ok(())
}

/// Structural equality ignoring positions.
pub(crate) fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, (_, v))| y.get(k).is_some_and(|(_, w)| same(v, w)))
        }
        (x, y) => x == y,
    }
}
