//! DNS readiness: a container must not start before the root's DNS server listens on its
//! network's gateway, or its first lookups get "connection refused" (the server found new
//! networks by rescanning every 100 ms).
//!
//! Whoever connects a container ([`ensure_serving`]) binds `<gateway>:53`, UDP and TCP, itself.
//! EADDRINUSE means the server listens there already: done, in a few microseconds. A successful
//! bind means it did not; the address is now held, so a query waits in the socket's queue
//! instead of being refused, and the sockets go to the server: over its control socket
//! `networks/dns.sock` (SCM_RIGHTS, then one acknowledgement byte), or, when no server runs,
//! to a new one as inherited descriptors, with the server lock and the already listening
//! control socket. Nobody waits for a server to start or to rescan.

use std::io::{IoSlice, IoSliceMut, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{NetworkError, Result};

/// The control socket's name in `<root>/networks/`.
pub const CONTROL_SOCKET: &str = "dns.sock";
/// Lists the descriptors a started server inherits: the lock, the control socket, then the
/// sockets to serve.
const INHERIT_ENV: &str = "BERTH_DNS_FDS";
/// Most sockets in one hand-over message (the kernel allows 253).
const MAX_PER_MESSAGE: usize = 64;
/// The server's acknowledgement byte.
const ACK: u8 = b'K';
/// How long the server may take to receive a hand-over.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a hand-over is tried. Only the rare moment when a server is starting or exiting
/// takes more than one try (the next comes 1 ms later); a server that takes no hand-over at
/// all (stopped, or from an older berth) runs into this.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(2);

/// Makes sure the DNS server of `state_root` listens on UDP and TCP `<gateway>:53` for each of
/// `gateways` when this returns, starting one with `command` (`berth --root R __dns`) when
/// none runs. Costs two `bind` calls per gateway when the server listens there already.
pub fn ensure_serving(state_root: &Path, command: Command, gateways: &[Ipv4Addr]) -> Result<()> {
    ensure_serving_on(state_root, command, gateways, 53)
}

/// [`ensure_serving`] on `port`.
fn ensure_serving_on(
    state_root: &Path,
    command: Command,
    gateways: &[Ipv4Addr],
    port: u16,
) -> Result<()> {
    let mut held = Vec::new();
    let mut seen: Vec<Ipv4Addr> = Vec::new();
    for gw in gateways {
        if seen.contains(gw) {
            continue;
        }
        seen.push(*gw);
        let at = SocketAddr::new(IpAddr::V4(*gw), port);
        for bound in [std::net::UdpSocket::bind(at).map(OwnedFd::from), bind_tcp(at)] {
            match bound {
                Ok(fd) => held.push(fd),
                // Served already (by the server, or held by a creator handing it over).
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {}
                Err(e) => {
                    return Err(NetworkError::Dns(format!(
                        "cannot listen on {at} for the DNS server of {}: {e}",
                        state_root.display()
                    )));
                }
            }
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    hand_over(state_root, command, held)
}

/// A listening TCP socket at `at` (std's bind sets SO_REUSEADDR, so a closed connection's
/// TIME_WAIT does not block it; a listening socket there still does).
fn bind_tcp(at: SocketAddr) -> std::io::Result<OwnedFd> {
    std::net::TcpListener::bind(at).map(OwnedFd::from)
}

/// Gives the bound `sockets` to the running server, or starts one with them.
fn hand_over(state_root: &Path, mut command: Command, sockets: Vec<OwnedFd>) -> Result<()> {
    let dir = state_root.join("networks");
    let deadline = std::time::Instant::now() + HANDOVER_DEADLINE;
    let last = loop {
        let err = match send_to_server(&dir, &sockets) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // No server answers: start one, unless one holds the lock (starting: its starter binds
        // the control socket before it lets go of the lock; or exiting: it removed its control
        // socket and is about to release the lock).
        if let Some(lock) = crate::store::try_lock_passable(&super::server_lock_path(state_root))? {
            return spawn_server(&dir, &mut command, lock, sockets);
        }
        if std::time::Instant::now() >= deadline {
            break err;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // Closing the sockets lets that server's own rescan bind the gateways (within 100 ms): the
    // container may start before its DNS answers, as before this hand-over existed.
    tracing::warn!(
        "the DNS server of {} takes no hand-over ({last}); it will find the new network by itself",
        state_root.display()
    );
    Ok(())
}

/// Sends `sockets` to the server listening on `dir`'s control socket and waits for its
/// acknowledgement.
fn send_to_server(dir: &Path, sockets: &[OwnedFd]) -> std::io::Result<()> {
    for chunk in sockets.chunks(MAX_PER_MESSAGE) {
        let stream = via_short_path(dir, CONTROL_SOCKET, |p| UnixStream::connect(p))?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let raw: Vec<RawFd> = chunk.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&raw)];
        nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(b"S")],
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )?;
        let mut ack = [0u8; 1];
        if (&stream).read(&mut ack)? != 1 || ack[0] != ACK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the DNS server closed the hand-over without taking it",
            ));
        }
    }
    Ok(())
}

/// Starts the server with `command`, passing it `lock` (the server lock, held), a control
/// socket bound now, and `sockets`.
fn spawn_server(
    dir: &Path,
    command: &mut Command,
    lock: OwnedFd,
    sockets: Vec<OwnedFd>,
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let control = bind_in(dir)?;
    let mut passed: Vec<RawFd> = vec![lock.as_raw_fd(), control.as_raw_fd()];
    passed.extend(sockets.iter().map(AsRawFd::as_raw_fd));
    let list: Vec<String> = passed.iter().map(RawFd::to_string).collect();
    command
        .env(INHERIT_ENV, list.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec. It only calls fcntl, which is
    // async-signal-safe, on descriptors the child got from fork (all open: owned above until
    // after the spawn), and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for fd in &passed {
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| {
        NetworkError::Dns(format!("starting the DNS server for {}: {e}", dir.display()))
    })?;
    // Our copies close here; the lock stays held through the server's.
    drop((lock, control, sockets));
    Ok(())
}

/// Binds the control socket of `state_root` (the caller holds the server lock, so a socket
/// file found there is a dead server's and is replaced).
pub(super) fn bind(state_root: &Path) -> Result<UnixListener> {
    bind_in(&state_root.join("networks"))
}

fn bind_in(dir: &Path) -> Result<UnixListener> {
    let path = dir.join(CONTROL_SOCKET);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(NetworkError::io("remove", &path, e));
        }
        _ => {}
    }
    via_short_path(dir, CONTROL_SOCKET, |p| UnixListener::bind(p))
        .map_err(|e| NetworkError::io("bind", &path, e))
}

/// Runs `f` on a path to `dir/name` that fits a unix socket address (108 bytes): the path
/// itself, or `/proc/self/fd/<N>/name` through a descriptor of `dir` when it is longer.
fn via_short_path<T>(
    dir: &Path,
    name: &str,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return f(&full);
    }
    let d = std::fs::File::open(dir)?;
    f(Path::new(&format!("/proc/self/fd/{}/{name}", d.as_raw_fd())))
}

/// What a server started by [`ensure_serving`] inherits.
pub(super) struct Inherited {
    /// The server lock (an open file with the flock on it).
    pub lock: OwnedFd,
    /// The listening control socket.
    pub control: UnixListener,
    /// Bound sockets to serve.
    pub sockets: Vec<OwnedFd>,
}

/// The descriptors `BERTH_DNS_FDS` lists, when this process was started by [`spawn_server`].
pub(super) fn take_inherited() -> Option<Inherited> {
    let list = std::env::var(INHERIT_ENV).ok()?;
    let fds: Option<Vec<RawFd>> = list.split(',').map(|x| x.parse().ok()).collect();
    let fds = fds.filter(|f| f.len() >= 2 && f.iter().all(|fd| *fd > 2 && is_open(*fd)));
    let Some(fds) = fds else {
        tracing::warn!("dns: ignoring {INHERIT_ENV}={list:?}: not the descriptors of a server");
        return None;
    };
    // SAFETY: `spawn_server` listed descriptors it passed to this process, which are open
    // (checked above); nothing else in this process knows of them, so each gets one owner.
    let mut owned = fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let lock = owned.next()?;
    let control = UnixListener::from(owned.next()?);
    let sockets: Vec<OwnedFd> = owned.collect();
    for fd in [lock.as_raw_fd(), control.as_raw_fd()]
        .into_iter()
        .chain(sockets.iter().map(AsRawFd::as_raw_fd))
    {
        set_cloexec(fd);
    }
    Some(Inherited { lock, control, sockets })
}

/// True when `fd` is an open descriptor of this process.
fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unknown number gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Marks `fd` close-on-exec again (it was cleared to pass it to this process).
fn set_cloexec(fd: RawFd) {
    // SAFETY: F_SETFD on a descriptor this process owns changes only its flags.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// The server side of the control socket.
pub(super) struct Control {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

/// One accepted hand-over: the sockets, and the connection to acknowledge them on.
pub(super) struct Handover {
    /// The sockets handed over.
    pub sockets: Vec<OwnedFd>,
    stream: tokio::net::UnixStream,
}

impl Handover {
    /// Tells the sender its sockets are served now.
    pub async fn acknowledge(self) {
        use tokio::io::AsyncWriteExt;
        let mut s = self.stream;
        let _ = s.write_all(&[ACK]).await;
    }
}

impl Control {
    /// Serves `listener`, bound at `<state_root>/networks/dns.sock`.
    pub fn new(listener: UnixListener, state_root: &Path) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Control {
            listener: tokio::net::UnixListener::from_std(listener)?,
            path: state_root.join("networks").join(CONTROL_SOCKET),
        })
    }

    /// The next hand-over; None for a connection that is not one (another user, no
    /// descriptors, or no message within the timeout).
    pub async fn accept(&self) -> Option<Handover> {
        let stream = match self.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: don't spin on it.
                tracing::warn!("dns: accepting on {}: {e}", self.path.display());
                tokio::time::sleep(Duration::from_millis(100)).await;
                return None;
            }
        };
        let uid = stream.peer_cred().ok()?.uid();
        if uid != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let sockets = tokio::time::timeout(ANSWER_TIMEOUT, receive(&stream)).await.ok()?.ok()?;
        Some(Handover { sockets, stream })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // New clients then find no server and start one (after this process and its lock are
        // gone); a client whose hand-over was not acknowledged tries again.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one hand-over message from `stream`: the descriptors it carries.
async fn receive(stream: &tokio::net::UnixStream) -> std::io::Result<Vec<OwnedFd>> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_fds(stream.as_raw_fd())) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// One `recvmsg` on `fd`, returning the descriptors of its SCM_RIGHTS messages.
fn recv_fds(fd: RawFd) -> std::io::Result<Vec<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_PER_MESSAGE]);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut out = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed these descriptors in this process for this
            // message; nothing else refers to them.
            out.extend(fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    if msg.bytes == 0 && out.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(out)
}
