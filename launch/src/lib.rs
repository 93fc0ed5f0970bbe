//! The launcher: turns a [`LaunchSpec`] into a running process inside new (or joined) namespaces,
//! like an OCI runtime does for a bundle. The engine builds the spec; the monitor calls [`spawn`].
//!
//! The OCI runtime-spec `Spec` carries the process (args, env, cwd, user, capabilities, rlimits,
//! no_new_privileges, terminal), hostname/domainname, mounts, and `linux` (namespaces — a
//! namespace with a `path` is joined, without one is created —, resources, cgroups path, masked and
//! read-only paths, sysctls, devices). What OCI leaves to the caller is in [`LaunchSpec`] itself.

mod caps;
mod child;
mod init;
mod plan;
mod seccomp;
mod sys;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_cgroups::{Cgroup, CgroupError};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

pub use caps::{DOCKER_DEFAULT_CAPS, all_capabilities, docker_default_capabilities};
use child::{Pipes, REPORT_LEN, StepId};
use plan::{FsPlan, ProcPlan};

/// Everything needed to start a container's first process.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The OCI runtime spec (process, mounts, linux namespaces/resources/paths/sysctls/devices).
    pub oci: oci_spec::runtime::Spec,
    /// How the root filesystem is made; mounted inside the container's mount namespace only,
    /// so nothing is left on the host when the container dies.
    pub rootfs: Rootfs,
    /// Which seccomp filter to install.
    pub seccomp: SeccompMode,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals (`init: true`).
    pub init: bool,
}

/// The container's root filesystem.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// overlayfs of read-only image layers (`lower`, topmost first) with a per-container upper.
    Overlay {
        /// Image layer directories, topmost first (overlayfs `lowerdir` order).
        lower: Vec<PathBuf>,
        /// The container's writable layer.
        upper: PathBuf,
        /// overlayfs work directory (same filesystem as `upper`).
        work: PathBuf,
        /// The (empty) directory the overlay is mounted on before pivot_root.
        target: PathBuf,
        /// Mount with `volatile`: no sync of the upper filesystem, in particular none when the
        /// overlay goes with the container's last process (a whole-filesystem sync). Only for a
        /// writable layer that is thrown away when the container stops (`--rm`); the work
        /// directory then refuses later mounts until it is emptied.
        volatile: bool,
    },
    /// An existing directory used as is (tests, `--rootfs`).
    Dir(PathBuf),
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// The equivalent of docker's default profile.
    Default,
    /// No filter (`security_opt: seccomp=unconfined`, and `privileged`).
    Unconfined,
}

/// The standard streams handed to the container's process.
#[derive(Debug)]
pub enum Stdio {
    /// Separate pipes/files; `stdin` None means /dev/null.
    Pipes {
        /// Standard input, or None for /dev/null.
        stdin: Option<OwnedFd>,
        /// Standard output.
        stdout: OwnedFd,
        /// Standard error.
        stderr: OwnedFd,
    },
    /// A pseudo-terminal: the slave side becomes the process's stdin/stdout/stderr and its
    /// controlling terminal.
    Pty {
        /// The pty slave.
        slave: OwnedFd,
    },
    /// A new pseudo-terminal allocated from the container's own /dev/ptmx (like docker `-t`,
    /// so `tty` inside names it /dev/pts/N): its slave becomes the controlling terminal and
    /// std streams; the master is returned in `pty_master` of [`Spawned`] / [`ExecChild`].
    NewPty,
    /// The container's own /dev/null for stdin, stdout and stderr (docker's detached exec).
    Null,
}

/// Docker's default masked paths (unreadable inside the container).
pub const DOCKER_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths.
pub const DOCKER_READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Why a launch or exec failed. Messages name what failed; none is a bare errno.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The spec asks for something contradictory or malformed.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// The spec asks for something berth's launcher does not implement.
    #[error("not supported by berth's launcher: {0}")]
    Unsupported(String),
    /// An rlimit above the hard limit berth itself runs with (it can never be raised).
    #[error(
        "ulimit {name}: requested soft {soft} / hard {hard}, but the hard limit here is {max} (and soft must not exceed hard)"
    )]
    Rlimit {
        /// e.g. RLIMIT_NOFILE.
        name: String,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
        /// The current hard limit.
        max: u64,
    },
    /// A sysctl that is not namespaced (would change the host) or not allowed here.
    #[error("sysctl {key} is not allowed: {reason}")]
    Sysctl {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The container's cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A parent-side operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A step of the container's setup failed in the new process.
    #[error("container setup failed: {step}: {source}")]
    Setup {
        /// The step, e.g. "mount tmpfs on /dev/shm".
        step: String,
        /// The OS error.
        source: io::Error,
    },
    /// The caller's pre-start hook (networking) failed.
    #[error("{0}")]
    PreStart(String),
    /// The seccomp filter could not be built.
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(String),
    /// args[0] was not found in $PATH (exit code 127 in docker).
    #[error("exec: \"{program}\": executable file not found in $PATH")]
    ExecNotFound {
        /// args[0].
        program: String,
    },
    /// args[0] is a path that does not exist (exit code 127).
    #[error("exec: \"{program}\": stat {program}: no such file or directory")]
    ExecNoSuchFile {
        /// args[0].
        program: String,
    },
    /// args[0] exists but can't be executed (exit code 126).
    #[error("exec: \"{program}\": permission denied")]
    ExecPermissionDenied {
        /// args[0].
        program: String,
    },
    /// execve failed otherwise (exit code 126).
    #[error("exec: \"{program}\": {source}")]
    ExecFailed {
        /// args[0].
        program: String,
        /// The OS error.
        source: io::Error,
    },
}

impl LaunchError {
    /// The exit code docker reports for this failure, when it is an exec failure
    /// (127 not found, 126 not executable).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            LaunchError::ExecNotFound { .. } | LaunchError::ExecNoSuchFile { .. } => Some(127),
            LaunchError::ExecPermissionDenied { .. } | LaunchError::ExecFailed { .. } => Some(126),
            _ => None,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(nix::Error) -> LaunchError {
    let what = what.into();
    move |e| LaunchError::Io { what, source: e.into() }
}

/// A started container process.
#[derive(Debug)]
pub struct Spawned {
    /// PID (in the caller's namespace) of the container's PID 1, a direct child of the caller.
    pub pid: Pid,
    /// The container's cgroup (destroy it after the process is gone).
    pub cgroup: Cgroup,
    /// The pty master when started with [`Stdio::NewPty`].
    pub pty_master: Option<OwnedFd>,
}

impl Spawned {
    /// Waits for the container's PID 1 and returns its docker-style exit code.
    pub fn wait(&self) -> Result<i32, LaunchError> {
        wait(self.pid)
    }
}

/// A process started inside a running container by [`exec_in`].
#[derive(Debug)]
pub struct ExecChild {
    /// PID in the caller's namespace; a direct child of the caller.
    pub pid: Pid,
    /// The pty master when started with [`Stdio::NewPty`].
    pub pty_master: Option<OwnedFd>,
}

impl ExecChild {
    /// Waits for the process and returns its docker-style exit code.
    pub fn wait(&self) -> Result<i32, LaunchError> {
        wait(self.pid)
    }
}

/// Waits for a child and returns its exit code, or 128+signal if a signal killed it.
pub fn wait(pid: Pid) -> Result<i32, LaunchError> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(io_err(format!("wait for process {pid}"))(e)),
        }
    }
}

/// A close-on-exec pipe whose fds are >= 3 (the child later dup2s onto 0..2).
fn pipe_high() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io_err("create a pipe"))?;
    Ok((high_fd(r)?, high_fd(w)?))
}

/// A socket pair for passing a new pty's master when `stdio` asks for one: (parent, child).
fn pty_socket(stdio: &Stdio) -> Result<Option<(OwnedFd, OwnedFd)>, LaunchError> {
    if !matches!(stdio, Stdio::NewPty) {
        return Ok(None);
    }
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(io_err("create the pty socket"))?;
    Ok(Some((high_fd(a)?, high_fd(b)?)))
}

/// Receives the pty master the child sends; None when the child closed the socket first.
fn recv_pty(sock: &OwnedFd) -> Result<Option<OwnedFd>, LaunchError> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg =
        recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(io_err("receive the container's pty"))?;
    for c in msg.cmsgs().map_err(io_err("receive the container's pty"))? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just installed this fd for us; nothing else owns it.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) }));
        }
    }
    Ok(None)
}

/// Moves `fd` to a number >= 3 (the child later dup2s onto 0..2).
fn high_fd(fd: OwnedFd) -> Result<OwnedFd, LaunchError> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    let n = sys::dup_high(fd.as_raw_fd()).map_err(|e| LaunchError::Io {
        what: "duplicate a descriptor".into(),
        source: io::Error::from_raw_os_error(e),
    })?;
    // SAFETY: n is a fresh fd from fcntl(F_DUPFD_CLOEXEC) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// How a new process enters its cgroup without the parent writing `cgroup.procs` (see
/// `Cgroup::self_join_paths`): cloned straight into the cgroup2 directory, and moving itself
/// into each v1 hierarchy first thing in the child.
struct Placement {
    /// The cgroup2 directory (O_PATH), for clone3's CLONE_INTO_CGROUP.
    unified: Option<OwnedFd>,
    /// Its path, for the fallback write when clone3 isn't available.
    unified_path: Option<PathBuf>,
    /// v1 `tasks` files the child writes "0" to.
    tasks: Vec<std::ffi::CString>,
}

impl Placement {
    fn new(cgroup: &Cgroup) -> Result<Placement, LaunchError> {
        let (unified_path, tasks) = cgroup.self_join_paths();
        let unified = match &unified_path {
            Some(p) => Some(
                File::options()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                    .open(p)
                    .map_err(|source| LaunchError::Io {
                        what: format!("open cgroup {}", p.display()),
                        source,
                    })?
                    .into(),
            ),
            None => None,
        };
        let tasks = tasks
            .into_iter()
            .map(|p| {
                std::ffi::CString::new(p.into_os_string().into_vec()).map_err(|_| {
                    LaunchError::InvalidSpec("a cgroup path contains a NUL byte".into())
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Placement { unified, unified_path, tasks })
    }

    /// After the clone: when clone3 couldn't place the child in the cgroup2 directory, the
    /// parent writes its pid there the classic way.
    fn finish(&self, pid: Pid, in_unified: bool) -> Result<(), LaunchError> {
        if let (false, Some(p)) = (in_unified, &self.unified_path) {
            let procs = p.join("cgroup.procs");
            std::fs::write(&procs, pid.as_raw().to_string()).map_err(|source| LaunchError::Io {
                what: format!("write {}", procs.display()),
                source,
            })?;
        }
        berth_timing::mark("launch: pid placed in the cgroup");
        Ok(())
    }
}

/// Forks the child with `flags` and (clone3) straight into the cgroup2 directory `cgroup`,
/// with every signal blocked, and runs `child` in it. Returns the child's pid in the parent
/// and whether it was cloned into `cgroup` (false when clone3 is unavailable, e.g. filtered by
/// a seccomp profile: plain clone then). The child stays in our pid namespace: a pid namespace
/// to join is entered by the child's own child at the very end (child.rs `finish_and_exec`).
fn clone_with(
    flags: libc::c_ulong,
    cgroup: Option<&OwnedFd>,
    child: impl FnOnce(),
) -> Result<(Pid, bool), LaunchError> {
    let mut old = SigSet::empty();
    let blocked = nix::sys::signal::pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let mut into_cgroup = false;
    let mut r = Err(libc::ENOSYS);
    if let Some(fd) = cgroup {
        // SAFETY: as for clone_raw below.
        r = unsafe { sys::clone3_into_cgroup(flags, fd.as_raw_fd()) };
        into_cgroup = r.is_ok();
    }
    if matches!(r, Err(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)) {
        // SAFETY: the child branch only runs `child`, which uses raw system calls on data
        // prepared before this point and leaves through exec or _exit (see child.rs); it never
        // returns here.
        r = unsafe { sys::clone_raw(flags | libc::SIGCHLD as libc::c_ulong) };
    }
    if let Ok(0) = r {
        child();
        sys::exit(127);
    }
    if blocked.is_ok() {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    match r {
        Ok(pid) => Ok((Pid::from_raw(pid), into_cgroup)),
        Err(e) => Err(LaunchError::Io {
            what: "create the container process (clone)".into(),
            source: io::Error::from_raw_os_error(e),
        }),
    }
}

/// How long the child may take from clone to exec.
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What the child reported on the error pipe until it closed.
#[derive(Debug, Default)]
struct Reports {
    /// The pid of the process that entered a joined pid namespace (child.rs `Relayed`).
    relayed: Option<Pid>,
    /// The failure (step, index, errno), if any; none means the exec happened.
    failure: Option<(u32, u32, i32)>,
}

/// Reads the child's records until the pipe closes: after the exec, or after a failure (a
/// process that reports one exits). Read to the end, since with a relay the two processes'
/// records may arrive in either order.
fn read_reports(err_r: OwnedFd) -> Result<Reports, LaunchError> {
    let mut f = File::from(err_r);
    let deadline = std::time::Instant::now() + SETUP_TIMEOUT;
    let mut out = Reports::default();
    while let Some(rec) = read_report(&mut f, deadline)? {
        if StepId::from_u32(rec.0) == Some(StepId::Relayed) {
            out.relayed = Some(Pid::from_raw(rec.1 as i32));
        } else if out.failure.is_none() {
            out.failure = Some(rec);
        }
    }
    Ok(out)
}

/// Reads one record: None when the pipe closed first.
fn read_report(
    f: &mut File,
    deadline: std::time::Instant,
) -> Result<Option<(u32, u32, i32)>, LaunchError> {
    let mut buf = [0u8; REPORT_LEN];
    let mut got = 0;
    while got < REPORT_LEN {
        // A setup that never reaches exec (a hung mount...) must not block the caller forever.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(f.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => {
                return Err(LaunchError::Io {
                    what: format!(
                        "container setup did not finish within {} s",
                        SETUP_TIMEOUT.as_secs()
                    ),
                    source: io::Error::from(io::ErrorKind::TimedOut),
                });
            }
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(io_err("wait for the container's setup status")(e)),
        }
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(LaunchError::Io {
                    what: "read the container's setup status".into(),
                    source,
                });
            }
        }
    }
    if got < REPORT_LEN {
        return Ok(None);
    }
    let word = |i: usize| [buf[i], buf[i + 1], buf[i + 2], buf[i + 3]];
    Ok(Some((
        u32::from_ne_bytes(word(0)),
        u32::from_ne_bytes(word(4)),
        i32::from_ne_bytes(word(8)),
    )))
}

/// Turns a child report into a typed error.
fn report_error(
    (step, idx, errno): (u32, u32, i32),
    proc_: &ProcPlan,
    fs: Option<&FsPlan>,
    join_names: &[&str],
    cgroup_tasks: &[std::ffi::CString],
) -> LaunchError {
    let source = io::Error::from_raw_os_error(errno);
    let program = proc_.program.clone();
    let i = idx as usize;
    let step = match StepId::from_u32(step) {
        Some(StepId::Exec) => {
            return match errno {
                libc::ENOENT if proc_.searched => LaunchError::ExecNotFound { program },
                libc::ENOENT => LaunchError::ExecNoSuchFile { program },
                libc::EACCES => LaunchError::ExecPermissionDenied { program },
                _ => LaunchError::ExecFailed { program, source },
            };
        }
        Some(StepId::Rootfs) => {
            fs.map_or("mount the root filesystem".into(), |f| f.rootfs.desc.clone())
        }
        Some(StepId::Pre) => {
            let desc = fs.and_then(|f| f.pre.get(i)).map_or("mount".into(), |s| s.desc.clone());
            // A bind of a file onto a directory in the image (or the reverse) fails so.
            if errno == libc::ENOTDIR && desc.starts_with("bind ") {
                format!("{desc} (a file and a directory cannot be bound onto each other)")
            } else {
                desc
            }
        }
        Some(StepId::Post) => {
            fs.and_then(|f| f.post.get(i)).map_or("mask".into(), |s| s.desc.clone())
        }
        Some(StepId::Sysctl) => format!(
            "set sysctl {}",
            fs.and_then(|f| f.sysctl_names.get(i)).map_or("?", |s| s.as_str())
        ),
        Some(StepId::Rlimit) => {
            format!("set {}", proc_.rlimit_names.get(i).map_or("rlimit", |s| s.as_str()))
        }
        Some(StepId::Setns) => {
            format!("join the {} namespace", join_names.get(i).copied().unwrap_or("?"))
        }
        Some(StepId::Pivot) => match idx {
            0 => "enter the root filesystem".into(),
            1 => "pivot_root".into(),
            2 => "detach the old root".into(),
            _ => "chdir /".into(),
        },
        Some(StepId::Bounding) => format!("drop capability {idx} from the bounding set"),
        Some(StepId::Ambient) => format!("raise ambient capability {idx}"),
        Some(StepId::Chdir) => {
            format!("chdir to working directory {}", proc_.cwd.to_string_lossy())
        }
        Some(StepId::MkdirCwd) => {
            format!("create working directory {}", proc_.cwd.to_string_lossy())
        }
        Some(StepId::Loopback) => "bring up the loopback interface".into(),
        Some(StepId::CgroupJoin) => format!(
            "join the container's cgroup (write {})",
            cgroup_tasks.get(i).map_or("?".into(), |p| p.to_string_lossy().into_owned())
        ),
        Some(StepId::Setuid) => format!("set user id {}", proc_.uid),
        Some(StepId::Setgid) => format!("set group id {}", proc_.gid),
        Some(StepId::Setgroups) => format!("set supplementary groups {:?}", proc_.groups),
        Some(StepId::Relay) => match idx {
            0 => "join the container's pid namespace".into(),
            _ => "create the process in the container's pid namespace".into(),
        },
        Some(other) => format!("{other:?}"),
        None => format!("step {step}"),
    };
    LaunchError::Setup { step, source }
}

static ANON: AtomicU32 = AtomicU32::new(0);

/// Kills and reaps a child that must not run.
fn kill_and_reap(pid: Pid) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = wait(pid);
}

/// The outcome of the child's setup once its error pipe closed: the pid of the process that
/// runs in the container (the child itself, or the child's child that entered a joined pid
/// namespace; either way our direct child), or the typed failure with everything killed and
/// reaped. `relay`: a pid namespace was to be joined.
fn settle(
    child: Pid,
    relay: bool,
    reports: Result<Reports, LaunchError>,
    to_error: impl FnOnce((u32, u32, i32)) -> LaunchError,
) -> Result<Pid, LaunchError> {
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            kill_and_reap(child);
            return Err(e);
        }
    };
    if let Some(gc) = reports.relayed {
        // The child exits right after reporting its child's pid.
        let _ = wait(child);
        if let Some(rep) = reports.failure {
            kill_and_reap(gc);
            return Err(to_error(rep));
        }
        return Ok(gc);
    }
    if let Some(rep) = reports.failure {
        kill_and_reap(child);
        return Err(to_error(rep));
    }
    if relay {
        kill_and_reap(child);
        return Err(LaunchError::Io {
            what: "create the process in the container's pid namespace".into(),
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        });
    }
    Ok(child)
}

/// Starts the container's first process: namespaces, cgroup, then `pre_start(pid)` in the
/// caller while the child waits, then the rest of the setup and the exec.
pub fn spawn(
    spec: &LaunchSpec,
    stdio: Stdio,
    pre_start: impl FnOnce(Pid) -> Result<(), String>,
) -> Result<Spawned, LaunchError> {
    let process = spec
        .oci
        .process()
        .as_ref()
        .ok_or_else(|| LaunchError::InvalidSpec("the spec has no process".into()))?;
    let ns = plan::namespaces(&spec.oci)?;
    let console = match &stdio {
        Stdio::Pty { slave } => {
            Some(std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).map_err(
                |source| LaunchError::Io { what: "find the pty slave's path".into(), source },
            )?)
        }
        Stdio::Pipes { .. } | Stdio::NewPty | Stdio::Null => None,
    };
    let fs = plan::fs_plan(&spec.oci, &spec.rootfs, &ns, console.as_deref())?;
    let proc_ = ProcPlan::new(process, spec.seccomp, &stdio)?;
    let linux = spec.oci.linux().clone().unwrap_or_default();
    let cg_path = match linux.cgroups_path() {
        Some(p) => p.to_string_lossy().into_owned(),
        None => {
            format!("berth/anon-{}-{}", std::process::id(), ANON.fetch_add(1, Ordering::Relaxed))
        }
    };
    berth_timing::mark("launch: planned");
    let cgroup = Cgroup::create(&cg_path, &linux.resources().clone().unwrap_or_default())?;
    berth_timing::mark("launch: cgroup created");
    let placement = match Placement::new(&cgroup) {
        Ok(p) => p,
        Err(e) => {
            let _ = cgroup.destroy();
            return Err(e);
        }
    };
    let join_names: Vec<&str> = ns.join.iter().map(|(_, _, n)| *n).collect();

    let started = (|| {
        let (sync_r, sync_w) = pipe_high()?;
        let (err_r, err_w) = pipe_high()?;
        let pty = pty_socket(&stdio)?;
        let pipes = Pipes {
            sync_r: sync_r.as_raw_fd(),
            err_w: err_w.as_raw_fd(),
            pty_sock: pty.as_ref().map_or(-1, |(_, c)| c.as_raw_fd()),
        };
        let (pid, in_unified) = clone_with(ns.clone_flags, placement.unified.as_ref(), || {
            child::container_main(pipes, &placement.tasks, &ns, &fs, &proc_, spec.init)
        })?;
        drop(sync_r);
        drop(err_w);
        Ok::<_, LaunchError>((pid, in_unified, sync_w, err_r, pty.map(|(p, _)| p)))
    })();
    let (pid, in_unified, sync_w, err_r, pty_sock) = match started {
        Ok(v) => v,
        Err(e) => {
            let _ = cgroup.destroy();
            return Err(e);
        }
    };
    drop(stdio);
    berth_timing::mark("launch: cloned");
    let abort_in = |pid: Pid, e: LaunchError| {
        kill_and_reap(pid);
        let _ = cgroup.destroy();
        e
    };
    let abort = |e: LaunchError| abort_in(pid, e);
    if let Err(e) = placement.finish(pid, in_unified) {
        return Err(abort(e));
    }
    if let Some(adj) = process.oom_score_adj()
        && let Err(source) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
    {
        return Err(abort(LaunchError::Io { what: format!("set oom_score_adj {adj}"), source }));
    }
    if let Err(msg) = pre_start(pid) {
        return Err(abort(LaunchError::PreStart(msg)));
    }
    // A failed write means the child is gone; its report (if any) says why.
    berth_timing::mark("launch: placed, pre_start done");
    let _ = sys::write_all(sync_w.as_raw_fd(), b"g");
    drop(sync_w);
    let pty_master = match pty_sock.as_ref().map(recv_pty).transpose() {
        Ok(m) => m.flatten(),
        Err(e) => return Err(abort(e)),
    };
    let reports = read_reports(err_r);
    berth_timing::mark("launch: child exec'd");
    let settled = settle(pid, ns.join_pid.is_some(), reports, |rep| {
        report_error(rep, &proc_, Some(&fs), &join_names, &placement.tasks)
    });
    match settled {
        Ok(pid) if pty_sock.is_some() && pty_master.is_none() => Err(abort_in(
            pid,
            LaunchError::Io {
                what: "receive the container's pty".into(),
                source: io::Error::from(io::ErrorKind::UnexpectedEof),
            },
        )),
        Ok(pid) => Ok(Spawned { pid, cgroup, pty_master }),
        Err(e) => {
            let _ = cgroup.destroy();
            Err(e)
        }
    }
}

/// Namespace files joined by `exec_in`, the mount namespace last (it changes root and cwd).
const EXEC_NAMESPACES: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

fn same_ns(a: &str, b: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

/// Starts `process` inside the running container whose PID 1 is `target` (docker exec): joins
/// its namespaces and cgroup, applies user/env/cwd/caps/seccomp/no_new_privs and execs. The
/// new process is a direct child of the caller.
pub fn exec_in(
    target: Pid,
    process: &oci_spec::runtime::Process,
    cgroup: &Cgroup,
    seccomp: SeccompMode,
    stdio: Stdio,
) -> Result<ExecChild, LaunchError> {
    let proc_ = ProcPlan::new(process, seccomp, &stdio)?;
    let mut join: Vec<(OwnedFd, libc::c_int, &'static str)> = Vec::new();
    for (name, flag) in EXEC_NAMESPACES {
        let theirs = format!("/proc/{target}/ns/{name}");
        if same_ns(&theirs, &format!("/proc/self/ns/{name}")) {
            continue;
        }
        let f = File::open(&theirs).map_err(|source| LaunchError::Io {
            what: format!("open the container's {name} namespace ({theirs})"),
            source,
        })?;
        join.push((f.into(), *flag, name));
    }
    let pid_ns = format!("/proc/{target}/ns/pid");
    let join_pid: Option<OwnedFd> = if same_ns(&pid_ns, "/proc/self/ns/pid") {
        None
    } else {
        Some(
            File::open(&pid_ns)
                .map_err(|source| LaunchError::Io { what: format!("open {pid_ns}"), source })?
                .into(),
        )
    };
    let join_names: Vec<&str> = join.iter().map(|(_, _, n)| *n).collect();
    let (sync_r, sync_w) = pipe_high()?;
    let (err_r, err_w) = pipe_high()?;
    let pty = pty_socket(&stdio)?;
    let pipes = Pipes {
        sync_r: sync_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        pty_sock: pty.as_ref().map_or(-1, |(_, c)| c.as_raw_fd()),
    };
    let placement = Placement::new(cgroup)?;
    let join_pid_fd = join_pid.as_ref().map_or(-1, |f| f.as_raw_fd());
    let (pid, in_unified) = clone_with(0, placement.unified.as_ref(), || {
        child::exec_main(pipes, &placement.tasks, &join, join_pid_fd, &proc_)
    })?;
    drop(sync_r);
    drop(err_w);
    let pty_sock = pty.map(|(p, _)| p);
    drop(stdio);
    if let Err(e) = placement.finish(pid, in_unified) {
        kill_and_reap(pid);
        return Err(e);
    }
    let _ = sys::write_all(sync_w.as_raw_fd(), b"g");
    drop(sync_w);
    let pty_master = match pty_sock.as_ref().map(recv_pty).transpose() {
        Ok(m) => m.flatten(),
        Err(e) => {
            kill_and_reap(pid);
            return Err(e);
        }
    };
    let pid = settle(pid, join_pid.is_some(), read_reports(err_r), |rep| {
        report_error(rep, &proc_, None, &join_names, &placement.tasks)
    })?;
    Ok(ExecChild { pid, pty_master })
}

/// Docker's default device cgroup rules: deny everything, then allow mknod of any node and
/// use of null, zero, full, random, urandom, tty, console, ptmx, pts and tun.
pub fn docker_default_device_rules() -> Vec<oci_spec::runtime::LinuxDeviceCgroup> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as T};
    let rule = |allow: bool, typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow).set_typ(Some(typ)).set_major(major).set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut v = vec![rule(false, T::A, None, None, "rwm")];
    v.push(rule(true, T::C, None, None, "m"));
    v.push(rule(true, T::B, None, None, "m"));
    for (ma, mi) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200)] {
        v.push(rule(true, T::C, Some(ma), Some(mi), "rwm"));
    }
    v.push(rule(true, T::C, Some(136), None, "rwm"));
    v
}
