//! File locks between processes sharing a state root: a pull holds `locks/pull` shared (so
//! prune leaves its not-yet-committed layers alone) and `locks/layer-<chain>` exclusive while
//! it fetches that layer (so two pulls of the same layer fetch it once).

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use super::ImageError;

/// A held `flock`, released when dropped (closing the file).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

fn open(path: &Path) -> Result<File, ImageError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| ImageError::io("open lock file", path, e))
}

fn take(path: &Path, op: FlockOperation) -> Result<Option<FileLock>, ImageError> {
    let file = open(path)?;
    loop {
        match flock(&file, op) {
            Ok(()) => return Ok(Some(FileLock { _file: file })),
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(ImageError::io("lock", path, e.into())),
        }
    }
}

/// Blocks until `path` is locked shared.
pub(crate) fn shared(path: &Path) -> Result<FileLock, ImageError> {
    take(path, FlockOperation::LockShared)?
        .ok_or_else(|| ImageError::io("lock", path, std::io::ErrorKind::WouldBlock.into()))
}

/// Blocks until `path` is locked exclusively.
pub(crate) fn exclusive(path: &Path) -> Result<FileLock, ImageError> {
    take(path, FlockOperation::LockExclusive)?
        .ok_or_else(|| ImageError::io("lock", path, std::io::ErrorKind::WouldBlock.into()))
}

/// Locks `path` exclusively if nobody holds it; None otherwise.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>, ImageError> {
    take(path, FlockOperation::NonBlockingLockExclusive)
}
