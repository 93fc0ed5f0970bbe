//! The child's filesystem steps: paths resolved inside the root, the operations, and the
//! C strings they need, all made before the fork.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use libc::c_ulong;

use crate::LaunchError;

/// Builds a CString, rejecting interior NULs with a message naming `what`.
pub fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString, LaunchError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| LaunchError::InvalidSpec(format!("{what} contains a NUL byte")))
}

pub(super) fn cpath(p: &Path, what: &str) -> Result<CString, LaunchError> {
    cstr(p.as_os_str().as_bytes(), what)
}

/// A path inside the container's root filesystem, resolved in the child with
/// openat2(RESOLVE_IN_ROOT) so that symlinks in the image can't point a mount at the host.
#[derive(Debug, Clone)]
pub struct InRoot {
    /// Relative to the root, e.g. `dev/shm`.
    pub rel: CString,
    /// The parent, relative to the root (None: the root itself).
    pub parent: Option<CString>,
    /// The last component.
    pub name: CString,
}

impl InRoot {
    /// From a relative path with at least one component.
    pub fn new(rel: &Path) -> Result<InRoot, LaunchError> {
        let name = rel.file_name().ok_or_else(|| {
            LaunchError::InvalidSpec(format!("empty container path {}", rel.display()))
        })?;
        let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
        Ok(InRoot {
            rel: cpath(rel, "a container path")?,
            parent: parent.map(|p| cpath(p, "a container path")).transpose()?,
            name: cstr(name.as_bytes(), "a container path")?,
        })
    }
}

/// Where a mount goes.
#[derive(Debug)]
pub enum Target {
    /// A host path (the rootfs mount point).
    Host(CString),
    /// A path inside the rootfs.
    Root(InRoot),
}

/// One filesystem operation of the child.
#[derive(Debug)]
pub enum Op {
    /// mkdir, EEXIST is fine.
    Mkdir { at: InRoot, mode: u32 },
    /// Create an empty file if missing.
    Touch { at: InRoot },
    /// mount(2).
    Mount {
        src: Option<CString>,
        target: Target,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// A device node, falling back to a bind of the host's node when mknod is refused.
    Device { at: InRoot, mode: u32, dev: u64, uid: u32, gid: u32, host: CString },
    /// symlink(target, link).
    Symlink { target: CString, at: InRoot },
    /// Bind onto itself then remount read-only (missing paths are skipped).
    Readonly { path: CString },
    /// Mask: /dev/null over a file, a read-only tmpfs over a directory (missing are skipped).
    Mask { path: CString },
}

/// An operation and what to call it in an error message.
#[derive(Debug)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// Human description, e.g. "mount tmpfs on /dev/shm".
    pub desc: String,
}

/// mkdir -p steps for `rel` inside the rootfs (each level, EEXIST ok).
pub(super) fn mkdirs(rel: &Path, steps: &mut Vec<Step>) -> Result<(), LaunchError> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        steps.push(Step {
            op: Op::Mkdir { at: InRoot::new(&cur)?, mode: 0o755 },
            desc: format!("create directory /{}", cur.display()),
        });
    }
    Ok(())
}

/// Checks a container path: absolute, no `..`; returns it relative (without the leading /).
pub(super) fn container_rel(p: &Path, what: &str) -> Result<PathBuf, LaunchError> {
    if !p.is_absolute() {
        return Err(LaunchError::InvalidSpec(format!("{what} {} is not absolute", p.display())));
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(LaunchError::InvalidSpec(format!(
                    "{what} {} must not contain '..'",
                    p.display()
                )));
            }
        }
    }
    Ok(rel)
}
