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
//!
//! Files: this one detaches, reports the start on the status pipe (`crate::monitor_protocol`)
//! and runs the start / exit / restart loop; `supervise` is the `poll` loop while the container
//! runs (output to the log, stdin, signals, reaping), `health` the healthchecks, `memory` the
//! trimming of an idle monitor's memory, `proxy` and `udp_proxy` the IPv6 port relays, `error`
//! [`MonitorError`] and `fds` descriptor flags. `supervise` extends the monitor defined here;
//! the others import nothing from this file.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use berth_launch::Stdio;
use berth_store::StateRoot;
use berth_timing::mark;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::ForkResult;

use crate::container::api::Health;
use crate::container::net::NetHold;
use crate::container::record::{ContainerPaths, ContainerRecord};
use crate::container::spec;
use crate::container::{ContainerError, cgroup};
use crate::monitor_protocol::{
    STATUS_ENV, STATUS_STDIN, STATUS_STDIN_NOTIFY, StatusReport, test_pause,
};
use crate::process::{process_alive, process_start_time};
use crate::time::now_rfc3339;

mod error;
mod fds;
mod health;
mod memory;
mod proxy;
mod supervise;
mod udp_proxy;

pub use error::MonitorError;

use error::sys;
use fds::{set_cloexec, set_nonblock};
use health::health_config;

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

/// The container's output fds with their stream names.
type OutputFds = Vec<(OwnedFd, &'static str)>;

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
            // Before the report, so no event the caller causes next (a kill, a stop) can be
            // journaled ahead of it; one small append.
            rec.journal(self.root.path(), "start", &[]);
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
            crate::container::net::detach(&self.root, &self.id, net_hold);
            mark("monitor: network detached");
            let code = run.exit.unwrap_or(137);
            let oom = cgroup::oom_killed(&run.cgroup);
            cgroup::destroy(&run.cgroup);
            mark("monitor: cgroup destroyed");
            let ran_for = run.started.elapsed();
            if ran_for >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            // Before the exit is recorded: a `stop` (or `rm`) waiting for it journals its own
            // event after this one, in docker's order (kill, die, stop). The record as it is
            // now: a rename while it ran is the name the die is reported under.
            let now = self.paths.read_config().ok().flatten();
            let named = now.as_ref().unwrap_or(&rec);
            if oom {
                named.journal(self.root.path(), "oom", &[]);
            }
            let exit = [("exitCode", code.to_string())];
            named.journal(self.root.path(), "die", &exit);
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
        crate::container::net::release(&self.root, &self.id);
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
            crate::container::net::spawn(&self.root, rec, &self.paths, spec, stdio)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_decide_like_docker() {
        let with = |name: &str, max: i64| {
            let mut rec = ContainerRecord::default();
            rec.host_config.restart_policy.name = name.into();
            rec.host_config.restart_policy.maximum_retry_count = max;
            rec
        };
        // No policy (or `no`): never.
        for name in ["", "no"] {
            assert!(!should_restart(&with(name, 0), false, 1, 0), "{name:?}");
        }
        // `always` and `unless-stopped`: whatever the exit code, unless a user stopped it.
        for name in ["always", "unless-stopped"] {
            assert!(should_restart(&with(name, 0), false, 0, 0), "{name}");
            assert!(should_restart(&with(name, 0), false, 137, 99), "{name}");
            assert!(!should_restart(&with(name, 0), true, 1, 0), "{name}");
        }
        // `on-failure`: only a non-zero exit, and only `max` times when a maximum is set.
        let on_failure = with("on-failure", 0);
        assert!(!should_restart(&on_failure, false, 0, 0));
        assert!(should_restart(&on_failure, false, 1, 1000));
        assert!(!should_restart(&on_failure, true, 1, 0));
        let limited = with("on-failure", 2);
        assert!(should_restart(&limited, false, 3, 0));
        assert!(should_restart(&limited, false, 3, 1));
        assert!(!should_restart(&limited, false, 3, 2));
    }
}
