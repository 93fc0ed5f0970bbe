//! Reading and following a container's log (`logs`, `logs -f`, `attach`, an attached start),
//! woken by its monitor's status pipe or by a watch on its directory.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::sync::mpsc;

use super::ContainerError;
use super::api::*;
use super::liveness::settled;
use super::record::Loaded;
use crate::engine::Engine;
use crate::logs::{self, LogEntry, LogFollower};

/// Watches a container directory for changes so waits don't need to spin.
pub(crate) struct DirWatch {
    ino: Option<Inotify>,
}

impl DirWatch {
    /// Watches `dir` (falls back to timed polling if inotify is unavailable).
    pub(crate) fn new(dir: &Path) -> Self {
        let ino =
            Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok().and_then(|i| {
                i.add_watch(
                    dir,
                    AddWatchFlags::IN_MODIFY
                        | AddWatchFlags::IN_MOVED_TO
                        | AddWatchFlags::IN_CREATE
                        | AddWatchFlags::IN_CLOSE_WRITE
                        | AddWatchFlags::IN_DELETE_SELF,
                )
                .ok()
                .map(|_| i)
            });
        DirWatch { ino }
    }

    /// Blocks until something changes in the directory or `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) {
        let Some(ino) = &self.ino else {
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            return;
        };
        let fd = ino.as_fd();
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        let _ = ino.read_events();
    }
}

/// What ended a wait on a monitor's status pipe.
enum PipeWake {
    /// Wake-up bytes (output was logged).
    Data,
    /// Nothing within the timeout.
    Timeout,
    /// End-of-file: the monitor closed it (the container stopped for good) or is gone.
    Closed,
}

/// Waits up to `timeout` for a wake-up on a monitor's status pipe and consumes what is there.
fn wait_pipe(pipe: &File, timeout: Duration) -> PipeWake {
    let mut fds = [nix::poll::PollFd::new(pipe.as_fd(), nix::poll::PollFlags::POLLIN)];
    let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
        Ok(0) => return PipeWake::Timeout,
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return PipeWake::Timeout,
        Err(_) => return PipeWake::Closed,
    }
    // At most one byte is ever pending (the monitor writes none while one is unread), so a
    // read never blocks here; end-of-file reads as 0.
    let mut buf = [0u8; 64];
    match nix::unistd::read(pipe, &mut buf) {
        Ok(0) => PipeWake::Closed,
        Ok(_) => PipeWake::Data,
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => PipeWake::Timeout,
        Err(_) => PipeWake::Closed,
    }
}

impl Engine {
    /// Reads (and with `follow`, streams until the container stops) the container's logs.
    pub async fn container_logs(
        &self,
        key: &str,
        opts: LogsOptions,
    ) -> Result<mpsc::Receiver<LogEntry>, ContainerError> {
        let l = self.load(key)?;
        let (tx, rx) = mpsc::channel(256);
        let e = self.clone();
        tokio::task::spawn_blocking(move || e.logs_producer(&l, opts, tx, false, None));
        Ok(rx)
    }

    /// Streams the container's output from now on until it stops (docker attach, output only).
    pub async fn container_attach(
        &self,
        key: &str,
    ) -> Result<mpsc::Receiver<LogEntry>, ContainerError> {
        let l = self.load(key)?;
        let (tx, rx) = mpsc::channel(256);
        let e = self.clone();
        let opts = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
        tokio::task::spawn_blocking(move || e.logs_producer(&l, opts, tx, true, None));
        Ok(rx)
    }

    /// Sends the container's log entries selected by `opts` (from the start of the log, or
    /// with `from_now` only new ones); with `follow`, goes on until the container has stopped
    /// for good, woken by `wake` (a monitor's status pipe, see `start_notify`) while that is
    /// open, else by a watch on the container directory.
    pub(super) fn logs_producer(
        &self,
        l: &Loaded,
        opts: LogsOptions,
        tx: mpsc::Sender<LogEntry>,
        from_now: bool,
        wake: Option<File>,
    ) {
        let log = l.paths.log();
        let (stdout, stderr) =
            if !opts.stdout && !opts.stderr { (true, true) } else { (opts.stdout, opts.stderr) };
        // Made before the first read, so that nothing written after it goes unnoticed.
        let watch =
            if wake.is_none() && opts.follow { Some(DirWatch::new(&l.paths.dir)) } else { None };
        let mut follower =
            if from_now { LogFollower::from_end(&log) } else { LogFollower::from_start(&log) };
        let mut first = Vec::new();
        if !from_now {
            let files = logs::log_files(&log);
            for f in &files[..files.len() - 1] {
                first.extend(logs::read_all_file(f));
            }
            first.extend(follower.poll());
        }
        for e in logs::select(first, stdout, stderr, opts.since, opts.until, opts.tail) {
            if tx.blocking_send(e).is_err() {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        let send = |entries: Vec<LogEntry>| {
            logs::select(entries, stdout, stderr, opts.since, opts.until, None)
                .into_iter()
                .all(|e| tx.blocking_send(e).is_ok())
        };
        let settled_now = || {
            let st = self.checked_state(&l.paths).unwrap_or_default();
            settled(&st) || !l.paths.dir.exists()
        };
        if let Some(pipe) = wake {
            // While the monitor holds its end, the container has not stopped for good: the
            // state is only read on a timeout (a safety net) and at end-of-file.
            let mut check = false;
            loop {
                let done = check && settled_now();
                if !send(follower.poll()) || done || tx.is_closed() {
                    return;
                }
                match wait_pipe(&pipe, Duration::from_millis(250)) {
                    PipeWake::Data => check = false,
                    PipeWake::Timeout => check = true,
                    PipeWake::Closed => {
                        if settled_now() {
                            send(follower.poll());
                            return;
                        }
                        // The monitor went without the container stopping for good (another
                        // monitor runs it): follow with the directory watch.
                        break;
                    }
                }
            }
        }
        let watch = watch.unwrap_or_else(|| DirWatch::new(&l.paths.dir));
        loop {
            let done = settled_now();
            if !send(follower.poll()) || done || tx.is_closed() {
                return;
            }
            watch.wait(Duration::from_millis(250));
        }
    }
}
