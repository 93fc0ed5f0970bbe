//! Top-level `volumes`, `configs`, `secrets` and `models`, and what they share (`external`,
//! names, file modes).

use super::{Normalizer, key_mark_of};
use crate::convert::*;
use crate::error::LoadError;
use crate::model::*;
use crate::tree::{Mapping, Node, Value};

impl Normalizer<'_> {
    pub(super) fn volume(&mut self, n: &Node, path: &str) -> R<Volume> {
        if matches!(n.value, Value::Null) {
            return Ok(Volume::default());
        }
        let (m, extensions) =
            object(n, path, &["name", "driver", "driver_opts", "external", "labels"])?;
        // compose refuses every other attribute on an external volume.
        let (external, name) = self.external_and_name(m, path, None)?;
        let driver = opt_string(m, "driver", path)?;
        let mut driver_opts = opt_string_map(m, "driver_opts", path)?;
        if self.opts.defaults
            && driver.as_deref().is_none_or(|d| d == "local")
            && driver_opts.get("o").is_some_and(|o| o.split(',').any(|x| x == "bind"))
        {
            // A local volume that is really a bind mount: its device is a host path.
            if let Some(dev) = driver_opts.get("device").cloned() {
                driver_opts.insert("device".into(), self.path_str(&dev, false));
            }
        }
        Ok(Volume {
            name,
            driver,
            driver_opts,
            external,
            labels: opt_string_map(m, "labels", path)?,
            extensions,
        })
    }

    pub(super) fn file_object(&mut self, n: &Node, path: &str, secret: bool) -> R<FileObject> {
        let keys: &[&str] = if secret {
            &[
                "name",
                "environment",
                "file",
                "external",
                "labels",
                "driver",
                "driver_opts",
                "template_driver",
            ]
        } else {
            &["name", "content", "environment", "file", "external", "labels", "template_driver"]
        };
        let (m, extensions) = object(n, path, keys)?;
        let (external, name) = self.external_and_name(m, path, Some(EXTERNAL_CONFLICTS))?;
        let o = FileObject {
            name,
            file: opt_string(m, "file", path)?.map(|f| self.path_str(&f, false)),
            environment: opt_string(m, "environment", path)?,
            content: opt_string(m, "content", path)?,
            external,
            labels: opt_string_map(m, "labels", path)?,
            driver: opt_string(m, "driver", path)?,
            driver_opts: opt_string_map(m, "driver_opts", path)?,
            template_driver: opt_string(m, "template_driver", path)?,
            extensions,
        };
        let exclusive = [o.file.is_some(), o.environment.is_some(), o.content.is_some()];
        if exclusive.iter().filter(|b| **b).count() > 1 {
            return Err(err(
                n,
                path,
                if secret {
                    "file|environment attributes are mutually exclusive"
                } else {
                    "file|environment|content attributes are mutually exclusive"
                },
            ));
        }
        let sources = [o.file.is_some(), o.environment.is_some(), o.content.is_some(), o.external]
            .iter()
            .filter(|b| **b)
            .count();
        if sources == 0 {
            let what = if secret { "secret" } else { "config" };
            return Err(err(
                n,
                path,
                format!(
                    "{what} needs one of \"file\", \"environment\"{} or \"external\"",
                    if secret { "" } else { ", \"content\"" }
                ),
            ));
        }
        Ok(o)
    }

    /// `external` and the resource's name, checked as compose does: attributes that make no
    /// sense on an external resource (`conflicting`, or every one but `name` when None) are
    /// refused, and the deprecated `external.name` is adopted unless it contradicts `name`.
    pub(super) fn external_and_name(
        &mut self,
        m: &Mapping,
        path: &str,
        conflicting: Option<&[&str]>,
    ) -> R<(bool, Option<String>)> {
        let (external, ext_name) = external(m, path)?;
        if external {
            for (k, (km, _)) in m {
                let conflicts = match conflicting {
                    Some(list) => list.contains(&k.as_str()),
                    None => !matches!(k.as_str(), "name" | "external") && !k.starts_with("x-"),
                };
                if conflicts {
                    return Err(err_at(
                        km,
                        &join(path, k),
                        format!("conflicting parameters \"external\" and \"{k}\" specified"),
                    ));
                }
            }
        }
        let name = opt_string(m, "name", path)?;
        let Some(en) = ext_name else { return Ok((external, name)) };
        self.warnings.push(format!(
            "{path}: external.name is deprecated. Please set name and external: true"
        ));
        match name {
            Some(n) if n != en => {
                let at = key_mark_of(m, "name");
                Err(LoadError::invalid(
                    at,
                    Some(path.to_string()),
                    "name and external.name conflict; only use name",
                ))
            }
            _ => Ok((external, Some(en))),
        }
    }

    pub(super) fn model(&mut self, n: &Node, path: &str) -> R<Model> {
        if matches!(n.value, Value::Null) {
            return Ok(Model::default());
        }
        let (m, extensions) = object(n, path, &["name", "model", "context_size", "runtime_flags"])?;
        Ok(Model {
            name: opt_string(m, "name", path)?,
            model: opt_string(m, "model", path)?,
            context_size: opt_int(m, "context_size", path)?,
            runtime_flags: opt_strings(m, "runtime_flags", path)?,
            extensions,
        })
    }
}

/// Attributes refused on an external network, config or secret.
pub(super) const EXTERNAL_CONFLICTS: &[&str] = &["driver", "driver_opts", "labels"];

/// `external: true | false | {name}` -> (external, legacy name).
fn external(m: &Mapping, path: &str) -> R<(bool, Option<String>)> {
    let Some(e) = get(m, "external") else { return Ok((false, None)) };
    let ep = join(path, "external");
    match &e.value {
        Value::Map(_) => {
            let (em, _) = object(e, &ep, &["name"])?;
            Ok((true, opt_string(em, "name", &ep)?))
        }
        _ => Ok((boolean(e, &ep)?, None)),
    }
}

/// A file mode: an integer, or a string in octal (`"0440"`).
pub(super) fn file_mode(n: &Node, path: &str) -> R<u32> {
    match &n.value {
        // compose reads `mode: 0440` as YAML 1.1 octal; the core-schema parser has made it the
        // integer 440, so integers written only with octal digits are taken as octal.
        Value::Int(i) if (0..=7777).contains(i) && i.to_string().bytes().all(|b| b < b'8') => {
            u32::from_str_radix(&i.to_string(), 8)
                .map_err(|_| err(n, path, format!("{i} is not a valid file mode")))
        }
        Value::Int(i) if (0..=0o7777).contains(i) => Ok(*i as u32),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|v| *v <= 0o7777)
            .ok_or_else(|| err(n, path, format!("\"{s}\" is not a valid file mode"))),
        _ => Err(err(n, path, "must be a file mode (an integer or an octal string)")),
    }
}
