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

/// Set by the spawning CLI when the monitor's stdin is the pipe on which the CLI waits for
/// "ok <pid>" or "err <message>": to [`STATUS_STDIN`], or to [`STATUS_STDIN_NOTIFY`] when the
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

/// Reads a monitor's one-line report on the start ("ok <pid>" or "err <message>") from its
/// status pipe, leaving the pipe open; bytes after the line are wake-ups, which say nothing a
/// first read of the log doesn't.
pub(crate) fn read_status_line(status: &mut File) -> String {
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
