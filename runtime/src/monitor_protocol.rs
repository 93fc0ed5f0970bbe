//! The contract between the CLI side that starts a container (`container`) and the
//! container's monitor process (`monitor`): how the status pipe is handed over and what it
//! carries, the `berth` executable a monitor was started by, the test hook that pauses a
//! monitor mid-start, and the IPv6 proxy sockets the network attach hands to the monitor's
//! relay. A leaf: both sides import it, it imports nothing of the crate.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use berth_network::{Protocol, ProxyListener, UdpProxySocket};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// Set by the spawning CLI when the monitor's stdin is the pipe on which the CLI waits for
/// the monitor's [`StatusReport`]: to [`STATUS_STDIN`], or to [`STATUS_STDIN_NOTIFY`] when the
/// CLI also follows the container's output through it (see `monitor::StatusPipe`).
pub const STATUS_ENV: &str = "BERTH_MONITOR_STATUS";

/// [`STATUS_ENV`] value: the start's outcome only; the pipe closes after it.
pub const STATUS_STDIN: &str = "stdin";

/// [`STATUS_ENV`] value: the start's outcome, then one byte whenever output was logged (at
/// most one unread), and the pipe closes once the container has stopped for good.
pub const STATUS_STDIN_NOTIFY: &str = "stdin,notify";

/// Test hook: the start point (`before-launch`, `after-network`) at which a monitor stops
/// itself (SIGSTOP) once, so that a test can interleave a killed CLI or a second start with a
/// start in flight, deterministically.
pub const TEST_PAUSE_ENV: &str = "BERTH_TEST_MONITOR_PAUSE";

/// Stops this process (SIGSTOP) at `point` of its first start when [`TEST_PAUSE_ENV`] names it.
pub(crate) fn test_pause(point: &str) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if std::env::var_os(TEST_PAUSE_ENV).is_some_and(|v| v == point)
        && !DONE.swap(true, Ordering::Relaxed)
    {
        let _ = nix::sys::signal::raise(Signal::SIGSTOP);
    }
}

/// The `berth` executable this monitor was started by (for helpers such as the DNS server,
/// which the monitor binary doesn't contain).
static BERTH_EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The `berth` executable, in a monitor process; None elsewhere.
pub(crate) fn berth_exe() -> Option<&'static Path> {
    BERTH_EXE.get().map(PathBuf::as_path)
}

/// Records the `berth` executable that started this monitor (once, at its start).
pub fn set_berth_exe(berth: &Path) {
    let _ = BERTH_EXE.set(berth.to_path_buf());
}

/// A monitor's report on the start it was asked for: the first line on its status pipe, as
/// JSON. After it, the pipe carries only wake-up bytes (see [`STATUS_STDIN_NOTIFY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusReport {
    /// The container's process runs (started by this monitor, or by another one meanwhile).
    Started {
        /// Its host pid.
        pid: i64,
    },
    /// The container's program could not be executed.
    ExecFailed {
        /// docker's exit status for it (126 or 127).
        code: u8,
        /// What happened, naming the program.
        msg: String,
    },
    /// The start failed before the program ran (docker's exit status 125).
    Failed {
        /// What happened.
        msg: String,
    },
}

impl StatusReport {
    /// The report as one line (a message's newlines become spaces, as on the terminal).
    pub fn to_line(&self) -> String {
        let flat = |m: &str| m.replace('\n', " ");
        let r = match self {
            StatusReport::Started { pid } => StatusReport::Started { pid: *pid },
            StatusReport::ExecFailed { code, msg } => {
                StatusReport::ExecFailed { code: *code, msg: flat(msg) }
            }
            StatusReport::Failed { msg } => StatusReport::Failed { msg: flat(msg) },
        };
        // A derived serialisation of strings and integers cannot fail.
        let mut line = serde_json::to_string(&r).unwrap_or_default();
        line.push('\n');
        line
    }

    /// Reads the report from a status pipe: up to the first newline when `notify` (leaving the
    /// pipe open: what follows are wake-ups), else to end-of-file. None when the monitor wrote
    /// no report (it died first).
    pub fn read(status: &mut File, notify: bool) -> Option<StatusReport> {
        let line = if notify {
            read_line(status)
        } else {
            let mut all = String::new();
            let _ = status.read_to_string(&mut all);
            all
        };
        serde_json::from_str(line.lines().next()?.trim()).ok()
    }
}

/// Reads up to the first newline of `status` (without it).
fn read_line(status: &mut File) -> String {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match status.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                if let Some(end) = line.iter().position(|b| *b == b'\n') {
                    line.truncate(end);
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// IPv6 proxy sockets: TCP listeners and UDP sockets.
#[derive(Debug, Default)]
pub struct ProxySockets {
    /// Listening TCP sockets.
    pub tcp: Vec<ProxyListener>,
    /// Bound UDP sockets.
    pub udp: Vec<UdpProxySocket>,
}

/// One proxy socket the monitor has bound, as `resync` compares it with the records.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundSocket {
    /// tcp or udp.
    pub protocol: Protocol,
    /// The socket's own address (`[::]:8080`).
    pub local: std::net::SocketAddr,
    /// Where it relays to.
    pub target: std::net::SocketAddrV4,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` into a pipe (closed after) and returns its read end.
    fn pipe_with(bytes: &[u8]) -> File {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut w = File::from(w);
        std::io::Write::write_all(&mut w, bytes).unwrap();
        File::from(r)
    }

    #[test]
    fn reports_cross_the_pipe_typed() {
        let reports = [
            StatusReport::Started { pid: 42 },
            StatusReport::ExecFailed { code: 127, msg: "exec: \"x\": not found".into() },
            StatusReport::Failed { msg: "no such image: bb".into() },
        ];
        for r in reports {
            for notify in [false, true] {
                let mut bytes = r.to_line().into_bytes();
                // Wake-up bytes after the report say nothing about the start.
                bytes.extend_from_slice(b"..");
                let got = StatusReport::read(&mut pipe_with(&bytes), notify);
                assert_eq!(got.as_ref(), Some(&r), "notify={notify}");
            }
        }
        // One line whatever the message holds.
        let line = StatusReport::Failed { msg: "a\nb".into() }.to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let got = StatusReport::read(&mut pipe_with(line.as_bytes()), false);
        assert_eq!(got, Some(StatusReport::Failed { msg: "a b".into() }));
        // A monitor that died before reporting: no report.
        assert_eq!(StatusReport::read(&mut pipe_with(b""), true), None);
    }
}
