//! The process part of a plan, shared by `spawn` and `exec_in`: argv, environment, program
//! candidates, user and groups, capabilities, seccomp, rlimits, stdio and terminal size.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use oci_spec::runtime::{PosixRlimitType, Process};

use super::steps::{cpath, cstr};
use crate::caps::{self, CapPlan};
use crate::{LaunchError, SeccompMode, Stdio};

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
            SeccompMode::Default => crate::seccomp::default_profile(effective)?,
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
