//! Proof that a container is dead, asked of the kernel rather than of its records.
//!
//! A removal recycles or deletes the container's directory, and its `rootfs/upper` is the
//! container's writable layer: doing that to a live container makes the next container share
//! its files. Records can be damaged (an empty or garbage `state.json`), so before a directory
//! goes the engine checks what the kernel says:
//! - the monitor: by the recorded pid and start time, or, when the state can't be read, by
//!   looking for `berth-monitor __monitor <root> <id>` in `/proc`;
//! - the container's processes: its recorded first process (pid and start time) and every
//!   member of its cgroup, whose path (`/berth/<id>`) is known without any record;
//! - its root filesystem: the kernel marks an overlay's upper directory in use while the
//!   overlay exists (in any mount namespace). An overlay superblock is built on the upper and
//!   work directories with `index=on` (which turns "in use" into `EBUSY`) and never mounted.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::record::{ContainerPaths, Loaded, StateRecord, cgroup_path};
use super::{ContainerError, cgroup};
use crate::Engine;
use crate::process;

/// What shows that a container may still be alive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Evidence {
    /// Its monitor processes: (pid, start time).
    pub monitors: Vec<(i32, u64)>,
    /// Its processes: the recorded first one and its cgroup's members.
    pub processes: Vec<i32>,
    /// An overlay still uses its upper directory.
    pub mounted: bool,
}

impl Evidence {
    /// Whether nothing shows the container alive.
    pub fn is_dead(&self) -> bool {
        self.monitors.is_empty() && self.processes.is_empty() && !self.mounted
    }

    /// The evidence as a phrase for messages ("its monitor (pid 12) and 2 processes (pids 34
    /// 56) run").
    pub fn describe(&self) -> String {
        let pids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(" ");
        let mut parts = Vec::new();
        if !self.monitors.is_empty() {
            let m: Vec<i32> = self.monitors.iter().map(|(p, _)| *p).collect();
            parts.push(format!("its monitor runs (pid {})", pids(&m)));
        }
        if !self.processes.is_empty() {
            parts.push(format!(
                "{} of its processes run (pid {})",
                self.processes.len(),
                pids(&self.processes)
            ));
        }
        if self.mounted {
            parts.push("its root filesystem is still mounted".to_string());
        }
        parts.join(", ")
    }
}

/// Gathers what shows container `id` (directory `dir`) alive. `st` is its state when it can
/// be read; without it (or with `scan`) monitors are looked for in `/proc`. `probe_mount`:
/// also ask whether its overlay is still mounted.
pub(crate) fn gather(
    dir: &Path,
    id: &str,
    st: Option<&StateRecord>,
    scan: bool,
    probe_mount: bool,
) -> Evidence {
    let me = std::process::id() as i32;
    let mut ev = Evidence::default();
    if let Some(st) = st
        && st.monitor_pid > 0
        && st.monitor_pid != me
        && crate::process::process_alive(st.monitor_pid, st.monitor_start)
    {
        ev.monitors.push((st.monitor_pid, st.monitor_start));
    }
    if scan || st.is_none() {
        for m in find_monitors(&[id]).remove(id).unwrap_or_default() {
            if !ev.monitors.iter().any(|(p, _)| *p == m.0) {
                ev.monitors.push(m);
            }
        }
    }
    if let Some(st) = st
        && st.state.pid > 0
        && crate::process::process_alive(st.state.pid as i32, st.pid_start)
    {
        ev.processes.push(st.state.pid as i32);
    }
    for cg in cgroups(id, st) {
        for pid in cgroup::pids(&cg) {
            if !ev.processes.contains(&pid) {
                ev.processes.push(pid);
            }
        }
    }
    if probe_mount {
        ev.mounted = overlay_in_use(dir);
    }
    ev
}

/// The cgroups container `id` may have processes in: the recorded one and the derived one.
fn cgroups(id: &str, st: Option<&StateRecord>) -> Vec<String> {
    let mut v = vec![cgroup_path(id)];
    if let Some(cg) = st.and_then(|s| s.cgroup.as_ref()).and_then(|c| c.to_str()) {
        let cg = format!("/{}", cg.trim_start_matches('/'));
        if !v.contains(&cg) {
            v.push(cg);
        }
    }
    v
}

/// Monitors of the containers `ids` running on this machine, by container id: their command
/// line is `berth-monitor __monitor <root> <id> <berth>`. This process is never counted.
pub(crate) fn find_monitors(ids: &[&str]) -> HashMap<String, Vec<(i32, u64)>> {
    let me = std::process::id() as i32;
    let mut out: HashMap<String, Vec<(i32, u64)>> = HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let mut args = cmdline.split(|b| *b == 0);
        let (_, verb, _, id) = (args.next(), args.next(), args.next(), args.next());
        if verb != Some(b"__monitor".as_slice()) {
            continue;
        }
        let Some(id) = id.and_then(|i| std::str::from_utf8(i).ok()) else { continue };
        if !ids.contains(&id) {
            continue;
        }
        if let Some(start) = crate::process::process_start_time(pid) {
            out.entry(id.to_string()).or_default().push((pid, start));
        }
    }
    out
}

/// Kills everything `ev` found of container `id` and whatever else is in its cgroups (the
/// monitors first, so that none restarts the container), then waits until nothing shows it
/// alive any more; returns what is left when `timeout` passed (empty: dead).
pub(crate) fn kill(
    dir: &Path,
    id: &str,
    st: Option<&StateRecord>,
    ev: &Evidence,
    timeout: Duration,
) -> Evidence {
    for (pid, start) in &ev.monitors {
        let _ = process::signal_verified(*pid, *start, libc::SIGKILL);
    }
    if let Some(st) = st {
        let _ = process::signal_verified(st.state.pid as i32, st.pid_start, libc::SIGKILL);
    }
    let deadline = Instant::now() + timeout;
    loop {
        // Destroying a cgroup kills its members (thawed first when frozen) and removes it.
        for cg in cgroups(id, st) {
            cgroup::destroy(&cg);
        }
        let left = gather(dir, id, st, true, true);
        if left.is_dead() || Instant::now() >= deadline {
            return left;
        }
        for (pid, start) in &left.monitors {
            let _ = process::signal_verified(*pid, *start, libc::SIGKILL);
        }
        // The namespace (and the overlay in it) goes once its last process is reaped.
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Engine {
    /// Before a settled container's directory is recycled or deleted (hold its start lock):
    /// shows from the kernel that nothing of it lives (its recorded monitor and first process
    /// by pid and start time, its cgroups' members, its overlay when it was ever started),
    /// killing what is left when `force`; its (empty) cgroups are removed.
    pub(crate) fn prove_dead(&self, l: &Loaded, force: bool) -> Result<(), ContainerError> {
        let damaged = |damage| ContainerError::Damaged { container: l.rec.name.clone(), damage };
        // Read again under the start lock: it may have changed since the container was loaded.
        let st = l.paths.read_state_checked().map_err(damaged)?;
        // A copy killed midway may have left its overlay of the upper directory mounted on
        // `cp/` (the start lock says no copy runs now): it is not the container's.
        let _ = nix::mount::umount2(&l.paths.dir.join("cp"), nix::mount::MntFlags::MNT_DETACH);
        // Only a started container ever had its overlay mounted (a copy holds the start lock).
        let ev = gather(&l.paths.dir, &l.rec.id, Some(&st), false, st.has_been_started);
        if !ev.is_dead() {
            if !force {
                return Err(ContainerError::Alive {
                    container: l.rec.name.clone(),
                    evidence: ev.describe(),
                    hint: "stop it, or remove it with `rm -f` to kill it first",
                });
            }
            let left = kill(&l.paths.dir, &l.rec.id, Some(&st), &ev, KILL_TIMEOUT);
            if !left.is_dead() {
                return Err(ContainerError::Alive {
                    container: l.rec.name.clone(),
                    evidence: left.describe(),
                    hint: "it could not be killed",
                });
            }
        }
        for cg in cgroups(&l.rec.id, Some(&st)) {
            cgroup::destroy(&cg);
        }
        Ok(())
    }
}

/// How long a forced removal waits for what it killed to be gone.
pub(crate) const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an overlay still uses the upper or work directory of the container directory
/// `dir` (false for a container without them). Builds an overlay superblock on them with
/// `index=on`, under which the kernel refuses (`EBUSY`) an upper or work directory another
/// overlay holds; it is never mounted, so nothing can see it. Its lower layer is `rootfs/`
/// itself (what it holds doesn't matter: nothing is looked up). When the probe can't be made
/// (no `fsopen`, a file system without what `index=on` needs), the answer is false and the
/// process checks decide alone. A probe that succeeds leaves overlay marks in the upper and
/// work directories, which recycling clears.
pub(crate) fn overlay_in_use(dir: &Path) -> bool {
    let rootfs = dir.join("rootfs");
    let (upper, work) = (rootfs.join("upper"), rootfs.join("work"));
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    if !is_dir(&upper) || !is_dir(&work) {
        return false;
    }
    match probe(&rootfs, &upper, &work) {
        Ok(()) => false,
        Err(e) if e == rustix::io::Errno::BUSY => true,
        Err(e) => {
            tracing::debug!(path = %upper.display(), "overlay probe: {e}");
            false
        }
    }
}

/// Builds (never mounts) a read-only overlay of `lower`, `upper` and `work` with `index=on`.
///
/// Read-only because tearing a writable overlay superblock down syncs the whole filesystem
/// holding the upper directory (`sync_filesystem`, skipped for a read-only superblock): with
/// other processes writing that took milliseconds to seconds, and every removal's process
/// waited for it on its way out. The kernel takes the upper and work directories for the
/// superblock (and refuses them, `EBUSY` with `index=on`, while another overlay holds them)
/// whether it is read-only or not.
fn probe(lower: &Path, upper: &Path, work: &Path) -> rustix::io::Result<()> {
    use rustix::mount::{
        FsOpenFlags, fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsopen,
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "lowerdir", lower)?;
    fsconfig_set_string(&fs, "upperdir", upper)?;
    fsconfig_set_string(&fs, "workdir", work)?;
    fsconfig_set_string(&fs, "index", "on")?;
    fsconfig_set_flag(&fs, "ro")?;
    // Closing `fs` (on return) tears the superblock down: tens of microseconds read-only.
    fsconfig_create(&fs)
}

impl Engine {
    /// Reads the state; when it claims running/restarting but the monitor is gone, kills what
    /// may be left of the container, destroys its cgroup and records it as exited.
    pub(crate) fn checked_state(
        &self,
        paths: &ContainerPaths,
    ) -> Result<StateRecord, ContainerError> {
        let damaged = |damage| ContainerError::Damaged {
            container: paths
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            damage,
        };
        let st = paths.read_state_checked().map_err(damaged)?;
        if !claims_alive(&st) || crate::process::process_alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        let _g = paths.lock()?;
        let mut st = paths.read_state_checked().map_err(damaged)?;
        if !claims_alive(&st) || crate::process::process_alive(st.monitor_pid, st.monitor_start) {
            return Ok(st);
        }
        repair_dead(&mut st);
        paths.write_state(&st)?;
        drop(_g);
        // Its monitor can't detach it any more: drop its addresses, names and port rules.
        if let Some(id) = paths.dir.file_name().and_then(|n| n.to_str()) {
            super::net::release(self.root(), id);
        }
        Ok(st)
    }
}

/// Whether the record says a monitor should be alive.
pub(crate) fn claims_alive(st: &StateRecord) -> bool {
    st.state.running || st.state.restarting || st.monitor_pid > 0
}

/// Marks a container whose monitor died as exited, killing its leftovers.
pub(crate) fn repair_dead(st: &mut StateRecord) {
    if st.state.running {
        if let Some(cg) = st.cgroup.as_ref().and_then(|p| p.to_str()) {
            let _ = cgroup::set_frozen(cg, false);
        }
        let _ = process::signal_verified(st.state.pid as i32, st.pid_start, libc::SIGKILL);
        if let Some(cg) = st.cgroup.as_ref().and_then(|p| p.to_str()) {
            for pid in cgroup::pids(cg) {
                // SAFETY: kill has no memory effects; these pids are in the container's cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            cgroup::destroy(cg);
        }
        st.state.exit_code = 137;
        st.state.error = "the container's monitor process died".into();
        st.state.finished_at = crate::time::now_rfc3339();
    }
    st.state.running = false;
    st.state.paused = false;
    st.state.restarting = false;
    st.state.pid = 0;
    st.state.status = if st.has_been_started { "exited".into() } else { "created".into() };
    st.monitor_pid = 0;
    st.monitor_start = 0;
}

/// Whether the container is at rest: not running, not restarting, and its monitor is done.
pub(crate) fn settled(st: &StateRecord) -> bool {
    !st.state.running
        && !st.state.restarting
        && (st.monitor_pid == 0 || !process::process_alive(st.monitor_pid, st.monitor_start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_describes_what_is_alive() {
        let mut ev = Evidence::default();
        assert!(ev.is_dead());
        assert_eq!(ev.describe(), "");
        ev.monitors.push((12, 5));
        ev.processes = vec![34, 56];
        ev.mounted = true;
        assert!(!ev.is_dead());
        assert_eq!(
            ev.describe(),
            "its monitor runs (pid 12), 2 of its processes run (pid 34 56), its root filesystem is still mounted"
        );
    }

    #[test]
    fn cgroup_path_is_derived_from_the_id() {
        assert_eq!(cgroup_path("abc"), "/berth/abc");
        let st = StateRecord { cgroup: Some("berth/abc".into()), ..Default::default() };
        assert_eq!(cgroups("abc", Some(&st)), vec!["/berth/abc".to_string()]);
        let st = StateRecord { cgroup: Some("/other/x".into()), ..Default::default() };
        assert_eq!(cgroups("abc", Some(&st)), vec!["/berth/abc".to_string(), "/other/x".into()]);
    }

    /// The probe tells a mounted overlay's upper directory from a free one (as root; skipped
    /// where overlay mounts are refused).
    #[test]
    fn probe_sees_a_mounted_overlay() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        for d in ["rootfs/upper", "rootfs/work", "lower", "target"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        assert!(!overlay_in_use(&dir), "nothing mounted yet");
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.join("lower").display(),
            dir.join("rootfs/upper").display(),
            dir.join("rootfs/work").display()
        );
        let target = dir.join("target");
        if nix::mount::mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .is_err()
        {
            eprintln!("skipped: overlay mounts are refused here");
            return;
        }
        let busy = overlay_in_use(&dir);
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(busy, "a mounted overlay's upper directory reads as in use");
        // The in-use mark goes with the mount.
        let deadline = Instant::now() + Duration::from_secs(10);
        while overlay_in_use(&dir) {
            assert!(Instant::now() < deadline, "the upper directory stays in use");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Not a container directory with an overlay: nothing to ask.
        assert!(!overlay_in_use(&t.path().join("none")));
    }

    /// A `volatile` overlay (an auto-removed container's) reads as in use too; once it is gone,
    /// the mark it leaves in the work directory blocks every later overlay of it until the
    /// monitor clears it, after which the directories take an overlay again (as root; skipped
    /// where volatile overlay mounts are refused).
    #[test]
    fn volatile_overlay_is_seen_in_use_and_its_mark_cleared() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c");
        for d in ["rootfs/upper", "rootfs/work", "lower", "target"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.join("lower").display(),
            dir.join("rootfs/upper").display(),
            dir.join("rootfs/work").display()
        );
        let target = dir.join("target");
        let mount = |o: &str| {
            nix::mount::mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                nix::mount::MsFlags::empty(),
                Some(o),
            )
        };
        if mount(&format!("{opts},volatile")).is_err() {
            eprintln!("skipped: volatile overlay mounts are refused here");
            return;
        }
        let busy = overlay_in_use(&dir);
        nix::mount::umount2(&target, nix::mount::MntFlags::empty()).unwrap();
        assert!(busy, "a mounted volatile overlay's upper directory reads as in use");
        let mark = dir.join("rootfs/work/work/incompat/volatile");
        assert!(mark.is_dir(), "the kernel left its mark");
        let blocked = mount(&opts);
        if blocked.is_ok() {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::empty());
        }
        assert!(blocked.is_err(), "the mark blocks a later overlay");
        crate::container::spec::clear_volatile_marker(&dir.join("rootfs/work"));
        assert!(!mark.exists());
        mount(&opts).expect("an overlay of the cleared directories");
        nix::mount::umount2(&target, nix::mount::MntFlags::empty()).unwrap();
        assert!(!overlay_in_use(&dir));
    }
}
