//! A container's life: start (spawning its monitor and reading its report), stop, kill,
//! restart, pause, wait, rename and removal.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_timing::mark;
use tokio::sync::mpsc;

use super::api::*;
use super::damaged::LoadedEntry;
use super::error::{StartError, io_err};
use super::liveness::{claims_alive, settled};
use super::record::{ContainerPaths, Loaded, StateRecord};
use super::{ContainerError, cgroup, stores};
use crate::engine::{Engine, blocking};
use crate::logs::LogEntry;
use crate::monitor_protocol::{STATUS_ENV, STATUS_STDIN, STATUS_STDIN_NOTIFY, StatusReport};
use crate::process;

/// Default grace period of `stop`, seconds.
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// Waits for a container's monitor to exit. An unsettled container always has a live monitor
/// (a dead one is repaired on load), and the monitor exits only after recording the final
/// state, so its exit is the event to wait for. A pidfd rather than an inotify watch: closing
/// an inotify instance waits for an SRCU grace period (fsnotify_destroy_group), which cost
/// 10-15 ms per `wait` here.
#[derive(Default)]
struct MonitorWatch {
    /// (pid, start time, pidfd) of the monitor being watched.
    current: Option<(i32, u64, std::os::fd::OwnedFd)>,
}

impl MonitorWatch {
    /// Blocks until the monitor recorded in `st` exits or `timeout` passes.
    fn wait(&mut self, st: &StateRecord, timeout: Duration) {
        let same = self
            .current
            .as_ref()
            .is_some_and(|(p, s, _)| *p == st.monitor_pid && *s == st.monitor_start);
        if !same {
            self.current = process::pidfd_open(st.monitor_pid)
                // Opened after the start-time check would race a pid reuse: check after.
                .filter(|_| process::process_alive(st.monitor_pid, st.monitor_start))
                .map(|fd| (st.monitor_pid, st.monitor_start, fd));
        }
        match &self.current {
            Some((_, _, fd)) => {
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let ms = timeout.as_millis().min(u16::MAX as u128) as u16;
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            }
            // No monitor to watch (yet): a short sleep, then the caller re-reads the state.
            None => std::thread::sleep(timeout.min(Duration::from_millis(2))),
        }
    }
}

/// A container started by `Engine::container_start_attached`.
#[derive(Debug)]
pub struct Attached {
    /// Its output as it is logged, from the start of its log; closes once it has stopped for
    /// good and everything was sent.
    pub output: mpsc::Receiver<LogEntry>,
    /// It was created to be removed when it stops: the caller removes it (`container_remove`
    /// with `force`) once `output` has closed.
    pub auto_remove: bool,
}

/// Removes the exited `auto_remove` container `id` and its anonymous volumes, for its
/// monitor: the narrow way in for a process that has no Engine of its own.
pub(crate) fn remove_exited(root: &berth_store::StateRoot, id: &str) {
    let engine = Engine::on_root(root.clone());
    if let Ok(l) = engine.load(id) {
        let _ = engine.remove_files(&l, true, true);
    }
}

/// The caller's `GLIBC_TUNABLES` plus no per-thread cache of freed heap chunks for the
/// monitor: it stays resident for the container's life and allocates little after start, and
/// the cache would pin ~100 KiB of start-up heap pages that its `malloc_trim` can't give back
/// (docs/launch.md "Monitor memory").
fn monitor_tunables() -> std::ffi::OsString {
    let mut t = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if !t.is_empty() {
        t.push(":");
    }
    t.push("glibc.malloc.tcache_count=0");
    t
}

/// The monitor executable's file name; it is installed beside `berth`.
const MONITOR_EXE: &str = "berth-monitor";

/// The monitor executable beside `berth` (`helper`): next to the path as given, else next to
/// the file it resolves to (a `berth` symlinked onto the PATH).
fn monitor_exe(helper: &Path) -> Result<std::path::PathBuf, ContainerError> {
    let beside = helper.with_file_name(MONITOR_EXE);
    if beside.is_file() {
        return Ok(beside);
    }
    if let Ok(real) = fs::canonicalize(helper) {
        let p = real.with_file_name(MONITOR_EXE);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(StartError::Failed(format!(
        "the container monitor {} is missing: install {MONITOR_EXE} beside {}",
        beside.display(),
        helper.display()
    ))
    .into())
}

impl Engine {
    /// Starts a created or exited container: spawns its monitor and returns once the
    /// container's process runs (or the start failed).
    pub async fn container_start(&self, key: &str) -> Result<(), ContainerError> {
        let e = self.clone();
        let key = key.to_string();
        blocking(move || e.start_sync(&key)).await
    }

    pub(crate) fn start_sync(&self, key: &str) -> Result<(), ContainerError> {
        self.start_notify(key, false).map(drop)
    }

    /// Starts a created or exited container and streams its output, from the start of its log,
    /// until it has stopped for good (docker's attached `run`, `start -a`); the channel closes
    /// then. Like `container_start` then `container_logs` with `follow`, but the follower is
    /// woken by the monitor this start spawns (over its status pipe) rather than by a watch on
    /// the container directory: closing an inotify instance waits for an SRCU grace period,
    /// 10-15 ms on the CLI's way out. A container some other call already runs is followed
    /// with the watch.
    ///
    /// An `auto_remove` container (docker's `run --rm`) is then left for the caller to remove
    /// once it has read the output (`Attached::auto_remove`): its monitor removes it only when
    /// the caller went away before it stopped.
    pub async fn container_start_attached(&self, key: &str) -> Result<Attached, ContainerError> {
        let e = self.clone();
        let key = key.to_string();
        let (l, wake) = blocking(move || e.start_notify(&key, true)).await?;
        let auto_remove = l.rec.host_config.auto_remove;
        let (tx, rx) = mpsc::channel(256);
        let e = self.clone();
        let opts = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
        tokio::task::spawn_blocking(move || e.logs_producer(&l, opts, tx, false, wake));
        Ok(Attached { output: rx, auto_remove })
    }

    /// Starts the container; with `notify`, also returns the status pipe of the monitor this
    /// start spawned, which then wakes the caller whenever output was logged and closes once
    /// the container has stopped for good (None when it was running already).
    fn start_notify(
        &self,
        key: &str,
        notify: bool,
    ) -> Result<(Loaded, Option<File>), ContainerError> {
        mark("start: begin");
        let l = self.load(key)?;
        // The start lock is taken by the monitor (until the start is recorded), not here: a
        // CLI killed while its monitor starts the container must not release it. Two starts
        // at once spawn two monitors; the second finds the container started and reports it.
        {
            let _g = l.paths.lock()?;
            let st = l.paths.read_state()?;
            if claims_alive(&st) && process::process_alive(st.monitor_pid, st.monitor_start) {
                if st.state.paused {
                    return Err(ContainerError::Invalid(format!(
                        "cannot start a paused container, try unpause instead: {}",
                        l.rec.name
                    )));
                }
                return Ok((l, None));
            }
        }
        mark("start: spawning the monitor");
        let r = self.spawn_monitor(&l, notify);
        mark("start: monitor reported");
        r.map(|wake| (l, wake))
    }

    /// Spawns the container's monitor and waits for its report on the start; with `notify`,
    /// returns the status pipe, which the monitor keeps for wake-ups (see `monitor::StatusPipe`).
    fn spawn_monitor(&self, l: &Loaded, notify: bool) -> Result<Option<File>, ContainerError> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ContainerError::Internal(format!("pipe: {e}")))?;
        let log_path = l.paths.monitor_log();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("open", &log_path))?;
        let log2 = log.try_clone().map_err(io_err("open", &log_path))?;
        let exe = monitor_exe(self.helper_exe())?;
        // The monitor, and every process it puts into the container before that process's
        // exec (and `init: true`'s PID 1 for good), runs from a read-only detached mount of
        // berth-monitor, so nothing in the container can reopen /proc/PID/exe for writing
        // (docs/launch.md "Sealed executables"). One mount per CLI process, not per container.
        let sealed =
            crate::sealed_exe::cached(&exe).map_err(|e| StartError::Failed(e.to_string()))?;
        let mut cmd = Command::new(sealed.exec_path());
        std::os::unix::process::CommandExt::arg0(&mut cmd, &exe);
        // The status pipe goes in as the monitor's stdin: with no pre-exec code, std spawns with
        // posix_spawn (vfork), which shares this process's memory until the exec instead of
        // copying its page tables and making every page copy-on-write for the CLI's other
        // threads (fork was ~10% of a 50-service `up`'s CPU). Our end stays close-on-exec, so
        // monitors spawned in parallel don't hold each other's pipes open.
        cmd.arg("__monitor")
            .arg(self.root().path())
            .arg(&l.rec.id)
            .arg(self.helper_exe())
            .env("GLIBC_TUNABLES", monitor_tunables())
            .env(STATUS_ENV, if notify { STATUS_STDIN_NOTIFY } else { STATUS_STDIN })
            .stdin(std::process::Stdio::from(w))
            .stdout(log)
            .stderr(log2);
        let spawned = cmd.spawn().map_err(io_err("spawn monitor", &exe));
        // Our copy of the write end must go before reading, or the read never sees the end.
        drop(cmd);
        let mut child = spawned?;
        // The monitor forks itself away at once; reap the short-lived parent.
        let _ = child.wait();
        mark("start: monitor detached");
        let mut status = File::from(r);
        match StatusReport::read(&mut status, notify) {
            Some(StatusReport::Started { .. }) => Ok(notify.then_some(status)),
            Some(StatusReport::ExecFailed { code, msg }) => {
                Err(StartError::Exec { code, message: msg }.into())
            }
            Some(StatusReport::Failed { msg }) => Err(StartError::Failed(msg).into()),
            None => {
                let diag = fs::read_to_string(&log_path).unwrap_or_default();
                let last = diag.lines().last().unwrap_or("no message").to_string();
                Err(StartError::Failed(format!("the container monitor failed to start: {last}"))
                    .into())
            }
        }
    }

    /// Stops a container: its stop signal, then SIGKILL after the grace period (seconds;
    /// None: the container's StopTimeout or 10). A stopped container is never restarted.
    pub async fn container_stop(
        &self,
        key: &str,
        timeout: Option<i64>,
    ) -> Result<(), ContainerError> {
        let e = self.clone();
        let key = key.to_string();
        blocking(move || e.stop_sync(&key, timeout)).await
    }

    pub(crate) fn stop_sync(&self, key: &str, timeout: Option<i64>) -> Result<(), ContainerError> {
        let l = self.load(key)?;
        if settled(&l.st) {
            return Ok(());
        }
        let st = l.paths.update_state(|st| {
            st.manual_stop = true;
            st.clone()
        })?;
        let timeout = timeout.or(l.rec.config.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
        let sig = l.rec.stop_signal();
        self.poke_monitor(&st);
        if st.state.running {
            self.thaw_if_paused(&st);
            self.journal_kill(&l.rec, sig);
            let _ = process::signal_verified(st.state.pid as i32, st.pid_start, sig);
        }
        let grace = Duration::from_secs(timeout.max(0) as u64);
        if let Some(settled) = self.wait_settled(&l.paths, Some(grace))? {
            // PID 1 is gone; anything its cgroup still holds goes too before stop returns.
            self.kill_cgroup(&l.rec.name, &settled)?;
        } else {
            let st = l.paths.read_state()?;
            self.thaw_if_paused(&st);
            self.journal_kill(&l.rec, libc::SIGKILL);
            let _ = process::signal_verified(st.state.pid as i32, st.pid_start, libc::SIGKILL);
            self.kill_all_settled(&l, &st)?;
        }
        l.rec.journal(self.root().path(), "stop", &[]);
        Ok(())
    }

    /// Kills every process of the container's cgroup (its PID 1, all it started, exec'd
    /// processes), waits until none is left and the monitor has recorded the exit. A fork bomb
    /// outruns signals sent to a list of pids, and the pid namespace's own teardown takes
    /// seconds for thousands of processes: `kill`, `stop`, `down` and `rm -f` return only when
    /// the container is gone.
    fn kill_all_settled(&self, l: &Loaded, st: &StateRecord) -> Result<(), ContainerError> {
        self.kill_cgroup(&l.rec.name, st)?;
        match self.wait_settled(&l.paths, Some(Duration::from_secs(30))) {
            // The monitor destroys the cgroup before it records the exit; this covers one that
            // gave up on a cgroup that stayed busy.
            Ok(Some(settled)) => self.kill_cgroup(&l.rec.name, &settled),
            Ok(None) => Err(ContainerError::Timeout(l.rec.name.clone())),
            // Removed by its monitor (`--rm`) once it had exited: gone is what was asked.
            Err(ContainerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// SIGKILLs everything in the container's cgroup and waits until it is empty.
    fn kill_cgroup(&self, name: &str, st: &StateRecord) -> Result<(), ContainerError> {
        let Some(cg) = st.cgroup.as_ref().and_then(|c| c.to_str()) else { return Ok(()) };
        cgroup::kill_all(cg, Duration::from_secs(30)).map_err(|e| {
            ContainerError::Internal(format!("cannot kill the processes of container {name}: {e}"))
        })
    }

    /// Journals docker's `kill` event, before the signal goes so that it precedes the `die`
    /// the container's end is seen as.
    fn journal_kill(&self, rec: &super::record::ContainerRecord, sig: i32) {
        rec.journal(self.root().path(), "kill", &[("signal", sig.to_string())]);
    }

    /// Tells the monitor to re-read the state (cancels a pending restart after a user stop).
    fn poke_monitor(&self, st: &StateRecord) {
        if st.monitor_pid > 0 {
            let _ = process::signal_verified(st.monitor_pid, st.monitor_start, libc::SIGUSR1);
        }
    }

    fn thaw_if_paused(&self, st: &StateRecord) {
        if st.state.paused
            && let Some(cg) = st.cgroup.as_ref().and_then(|c| c.to_str())
        {
            let _ = cgroup::set_frozen(cg, false);
        }
    }

    /// Waits until the container is settled; returns its state, or None on timeout.
    pub(crate) fn wait_settled(
        &self,
        paths: &ContainerPaths,
        timeout: Option<Duration>,
    ) -> Result<Option<StateRecord>, ContainerError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut watch = MonitorWatch::default();
        loop {
            if !paths.dir.exists() {
                return Err(ContainerError::NotFound(
                    paths
                        .dir
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default(),
                ));
            }
            let st = self.checked_state(paths)?;
            if settled(&st) {
                mark("wait: settled");
                return Ok(Some(st));
            }
            let left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    d - now
                }
                None => Duration::from_millis(500),
            };
            // Re-check at least every 500 ms (a monitor that wasn't recorded yet has no pidfd).
            watch.wait(&st, left.min(Duration::from_millis(500)));
        }
    }

    /// Sends a signal (`SIGKILL` when None) to the container's main process.
    pub async fn container_kill(
        &self,
        key: &str,
        signal: Option<&str>,
    ) -> Result<(), ContainerError> {
        let l = self.load(key)?;
        let sig = match signal {
            None => libc::SIGKILL,
            Some(s) => process::parse_signal(s)
                .ok_or_else(|| ContainerError::Invalid(format!("invalid signal: {s}")))?,
        };
        if !l.st.state.running {
            return Err(ContainerError::NotRunning(l.rec.name.clone()));
        }
        let st = if sig == libc::SIGKILL || sig == l.rec.stop_signal() {
            // As docker: killing with KILL or the stop signal is a user stop (no restart).
            l.paths.update_state(|st| {
                st.manual_stop = true;
                st.clone()
            })?
        } else {
            l.st.clone()
        };
        if sig == libc::SIGKILL {
            self.thaw_if_paused(&st);
        }
        self.journal_kill(&l.rec, sig);
        match process::signal_verified(st.state.pid as i32, st.pid_start, sig) {
            // As docker, other signals go to PID 1 only and `kill` does not wait; SIGKILL
            // returns once the whole container is gone.
            Ok(true) if sig == libc::SIGKILL => {
                let e = self.clone();
                blocking(move || e.kill_all_settled(&l, &st)).await
            }
            Ok(true) => Ok(()),
            Ok(false) => Err(ContainerError::NotRunning(l.rec.name.clone())),
            Err(e) => {
                Err(ContainerError::Invalid(format!("cannot kill container {}: {e}", l.rec.name)))
            }
        }
    }

    /// Stops (grace period `timeout`) and starts the container again.
    pub async fn container_restart(
        &self,
        key: &str,
        timeout: Option<i64>,
    ) -> Result<(), ContainerError> {
        self.container_stop(key, timeout).await?;
        self.container_start(key).await?;
        if let Ok(rec) = self.find(key) {
            rec.journal(self.root().path(), "restart", &[]);
        }
        Ok(())
    }

    /// Removes a container (`force`: kill it first if running; `volumes`: also its anonymous
    /// volumes). Nothing of it is left: no process, cgroup, mount or directory.
    pub async fn container_remove(
        &self,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        let e = self.clone();
        let key = key.to_string();
        blocking(move || e.remove_sync(&key, force, volumes)).await
    }

    pub(crate) fn remove_sync(
        &self,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), ContainerError> {
        mark("remove: begin");
        let l = match self.load_entry(key)? {
            LoadedEntry::Ok(l) => l,
            LoadedEntry::Damaged(d) => return self.remove_damaged(&d, force, volumes),
        };
        if !settled(&l.st) {
            if !force {
                return Err(ContainerError::RemoveRunning(l.rec.name.clone()));
            }
            let st = l.paths.update_state(|st| {
                st.manual_stop = true;
                st.clone()
            })?;
            self.poke_monitor(&st);
            self.thaw_if_paused(&st);
            let _ = process::signal_verified(st.state.pid as i32, st.pid_start, libc::SIGKILL);
            self.kill_all_settled(&l, &st)?;
        }
        self.remove_files(&l, volumes, force)
    }

    /// Deletes a settled container's cgroup leftovers, directory and (optionally) anonymous
    /// volumes, once the kernel shows it dead (`force`: killing what is left of it first).
    pub(crate) fn remove_files(
        &self,
        l: &Loaded,
        volumes: bool,
        force: bool,
    ) -> Result<(), ContainerError> {
        // Held until the directory is moved aside: a start (its monitor holds this lock until
        // the start is recorded) or a copy can't be under way while the proof is made.
        let start_lock = match l.paths.start_lock() {
            Ok(g) => Some(g),
            Err(_) if !l.paths.dir.exists() => None,
            Err(e) => return Err(e.into()),
        };
        self.prove_dead(l, force)?;
        mark("remove: cgroup gone");
        super::net::release(self.root(), &l.rec.id);
        mark("remove: network released");
        // Under the locks only a rename (and the name's index entry): the directory's
        // thousand-odd unlinks run after the locks are released, in parallel with other removals.
        let aside = {
            let _root = self.root().lock()?;
            match l.paths.lock() {
                Ok(g) => {
                    let r = self.move_aside(&l.paths, &l.rec.id, g)?;
                    self.release_name(&l.rec.name, &l.rec.id);
                    Some(r)
                }
                // Removed meanwhile (the directory is gone, so its lock cannot be taken).
                Err(_) if !l.paths.dir.exists() => None,
                Err(e) => return Err(e.into()),
            }
        };
        mark("remove: directory moved aside");
        // Recycling takes the start lock itself (a copy's overlay must not be in use).
        drop(start_lock);
        if let Some(r) = aside {
            r.finish();
        }
        for r in self.leftover_removals() {
            r.finish();
        }
        mark("remove: directory gone");
        l.rec.journal(self.root().path(), "destroy", &[]);
        if volumes {
            for v in &l.rec.anonymous_volumes {
                let _ = stores::volume_remove(self.root(), v);
            }
        }
        Ok(())
    }

    /// Waits until the container is stopped (not running, not restarting) and returns its exit code.
    pub async fn container_wait(&self, key: &str) -> Result<i64, ContainerError> {
        let l = self.load(key)?;
        let e = self.clone();
        blocking(move || {
            let st = e.wait_settled(&l.paths, None)?;
            Ok(st.map(|s| s.state.exit_code).unwrap_or(-1))
        })
        .await
    }

    /// Freezes every process of the container.
    pub async fn container_pause(&self, key: &str) -> Result<(), ContainerError> {
        self.set_paused(key, true)
    }

    /// Thaws a paused container.
    pub async fn container_unpause(&self, key: &str) -> Result<(), ContainerError> {
        self.set_paused(key, false)
    }

    fn set_paused(&self, key: &str, pause: bool) -> Result<(), ContainerError> {
        let l = self.load(key)?;
        let _g = l.paths.lock()?;
        let mut st = l.paths.read_state()?;
        if !st.state.running {
            return Err(ContainerError::NotRunning(l.rec.name.clone()));
        }
        if st.state.paused == pause {
            return Err(ContainerError::Invalid(if pause {
                format!("container {} is already paused", l.rec.name)
            } else {
                format!("container {} is not paused", l.rec.name)
            }));
        }
        let cg = st.cgroup.as_ref().and_then(|c| c.to_str()).unwrap_or_default().to_string();
        cgroup::set_frozen(&cg, pause).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        st.state.paused = pause;
        st.state.status = if pause { "paused".into() } else { "running".into() };
        l.paths.write_state(&st)?;
        let action = if pause { "pause" } else { "unpause" };
        l.rec.journal(self.root().path(), action, &[]);
        Ok(())
    }

    /// Renames a container.
    pub async fn container_rename(&self, key: &str, new_name: &str) -> Result<(), ContainerError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if !super::create::valid_name(new_name) {
            return Err(ContainerError::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let _root = self.root().lock()?;
        let rec = self.find(key)?;
        if rec.name == new_name {
            return Err(ContainerError::Invalid(format!(
                "Renaming a container with the same name as its current name: {new_name}"
            )));
        }
        if let Some(owner) = self.reserve_name(new_name, &rec.id)? {
            return Err(ContainerError::NameInUse { name: new_name.to_string(), id: owner });
        }
        let paths = ContainerPaths::new(self.root(), &rec.id);
        let _g = paths.lock()?;
        let mut rec = match paths.read_config()? {
            Some(r) => r,
            None => {
                self.release_name(new_name, &rec.id);
                return Err(ContainerError::NotFound(key.to_string()));
            }
        };
        let old_name = std::mem::replace(&mut rec.name, new_name.to_string());
        if let Err(e) = paths.write_config(&rec) {
            self.release_name(new_name, &rec.id);
            return Err(e.into());
        }
        // After the record: a crash in between leaves a stale entry, which counts for nothing.
        self.release_name(&old_name, &rec.id);
        super::net::renamed(self.root(), &rec);
        rec.journal(self.root().path(), "rename", &[("oldName", old_name)]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_exe_is_found_beside_berth_or_beside_its_symlink_target() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, path) = (dir.path().join("bin"), dir.path().join("path"));
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&path).unwrap();
        fs::write(bin.join("berth"), b"").unwrap();
        std::os::unix::fs::symlink(bin.join("berth"), path.join("berth")).unwrap();
        // Missing: the error names the expected file and what to do.
        let err = monitor_exe(&bin.join("berth")).unwrap_err().to_string();
        assert!(err.contains(&format!("{} is missing", bin.join(MONITOR_EXE).display())), "{err}");
        assert!(err.contains("install berth-monitor beside"), "{err}");
        fs::write(bin.join(MONITOR_EXE), b"").unwrap();
        assert_eq!(monitor_exe(&bin.join("berth")).unwrap(), bin.join(MONITOR_EXE));
        // `berth` symlinked onto the PATH: found beside the file it resolves to.
        let real = fs::canonicalize(bin.join(MONITOR_EXE)).unwrap();
        assert_eq!(monitor_exe(&path.join("berth")).unwrap(), real);
        // One beside the symlink itself wins.
        fs::write(path.join(MONITOR_EXE), b"").unwrap();
        assert_eq!(monitor_exe(&path.join("berth")).unwrap(), path.join(MONITOR_EXE));
    }
}
