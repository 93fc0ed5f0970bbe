//! The per-container monitor: `berth-monitor __monitor <root> <id> <berth>` (cli/src/bin).
//!
//! One small single-threaded process per running container (no async runtime: it is mostly
//! asleep in `poll`). It detaches (fork + setsid) so the CLI can exit, starts the container
//! through the launcher, owns its stdout/stderr (pipes, or a pty with `Tty`) and writes them to
//! the json-file log, reaps it and records exit code, OOM kill and times, applies the restart
//! policy with docker's backoff, runs the healthcheck, and destroys the cgroup after exit.
//!
//! Control channel: other CLIs signal the container's process directly (pinned by a pidfd and
//! checked against its start time) after recording their intent (`ManualStop`) in the state
//! file under the container lock; they send the monitor SIGUSR1 to make it re-read the state
//! (e.g. to cancel a pending restart). Signals need no socket, no extra fd in the monitor and
//! no protocol, and keep working if the monitor is busy.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use berth_launch::Stdio;
use berth_store::{StateRoot, StoreError};
use berth_timing::mark;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::container::api::{Health, HealthConfig, HealthLogEntry};
use crate::container::network::{NetAttachError, NetHold};
use crate::container::record::{ContainerPaths, ContainerRecord};
use crate::container::spec::{self, SpecError};
use crate::container::{ContainerError, rt};
use crate::logs::{LineSplitter, LogWriter, Rotation};
use crate::monitor_protocol::{
    STATUS_ENV, STATUS_STDIN, STATUS_STDIN_NOTIFY, StatusReport, test_pause,
};
use crate::process::{exit_code_of, process_alive, process_start_time};
use crate::time::now_rfc3339;

mod proxy;
mod udp_proxy;

/// Why a monitor could not start (or restart) its container; each displays as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A system call of the monitor's own setup failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call (`fork`, `pipe`, ...).
        call: &'static str,
        /// The error.
        source: nix::Error,
    },
    /// A descriptor could not be duplicated.
    #[error("dup: {0}")]
    Dup(std::io::Error),
    /// A file of the container could not be opened.
    #[error("open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
    /// The state root or a record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The container is gone, or its records are damaged.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The launch spec could not be built.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The networks could not be set up, or the launcher failed.
    #[error(transparent)]
    Net(#[from] NetAttachError),
    /// A healthcheck process could not be started.
    #[error(transparent)]
    Launch(#[from] berth_launch::LaunchError),
}

impl MonitorError {
    /// docker's exit status for a start that failed this way: 127 the program was not found,
    /// 126 it could not be executed, else 125.
    fn exit_code(&self) -> u8 {
        let launch = match self {
            MonitorError::Net(NetAttachError::Launch(e)) | MonitorError::Launch(e) => e,
            _ => return 125,
        };
        launch.exit_code().and_then(|c| u8::try_from(c).ok()).unwrap_or(125)
    }

    /// The report on a start that failed this way.
    fn report(&self) -> StatusReport {
        match self.exit_code() {
            125 => StatusReport::Failed { msg: self.to_string() },
            code => StatusReport::ExecFailed { code, msg: self.to_string() },
        }
    }
}

/// Shorthand for a failed system call.
fn sys(call: &'static str) -> impl FnOnce(nix::Error) -> MonitorError {
    move |source| MonitorError::Sys { call, source }
}

/// Forks the monitor away from its parent: returns false in the parent (which should exit 0
/// at once) and true in the detached child (new session, no controlling terminal).
pub fn daemonize() -> Result<bool, MonitorError> {
    // SAFETY: the monitor calls this first thing, while the process is single-threaded, so the
    // child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => Ok(false),
        Ok(ForkResult::Child) => {
            nix::unistd::setsid().map_err(sys("setsid"))?;
            Ok(true)
        }
        Err(e) => Err(sys("fork")(e)),
    }
}

static SIG_PIPE_W: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIG_PIPE_W.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Installs handlers that turn signals into bytes on a pipe (the self-pipe trick). Handlers,
/// unlike a blocked mask, are reset by exec, so the container doesn't inherit anything.
fn install_signal_pipe() -> Result<OwnedFd, MonitorError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(sys("pipe"))?;
    SIG_PIPE_W.store(w.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(w);
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGPIPE,
    ] {
        // SAFETY: the handler only calls write(2) on a pipe, which is async-signal-safe.
        unsafe { sigaction(s, &act) }.map_err(sys("sigaction"))?;
    }
    Ok(r)
}

/// The pipe to the CLI that started this monitor.
///
/// It carries the start's outcome ("ok <pid>" or "err <message>", one line). When the CLI
/// follows the container's output (`run` without `-d`, `start -a`) it then carries a wake-up
/// byte whenever output was appended to the log, and closes right after the final exit is
/// recorded: the CLI reads the log on each byte and stops at end-of-file. A watch on the
/// container directory would do the same, but closing an inotify instance waits for an SRCU
/// grace period (10-15 ms here) on the CLI's way out; a pipe costs nothing to close. An
/// `auto_remove` container whose CLI still reads at that point is removed by that CLI once it
/// has read everything (`Engine::container_start_attached`); by the monitor otherwise.
struct StatusPipe {
    file: File,
    /// The CLI follows the output: keep the pipe after "ok" and notify.
    notify: bool,
}

/// Takes the status pipe handed down by the CLI as stdin, if there is one, and puts
/// /dev/null in its place.
fn take_status_fd() -> Option<StatusPipe> {
    let notify = match std::env::var_os(STATUS_ENV) {
        Some(v) if v == STATUS_STDIN => false,
        Some(v) if v == STATUS_STDIN_NOTIFY => true,
        _ => return None,
    };
    // SAFETY: the environment is only read and changed here, while the monitor is still
    // single-threaded (before any thread is started).
    unsafe { std::env::remove_var(STATUS_ENV) };
    let status = nix::fcntl::fcntl(std::io::stdin(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .ok()
        .map(|fd| {
            // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
            unsafe { File::from_raw_fd(fd) }
        })?;
    // Nothing the monitor starts inherits the pipe: stdin becomes /dev/null.
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    Some(StatusPipe { file: status, notify })
}

/// Runs the monitor for container `id` under `root` (after [`daemonize`]), with `berth` the
/// CLI executable that started it; returns the exit code.
pub fn run(root: &Path, id: &str, berth: &Path) -> i32 {
    mark("monitor: detached");
    // One malloc arena: a thread the network setup starts (netlink) would otherwise leave
    // its own arena resident for the monitor's lifetime.
    // SAFETY: mallopt only changes the allocator's tuning; we are still single-threaded here.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    crate::monitor_protocol::set_berth_exe(berth);
    let status = take_status_fd();
    let m = match Monitor::new(root, id) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("monitor {id}: {e}");
            if let Some(mut s) = status {
                let _ = s.file.write_all(e.report().to_line().as_bytes());
            }
            return 1;
        }
    };
    *m.status.borrow_mut() = status;
    m.main()
}

struct Monitor {
    root: StateRoot,
    paths: ContainerPaths,
    id: String,
    sig_r: OwnedFd,
    me: i32,
    me_start: u64,
    /// tty containers with stdin: (fifo read end, pty master for writing).
    stdin_forward: std::cell::RefCell<Option<(OwnedFd, OwnedFd)>>,
    /// The pipe to the CLI that asked for the start, while it is open.
    status: std::cell::RefCell<Option<StatusPipe>>,
}

/// One run of the container process.
struct Running {
    pid: i32,
    cgroup: String,
    started: Instant,
    exit: Option<i64>,
}

struct HealthRun {
    pid: i32,
    out: File,
    buf: Vec<u8>,
    start: String,
    deadline: Instant,
    exit: Option<i64>,
    out_open: bool,
}

/// The container's output fds with their stream names.
type OutputFds = Vec<(OwnedFd, &'static str)>;

const HEALTH_OUTPUT_MAX: usize = 4096;

/// How long the monitor idles before letting go of its start-up memory (see `trim_memory`).
const IDLE_TRIM_AFTER: Duration = Duration::from_millis(200);

impl Monitor {
    fn new(root: &Path, id: &str) -> Result<Self, MonitorError> {
        let root = StateRoot::open(root)?;
        let paths = ContainerPaths::new(&root, id);
        let sig_r = install_signal_pipe()?;
        let me = std::process::id() as i32;
        let me_start = process_start_time(me).unwrap_or(0);
        Ok(Monitor {
            root,
            paths,
            id: id.to_string(),
            sig_r,
            me,
            me_start,
            stdin_forward: std::cell::RefCell::new(None),
            status: std::cell::RefCell::new(None),
        })
    }

    /// Tells the CLI that asked for the start how it went. The pipe stays open after a
    /// start when the CLI follows the output, else it closes.
    fn report(&self, report: StatusReport) {
        let Some(mut s) = self.status.borrow_mut().take() else { return };
        let started = matches!(report, StatusReport::Started { .. });
        if s.file.write_all(report.to_line().as_bytes()).is_ok() && s.notify && started {
            // Wake-ups must never block the monitor on a CLI that stopped reading.
            set_nonblock(s.file.as_raw_fd());
            *self.status.borrow_mut() = Some(s);
        }
    }

    /// Wakes the following CLI after output was appended to the log. One unread byte is enough
    /// (the CLI reads the whole log on each), so none is written while one is pending; a CLI
    /// that went away (EPIPE) is let go.
    fn notify_output(&self) {
        let mut slot = self.status.borrow_mut();
        let Some(s) = slot.as_mut() else { return };
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes the number of unread bytes of the pipe into `pending`.
        let r = unsafe { libc::ioctl(s.file.as_raw_fd(), libc::FIONREAD, &mut pending) };
        if r == 0 && pending > 0 {
            return;
        }
        match nix::unistd::write(&s.file, b".") {
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(_) => *slot = None,
        }
    }

    /// Closes the pipe to the following CLI: the container has stopped for good and its
    /// output is all in the log. Returns whether a CLI was following to the end (it then
    /// removes an `auto_remove` container itself once it has read the output: removing it
    /// here could delete the log under a CLI that has not opened it yet).
    fn close_status(&self) -> bool {
        let Some(s) = self.status.borrow_mut().take() else { return false };
        // A pipe whose reader is gone polls as POLLERR.
        let mut fds = [PollFd::new(s.file.as_fd(), PollFlags::POLLOUT)];
        let gone = match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLERR)),
            Err(_) => true,
        };
        s.notify && !gone
    }

    fn main(&self) -> i32 {
        let report = |r: StatusReport| self.report(r);
        let failed = |e: MonitorError| self.report(e.report());
        let mut delay = Duration::from_millis(100);
        let mut first = true;
        // The start lock is held by the monitor, not by the CLI that asked for the start:
        // from here until the start is recorded (or its failure is), so a killed CLI never
        // lets a second start in while this one is under way.
        let mut start_lock = match self.paths.start_lock() {
            Ok(g) => Some(g),
            Err(e) => {
                failed(e.into());
                return 1;
            }
        };
        match self.started_by_another() {
            Ok(Some(pid)) => {
                report(StatusReport::Started { pid });
                return 0;
            }
            Ok(None) => {}
            Err(e) => {
                failed(e);
                return 1;
            }
        }
        test_pause("before-launch");
        loop {
            let rec = match self.paths.read_config() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    failed(ContainerError::NotFound(self.id.clone()).into());
                    return 1;
                }
                Err(e) => {
                    failed(e.into());
                    return 1;
                }
            };
            let ((run, net_hold), stdio_fds) = match self.start_once(&rec, first) {
                Ok(x) => x,
                Err(e) => {
                    let _ = self.paths.update_state(|st| {
                        st.state.running = false;
                        st.state.restarting = false;
                        st.state.pid = 0;
                        st.state.exit_code = e.exit_code().into();
                        st.state.error = e.to_string();
                        st.state.status =
                            if st.has_been_started { "exited".into() } else { "created".into() };
                        if st.has_been_started {
                            st.state.finished_at = now_rfc3339();
                        }
                        st.monitor_pid = 0;
                        st.monitor_start = 0;
                    });
                    failed(e);
                    return 1;
                }
            };
            if first {
                report(StatusReport::Started { pid: run.pid.into() });
                first = false;
                drop(start_lock.take());
            }
            let run = self.supervise(&rec, run, stdio_fds, &net_hold);
            mark("monitor: container reaped");
            // Its overlay went with its last process.
            if spec::volatile_rootfs(&rec) {
                spec::clear_volatile_marker(&self.paths.work());
            }
            // Before the state says exited, so a waiting `rm`/`stop` sees the network gone.
            crate::container::network::detach(&self.root, &self.id, net_hold);
            mark("monitor: network detached");
            let code = run.exit.unwrap_or(137);
            let oom = rt::cgroup_oom_killed(&run.cgroup);
            rt::cgroup_destroy(&run.cgroup);
            mark("monitor: cgroup destroyed");
            let ran_for = run.started.elapsed();
            if ran_for >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            let restart = self
                .paths
                .update_state(|st| {
                    st.state.running = false;
                    st.state.paused = false;
                    st.state.pid = 0;
                    st.state.exit_code = code;
                    st.state.oom_killed = oom;
                    st.state.finished_at = now_rfc3339();
                    let restart = should_restart(&rec, st.manual_stop, code, st.restart_count);
                    if restart {
                        st.state.restarting = true;
                        st.state.status = "restarting".into();
                        st.restart_count += 1;
                    } else {
                        st.state.restarting = false;
                        st.state.status = "exited".into();
                        st.monitor_pid = 0;
                        st.monitor_start = 0;
                    }
                    restart
                })
                .unwrap_or(false);
            mark("monitor: exit recorded");
            if !restart {
                let client_removes = self.close_status();
                if rec.host_config.auto_remove && !client_removes {
                    self.auto_remove();
                }
                return 0;
            }
            if !self.backoff(delay) {
                let _ = self.paths.update_state(|st| {
                    st.state.restarting = false;
                    st.state.status = "exited".into();
                    st.monitor_pid = 0;
                    st.monitor_start = 0;
                });
                // (No auto-remove here: it can't be combined with a restart policy.)
                self.close_status();
                return 0;
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    /// Under the start lock, before a start: the pid of the container when another monitor
    /// started it meanwhile (two starts asked at once). A record claiming a monitor that died
    /// is repaired first, as on any load.
    fn started_by_another(&self) -> Result<Option<i64>, MonitorError> {
        let _g = match self.paths.lock() {
            Ok(g) => g,
            // Removed while this monitor waited for the start lock.
            Err(_) if !self.paths.dir.exists() => {
                return Err(ContainerError::NotFound(self.id.clone()).into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut st = match self.paths.read_state_checked() {
            Ok(st) => st,
            Err(damage) => {
                return Err(ContainerError::Damaged { container: self.id.clone(), damage }.into());
            }
        };
        if !crate::container::claims_alive(&st) {
            return Ok(None);
        }
        if st.monitor_pid != self.me && process_alive(st.monitor_pid, st.monitor_start) {
            return Ok(Some(st.state.pid));
        }
        crate::container::repair_dead(&mut st);
        self.paths.write_state(&st)?;
        drop(_g);
        crate::container::network::release(&self.root, &self.id);
        Ok(None)
    }

    /// Sleeps before a restart; false when a user stop cancelled it meanwhile.
    fn backoff(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            let cancelled = self.paths.read_state().map(|s| s.manual_stop).unwrap_or(true)
                || !self.paths.dir.exists();
            if cancelled {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            let ms = (deadline - now).as_millis().min(10_000) as u16;
            let mut fds = [PollFd::new(self.sig_r.as_fd(), PollFlags::POLLIN)];
            let _ = nix::poll::poll(&mut fds, PollTimeout::from(ms));
            self.drain_signals();
        }
    }

    fn drain_signals(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.sig_r, &mut buf) {
                Ok(n) if n > 0 => out.extend(buf[..n].iter().map(|b| *b as i32)),
                _ => return out,
            }
        }
    }

    fn auto_remove(&self) {
        crate::container::remove_exited(&self.root, &self.id);
    }

    /// Sets up stdio, spawns the container and records it as running.
    /// Starts the container's process once; `user_start` for the start a user asked for (not
    /// a restart by policy).
    fn start_once(
        &self,
        rec: &ContainerRecord,
        user_start: bool,
    ) -> Result<((Running, NetHold), OutputFds), MonitorError> {
        let spec = spec::build(rec, &self.paths)?;
        mark("monitor: spec built");
        let (stdio, fds) = if rec.config.tty {
            let pty = nix::pty::openpty(None, None).map_err(sys("openpty"))?;
            set_cloexec(&pty.master);
            if rec.config.open_stdin {
                // With a terminal, stdin bytes go from the fifo into the pty master.
                let fifo = self.open_stdin_tty()?;
                let master_w = pty.master.try_clone().map_err(MonitorError::Dup)?;
                *self.stdin_forward.borrow_mut() = Some((fifo, master_w));
            }
            (Stdio::Pty { slave: pty.slave }, vec![(pty.master, "stdout")])
        } else {
            let (or, ow) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
            let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
            let stdin = if rec.config.open_stdin { Some(self.open_stdin(rec)?) } else { None };
            (Stdio::Pipes { stdin, stdout: ow, stderr: ew }, vec![(or, "stdout"), (er, "stderr")])
        };
        let (started, net_hold) =
            crate::container::network::spawn(&self.root, rec, &self.paths, spec, stdio)?;
        mark("monitor: spawned");
        let pid_start = process_start_time(started.pid).unwrap_or(0);
        let has_health = health_config(rec).is_some();
        self.paths.update_state(|st| {
            st.state.running = true;
            st.state.paused = false;
            st.state.restarting = false;
            st.state.pid = started.pid as i64;
            st.state.exit_code = 0;
            st.state.error = String::new();
            st.state.oom_killed = false;
            st.state.started_at = now_rfc3339();
            st.state.status = "running".into();
            st.state.health = has_health.then(|| Health {
                status: "starting".into(),
                failing_streak: 0,
                log: st.state.health.take().map(|h| h.log).unwrap_or_default(),
            });
            st.pid_start = pid_start;
            st.monitor_pid = self.me;
            st.monitor_start = self.me_start;
            st.cgroup = Some(PathBuf::from(&started.cgroup));
            st.has_been_started = true;
            if user_start {
                // As docker's start: an earlier user stop no longer holds the restart
                // policy back, and the policy's count starts again.
                st.manual_stop = false;
                st.restart_count = 0;
            }
        })?;
        mark("monitor: running recorded");
        Ok((
            (
                Running {
                    pid: started.pid,
                    cgroup: started.cgroup,
                    started: Instant::now(),
                    exit: None,
                },
                net_hold,
            ),
            fds,
        ))
    }

    /// The container's stdin: the read end of the `stdin` fifo an attached CLI writes to. Unless
    /// stdin closes with the first client (`StdinOnce`), the monitor keeps a writer open for the
    /// container's lifetime so it never sees end-of-file (docker's `-d -i`).
    fn open_stdin(&self, rec: &ContainerRecord) -> Result<OwnedFd, MonitorError> {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let path = self.paths.stdin_fifo();
        let r = open(&path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|source| MonitorError::Open { path: path.clone(), source })?;
        // SAFETY: fcntl on an fd we own; clears O_NONBLOCK so the container's reads block.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_RDONLY) };
        if !rec.config.stdin_once {
            let w = open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|source| MonitorError::Open { path: path.clone(), source })?;
            // Deliberately kept open until the monitor exits.
            std::mem::forget(w);
        }
        Ok(r)
    }

    /// The stdin fifo of a tty container, non-blocking, with a writer kept open by the monitor so
    /// reads never see end-of-file between clients.
    fn open_stdin_tty(&self) -> Result<OwnedFd, MonitorError> {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let path = self.paths.stdin_fifo();
        let r = open(&path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|source| MonitorError::Open { path: path.clone(), source })?;
        let w = open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|source| MonitorError::Open { path: path.clone(), source })?;
        // Deliberately kept open until the monitor exits.
        std::mem::forget(w);
        Ok(r)
    }

    /// Copies output to the log, runs healthchecks and reaps, until the container exited and
    /// its output is drained.
    fn supervise(
        &self,
        rec: &ContainerRecord,
        mut run: Running,
        fds: OutputFds,
        net: &NetHold,
    ) -> Running {
        let rotation = Rotation::from_options(&rec.host_config.log_config.config)
            .unwrap_or(Rotation { max_size: None, max_file: 1 });
        let mut writer = LogWriter::open(&self.paths.log(), rotation).ok();
        let mut streams: Vec<(OwnedFd, &'static str, LineSplitter, bool)> =
            fds.into_iter().map(|(fd, s)| (fd, s, LineSplitter::default(), true)).collect();
        for (fd, ..) in &streams {
            set_nonblock(fd.as_raw_fd());
        }
        let hc = health_config(rec);
        let started_at = Instant::now();
        let mut next_check = hc.as_ref().map(|h| started_at + first_delay(h));
        let mut check: Option<HealthRun> = None;
        let mut exited_at: Option<Instant> = None;
        let seccomp = spec::seccomp_mode(&rec.host_config);
        let mut buf = vec![0u8; 64 * 1024];
        // Only with IPv6 sockets: a monitor without them never runs (or pages in) proxy code.
        let mut proxy = proxy::Proxy::new(net.take_proxies());
        // Startup code (argument parsing, launcher) is done with: its pages are let go once the
        // monitor first idles, not at once, so a short-lived container's exit isn't delayed.
        let mut trimmed = false;
        // Woken by anything since the last trim: the next 200 ms idle trims again.
        let mut busy = false;
        // The code mappings the first trim found droppable.
        let mut code = Vec::new();
        loop {
            let streams_open = streams.iter().any(|s| s.3);
            if let Some(t) = exited_at {
                // Output is drained when every writer is gone; don't hang on a leaked fd.
                if !streams_open || t.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            let now = Instant::now();
            let mut timeout = Duration::from_secs(3600);
            if let Some(t) = exited_at {
                timeout = timeout.min((t + Duration::from_secs(2)).saturating_duration_since(now));
            }
            if run.exit.is_none() {
                if let (Some(n), None) = (next_check, &check) {
                    timeout = timeout.min(n.saturating_duration_since(now));
                }
                if let Some(c) = &check {
                    timeout = timeout.min(c.deadline.saturating_duration_since(now));
                }
            }
            if !trimmed || busy {
                timeout = timeout.min(IDLE_TRIM_AFTER);
            }
            if let Some(d) = proxy.as_ref().and_then(|p| p.next_deadline()) {
                timeout = timeout.min(d.saturating_duration_since(now));
            }
            let mut pfds: Vec<PollFd> = vec![PollFd::new(self.sig_r.as_fd(), PollFlags::POLLIN)];
            let mut idx = Vec::new();
            for (i, s) in streams.iter().enumerate() {
                if s.3 {
                    pfds.push(PollFd::new(s.0.as_fd(), PollFlags::POLLIN));
                    idx.push(i);
                }
            }
            let fwd = self.stdin_forward.borrow();
            let fwd_slot = match fwd.as_ref() {
                Some((fifo, _)) if run.exit.is_none() => {
                    pfds.push(PollFd::new(fifo.as_fd(), PollFlags::POLLIN));
                    Some(pfds.len() - 1)
                }
                _ => None,
            };
            let health_slot = match &check {
                Some(c) if c.out_open => {
                    pfds.push(PollFd::new(c.out.as_fd(), PollFlags::POLLIN));
                    Some(pfds.len() - 1)
                }
                _ => None,
            };
            let proxy_base = pfds.len();
            let proxy_slots = match &proxy {
                Some(p) if run.exit.is_none() => p.register(&mut pfds),
                _ => Vec::new(),
            };
            let ms = timeout.as_millis().min(60_000) as u16;
            let ready_count = nix::poll::poll(&mut pfds, PollTimeout::from(ms.max(1))).unwrap_or(1);
            if ready_count == 0 && !trimmed {
                trimmed = true;
                busy = false;
                code = trim_memory(&mut buf);
            } else if ready_count == 0 && busy {
                busy = false;
                retrim_code_pages(&code);
                trim_heap(&mut buf);
            } else if ready_count > 0 {
                busy = true;
            }
            let ready: Vec<bool> =
                pfds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect();
            let proxy_events: Vec<PollFlags> = pfds[proxy_base..]
                .iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect();
            drop(pfds);
            if let Some(p) = proxy.as_mut() {
                p.service(&proxy_slots, &proxy_events);
            }
            if let (Some(slot), Some((fifo, master))) = (fwd_slot, fwd.as_ref())
                && ready[slot]
            {
                forward_stdin(fifo, master);
            }
            drop(fwd);
            // Container output. A follower is woken after each chunk, not once the pipe is
            // drained: a fast writer keeps it from draining for as long as it writes, and a
            // follower woken only then could find the log rotated past what it had read.
            let mut logged = false;
            for (k, &i) in idx.iter().enumerate() {
                if !ready[k + 1] {
                    continue;
                }
                let s = &mut streams[i];
                loop {
                    match nix::unistd::read(&s.0, &mut buf) {
                        Ok(0) => {
                            s.3 = false;
                            break;
                        }
                        Ok(n) => {
                            for line in s.2.push(&buf[..n]) {
                                if let Some(w) = writer.as_mut() {
                                    logged |= w.write(s.1, &line).is_ok();
                                }
                            }
                            if std::mem::take(&mut logged) {
                                self.notify_output();
                            }
                        }
                        Err(nix::errno::Errno::EAGAIN) => break,
                        Err(nix::errno::Errno::EINTR) => continue,
                        // EIO: the pty's last slave closed.
                        Err(_) => {
                            s.3 = false;
                            break;
                        }
                    }
                }
                if !s.3
                    && let (Some(rest), Some(w)) = (s.2.finish(), writer.as_mut())
                {
                    logged |= w.write(s.1, &rest).is_ok();
                }
            }
            if logged {
                self.notify_output();
            }
            // Healthcheck output.
            if health_slot.is_some_and(|i| ready[i])
                && let Some(c) = check.as_mut()
            {
                read_health_output(c);
            }
            // Signals.
            for sig in self.drain_signals() {
                match sig {
                    libc::SIGCHLD => self.reap(&mut run, &mut check),
                    libc::SIGTERM | libc::SIGINT | libc::SIGHUP if run.exit.is_none() => {
                        // SAFETY: kill has no memory effects; pid is our own child.
                        unsafe { libc::kill(run.pid, libc::SIGTERM) };
                    }
                    // A live `network connect`/`disconnect` changed the published ports.
                    libc::SIGUSR1 if run.exit.is_none() => {
                        let bound = proxy::Proxy::bound(&proxy);
                        let mut close = |gone: &[_]| proxy::Proxy::close(&mut proxy, gone);
                        let add = crate::container::network::resync(
                            &self.root, &self.id, net, &bound, &mut close,
                        );
                        proxy::Proxy::add(&mut proxy, add);
                    }
                    _ => {}
                }
            }
            // A SIGCHLD may have coalesced with an earlier one: reap opportunistically.
            self.reap(&mut run, &mut check);
            if run.exit.is_some() && exited_at.is_none() {
                exited_at = Some(Instant::now());
                if let Some(p) = proxy.as_mut() {
                    p.close_all();
                }
                if let Some(c) = check.take() {
                    // SAFETY: kill has no memory effects; pid is our own child.
                    unsafe { libc::kill(c.pid, libc::SIGKILL) };
                }
            }
            // Healthcheck scheduling.
            let Some(h) = hc.as_ref() else { continue };
            if run.exit.is_some() {
                continue;
            }
            let now = Instant::now();
            if let Some(c) = check.as_mut() {
                if c.exit.is_none() && now >= c.deadline {
                    // SAFETY: kill has no memory effects; pid is our own child.
                    unsafe { libc::kill(c.pid, libc::SIGKILL) };
                    c.exit = Some(-1);
                    c.buf = format!(
                        "Health check exceeded timeout ({}s)",
                        dur(h.timeout, 30).as_secs()
                    )
                    .into_bytes();
                    c.out_open = false;
                }
                if c.exit.is_some() && (!c.out_open || now >= c.deadline) {
                    if c.out_open {
                        read_health_output(c);
                    }
                    let done = check.take();
                    if let Some(done) = done {
                        let in_start = started_at.elapsed() < dur(h.start_period, 0);
                        self.record_health(h, done, in_start);
                        next_check = Some(Instant::now() + interval_now(h, started_at));
                    }
                }
            } else if next_check.is_some_and(|n| now >= n) {
                match self.start_check(rec, h, &run, seccomp) {
                    Ok(c) => check = Some(c),
                    Err(e) => {
                        let in_start = started_at.elapsed() < dur(h.start_period, 0);
                        let now_s = now_rfc3339();
                        self.record_health(
                            h,
                            HealthRun {
                                pid: 0,
                                out: match File::open("/dev/null") {
                                    Ok(f) => f,
                                    Err(_) => continue,
                                },
                                buf: e.to_string().into_bytes(),
                                start: now_s,
                                deadline: now,
                                exit: Some(-1),
                                out_open: false,
                            },
                            in_start,
                        );
                        next_check = Some(Instant::now() + interval_now(h, started_at));
                    }
                }
            }
        }
        run
    }

    fn reap(&self, run: &mut Running, check: &mut Option<HealthRun>) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let Some(pid) = ws.pid() else { return };
                    let Some(code) = exit_code_of(ws) else { continue };
                    if pid.as_raw() == run.pid {
                        run.exit = Some(code);
                    } else if let Some(c) = check.as_mut().filter(|c| c.pid == pid.as_raw())
                        && c.exit.is_none()
                    {
                        c.exit = Some(code);
                    }
                }
            }
        }
    }

    fn start_check(
        &self,
        rec: &ContainerRecord,
        h: &HealthConfig,
        run: &Running,
        seccomp: berth_launch::SeccompMode,
    ) -> Result<HealthRun, MonitorError> {
        let argv: Vec<String> = match h.test.first().map(String::as_str) {
            Some("CMD") => h.test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
            _ => h.test.clone(),
        };
        let process = spec::exec_process(rec, &argv, &[], None, None, false, false)?;
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        let w2 = w.try_clone().map_err(MonitorError::Dup)?;
        let start = now_rfc3339();
        let pid = rt::exec_in(
            run.pid,
            &process,
            &run.cgroup,
            seccomp,
            Stdio::Pipes { stdin: None, stdout: w, stderr: w2 },
        )?;
        set_nonblock(r.as_raw_fd());
        Ok(HealthRun {
            pid,
            out: File::from(r),
            buf: Vec::new(),
            start,
            deadline: Instant::now() + dur(h.timeout, 30),
            exit: None,
            out_open: true,
        })
    }

    fn record_health(&self, h: &HealthConfig, c: HealthRun, in_start_period: bool) {
        let code = c.exit.unwrap_or(-1);
        let entry = HealthLogEntry {
            start: c.start,
            end: now_rfc3339(),
            exit_code: code,
            output: String::from_utf8_lossy(&c.buf[..c.buf.len().min(HEALTH_OUTPUT_MAX)])
                .into_owned(),
        };
        let retries = if h.retries > 0 { h.retries } else { 3 };
        let _ = self.paths.update_state(|st| {
            if !st.state.running {
                return;
            }
            let health = st
                .state
                .health
                .get_or_insert_with(|| Health { status: "starting".into(), ..Default::default() });
            if code == 0 {
                health.status = "healthy".into();
                health.failing_streak = 0;
            } else if !in_start_period {
                health.failing_streak += 1;
                if health.failing_streak >= retries {
                    health.status = "unhealthy".into();
                }
            }
            health.log.push(entry);
            let excess = health.log.len().saturating_sub(5);
            health.log.drain(..excess);
        });
    }
}

/// Moves what is waiting in the stdin fifo into the pty master.
fn forward_stdin(fifo: &OwnedFd, master: &OwnedFd) {
    let mut b = [0u8; 4096];
    while let Ok(n) = nix::unistd::read(fifo, &mut b) {
        if n == 0 {
            return;
        }
        let mut off = 0;
        let mut spins = 0;
        while off < n && spins < 1000 {
            match nix::unistd::write(master, &b[off..n]) {
                Ok(w) => off += w,
                Err(nix::errno::Errno::EAGAIN) => {
                    spins += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

fn read_health_output(c: &mut HealthRun) {
    let mut b = [0u8; 4096];
    loop {
        match c.out.read(&mut b) {
            Ok(0) => {
                c.out_open = false;
                return;
            }
            Ok(n) => {
                if c.buf.len() < HEALTH_OUTPUT_MAX {
                    c.buf.extend_from_slice(&b[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.out_open = false;
                return;
            }
        }
    }
}

/// The healthcheck to run, if any (`NONE` or an empty test disables it).
fn health_config(rec: &ContainerRecord) -> Option<HealthConfig> {
    let h = rec.config.healthcheck.clone()?;
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => None,
        _ => Some(h),
    }
}

fn dur(ns: i64, default_secs: u64) -> Duration {
    if ns > 0 { Duration::from_nanos(ns as u64) } else { Duration::from_secs(default_secs) }
}

fn first_delay(h: &HealthConfig) -> Duration {
    if h.start_period > 0 && h.start_interval > 0 {
        dur(h.start_interval, 5)
    } else {
        dur(h.interval, 30)
    }
}

fn interval_now(h: &HealthConfig, started: Instant) -> Duration {
    if h.start_interval > 0 && started.elapsed() < dur(h.start_period, 0) {
        dur(h.start_interval, 5)
    } else {
        dur(h.interval, 30)
    }
}

/// docker's restart decision after an exit.
pub fn should_restart(rec: &ContainerRecord, manual_stop: bool, code: i64, restarts: i64) -> bool {
    if manual_stop {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            code != 0 && (p.maximum_retry_count <= 0 || restarts < p.maximum_retry_count)
        }
        _ => false,
    }
}

/// An address range of this process's memory: (start, end).
type Range = (usize, usize);

/// Lets go of the memory an idle monitor no longer needs, so its resident set is only what
/// it touches from then on: the start-up code's pages, the heap freed after start-up, the
/// stack below the current frame and the pages of the output buffer `scratch`. Returns the
/// code mappings it dropped, for [`retrim_code_pages`].
fn trim_memory(scratch: &mut [u8]) -> Vec<Range> {
    let (code, stack) = trim_code_pages();
    trim_heap(scratch);
    if let Some((start, _)) = stack {
        trim_stack_below_here(start);
    }
    code
}

/// The heap part of [`trim_memory`], repeated after each busy spell (a burst of output, a
/// healthcheck, relayed connections): free heap pages and the output buffer's pages go back.
fn trim_heap(scratch: &mut [u8]) {
    release_pages(scratch);
    // SAFETY: malloc_trim only returns free heap memory to the kernel (madvise of free
    // chunks and a shrunk top); no live allocation is touched.
    unsafe { libc::malloc_trim(0) };
}

/// Gives the whole pages inside `buf` back to the kernel; they read as zeros afterwards and
/// become resident again only when written. For scratch buffers whose contents don't matter.
fn release_pages(buf: &mut [u8]) {
    let page = 4096;
    let start = (buf.as_mut_ptr() as usize).next_multiple_of(page);
    let end = (buf.as_mut_ptr() as usize + buf.len()) & !(page - 1);
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, which we borrow exclusively, and heap memory is
        // private anonymous memory: MADV_DONTNEED keeps it mapped and makes it read back as
        // zeros, a valid value for u8, so `buf` stays a valid (zeroed) slice there.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Drops again, after a busy spell, the pages of the code mappings `known` that the first trim
/// found droppable (logging or a healthcheck pages code back in). Only a mapping still present
/// with the same bounds, a read-only private file mapping, is touched; /proc/self/maps is
/// read rather than smaps, which would walk every page table again.
fn retrim_code_pages(known: &[Range]) {
    if known.is_empty() {
        return;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(path)) = (f.next(), f.next(), f.nth(3)) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        if (perms == "r-xp" || perms == "r--p")
            && path.starts_with('/')
            && known.contains(&(start, end))
        {
            // SAFETY: the same read-only private file mapping the first trim checked had no
            // anonymous page (it can't gain one: it is not writable); MADV_DONTNEED only unmaps
            // page-cache pages, which fault back in unchanged on the next access.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// Drops the resident pages of clean read-only file mappings (code and constants of our binary
/// and its libraries) and returns them and the main stack's range. Only mappings with no anonymous
/// (copied-on-write) page qualify: relocated RELRO data is anonymous (after a fork, e.g. the
/// `--init` process is a forked copy of the monitor, it shows as Shared_Dirty but is still
/// Anonymous); discarding it would bring back the unrelocated file contents. Dirty page-cache
/// pages (a binary written moments ago) are fine to unmap: the page cache keeps them.
fn trim_code_pages() -> (Vec<Range>, Option<Range>) {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return (Vec::new(), None) };
    // (start, end, eligible so far)
    let mut cur: Option<(usize, usize, bool)> = None;
    let mut candidates = Vec::new();
    let mut stack = None;
    for line in smaps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(first), Some(second)) = (f.next(), f.next()) else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            if let Some((s, e, true)) = cur {
                candidates.push((s, e));
            }
            let path = f.nth(3).unwrap_or("");
            if path == "[stack]" {
                stack = Some((start, end));
            }
            let eligible = (second == "r-xp" || second == "r--p") && path.starts_with('/');
            cur = Some((start, end, eligible));
            continue;
        }
        if matches!(first, "Private_Dirty:" | "Anonymous:")
            && second != "0"
            && let Some((_, _, eligible)) = cur.as_mut()
        {
            *eligible = false;
        }
    }
    if let Some((s, e, true)) = cur {
        candidates.push((s, e));
    }
    for &(start, end) in &candidates {
        // SAFETY: the range is a whole read-only private file mapping of this process with no
        // anonymous page (from /proc/self/smaps); MADV_DONTNEED only unmaps page-cache pages,
        // which fault back in unchanged on the next access.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    (candidates, stack)
}

/// Discards the main stack's pages below the current frame (less a margin for the calls made
/// from here), which start-up's deep calls (spec building, the launcher) left resident. Memory
/// below the stack pointer holds nothing live; a page touched again comes back zero-filled.
#[inline(never)]
fn trim_stack_below_here(stack_start: usize) {
    const MARGIN: usize = 16 * 1024;
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    let page = 4096;
    let end = (sp.saturating_sub(MARGIN)) & !(page - 1);
    if sp < stack_start || end <= stack_start {
        return;
    }
    // SAFETY: [stack_start, end) lies in this thread's stack mapping and at least MARGIN below
    // the current frame, so no live frame (this one, or the libc call below it) is there;
    // MADV_DONTNEED on anonymous memory makes it read back as zeros, which is fine for memory
    // nothing will read before writing.
    unsafe {
        libc::madvise(stack_start as *mut libc::c_void, end - stack_start, libc::MADV_DONTNEED)
    };
}

fn set_nonblock(fd: RawFd) {
    // SAFETY: fcntl on an fd we own; only the O_NONBLOCK flag is changed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn set_cloexec(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
}
