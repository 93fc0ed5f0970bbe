//! On-disk helpers: flock guards, atomic JSON writes, random ids (small copies of berth-store's
//! StateRoot helpers, so this crate needs nothing of the runtime's side).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{NetworkError, Result};

/// An exclusive `flock` held until drop.
#[derive(Debug)]
pub struct Lock {
    _flock: nix::fcntl::Flock<File>,
}

/// The lock file at `path`, made with its parent directory if missing.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| NetworkError::io("create directory", dir, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| NetworkError::io("open lock file", path, e))
}

impl Lock {
    /// Blocks until the exclusive lock on `path` (created with its parent if missing) is held.
    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = open_lock_file(path)?;
        let flock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, errno)| NetworkError::io("lock", path, errno.into()))?;
        Ok(Lock { _flock: flock })
    }
}

impl Lock {
    /// Takes the lock on `path` if free; `Ok(None)` when another process holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Lock { _flock: flock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(NetworkError::io("lock", path, errno.into())),
        }
    }
}

/// Takes an exclusive `flock` on `path` (created if missing) without blocking, as a plain
/// descriptor: the lock belongs to the open file, so it stays held in every process this
/// descriptor is passed to until the last copy closes (dropping it does not unlock, unlike
/// [`Lock`]). `Ok(None)` when another holder has it.
pub fn try_lock_passable(path: &Path) -> Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| NetworkError::io("open lock file", path, e))?;
    // SAFETY: flock on a descriptor we own; it touches no memory.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Some(file.into()));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(None);
    }
    Err(NetworkError::io("lock", path, e))
}

/// Writes `value` as JSON to `path` atomically (temp file, rename). No fsync: network records
/// describe kernel state that a reboot wipes anyway, and connect must stay fast.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| NetworkError::Json { path: path.to_path_buf(), source: e })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, rename). On any
/// error the temp file is removed again (a full disk must not leave one behind); errors name
/// `path`, the record the caller meant to write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path);
    let written = File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(NetworkError::io("write", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        NetworkError::io("rename a new version over", path, e)
    })
}

/// The temporary file [`write_atomic`] writes before renaming it to `path`: in the same
/// directory (so the rename is atomic), hidden, and named after the writer's pid.
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}{TEMP_INFIX}{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("record"),
        std::process::id()
    ))
}

/// What names of temporary files contain (`.<name>.tmp<pid>`, here and in berth-slotfile).
pub const TEMP_INFIX: &str = ".tmp";

/// Reads a JSON record; `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NetworkError::Json { path: path.to_path_buf(), source: e }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetworkError::io("read", path, e)),
    }
}

/// A random 64-hex-digit id like docker's.
pub fn random_id() -> Result<String> {
    let mut buf = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| NetworkError::io("read", "/dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// FNV-1a of `s`, for short deterministic names (host-side veth names).
pub fn short_hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}
