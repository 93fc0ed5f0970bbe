//! The forked child: runs only raw system calls on data the parent prepared (see `plan`), and
//! reports the first failure as (step, index, errno) over the error pipe before exiting.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::plan::{FsPlan, InRoot, NsPlan, Op, ProcPlan, StdioPlan, Target};
use super::sys;

/// Declares `StepId` and its wire decoding from one list, so the two can't drift apart.
macro_rules! step_ids {
    ($($(#[$doc:meta])* $name:ident,)+) => {
        /// What failed in the child; the parent turns it into a message.
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum StepId {
            $($(#[$doc])* $name,)+
        }

        impl StepId {
            /// Every step, in wire order (the wire value is the position + 1).
            const ALL: &'static [StepId] = &[$(StepId::$name,)+];
        }
    };
}

step_ids! {
    /// Waiting for the parent's go.
    Sync,
    /// Moving into a v1 cgroup hierarchy (index into the `tasks` paths).
    CgroupJoin,
    /// setns into a joined namespace (index into NsPlan::join).
    Setns,
    /// unshare(CLONE_NEWCGROUP).
    CgroupNs,
    /// Setting up stdio (index: target fd).
    Stdio,
    /// setsid.
    Setsid,
    /// TIOCSCTTY.
    Ctty,
    /// Making / rslave/rprivate.
    Propagation,
    /// A pre-pivot step (index into FsPlan::pre).
    Pre,
    /// pivot_root (index: 0 chdir, 1 pivot, 2 umount old root, 3 chdir /).
    Pivot,
    /// A post-pivot step (index into FsPlan::post).
    Post,
    /// Remounting / read-only.
    RootReadonly,
    /// sethostname.
    Hostname,
    /// setdomainname.
    Domainname,
    /// A sysctl (index into FsPlan::sysctls).
    Sysctl,
    /// Creating the working directory.
    MkdirCwd,
    /// setrlimit (index into ProcPlan::rlimits).
    Rlimit,
    /// Installing seccomp.
    Seccomp,
    /// Dropping a bounding capability (index: cap number).
    Bounding,
    /// PR_SET_KEEPCAPS.
    KeepCaps,
    /// setgroups.
    Setgroups,
    /// setgid.
    Setgid,
    /// setuid.
    Setuid,
    /// capset.
    Capset,
    /// Raising an ambient capability (index: cap number).
    Ambient,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// chdir to the working directory.
    Chdir,
    /// Forking the process under init.
    InitFork,
    /// execve (errno decides not-found / permission).
    Exec,
    /// Closing inherited fds.
    CloseFds,
    /// Mounting (0) or opening (1) the root filesystem.
    Rootfs,
    /// Bringing up `lo` in a new network namespace.
    Loopback,
    /// Entering a joined pid namespace (index: 0 setns, 1 the clone into it).
    Relay,
    /// Not a failure: the process now runs in the joined pid namespace as this pid (index).
    Relayed,
}

impl StepId {
    /// The wire value (never 0, so a zeroed report can't decode).
    pub fn to_u32(self) -> u32 {
        self as u32 + 1
    }

    /// Decodes the wire value.
    pub fn from_u32(v: u32) -> Option<StepId> {
        Self::ALL.get((v as usize).checked_sub(1)?).copied()
    }
}

/// Size of one error report on the pipe.
pub const REPORT_LEN: usize = 12;

/// Writes a (step, index, errno) record to the error pipe.
fn report(err_fd: RawFd, step: StepId, index: u32, errno: i32) {
    let mut buf = [0u8; REPORT_LEN];
    buf[..4].copy_from_slice(&step.to_u32().to_ne_bytes());
    buf[4..8].copy_from_slice(&index.to_ne_bytes());
    buf[8..].copy_from_slice(&errno.to_ne_bytes());
    let _ = sys::write_all(err_fd, &buf);
}

/// Writes (step, index, errno) to the error pipe and exits.
fn fail(err_fd: RawFd, step: StepId, index: u32, errno: i32) -> ! {
    report(err_fd, step, index, errno);
    sys::exit(1)
}

/// Unwraps a raw result or reports the failure.
macro_rules! attempt {
    ($e:expr, $fd:expr, $step:expr, $idx:expr) => {
        match $e {
            Ok(v) => v,
            Err(errno) => fail($fd, $step, $idx as u32, errno),
        }
    };
}

/// The pipes between parent and child.
#[derive(Clone, Copy)]
pub struct Pipes {
    /// Read end: the parent's go byte.
    pub sync_r: RawFd,
    /// Write end: error reports (CLOEXEC, so exec closes it).
    pub err_w: RawFd,
    /// Unix socket to send a new pty's master on (-1 when unused).
    pub pty_sock: RawFd,
}

/// Entry of the container's first process. Never returns.
pub fn container_main(
    pipes: Pipes,
    cgroup_tasks: &[CString],
    ns: &NsPlan,
    fs: &FsPlan,
    proc_: &ProcPlan,
    init: bool,
) -> ! {
    let e = pipes.err_w;
    sys::reset_signal_dispositions();
    join_cgroups(e, cgroup_tasks);
    wait_for_go(pipes);
    for (i, (fd, nstype, _)) in ns.join.iter().enumerate() {
        attempt!(sys::setns(std::os::fd::AsRawFd::as_raw_fd(fd), *nstype), e, StepId::Setns, i);
    }
    if let Some(fd) = &ns.join_pid {
        // A joined pid namespace is entered here, before the mounts, and not last as `exec`
        // does: /proc must be mounted from inside it to show its processes. (Linux 6.15's
        // proc `pidns=` option would allow entering it last; the engine never joins one.)
        attempt!(
            sys::setns(std::os::fd::AsRawFd::as_raw_fd(fd), libc::CLONE_NEWPID),
            e,
            StepId::Relay,
            0
        );
        relay(e, false);
    }
    // The parent has placed us in our cgroup: a new cgroup namespace is rooted there.
    if ns.new_cgroupns {
        attempt!(sys::unshare(libc::CLONE_NEWCGROUP), e, StepId::CgroupNs, 0);
    }
    attempt!(sys::mount(None, &fs.slash, None, fs.propagation, None), e, StepId::Propagation, 0);
    attempt!(run_op(&fs.rootfs.op, -1), e, StepId::Rootfs, 0);
    let root = attempt!(sys::open_dir(&fs.root), e, StepId::Rootfs, 1);
    for (i, step) in fs.pre.iter().enumerate() {
        attempt!(run_op(&step.op, root), e, StepId::Pre, i);
    }
    sys::close(root);
    attempt!(sys::chdir(&fs.root), e, StepId::Pivot, 0);
    // pivot_root(".", "."): the old root ends up stacked on "." and is detached right after,
    // so no directory is needed for it inside the image.
    attempt!(sys::pivot_root(&fs.dot, &fs.dot), e, StepId::Pivot, 1);
    attempt!(sys::umount2(&fs.dot, libc::MNT_DETACH), e, StepId::Pivot, 2);
    attempt!(sys::chdir(&fs.slash), e, StepId::Pivot, 3);
    // After pivot_root: /dev/null and /dev/ptmx are the container's own.
    install_stdio(e, proc_, pipes.pty_sock);

    // A new network namespace starts with `lo` down; docker brings it up even for `none`,
    // and programs talking to 127.0.0.1 (healthchecks) rely on it.
    if ns.new_net {
        attempt!(sys::loopback_up(), e, StepId::Loopback, 0);
    }
    if let Some(h) = &fs.hostname {
        attempt!(sys::sethostname(h), e, StepId::Hostname, 0);
    }
    if let Some(d) = &fs.domainname {
        attempt!(sys::setdomainname(d), e, StepId::Domainname, 0);
    }
    // Sysctls go before the read-only paths make /proc/sys read-only.
    for (i, (path, value)) in fs.sysctls.iter().enumerate() {
        attempt!(sys::write_path(path, value.as_bytes()), e, StepId::Sysctl, i);
    }
    for (i, step) in fs.post.iter().enumerate() {
        attempt!(run_op(&step.op, -1), e, StepId::Post, i);
    }
    for (i, d) in fs.cwd_mkdirs.iter().enumerate() {
        attempt!(sys::mkdir(d, 0o755, true), e, StepId::MkdirCwd, i);
    }
    if fs.readonly_root {
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        attempt!(sys::mount(None, &fs.slash, None, flags, None), e, StepId::RootReadonly, 0);
    }
    finish_and_exec(e, proc_, -1, init)
}

/// Entry of a process joining a running container (`exec`); `join_pid` is the container's pid
/// namespace (-1: it is ours). Never returns.
pub fn exec_main(
    pipes: Pipes,
    cgroup_tasks: &[CString],
    join: &[(std::os::fd::OwnedFd, libc::c_int, &'static str)],
    join_pid: RawFd,
    proc_: &ProcPlan,
) -> ! {
    let e = pipes.err_w;
    sys::reset_signal_dispositions();
    join_cgroups(e, cgroup_tasks);
    wait_for_go(pipes);
    for (i, (fd, nstype, _)) in join.iter().enumerate() {
        attempt!(sys::setns(std::os::fd::AsRawFd::as_raw_fd(fd), *nstype), e, StepId::Setns, i);
    }
    install_stdio(e, proc_, pipes.pty_sock);
    finish_and_exec(e, proc_, join_pid, false)
}

/// Moves this (single-threaded) process into its v1 cgroups by writing "0" to each `tasks`
/// file, before any namespace is joined (a joined mount namespace would hide the host's
/// /sys/fs/cgroup). See `Cgroup::self_join_paths` for why the child does it itself.
fn join_cgroups(e: RawFd, tasks: &[CString]) {
    for (i, path) in tasks.iter().enumerate() {
        attempt!(sys::write_path(path, b"0"), e, StepId::CgroupJoin, i);
    }
}

fn wait_for_go(pipes: Pipes) {
    match sys::read_byte(pipes.sync_r) {
        Ok(true) => sys::close(pipes.sync_r),
        // The parent gave up (or died): leave quietly.
        Ok(false) => sys::exit(1),
        Err(errno) => fail(pipes.err_w, StepId::Sync, 0, errno),
    }
}

/// Puts the process's standard streams on 0, 1 and 2 (a new pty's master goes to the parent).
/// The session and controlling terminal come later, in the final process ([`claim_tty`]).
fn install_stdio(e: RawFd, p: &ProcPlan, pty_sock: RawFd) {
    let fds: [RawFd; 3] = match p.stdio {
        StdioPlan::Pipes { stdin, stdout, stderr } => {
            let stdin = match stdin {
                Some(fd) => fd,
                None => attempt!(sys::open_rdwr(&p.devnull), e, StepId::Stdio, 0),
            };
            [stdin, stdout, stderr]
        }
        StdioPlan::Null => {
            let null = attempt!(sys::open_rdwr(&p.devnull), e, StepId::Stdio, 0);
            [null, null, null]
        }
        StdioPlan::Pty { slave } => [slave, slave, slave],
        StdioPlan::NewPty => {
            let (master, slave) = attempt!(sys::open_pty(&p.ptmx), e, StepId::Ctty, 1);
            attempt!(sys::send_fd(pty_sock, master), e, StepId::Ctty, 2);
            sys::close(master);
            sys::close(pty_sock);
            [slave, slave, slave]
        }
    };
    // Copy above 2 first so that a source fd numbered 0..2 is never overwritten early.

    let mut high = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        high[i] = attempt!(sys::dup_high(*fd), e, StepId::Stdio, i);
    }
    for (i, fd) in high.iter().enumerate() {
        attempt!(sys::dup2(*fd, i as RawFd), e, StepId::Stdio, i);
        sys::close(*fd);
    }
}

/// Runs `f` on an O_PATH fd of the parent directory of `at`, resolved inside the root.
fn in_parent(
    root: RawFd,
    at: &InRoot,
    f: impl FnOnce(RawFd) -> sys::SysResult<()>,
) -> sys::SysResult<()> {
    let pfd = match &at.parent {
        Some(p) => sys::open_in_root(root, p)?,
        None => sys::dup_high(root)?,
    };
    let r = f(pfd);
    sys::close(pfd);
    r
}

/// Mounts onto `at` resolved inside the root, through its /proc/self/fd path.
fn mount_in_root(
    root: RawFd,
    at: &InRoot,
    src: Option<&std::ffi::CStr>,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> sys::SysResult<()> {
    let fd = sys::open_in_root(root, &at.rel)?;
    let path = sys::FdPath::new(fd);
    let r = sys::mount(src, path.as_cstr(), fstype, flags, data);
    sys::close(fd);
    r
}

/// Runs one pre-pivot step; paths are resolved inside the container's root (`root` fd).
fn run_op(op: &Op, root: RawFd) -> sys::SysResult<()> {
    match op {
        Op::Mkdir { at, mode } => in_parent(root, at, |p| sys::mkdirat(p, &at.name, *mode)),
        Op::Touch { at } => match sys::open_in_root(root, &at.rel) {
            Ok(fd) => {
                sys::close(fd);
                Ok(())
            }
            Err(libc::ENOENT) => in_parent(root, at, |p| sys::touch_at(p, &at.name)),
            Err(e) => Err(e),
        },
        Op::Mount { src, target, fstype, flags, data } => match target {
            Target::Host(t) => {
                sys::mount(src.as_deref(), t, fstype.as_deref(), *flags, data.as_deref())
            }
            Target::Root(at) => {
                mount_in_root(root, at, src.as_deref(), fstype.as_deref(), *flags, data.as_deref())
            }
        },
        Op::Device { at, mode, dev, uid, gid, host } => {
            match in_parent(root, at, |p| sys::mknodat(p, &at.name, *mode, *dev, *uid, *gid)) {
                Ok(()) => Ok(()),
                Err(libc::EPERM) => {
                    in_parent(root, at, |p| match sys::touch_at(p, &at.name) {
                        Err(libc::EEXIST) => Ok(()),
                        r => r,
                    })?;
                    mount_in_root(root, at, Some(host), None, libc::MS_BIND, None)
                }
                Err(e) => Err(e),
            }
        }
        Op::Symlink { target, at } => in_parent(root, at, |p| sys::symlinkat(target, p, &at.name)),
        Op::Readonly { path } => {
            match sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
                Err(libc::ENOENT) => return Ok(()),
                r => r?,
            }
            let flags = libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC;
            sys::mount(None, path, None, flags, None)
        }
        Op::Mask { path } => match sys::is_dir(path) {
            Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
            Ok(true) => {
                sys::mount(Some(c"tmpfs"), path, Some(c"tmpfs"), libc::MS_RDONLY, Some(c"size=0k"))
            }
            Ok(false) => sys::mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None),
        },
    }
}

/// A new session, and with a terminal, stdin's pty as its controlling terminal and its size.
fn claim_tty(e: RawFd, p: &ProcPlan) {
    attempt!(sys::setsid(), e, StepId::Setsid, 0);
    if matches!(p.stdio, StdioPlan::Pty { .. } | StdioPlan::NewPty) {
        attempt!(sys::set_ctty(0), e, StepId::Ctty, 0);
        if let Some(ws) = &p.winsize {
            attempt!(sys::set_winsize(0, ws), e, StepId::Ctty, 3);
        }
    }
}

/// The process's last steps: privileges dropped, then (when it joins an existing pid namespace
/// `join_pid`) entering it, then session/terminal, cwd, exec (under init if asked).
///
/// A process cloned into a running container's pid namespace is visible to the container at
/// once (`/proc/PID/{root,cwd,fd,exe}`, ptrace with CAP_SYS_PTRACE). So the pid namespace is
/// joined last, by a child cloned with CLONE_PARENT (it becomes the caller's direct child) once
/// this process is in every other namespace of the container, holds only the container's
/// credentials, capabilities and seccomp filter, and has closed every fd but the std streams
/// and the error pipe; this process reports the child's pid and exits.
fn finish_and_exec(e: RawFd, p: &ProcPlan, join_pid: RawFd, init: bool) -> ! {
    if join_pid >= 0 {
        // Only sets where our children go; needs CAP_SYS_ADMIN, so before dropping it.
        attempt!(sys::setns(join_pid, libc::CLONE_NEWPID), e, StepId::Relay, 0);
    }
    drop_privileges(e, p);
    if join_pid >= 0 {
        relay(e, true);
    }
    claim_tty(e, p);
    attempt!(sys::chdir(&p.cwd), e, StepId::Chdir, 0);
    if init {
        match sys::fork_raw() {
            Err(errno) => fail(e, StepId::InitFork, 0, errno),
            Ok(0) => {}
            Ok(child) => {
                // Our copy of the error pipe must close so the parent sees EOF at the exec.
                sys::close_from(3);
                super::init::run(child, &p.full_sigset)
            }
        }
    }
    attempt!(sys::cloexec_from(3), e, StepId::CloseFds, 0);
    sys::set_sigmask(&p.empty_sigset);
    let mut saw = 0;
    for c in &p.candidates {
        let errno = sys::execve(c, &p.argv_ptrs, &p.envp_ptrs);
        // Like execvp: keep looking past missing entries; remember a permission problem.
        match errno {
            libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG => {
                if saw == 0 {
                    saw = libc::ENOENT;
                }
            }
            libc::EACCES => saw = libc::EACCES,
            other => fail(e, StepId::Exec, 0, other),
        }
    }
    fail(e, StepId::Exec, 0, if saw == 0 { libc::ENOENT } else { saw })
}

/// Continues in a child cloned into our `pid_for_children` namespace as a child of our parent
/// (CLONE_PARENT); this process reports the child's pid and exits. With `close_fds`, every fd
/// but 0..2 and the error pipe is closed first, so none goes along into the container's view.
fn relay(e: RawFd, close_fds: bool) {
    if close_fds {
        sys::close_above_except(e);
    }
    match sys::clone_parent() {
        Err(errno) => fail(e, StepId::Relay, 1, errno),
        Ok(0) => {}
        Ok(child) => {
            report(e, StepId::Relayed, child as u32, 0);
            sys::exit(0)
        }
    }
}

/// rlimits, seccomp, user, capabilities, no_new_privs, umask.
fn drop_privileges(e: RawFd, p: &ProcPlan) {
    for (i, (res, lim)) in p.rlimits.iter().enumerate() {
        attempt!(sys::setrlimit(*res, lim), e, StepId::Rlimit, i);
    }
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while still root.
    if !p.nnp {
        for f in &p.seccomp {
            attempt!(sys::seccomp_install(f), e, StepId::Seccomp, 0);
        }
    }
    if let Some(c) = &p.caps {
        // The bounding set can only shrink while CAP_SETPCAP is effective: before the uid change.
        for cap in &c.bounding_drop {
            match sys::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0) {
                Ok(()) | Err(libc::EINVAL) => {}
                Err(errno) => fail(e, StepId::Bounding, *cap, errno),
            }
        }
        attempt!(sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0), e, StepId::KeepCaps, 0);
    }
    attempt!(sys::setgroups(&p.groups), e, StepId::Setgroups, 0);
    attempt!(sys::setgid(p.gid), e, StepId::Setgid, 0);
    attempt!(sys::setuid(p.uid), e, StepId::Setuid, 0);
    if let Some(c) = &p.caps {
        attempt!(sys::capset(&c.data), e, StepId::Capset, 0);
        attempt!(sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0), e, StepId::KeepCaps, 1);
        for cap in &c.ambient {
            let r = sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as _, *cap as _);
            attempt!(r, e, StepId::Ambient, *cap);
        }
    }
    if p.nnp {
        attempt!(sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0), e, StepId::NoNewPrivs, 0);
        for f in &p.seccomp {
            attempt!(sys::seccomp_install(f), e, StepId::Seccomp, 0);
        }
    }
    if let Some(m) = p.umask {
        sys::umask(m);
    }
}

#[cfg(test)]
mod tests {
    use super::StepId;

    #[test]
    fn step_ids_round_trip_through_the_wire() {
        assert_eq!(StepId::from_u32(0), None);
        for (i, s) in StepId::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
            assert_eq!(StepId::from_u32(s.to_u32()), Some(*s));
        }
        assert_eq!(StepId::from_u32(StepId::ALL.len() as u32 + 1), None);
    }
}
