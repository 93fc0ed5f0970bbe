//! `exec`: run another process in a running container, from the calling process (no monitor).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::api::ExecConfig;
use super::{ContainerError, rt, spec, user};
use crate::Engine;
use crate::launch::Stdio;

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

/// The exit code of a wait status, shell style.
pub fn exit_code_of(ws: WaitStatus) -> Option<i64> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c as i64),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i64),
        _ => None,
    }
}

/// Waits for a child pid and returns its exit code.
pub fn wait_child(pid: i32) -> Result<i64, ContainerError> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(ws) => {
                if let Some(c) = exit_code_of(ws) {
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
    fn exec_prepare(
        &self,
        key: &str,
        cfg: &ExecConfig,
    ) -> Result<(i32, String, oci_spec::runtime::Process, crate::launch::SeccompMode), ContainerError>
    {
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
                    .map_err(ContainerError::Invalid)?;
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
        .map_err(ContainerError::Invalid)?;
        let cg = l.st.cgroup.as_ref().and_then(|c| c.to_str()).unwrap_or_default().to_string();
        let mut hc = l.rec.host_config.clone();
        hc.privileged |= cfg.privileged;
        Ok((pid, cg, process, spec::seccomp_mode(&hc)))
    }

    /// Runs a command in a running container with this process's stdin/stdout/stderr and returns
    /// its exit code (detached: returns 0 at once).
    pub async fn container_exec(&self, key: &str, cfg: ExecConfig) -> Result<i64, ContainerError> {
        let (pid, cg, process, seccomp) = self.exec_prepare(key, &cfg)?;
        let dup = |fd: std::os::fd::BorrowedFd<'_>| -> Result<OwnedFd, ContainerError> {
            fd.try_clone_to_owned().map_err(|e| ContainerError::Internal(format!("dup: {e}")))
        };
        let stdio = if cfg.detach {
            let null = |w: bool| -> Result<OwnedFd, ContainerError> {
                std::fs::OpenOptions::new()
                    .read(!w)
                    .write(w)
                    .open("/dev/null")
                    .map(OwnedFd::from)
                    .map_err(|e| ContainerError::Internal(format!("open /dev/null: {e}")))
            };
            Stdio::Pipes { stdin: None, stdout: null(true)?, stderr: null(true)? }
        } else {
            Stdio::Pipes {
                stdin: Some(dup(std::io::stdin().as_fd())?),
                stdout: dup(std::io::stdout().as_fd())?,
                stderr: dup(std::io::stderr().as_fd())?,
            }
        };
        let child =
            rt::exec_in(pid, &process, &cg, seccomp, stdio).map_err(ContainerError::Start)?;
        if cfg.detach {
            // Reap it in the background so it doesn't linger as a zombie of a long-lived caller.
            std::thread::spawn(move || wait_child(child));
            return Ok(0);
        }
        super::ops::blocking(move || wait_child(child)).await
    }

    /// Runs a command in a running container and captures its output.
    pub async fn container_exec_output(
        &self,
        key: &str,
        cfg: ExecConfig,
    ) -> Result<ExecOutput, ContainerError> {
        let (pid, cg, process, seccomp) = self.exec_prepare(key, &cfg)?;
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| ContainerError::Internal(format!("pipe: {e}")))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let stdio = Stdio::Pipes { stdin: None, stdout: out_w, stderr: err_w };
        let child =
            rt::exec_in(pid, &process, &cg, seccomp, stdio).map_err(ContainerError::Start)?;
        super::ops::blocking(move || {
            let t = std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = std::fs::File::from(err_r).read_to_end(&mut v);
                v
            });
            let mut stdout = Vec::new();
            let _ = std::fs::File::from(out_r).read_to_end(&mut stdout);
            let stderr = t.join().unwrap_or_default();
            let exit_code = wait_child(child)?;
            Ok(ExecOutput { exit_code, stdout, stderr })
        })
        .await
    }
}
