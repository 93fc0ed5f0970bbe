//! Executables a container cannot overwrite (the CVE-2019-5736 class).
//!
//! Every berth process that can become visible inside a container (the launcher's child before
//! its final exec, `init: true`'s PID 1, an `exec` or a healthcheck) runs berth's own code, so a
//! process in the container can open `/proc/<pid>/exe`, wait until the binary is no longer busy,
//! and reopen `/proc/self/fd/N` for writing: that would overwrite the host's `berth` or
//! `berth-monitor`. Such processes therefore run from a **detached read-only bind mount** of
//! their binary: `open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`, executed
//! through the fd. A write reopen fails with EROFS; the mount is attached nowhere (no mount
//! table entry, nothing to clean up) and goes away with the last process that uses it. Where
//! the mount API is unavailable (ENOSYS, EPERM), a sealed memfd copy is used instead
//! (`F_SEAL_WRITE`...: writes fail with EPERM). See docs/launch.md "Sealed executables".
//!
//! The CLI starts `berth-monitor` through [`cached`] (so containers, healthchecks and
//! `init: true` run from the read-only mount), and re-executes itself through [`reexec`]
//! before it joins a container itself (`exec`).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Set in the environment of a re-executed `berth` to the path it was started from (and
/// removed again at start-up by [`take_marker`]): marks the re-exec so it never loops, and
/// keeps the original path (the protected executable's `/proc/self/exe` names no real file).
pub const MARKER_ENV: &str = "BERTH_SEALED_EXE";

/// Why an executable could not be protected.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Opening or copying the executable failed.
    #[error("cannot protect the executable {path} from being overwritten: {what}: {source}")]
    Io {
        /// The executable.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A re-executed berth still runs from a writable executable (nothing to retry).
    #[error(
        "berth re-executed itself from a protected copy of {0} but still runs from a writable executable"
    )]
    StillWritable(PathBuf),
    /// The re-exec itself failed.
    #[error("cannot re-execute berth from a protected copy of {path}: {source}")]
    Exec {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// How an executable is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// A detached read-only bind mount of the file itself.
    ReadOnlyMount,
    /// A sealed in-memory copy (memfd with write, grow, shrink and seal seals).
    SealedCopy,
}

/// An executable opened so that no process can write through it.
#[derive(Debug)]
pub struct SealedExe {
    fd: OwnedFd,
    protection: Protection,
    original: PathBuf,
}

impl SealedExe {
    /// Protects `path`: a read-only detached mount, else a sealed copy.
    pub fn new(path: &Path) -> Result<SealedExe, SealError> {
        match read_only_mount(path) {
            Ok(fd) => Ok(SealedExe {
                fd,
                protection: Protection::ReadOnlyMount,
                original: path.to_path_buf(),
            }),
            Err(e) if fallback_errno(&e) => SealedExe::sealed_copy(path),
            Err(source) => {
                Err(SealError::Io { path: path.to_path_buf(), what: "bind it read-only", source })
            }
        }
    }

    /// A sealed memfd copy of `path` (the fallback; public so it can be tested on its own).
    pub fn sealed_copy(path: &Path) -> Result<SealedExe, SealError> {
        let err = |what| move |source| SealError::Io { path: path.to_path_buf(), what, source };
        let mut src = File::open(path).map_err(err("open it"))?;
        let fd = memfd(path).map_err(err("create an in-memory copy"))?;
        let mut dst = File::from(fd);
        io::copy(&mut src, &mut dst).map_err(err("copy it"))?;
        use rustix::fs::SealFlags as S;
        rustix::fs::fcntl_add_seals(&dst, S::SEAL | S::SHRINK | S::GROW | S::WRITE)
            .map_err(|e| err("seal the copy")(e.into()))?;
        Ok(SealedExe {
            fd: dst.into(),
            protection: Protection::SealedCopy,
            original: path.to_path_buf(),
        })
    }

    /// The protected file (close-on-exec; exec it with `execveat(fd, "", AT_EMPTY_PATH)` or
    /// through [`SealedExe::exec_path`]).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `/proc/self/fd/N`: a path that execs the protected file from this process or from a
    /// child spawned with posix_spawn/vfork (the path is resolved before close-on-exec fds close).
    pub fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// How it is protected.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// The path it was made from.
    pub fn original(&self) -> &Path {
        &self.original
    }
}

/// The protected copy of `path` for this process, made on first use and kept (one detached
/// mount per executable per process, never one per container).
pub fn cached(path: &Path) -> Result<&'static SealedExe, SealError> {
    static CACHE: Mutex<Vec<&'static SealedExe>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = cache.iter().find(|s| s.original == path) {
        return Ok(s);
    }
    // Leaked on purpose: it lives as long as the process, like the monitors started from it.
    let s: &'static SealedExe = Box::leak(Box::new(SealedExe::new(path)?));
    cache.push(s);
    Ok(s)
}

/// Errors after which the sealed copy is tried: the mount API is missing or not permitted here.
fn fallback_errno(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::EOPNOTSUPP))
}

/// `OPEN_TREE_CLONE` (uapi/linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOUNT_ATTR_RDONLY` (uapi/linux/mount.h).
const MOUNT_ATTR_RDONLY: u64 = 1;
/// `MOUNT_ATTR_NODEV` (uapi/linux/mount.h).
const MOUNT_ATTR_NODEV: u64 = 4;

/// `struct mount_attr` (uapi/linux/mount.h, MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached read-only bind mount of the file `path`, as an O_PATH fd (close-on-exec).
fn read_only_mount(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path; open_tree reads it and returns a new fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(r as libc::c_int) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed and "" a valid empty path; the
    // kernel only reads them. The fd is the detached mount made above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// An executable, close-on-exec, sealable memfd named after `path`.
fn memfd(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::MemfdFlags as M;
    let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "berth".into());
    let name = CString::new(name.into_vec()).unwrap_or_else(|_| c"berth".to_owned());
    let base = M::CLOEXEC | M::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) keeps the copy executable where vm.memfd_noexec defaults to
    // no-exec; older kernels refuse the unknown flag.
    match rustix::fs::memfd_create(name.as_c_str(), base | M::EXEC) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::INVAL) => Ok(rustix::fs::memfd_create(name.as_c_str(), base)?),
        Err(e) => Err(e.into()),
    }
}

/// Whether nothing can write to the file behind `fd`: it is on a read-only mount (or
/// filesystem), or a memfd sealed against writes.
pub fn is_protected(fd: BorrowedFd<'_>) -> bool {
    let ro = rustix::fs::fstatvfs(fd)
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    ro || rustix::fs::fcntl_get_seals(fd)
        .is_ok_and(|s| s.contains(rustix::fs::SealFlags::WRITE | rustix::fs::SealFlags::SEAL))
}

/// Whether this process runs from a protected executable.
pub fn running_protected() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_protected(f.as_fd()))
}

/// Names this process (`comm`: what ps, pgrep and top show) after the file name of argv[0]:
/// a program started through `/proc/self/fd/N` or execveat would otherwise be called "N".
pub fn name_after_arg0() {
    let Some(arg0) = std::env::args_os().next() else { return };
    let Some(base) = Path::new(&arg0).file_name() else { return };
    // comm holds 15 bytes and a NUL; the kernel truncates longer names itself.
    let Ok(name) = CString::new(base.as_bytes()) else { return };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes) that outlives the call.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// The path this process was started from, kept by [`take_marker`] when it re-executed itself.
static MARKER: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Reads and removes [`MARKER_ENV`] (so nothing berth starts inherits it).
///
/// # Safety
/// Changes the environment: call it first thing in `main`, while the process has one thread.
pub unsafe fn take_marker() {
    let v = std::env::var_os(MARKER_ENV).map(PathBuf::from);
    if v.is_some() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::remove_var(MARKER_ENV) };
    }
    let _ = MARKER.set(v);
}

/// The executable this process was started as: the original path when it re-executed itself
/// from a protected copy (whose `/proc/self/exe` names no real file), else `current_exe`.
pub fn original_exe() -> io::Result<PathBuf> {
    match MARKER.get() {
        Some(Some(p)) => Ok(p.clone()),
        _ => std::env::current_exe(),
    }
}

/// Makes sure this process runs from a protected executable before it puts a process of its
/// own into a container: returns at once when it already does, else re-executes itself from a
/// read-only mount (or sealed copy) of its executable with the same arguments, environment
/// (plus [`MARKER_ENV`]) and descriptors, and only returns on error. Call it while the process
/// has one thread (before any runtime starts), after [`take_marker`].
pub fn reexec() -> Result<(), SealError> {
    // Without root nothing can be joined (the exec fails anyway): spare the copy.
    if running_protected() || !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    if let Some(Some(p)) = MARKER.get() {
        return Err(SealError::StillWritable(p.clone()));
    }
    let exe = std::env::current_exe().map_err(|source| SealError::Io {
        path: PathBuf::from("/proc/self/exe"),
        what: "find it",
        source,
    })?;
    let sealed = SealedExe::new(&exe)?;
    let cstr = |s: OsString| CString::new(s.into_vec()).ok();
    let argv: Vec<CString> = std::env::args_os().filter_map(cstr).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER_ENV)
        .filter_map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv)
        })
        .collect();
    let mut marker = OsString::from(format!("{MARKER_ENV}="));
    marker.push(exe.as_os_str());
    envp.extend(cstr(marker));
    let source = execveat_empty(sealed.fd(), &argv, &envp);
    Err(SealError::Exec { path: exe, source })
}

/// execveat(fd, "", argv, envp, AT_EMPTY_PATH); returns only on failure.
fn execveat_empty(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that outlive the call;
    // on success the process image is replaced, on failure nothing was changed.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writing to the protected file through a /proc/self/fd reopen fails (a sealed memfd
    /// opens for writing but refuses the write); it still execs.
    fn check(s: &SealedExe, errno: i32) {
        use std::io::Write;
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(s.exec_path())
            .and_then(|mut f| f.write_all(b"overwritten"));
        assert_eq!(w.err().and_then(|e| e.raw_os_error()), Some(errno), "{s:?}");
        let t = std::fs::OpenOptions::new().write(true).truncate(true).open(s.exec_path());
        assert!(t.is_err(), "{s:?}: truncated");
        let f = File::open(s.exec_path()).expect("reopen for reading");
        assert!(is_protected(f.as_fd()), "{s:?}");
        let st = std::process::Command::new(s.exec_path()).arg("sealed").status().expect("exec");
        assert!(st.success(), "{s:?}: {st}");
    }

    fn echo() -> PathBuf {
        ["/bin/echo", "/usr/bin/echo"].iter().map(PathBuf::from).find(|p| p.exists()).unwrap()
    }

    #[test]
    fn sealed_copy_refuses_writes_and_runs() {
        let s = SealedExe::sealed_copy(&echo()).expect("sealed copy");
        assert_eq!(s.protection(), Protection::SealedCopy);
        check(&s, libc::EPERM);
    }

    #[test]
    fn read_only_mount_refuses_writes_and_runs() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let s = SealedExe::new(&echo()).expect("read-only mount");
        assert_eq!(s.protection(), Protection::ReadOnlyMount);
        check(&s, libc::EROFS);
        // The mount is detached: nothing appears in the mount table.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(echo().to_str().unwrap()), "{mounts}");
        let a: *const SealedExe = cached(&echo()).unwrap();
        let b: *const SealedExe = cached(&echo()).unwrap();
        assert_eq!(a, b, "made once per process");
    }

    #[test]
    fn a_writable_file_is_not_protected() {
        let f = tempfile::tempfile().unwrap();
        assert!(!is_protected(f.as_fd()));
    }
}
