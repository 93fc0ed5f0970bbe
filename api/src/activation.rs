//! systemd socket activation: listening sockets handed to the service as descriptors 3, 4, …
//! with `LISTEN_PID` (our pid) and `LISTEN_FDS` (their number), as a `.socket` unit or
//! `systemd-socket-activate` passes them (the `sd_listen_fds` protocol).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname, sockopt};

use crate::server::ServeError;

/// The first descriptor the protocol passes.
const FIRST_FD: RawFd = 3;

/// Set once the descriptors were taken: they are owned by whoever took them.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A listening socket handed over by the service manager.
#[derive(Debug)]
pub enum Activated {
    /// A Unix stream socket.
    Unix(std::os::unix::net::UnixListener),
    /// A TCP socket (loopback only, as `--host tcp://` is).
    Tcp(std::net::TcpListener),
}

fn bad(fd: RawFd, reason: impl std::fmt::Display) -> ServeError {
    ServeError::Host { host: format!("socket activation (fd {fd})"), reason: reason.to_string() }
}

/// The number of descriptors passed to this process (0: not socket-activated).
fn offered() -> Result<RawFd, ServeError> {
    let pid = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok());
    if pid != Some(std::process::id()) {
        return Ok(0); // not for us (or a parent's variables inherited)
    }
    let n = std::env::var("LISTEN_FDS").unwrap_or_default();
    n.parse::<RawFd>().ok().filter(|n| (0..=1024).contains(n)).ok_or_else(|| ServeError::Host {
        host: "socket activation".into(),
        reason: format!("LISTEN_FDS={n:?} is not a number of descriptors"),
    })
}

/// Takes ownership of descriptor `fd` passed by the service manager. Only called by [`take`],
/// once per process ([`TAKEN`]), for the descriptors the protocol handed to this process.
fn own(fd: RawFd) -> Result<OwnedFd, ServeError> {
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed descriptor gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(bad(
            fd,
            format!("not an open descriptor: {}", std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: `fd` is open (just checked), and no other owner of it exists in berth: the
    // protocol hands descriptors 3.. to this process for the service, nothing else in berth
    // opens or adopts them, and `take` adopts them once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The listening sockets passed by socket activation, each made close-on-exec (the
/// containers' monitors must not inherit them); empty when the service was not activated.
/// A descriptor that is not a listening Unix or loopback TCP stream socket is an error.
pub fn take() -> Result<Vec<Activated>, ServeError> {
    let n = offered()?;
    if n == 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for fd in FIRST_FD..FIRST_FD + n {
        let owned = own(fd)?;
        fcntl(owned.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| bad(fd, format!("setting close-on-exec: {e}")))?;
        let listening = nix::sys::socket::getsockopt(&owned, sockopt::AcceptConn)
            .map_err(|e| bad(fd, format!("not a socket: {e}")))?;
        if !listening {
            return Err(bad(fd, "the socket is not listening (use ListenStream= with Accept=no)"));
        }
        let addr = getsockname::<SockaddrStorage>(owned.as_raw_fd()).map_err(|e| bad(fd, e))?;
        match addr.family() {
            Some(AddressFamily::Unix) => {
                out.push(Activated::Unix(std::os::unix::net::UnixListener::from(owned)));
            }
            Some(AddressFamily::Inet | AddressFamily::Inet6) => {
                let l = std::net::TcpListener::from(owned);
                let local = l.local_addr().map_err(|e| bad(fd, e))?;
                if !local.ip().is_loopback() {
                    return Err(bad(
                        fd,
                        format!(
                            "{local} is not a loopback address (the API has no authentication)"
                        ),
                    ));
                }
                out.push(Activated::Tcp(l));
            }
            other => return Err(bad(fd, format!("unsupported socket family {other:?}"))),
        }
    }
    Ok(out)
}
