//! `cp` between the host and a container's filesystem, with docker cp's path rules.
//!
//! Container paths are resolved with openat2(RESOLVE_IN_ROOT) from a directory fd of the
//! container's root, so `..` and symlinks (absolute or relative) stay inside it; the last
//! component is opened with O_NOFOLLOW, so a symlink is copied as a symlink, never followed out.
//! The root is `/proc/<pid>/root` of a running container (which shows its volumes and binds as
//! the container sees them); for a stopped one, its overlay is mounted on a private directory
//! under the container's state dir for the copy, with its volumes and binds bound in at their
//! destinations, and the start lock held so it cannot start meanwhile.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_store::LockGuard;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::process::{Gid, Uid};

use super::ContainerError;
use super::error::io_err;
use crate::Engine;

/// Options of a copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Keep uid/gid (`-a`); otherwise copies into a container belong to root and copies out to
    /// the caller.
    pub archive: bool,
}

fn invalid(m: String) -> ContainerError {
    ContainerError::Invalid(m)
}

pub(super) fn sys(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(rustix::io::Errno) -> ContainerError {
    let path = path.into();
    move |e| ContainerError::Io { op, path, source: e.into() }
}

/// A container path cleaned lexically (`.`/`..`/`//`, `..` stops at `/`), and whether it asked
/// for a directory's contents (`dir/.`).
pub(super) fn clean(path: &str) -> (Vec<String>, bool) {
    let contents = path.ends_with("/.") || path == ".";
    let mut parts: Vec<String> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p.to_string()),
        }
    }
    (parts, contents)
}

pub(super) fn joined(parts: &[String]) -> String {
    if parts.is_empty() { ".".to_string() } else { parts.join("/") }
}

/// A directory inside the container, resolved without leaving its root.
fn open_dir_in(root: BorrowedFd<'_>, parts: &[String]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        joined(parts),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// The container's root directory for a copy, and what must live as long as it is used.
struct RootView {
    fd: OwnedFd,
    _mount: Option<MountGuard>,
    _lock: Option<LockGuard>,
}

/// An overlay mounted for a copy; unmounted (and its directory removed) on drop.
struct MountGuard {
    dir: PathBuf,
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Binds the container's volumes and bind mounts into the overlay mounted on `dir` (root fd
/// `root`), at their destinations resolved inside it, as the container would see them. A
/// destination that does not exist yet (never started) is skipped. The overlay mount is made
/// private first, so none of this propagates elsewhere; the guard's lazy unmount takes it all.
fn mount_volumes(
    root: &OwnedFd,
    dir: &Path,
    mounts: &[super::api::MountPoint],
) -> Result<(), ContainerError> {
    use nix::mount::{MsFlags, mount};
    let merr = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: nix::errno::Errno| ContainerError::Io { op, path, source: e.into() }
    };
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(merr("make private", dir))?;
    let mut binds: Vec<&super::api::MountPoint> =
        mounts.iter().filter(|m| m.typ != "tmpfs").collect();
    // Outer destinations first, so nested ones land on top of them.
    binds.sort_by_key(|m| m.destination.matches('/').count());
    for m in binds {
        let (parts, _) = clean(&m.destination);
        let Ok(at) = rustix::fs::openat2(
            root,
            joined(&parts),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        // The resolved destination, by fd: no path that the container's symlinks could redirect.
        let target = PathBuf::from(format!("/proc/self/fd/{}", at.as_raw_fd()));
        let source = Path::new(&m.source);
        mount(
            Some(source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(merr("bind", source))?;
        if !m.rw {
            // `at` still names what is under the new mount: resolve again to reach the bind.
            let top = rustix::fs::openat2(
                root,
                joined(&parts),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(sys("open", source))?;
            let top_path = PathBuf::from(format!("/proc/self/fd/{}", top.as_raw_fd()));
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &top_path, None::<&str>, flags, None::<&str>)
                .map_err(merr("remount read-only", source))?;
        }
    }
    Ok(())
}

impl Engine {
    /// Opens the root a copy works in: the running container's, or its overlay mounted for
    /// the copy when it is stopped.
    fn copy_root(&self, key: &str) -> Result<RootView, ContainerError> {
        let l = self.load(key)?;
        let lock = l.paths.start_lock()?;
        let st = self.checked_state(&l.paths)?;
        let s = &st.state;
        if s.restarting {
            return Err(invalid(format!(
                "container {} is restarting: copy when it runs or after it stopped",
                l.rec.name
            )));
        }
        if s.running {
            let fd = proc_root(&l.rec.name, s.pid as i32, st.pid_start)?;
            drop(lock);
            return Ok(RootView { fd, _mount: None, _lock: None });
        }
        if let Some(dir) = &l.rec.rootfs_dir {
            let fd = rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open", dir))?;
            return Ok(RootView { fd, _mount: None, _lock: Some(lock) });
        }
        let dir = l.paths.dir.join("cp");
        // A copy killed midway left its mount: take it away first (we hold the start lock).
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let lowers: Vec<String> =
            l.rec.layers.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            l.paths.upper().display(),
            l.paths.work().display()
        );
        let guard = MountGuard { dir: dir.clone() };
        nix::mount::mount(
            Some("overlay"),
            &dir,
            Some("overlay"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(|e| ContainerError::Io {
            op: "mount overlay on",
            path: dir.clone(),
            source: e.into(),
        })?;
        let fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", &dir))?;
        mount_volumes(&fd, &dir, &l.rec.mounts)?;
        Ok(RootView { fd, _mount: Some(guard), _lock: Some(lock) })
    }

    /// The root directory of running container `key` (`/proc/<pid>/root`); refused when it
    /// does not run.
    pub(super) fn running_root(&self, key: &str) -> Result<OwnedFd, ContainerError> {
        let l = self.load(key)?;
        let st = self.checked_state(&l.paths)?;
        if !st.state.running || st.state.restarting {
            return Err(invalid(format!("container {} is not running", l.rec.name)));
        }
        proc_root(&l.rec.name, st.state.pid as i32, st.pid_start)
    }

    /// Copies `src` (a container path) to `dest` on the host, as `docker cp CONTAINER:SRC DEST`.
    pub async fn container_copy_out(
        &self,
        key: &str,
        src: &str,
        dest: &Path,
        opts: CopyOptions,
    ) -> Result<(), ContainerError> {
        let (e, key, src, dest) =
            (self.clone(), key.to_string(), src.to_string(), dest.to_path_buf());
        crate::engine::blocking(move || {
            let root = e.copy_root(&key)?;
            copy_out(root.fd.as_fd(), &src, &dest, opts)
        })
        .await
    }

    /// Copies `src` on the host into the container at `dest`, as `docker cp SRC CONTAINER:DEST`.
    pub async fn container_copy_in(
        &self,
        key: &str,
        src: &Path,
        dest: &str,
        opts: CopyOptions,
    ) -> Result<(), ContainerError> {
        let (e, key, src, dest) =
            (self.clone(), key.to_string(), src.to_path_buf(), dest.to_string());
        crate::engine::blocking(move || {
            let root = e.copy_root(&key)?;
            copy_in(root.fd.as_fd(), &src, &dest, opts)
        })
        .await
    }
}

/// `/proc/<pid>/root` of container `name`, checked to be its process still (`start`: the
/// recorded start time), not a reused pid.
fn proc_root(name: &str, pid: i32, start: u64) -> Result<OwnedFd, ContainerError> {
    let path = PathBuf::from(format!("/proc/{pid}/root"));
    let fd =
        rustix::fs::open(&path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(sys("open", &path))?;
    if crate::process::process_start_time(pid) != Some(start) {
        return Err(invalid(format!("container {name} stopped during the copy")));
    }
    Ok(fd)
}

fn copy_out(
    root: BorrowedFd<'_>,
    src: &str,
    dest: &Path,
    opts: CopyOptions,
) -> Result<(), ContainerError> {
    let (parts, contents) = clean(src);
    let (parent, name) = match parts.split_last() {
        Some((name, parent)) => (parent.to_vec(), name.clone()),
        None => (Vec::new(), ".".to_string()),
    };
    let dir = open_dir_in(root, &parent).map_err(|e| missing(src, e))?;
    let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| missing(src, e))?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if src.ends_with('/') && !is_dir {
        return Err(invalid(format!("{src}: not a directory")));
    }
    // docker's rules: into an existing directory under the source's name (or its contents,
    // for `src/.`), else at `dest` itself.
    let target = if dest.is_dir() {
        if (contents && is_dir) || name == "." { dest.to_path_buf() } else { dest.join(&name) }
    } else {
        if let Some(p) = dest.parent().filter(|p| !p.as_os_str().is_empty())
            && !p.is_dir()
        {
            return Err(invalid(format!("destination directory {} does not exist", p.display())));
        }
        dest.to_path_buf()
    };
    out_entry(&dir, &name, &target, opts)
}

fn missing(path: &str, e: rustix::io::Errno) -> ContainerError {
    if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR {
        invalid(format!("could not find the file {path} in container"))
    } else {
        ContainerError::Io { op: "resolve", path: path.into(), source: e.into() }
    }
}

/// Copies entry `name` of container directory `dir` to host path `target`.
fn out_entry(
    dir: &OwnedFd,
    name: &str,
    target: &Path,
    opts: CopyOptions,
) -> Result<(), ContainerError> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(sys("stat", name))?;
    let mode = st.st_mode & 0o7777;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open", name))?;
            if !target.is_dir() {
                std::fs::create_dir(target).map_err(io_err("create", target))?;
            }
            for n in entry_names(&sub, name)? {
                out_entry(&sub, &n, &target.join(&n), opts)?;
            }
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", target))?;
        }
        FileType::RegularFile => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys("open", name))?;
            let mut from = File::from(fd);
            // An existing symlink at the target is replaced, not written through.
            if target.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(target).map_err(io_err("remove", target))?;
            }
            let mut to = File::create(target).map_err(io_err("create", target))?;
            copy_data(&mut from, &mut to, target)?;
            to.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", target))?;
        }
        FileType::Symlink => {
            let link =
                rustix::fs::readlinkat(dir, name, Vec::new()).map_err(sys("readlink", name))?;
            let link = PathBuf::from(std::ffi::OsStr::from_bytes(link.as_bytes()));
            if target.symlink_metadata().is_ok() {
                std::fs::remove_file(target).map_err(io_err("remove", target))?;
            }
            std::os::unix::fs::symlink(&link, target).map_err(io_err("symlink", target))?;
        }
        // Devices, fifos and sockets are not copied (docker needs a tar stream for them).
        _ => return Ok(()),
    }
    if opts.archive {
        std::os::unix::fs::lchown(target, Some(st.st_uid), Some(st.st_gid))
            .map_err(io_err("chown", target))?;
    }
    Ok(())
}

/// The names in directory `sub` (opened as entry `name`, for messages), without `.` and `..`.
pub(super) fn entry_names(sub: &OwnedFd, name: &str) -> Result<Vec<String>, ContainerError> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(sub).map_err(sys("read", name))? {
        let entry = entry.map_err(sys("read", name))?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    Ok(names)
}

fn copy_data(
    from: &mut impl Read,
    to: &mut impl Write,
    target: &Path,
) -> Result<(), ContainerError> {
    std::io::copy(from, to).map(|_| ()).map_err(io_err("copy to", target))
}

fn copy_in(
    root: BorrowedFd<'_>,
    src: &Path,
    dest: &str,
    opts: CopyOptions,
) -> Result<(), ContainerError> {
    let src_s = src.to_string_lossy();
    let contents = src_s.ends_with("/.");
    let meta = src.symlink_metadata().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            invalid(format!("could not find the file {src_s} on the host"))
        }
        _ => ContainerError::Io { op: "stat", path: src.into(), source: e },
    })?;
    let src_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".to_string());
    let (parts, _) = clean(dest);
    // An existing directory (symlinks followed, inside the root) receives the source.
    if let Ok(dir) = open_dir_in(root, &parts) {
        if contents && meta.is_dir() {
            return in_children(src, dir.as_fd(), opts);
        }
        return in_entry(src, &meta, dir.as_fd(), &src_name, opts);
    }
    let Some((name, parent)) = parts.split_last() else {
        return Err(invalid(format!("cannot copy onto {dest}")));
    };
    let dir = open_dir_in(root, parent).map_err(|e| match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => invalid(format!(
            "destination directory /{} does not exist in container",
            parent.join("/")
        )),
        e => ContainerError::Io { op: "resolve", path: dest.into(), source: e.into() },
    })?;
    in_entry(src, &meta, dir.as_fd(), name, opts)
}

fn in_children(src: &Path, dir: BorrowedFd<'_>, opts: CopyOptions) -> Result<(), ContainerError> {
    let base = src.to_string_lossy();
    let base = Path::new(base.strip_suffix("/.").unwrap_or(&base));
    for entry in std::fs::read_dir(base).map_err(io_err("read", base))? {
        let entry = entry.map_err(io_err("read", base))?;
        let path = entry.path();
        let meta = path.symlink_metadata().map_err(io_err("stat", &path))?;
        in_entry(&path, &meta, dir, &entry.file_name().to_string_lossy(), opts)?;
    }
    Ok(())
}

/// Copies host `src` to entry `name` of container directory `dir` (never through a symlink).
pub(super) fn in_entry(
    src: &Path,
    meta: &std::fs::Metadata,
    dir: BorrowedFd<'_>,
    name: &str,
    opts: CopyOptions,
) -> Result<(), ContainerError> {
    let existing = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let existing_type = existing.map(|s| FileType::from_raw_mode(s.st_mode));
    let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
    let ft = meta.file_type();
    if ft.is_dir() {
        match existing_type {
            Some(FileType::Directory) => {}
            Some(_) => {
                return Err(invalid(format!(
                    "cannot overwrite non-directory {name} with directory {}",
                    src.display()
                )));
            }
            None => rustix::fs::mkdirat(dir, name, mode).map_err(sys("mkdir", name))?,
        }
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys("open", name))?;
        let base = src.to_string_lossy().to_string();
        in_children(Path::new(&format!("{base}/.")), sub.as_fd(), opts)?;
        rustix::fs::chmodat(dir, name, mode, AtFlags::empty()).map_err(sys("chmod", name))?;
    } else if ft.is_file() {
        if existing_type == Some(FileType::Directory) {
            return Err(invalid(format!(
                "cannot overwrite directory {name} with non-directory {}",
                src.display()
            )));
        }
        // A symlink in the way is replaced, never written through.
        if existing_type == Some(FileType::Symlink) {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(sys("unlink", name))?;
        }
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )
        .map_err(sys("create", name))?;
        let mut to = File::from(fd);
        let mut from = File::open(src).map_err(io_err("open", src))?;
        copy_data(&mut from, &mut to, Path::new(name))?;
        rustix::fs::fchmod(&to, mode).map_err(sys("chmod", name))?;
    } else if ft.is_symlink() {
        if existing_type == Some(FileType::Directory) {
            return Err(invalid(format!("cannot overwrite directory {name} with a symlink")));
        }
        if existing.is_some() {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(sys("unlink", name))?;
        }
        let link = std::fs::read_link(src).map_err(io_err("readlink", src))?;
        rustix::fs::symlinkat(link.as_os_str(), dir, name).map_err(sys("symlink", name))?;
    } else {
        // Devices, fifos and sockets are not copied.
        return Ok(());
    }
    let (uid, gid) = if opts.archive { (meta.uid(), meta.gid()) } else { (0, 0) };
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(sys("chown", name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleaning_stays_at_the_root() {
        assert_eq!(clean("/../../etc/passwd").0, ["etc", "passwd"]);
        assert_eq!(clean("a/./b//c/..").0, ["a", "b"]);
        assert!(clean("/data/.").1);
        assert!(clean("/").0.is_empty());
    }
}
