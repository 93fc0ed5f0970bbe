//! A service's `develop.watch` rules, compiled: which host paths each rule takes, where they
//! go in the container, and which it ignores.
//!
//! As compose: `ignore` and `include` patterns use `.dockerignore` syntax relative to the
//! rule's path; the build context's `.dockerignore` applies to every rule of a service that is
//! built; editors' temporary files and `.git` directories are always ignored. berth ignores
//! `.git` at any depth (compose's matcher only sees one at the file system root).

use std::path::{Path, PathBuf};

use berth_builder::ignore::Ignore;
use compose_spec::model::{Hook, Project, Service, WatchRule};

use crate::WatchError;

/// What a rule does when a path it takes changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Copy the changed paths into every running container of the service.
    Sync,
    /// Rebuild the service's image and recreate its containers.
    Rebuild,
    /// Restart the service's containers.
    Restart,
    /// Sync, then restart.
    SyncRestart,
    /// Sync, then run the rule's `exec` command in each container.
    SyncExec,
}

impl Action {
    /// The compose spelling (`sync+restart`, …); None for an unknown one.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "sync" => Action::Sync,
            "rebuild" => Action::Rebuild,
            "restart" => Action::Restart,
            "sync+restart" => Action::SyncRestart,
            "sync+exec" => Action::SyncExec,
            _ => return None,
        })
    }

    /// Whether the action copies files.
    pub fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The service it belongs to.
    pub service: String,
    /// Its action.
    pub action: Action,
    /// The watched host path (absolute).
    pub path: PathBuf,
    /// Where `path` goes in the container (sync actions).
    pub target: Option<String>,
    /// The command of a `sync+exec` rule.
    pub exec: Option<Hook>,
    /// Copy the whole path when the watch starts.
    pub initial_sync: bool,
    ignore: Ignore,
    include: Option<Ignore>,
    /// The build context and its `.dockerignore`, for a built service.
    context_ignore: Option<(PathBuf, Ignore)>,
}

/// One changed host path and where it goes in the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    /// The host path.
    pub host: PathBuf,
    /// Its path in the container (None for rules without a target: rebuild, restart).
    pub target: Option<String>,
}

/// The rules of `services` (all of the project's when empty) that have `develop.watch`.
pub fn project_rules(project: &Project, services: &[String]) -> Result<Vec<Rule>, WatchError> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        if !services.is_empty() && !services.contains(name) {
            continue;
        }
        out.extend(service_rules(name, svc)?);
    }
    Ok(out)
}

/// The compiled `develop.watch` rules of service `name`.
pub fn service_rules(name: &str, svc: &Service) -> Result<Vec<Rule>, WatchError> {
    let Some(dev) = &svc.develop else { return Ok(Vec::new()) };
    let context_ignore = match svc.build.as_ref().and_then(|b| b.context.as_deref()) {
        Some(ctx) if Path::new(ctx).is_absolute() => {
            let ctx = PathBuf::from(ctx);
            let file = ctx.join(".dockerignore");
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let ig =
                        Ignore::parse(&file.display().to_string(), &text).map_err(|source| {
                            WatchError::Pattern { service: name.to_string(), source }
                        })?;
                    Some((ctx, ig))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(WatchError::Read { service: name.to_string(), path: file, source });
                }
            }
        }
        _ => None,
    };
    dev.watch.iter().map(|w| compile(name, w, context_ignore.clone())).collect()
}

fn compile(
    service: &str,
    w: &WatchRule,
    context_ignore: Option<(PathBuf, Ignore)>,
) -> Result<Rule, WatchError> {
    let patterns = |what: &str, list: &[String]| {
        Ignore::parse(&format!("develop.watch {what} of {}", w.path), &list.join("\n"))
            .map_err(|source| WatchError::Pattern { service: service.to_string(), source })
    };
    // The loader refuses unknown actions; a model built by hand could still carry one.
    let action = Action::parse(&w.action).unwrap_or(Action::Rebuild);
    Ok(Rule {
        service: service.to_string(),
        action,
        path: PathBuf::from(&w.path),
        target: w.target.clone().filter(|t| !t.is_empty()),
        exec: w.exec.clone(),
        initial_sync: w.initial_sync,
        ignore: patterns("ignore", &w.ignore)?,
        include: if w.include.is_empty() { None } else { Some(patterns("include", &w.include)?) },
        context_ignore,
    })
}

/// Editors' and tools' temporary files (compose's list) and anything in a `.git` directory.
fn always_ignored(rel_components: &[&str]) -> bool {
    if rel_components.iter().any(|c| *c == ".git" || *c == ".idea") {
        return true;
    }
    let Some(name) = rel_components.last() else { return false };
    let dotted = |suffix: &str| name.starts_with('.') && name.ends_with(suffix);
    name.ends_with("___jb_old___")
        || name.ends_with("___jb_tmp___")
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || *name == "4913"
        || name.ends_with('~')
        || [".swp", ".swx", ".swo", ".swn", ".kate-swp"].iter().any(|s| dotted(s))
        || name.ends_with("-go-tmp-umask")
}

impl Rule {
    /// Where host path `host` goes, or None when this rule does not take it (outside its
    /// path, not included, or ignored).
    pub fn mapping(&self, host: &Path) -> Option<Mapping> {
        let rel = host.strip_prefix(&self.path).ok()?;
        let rel_s = rel.to_string_lossy();
        let comps: Vec<&str> = rel_s.split('/').filter(|c| !c.is_empty()).collect();
        if always_ignored(&comps) {
            return None;
        }
        let rel_pat = if comps.is_empty() { ".".to_string() } else { comps.join("/") };
        if !comps.is_empty() {
            if self.include.as_ref().is_some_and(|inc| !inc.excluded(&rel_pat)) {
                return None;
            }
            if self.ignore.excluded(&rel_pat) {
                return None;
            }
        }
        if let Some((ctx, ig)) = &self.context_ignore
            && let Ok(in_ctx) = host.strip_prefix(ctx)
            && !in_ctx.as_os_str().is_empty()
            && ig.excluded(&in_ctx.to_string_lossy())
        {
            return None;
        }
        let target = self.target.as_ref().map(|t| {
            if comps.is_empty() {
                t.clone()
            } else {
                format!("{}/{}", t.trim_end_matches('/'), comps.join("/"))
            }
        });
        Some(Mapping { host: host.to_path_buf(), target })
    }

    /// Every path under the rule's path that it takes, parents before children, ignored
    /// directories not entered: the copy `initial_sync` (or a rescan) makes.
    pub fn walk(&self) -> Vec<Mapping> {
        let mut out = Vec::new();
        let Some(top) = self.mapping(&self.path) else { return out };
        out.push(top);
        if self.path.is_dir() {
            self.walk_dir(&self.path, &mut out);
        }
        out
    }

    fn walk_dir(&self, dir: &Path, out: &mut Vec<Mapping>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Some(m) = self.mapping(&p) else { continue };
            out.push(m);
            // Not through a symlink: it is synced as a symlink.
            if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                self.walk_dir(&p, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &Path, ignore: &[&str], include: &[&str]) -> Rule {
        let w = WatchRule {
            path: path.display().to_string(),
            action: "sync".into(),
            target: Some("/app/".into()),
            ignore: ignore.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
            ..WatchRule::default()
        };
        compile("web", &w, None).expect("rule")
    }

    #[test]
    fn targets_follow_the_path_below_the_rule() {
        let r = rule(Path::new("/src/app"), &[], &[]);
        let m = r.mapping(Path::new("/src/app/lib/x.py")).expect("taken");
        assert_eq!(m.target.as_deref(), Some("/app/lib/x.py"));
        assert_eq!(
            r.mapping(Path::new("/src/app")).and_then(|m| m.target).as_deref(),
            Some("/app/")
        );
        assert!(r.mapping(Path::new("/src/application/x")).is_none(), "a sibling with a prefix");
        assert!(r.mapping(Path::new("/other")).is_none());
    }

    #[test]
    fn ignore_include_editor_files_and_git() {
        let r = rule(Path::new("/p"), &["node_modules/", "*.log", "!keep.log"], &[]);
        assert!(r.mapping(Path::new("/p/node_modules/a/b.js")).is_none());
        assert!(r.mapping(Path::new("/p/debug.log")).is_none());
        assert!(r.mapping(Path::new("/p/keep.log")).is_some());
        assert!(r.mapping(Path::new("/p/sub/debug.log")).is_some(), "*.log is top-level only");
        for tmp in ["a.py~", ".a.py.swp", "4913", ".#a.py", "#a.py#", "x___jb_tmp___"] {
            assert!(r.mapping(&Path::new("/p/src").join(tmp)).is_none(), "{tmp}");
        }
        assert!(r.mapping(Path::new("/p/.git/index")).is_none());
        assert!(r.mapping(Path::new("/p/vendor/lib/.git/HEAD")).is_none());
        let inc = rule(Path::new("/p"), &[], &["*.py", "templates"]);
        assert!(inc.mapping(Path::new("/p/a.py")).is_some());
        assert!(inc.mapping(Path::new("/p/templates/index.html")).is_some());
        assert!(inc.mapping(Path::new("/p/a.js")).is_none());
    }

    #[test]
    fn the_build_contexts_dockerignore_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").expect("write");
        let yaml = format!(
            "services:\n  web:\n    image: x\n    build: {}\n    develop:\n      watch:\n        - path: {}\n          action: sync\n          target: /app\n",
            dir.path().display(),
            dir.path().display()
        );
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).expect("write compose file");
        let opts = compose_spec::loader::LoadOptions {
            working_dir: dir.path().to_path_buf(),
            files: vec![file],
            project_name: Some("w".into()),
            ..Default::default()
        };
        let (project, _) = compose_spec::project::load_project(&opts).expect("load");
        let rules = project_rules(&project, &[]).expect("rules");
        assert_eq!(rules.len(), 1);
        assert!(rules[0].mapping(&dir.path().join("secret.txt")).is_none());
        assert!(rules[0].mapping(&dir.path().join("app.py")).is_some());
    }

    #[test]
    fn walk_lists_what_initial_sync_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("src/deep")).expect("mkdir");
        std::fs::create_dir_all(d.join("node_modules/x")).expect("mkdir");
        std::fs::write(d.join("src/deep/a.py"), b"a").expect("write");
        std::fs::write(d.join("src/b.py~"), b"b").expect("write");
        std::fs::write(d.join("node_modules/x/i.js"), b"i").expect("write");
        let r = rule(d, &["node_modules"], &[]);
        let got: Vec<String> = r.walk().into_iter().filter_map(|m| m.target).collect();
        assert_eq!(got, ["/app/", "/app/src", "/app/src/deep", "/app/src/deep/a.py"]);
    }
}
