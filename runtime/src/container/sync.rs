//! Watch-mode sync: host paths mirrored into a running container's filesystem in one pass.
//!
//! Compose sends a tar through the API and runs `rm -rf` in the container for deletions, which
//! needs `rm` in the image. berth owns the container's filesystem: every change is made through
//! one directory fd of `/proc/<pid>/root` (volumes and binds as the container sees them), with
//! the same in-root resolution as `cp` (see the copy module), and no process in the container.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::ContainerError;
use super::copy::{clean, entry_names, in_entry, joined, sys};
use crate::Engine;

/// One path to mirror: what is at `host` now (or its absence) becomes `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChange {
    /// The changed path on the host (it may be gone: then the target is removed).
    pub host: PathBuf,
    /// The absolute path in the container.
    pub target: String,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Targets written (files, directories with their contents, symlinks).
    pub copied: usize,
    /// Targets removed because their host path is gone.
    pub removed: usize,
}

impl Engine {
    /// Mirrors `changes` into running container `key`, in order: a host path that exists is
    /// copied over its target (uid, gid and mode kept, as compose's sync does; missing parent
    /// directories made; a file replacing a directory or the other way round; a directory
    /// made or updated alone, without what it holds), one that is gone has its target removed
    /// with everything under it. Refused unless the container runs.
    pub async fn container_sync(
        &self,
        key: &str,
        changes: Vec<SyncChange>,
    ) -> Result<SyncReport, ContainerError> {
        let (e, key) = (self.clone(), key.to_string());
        crate::engine::blocking(move || {
            let root = e.running_root(&key)?;
            let mut dirs = Dirs { root: root.as_fd(), open: HashMap::new() };
            let mut report = SyncReport::default();
            for c in &changes {
                sync_one(&mut dirs, c, &mut report)?;
            }
            Ok(report)
        })
        .await
    }
}

/// The container directories one sync opened, by path: a burst of files in one directory
/// resolves it once. Forgotten whenever something is removed (an fd kept then could name a
/// directory that is no longer at its path).
struct Dirs<'a> {
    root: BorrowedFd<'a>,
    open: HashMap<Vec<String>, OwnedFd>,
}

impl Dirs<'_> {
    /// Directory `parts`, made with its missing parents (0755, root-owned, as a tar extraction
    /// makes implied parents).
    fn make(&mut self, parts: &[String]) -> Result<BorrowedFd<'_>, ContainerError> {
        if !self.open.contains_key(parts) {
            let fd = make_dirs_in(self.root, parts)?;
            self.open.insert(parts.to_vec(), fd);
        }
        match self.open.get(parts) {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(ContainerError::Internal("sync: directory cache".into())),
        }
    }

    fn forget(&mut self) {
        self.open.clear();
    }
}

fn sync_one(
    dirs: &mut Dirs<'_>,
    change: &SyncChange,
    report: &mut SyncReport,
) -> Result<(), ContainerError> {
    let (parts, _) = clean(&change.target);
    let Some((name, parent)) = parts.split_last() else {
        return Err(ContainerError::Invalid(format!(
            "cannot sync onto the container's root (from {})",
            change.host.display()
        )));
    };
    match change.host.symlink_metadata() {
        Ok(meta) => {
            // A different kind of entry in the way goes first: the host's now wins.
            let there = {
                let dir = dirs.make(parent)?;
                rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .ok()
                    .map(|st| FileType::from_raw_mode(st.st_mode))
            };
            if there.is_some_and(|t| (t == FileType::Directory) != meta.is_dir()) {
                let dir = dirs.make(parent)?;
                remove_entry(dir, name)?;
                dirs.forget();
            }
            let dir = dirs.make(parent)?;
            if meta.is_dir() {
                // The directory alone: the caller lists what it holds that is to be synced
                // (ignored paths are not).
                sync_dir(dir, name, &meta)?;
            } else {
                in_entry(&change.host, &meta, dir, name, super::CopyOptions { archive: true })?;
            }
            report.copied += 1;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Nothing to remove when the parent is not there either.
            let Ok(dir) = open_in(dirs.root, parent, OFlags::PATH | OFlags::DIRECTORY) else {
                return Ok(());
            };
            if rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                remove_entry(dir.as_fd(), name)?;
                dirs.forget();
                report.removed += 1;
            }
        }
        Err(e) => {
            return Err(ContainerError::Io { op: "stat", path: change.host.clone(), source: e });
        }
    }
    Ok(())
}

/// Makes directory `name` in `dir` (or keeps the one there) with `meta`'s mode and owner.
fn sync_dir(
    dir: BorrowedFd<'_>,
    name: &str,
    meta: &std::fs::Metadata,
) -> Result<(), ContainerError> {
    use std::os::unix::fs::MetadataExt;
    let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
    match rustix::fs::mkdirat(dir, name, mode) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(sys("mkdir", name)(e)),
    }
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::process::Uid::from_raw(meta.uid())),
        Some(rustix::process::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown", name))?;
    rustix::fs::chmodat(dir, name, mode, AtFlags::empty()).map_err(sys("chmod", name))
}

fn open_in(root: BorrowedFd<'_>, parts: &[String], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        joined(parts),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens directory `parts` inside the root, making the missing ones (0755, root-owned, as a
/// tar extraction makes implied parents).
fn make_dirs_in(root: BorrowedFd<'_>, parts: &[String]) -> Result<OwnedFd, ContainerError> {
    let mut dir = open_in(root, &[], OFlags::PATH | OFlags::DIRECTORY).map_err(sys("open", "/"))?;
    for (i, p) in parts.iter().enumerate() {
        let here = &parts[..=i];
        dir = match open_in(root, here, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, p.as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(sys("mkdir", format!("/{}", here.join("/")))(e)),
                }
                open_in(root, here, OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(sys("open", format!("/{}", here.join("/"))))?
            }
            Err(e) => return Err(sys("open", format!("/{}", here.join("/")))(e)),
        };
    }
    Ok(dir)
}

/// Removes entry `name` of `dir`, a directory with everything in it (never following a
/// symlink out of it).
fn remove_entry(dir: BorrowedFd<'_>, name: &str) -> Result<(), ContainerError> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(sys("stat", name))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", name))?;
        for n in entry_names(&sub, name)? {
            remove_entry(sub.as_fd(), &n)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(sys("rmdir", name))
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(sys("unlink", name))
    }
}
