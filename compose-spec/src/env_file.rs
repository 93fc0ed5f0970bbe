//! Service `env_file`: each file (string, list, or long `{path, required, format}`) is read
//! into the service's `environment` (values written in `environment` win; bare names take
//! their value from the project environment), and `env_file` is kept in long form with
//! absolute paths, as `docker compose config` prints it. `label_file` is read into `labels`
//! the same way.

use std::path::Path;

use indexmap::IndexMap;

use crate::error::LoadError;
use crate::merge::key_value_map;
use crate::paths::absolute;
use crate::tree::{Mapping, Mark, Node, Value};

/// Applies `env_file` and resolves bare `environment` names for every service of `root`;
/// `keep_relative` keeps the `env_file` paths as written (no path resolution).
pub fn apply(
    root: &mut Node,
    project_dir: &Path,
    env: &IndexMap<String, String>,
    home: Option<&str>,
    keep_relative: bool,
) -> Result<(), LoadError> {
    let Some(services) =
        root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(|(_, s)| s.as_map_mut())
    else {
        return Ok(());
    };
    for (name, (_, svc)) in services.iter_mut() {
        let Some(m) = svc.as_map_mut() else { continue };
        let path = format!("services.{name}");
        apply_label_files(m, name, project_dir, env, home)?;
        let mut from_files: IndexMap<String, String> = IndexMap::new();
        let mut had_env_file = false;
        if let Some((km, ef)) = m.get(&"env_file".to_string()).cloned() {
            had_env_file = true;
            let entries = entries(&ef, &format!("{path}.env_file"))?;
            let mut long = Vec::new();
            for (p, required, format, mark) in entries {
                let abs = absolute(project_dir, &p, home);
                let lookup = |k: &str| env.get(k).cloned().or_else(|| from_files.get(k).cloned());
                // Only a missing file is "not found" (and skipped when not required); a
                // device, FIFO or directory is refused for what it is, without being opened.
                let missing = matches!(std::fs::metadata(&abs), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
                if missing && !required {
                } else if missing {
                    return Err(LoadError::invalid(
                        Some(mark.clone()),
                        Some(format!("{path}.env_file")),
                        format!("env file {abs} not found"),
                    ));
                } else {
                    let vars = crate::dotenv::read_file(Path::new(&abs), &lookup)
                        .map_err(|e| at_key(e, &mark, format!("{path}.env_file")))?;
                    from_files.extend(vars);
                }
                let mut item = Mapping::new();
                let s = |v: Value| Node::new(v, mark.clone());
                // With `resolve_paths: false` the path stays as written.
                let shown = if keep_relative { p } else { abs };
                item.insert("path".into(), (mark.clone(), s(Value::String(shown))));
                item.insert("required".into(), (mark.clone(), s(Value::Bool(required))));
                if let Some(f) = format {
                    item.insert("format".into(), (mark.clone(), s(Value::String(f))));
                }
                long.push(Node::new(Value::Map(item), mark));
            }
            m.insert("env_file".into(), (km, Node::new(Value::Seq(long), ef.mark.clone())));
        }
        let env_entry = m.get("environment").cloned();
        if env_entry.is_none() && !had_env_file {
            continue;
        }
        let (km, env_node) = match env_entry {
            Some(e) => e,
            None => {
                let mark = svc_mark(m);
                (mark.clone(), Node::new(Value::Null, mark))
            }
        };
        let segs = vec!["services".to_string(), name.clone(), "environment".to_string()];
        let env_mark = env_node.mark.clone();
        let declared = key_value_map(env_node, &segs)?;
        let mut out = Mapping::new();
        for (k, v) in from_files {
            out.insert(k, (env_mark.clone(), Node::new(Value::String(v), env_mark.clone())));
        }
        for (k, (kmark, v)) in declared {
            let v = if matches!(v.value, Value::Null) {
                match env.get(&k) {
                    Some(val) => Node::new(Value::String(val.clone()), v.mark),
                    // Not set anywhere: an env_file value (if any) stays, else null.
                    None => match out.get(&k) {
                        Some((_, existing)) => existing.clone(),
                        None => v,
                    },
                }
            } else {
                stringify(v)
            };
            out.insert(k, (kmark, v));
        }
        m.insert("environment".into(), (km, Node::new(Value::Map(out), env_mark)));
    }
    Ok(())
}

/// A file that could not be read is reported at the key naming it; a syntax error keeps its
/// own position in that file.
fn at_key(e: LoadError, mark: &Mark, path: String) -> LoadError {
    if e.mark.is_some() { e } else { LoadError::invalid(Some(mark.clone()), Some(path), e.message) }
}

fn svc_mark(m: &Mapping) -> Mark {
    m.values().next().map(|(k, _)| k.clone()).unwrap_or(Mark {
        file: "<cli>".into(),
        line: 1,
        column: 1,
    })
}

/// (path, required, format, mark) for each entry.
type Entry = (String, bool, Option<String>, Mark);

fn entries(n: &Node, path: &str) -> Result<Vec<Entry>, LoadError> {
    let bad = |n: &Node| {
        LoadError::invalid(
            Some(n.mark.clone()),
            Some(path.to_string()),
            format!(
                "must be a string, a list or a {{path, required}} mapping, found {}",
                n.a_type_name()
            ),
        )
    };
    let one = |it: &Node| -> Result<Entry, LoadError> {
        match &it.value {
            Value::String(s) => Ok((s.clone(), true, None, it.mark.clone())),
            Value::Map(_) => {
                let p = it.get("path").and_then(Node::as_str).ok_or_else(|| bad(it))?;
                let required = match it.get("required").map(|r| &r.value) {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(s)) => s != "false",
                    _ => true,
                };
                let format = it.get("format").and_then(Node::as_str).map(str::to_string);
                Ok((p.to_string(), required, format, it.mark.clone()))
            }
            _ => Err(bad(it)),
        }
    };
    match &n.value {
        Value::Seq(items) => items.iter().map(one).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Ok(vec![one(n)?]),
    }
}

/// Numbers and booleans in `environment` become the strings the container will see.
fn stringify(mut n: Node) -> Node {
    n.value = match n.value {
        Value::Int(i) => Value::String(i.to_string()),
        Value::Float(f) => Value::String(f.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        v => v,
    };
    n
}

/// `label_file` (a path or a list): labels read with the `.env` syntax, under the declared
/// `labels` (which win); `labels` becomes a mapping. `label_file` itself is kept.
fn apply_label_files(
    m: &mut Mapping,
    name: &str,
    project_dir: &Path,
    env: &IndexMap<String, String>,
    home: Option<&str>,
) -> Result<(), LoadError> {
    let Some((_, lf)) = m.get("label_file").cloned() else { return Ok(()) };
    let path = format!("services.{name}.label_file");
    let files: Vec<&Node> = match &lf.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![&lf],
    };
    let mut from_files: IndexMap<String, String> = IndexMap::new();
    for f in files {
        let Some(p) = f.as_str() else {
            return Err(LoadError::invalid(
                Some(f.mark.clone()),
                Some(path),
                format!("must be a string or a list of strings, found {}", f.a_type_name()),
            ));
        };
        let abs = absolute(project_dir, p, home);
        if matches!(std::fs::metadata(&abs), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            return Err(LoadError::invalid(
                Some(f.mark.clone()),
                Some(path),
                format!("label file {abs} not found"),
            ));
        }
        let lookup = |k: &str| env.get(k).cloned();
        let labels = crate::dotenv::read_file(Path::new(&abs), &lookup)
            .map_err(|e| at_key(e, &f.mark, path.clone()))?;
        from_files.extend(labels);
    }
    let (km, declared) = match m.get("labels").cloned() {
        Some((km, n)) => {
            let segs = vec!["services".to_string(), name.to_string(), "labels".to_string()];
            (km, key_value_map(n, &segs)?)
        }
        None => (lf.mark.clone(), Mapping::new()),
    };
    let mut out = Mapping::new();
    for (k, v) in from_files {
        out.insert(k, (lf.mark.clone(), Node::new(Value::String(v), lf.mark.clone())));
    }
    for (k, (kmark, v)) in declared {
        out.insert(k, (kmark, stringify(v)));
    }
    m.insert("labels".into(), (km.clone(), Node::new(Value::Map(out), km)));
    Ok(())
}
