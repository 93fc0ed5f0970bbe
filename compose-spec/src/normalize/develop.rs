//! `develop` (watch rules) of a service.

use super::Normalizer;
use super::service::hook;
use crate::convert::*;
use crate::model::*;
use crate::tree::Node;

impl Normalizer<'_> {
    pub(super) fn develop(&mut self, n: &Node, path: &str) -> R<Develop> {
        let (m, extensions) = object(n, path, &["watch"])?;
        let mut d = Develop { extensions, ..Develop::default() };
        if let Some(w) = get(m, "watch") {
            let wp = join(path, "watch");
            let seq = w.as_seq().ok_or_else(|| err(w, &wp, "must be a list"))?;
            for (i, item) in seq.iter().enumerate() {
                let ip = idx(&wp, i);
                let (im, ext) = object(
                    item,
                    &ip,
                    &["ignore", "include", "path", "action", "target", "exec", "initial_sync"],
                )?;
                let req = |k: &str| -> R<String> {
                    match get(im, k) {
                        Some(v) => string(v, &join(&ip, k)),
                        None => Err(err(item, &ip, format!("\"{k}\" is required"))),
                    }
                };
                let action = req("action")?;
                if !matches!(
                    action.as_str(),
                    "rebuild" | "sync" | "restart" | "sync+restart" | "sync+exec"
                ) {
                    let an = get(im, "action").unwrap_or(item);
                    return Err(err(
                        an,
                        &join(&ip, "action"),
                        format!("\"{action}\" is not a valid watch action"),
                    ));
                }
                let wpath = req("path")?;
                if wpath.is_empty() {
                    let pn = get(im, "path").unwrap_or(item);
                    return Err(err(pn, &join(&ip, "path"), "value can't be blank"));
                }
                let target = opt_string(im, "target", &ip)?;
                if target.as_deref().is_none_or(str::is_empty)
                    && !matches!(action.as_str(), "rebuild" | "restart")
                {
                    return Err(err(
                        item,
                        &join(&ip, "target"),
                        format!("is required for the \"{action}\" action"),
                    ));
                }
                d.watch.push(WatchRule {
                    path: self.path_str(&wpath, false),
                    action,
                    target,
                    exec: get(im, "exec")
                        .map(|e| hook(e, &join(&ip, "exec"), false))
                        .transpose()?,
                    ignore: opt_string_or_list(im, "ignore", &ip)?,
                    include: opt_string_or_list(im, "include", &ip)?,
                    initial_sync: flag(im, "initial_sync", &ip)?,
                    extensions: ext,
                });
            }
        }
        Ok(d)
    }
}
