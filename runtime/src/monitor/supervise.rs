//! Supervising a running container: its output into the json-file log, stdin forwarding,
//! healthchecks, the IPv6 port relays, signals and reaping, in one `poll` loop.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::fds::set_nonblock;
use super::health::{
    self, HealthRun, dur, first_delay, health_config, interval_now, read_health_output,
};
use super::memory::{IDLE_TRIM_AFTER, retrim_code_pages, trim_heap, trim_memory};
use super::{Monitor, OutputFds, Running, proxy};
use crate::container::net::NetHold;
use crate::container::record::ContainerRecord;
use crate::container::spec;
use crate::logs::{LineSplitter, LogWriter, Rotation};
use crate::process::exit_code_of;
use crate::time::now_rfc3339;

impl Monitor {
    /// Copies output to the log, runs healthchecks and reaps, until the container exited and
    /// its output is drained.
    pub(super) fn supervise(
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
                        let add = crate::container::net::resync(
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
                        let changed = health::record_health(&self.paths, h, done, in_start);
                        self.journal_health(rec, changed);
                        next_check = Some(Instant::now() + interval_now(h, started_at));
                    }
                }
            } else if next_check.is_some_and(|n| now >= n) {
                match health::start_check(rec, h, run.pid, &run.cgroup, seccomp) {
                    Ok(c) => check = Some(c),
                    Err(e) => {
                        let in_start = started_at.elapsed() < dur(h.start_period, 0);
                        let now_s = now_rfc3339();
                        let changed = health::record_health(
                            &self.paths,
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
                        self.journal_health(rec, changed);
                        next_check = Some(Instant::now() + interval_now(h, started_at));
                    }
                }
            }
        }
        run
    }

    /// docker's `health_status: healthy|unhealthy` event, when a check changed the status.
    fn journal_health(&self, rec: &ContainerRecord, changed: Option<String>) {
        if let Some(status) = changed {
            rec.journal(self.root.path(), &format!("health_status: {status}"), &[]);
        }
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
