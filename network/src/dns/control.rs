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
//!
//! EADDRINUSE alone does not prove that *this* root's server listens: for up to one rescan
//! (100 ms) after another root removed a network, that root's server may still hold the same
//! gateway address, which the address pool hands out again. So a gateway found in use is
//! confirmed with this root's server (a `Q` message listing it); until it is, the binds are
//! retried, and whatever they win is handed over as above.

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
/// The server's answer to a query for a gateway it does not listen on.
const NOT_SERVED: u8 = b'N';
/// Message kinds on the control socket: sockets handed over, or a query.
const MSG_SOCKETS: u8 = b'S';
const MSG_QUERY: u8 = b'Q';
/// Most gateways in one query.
const MAX_QUERY: usize = 64;
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
    mut command: Command,
    gateways: &[Ipv4Addr],
    port: u16,
) -> Result<()> {
    let mut seen: Vec<Ipv4Addr> = Vec::new();
    for gw in gateways {
        if !seen.contains(gw) {
            seen.push(*gw);
        }
    }
    let dir = state_root.join("networks");
    let (held, mut busy) = bind_all(state_root, &seen, port)?;
    if !held.is_empty() {
        hand_over(state_root, &mut command, held)?;
    }
    let deadline = std::time::Instant::now() + HANDOVER_DEADLINE;
    while !busy.is_empty() {
        if query_server(&dir, &busy) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                "{} held by a process other than the DNS server of {}; it will serve there once the address is free",
                busy.iter().map(|g| format!("{g}:{port}")).collect::<Vec<_>>().join(", "),
                state_root.display()
            );
            // At least a server of ours must run, so that its rescan binds them later.
            if let Some(lock) =
                crate::disk::try_lock_passable(&super::server_lock_path(state_root))?
            {
                return spawn_server(&dir, &mut command, lock, Vec::new());
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
        let (held, still) = bind_all(state_root, &busy, port)?;
        if !held.is_empty() {
            hand_over(state_root, &mut command, held)?;
        }
        busy = still;
    }
    Ok(())
}

/// Binds UDP and TCP `<gateway>:port` for each of `gateways`: the sockets won, and the
/// gateways found (partly) in use by someone else.
fn bind_all(
    state_root: &Path,
    gateways: &[Ipv4Addr],
    port: u16,
) -> Result<(Vec<OwnedFd>, Vec<Ipv4Addr>)> {
    let mut held = Vec::new();
    let mut busy = Vec::new();
    for gw in gateways {
        let at = SocketAddr::new(IpAddr::V4(*gw), port);
        for bound in [std::net::UdpSocket::bind(at).map(OwnedFd::from), bind_tcp(at)] {
            match bound {
                Ok(fd) => held.push(fd),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                    if !busy.contains(gw) {
                        busy.push(*gw);
                    }
                }
                Err(e) => {
                    return Err(NetworkError::Dns(format!(
                        "cannot listen on {at} for the DNS server of {}: {e}",
                        state_root.display()
                    )));
                }
            }
        }
    }
    Ok((held, busy))
}

/// True when this root's server (control socket in `dir`) answers that it listens on UDP and
/// TCP for every one of `gateways`.
fn query_server(dir: &Path, gateways: &[Ipv4Addr]) -> bool {
    gateways.chunks(MAX_QUERY).all(|chunk| {
        let ask = || -> std::io::Result<bool> {
            let mut stream = via_short_path(dir, CONTROL_SOCKET, |p| UnixStream::connect(p))?;
            stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            let mut msg = vec![MSG_QUERY];
            for gw in chunk {
                msg.extend_from_slice(&gw.octets());
            }
            std::io::Write::write_all(&mut stream, &msg)?;
            let mut answer = [0u8; 1];
            Ok(stream.read(&mut answer)? == 1 && answer[0] == ACK)
        };
        ask().unwrap_or(false)
    })
}

/// A listening TCP socket at `at` (std's bind sets SO_REUSEADDR, so a closed connection's
/// TIME_WAIT does not block it; a listening socket there still does).
fn bind_tcp(at: SocketAddr) -> std::io::Result<OwnedFd> {
    std::net::TcpListener::bind(at).map(OwnedFd::from)
}

/// Gives the bound `sockets` to the running server, or starts one with them.
fn hand_over(state_root: &Path, command: &mut Command, sockets: Vec<OwnedFd>) -> Result<()> {
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
        if let Some(lock) = crate::disk::try_lock_passable(&super::server_lock_path(state_root))? {
            return spawn_server(&dir, command, lock, sockets);
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
            &[IoSlice::new(&[MSG_SOCKETS])],
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

/// One accepted request: sockets handed over, or gateways asked about, and the connection to
/// answer on.
pub(super) struct Handover {
    /// The sockets handed over.
    pub sockets: Vec<OwnedFd>,
    /// The gateways a query asks about (empty for a hand-over).
    pub query: Vec<Ipv4Addr>,
    stream: tokio::net::UnixStream,
}

impl Handover {
    /// Tells the sender its sockets are served now.
    pub async fn acknowledge(self) {
        self.answer(true).await;
    }

    /// Answers a query (or a hand-over): served, or not.
    pub async fn answer(self, served: bool) {
        use tokio::io::AsyncWriteExt;
        let mut s = self.stream;
        let _ = s.write_all(&[if served { ACK } else { NOT_SERVED }]).await;
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
        let (sockets, query) =
            tokio::time::timeout(ANSWER_TIMEOUT, receive(&stream)).await.ok()?.ok()?;
        Some(Handover { sockets, query, stream })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // New clients then find no server and start one (after this process and its lock are
        // gone); a client whose hand-over was not acknowledged tries again.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one message from `stream`: the descriptors it carries, and the gateways of a query.
async fn receive(
    stream: &tokio::net::UnixStream,
) -> std::io::Result<(Vec<OwnedFd>, Vec<Ipv4Addr>)> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_fds(stream.as_raw_fd())) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// One `recvmsg` on `fd`, returning the descriptors of its SCM_RIGHTS messages and, for a
/// query, the gateways it lists.
fn recv_fds(fd: RawFd) -> std::io::Result<(Vec<OwnedFd>, Vec<Ipv4Addr>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut bytes = [0u8; 1 + 4 * MAX_QUERY];
    let mut iov = [IoSliceMut::new(&mut bytes)];
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
    let n = msg.bytes;
    if n == 0 && out.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut query = Vec::new();
    if n > 0 && bytes[0] == MSG_QUERY {
        for a in bytes[1..n].chunks_exact(4) {
            query.push(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
        }
        if query.is_empty() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    Ok((out, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway address still held by another process (another root's server before its
    /// rescan) is not taken for this root's server: the binds are retried until the address is
    /// free, and the sockets then go to a newly started server of this root.
    #[test]
    fn an_address_held_by_another_process_is_waited_for_and_then_served() {
        let root = tempfile::tempdir().expect("temp root");
        std::fs::create_dir_all(root.path().join("networks")).expect("mkdir");
        let lo = Ipv4Addr::LOCALHOST;
        // A port free for UDP and TCP both (other tests hold ports of either kind).
        let (at, foreign_udp, foreign_tcp) = (0..100)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind((lo, 0)).ok()?;
                let at = udp.local_addr().ok()?;
                let tcp = std::net::TcpListener::bind(at).ok()?;
                Some((at, udp, tcp))
            })
            .expect("a loopback port free for UDP and TCP");
        let port = at.port();
        let pidfile = root.path().join("server.pid");
        // The "server": a process that keeps what it inherits (lock, control socket, sockets).
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("echo $$ > {}; exec sleep 30", pidfile.display()));
        // A listener where this root's server would be: the caller asks it whether it serves
        // the address only after a bind met the foreign sockets. (Accepted and dropped: it
        // answers nothing, so the caller keeps waiting for the address.)
        let control = root.path().join("networks").join(CONTROL_SOCKET);
        let fake_server = std::os::unix::net::UnixListener::bind(&control).expect("control");
        let r = root.path().to_path_buf();
        let t = std::thread::spawn(move || ensure_serving_on(&r, cmd, &[lo], port));
        let (asked, _) = fake_server.accept().expect("the caller asks after a failed bind");
        drop((asked, fake_server));
        std::fs::remove_file(&control).expect("remove the fake control socket");
        // Now the address comes free.
        drop((foreign_udp, foreign_tcp));
        let res = t.join().expect("thread");
        // The started process writes its pid once it runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let pid = loop {
            let pid =
                std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok());
            if pid.is_some() || std::time::Instant::now() >= deadline {
                break pid;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let held_by_server = std::net::UdpSocket::bind(at).is_err();
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(res.is_ok(), "{res:?}");
        assert!(pid.is_some(), "no server was started for this root");
        assert!(held_by_server, "the started server does not hold {at}");
    }
}
