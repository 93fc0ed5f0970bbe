//! Containers whose records cannot be read: found, listed, refused and removed by name.
//!
//! A container directory `containers/<id>` whose `config.json` is missing, empty or not a
//! record, or whose `state.json` is empty or garbage, is *damaged*. It is never hidden and
//! never guessed about:
//! - lookups by id, id prefix or name (through the name index, which keeps its entry: a
//!   damaged record still owns its name) find it; every operation but removal refuses it with
//!   one sentence naming the file and saying how to remove it;
//! - listings show it as `dead` (with `-a`, and without when its processes still run) and
//!   warn once per process on stderr naming the file; compose labels are taken from a
//!   readable `config.json`, or salvaged from the text of a damaged one;
//! - removal asks the kernel, not the record, whether it is dead (`liveness`): without force a
//!   live one is refused; with force its monitor and its cgroup's processes are killed first.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use berth_timing::mark;
use indexmap::IndexMap;

use super::ContainerError;
use super::api::{ContainerSummary, ListFilters};
use super::liveness;
use super::names::{index_dir, read_owner};
use super::record::Loaded;
use super::record::{ContainerPaths, ContainerRecord, Damage, StateRecord};
use crate::Engine;
use crate::ids::is_id;

/// A container whose records can't be used.
#[derive(Debug, Clone)]
pub(crate) struct Damaged {
    /// Its id (the directory's name).
    pub id: String,
    /// Its name: from its readable config, else from the name index.
    pub name: Option<String>,
    /// Its directory.
    pub paths: ContainerPaths,
    /// What is damaged.
    pub damage: Damage,
    /// Its identity record, when only the state is damaged.
    pub rec: Option<ContainerRecord>,
    /// Its labels: from the record, else what could be salvaged from the damaged file.
    pub labels: IndexMap<String, String>,
}

impl Damaged {
    /// The name, or the id when no name is known.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The error every operation but removal gives for it.
    pub fn error(&self) -> ContainerError {
        ContainerError::Damaged {
            container: self.display_name().to_string(),
            damage: self.damage.clone(),
        }
    }

    /// Warns (once per process and file) on stderr that the container is damaged.
    fn warn_once(&self) {
        static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let key = self.damage.file.to_string_lossy().to_string();
        if WARNED.lock().map(|mut w| w.insert(key)).unwrap_or(true) {
            tracing::warn!(
                "container {}: {}; it is listed as dead: remove it with `berth container rm -f {}`",
                self.display_name(),
                self.damage,
                self.display_name()
            );
        }
    }
}

/// A container directory as found: a usable identity record, or a damaged one.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// Its `config.json` reads (its state may still be damaged).
    Ok(ContainerRecord),
    /// It can't be used.
    Damaged(Damaged),
}

impl Entry {
    /// The container's id.
    pub fn id(&self) -> &str {
        match self {
            Entry::Ok(r) => &r.id,
            Entry::Damaged(d) => &d.id,
        }
    }

    /// The container's name, when known.
    pub fn name(&self) -> Option<&str> {
        match self {
            Entry::Ok(r) => Some(&r.name),
            Entry::Damaged(d) => d.name.as_deref(),
        }
    }
}

/// A container as loaded for an operation: usable, or damaged.
#[derive(Debug, Clone)]
pub(crate) enum LoadedEntry {
    /// Both records read.
    Ok(Loaded),
    /// One of them is damaged.
    Damaged(Damaged),
}

/// The compose project label.
const PROJECT_LABEL: &str = "com.docker.compose.project";

/// Compose labels whose values are salvaged from a damaged record.
const SALVAGED: [&str; 6] = [
    PROJECT_LABEL,
    "com.docker.compose.service",
    "com.docker.compose.container-number",
    "com.docker.compose.oneoff",
    "com.docker.compose.project.config_files",
    "com.docker.compose.project.working_dir",
];

/// The compose labels still legible in the text of a damaged record (a truncated or partly
/// overwritten `config.json`): `"key": "value"` pairs whose value has no escapes.
fn salvage_labels(text: &[u8]) -> IndexMap<String, String> {
    let text = String::from_utf8_lossy(text);
    let mut out = IndexMap::new();
    for key in SALVAGED {
        let quoted = format!("\"{key}\"");
        let Some(at) = text.find(&quoted) else { continue };
        let rest = text[at + quoted.len()..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else { continue };
        let Some(rest) = rest.trim_start().strip_prefix('"') else { continue };
        let Some(end) = rest.find(['"', '\\']) else { continue };
        if rest[end..].starts_with('"') {
            out.insert(key.to_string(), rest[..end].to_string());
        }
    }
    out
}

impl Engine {
    /// Every usable container record on disk (damaged ones are left out).
    pub(crate) fn all_records(&self) -> Vec<ContainerRecord> {
        self.scan_containers()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Ok(r) => Some(r),
                Entry::Damaged(_) => None,
            })
            .collect()
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix; a
    /// damaged one is an error naming its file.
    pub(crate) fn find(&self, key: &str) -> Result<ContainerRecord, ContainerError> {
        match self.find_entry(key)? {
            Entry::Ok(r) => Ok(r),
            Entry::Damaged(d) => Err(d.error()),
        }
    }

    /// Loads a container and repairs its state if its monitor died behind our back; a
    /// damaged one is an error naming its file.
    pub(crate) fn load(&self, key: &str) -> Result<Loaded, ContainerError> {
        match self.load_entry(key)? {
            LoadedEntry::Ok(l) => Ok(l),
            LoadedEntry::Damaged(d) => Err(d.error()),
        }
    }

    /// The container the index gives for `name`, if its record still carries the name (or
    /// can't be read: a damaged container keeps its name).
    pub(crate) fn lookup_name(&self, name: &str) -> Option<Entry> {
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return None;
        }
        let id = read_owner(&index_dir(self.root()).join(name))?;
        if !is_id(&id) {
            return None;
        }
        match ContainerPaths::new(self.root(), &id).read_config_checked(&id) {
            Ok(Some(r)) if r.name == name => Some(Entry::Ok(r)),
            Err(d) => {
                let mut d = self.damaged(&id, d, None);
                d.name = Some(name.to_string());
                Some(Entry::Damaged(d))
            }
            _ => None,
        }
    }

    /// Describes the damaged container `id`; `rec` is its identity when only its state is
    /// damaged.
    pub(crate) fn damaged(
        &self,
        id: &str,
        damage: Damage,
        rec: Option<ContainerRecord>,
    ) -> Damaged {
        let paths = ContainerPaths::new(self.root(), id);
        let (name, labels) = match &rec {
            Some(r) => (Some(r.name.clone()), r.config.labels.clone()),
            None => (
                self.name_of(id),
                std::fs::read(paths.config()).map(|t| salvage_labels(&t)).unwrap_or_default(),
            ),
        };
        Damaged { id: id.to_string(), name, paths, damage, rec, labels }
    }

    /// Every container directory: usable records and damaged ones (dot entries, being
    /// created or removed or pooled, are skipped).
    pub(crate) fn scan_containers(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.root().containers_dir()) else { return out };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            if id.starts_with('.') {
                continue;
            }
            let paths = ContainerPaths::new(self.root(), &id);
            match paths.read_config_checked(&id) {
                Ok(Some(rec)) => out.push(Entry::Ok(rec)),
                Ok(None) => {}
                // Only a directory named like an id is a container that lost its record.
                Err(d) if is_id(&id) && e.file_type().is_ok_and(|t| t.is_dir()) => {
                    out.push(Entry::Damaged(self.damaged(&id, d, None)));
                }
                Err(_) => {}
            }
        }
        out
    }

    /// Finds a container by full id, name or unique id prefix, damaged ones included.
    pub(crate) fn find_entry(&self, key: &str) -> Result<Entry, ContainerError> {
        // A full id is read directly instead of every record: an exact id wins below too.
        if is_id(key) {
            match ContainerPaths::new(self.root(), key).read_config_checked(key) {
                Ok(Some(rec)) => return Ok(Entry::Ok(rec)),
                Err(d) => return Ok(Entry::Damaged(self.damaged(key, d, None))),
                Ok(None) => {}
            }
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        // A name wins over an id prefix (as below): look it up in the index first.
        if let Some(e) = self.lookup_name(name) {
            return Ok(e);
        }
        let all = self.scan_containers();
        if let Some(e) = all.iter().find(|e| e.id() == key) {
            return Ok(e.clone());
        }
        if let Some(e) = all.iter().find(|e| e.name() == Some(name)) {
            return Ok(e.clone());
        }
        if key.is_empty() {
            return Err(ContainerError::NotFound(key.to_string()));
        }
        let matches: Vec<&Entry> = all.iter().filter(|e| e.id().starts_with(key)).collect();
        match matches.len() {
            0 => Err(ContainerError::NotFound(key.to_string())),
            1 => Ok(matches[0].clone()),
            _ => Err(ContainerError::Ambiguous(key.to_string())),
        }
    }

    /// Loads a container for an operation, damaged ones included (a dead monitor is repaired
    /// as in [`Engine::load`]).
    pub(crate) fn load_entry(&self, key: &str) -> Result<LoadedEntry, ContainerError> {
        let rec = match self.find_entry(key)? {
            Entry::Ok(r) => r,
            Entry::Damaged(d) => return Ok(LoadedEntry::Damaged(d)),
        };
        let paths = ContainerPaths::new(self.root(), &rec.id);
        match self.checked_state(&paths) {
            Ok(st) => Ok(LoadedEntry::Ok(Loaded { paths, rec, st })),
            Err(ContainerError::Damaged { damage, .. }) => {
                let id = rec.id.clone();
                Ok(LoadedEntry::Damaged(self.damaged(&id, damage, Some(rec))))
            }
            Err(e) => Err(e),
        }
    }

    /// The list rows of damaged containers (state `dead`: shown with `all` or a status
    /// filter) that pass `filters`; warns about each once, shown or not.
    pub(crate) fn damaged_rows(
        &self,
        damaged: Vec<Damaged>,
        all: bool,
        filters: &ListFilters,
    ) -> Vec<(String, ContainerSummary)> {
        if damaged.is_empty() {
            return Vec::new();
        }
        // Warned about whether shown or not: `ls` without `-a` leaves dead containers out.
        damaged.iter().for_each(Damaged::warn_once);
        if !all && filters.status.is_empty() {
            return Vec::new();
        }
        let without_labels = ListFilters { label: Vec::new(), ..filters.clone() };
        let shown: Vec<&Damaged> = damaged
            .iter()
            .filter(|d| {
                let name = d.name.clone().unwrap_or_default();
                let matches = |f: &ListFilters| f.matches(&d.id, &name, &d.labels, "dead");
                matches(filters)
                    || (filters.or_unlabelled_damaged
                        && !d.labels.contains_key(PROJECT_LABEL)
                        && matches(&without_labels))
            })
            .collect();
        let ids: Vec<&str> = shown.iter().map(|d| d.id.as_str()).collect();
        let monitors = if ids.is_empty() { HashMap::new() } else { liveness::find_monitors(&ids) };
        let mut out = Vec::new();
        for d in shown {
            let st = d.paths.read_state_checked().ok();
            let ev = liveness::gather(&d.paths.dir, &d.id, st.as_ref(), false, false);
            let alive = !ev.is_dead() || monitors.contains_key(&d.id);
            let rec = d.rec.clone().unwrap_or_default();
            // Without a record, the directory's age stands for the container's.
            let created =
                crate::time::parse_time(&rec.created).map(|t| t.timestamp()).or_else(|| {
                    let m = std::fs::metadata(&d.paths.dir).ok()?.modified().ok()?;
                    let secs = m.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    i64::try_from(secs).ok()
                });
            let mut argv = vec![rec.path.clone()];
            argv.extend(rec.args.iter().cloned());
            out.push((
                rec.created.clone(),
                ContainerSummary {
                    id: d.id.clone(),
                    names: d.name.iter().map(|n| format!("/{n}")).collect(),
                    image: rec.config.image.clone(),
                    image_id: rec.image_id.clone(),
                    command: argv.join(" ").trim().to_string(),
                    created: created.unwrap_or(0),
                    labels: d.labels.clone(),
                    state: "dead".into(),
                    status: if alive {
                        "Dead (damaged record, still running)".into()
                    } else {
                        "Dead (damaged record)".into()
                    },
                    mounts: rec.mounts.clone(),
                    ports: Vec::new(),
                },
            ));
        }
        out
    }

    /// Removes a damaged container. Whether it is dead is asked of the kernel (its monitor,
    /// its cgroup, its overlay), never of the damaged record: a live one is refused without
    /// `force`, and killed first with it.
    pub(crate) fn remove_damaged(
        &self,
        d: &Damaged,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        mark("remove: damaged record");
        let paths = &d.paths;
        // A monitor starting it holds the start lock until it recorded the start.
        let start_lock = match paths.start_lock() {
            Ok(g) => Some(g),
            Err(_) if !paths.dir.exists() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let st: Option<StateRecord> = paths.read_state_checked().ok();
        let ev = liveness::gather(&paths.dir, &d.id, st.as_ref(), true, true);
        if !ev.is_dead() {
            if !force {
                return Err(ContainerError::Alive {
                    container: d.display_name().to_string(),
                    evidence: format!(
                        "{}, and {} {}",
                        ev.describe(),
                        d.damage.file.display(),
                        d.damage.reason
                    ),
                    hint: "remove it with `rm -f` to kill it first",
                });
            }
            let left = liveness::kill(&paths.dir, &d.id, st.as_ref(), &ev, liveness::KILL_TIMEOUT);
            if !left.is_dead() {
                return Err(ContainerError::Alive {
                    container: d.display_name().to_string(),
                    evidence: left.describe(),
                    hint: "it could not be killed",
                });
            }
        }
        mark("remove: damaged container dead");
        super::net::release(self.root(), &d.id);
        let aside = {
            let _root = self.root().lock()?;
            match paths.lock() {
                Ok(g) => {
                    let r = self.move_aside(paths, &d.id, g)?;
                    if let Some(name) = &d.name {
                        self.release_name(name, &d.id);
                    }
                    Some(r)
                }
                Err(_) if !paths.dir.exists() => None,
                Err(e) => return Err(e.into()),
            }
        };
        // Recycling takes the start lock itself (a copy's overlay must not be in use).
        drop(start_lock);
        if let Some(r) = aside {
            r.finish();
        }
        if volumes && let Some(rec) = &d.rec {
            for v in &rec.anonymous_volumes {
                let _ = super::stores::volume_remove(self.root(), v);
            }
        }
        Ok(())
    }

    /// The name whose index entry names container `id` (a damaged record has lost its own).
    fn name_of(&self, id: &str) -> Option<String> {
        index_owners(&index_dir(self.root())).remove(id)
    }
}

/// Owner id -> name of every entry of the name index directory `dir`.
pub(crate) fn index_owners(dir: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if let Some(owner) = read_owner(&e.path()) {
            out.insert(owner, name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_salvaged_from_a_truncated_record() {
        let text = br#"{"Id":"abc","Config":{"Labels":{"com.docker.compose.project": "demo",
            "com.docker.compose.service":"web","com.docker.compose.container-number":"1",
            "com.docker.compose.oneoff":"Fal"#;
        let l = salvage_labels(text);
        assert_eq!(l.get("com.docker.compose.project").map(String::as_str), Some("demo"));
        assert_eq!(l.get("com.docker.compose.service").map(String::as_str), Some("web"));
        assert_eq!(l.get("com.docker.compose.container-number").map(String::as_str), Some("1"));
        // Cut inside the value: not taken.
        assert!(!l.contains_key("com.docker.compose.oneoff"));
        assert!(salvage_labels(b"\x00\xff garbage").is_empty());
        assert!(salvage_labels(br#""com.docker.compose.project": "a\"b""#).is_empty());
    }

    #[test]
    fn ids_are_64_lowercase_hex_digits() {
        assert!(is_id(&"a1".repeat(32)));
        assert!(!is_id(&"A1".repeat(32)));
        assert!(!is_id("abc"));
        assert!(!is_id(&format!(".rm-{}", "a".repeat(60))));
    }
}
