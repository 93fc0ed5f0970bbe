//! What one batch of changes asks of each service, as compose's watch decides it: the paths
//! each rule takes, grouped by service; rebuild, sync, restart and exec flags. Carried out by
//! the caller in that order (rebuild first, so syncs land in the new containers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use compose_spec::model::Hook;

use crate::events::Batch;
use crate::rules::{Action, Mapping, Rule};

/// What a batch asks of one service.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServicePlan {
    /// Paths to mirror into each running container, parents before children (a new directory
    /// expanded into what it holds, ignored paths left out).
    pub sync: Vec<Mapping>,
    /// How many changed paths of the batch the service's sync rules took (compose prints it).
    pub changes: usize,
    /// Rebuild the image and recreate the containers.
    pub rebuild: bool,
    /// Restart the containers.
    pub restart: bool,
    /// Commands of `sync+exec` rules to run in each container after the sync, once each.
    pub exec: Vec<Hook>,
}

impl ServicePlan {
    /// True when nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.sync.is_empty() && !self.rebuild && !self.restart && self.exec.is_empty()
    }
}

/// The plan of `batch` under `rules`, by service (services with nothing to do left out).
pub fn plan(rules: &[Rule], batch: &Batch) -> BTreeMap<String, ServicePlan> {
    let mut out: BTreeMap<String, ServicePlan> = BTreeMap::new();
    let mut synced: BTreeMap<String, BTreeSet<Mapping>> = BTreeMap::new();
    let mut execs: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let taken: Vec<Mapping> = if batch.rescan {
            // Events were lost: everything the rule covers counts as changed.
            rule.walk()
        } else {
            batch.paths.iter().filter_map(|p| rule.mapping(p)).collect()
        };
        if taken.is_empty() {
            continue;
        }
        let sp = out.entry(rule.service.clone()).or_default();
        match rule.action {
            Action::Rebuild => sp.rebuild = true,
            Action::Restart => sp.restart = true,
            Action::Sync | Action::SyncRestart | Action::SyncExec => {
                sp.changes += taken.len();
                let set = synced.entry(rule.service.clone()).or_default();
                for m in taken {
                    expand(rule, &m, set);
                }
                if rule.action == Action::SyncRestart {
                    sp.restart = true;
                }
                if rule.action == Action::SyncExec {
                    execs.entry(rule.service.clone()).or_default().insert(i);
                }
            }
        }
    }
    for (svc, set) in synced {
        if let Some(sp) = out.get_mut(&svc) {
            sp.sync = set.into_iter().collect();
        }
    }
    for (svc, idx) in execs {
        if let Some(sp) = out.get_mut(&svc) {
            sp.exec = idx.into_iter().filter_map(|i| rules[i].exec.clone()).collect();
        }
    }
    out.retain(|_, sp| !sp.is_empty());
    out
}

/// Adds `m` to `set`, and for a directory everything under it the rule takes (its files may
/// have been written before the kernel watched the new directory).
fn expand(rule: &Rule, m: &Mapping, set: &mut BTreeSet<Mapping>) {
    set.insert(m.clone());
    if is_real_dir(&m.host) {
        let Ok(rd) = std::fs::read_dir(&m.host) else { return };
        for e in rd.flatten() {
            if let Some(child) = rule.mapping(&e.path()) {
                expand(rule, &child, set);
            }
        }
    }
}

fn is_real_dir(p: &Path) -> bool {
    p.symlink_metadata().is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;
    use compose_spec::model::WatchRule;
    use std::path::PathBuf;

    fn rules_of(yaml_rules: &[(&str, &Path, Option<&str>)]) -> Vec<Rule> {
        let mut svc = compose_spec::model::Service::default();
        let mut dev = compose_spec::model::Develop::default();
        for (action, path, target) in yaml_rules {
            dev.watch.push(WatchRule {
                path: path.display().to_string(),
                action: action.to_string(),
                target: target.map(str::to_string),
                exec: (*action == "sync+exec").then(|| Hook {
                    command: vec!["kill".into(), "-HUP".into(), "1".into()],
                    ..Hook::default()
                }),
                ..WatchRule::default()
            });
        }
        svc.develop = Some(dev);
        crate::rules::service_rules("web", &svc).expect("rules")
    }

    fn batch(paths: &[PathBuf]) -> Batch {
        Batch { paths: paths.iter().cloned().collect(), rescan: false }
    }

    #[test]
    fn actions_group_by_service_and_new_directories_expand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("src/new")).expect("mkdir");
        std::fs::write(d.join("src/new/a.py"), b"a").expect("write");
        std::fs::write(d.join("src/new/.a.py.swp"), b"a").expect("write");
        std::fs::write(d.join("requirements.txt"), b"r").expect("write");
        let rules = rules_of(&[
            ("sync+exec", &d.join("src"), Some("/app")),
            ("rebuild", &d.join("requirements.txt"), None),
        ]);
        // The directory's event came, its file's did not (written before the watch).
        let p = plan(&rules, &batch(&[d.join("src/new"), d.join("src/gone.py")]));
        let web = &p["web"];
        let targets: Vec<&str> = web.sync.iter().filter_map(|m| m.target.as_deref()).collect();
        assert_eq!(targets, ["/app/gone.py", "/app/new", "/app/new/a.py"]);
        assert_eq!(web.changes, 2);
        assert!(!web.rebuild && !web.restart);
        assert_eq!(web.exec.len(), 1, "one exec for the rule, however many files");
        let p = plan(&rules, &batch(&[d.join("requirements.txt")]));
        assert!(p["web"].rebuild && p["web"].sync.is_empty());
        assert!(plan(&rules, &batch(&[d.join("elsewhere")])).is_empty());
    }

    #[test]
    fn a_restart_rule_restarts_without_syncing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("app.conf"), b"x").expect("write");
        let rules = rules_of(&[("restart", &d.join("app.conf"), None)]);
        let p = plan(&rules, &batch(&[d.join("app.conf")]));
        assert!(p["web"].restart && !p["web"].rebuild);
        assert!(p["web"].sync.is_empty() && p["web"].exec.is_empty());
    }

    #[test]
    fn a_rescan_syncs_everything_the_rules_cover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("src")).expect("mkdir");
        std::fs::write(d.join("src/a"), b"a").expect("write");
        let rules = rules_of(&[("sync+restart", &d.join("src"), Some("/app"))]);
        let p = plan(&rules, &Batch { paths: BTreeSet::new(), rescan: true });
        let targets: Vec<&str> = p["web"].sync.iter().filter_map(|m| m.target.as_deref()).collect();
        assert_eq!(targets, ["/app", "/app/a"]);
        assert!(p["web"].restart);
    }
}
