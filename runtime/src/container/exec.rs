//! `exec`: run another process in a running container, from the calling process (no monitor).
//! The process never gets this process's own descriptors (a host file or terminal it could
//! read, truncate or reopen through /proc/self/fd): without `tty` it gets pipes that are
//! relayed to our stdin/stdout/stderr, as docker does; with `tty`, a terminal allocated inside
//! the container, relayed to ours in raw mode (restored on return, error or panic), with
//! window size changes (SIGWINCH) forwarded as resizes; detached, the container's /dev/null.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use berth_launch::Stdio;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::api::ExecConfig;
use super::record::ContainerRecord;
use super::{ContainerError, launcher, spec, user};
use crate::Engine;

/// The result of an exec whose output was captured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    /// Exit code (128+N when killed by signal N).
    pub exit_code: i64,
    /// Captured standard output.
    pub stdout: Vec<u8>,
    /// Captured standard error.
    pub stderr: Vec<u8>,
}

/// What an exec needs once the container was checked: where to run what.
/// Starts `process` in the container of `pid` with pipes: stdin only when `interactive`.
/// Returns the child's pid and our ends (stdin to write, stdout and stderr to read).
fn exec_piped(
    pid: i32,
    process: &oci_spec::runtime::Process,
    cgroup: &str,
    seccomp: berth_launch::SeccompMode,
    interactive: bool,
) -> Result<(i32, Option<OwnedFd>, OwnedFd, OwnedFd), ContainerError> {
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ContainerError::Internal(format!("pipe: {e}")))
    };
    let (stdin_r, stdin_w) = match interactive {
        true => pipe().map(|(r, w)| (Some(r), Some(w)))?,
        false => (None, None),
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdio = Stdio::Pipes { stdin: stdin_r, stdout: out_w, stderr: err_w };
    let child = launcher::exec_in(pid, process, cgroup, seccomp, stdio)?;
    Ok((child, stdin_w, out_r, err_r))
}

struct Prepared {
    /// The container's main process (namespaces to join).
    pid: i32,
    /// The container's cgroup path.
    cgroup: String,
    /// The process to run.
    process: oci_spec::runtime::Process,
    seccomp: berth_launch::SeccompMode,
    journal: ExecJournal,
}

/// docker's `exec_create`/`exec_start`/`exec_die` events of one exec, in the event journal.
struct ExecJournal {
    root: std::path::PathBuf,
    container: ContainerRecord,
    exec_id: String,
}

impl ExecJournal {
    /// Journals the exec's creation and start (`exec_create: CMD`, `exec_start: CMD`).
    fn start(root: &std::path::Path, container: &ContainerRecord, cmd: &[String]) -> Self {
        let exec_id = crate::ids::random_id().unwrap_or_default();
        let line = cmd.join(" ");
        for action in ["exec_create", "exec_start"] {
            let attrs = [("execID", exec_id.clone())];
            container.journal(root, &format!("{action}: {line}"), &attrs);
        }
        ExecJournal { root: root.to_path_buf(), container: container.clone(), exec_id }
    }

    /// Journals the exec's end (`exec_die` with its exit code) and passes the result on.
    fn died(self, res: Result<i64, ContainerError>) -> Result<i64, ContainerError> {
        if let Ok(code) = &res {
            let attrs = [("execID", self.exec_id.clone()), ("exitCode", code.to_string())];
            self.container.journal(&self.root, "exec_die", &attrs);
        }
        res
    }
}

/// Waits for a child pid and returns its exit code.
pub fn wait_child(pid: i32) -> Result<i64, ContainerError> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(ws) => {
                if let Some(c) = crate::process::exit_code_of(ws) {
                    return Ok(c);
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(ContainerError::Internal(format!("waiting for exec process: {e}")));
            }
        }
    }
}

impl Engine {
    fn exec_prepare(&self, key: &str, cfg: &ExecConfig) -> Result<Prepared, ContainerError> {
        let l = self.load(key)?;
        if !l.st.state.running {
            return Err(ContainerError::NotRunning(l.rec.name.clone()));
        }
        if l.st.state.paused {
            return Err(ContainerError::Paused(l.rec.name.clone()));
        }
        if cfg.cmd.is_empty() {
            return Err(ContainerError::Invalid("No exec command specified".into()));
        }
        let pid = l.st.state.pid as i32;
        // Users resolve against the live root filesystem of the container.
        let who = match &cfg.user {
            Some(u) if !u.is_empty() => {
                let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
                let passwd = user::read_through_layers(std::slice::from_ref(&root), "/etc/passwd");
                let group = user::read_through_layers(std::slice::from_ref(&root), "/etc/group");
                let r = user::resolve(u, &[], passwd.as_deref(), group.as_deref())
                    .map_err(|e| ContainerError::Invalid(e.to_string()))?;
                Some((r.uid, r.gid, r.additional_gids))
            }
            _ => None,
        };
        let process = spec::exec_process(
            &l.rec,
            &cfg.cmd,
            &cfg.env,
            who,
            cfg.working_dir.as_deref(),
            cfg.tty,
            cfg.privileged,
        )
        .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let cg = l.st.cgroup.as_ref().and_then(|c| c.to_str()).unwrap_or_default().to_string();
        let mut hc = l.rec.host_config.clone();
        hc.privileged |= cfg.privileged;
        let journal = ExecJournal::start(self.root().path(), &l.rec, &cfg.cmd);
        Ok(Prepared { pid, cgroup: cg, process, seccomp: spec::seccomp_mode(&hc), journal })
    }

    /// Runs a command in a running container, relaying this process's stdin (with
    /// `interactive`), stdout and stderr to it through pipes (or its terminal with `tty`), and
    /// returns its exit code (detached: returns 0 at once). The process runs this process's
    /// code until its exec, visible to the container: call [`crate::sealed_exe::reexec`] at
    /// start-up (as the CLI does) so that its executable can't be written through it.
    pub async fn container_exec(&self, key: &str, cfg: ExecConfig) -> Result<i64, ContainerError> {
        let Prepared { pid, cgroup: cg, mut process, seccomp, journal } =
            self.exec_prepare(key, &cfg)?;
        if cfg.tty && !cfg.detach {
            // The size is set before the process runs (it may ask at once), later via SIGWINCH.
            if let Some(ws) = window_size(std::io::stdin().as_fd(), std::io::stdout().as_fd()) {
                let size = oci_spec::runtime::BoxBuilder::default()
                    .height(ws.ws_row as u64)
                    .width(ws.ws_col as u64)
                    .build()
                    .ok();
                process.set_console_size(size);
            }
            let (child, master) = launcher::exec_in_tty(pid, &process, &cg, seccomp)?;
            return crate::engine::blocking(move || journal.died(relay_tty(child, master))).await;
        }
        if cfg.detach {
            // Like docker's detached exec: nothing attached, the container's own /dev/null.
            let child = launcher::exec_in(pid, &process, &cg, seccomp, Stdio::Null)?;
            // Reap it in the background so it doesn't linger as a zombie of a long-lived caller.
            std::thread::spawn(move || journal.died(wait_child(child)));
            return Ok(0);
        }
        let (child, stdin_w, out_r, err_r) =
            exec_piped(pid, &process, &cg, seccomp, cfg.interactive)?;
        let relay = Relay { child, stdin: stdin_w, stdout: out_r, stderr: err_r };
        crate::engine::blocking(move || journal.died(relay.run())).await
    }

    /// Runs a command in a running container and captures its output.
    pub async fn container_exec_output(
        &self,
        key: &str,
        cfg: ExecConfig,
    ) -> Result<ExecOutput, ContainerError> {
        let Prepared { pid, cgroup: cg, process, seccomp, journal } =
            self.exec_prepare(key, &cfg)?;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| ContainerError::Internal(format!("pipe: {e}")))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdio = Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w };
        let child = launcher::exec_in(pid, &process, &cg, seccomp, stdio)?;
        crate::engine::blocking(move || {
            let t = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = std::fs::File::from(err_r).read_to_end(&mut v);
                v
            });
            let mut stdout = Vec::new();
            let _ = std::fs::File::from(out_r).read_to_end(&mut stdout);
            let stderr = t.join().unwrap_or_default();
            let exit_code = journal.died(wait_child(child))?;
            Ok(ExecOutput { exit_code, stdout, stderr })
        })
        .await
    }
}

/// The pipes of a non-terminal exec and the process they belong to.
struct Relay {
    child: i32,
    /// Write end of the process's stdin (None: not interactive, it has /dev/null).
    stdin: Option<OwnedFd>,
    /// Read end of its stdout.
    stdout: OwnedFd,
    /// Read end of its stderr.
    stderr: OwnedFd,
}

impl Relay {
    /// Copies our stdin to the process (closing its stdin at our EOF) and its stdout/stderr to
    /// ours, each stream in order, until the process exited and its output is drained (a
    /// background process still holding the pipes doesn't keep us); returns its exit code.
    fn run(self) -> Result<i64, ContainerError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let Relay { child, mut stdin, stdout, stderr } = self;
        let ours_in = std::io::stdin();
        let (ours_out, ours_err) = (std::io::stdout(), std::io::stderr());
        let pidfd = crate::process::pidfd_open(child);
        for fd in [Some(&stdout), Some(&stderr), stdin.as_ref()].into_iter().flatten() {
            set_nonblocking(fd.as_fd());
        }
        let mut outs = [
            Some(Sink::new(stdout.as_fd(), ours_out.as_fd())),
            Some(Sink::new(stderr.as_fd(), ours_err.as_fd())),
        ];
        // Input read from our stdin but not yet taken by the process.
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut exited = false;
        while !exited && (outs.iter().any(Option::is_some) || pidfd.is_some()) {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(5);
            let out_slots: Vec<Option<usize>> = outs
                .iter()
                .map(|o| o.as_ref().map(|o| push(&mut fds, o.from, PollFlags::POLLIN)))
                .collect();
            let pid_slot = pidfd.as_ref().map(|p| push(&mut fds, p.as_fd(), PollFlags::POLLIN));
            let (in_slot, feed_slot) = match &stdin {
                Some(w) if !pending.is_empty() => {
                    (None, Some(push(&mut fds, w.as_fd(), PollFlags::POLLOUT)))
                }
                Some(_) => (Some(push(&mut fds, ours_in.as_fd(), PollFlags::POLLIN)), None),
                None => (None, None),
            };
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ContainerError::Internal(format!("poll: {e}"))),
            }
            let ready = |s: Option<usize>| {
                s.and_then(|i| fds.get(i)).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty())
            };
            let out_ready: Vec<bool> = out_slots.iter().map(|s| ready(*s)).collect();
            let (input, feed) = (ready(in_slot), ready(feed_slot));
            exited = ready(pid_slot);
            drop(fds);
            if input {
                match nix::unistd::read(&ours_in, &mut buf) {
                    Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                    // End of our input (or none at all): the process sees EOF on its stdin.
                    _ => stdin = None,
                }
            }
            if feed && let Some(w) = &stdin {
                match nix::unistd::write(w, &pending) {
                    Ok(n) => drop(pending.drain(..n)),
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    // The process closed its stdin: stop feeding it.
                    Err(_) => {
                        stdin = None;
                        pending.clear();
                    }
                }
            }
            // Once the process exited, take whatever output is left, then stop.
            for (o, r) in outs.iter_mut().zip(out_ready) {
                if (r || exited) && o.as_mut().is_some_and(|s| !s.pump(&mut buf)) {
                    *o = None;
                }
            }
        }
        drop(stdin);
        wait_child(child)
    }
}

/// Adds `fd` to a poll set; returns its index.
fn push<'a>(
    fds: &mut Vec<nix::poll::PollFd<'a>>,
    fd: BorrowedFd<'a>,
    ev: nix::poll::PollFlags,
) -> usize {
    fds.push(nix::poll::PollFd::new(fd, ev));
    fds.len() - 1
}

/// One output stream of the process and where it goes.
struct Sink<'a> {
    from: BorrowedFd<'a>,
    to: BorrowedFd<'a>,
    /// False after a write to `to` failed: the rest is read and dropped, so the process never
    /// blocks on a full pipe.
    writable: bool,
}

impl<'a> Sink<'a> {
    fn new(from: BorrowedFd<'a>, to: BorrowedFd<'a>) -> Self {
        Sink { from, to, writable: true }
    }

    /// Copies what is readable now; false at end of stream.
    fn pump(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match nix::unistd::read(self.from, buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if self.writable && write_all(self.to, &buf[..n]).is_err() {
                        self.writable = false;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Relays this process's stdin/stdout to an exec's terminal until the process exits; returns
/// its exit code. Stdin is put in raw mode while it is a terminal (keys like ^C go to the
/// container's terminal, which turns them into signals there, as with docker exec -t).
fn relay_tty(child: i32, master: OwnedFd) -> Result<i64, ContainerError> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let _raw = RawMode::enter(stdin.as_fd());
    let winch = winch_pipe();
    copy_window_size(stdin.as_fd(), stdout.as_fd(), master.as_fd());
    let pidfd = crate::process::pidfd_open(child);
    set_nonblocking(master.as_fd());
    let mut buf = [0u8; 16 * 1024];
    let mut stdin_open = true;
    loop {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let pid_slot = pidfd.as_ref().map(|p| {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let winch_slot = winch.map(|w| {
            fds.push(PollFd::new(w, PollFlags::POLLIN));
            fds.len() - 1
        });
        let stdin_slot = stdin_open.then(|| {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ContainerError::Internal(format!("poll: {e}"))),
        }
        let ready = |slot: Option<usize>| {
            slot.and_then(|i| fds.get(i)).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty())
        };
        let (master_ready, exited, resized, input) =
            (ready(Some(0)), ready(pid_slot), ready(winch_slot), ready(stdin_slot));
        drop(fds);
        if resized {
            if let Some(w) = winch {
                drain(w);
            }
            copy_window_size(stdin.as_fd(), stdout.as_fd(), master.as_fd());
        }
        if input {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if write_all(master.as_fd(), &buf[..n]).is_err() {
                        stdin_open = false;
                    }
                }
            }
        }
        // Output until the terminal has no writer left (EIO) or, once the process exited,
        // until nothing is pending: a background child holding the terminal doesn't keep us.
        if (master_ready || exited) && !pump_output(master.as_fd(), stdout.as_fd(), &mut buf) {
            break;
        }
        if exited {
            break;
        }
    }
    wait_child(child)
}

/// Copies what the terminal has to `out`; false when it has no writer left.
fn pump_output(master: BorrowedFd<'_>, out: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
    loop {
        match nix::unistd::read(master, buf) {
            Ok(0) => return false,
            Ok(n) => {
                if write_all(out, &buf[..n]).is_err() {
                    return false;
                }
            }
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            // EIO: the last slave closed.
            Err(_) => return false,
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut p = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(100u16));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(fl) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK));
    }
}

/// Gives the exec's terminal the size of ours (stdin's, else stdout's; nothing when neither is
/// a terminal).
fn copy_window_size(stdin: BorrowedFd<'_>, stdout: BorrowedFd<'_>, master: BorrowedFd<'_>) {
    if let Some(ws) = window_size(stdin, stdout) {
        // SAFETY: TIOCSWINSZ reads one winsize from the struct we own.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// The size of our terminal: stdin's, else stdout's; None when neither is a terminal.
fn window_size(stdin: BorrowedFd<'_>, stdout: BorrowedFd<'_>) -> Option<libc::winsize> {
    [stdin, stdout].into_iter().find_map(|fd| {
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
        (unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
    })
}

/// Terminal settings of stdin, restored when dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: nix::sys::termios::Termios,
}

impl<'a> RawMode<'a> {
    /// Puts `fd` in raw mode; None when it isn't a terminal.
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ =
            nix::sys::termios::tcsetattr(self.fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Write end of the SIGWINCH self-pipe (-1 until installed).
static WINCH_W: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_W.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = 0u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// The read end of a pipe that gets a byte on every SIGWINCH. Installed once per process and
/// kept (SIGWINCH's default is to be ignored, so the handler changes nothing else; a full pipe
/// just drops bytes), so no handler can ever write to a closed, reused descriptor.
fn winch_pipe() -> Option<BorrowedFd<'static>> {
    static PIPE: OnceLock<Option<OwnedFd>> = OnceLock::new();
    PIPE.get_or_init(|| {
        use nix::fcntl::OFlag;
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        WINCH_W.store(w.as_raw_fd(), Ordering::Relaxed);
        std::mem::forget(w);
        let act =
            SigAction::new(SigHandler::Handler(on_winch), SaFlags::SA_RESTART, SigSet::empty());
        // SAFETY: the handler only calls write(2) on a pipe, which is async-signal-safe.
        unsafe { sigaction(Signal::SIGWINCH, &act) }.ok()?;
        Some(r)
    })
    .as_ref()
    .map(|fd| fd.as_fd())
}

fn drain(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 64];
    while matches!(nix::unistd::read(fd, &mut b), Ok(n) if n > 0) {}
}

/// The streams of an exec started with [`Engine::container_exec_spawn`].
#[derive(Debug)]
pub enum ExecStreams {
    /// Pipes: the process's stdin (None: it has /dev/null), stdout and stderr.
    Pipes {
        /// Write end of its stdin.
        stdin: Option<OwnedFd>,
        /// Read end of its stdout.
        stdout: OwnedFd,
        /// Read end of its stderr.
        stderr: OwnedFd,
    },
    /// A terminal allocated inside the container: its master side (input and output).
    Tty(OwnedFd),
}

/// A process started in a container whose streams the caller relays (the API service).
pub struct ExecChild {
    /// Its host pid (a child of the calling process: reap it with [`ExecChild::wait`]).
    pub pid: i32,
    journal: ExecJournal,
}

impl std::fmt::Debug for ExecChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecChild").field("pid", &self.pid).finish()
    }
}

impl ExecChild {
    /// Blocks until the process exited; returns its exit code and journals `exec_die`.
    pub fn wait(self) -> Result<i64, ContainerError> {
        self.journal.died(wait_child(self.pid))
    }
}

/// Sets the window size of an exec's terminal (docker's `exec resize`).
pub fn resize_tty(master: BorrowedFd<'_>, height: u16, width: u16) {
    let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the struct we own; a bad fd only fails.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

impl Engine {
    /// Starts a command in a running container and hands its streams to the caller (pipes,
    /// or with `tty` a terminal's master side) instead of relaying this process's own: what
    /// a server relaying them over a connection needs. `detach` is ignored.
    pub fn container_exec_spawn(
        &self,
        key: &str,
        cfg: &ExecConfig,
    ) -> Result<(ExecChild, ExecStreams), ContainerError> {
        let Prepared { pid, cgroup: cg, process, seccomp, journal } =
            self.exec_prepare(key, cfg)?;
        if cfg.tty {
            let (child, master) = launcher::exec_in_tty(pid, &process, &cg, seccomp)?;
            return Ok((ExecChild { pid: child, journal }, ExecStreams::Tty(master)));
        }
        let (child, stdin_w, out_r, err_r) =
            exec_piped(pid, &process, &cg, seccomp, cfg.interactive)?;
        let streams = ExecStreams::Pipes { stdin: stdin_w, stdout: out_r, stderr: err_r };
        Ok((ExecChild { pid: child, journal }, streams))
    }
}
