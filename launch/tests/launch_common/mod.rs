//! Shared helpers for the launcher tests: a busybox overlay rootfs, a docker-like spec, and a
//! guard that kills the container and removes its cgroup even when the test fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use berth_cgroups::Cgroup;
use berth_launch::{
    DOCKER_MASKED_PATHS, DOCKER_READONLY_PATHS, LaunchError, LaunchSpec, Rootfs, SeccompMode,
    Spawned, Stdio,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

/// A temporary busybox rootfs as an overlay lower layer plus upper/work/target dirs.
pub struct Fs {
    pub dir: tempfile::TempDir,
}

impl Fs {
    pub fn new() -> Fs {
        let dir = tempfile::Builder::new().prefix("berth-launch-").tempdir().expect("tempdir");
        for d in ["lower", "upper", "work", "target"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        berth_testsupport::busybox_rootfs(&dir.path().join("lower")).expect("busybox rootfs");
        Fs { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn rootfs(&self) -> Rootfs {
        Rootfs::Overlay {
            lower: vec![self.path("lower")],
            upper: self.path("upper"),
            work: self.path("work"),
            target: self.path("target"),
            volatile: false,
        }
    }
}

/// A docker-like spec running `args` (new pid/net/ipc/uts/mnt/cgroup namespaces, docker's
/// default caps, masked and read-only paths, hostname "berthtest").
pub fn spec(args: &[&str]) -> Spec {
    let mut s = Spec::default();
    s.set_mounts(Some(vec![])).set_hostname(Some("berthtest".into()));
    let mut root = s.root().clone().unwrap_or_default();
    root.set_readonly(Some(false));
    s.set_root(Some(root));
    let mut p = s.process().clone().unwrap_or_default();
    p.set_args(Some(args.iter().map(|a| a.to_string()).collect()))
        .set_env(Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]))
        .set_capabilities(Some(berth_launch::docker_default_capabilities()))
        .set_no_new_privileges(Some(false))
        .set_rlimits(None)
        .set_cwd("/".into());
    s.set_process(Some(p));
    let mut l = s.linux().clone().unwrap_or_default();
    let mut res = LinuxResources::default();
    res.set_devices(Some(berth_launch::docker_default_device_rules()));
    l.set_resources(Some(res))
        .set_cgroups_path(Some(PathBuf::from(format!(
            "berth/{}",
            berth_testsupport::unique_name("lt")
        ))))
        .set_masked_paths(Some(DOCKER_MASKED_PATHS.iter().map(|s| s.to_string()).collect()))
        .set_readonly_paths(Some(DOCKER_READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
    s.set_linux(Some(l));
    s
}

/// Edits the process of a spec.
pub fn with_process(s: &mut Spec, f: impl FnOnce(&mut oci_spec::runtime::Process)) {
    let mut p = s.process().clone().unwrap_or_default();
    f(&mut p);
    s.set_process(Some(p));
}

/// Edits the resources of a spec.
pub fn with_resources(s: &mut Spec, f: impl FnOnce(&mut LinuxResources)) {
    let mut l = s.linux().clone().unwrap_or_default();
    let mut r = l.resources().clone().unwrap_or_default();
    f(&mut r);
    l.set_resources(Some(r));
    s.set_linux(Some(l));
}

/// Edits `linux` of a spec.
pub fn with_linux(s: &mut Spec, f: impl FnOnce(&mut oci_spec::runtime::Linux)) {
    let mut l = s.linux().clone().unwrap_or_default();
    f(&mut l);
    s.set_linux(Some(l));
}

/// A running container; killed, reaped and its cgroup destroyed on drop.
pub struct Running {
    pub spawned: Option<Spawned>,
    pub stdout: Option<mpsc::Receiver<String>>,
    pub stderr: Option<thread::JoinHandle<String>>,
    pub fs: Fs,
}

impl Running {
    pub fn pid(&self) -> Pid {
        self.spawned.as_ref().expect("spawned").pid
    }

    pub fn cgroup(&self) -> &Cgroup {
        &self.spawned.as_ref().expect("spawned").cgroup
    }

    /// Next stdout line (waits up to 20 s).
    pub fn line(&self) -> String {
        self.stdout
            .as_ref()
            .expect("stdout")
            .recv_timeout(Duration::from_secs(20))
            .expect("a line from the container")
    }

    /// Waits for exit; returns (code, rest of stdout, stderr).
    pub fn finish(&mut self) -> (i32, String, String) {
        let code = self.spawned.as_ref().expect("spawned").wait().expect("wait");
        let mut out = String::new();
        if let Some(rx) = self.stdout.take() {
            while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
                out.push_str(&l);
            }
        }
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (code, out, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.spawned.take() {
            let _ = kill(s.pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(s.pid, None);
            let _ = s.cgroup.destroy();
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

/// Starts a container with its stdout/stderr captured.
pub fn start_with(
    s: Spec,
    fs: Fs,
    seccomp: SeccompMode,
    init: bool,
) -> Result<Running, (LaunchError, Fs)> {
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let spec = LaunchSpec { oci: s, rootfs: fs.rootfs(), seccomp, init };
    let stdio = Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w };
    match berth_launch::spawn(&spec, stdio, |_| Ok(())) {
        Ok(spawned) => {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let r = BufReader::new(std::fs::File::from(out_r));
                for l in r.split(b'\n') {
                    let Ok(l) = l else { break };
                    if tx.send(String::from_utf8_lossy(&l).to_string() + "\n").is_err() {
                        break;
                    }
                }
            });
            let h = thread::spawn(move || {
                let mut s = String::new();
                let _ = std::fs::File::from(err_r).read_to_string(&mut s);
                s
            });
            Ok(Running { spawned: Some(spawned), stdout: Some(rx), stderr: Some(h), fs })
        }
        Err(e) => Err((e, fs)),
    }
}

/// Starts with the default seccomp profile and no init.
pub fn start(s: Spec) -> Running {
    match start_with(s, Fs::new(), SeccompMode::Default, false) {
        Ok(r) => r,
        Err((e, _)) => panic!("spawn failed: {e}"),
    }
}

/// Runs to completion: (exit code, stdout, stderr).
pub fn run(s: Spec) -> (i32, String, String) {
    start(s).finish()
}
