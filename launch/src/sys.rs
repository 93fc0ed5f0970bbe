//! Thin wrappers over the raw system calls the forked child uses.
//!
//! Every function here is async-signal-safe: it performs exactly one system call (or a fixed
//! sequence of them) on caller-provided, already-allocated data, never allocates and never takes
//! a lock, so it may run in a child forked from a multi-threaded parent. Errors are returned as
//! raw errno values for the child to report over its error pipe.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_int, c_ulong, c_void};

/// Result of a raw call: `Err(errno)` on failure.
pub type SysResult<T> = Result<T, i32>;

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

fn check(r: c_int) -> SysResult<c_int> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// mount(2).
pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            opt_ptr(src),
            target.as_ptr(),
            opt_ptr(fstype),
            flags,
            data.map_or(ptr::null(), |d| d.as_ptr().cast::<c_void>()),
        )
    };
    check(r).map(drop)
}

/// umount2(2).
pub fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    // SAFETY: target is a valid NUL-terminated string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// mkdir(2); an existing entry counts as success when `ok_exists`.
pub fn mkdir(path: &CStr, mode: u32, ok_exists: bool) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(libc::EEXIST) if ok_exists => Ok(()),
        r => r.map(drop),
    }
}

/// Whether `path` is a directory (stat follows symlinks, as mount does).
pub fn is_dir(path: &CStr) -> SysResult<bool> {
    // SAFETY: stat writes into the zeroed stack buffer; path is a valid string.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::stat(path.as_ptr(), &mut st))?;
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }
}

/// chdir(2).
pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// pivot_root(2) (no libc wrapper).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: both are valid NUL-terminated strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// sethostname(2).
pub fn sethostname(name: &CStr) -> SysResult<()> {
    let b = name.to_bytes();
    // SAFETY: pointer and length describe the string's bytes.
    check(unsafe { libc::sethostname(b.as_ptr().cast(), b.len()) }).map(drop)
}

/// setdomainname(2).
pub fn setdomainname(name: &CStr) -> SysResult<()> {
    let b = name.to_bytes();
    // SAFETY: pointer and length describe the string's bytes.
    check(unsafe { libc::setdomainname(b.as_ptr().cast(), b.len()) }).map(drop)
}

/// Writes all of `data` to a new open of `path` (sysctls, /proc files).
pub fn write_path(path: &CStr, data: &[u8]) -> SysResult<()> {
    // SAFETY: path is a valid string; the fd is closed before returning.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    let r = write_all(fd, data);
    close(fd);
    r
}

/// write(2) until everything is written.
pub fn write_all(fd: RawFd, mut data: &[u8]) -> SysResult<()> {
    while !data.is_empty() {
        // SAFETY: the buffer is valid for data.len() bytes.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        data = data.get(n as usize..).unwrap_or(&[]);
    }
    Ok(())
}

/// read(2) of one byte, retrying on EINTR; Ok(false) on EOF.
pub fn read_byte(fd: RawFd) -> SysResult<bool> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: the buffer is valid for one byte.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return if n < 0 { Err(errno()) } else { Ok(n == 1) };
    }
}

/// close(2), ignoring errors (nothing useful can be done about them here).
pub fn close(fd: RawFd) {
    // SAFETY: closing an fd this process owns; a stale fd only yields EBADF.
    unsafe { libc::close(fd) };
}

/// open(2) read-write (for /dev/null).
pub fn open_rdwr(path: &CStr) -> SysResult<RawFd> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
}

/// Duplicates `fd` to a new fd >= 3 with CLOEXEC (so later dup2 onto 0..2 never aliases).
pub fn dup_high(fd: RawFd) -> SysResult<RawFd> {
    // SAFETY: fcntl on an fd; no memory is involved.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })
}

/// dup2(2).
pub fn dup2(from: RawFd, to: RawFd) -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { libc::dup2(from, to) }).map(drop)
}

/// Marks every fd >= `from` close-on-exec, so nothing the parent leaked reaches the container.
pub fn cloexec_from(from: u32) -> SysResult<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let r =
        unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// Closes every fd >= `from`.
pub fn close_from(from: u32) {
    // SAFETY: closes fds only; the caller no longer uses them.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32) };
}

/// Closes every fd >= 3 but `keep`.
pub fn close_above_except(keep: RawFd) {
    if keep > 3 {
        // SAFETY: closes fds only; the caller no longer uses them.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32) };
    }
    close_from(keep.max(2) as u32 + 1);
}

/// setns(2).
pub fn setns(fd: RawFd, nstype: c_int) -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// Sets IFF_UP on `lo` of the calling process's network namespace (stack memory only).
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: socket(2) takes no memory; the fd is closed below.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, a valid ifreq on our stack.
    let result = check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) }).and_then(|_| {
        // SAFETY: the flags member of the union was just filled by SIOCGIFFLAGS.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: as above.
        check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
    });
    close(fd);
    result.map(drop)
}

/// unshare(2).
pub fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// setsid(2).
pub fn setsid() -> SysResult<()> {
    // SAFETY: no memory is involved.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Makes `fd` (a tty) the controlling terminal.
pub fn set_ctty(fd: RawFd) -> SysResult<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, no memory.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) }).map(drop)
}

/// prctl(2) with integer arguments.
pub fn prctl(op: c_int, a: c_ulong, b: c_ulong) -> SysResult<()> {
    // SAFETY: the options used here take integer arguments only.
    check(unsafe { libc::prctl(op, a, b, 0 as c_ulong, 0 as c_ulong) }).map(drop)
}

/// setrlimit(2).
pub fn setrlimit(resource: u32, lim: &libc::rlimit) -> SysResult<()> {
    // SAFETY: lim points to a valid rlimit.
    check(unsafe { libc::setrlimit(resource as _, lim) }).map(drop)
}

// The set*id calls below are raw system calls on purpose: glibc's wrappers broadcast the change
// to every thread it knows about (SIGSETXID) and take its thread-list lock first; after a clone
// from a multi-threaded parent those threads don't exist and the lock may be held forever.

/// setgroups(2) for the calling (only) thread, bypassing glibc.
pub fn setgroups(groups: &[libc::gid_t]) -> SysResult<()> {
    // SAFETY: pointer/length describe the slice.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// setresgid(2) with all three ids equal, bypassing glibc.
pub fn setgid(gid: u32) -> SysResult<()> {
    // SAFETY: no memory is involved.
    let r = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// setresuid(2) with all three ids equal, bypassing glibc.
pub fn setuid(uid: u32) -> SysResult<()> {
    // SAFETY: no memory is involved.
    let r = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// Kernel capability header (linux/capability.h), version 3.
#[repr(C)]
pub struct CapHeader {
    /// _LINUX_CAPABILITY_VERSION_3.
    pub version: u32,
    /// 0 = the calling thread.
    pub pid: i32,
}

/// Kernel capability data (two of them for 64 capabilities).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CapData {
    /// Effective bits.
    pub effective: u32,
    /// Permitted bits.
    pub permitted: u32,
    /// Inheritable bits.
    pub inheritable: u32,
}

/// capset(2) for the calling thread.
pub fn capset(data: &[CapData; 2]) -> SysResult<()> {
    let mut hdr = CapHeader { version: 0x2008_0522, pid: 0 };
    // SAFETY: header and data point to valid structs of the layout the kernel expects (v3).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// Installs a seccomp BPF filter (flags 0: this thread only, the child is single-threaded).
pub fn seccomp_install(filter: &[seccompiler::sock_filter]) -> SysResult<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        // seccompiler's sock_filter has the kernel's layout (repr(C) u16,u8,u8,u32).
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points to `filter`, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, &prog as *const _)
    };
    if r < 0 { Err(errno()) } else { Ok(()) }
}

/// umask(2).
pub fn umask(mask: u32) {
    // SAFETY: no memory is involved; umask cannot fail.
    unsafe { libc::umask(mask) };
}

/// Resets every catchable signal to its default action (handlers of the parent must not run in
/// the container, and ignored signals would stay ignored across exec).
pub fn reset_signal_dispositions() {
    for sig in 1..65 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installs SIG_DFL with an empty mask; sigaction copies the struct.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, ptr::null_mut());
        }
    }
}

/// Sets the calling thread's signal mask.
pub fn set_sigmask(set: &libc::sigset_t) {
    // SAFETY: set points to an initialised sigset.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, set, ptr::null_mut()) };
}

/// execve(2); only returns on failure.
pub fn execve(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> i32 {
    // SAFETY: argv/envp are NULL-terminated arrays of pointers into CStrings that the caller
    // keeps alive (built in the parent before the fork).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// fork(2) as a raw clone without namespace flags (no atfork handlers, safe after clone).
pub fn fork_raw() -> SysResult<libc::pid_t> {
    // SAFETY: see clone_raw.
    unsafe { clone_raw(libc::SIGCHLD as c_ulong) }
}

/// fork(2) whose child becomes a child of our parent (CLONE_PARENT), not ours; it lands in our
/// `pid_for_children` namespace and signals our parent with SIGCHLD when it exits.
pub fn clone_parent() -> SysResult<libc::pid_t> {
    // SAFETY: see clone_raw; the child continues with the same async-signal-safe code.
    unsafe { clone_raw(libc::CLONE_PARENT as c_ulong | libc::SIGCHLD as c_ulong) }
}

/// Raw clone(2) with a NULL stack: fork semantics (copy-on-write copy of the calling thread),
/// plus namespace flags. Returns 0 in the child.
///
/// # Safety
/// In the child only async-signal-safe operations may follow (no allocation, no locks: other
/// threads of the parent do not exist there and may have held them), and the child must leave
/// through `_exit` or `execve`, never by returning into the parent's stack frames' destructors.
pub unsafe fn clone_raw(flags: c_ulong) -> SysResult<libc::pid_t> {
    // SAFETY: a NULL child stack makes the child continue on a copy of this stack (like fork);
    // the remaining pointer arguments are unused without CLONE_*TID/SETTLS flags.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if r < 0 { Err(errno()) } else { Ok(r as libc::pid_t) }
}

/// The kernel's `struct clone_args` (clone3, Linux 5.3; `cgroup` since 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3(2) with fork semantics (no stack given) straight into the cgroup2 directory
/// `cgroup_fd` (`CLONE_INTO_CGROUP`), plus namespace `flags`; the child is signalled to the
/// parent with SIGCHLD. Returns 0 in the child.
///
/// # Safety
/// As [`clone_raw`].
pub unsafe fn clone3_into_cgroup(flags: c_ulong, cgroup_fd: RawFd) -> SysResult<libc::pid_t> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // c_ulong is u64 only on 64-bit targets.
    #[allow(clippy::useless_conversion)]
    let args = CloneArgs {
        flags: u64::from(flags) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd as u64,
        ..Default::default()
    };
    // SAFETY: args is a valid clone_args of the size passed; stack 0 gives fork semantics, and
    // no pointer field (pidfd, tids, set_tid) is used.
    let r = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    if r < 0 { Err(errno()) } else { Ok(r as libc::pid_t) }
}

/// _exit(2).
pub fn exit(code: i32) -> ! {
    // SAFETY: terminates the process without running atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

/// waitpid(2); returns (pid, raw status).
pub fn waitpid(pid: libc::pid_t, flags: c_int) -> SysResult<(libc::pid_t, c_int)> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r < 0 { Err(errno()) } else { Ok((r, status)) }
}

/// sigwaitinfo(2) on `set`; returns the signal number.
pub fn sigwait(set: &libc::sigset_t) -> SysResult<c_int> {
    // SAFETY: set is initialised; a NULL info pointer is allowed.
    check(unsafe { libc::sigwaitinfo(set, ptr::null_mut()) })
}

/// kill(2).
pub fn kill(pid: libc::pid_t, sig: c_int) {
    // SAFETY: no memory is involved.
    unsafe { libc::kill(pid, sig) };
}

/// Kernel `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `rel` (O_PATH) resolving it as if `root_fd` were "/": symlinks, absolute or `..`,
/// can't leave the container's root filesystem.
pub fn open_in_root(root_fd: RawFd, rel: &CStr) -> SysResult<RawFd> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: rel is a valid string and how a valid open_how of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd,
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if r < 0 { Err(errno()) } else { Ok(r as RawFd) }
}

/// Opens a directory as an O_PATH fd.
pub fn open_dir(path: &CStr) -> SysResult<RawFd> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) })
}

/// mkdirat(2); an existing entry is fine.
pub fn mkdirat(dir: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: name is a valid NUL-terminated string.
    match check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }) {
        Err(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// Creates an empty regular file `name` in `dir` without following a symlink there.
pub fn touch_at(dir: RawFd, name: &CStr) -> SysResult<()> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: name is a valid string; the fd is closed right away.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags, 0o644 as libc::c_uint) })?;
    close(fd);
    Ok(())
}

/// mknodat(2) + fchownat + fchmodat (mknod's mode is filtered by the umask).
pub fn mknodat(dir: RawFd, name: &CStr, mode: u32, dev: u64, uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: name is a valid NUL-terminated string in all three calls.
    unsafe {
        check(libc::mknodat(dir, name.as_ptr(), mode, dev))?;
        check(libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW))?;
        check(libc::fchmodat(dir, name.as_ptr(), mode & 0o7777, 0)).map(drop)
    }
}

/// symlinkat(2); an existing entry is fine.
pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> SysResult<()> {
    // SAFETY: both strings are valid.
    match check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }) {
        Err(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// "/proc/self/fd/<fd>" built on the stack (no allocation), usable as a mount target.
pub struct FdPath {
    buf: [u8; 32],
    len: usize,
}

impl FdPath {
    /// Formats the path for `fd`.
    pub fn new(fd: RawFd) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut len = prefix.len();
        let mut digits = [0u8; 10];
        let mut n = fd.max(0) as u32;
        let mut k = 0;
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while k > 0 {
            k -= 1;
            buf[len] = digits[k];
            len += 1;
        }
        // buf[len] is already 0: the terminator.
        FdPath { buf, len: len + 1 }
    }

    /// The NUL-terminated path.
    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf[..self.len]).unwrap_or(c"/proc/self/fd/-1")
    }
}

/// Opens a new pty pair from `ptmx` (the container's devpts): returns (master, slave).
pub fn open_pty(ptmx: &CStr) -> SysResult<(RawFd, RawFd)> {
    // SAFETY: ptmx is a valid string; the ioctls take an int pointer / int flags as documented
    // in ioctl_tty(2); fds are closed on the error paths.
    unsafe {
        let master =
            check(libc::open(ptmx.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?;
        let unlock: c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
            let e = errno();
            close(master);
            return Err(e);
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            let e = errno();
            close(master);
            return Err(e);
        }
        Ok((master, slave))
    }
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: RawFd, ws: &libc::winsize) -> SysResult<()> {
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws as *const libc::winsize) }).map(drop)
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS), with stack-only buffers.
pub fn send_fd(sock: RawFd, fd: RawFd) -> SysResult<()> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // SAFETY: msghdr points to the stack buffers above, which outlive sendmsg; the control
    // buffer (32 bytes) is larger than CMSG_SPACE(sizeof(int)) (24 bytes on 64-bit).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(libc::EINVAL);
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(errno());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_path_formats_without_allocating() {
        assert_eq!(super::FdPath::new(7).as_cstr(), c"/proc/self/fd/7");
        assert_eq!(super::FdPath::new(1234567).as_cstr(), c"/proc/self/fd/1234567");
    }
}
