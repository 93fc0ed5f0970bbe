//! The [`Networks`] handle over `<root>/networks/`: opening, locking, reading, resolving
//! and saving the network records, and naming the damaged ones.

use std::path::{Path, PathBuf};

use crate::disk::{Lock, read_json, write_json};
use crate::dns;
use crate::error::{NetworkError, Result};
use crate::live::{LiveState, live_path};
use crate::model::{Filters, NetworkRecord, NetworkState};

/// The networks of one state root.
#[derive(Debug, Clone)]
pub struct Networks {
    pub(crate) dir: PathBuf,
}

impl Networks {
    /// Opens (creating if needed) `<state_root>/networks`.
    pub fn open(state_root: &Path) -> Result<Self> {
        let dir = state_root.join("networks");
        std::fs::create_dir_all(&dir).map_err(|e| NetworkError::io("create directory", &dir, e))?;
        Ok(Networks { dir })
    }

    /// The `networks/` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> Result<Lock> {
        Lock::exclusive(&self.dir.join("lock"))
    }

    pub(crate) fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every readable network's full state, sorted by name. A damaged record is left out
    /// (and named in a warning): see [`Networks::damaged`].
    pub fn states(&self) -> Result<Vec<NetworkState>> {
        load_states(&self.dir)
    }

    /// The records that cannot be read (empty, garbage, truncated). `network rm <id>` removes
    /// them, with their bridge and rules.
    pub fn damaged(&self) -> Result<Vec<DamagedRecord>> {
        Ok(scan_states(&self.dir)?.damaged)
    }

    /// `<dir>/<id>.creating`: present while the network's bridge and rules are being made.
    pub(crate) fn creating_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{CREATING_SUFFIX}"))
    }

    /// True when network `id`'s creation has not finished: under the root lock, this means
    /// its creator died half-way (a create holds that lock from start to end).
    pub fn is_half_made(&self, id: &str) -> bool {
        self.creating_path(id).exists()
    }

    /// Saves what changes on connect/disconnect/publish: the `<id>.live` file (see
    /// [`LiveState`]).
    pub(crate) fn save(&self, st: &NetworkState) -> Result<()> {
        let live = LiveState::of(st);
        let path = live_path(&self.dir, &st.network.id);
        // Compact: rewritten on every connect and disconnect, under the root lock.
        let bytes = serde_json::to_vec(&live)
            .map_err(|e| NetworkError::Json { path: path.clone(), source: e })?;
        berth_slotfile::write(&path, &bytes).map_err(|e| NetworkError::io("write", &path, e))?;
        self.bump()
    }

    /// Saves the whole network at create: the definition in `<id>.json` (replaced with a
    /// rename, which ext4 makes crash-safe by flushing the data first) and no live part yet.
    pub(crate) fn save_definition(&self, st: &NetworkState) -> Result<()> {
        write_json(&self.state_path(&st.network.id), &LiveState::default().strip(st))?;
        self.bump()
    }

    /// Tells readers (the DNS server) that records changed.
    pub(crate) fn bump(&self) -> Result<()> {
        // Only the file's mtime carries the news (the DNS server keys on inode and mtime):
        // setting it is one inode update, where rewriting the file and renaming it over the old
        // one cost a create, a data flush and a rename (each stalls for milliseconds on a busy
        // disk).
        let path = self.dir.join(dns::GENERATION_FILE);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| NetworkError::io("open", &path, e))?;
        f.set_modified(std::time::SystemTime::now())
            .map_err(|e| NetworkError::io("set the time of", &path, e))
    }

    pub(crate) fn resolve_in(states: &[NetworkState], key: &str) -> Result<NetworkState> {
        if let Some(s) = states.iter().find(|s| s.network.name == key || s.network.id == key) {
            return Ok(s.clone());
        }
        let by_prefix: Vec<&NetworkState> =
            states.iter().filter(|s| !key.is_empty() && s.network.id.starts_with(key)).collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(NetworkError::NotFound(key.to_string())),
            _ => Err(NetworkError::Ambiguous(key.to_string())),
        }
    }

    /// The full state of one network by name, id or unique id prefix. A key that only names a
    /// damaged record (by id or id prefix) gives [`NetworkError::Damaged`].
    pub fn state(&self, key: &str) -> Result<NetworkState> {
        let scan = scan_states(&self.dir)?;
        warn_damaged(&scan.damaged);
        match Self::resolve_in(&scan.states, key) {
            Err(NetworkError::NotFound(_)) => {
                let hits: Vec<&DamagedRecord> = scan
                    .damaged
                    .iter()
                    .filter(|d| d.id == key || (!key.is_empty() && d.id.starts_with(key)))
                    .collect();
                match hits.as_slice() {
                    [] => Err(NetworkError::NotFound(key.to_string())),
                    [d] => Err(NetworkError::Damaged {
                        id: d.id.clone(),
                        path: d.path.clone(),
                        message: d.error.clone(),
                    }),
                    _ => Err(NetworkError::Ambiguous(key.to_string())),
                }
            }
            r => r,
        }
    }

    /// `network inspect`.
    pub fn inspect(&self, key: &str) -> Result<NetworkRecord> {
        Ok(self.state(key)?.network)
    }

    /// `network ls` with docker-style filters.
    pub fn list(&self, filters: &Filters) -> Result<Vec<NetworkRecord>> {
        Ok(self.states()?.into_iter().map(|s| s.network).filter(|r| filters.matches(r)).collect())
    }
}

/// What marks a network whose creation has not finished: `<id>.creating`.
pub(crate) const CREATING_SUFFIX: &str = ".creating";

/// A network record (`networks/<id>.json`) that cannot be read: empty, garbage, truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    /// The network's id: the file's name without `.json`.
    pub id: String,
    /// The record's path.
    pub path: PathBuf,
    /// Why it cannot be read.
    pub error: String,
}

impl std::fmt::Display for DamagedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network record {} cannot be read ({}); it is left out (`berth network rm {}` removes it)",
            self.path.display(),
            self.error,
            self.id
        )
    }
}

/// The records of a directory: the readable ones (sorted by name) and the damaged ones.
struct Scan {
    states: Vec<NetworkState>,
    damaged: Vec<DamagedRecord>,
}

/// Reads every `<id>.json` record in `dir` with its `<id>.live` part.
fn scan_states(dir: &Path) -> Result<Scan> {
    let mut scan = Scan { states: Vec::new(), damaged: Vec::new() };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(NetworkError::io("read directory", dir, e)),
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name.strip_suffix(".json").filter(|_| !name.starts_with('.')) else {
            continue;
        };
        match load_state(dir, &ent.path()) {
            Ok(Some(st)) => scan.states.push(st),
            // Removed since the listing.
            Ok(None) => {}
            Err(e) => {
                let error = match e {
                    NetworkError::Json { source, .. } => source.to_string(),
                    NetworkError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                scan.damaged.push(DamagedRecord { id: id.to_string(), path: ent.path(), error });
            }
        }
    }
    scan.states.sort_by(|a, b| a.network.name.cmp(&b.network.name));
    scan.damaged.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scan)
}

/// Reads every readable `<id>.json` record in `dir` with its `<id>.live` part, sorted by name;
/// damaged records are left out and named in a warning.
pub(crate) fn load_states(dir: &Path) -> Result<Vec<NetworkState>> {
    let scan = scan_states(dir)?;
    warn_damaged(&scan.damaged);
    Ok(scan.states)
}

/// Warns about each damaged record once per process (commands read the records many times).
fn warn_damaged(damaged: &[DamagedRecord]) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for d in damaged {
        let first = WARNED.lock().map(|mut w| w.insert(d.path.clone())).unwrap_or(true);
        if first {
            tracing::warn!("{d}");
        }
    }
}

/// Reads one network's definition at `path` (`<dir>/<id>.json`) with its `<id>.live` part.
pub(crate) fn load_state(dir: &Path, path: &Path) -> Result<Option<NetworkState>> {
    let Some(mut st) = read_json::<NetworkState>(path)? else { return Ok(None) };
    let live = live_path(dir, &st.network.id);
    let parsed = berth_slotfile::read(&live).map_err(|e| e.to_string()).and_then(|b| {
        b.map(|b| serde_json::from_slice::<LiveState>(&b)).transpose().map_err(|e| e.to_string())
    });
    match parsed {
        Ok(Some(l)) => l.apply(&mut st),
        // Older roots keep everything in `<id>.json`.
        Ok(None) => {}
        // Unreadable after a crash (its data need not have reached the disk): the endpoints
        // it listed died with the crash anyway.
        Err(e) => {
            tracing::warn!(
                "{}: {e}; treating network {} as having no endpoints",
                live.display(),
                st.network.name
            );
            LiveState::default().apply(&mut st);
        }
    }
    Ok(Some(st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_left_out_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path()).unwrap();
        let empty = "ab".repeat(32);
        let garbage = "cd".repeat(32);
        std::fs::write(nets.dir().join(format!("{empty}.json")), b"").unwrap();
        std::fs::write(nets.dir().join(format!("{garbage}.json")), b"{\"network\": [").unwrap();
        assert!(nets.states().unwrap().is_empty());
        assert!(nets.list(&Filters::default()).unwrap().is_empty());
        let damaged = nets.damaged().unwrap();
        assert_eq!(damaged.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [&empty, &garbage]);
        let text = damaged[0].to_string();
        assert!(text.contains(&format!("{empty}.json")) && text.contains("network rm"), "{text}");
        // By id or a unique prefix: a sentence naming the file; unknown keys stay NotFound.
        let err = nets.state(&garbage[..6]).unwrap_err();
        assert!(matches!(&err, NetworkError::Damaged { id, .. } if *id == garbage), "{err}");
        assert!(err.to_string().contains(&format!("{garbage}.json")), "{err}");
        assert!(matches!(nets.state("ef"), Err(NetworkError::NotFound(_))));
    }
}
