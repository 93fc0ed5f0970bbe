//! Processes started through berth-launch: what a container's start yields ([`Started`]),
//! and processes started in a running container (`exec`, healthchecks), keeping the
//! launcher's typed errors.

use berth_cgroups::Cgroup;
use berth_launch::{self as launch, LaunchError, SeccompMode, Stdio};
use nix::unistd::Pid;

use super::error::StartError;

/// A started container process.
#[derive(Debug, Clone)]
pub struct Started {
    /// Host pid of the container's first process.
    pub pid: i32,
    /// Its cgroup path (relative to the hierarchy roots).
    pub cgroup: String,
}

/// Starts `process` inside the running container `pid`; returns the new process's host pid
/// (a direct child of the caller).
pub fn exec_in(
    pid: i32,
    process: &oci_spec::runtime::Process,
    cgroup: &str,
    seccomp: SeccompMode,
    stdio: Stdio,
) -> Result<i32, LaunchError> {
    let cg = Cgroup::open(cgroup)?;
    let child = launch::exec_in(Pid::from_raw(pid), process, &cg, seccomp, stdio)?;
    Ok(child.pid.as_raw())
}

/// Like [`exec_in`] with a new terminal allocated inside the container (its own devpts, so
/// `tty` names it); returns the process's host pid and the terminal's master side.
pub fn exec_in_tty(
    pid: i32,
    process: &oci_spec::runtime::Process,
    cgroup: &str,
    seccomp: SeccompMode,
) -> Result<(i32, std::os::fd::OwnedFd), StartError> {
    let cg = Cgroup::open(cgroup).map_err(LaunchError::from)?;
    let child = launch::exec_in(Pid::from_raw(pid), process, &cg, seccomp, Stdio::NewPty)?;
    let pid = child.pid.as_raw();
    match child.pty_master {
        Some(m) => Ok((pid, m)),
        None => {
            let _ = nix::sys::signal::kill(child.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = launch::wait(child.pid);
            Err(StartError::Failed("the exec'd process got no terminal".into()))
        }
    }
}
