//! The container name index and the removal of container directories outside the locks.
//!
//! `container-names/<name>` holds the id of the container that owns `<name>` (in an xattr, or as
//! its content), so create and
//! rename check a name with one lookup instead of reading every record. The index is written
//! under the root lock; an entry counts only while `containers/<id>/config.json` still carries
//! that name, so an entry left by a crash (or by a create that failed) is simply taken over.
//! A state root made before the index existed gets it built once, from the records, on first use.
//!
//! Removal renames `containers/<id>` to `containers/.rm-<id>` under the locks (listings skip
//! dot entries) and deletes it after they are released; a `.rm-*` left by a crash is deleted
//! by the next removal or listing. Whoever deletes one holds the container's lock, a `flock` on
//! the directory itself, which moves with it. Create fills `containers/.new-<id>` under that lock
//! and renames it into place when complete; one left by a killed create is deleted the same way.
//!
//! Deleting is mostly recycling: a removed overlay container's directory is emptied down to the
//! files create writes again (config, state, /etc files, the monitor's log cut to 0, an empty
//! upper and work directory; the container's log is deleted) and renamed `.free-<id>`, a pool
//! entry; create claims one instead of making new files. On this VM's journal-less ext4 every
//! inode allocation scans past each inode freed in the last 30 s, so a container life that
//! allocates and frees ~none keeps `up` after `down` linear in the number of containers. An
//! entry is cleaned before it gets its `.free-` name, so a `.free-*` is always clean; a removal
//! killed midway leaves a `.rm-*`, swept as before.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use berth_store::{LockGuard, StateRoot, StoreError};

use super::record::ContainerPaths;
use crate::Engine;

/// Prefix of a container directory being deleted.
pub(crate) const REMOVING_PREFIX: &str = ".rm-";
/// Prefix of a container directory being filled by create (renamed to `<id>` when complete).
pub(crate) const CREATING_PREFIX: &str = ".new-";
/// Prefix of an emptied container directory kept for reuse by create (the pool).
pub(crate) const FREE_PREFIX: &str = ".free-";
/// Most pool entries kept; beyond, removed directories are deleted.
pub(crate) const POOL_CAP: usize = 128;
/// The files of a container directory that a pool entry keeps: create rewrites each in place
/// (and the monitor's log is cut to 0 when recycled), so their inodes and blocks are reused.
/// Not the container's log: a `logs -f` may still hold it and must read it to its end, never
/// into the next container's lines (so it costs one inode per container life).
const REUSED_FILES: [&str; 6] =
    ["config.json", "state.json", "hostname", "hosts", "resolv.conf", "monitor.log"];
/// The overlay index directory a probe with `index=on` makes in the work directory.
const PROBE_INDEX: &str = "index";
/// Mode of the files create writes in a container directory (0666 less the usual umask).
const FILE_MODE: u32 = 0o644;
/// Mode of `rootfs/upper`, which is the container's `/` (as docker's overlay `diff`).
const UPPER_MODE: u32 = 0o755;

/// The name index directory of `root`.
pub(crate) fn index_dir(root: &StateRoot) -> PathBuf {
    root.path().join("container-names")
}

/// The xattr holding the owner's id on an index entry: it lives in the inode, so the entry has
/// no data block to allocate, nor to free at removal (on a journal-less ext4 mounted with
/// `discard`, every freed block is a synchronous discard). Entries from before, or on a file
/// system without user xattrs, hold the id as their content.
const OWNER_XATTR: &str = "user.berth.id";

/// The id an index entry names (its content, else its owner xattr).
pub(crate) fn read_owner(path: &Path) -> Option<String> {
    let content = fs::read_to_string(path).ok()?;
    let content = content.trim();
    if !content.is_empty() {
        return Some(content.to_string());
    }
    let mut buf = [0u8; 128];
    let n = rustix::fs::getxattr(path, OWNER_XATTR, &mut buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok().map(str::to_string).filter(|s| !s.is_empty())
}

/// Subdirectory of the name index holding released entries for reuse (a name never starts
/// with a dot, so it cannot be an entry).
const FREE_NAMES: &str = ".free";

/// Whether the index entry `p` keeps its owner in the xattr (an empty file), so it can be
/// handed to another owner in place; an older entry holds the id as its content.
fn owner_in_xattr(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0)
}

/// Sets the owner xattr of an index entry.
fn set_owner(path: &Path, id: &str) -> rustix::io::Result<()> {
    rustix::fs::lsetxattr(path, OWNER_XATTR, id.as_bytes(), rustix::fs::XattrFlags::empty())
}

/// Moves the released entry `p` (held by `id`, id in its xattr) into the free entries, unless
/// they are [`POOL_CAP`] already (hold the root lock). False when it was not moved.
fn free_entry(dir: &Path, p: &Path, id: &str) -> bool {
    if !owner_in_xattr(p) {
        return false;
    }
    let free = dir.join(FREE_NAMES);
    let count = match fs::read_dir(&free) {
        Ok(rd) => rd.count(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&free) {
            Ok(()) => 0,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    count < POOL_CAP && rename_noreplace(p, &free.join(id)).is_ok()
}

/// Takes a free entry as `p`, owned by `id` (hold the root lock). False when there is none or
/// `p` exists (then the caller checks its owner as for any existing entry).
fn claim_free_entry(dir: &Path, p: &Path, id: &str) -> bool {
    let Ok(mut rd) = fs::read_dir(dir.join(FREE_NAMES)) else { return false };
    let Some(Ok(e)) = rd.next() else { return false };
    let entry = e.path();
    // The owner is set before the entry gets the name: a crash in between leaves a free entry
    // naming `id`, which nothing reads.
    set_owner(&entry, id).is_ok() && rename_noreplace(&entry, p).is_ok()
}

/// Whether container `id`'s record still carries `name`. A record that can't be read keeps
/// its name: it may be a running container, and taking its name would make a duplicate.
fn owns(root: &StateRoot, id: &str, name: &str) -> bool {
    if !crate::ids::is_id(id) {
        return false;
    }
    match ContainerPaths::new(root, id).read_config_checked(id) {
        Ok(Some(r)) => r.name == name,
        Ok(None) => false,
        Err(_) => true,
    }
}

impl Engine {
    /// The index directory, built from the records when missing (hold the root lock).
    fn name_index(&self) -> Result<PathBuf, StoreError> {
        let dir = index_dir(self.root());
        if dir.is_dir() {
            return Ok(dir);
        }
        // Built aside and renamed into place, so a half-built index is never used.
        let tmp = self.root().path().join(format!(".container-names.tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| StoreError::io("create directory", &tmp, e))?;
        for rec in self.all_records() {
            let p = tmp.join(&rec.name);
            fs::write(&p, &rec.id).map_err(|e| StoreError::io("write", &p, e))?;
        }
        fs::rename(&tmp, &dir).map_err(|e| StoreError::io("rename", &dir, e))?;
        Ok(dir)
    }

    /// Reserves `name` for container `id` (hold the root lock); returns the id of the
    /// container that holds it instead, if another one does.
    pub(crate) fn reserve_name(&self, name: &str, id: &str) -> Result<Option<String>, StoreError> {
        let dir = self.name_index()?;
        let p = dir.join(name);
        loop {
            if claim_free_entry(&dir, &p, id) {
                return Ok(None);
            }
            match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(mut f) => {
                    if set_owner(&p, id).is_err() {
                        f.write_all(id.as_bytes()).map_err(|e| StoreError::io("write", &p, e))?;
                    }
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if let Some(owner) = read_owner(&p)
                        && owner != id
                        && owns(self.root(), &owner, name)
                    {
                        return Ok(Some(owner));
                    }
                    // Stale (its container is gone or renamed): take it over, in place when
                    // the id is in its xattr (no inode freed and allocated again).
                    if owner_in_xattr(&p) && set_owner(&p, id).is_ok() {
                        return Ok(None);
                    }
                    fs::remove_file(&p).map_err(|e| StoreError::io("remove", &p, e))?;
                }
                Err(e) => return Err(StoreError::io("create", &p, e)),
            }
        }
    }

    /// Drops `name` from the index if container `id` holds it (hold the root lock): the entry
    /// is kept in `container-names/.free/` for the next reservation when there is room.
    pub(crate) fn release_name(&self, name: &str, id: &str) {
        let dir = index_dir(self.root());
        let p = dir.join(name);
        if read_owner(&p).as_deref() == Some(id) && !free_entry(&dir, &p, id) {
            let _ = fs::remove_file(&p);
        }
    }

    /// Moves container `id`'s directory aside (hold the root lock; `lock` is the container's
    /// lock, which stays on the moved directory) and returns a handle that deletes it; call
    /// [`Removing::finish`] after releasing the root lock.
    pub(crate) fn move_aside(
        &self,
        paths: &ContainerPaths,
        id: &str,
        lock: LockGuard,
    ) -> Result<Removing, StoreError> {
        // A `berth cp` killed midway leaves its overlay mounted there; deleting through a
        // mount would delete inside the mounted tree (volumes bound into it included).
        let _ = nix::mount::umount2(&paths.dir.join("cp"), nix::mount::MntFlags::MNT_DETACH);
        let aside = self.root().containers_dir().join(format!("{REMOVING_PREFIX}{id}"));
        // A leftover of the same id cannot exist (ids are random), but never rename onto one.
        if aside.exists() {
            purge(&aside);
        }
        fs::rename(&paths.dir, &aside).map_err(|e| StoreError::io("rename", &paths.dir, e))?;
        Ok(Removing { dir: Some(aside), _lock: Some(lock), proven_dead: true })
    }

    /// `.rm-*` directories nobody is deleting and `.new-*` ones no create is filling (left by
    /// a crash), claimed for deletion.
    pub(crate) fn leftover_removals(&self) -> Vec<Removing> {
        let mut out = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root().containers_dir()) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if (name.starts_with(REMOVING_PREFIX) || name.starts_with(CREATING_PREFIX))
                    && let Some(r) = Removing::try_claim(e.path())
                {
                    out.push(r);
                }
            }
        }
        out
    }
}

/// A container directory moved aside, locked by us, to be deleted.
pub(crate) struct Removing {
    dir: Option<PathBuf>,
    _lock: Option<LockGuard>,
    /// The remover showed the container dead before moving it aside; a leftover found by a
    /// sweep is checked again before it goes.
    proven_dead: bool,
}

impl Removing {
    /// Claims `dir` unless someone holds its lock (a removal deleting it right now).
    fn try_claim(dir: PathBuf) -> Option<Removing> {
        let lock = LockGuard::try_exclusive_dir(&dir).ok()?;
        Some(Removing { dir: Some(dir), _lock: Some(lock), proven_dead: false })
    }

    /// Recycles the directory into the pool, or else deletes it (a failure is logged; the next
    /// removal or listing retries). A leftover whose container still shows signs of life is
    /// left in place.
    pub(crate) fn finish(mut self) {
        let Some(d) = self.dir.take() else { return };
        if !self.proven_dead
            && let Some(ev) = leftover_alive(&d)
        {
            tracing::warn!(
                path = %d.display(),
                "a removed container's directory is still in use ({}): left in place",
                ev.describe()
            );
            return;
        }
        dispose(&d);
    }
}

/// What shows the container of the leftover directory `dir` (`.rm-<id>`, `.new-<id>`) alive.
fn leftover_alive(dir: &Path) -> Option<super::liveness::Evidence> {
    let name = dir.file_name()?.to_str()?;
    let id = name.strip_prefix(REMOVING_PREFIX).or_else(|| name.strip_prefix(CREATING_PREFIX))?;
    let st = ContainerPaths { dir: dir.to_path_buf() }.read_state_checked().ok();
    let ev = super::liveness::gather(dir, id, st.as_ref(), st.is_none(), true);
    (!ev.is_dead()).then_some(ev)
}

/// Recycles a moved-aside or abandoned container directory whose lock the caller holds into
/// the pool; deletes it when it cannot be (not an overlay container, pool full, any failure).
pub(crate) fn dispose(dir: &Path) {
    if let Err(e) = recycle(dir) {
        tracing::debug!(path = %dir.display(), "container directory not recycled: {e}");
        purge(dir);
    }
}

fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Pool entries now, counted from one listing of `containers/`.
fn pool_size(containers: &Path) -> io::Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(containers)? {
        if e?.file_name().as_encoded_bytes().starts_with(FREE_PREFIX.as_bytes()) {
            n += 1;
        }
    }
    Ok(n)
}

fn other(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

/// Renames `from` to `to` unless `to` exists (a plain rename would replace an empty directory).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// Empties `dir` (a container directory, locked by the caller, not published under `<id>`)
/// down to a pool entry and renames it `.free-<its id>`.
fn recycle(dir: &Path) -> io::Result<()> {
    let upper = dir.join("rootfs/upper");
    let work = dir.join("rootfs/work");
    if !is_real_dir(&upper) || !is_real_dir(&work) {
        return Err(other("not an overlay container directory"));
    }
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| other("bad name"))?;
    let id = name
        .strip_prefix(REMOVING_PREFIX)
        .or_else(|| name.strip_prefix(CREATING_PREFIX))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| other("not a removed container directory"))?;
    let containers = dir.parent().ok_or_else(|| other("no parent directory"))?;
    if pool_size(containers)? >= POOL_CAP {
        return Err(other("the pool is full"));
    }
    // A `berth cp` into the stopped container holds its start lock while its overlay of this
    // upper directory is mounted: what it writes must never reach a new container.
    let _start = LockGuard::try_exclusive_dir(&dir.join("rootfs"))
        .map_err(|_| other("a copy is using the container's files"))?;
    if nix::mount::umount2(&dir.join("cp"), nix::mount::MntFlags::MNT_DETACH).is_ok() {
        return Err(other("a copy's overlay was still mounted"));
    }
    // The upper directory is the container's `/`: everything the container wrote goes, and its
    // own mode, owner and overlay marks (trusted.overlay.*) become what create makes.
    crate::inplace::empty_dir(&upper, |_, _| false)?;
    std::os::unix::fs::lchown(&upper, Some(0), Some(0))?;
    fs::set_permissions(&upper, std::os::unix::fs::PermissionsExt::from_mode(UPPER_MODE))?;
    crate::inplace::clear_xattrs(&upper)?;
    // The removal's overlay probe (`liveness::overlay_in_use`) made `work/index`: kept, empty
    // and unmarked, so that the next probe needn't allocate it again (a mount without
    // `index=on`, the container's, ignores it).
    crate::inplace::empty_dir(&work, |n, t| t.is_dir() && n == PROBE_INDEX)?;
    crate::inplace::clear_xattrs(&work)?;
    let index = work.join(PROBE_INDEX);
    if is_real_dir(&index) {
        crate::inplace::empty_dir(&index, |_, _| false)?;
        crate::inplace::clear_xattrs(&index)?;
    }
    crate::inplace::empty_dir(&dir.join("rootfs"), |n, t| {
        t.is_dir() && (n == "upper" || n == "work")
    })?;
    // Rotated logs, the stdin fifo, cp/, marks, temp files: everything create doesn't rewrite.
    crate::inplace::empty_dir(dir, |n, t| {
        (t.is_file() && REUSED_FILES.contains(&n)) || (t.is_dir() && n == "rootfs")
    })?;
    // The record may hold secrets (env): removed means gone. Overwritten in place, so its
    // block stays for the next record.
    let config = dir.join("config.json");
    if config.exists() {
        crate::inplace::write_in_place(&config, b"{}\n", false)?;
    }
    match fs::OpenOptions::new().write(true).open(dir.join("monitor.log")) {
        Ok(f) => f.set_len(0)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The /etc files are bind-mounted read-write into the container, which may have changed
    // their mode, owner, ACLs or xattrs (create rewrites only their content).
    for f in ["hostname", "hosts", "resolv.conf"] {
        let p = dir.join(f);
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        crate::inplace::clear_xattrs(&p)?;
        if m.mode() & 0o7777 != FILE_MODE || m.uid() != 0 || m.gid() != 0 {
            // chown first: it drops set-id bits and file capabilities.
            std::os::unix::fs::lchown(&p, Some(0), Some(0))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    rename_noreplace(dir, &containers.join(format!("{FREE_PREFIX}{id}")))
}

/// Takes a pool entry for create: renames it to `dir` (a `.new-<id>` path) and returns its
/// lock; None when there is no usable entry (then create makes a fresh directory).
/// `start` spreads concurrent creates over the entries.
pub(crate) fn claim_free(dir: &Path, start: usize) -> Option<LockGuard> {
    let containers = dir.parent()?;
    let mut free = Vec::new();
    for e in fs::read_dir(containers).ok()?.flatten() {
        if e.file_name().as_encoded_bytes().starts_with(FREE_PREFIX.as_bytes()) {
            free.push(e.path());
        }
    }
    // A few tries: the others are likely being claimed by concurrent creates too.
    for k in 0..free.len().min(8) {
        let entry = &free[(start + k) % free.len()];
        let Ok(lock) = LockGuard::try_exclusive_dir(entry) else { continue };
        // `.free-` names are never given twice (each carries a dead container's id) and only a
        // lock holder renames one: the rename moves the directory we locked, or fails.
        if rename_noreplace(entry, dir).is_err() {
            continue;
        }
        if is_real_dir(&dir.join("rootfs/upper")) && is_real_dir(&dir.join("rootfs/work")) {
            return Some(lock);
        }
        purge(dir);
    }
    None
}

/// Deletes a moved-aside container directory, tolerating a concurrent deleter.
fn purge(dir: &Path) {
    let _ = nix::mount::umount2(&dir.join("cp"), nix::mount::MntFlags::MNT_DETACH);
    for attempt in 0..3 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) if attempt == 2 => {
                tracing::warn!(path = %dir.display(), "cannot delete a removed container's directory: {e}");
            }
            Err(_) => {}
        }
    }
}
