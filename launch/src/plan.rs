//! Parent-side precomputation: everything the child needs, built before the fork so the child
//! only issues system calls on ready data.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use libc::c_ulong;
use oci_spec::runtime::{LinuxNamespaceType, Mount, PosixRlimitType, Process, Spec};

use super::caps::{self, CapPlan};
use super::{LaunchError, Rootfs, SeccompMode, Stdio};

/// Builds a CString, rejecting interior NULs with a message naming `what`.
pub fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString, LaunchError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| LaunchError::InvalidSpec(format!("{what} contains a NUL byte")))
}

fn cpath(p: &Path, what: &str) -> Result<CString, LaunchError> {
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

/// How the standard streams are set up.
#[derive(Debug, Clone, Copy)]
pub enum StdioPlan {
    /// fds for 0, 1, 2 (stdin None = /dev/null).
    Pipes { stdin: Option<RawFd>, stdout: RawFd, stderr: RawFd },
    /// The pty slave for all three, made the controlling terminal.
    Pty { slave: RawFd },
    /// A pty allocated from the container's /dev/ptmx; the master goes to the parent.
    NewPty,
    /// The container's /dev/null for all three.
    Null,
}

/// The process part: shared by `spawn` and `exec_in`.
pub struct ProcPlan {
    /// argv strings (kept alive for the pointers).
    pub _argv: Vec<CString>,
    /// NULL-terminated argv.
    pub argv_ptrs: Vec<*const libc::c_char>,
    /// envp strings.
    pub _envp: Vec<CString>,
    /// NULL-terminated envp.
    pub envp_ptrs: Vec<*const libc::c_char>,
    /// Paths to try with execve, in order.
    pub candidates: Vec<CString>,
    /// Whether args[0] was searched in $PATH.
    pub searched: bool,
    /// args[0] for messages.
    pub program: String,
    /// Target uid/gid.
    pub uid: u32,
    /// Target gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
    /// umask, if set.
    pub umask: Option<u32>,
    /// Capability changes; None keeps the current (full root) sets.
    pub caps: Option<CapPlan>,
    /// Set no_new_privs.
    pub nnp: bool,
    /// seccomp programs in installation order.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// Working directory.
    pub cwd: CString,
    /// rlimits (resource, value) and their names.
    pub rlimits: Vec<(u32, libc::rlimit)>,
    /// Names of rlimits for messages.
    pub rlimit_names: Vec<String>,
    /// Standard streams.
    pub stdio: StdioPlan,
    /// "/dev/null" for a missing stdin.
    pub devnull: CString,
    /// "/dev/ptmx" for a new pty.
    pub ptmx: CString,
    /// Terminal size to set on a pty (`process.consoleSize`).
    pub winsize: Option<libc::winsize>,
    /// Empty signal set (mask to restore before exec).
    pub empty_sigset: libc::sigset_t,
    /// Full signal set (init's wait set).
    pub full_sigset: libc::sigset_t,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn rlimit_resource(t: PosixRlimitType) -> Option<u32> {
    use PosixRlimitType as T;
    Some(match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn sigset(full: bool) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigfillset initialise the zeroed set in place.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        if full {
            libc::sigfillset(&mut s);
        } else {
            libc::sigemptyset(&mut s);
        }
        s
    }
}

impl ProcPlan {
    /// Precomputes the process part. `stdio` must outlive the fork.
    pub fn new(p: &Process, seccomp: SeccompMode, stdio: &Stdio) -> Result<ProcPlan, LaunchError> {
        let args = p.args().clone().unwrap_or_default();
        let Some(program) = args.first().cloned() else {
            return Err(LaunchError::InvalidSpec("process.args is empty".into()));
        };
        let argv = args.iter().map(|a| cstr(a, "an argument")).collect::<Result<Vec<_>, _>>()?;
        let env = p.env().clone().unwrap_or_default();
        let envp = env
            .iter()
            .map(|e| cstr(e, "an environment variable"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<_> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<_> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());

        let searched = !program.contains('/');
        let candidates = if searched {
            let path =
                env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|d| {
                    let d = if d.is_empty() { "." } else { d };
                    cstr(format!("{}/{program}", d.trim_end_matches('/')), "a PATH entry")
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![cstr(&program, "the program path")?]
        };

        let user = p.user();
        let caps = match p.capabilities() {
            Some(c) => Some(caps::plan(c)?),
            None => None,
        };
        let nnp = p.no_new_privileges().unwrap_or(false);
        let effective = caps.as_ref().map_or(u64::MAX, |c| c.effective);
        let seccomp = match seccomp {
            SeccompMode::Unconfined => Vec::new(),
            SeccompMode::Default => super::seccomp::default_profile(effective)?,
        };

        let mut rlimits = Vec::new();
        let mut rlimit_names = Vec::new();
        for r in p.rlimits().iter().flatten() {
            let name = format!("{:?}", r.typ()).to_uppercase().replace("RLIMIT", "RLIMIT_");
            let res = rlimit_resource(r.typ())
                .ok_or_else(|| LaunchError::InvalidSpec(format!("unknown rlimit {name}")))?;
            let cur = nix::sys::resource::getrlimit(
                // nix's Resource enum has the same values as the libc constants.
                resource_enum(res)?,
            )
            .map_err(|e| LaunchError::Io { what: format!("getrlimit {name}"), source: e.into() })?;
            let hard_now = cur.1;
            if r.hard() > hard_now || r.soft() > r.hard() {
                return Err(LaunchError::Rlimit {
                    name,
                    soft: r.soft(),
                    hard: r.hard(),
                    max: hard_now,
                });
            }
            rlimits.push((res, libc::rlimit { rlim_cur: r.soft(), rlim_max: r.hard() }));
            rlimit_names.push(name);
        }

        let stdio = match stdio {
            Stdio::Pipes { stdin, stdout, stderr } => StdioPlan::Pipes {
                stdin: stdin.as_ref().map(|f| f.as_raw_fd()),
                stdout: stdout.as_raw_fd(),
                stderr: stderr.as_raw_fd(),
            },
            Stdio::Pty { slave } => StdioPlan::Pty { slave: slave.as_raw_fd() },
            Stdio::NewPty => StdioPlan::NewPty,
            Stdio::Null => StdioPlan::Null,
        };
        let cwd = if p.cwd().as_os_str().is_empty() { PathBuf::from("/") } else { p.cwd().clone() };
        Ok(ProcPlan {
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            candidates,
            searched,
            program,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            caps,
            nnp,
            seccomp,
            cwd: cpath(&cwd, "process.cwd")?,
            rlimits,
            rlimit_names,
            stdio,
            devnull: cstr("/dev/null", "")?,
            ptmx: cstr("/dev/ptmx", "")?,
            winsize: p.console_size().map(|b| libc::winsize {
                ws_row: u16::try_from(b.height()).unwrap_or(u16::MAX),
                ws_col: u16::try_from(b.width()).unwrap_or(u16::MAX),
                ws_xpixel: 0,
                ws_ypixel: 0,
            }),
            empty_sigset: sigset(false),
            full_sigset: sigset(true),
        })
    }
}

fn resource_enum(res: u32) -> Result<nix::sys::resource::Resource, LaunchError> {
    use nix::sys::resource::Resource as R;
    let all = [
        R::RLIMIT_AS,
        R::RLIMIT_CORE,
        R::RLIMIT_CPU,
        R::RLIMIT_DATA,
        R::RLIMIT_FSIZE,
        R::RLIMIT_LOCKS,
        R::RLIMIT_MEMLOCK,
        R::RLIMIT_MSGQUEUE,
        R::RLIMIT_NICE,
        R::RLIMIT_NOFILE,
        R::RLIMIT_NPROC,
        R::RLIMIT_RSS,
        R::RLIMIT_RTPRIO,
        R::RLIMIT_RTTIME,
        R::RLIMIT_SIGPENDING,
        R::RLIMIT_STACK,
    ];
    all.into_iter()
        .find(|r| *r as u32 == res)
        .ok_or_else(|| LaunchError::InvalidSpec(format!("unknown rlimit resource {res}")))
}

/// Namespaces to create (clone flags) and to join (fd, type).
pub struct NsPlan {
    /// Flags for clone(2) (pid, net, mnt, uts, ipc).
    pub clone_flags: c_ulong,
    /// Create a cgroup namespace after joining the cgroup.
    pub new_cgroupns: bool,
    /// Namespaces to join in the child: (fd, CLONE_NEW* type, name).
    pub join: Vec<(std::os::fd::OwnedFd, libc::c_int, &'static str)>,
    /// A pid namespace to join: entered last, by a child of the new process (child.rs).
    pub join_pid: Option<std::os::fd::OwnedFd>,
    /// Whether the container has its own network namespace.
    pub new_net: bool,
    /// Whether the container has its own UTS namespace.
    pub new_uts: bool,
}

/// Parses `linux.namespaces`.
pub fn namespaces(spec: &Spec) -> Result<NsPlan, LaunchError> {
    let mut plan = NsPlan {
        clone_flags: 0,
        new_cgroupns: false,
        join: Vec::new(),
        join_pid: None,
        new_net: false,
        new_uts: false,
    };
    let mut has_mnt = false;
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    for ns in nss {
        let (flag, name) = match ns.typ() {
            LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
            LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "net"),
            LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mnt"),
            LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
            LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
            LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
            other => {
                return Err(LaunchError::Unsupported(format!("{other:?} namespaces")));
            }
        };
        match ns.path() {
            Some(path) => {
                if flag == libc::CLONE_NEWNS {
                    return Err(LaunchError::Unsupported(
                        "joining an existing mount namespace".into(),
                    ));
                }
                let fd = std::fs::File::open(path).map_err(|source| LaunchError::Io {
                    what: format!("open {name} namespace {}", path.display()),
                    source,
                })?;
                if flag == libc::CLONE_NEWPID {
                    plan.join_pid = Some(fd.into());
                } else {
                    plan.join.push((fd.into(), flag, name));
                }
            }
            None => match flag {
                libc::CLONE_NEWCGROUP => plan.new_cgroupns = true,
                f => {
                    has_mnt |= f == libc::CLONE_NEWNS;
                    plan.new_net |= f == libc::CLONE_NEWNET;
                    plan.new_uts |= f == libc::CLONE_NEWUTS;
                    plan.clone_flags |= f as c_ulong;
                }
            },
        }
    }
    if !has_mnt {
        return Err(LaunchError::InvalidSpec(
            "a new mount namespace is required (the root filesystem is mounted inside it)".into(),
        ));
    }
    Ok(plan)
}

/// The container-side setup: rootfs, mounts, hostname, sysctls, masked/readonly paths.
pub struct FsPlan {
    /// Propagation flags for "/" (MS_REC|MS_SLAVE by default).
    pub propagation: c_ulong,
    /// The new root path (host view).
    pub root: CString,
    /// "." for pivot_root.
    pub dot: CString,
    /// "/" for the final chdir and the read-only remount.
    pub slash: CString,
    /// Mounting the root filesystem on `root`.
    pub rootfs: Step,
    /// Before pivot_root, in order, inside the rootfs.
    pub pre: Vec<Step>,
    /// After pivot_root, in order.
    pub post: Vec<Step>,
    /// Remount / read-only.
    pub readonly_root: bool,
    /// Hostname to set.
    pub hostname: Option<CString>,
    /// Domain name to set.
    pub domainname: Option<CString>,
    /// (/proc/sys path, value) pairs.
    pub sysctls: Vec<(CString, CString)>,
    /// sysctl keys for messages.
    pub sysctl_names: Vec<String>,
    /// Working directory levels to create (container paths), as root, after pivot.
    pub cwd_mkdirs: Vec<CString>,
}

/// Splits mount options into flags, propagation flags and data.
fn parse_options(opts: &[String]) -> (c_ulong, c_ulong, Vec<String>, bool) {
    let mut flags: c_ulong = 0;
    let mut prop: c_ulong = 0;
    let mut data = Vec::new();
    let mut bind = false;
    for o in opts {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "suid" => flags &= !libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "dev" => flags &= !libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "async" => flags &= !libc::MS_SYNCHRONOUS,
            "dirsync" => flags |= libc::MS_DIRSYNC,
            "noatime" => flags |= libc::MS_NOATIME,
            "atime" => flags &= !libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "diratime" => flags &= !libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "norelatime" => flags &= !libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "nostrictatime" => flags &= !libc::MS_STRICTATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                flags |= libc::MS_REC;
            }
            "private" => prop = libc::MS_PRIVATE,
            "rprivate" => prop = libc::MS_PRIVATE | libc::MS_REC,
            "slave" => prop = libc::MS_SLAVE,
            "rslave" => prop = libc::MS_SLAVE | libc::MS_REC,
            "shared" => prop = libc::MS_SHARED,
            "rshared" => prop = libc::MS_SHARED | libc::MS_REC,
            "unbindable" => prop = libc::MS_UNBINDABLE,
            "runbindable" => prop = libc::MS_UNBINDABLE | libc::MS_REC,
            // Mount-API-only or recursive-ro options berth doesn't implement are ignored.
            "rro" | "rrw" | "tmpcopyup" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, prop, data, bind)
}

/// Checks a container path: absolute, no `..`; returns it relative (without the leading /).
fn container_rel(p: &Path, what: &str) -> Result<PathBuf, LaunchError> {
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

/// mkdir -p steps for `rel` inside the rootfs (each level, EEXIST ok).
fn mkdirs(rel: &Path, steps: &mut Vec<Step>) -> Result<(), LaunchError> {
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

const DEV_NODES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The mounts docker gives every container, used when the spec has none at that destination.
fn default_mounts(new_net: bool) -> Vec<Mount> {
    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| {
        let mut mnt = Mount::default();
        mnt.set_destination(PathBuf::from(dest))
            .set_typ(Some(typ.to_string()))
            .set_source(Some(PathBuf::from(src)))
            .set_options(Some(opts.iter().map(|s| s.to_string()).collect()));
        mnt
    };
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        if new_net {
            m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
        } else {
            m("/sys", "bind", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])
        },
    ]
}

/// Builds the filesystem plan.
pub fn fs_plan(
    spec: &Spec,
    rootfs: &Rootfs,
    ns: &NsPlan,
    console: Option<&Path>,
) -> Result<FsPlan, LaunchError> {
    let linux = spec.linux().clone().unwrap_or_default();
    let (root_dir, rootfs_step) = match rootfs {
        Rootfs::Overlay { lower, upper, work, target, volatile } => {
            if lower.is_empty() {
                return Err(LaunchError::InvalidSpec("overlay rootfs without lower layers".into()));
            }
            for p in lower.iter().chain([upper, work]) {
                let s = p.to_string_lossy();
                if s.contains(',') || s.contains(':') {
                    return Err(LaunchError::InvalidSpec(format!(
                        "overlay layer path {s} contains ',' or ':'"
                    )));
                }
            }
            let lowers: Vec<String> =
                lower.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let data = format!(
                "lowerdir={},upperdir={},workdir={}{}",
                lowers.join(":"),
                upper.display(),
                work.display(),
                if *volatile { ",volatile" } else { "" }
            );
            if data.len() >= 4000 {
                return Err(LaunchError::Unsupported(format!(
                    "{} image layers: the overlay mount options exceed a page",
                    lower.len()
                )));
            }
            let step = Step {
                op: Op::Mount {
                    src: Some(cstr("overlay", "")?),
                    target: Target::Host(cpath(target, "rootfs target")?),
                    fstype: Some(cstr("overlay", "")?),
                    flags: 0,
                    data: Some(cstr(data, "overlay options")?),
                },
                desc: format!("mount overlay root filesystem on {}", target.display()),
            };
            (target.clone(), step)
        }
        Rootfs::Dir(dir) => {
            let step = Step {
                op: Op::Mount {
                    src: Some(cpath(dir, "rootfs")?),
                    target: Target::Host(cpath(dir, "rootfs")?),
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: None,
                },
                desc: format!("bind root filesystem {}", dir.display()),
            };
            (dir.clone(), step)
        }
    };

    // Defaults at their destinations unless the spec mounts there; then the spec's others.
    let spec_mounts = spec.mounts().clone().unwrap_or_default();
    let mut mounts: Vec<Mount> = Vec::new();
    for d in default_mounts(ns.new_net) {
        match spec_mounts.iter().find(|m| m.destination() == d.destination()) {
            Some(m) => mounts.push(m.clone()),
            None => mounts.push(d),
        }
    }
    let defaults: Vec<PathBuf> = mounts.iter().map(|m| m.destination().clone()).collect();
    mounts.extend(spec_mounts.into_iter().filter(|m| !defaults.contains(m.destination())));

    let mut pre = Vec::new();
    let layout = berth_cgroups::Layout::detect().ok();
    let is_v2 = matches!(layout, Some(berth_cgroups::Layout::V2(_)));
    for m in &mounts {
        let rel = container_rel(m.destination(), "mount destination")?;
        let at = InRoot::new(&rel)?;
        let dest = m.destination().display().to_string();
        let (flags, prop, data, bind_opt) = parse_options(&m.options().clone().unwrap_or_default());
        let mut typ = m.typ().clone().unwrap_or_else(|| "bind".into());
        let mut flags = flags;
        let mut source = m.source().clone();
        if bind_opt {
            typ = "bind".into();
        }
        // sysfs can only be mounted with an own network namespace: share the host's read-only.
        if typ == "sysfs" && !ns.new_net {
            typ = "bind".into();
            source = Some(PathBuf::from("/sys"));
            flags |= libc::MS_REC | libc::MS_RDONLY;
        }
        if typ == "bind" {
            let src = source.clone().ok_or_else(|| {
                LaunchError::InvalidSpec(format!("bind mount on {dest} has no source"))
            })?;
            let src = std::fs::canonicalize(&src).map_err(|source| LaunchError::Io {
                what: format!("bind mount source {} for {dest}", src.display()),
                source,
            })?;
            if let Some(parent) = rel.parent() {
                mkdirs(parent, &mut pre)?;
            }
            if src.is_dir() {
                pre.push(Step {
                    op: Op::Mkdir { at: at.clone(), mode: 0o755 },
                    desc: format!("create mount point {dest}"),
                });
            } else {
                pre.push(Step {
                    op: Op::Touch { at: at.clone() },
                    desc: format!("create mount point {dest}"),
                });
            }
            pre.push(Step {
                op: Op::Mount {
                    src: Some(cpath(&src, "bind source")?),
                    target: Target::Root(at.clone()),
                    fstype: None,
                    flags: libc::MS_BIND | (flags & libc::MS_REC),
                    data: None,
                },
                desc: format!("bind {} on {dest}", src.display()),
            });
            let remount = flags & !libc::MS_REC;
            if remount != 0 {
                pre.push(Step {
                    op: Op::Mount {
                        src: None,
                        target: Target::Root(at.clone()),
                        fstype: None,
                        flags: libc::MS_BIND | libc::MS_REMOUNT | remount,
                        data: None,
                    },
                    desc: format!("remount {dest} with its options"),
                });
            }
        } else {
            mkdirs(&rel, &mut pre)?;
            let (fstype, src) = match typ.as_str() {
                "cgroup" | "cgroup2" if is_v2 => ("cgroup2".to_string(), "cgroup".to_string()),
                // v1/hybrid: a tmpfs holding one mount per hierarchy (see cgroup_v1_steps), or
                // left empty without a cgroup namespace rather than showing the host's tree.
                "cgroup" | "cgroup2" => ("tmpfs".to_string(), "cgroup".to_string()),
                t => (
                    t.to_string(),
                    m.source().as_ref().map_or_else(|| t.to_string(), |s| s.display().to_string()),
                ),
            };
            let data =
                if fstype == "tmpfs" && src == "cgroup" { vec!["mode=755".into()] } else { data };
            let v1_view = src == "cgroup" && fstype == "tmpfs" && ns.new_cgroupns;
            // The v1 view is filled first and made read-only afterwards.
            let flags = match (src == "cgroup", v1_view) {
                (true, true) => flags & !libc::MS_RDONLY,
                (true, false) => flags | libc::MS_RDONLY,
                _ => flags,
            };
            pre.push(Step {
                op: Op::Mount {
                    src: Some(cstr(&src, "mount source")?),
                    target: Target::Root(at.clone()),
                    fstype: Some(cstr(&fstype, "mount type")?),
                    flags: flags & !libc::MS_REC,
                    data: if data.is_empty() {
                        None
                    } else {
                        Some(cstr(data.join(","), "mount options")?)
                    },
                },
                desc: format!("mount {fstype} on {dest}"),
            });
            if m.destination() == Path::new("/dev") && fstype == "tmpfs" {
                dev_steps(&linux, &mut pre)?;
            }
            if v1_view && let Some(layout) = &layout {
                cgroup_v1_steps(&rel, layout, &mut pre)?;
            }
        }
        if prop != 0 {
            pre.push(Step {
                op: Op::Mount {
                    src: None,
                    target: Target::Root(at),
                    fstype: None,
                    flags: prop,
                    data: None,
                },
                desc: format!("set propagation of {dest}"),
            });
        }
    }
    if let Some(console) = console {
        let t = InRoot::new(Path::new("dev/console"))?;
        pre.push(Step { op: Op::Touch { at: t.clone() }, desc: "create /dev/console".into() });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cpath(console, "console")?),
                target: Target::Root(t),
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
            },
            desc: format!("bind the terminal {} on /dev/console", console.display()),
        });
    }

    // After pivot_root: container paths.
    let mut post = Vec::new();
    for p in linux.readonly_paths().clone().unwrap_or_default() {
        container_rel(Path::new(&p), "readonly path")?;
        post.push(Step {
            op: Op::Readonly { path: cstr(&p, "readonly path")? },
            desc: format!("make {p} read-only"),
        });
    }
    for p in linux.masked_paths().clone().unwrap_or_default() {
        container_rel(Path::new(&p), "masked path")?;
        post.push(Step {
            op: Op::Mask { path: cstr(&p, "masked path")? },
            desc: format!("mask {p}"),
        });
    }

    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") | Some("rslave") => libc::MS_SLAVE | libc::MS_REC,
        Some("slave") => libc::MS_SLAVE,
        Some("private") => libc::MS_PRIVATE,
        Some("rprivate") => libc::MS_PRIVATE | libc::MS_REC,
        // Shared would leak the container's mounts to the host: refuse, as runc limits it.
        Some(other) => {
            return Err(LaunchError::Unsupported(format!("rootfsPropagation {other}")));
        }
    };

    let hostname = match spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        Some(h) if ns.new_uts => Some(cstr(h, "hostname")?),
        Some(_) => {
            return Err(LaunchError::InvalidSpec(
                "a hostname needs a UTS namespace (not with uts: host)".into(),
            ));
        }
        None => None,
    };
    let domainname = match spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        Some(h) if ns.new_uts => Some(cstr(h, "domainname")?),
        Some(_) => {
            return Err(LaunchError::InvalidSpec("a domainname needs a UTS namespace".into()));
        }
        None => None,
    };

    let mut sysctls = Vec::new();
    let mut sysctl_names = Vec::new();
    let mut keys: Vec<(String, String)> =
        linux.sysctl().clone().unwrap_or_default().into_iter().collect();
    keys.sort();
    for (k, v) in keys {
        check_sysctl(&k, ns)?;
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        sysctls.push((cstr(path, "sysctl")?, cstr(v, "sysctl value")?));
        sysctl_names.push(k);
    }

    let cwd = spec.process().as_ref().map(|p| p.cwd().clone()).unwrap_or_else(|| "/".into());
    let cwd_rel = container_rel(&cwd, "process.cwd")?;
    let mut cwd_mkdirs = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in cwd_rel.components() {
        cur.push(c);
        cwd_mkdirs.push(cpath(&cur, "process.cwd")?);
    }

    Ok(FsPlan {
        propagation,
        root: cpath(&root_dir, "rootfs")?,
        rootfs: rootfs_step,
        dot: cstr(".", "")?,
        slash: cstr("/", "")?,
        pre,
        post,
        readonly_root: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
        hostname,
        domainname,
        sysctls,
        sysctl_names,
        cwd_mkdirs,
    })
}

/// Only namespaced sysctls are allowed (as docker): the others would change the host.
fn check_sysctl(key: &str, ns: &NsPlan) -> Result<(), LaunchError> {
    let ipc = key == "kernel.sem"
        || key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key.starts_with("fs.mqueue.");
    if ipc {
        return Ok(());
    }
    if key.starts_with("net.") {
        if ns.new_net {
            return Ok(());
        }
        return Err(LaunchError::Sysctl {
            key: key.into(),
            reason: "net.* sysctls need the container's own network namespace".into(),
        });
    }
    Err(LaunchError::Sysctl {
        key: key.into(),
        reason: "not a namespaced sysctl (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)"
            .into(),
    })
}

fn dev_steps(linux: &oci_spec::runtime::Linux, pre: &mut Vec<Step>) -> Result<(), LaunchError> {
    let dev = PathBuf::from("dev");
    let mut nodes: Vec<(PathBuf, u32, u64, u32, u32, PathBuf)> = DEV_NODES
        .iter()
        .map(|(n, ma, mi)| {
            (
                dev.join(n),
                libc::S_IFCHR | 0o666,
                libc::makedev(*ma, *mi),
                0,
                0,
                Path::new("/dev").join(n),
            )
        })
        .collect();
    for d in linux.devices().clone().unwrap_or_default() {
        let rel = container_rel(d.path(), "device path")?;
        let kind = match d.typ().as_str() {
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let mode = kind | d.file_mode().unwrap_or(0o666) & 0o7777;
        nodes.push((
            rel,
            mode,
            libc::makedev(d.major() as u32, d.minor() as u32),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
            d.path().clone(),
        ));
    }
    for (path, mode, devno, uid, gid, host) in nodes {
        if let Some(parent) = path.parent() {
            mkdirs(parent, pre)?;
        }
        pre.push(Step {
            op: Op::Device {
                at: InRoot::new(&path)?,
                mode,
                dev: devno,
                uid,
                gid,
                host: cpath(&host, "device")?,
            },
            desc: format!("create device {}", host.display()),
        });
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        pre.push(Step {
            op: Op::Symlink { target: cstr(target, "")?, at: InRoot::new(&dev.join(link))? },
            desc: format!("link /dev/{link}"),
        });
    }
    Ok(())
}

/// The container's /sys/fs/cgroup on v1/hybrid: one read-only cgroup mount per hierarchy (in
/// the container's cgroup namespace they show its own cgroup as the root, so e.g.
/// memory/memory.limit_in_bytes is the container's limit), symlinks for co-mounted controllers
/// (cpu -> cpu,cpuacct), the cgroup2 mount as `unified`, then the tmpfs made read-only.
fn cgroup_v1_steps(
    rel: &Path,
    layout: &berth_cgroups::Layout,
    pre: &mut Vec<Step>,
) -> Result<(), LaunchError> {
    use berth_cgroups::Layout;
    let (v1, unified) = match layout {
        Layout::V1(m) => (m, None),
        Layout::Hybrid { v1, unified } => (v1, Some(unified)),
        Layout::V2(_) => return Ok(()),
    };
    let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // mount point -> controllers mounted there
    let mut hierarchies: std::collections::BTreeMap<&Path, Vec<&str>> = Default::default();
    for (ctrl, mp) in v1 {
        hierarchies.entry(mp.as_path()).or_default().push(ctrl);
    }
    for (mp, ctrls) in &hierarchies {
        let Some(dir) = mp.file_name() else { continue };
        let at = InRoot::new(&rel.join(dir))?;
        pre.push(Step {
            op: Op::Mkdir { at: at.clone(), mode: 0o755 },
            desc: format!("create /{}", rel.join(dir).display()),
        });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cstr("cgroup", "")?),
                target: Target::Root(at),
                fstype: Some(cstr("cgroup", "")?),
                flags: ro,
                data: Some(cstr(ctrls.join(","), "cgroup controllers")?),
            },
            desc: format!("mount the {} cgroup hierarchy", ctrls.join(",")),
        });
        for c in ctrls {
            if Path::new(c) != Path::new(dir) {
                pre.push(Step {
                    op: Op::Symlink {
                        target: cstr(dir.as_bytes(), "cgroup dir")?,
                        at: InRoot::new(&rel.join(c))?,
                    },
                    desc: format!("link /{}", rel.join(c).display()),
                });
            }
        }
    }
    if let Some(u) = unified.and_then(|u| u.file_name()) {
        let at = InRoot::new(&rel.join(u))?;
        pre.push(Step {
            op: Op::Mkdir { at: at.clone(), mode: 0o755 },
            desc: format!("create /{}", rel.join(u).display()),
        });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cstr("cgroup2", "")?),
                target: Target::Root(at),
                fstype: Some(cstr("cgroup2", "")?),
                flags: ro,
                data: None,
            },
            desc: "mount the cgroup2 hierarchy".into(),
        });
    }
    pre.push(Step {
        op: Op::Mount {
            src: None,
            target: Target::Root(InRoot::new(rel)?),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REMOUNT | ro,
            data: None,
        },
        desc: format!("make /{} read-only", rel.display()),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(new_net: bool) -> NsPlan {
        NsPlan {
            clone_flags: 0,
            new_cgroupns: false,
            join: Vec::new(),
            join_pid: None,
            new_net,
            new_uts: true,
        }
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o: Vec<String> =
            ["rbind", "ro", "nosuid", "rslave", "size=1m", "mode=1777"].map(String::from).to_vec();
        let (flags, prop, data, bind) = parse_options(&o);
        assert!(bind);
        assert_eq!(flags, libc::MS_REC | libc::MS_RDONLY | libc::MS_NOSUID);
        assert_eq!(prop, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(data, ["size=1m", "mode=1777"]);
    }

    #[test]
    fn only_namespaced_sysctls() {
        assert!(check_sysctl("net.ipv4.ip_forward", &ns(true)).is_ok());
        assert!(check_sysctl("net.ipv4.ip_forward", &ns(false)).is_err());
        for k in ["kernel.shmmax", "kernel.msgmax", "kernel.sem", "fs.mqueue.msg_max"] {
            assert!(check_sysctl(k, &ns(false)).is_ok(), "{k}");
        }
        assert!(check_sysctl("kernel.panic", &ns(true)).is_err());
        assert!(check_sysctl("vm.swappiness", &ns(true)).is_err());
    }

    #[test]
    fn container_paths_are_checked() {
        assert!(container_rel(Path::new("relative"), "x").is_err());
        assert!(container_rel(Path::new("/a/../etc"), "x").is_err());
        assert_eq!(container_rel(Path::new("/a/./b/"), "x").ok(), Some(PathBuf::from("a/b")));
        let r = InRoot::new(Path::new("dev/shm")).expect("in root");
        assert_eq!(r.parent.as_deref(), Some(c"dev"));
        assert_eq!(r.name.as_c_str(), c"shm");
    }
}
