//! The state root on disk: directory layout, a root-wide lock and atomic JSON records.
//!
//! Layout under the root (default `/var/lib/berth`, `--root` / `BERTH_ROOT`):
//! `images/` (blobs, layers, index), `containers/<id>/`, `volumes/<name>/`, `networks/`, `lock`,
//! `events.jsonl` (+ `.1`, the event journal: [`events`]).

pub mod events;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default state root when neither `--root` nor `BERTH_ROOT` is given.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// Errors from reading or writing state on disk.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a state path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A state record could not be (de)serialised.
    #[error("corrupt state record {path}: {source}")]
    Json {
        /// The record's path.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl StoreError {
    /// Wraps an io::Error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io { op, path: path.into(), source }
    }
}

/// The state root directory and its well-known subdirectories.
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
}

impl StateRoot {
    /// Opens (creating if needed) the state root at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        for sub in ["", "images", "containers", "volumes", "networks"] {
            let p = path.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::io("create directory", &p, e))?;
        }
        Ok(StateRoot { path })
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `images/` under the root.
    pub fn images_dir(&self) -> PathBuf {
        self.path.join("images")
    }

    /// `containers/` under the root.
    pub fn containers_dir(&self) -> PathBuf {
        self.path.join("containers")
    }

    /// `volumes/` under the root.
    pub fn volumes_dir(&self) -> PathBuf {
        self.path.join("volumes")
    }

    /// `networks/` under the root.
    pub fn networks_dir(&self) -> PathBuf {
        self.path.join("networks")
    }

    /// Takes the root-wide exclusive lock (blocking). Hold it across read-modify-write of shared
    /// records (image index, names, volume and network records) so two CLIs never corrupt state.
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        LockGuard::exclusive(&self.path.join("lock"))
    }
}

/// An exclusive `flock` on a lock file, released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _flock: nix::fcntl::Flock<File>,
}

impl LockGuard {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io("open lock file", path, e))?;
        let _ = file.as_fd();
        let flock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| StoreError::io("lock", path, errno.into()))?;
        Ok(LockGuard { _flock: flock })
    }

    /// Blocks until the exclusive lock on the directory `dir` itself is held (no lock file:
    /// one inode fewer per container; the lock follows the directory through a rename).
    pub fn exclusive_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::dir_lock(dir, nix::fcntl::FlockArg::LockExclusive)
    }

    /// Like [`LockGuard::exclusive_dir`] but fails at once when someone holds the lock.
    pub fn try_exclusive_dir(dir: &Path) -> Result<Self, StoreError> {
        Self::dir_lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock)
    }

    fn dir_lock(dir: &Path, how: nix::fcntl::FlockArg) -> Result<Self, StoreError> {
        let file = File::open(dir).map_err(|e| StoreError::io("open directory", dir, e))?;
        let flock = nix::fcntl::Flock::lock(file, how)
            .map_err(|(_, errno)| StoreError::io("lock", dir, errno.into()))?;
        Ok(LockGuard { _flock: flock })
    }
}

/// Writes `value` as JSON to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| StoreError::Json { path: path.to_path_buf(), source: e })?;
    write_atomic(path, &bytes)
}

/// Writes `value` as JSON into the two-slot record file at `path`, in place (see
/// [`berth_slotfile`]; hold the record's lock). No new inode per write, no fsync: readers never
/// see a torn record, and a power loss leaves this or the previous version. For records that
/// change often and are repaired after a reboot anyway (a container's run state).
pub fn write_json_in_place<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| StoreError::Json { path: path.to_path_buf(), source: e })?;
    berth_slotfile::write(path, &bytes).map_err(|e| StoreError::io("write", path, e))
}

/// Reads a record written by [`write_json_in_place`] (or an older plain-JSON one); `Ok(None)`
/// when the file does not exist or is empty.
pub fn read_json_in_place<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match berth_slotfile::read(path).map_err(|e| StoreError::io("read", path, e))? {
        None => Ok(None),
        Some(bytes) if bytes.is_empty() => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Json { path: path.to_path_buf(), source: e }),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("record"),
        std::process::id()
    ))
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_file(path, bytes, true)
}

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let tmp = temp_path(path);
    let mut f = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| StoreError::io("write", &tmp, e))?;
    if durable {
        f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))
}

/// Reads a JSON record; `Ok(None)` when the file does not exist, or is empty.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Json { path: path.to_path_buf(), source: e }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path().join("r")).unwrap();
        let p = root.path().join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        let _g = root.lock().unwrap();
        write_json_atomic(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        fs::write(&p, b"").unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        // In-place records read the old plain form, then switch to slots.
        write_json_atomic(&p, &vec![4u32]).unwrap();
        assert_eq!(read_json_in_place::<Vec<u32>>(&p).unwrap(), Some(vec![4]));
        write_json_in_place(&p, &vec![3u32]).unwrap();
        assert_eq!(read_json_in_place::<Vec<u32>>(&p).unwrap(), Some(vec![3]));
    }
}
