//! On-disk records of a container: `config.json` (what it is) and `state.json` (what it is doing),
//! both under `containers/<id>/`, written atomically under the container's own lock (a `flock` on
//! the directory).

use std::path::{Path, PathBuf};

use berth_store::{self as store, LockGuard, StateRoot, StoreError};
use serde::{Deserialize, Serialize};

use super::api::{Config, ContainerState, HostConfig, MountPoint, NetworkingConfig};

/// The container's resolved identity, written at create and changed only by rename.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerRecord {
    /// 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// Executable (first word of entrypoint + cmd).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Config merged with the image's.
    pub config: Config,
    /// Host config as requested.
    pub host_config: HostConfig,
    /// Image id (`sha256:...`), empty for a `rootfs` container.
    pub image_id: String,
    /// Image layer directories, topmost first (overlay lowerdir order).
    pub layers: Vec<PathBuf>,
    /// Run on this directory instead of an overlay of `layers`.
    pub rootfs_dir: Option<PathBuf>,
    /// Resolved user.
    pub uid: u32,
    /// Resolved primary group.
    pub gid: u32,
    /// Resolved supplementary groups.
    pub additional_gids: Vec<u32>,
    /// The user's home directory from the image's passwd (for HOME).
    pub home: Option<String>,
    /// Anonymous volumes made for this container (removed by `rm -v`).
    pub anonymous_volumes: Vec<String>,
    /// Mounts (binds, volumes, tmpfs) in mount order, as inspect shows them.
    pub mounts: Vec<MountPoint>,
    /// tmpfs options per mount destination (`size=..,mode=..`).
    pub tmpfs_options: Vec<(String, String)>,
    /// Networks joined beyond the network mode (aliases, static addresses).
    pub networking_config: NetworkingConfig,
}

impl ContainerRecord {
    /// Journals docker's container event `action` in the state root `root`'s event journal,
    /// with docker's attributes (the container's labels, `name`, `image`) plus `extra`.
    pub(crate) fn journal(&self, root: &Path, action: &str, extra: &[(&str, String)]) {
        let mut ev = store::events::JournalEvent::now(action, &self.id, extra);
        for (k, v) in &self.config.labels {
            ev.attributes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        ev.attributes.insert("name".into(), self.name.clone());
        ev.attributes.insert("image".into(), self.config.image.clone());
        store::events::append(root, &ev);
    }

    /// The signal `stop` sends first: the configured `StopSignal` (image or create), else SIGTERM.
    pub fn stop_signal(&self) -> i32 {
        self.config
            .stop_signal
            .as_deref()
            .and_then(crate::process::parse_signal)
            .unwrap_or(libc::SIGTERM)
    }
}

/// The container's changing state, written by the CLI and by its monitor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StateRecord {
    /// Docker-shaped state.
    pub state: ContainerState,
    /// Restarts done by the restart policy since the last user start.
    pub restart_count: i64,
    /// The monitor's pid (0: none).
    pub monitor_pid: i32,
    /// The monitor's start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
    pub monitor_start: u64,
    /// The container's first process start time, to tell it from a reused pid.
    pub pid_start: u64,
    /// A user stop/kill is in progress or was done: the restart policy must not restart.
    pub manual_stop: bool,
    /// The cgroup the container runs in (as the launcher reports it).
    pub cgroup: Option<PathBuf>,
    /// The container was started at least once (for `unless-stopped` and liveness repair).
    pub has_been_started: bool,
}

/// A container record that cannot be used: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged file (`config.json` or `state.json`).
    pub file: PathBuf,
    /// What is wrong with it ("is empty", "is not a state record: ...").
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.file.display(), self.reason)
    }
}

/// Paths of one container's state directory.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `containers/<id>`.
    pub dir: PathBuf,
}

impl ContainerPaths {
    /// Paths for container `id` under `root`.
    pub fn new(root: &StateRoot, id: &str) -> Self {
        ContainerPaths { dir: root.containers_dir().join(id) }
    }
    /// The identity record.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// The state record.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// The current json-file log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("container-json.log")
    }
    /// The fifo an attached CLI writes the container's stdin to (`OpenStdin`).
    pub fn stdin_fifo(&self) -> PathBuf {
        self.dir.join("stdin")
    }
    /// The monitor's own diagnostics.
    pub fn monitor_log(&self) -> PathBuf {
        self.dir.join("monitor.log")
    }
    /// /etc/hostname source.
    pub fn hostname(&self) -> PathBuf {
        self.dir.join("hostname")
    }
    /// /etc/hosts source.
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("hosts")
    }
    /// /etc/resolv.conf source.
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
    /// Writable overlay layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("rootfs/upper")
    }
    /// overlayfs work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("rootfs/work")
    }
    /// Mount target of the rootfs before pivot_root: `rootfs/` itself (the overlay covers its
    /// `upper/` and `work/` only in the container's own mount namespace), so no per-container
    /// `merged/` directory is made.
    pub fn merged(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Directory of anonymous volumes' fallback data (unused when volumes come from the store).
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }

    /// Takes the container's exclusive lock: a `flock` on its directory (which a removal
    /// keeps holding while it deletes the directory under its `.rm-<id>` name).
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        LockGuard::exclusive_dir(&self.dir)
    }

    /// Takes the container's start lock (serialises starts, and copies against starts): a
    /// `flock` on `rootfs/` (made at create, never replaced, invisible inside the container),
    /// or on a `start.lock` file for a container run on a plain directory (`--rootfs`).
    pub fn start_lock(&self) -> Result<LockGuard, StoreError> {
        let rootfs = self.dir.join("rootfs");
        if rootfs.is_dir() {
            LockGuard::exclusive_dir(&rootfs)
        } else {
            LockGuard::exclusive(&self.dir.join("start.lock"))
        }
    }

    /// Reads the identity record; None when the container doesn't exist (any more).
    pub fn read_config(&self) -> Result<Option<ContainerRecord>, StoreError> {
        store::read_json(&self.config())
    }

    /// Reads the identity record of the published container directory `containers/<id>`:
    /// None when the directory is gone; [`Damage`] when its `config.json` is missing, empty,
    /// not a record, or the record of another id (create renames a complete directory into
    /// place, so none of these is a state the engine leaves).
    pub fn read_config_checked(&self, id: &str) -> Result<Option<ContainerRecord>, Damage> {
        let path = self.config();
        let damage = |reason: String| Damage { file: path.clone(), reason };
        match std::fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Err(damage("is empty".into())),
            Ok(b) => match serde_json::from_slice::<ContainerRecord>(&b) {
                Ok(r) if r.id == id => Ok(Some(r)),
                Ok(r) if r.id.is_empty() => Err(damage("holds no container record".into())),
                Ok(r) => Err(damage(format!("is the record of container {}", r.id))),
                Err(e) => Err(damage(format!("is not a container record: {e}"))),
            },
            // Removed meanwhile (its directory was renamed away), or never complete.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.dir.is_dir() {
                    Err(damage("is missing".into()))
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(damage(format!("cannot be read: {e}"))),
        }
    }

    /// Reads the state record for decisions about the container's life: a missing file is a
    /// created container; an empty or unreadable one is [`Damage`] (the state it would read
    /// as, "created", may be false: the container may run).
    pub fn read_state_checked(&self) -> Result<StateRecord, Damage> {
        let path = self.state();
        let damage = |reason: String| Damage { file: path.clone(), reason };
        match berth_slotfile::read(&path) {
            Ok(None) => Ok(StateRecord::default()),
            Ok(Some(b)) if b.iter().all(u8::is_ascii_whitespace) => Err(damage("is empty".into())),
            Ok(Some(b)) => serde_json::from_slice(&b)
                .map_err(|e| damage(format!("is not a state record: {e}"))),
            Err(e) => Err(damage(format!("cannot be read: {e}"))),
        }
    }

    /// Reads the state record (default when missing: a created container).
    pub fn read_state(&self) -> Result<StateRecord, StoreError> {
        Ok(store::read_json_in_place(&self.state())?.unwrap_or_default())
    }

    /// Writes the state record in place (hold the lock): readers see the old or the new record,
    /// never a mix. Not fsynced: after a power loss the run state is stale anyway (no monitor
    /// survives a reboot) and is repaired on load.
    pub fn write_state(&self, st: &StateRecord) -> Result<(), StoreError> {
        store::write_json_in_place(&self.state(), st)
    }

    /// Writes the identity record atomically (hold the lock).
    pub fn write_config(&self, rec: &ContainerRecord) -> Result<(), StoreError> {
        store::write_json_atomic(&self.config(), rec)
    }

    /// Read-modify-write of the state record under the container lock.
    pub fn update_state<R>(&self, f: impl FnOnce(&mut StateRecord) -> R) -> Result<R, StoreError> {
        let _g = self.lock()?;
        let mut st = self.read_state()?;
        let r = f(&mut st);
        self.write_state(&st)?;
        Ok(r)
    }
}

/// A container as loaded from disk, its state already corrected for dead monitors.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub paths: ContainerPaths,
    pub rec: ContainerRecord,
    pub st: StateRecord,
}

/// The cgroup a container runs in (relative to the hierarchy roots): derived from its id
/// alone, so it is found even when no record can be read.
pub fn cgroup_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// Whether `path` is a directory that holds a container record.
pub fn is_container_dir(path: &Path) -> bool {
    path.join("config.json").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_cannot_be_read_are_damage_naming_the_file() {
        let t = tempfile::tempdir().unwrap();
        let root = StateRoot::open(t.path()).unwrap();
        let id = "c".repeat(64);
        let p = ContainerPaths::new(&root, &id);
        // No directory: no container.
        assert_eq!(p.read_config_checked(&id).unwrap().map(|r| r.id), None);
        std::fs::create_dir_all(&p.dir).unwrap();
        let reason = |r: Result<Option<ContainerRecord>, Damage>| {
            let d = r.unwrap_err();
            assert_eq!(d.file, p.config());
            d.reason
        };
        assert_eq!(reason(p.read_config_checked(&id)), "is missing");
        std::fs::write(p.config(), b"").unwrap();
        assert_eq!(reason(p.read_config_checked(&id)), "is empty");
        std::fs::write(p.config(), b"\x00\xffgarbage").unwrap();
        assert!(reason(p.read_config_checked(&id)).starts_with("is not a container record"));
        std::fs::write(p.config(), b"{}").unwrap();
        assert_eq!(reason(p.read_config_checked(&id)), "holds no container record");
        let other = ContainerRecord { id: "d".repeat(64), ..Default::default() };
        std::fs::write(p.config(), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(reason(p.read_config_checked(&id)).contains(&other.id));
        let rec = ContainerRecord { id: id.clone(), name: "n".into(), ..Default::default() };
        p.write_config(&rec).unwrap();
        assert_eq!(p.read_config_checked(&id).unwrap().map(|r| r.name), Some("n".into()));

        // State: missing is a created container; empty or garbage is damage.
        assert!(!p.read_state_checked().unwrap().has_been_started);
        for (bytes, want) in [
            (&b""[..], "is empty"),
            (b"{\"State\": garb", "is not a state record"),
            (b"\x00\x01binary", "cannot be read"),
        ] {
            std::fs::write(p.state(), bytes).unwrap();
            let d = p.read_state_checked().unwrap_err();
            assert_eq!(d.file, p.state());
            assert!(d.reason.starts_with(want), "{}", d.reason);
        }
        let st = StateRecord { has_been_started: true, ..Default::default() };
        p.write_state(&st).unwrap();
        assert!(p.read_state_checked().unwrap().has_been_started);
    }
}
