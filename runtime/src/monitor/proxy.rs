//! The IPv6 userland proxy of published ports (docker's docker-proxy, inside the monitor).
//!
//! Published ports are IPv4 DNAT rules; IPv6 clients have no rule to meet. For each port
//! published on every address (or on an IPv6 host address), the monitor listens on
//! `[::]:PORT` (or that address; see `berth_network::proxy_socket`) and relays each accepted
//! connection to the container's IPv4 address; UDP is relayed by `super::udp_proxy`.
//! Everything is non-blocking and driven by the monitor's one `poll` loop: one fixed buffer
//! per direction, filled only when empty, so a slow reader stops the reads from its writer
//! (back-pressure) instead of growing memory. A half-close (EOF) on one side is passed on with
//! `shutdown(SHUT_WR)`; any error closes both sides.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;

use berth_network::{Protocol, ProxyListener};
use nix::poll::{PollFd, PollFlags};

use crate::monitor_protocol::{BoundSocket, ProxySockets};

use super::udp_proxy::UdpRelay;

/// Connections relayed at once; more wait in the listen backlog.
const MAX_CONNS: usize = 256;
/// Bytes buffered per direction of a connection.
const BUF_SIZE: usize = 16 * 1024;
/// Read-write rounds per direction per wake-up, so one fast connection can't starve the rest.
const ROUNDS: usize = 8;

/// What a poll entry registered by [`Proxy::register`] stands for.
pub(super) enum Slot {
    Listener(usize),
    Conn(usize),
    /// A UDP socket; these come in registration order.
    Udp,
    /// A UDP flow's upstream socket; in registration order.
    Flow,
}

/// One direction of a connection: bytes read from one side, not yet written to the other.
struct Half {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The reading side reached end-of-file.
    eof: bool,
    /// The end-of-file was passed on (`shutdown(SHUT_WR)` of the writing side).
    shut: bool,
}

impl Half {
    fn new() -> Self {
        Half {
            buf: vec![0u8; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    fn pending(&self) -> bool {
        self.start < self.end
    }

    /// Wants to read: its buffer is empty and the reader hasn't ended.
    fn wants_read(&self) -> bool {
        !self.pending() && !self.eof
    }

    /// Wants the writing side: bytes to write, or an end-of-file still to pass on.
    fn wants_write(&self) -> bool {
        self.pending() || (self.eof && !self.shut)
    }

    /// Moves bytes from `from` to `to` until either would block; Err when the connection is
    /// broken.
    fn pump<R: Read, W: Write + HalfClose>(&mut self, from: &mut R, to: &mut W) -> Result<(), ()> {
        for _ in 0..ROUNDS {
            while self.pending() {
                match to.write(&self.buf[self.start..self.end]) {
                    Ok(0) => return Err(()),
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
            (self.start, self.end) = (0, 0);
            if self.eof {
                break;
            }
            match from.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        // Also when the end-of-file came in the last round: nothing else would wake this
        // direction to pass it on, and the peer would wait for it forever.
        if self.eof && !self.pending() && !self.shut {
            to.shutdown_write().map_err(|_| ())?;
            self.shut = true;
        }
        Ok(())
    }
}

/// The write side of a stream can be shut (a TCP half-close).
trait HalfClose {
    fn shutdown_write(&self) -> std::io::Result<()>;
}

impl HalfClose for TcpStream {
    fn shutdown_write(&self) -> std::io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// One relayed connection.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    /// The connect to the container hasn't completed yet.
    connecting: bool,
    /// client -> container
    up: Half,
    /// container -> client
    down: Half,
}

impl Conn {
    fn done(&self) -> bool {
        self.up.shut && self.down.shut
    }

    /// Makes what progress it can; Err when the connection is to be closed.
    fn step(&mut self) -> Result<(), ()> {
        if self.connecting {
            match self.upstream.take_error() {
                Ok(None) if self.upstream.peer_addr().is_ok() => self.connecting = false,
                // Still in progress (a spurious wake-up) when nothing failed.
                Ok(None) => return Ok(()),
                _ => return Err(()),
            }
        }
        self.up.pump(&mut self.client, &mut self.upstream)?;
        self.down.pump(&mut self.upstream, &mut self.client)
    }
}

/// The proxy state of one container run: its TCP listeners and UDP sockets (taken from the
/// `NetHold`; a resync adds and closes some), the connections in flight and the UDP flows.
pub(super) struct Proxy {
    listeners: Vec<ProxyListener>,
    conns: Vec<Conn>,
    udp: UdpRelay,
}

impl Proxy {
    /// A proxy for these sockets; None when there are none (nothing to build or page in).
    pub(super) fn new(sockets: ProxySockets) -> Option<Self> {
        if sockets.tcp.is_empty() && sockets.udp.is_empty() {
            return None;
        }
        Some(Proxy { listeners: sockets.tcp, conns: Vec::new(), udp: UdpRelay::new(sockets.udp) })
    }

    /// What `proxy` has bound: (protocol, local address, target) of each socket.
    pub(super) fn bound(proxy: &Option<Self>) -> Vec<BoundSocket> {
        let Some(p) = proxy else { return Vec::new() };
        let tcp = p.listeners.iter().filter_map(|l| {
            Some(BoundSocket {
                protocol: Protocol::Tcp,
                local: l.listener.local_addr().ok()?,
                target: l.target,
            })
        });
        let udp = p.udp.sockets().iter().filter_map(|u| {
            Some(BoundSocket {
                protocol: Protocol::Udp,
                local: u.socket.local_addr().ok()?,
                target: u.target,
            })
        });
        tcp.chain(udp).collect()
    }

    /// Closes the sockets in `gone` (a resync found their binding gone); the connections of
    /// a closed listener keep running.
    pub(super) fn close(proxy: &mut Option<Self>, gone: &[BoundSocket]) {
        let Some(p) = proxy else { return };
        let is_gone = |protocol: Protocol, local: std::io::Result<std::net::SocketAddr>| {
            local.is_ok_and(|a| gone.iter().any(|g| g.protocol == protocol && g.local == a))
        };
        p.listeners.retain(|l| !is_gone(Protocol::Tcp, l.listener.local_addr()));
        p.udp.replace(|u| is_gone(Protocol::Udp, u.socket.local_addr()), Vec::new());
        if p.listeners.is_empty() && p.udp.sockets().is_empty() && p.conns.is_empty() {
            *proxy = None;
        }
    }

    /// Runs the new sockets of a resync too (making the proxy when there was none).
    pub(super) fn add(proxy: &mut Option<Self>, add: ProxySockets) {
        match proxy {
            Some(p) => {
                p.listeners.extend(add.tcp);
                p.udp.replace(|_| false, add.udp);
            }
            None => *proxy = Proxy::new(add),
        }
    }

    /// Closes every connection and UDP flow (the container is gone).
    pub(super) fn close_all(&mut self) {
        self.conns.clear();
        self.udp.close_all();
    }

    /// When the proxy next has something to do without a poll event (a UDP flow's idle end).
    pub(super) fn next_deadline(&self) -> Option<std::time::Instant> {
        self.udp.next_deadline()
    }

    /// Adds the poll entries this proxy waits on to `pfds`; the returned slots name them, in
    /// the same order.
    pub(super) fn register<'b>(&'b self, pfds: &mut Vec<PollFd<'b>>) -> Vec<Slot> {
        let mut slots = Vec::new();
        if self.conns.len() < MAX_CONNS {
            for (i, l) in self.listeners.iter().enumerate() {
                pfds.push(PollFd::new(l.listener.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Listener(i));
            }
        }
        for (i, c) in self.conns.iter().enumerate() {
            let (mut cl, mut up) = (PollFlags::empty(), PollFlags::empty());
            if c.connecting {
                up |= PollFlags::POLLOUT;
            } else {
                if c.up.wants_read() {
                    cl |= PollFlags::POLLIN;
                }
                if c.down.wants_write() {
                    cl |= PollFlags::POLLOUT;
                }
                if c.down.wants_read() {
                    up |= PollFlags::POLLIN;
                }
                if c.up.wants_write() {
                    up |= PollFlags::POLLOUT;
                }
            }
            // Both are registered even without interest: POLLERR/POLLHUP still wake us.
            pfds.push(PollFd::new(c.client.as_fd(), cl));
            pfds.push(PollFd::new(c.upstream.as_fd(), up));
            slots.push(Slot::Conn(i));
            slots.push(Slot::Conn(i));
        }
        let (socks, flows) = self.udp.register(pfds);
        slots.extend((0..socks).map(|_| Slot::Udp));
        slots.extend((0..flows).map(|_| Slot::Flow));
        slots
    }

    /// Handles the poll results `revents` of the entries `slots` named.
    pub(super) fn service(&mut self, slots: &[Slot], revents: &[PollFlags]) {
        let mut touched = vec![false; self.conns.len()];
        let mut accept_on = Vec::new();
        let mut udp_ready = Vec::new();
        let mut flow_ready = Vec::new();
        for (slot, ev) in slots.iter().zip(revents) {
            let ready = !ev.is_empty();
            match *slot {
                Slot::Udp => udp_ready.push(ready),
                Slot::Flow => flow_ready.push(ready),
                _ if !ready => {}
                Slot::Listener(i) => accept_on.push(i),
                Slot::Conn(i) => touched[i] = true,
            }
        }
        self.udp.service(&udp_ready, &flow_ready, std::time::Instant::now());
        let mut broken = vec![false; self.conns.len()];
        for (i, c) in self.conns.iter_mut().enumerate() {
            if touched[i] && (c.step().is_err() || c.done()) {
                broken[i] = true;
            }
        }
        let mut k = 0;
        self.conns.retain(|_| {
            k += 1;
            !broken[k - 1]
        });
        for i in accept_on {
            self.accept(i);
        }
    }

    /// Accepts what is waiting on listener `i` (up to the cap) and starts connecting each to
    /// the container.
    fn accept(&mut self, i: usize) {
        let l = &self.listeners[i];
        while self.conns.len() < MAX_CONNS {
            let client = match l.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock, or a connection aborted before we took it.
                Err(_) => return,
            };
            if client.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = client.set_nodelay(true);
            let Ok(upstream) = berth_network::proxy_socket::connect_nonblocking(l.target) else {
                continue;
            };
            let _ = upstream.set_nodelay(true);
            self.conns.push(Conn {
                client,
                upstream,
                connecting: true,
                up: Half::new(),
                down: Half::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Cursor;

    /// A writer that takes everything and records a half-close.
    #[derive(Default)]
    struct Sink {
        got: Vec<u8>,
        shut: Cell<bool>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.got.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl HalfClose for Sink {
        fn shutdown_write(&self) -> std::io::Result<()> {
            self.shut.set(true);
            Ok(())
        }
    }

    #[test]
    fn end_of_file_in_any_round_is_passed_on() {
        // The end-of-file is read in round `k` for every k, the last round included (the CI
        // stall: a relayed download that never ended).
        for full_reads in 0..ROUNDS + 2 {
            let data: Vec<u8> = (0..full_reads * BUF_SIZE).map(|i| i as u8).collect();
            let mut from = Cursor::new(data.clone());
            let mut to = Sink::default();
            let mut half = Half::new();
            for _ in 0..4 {
                half.pump(&mut from, &mut to).expect("pump");
                if half.shut {
                    break;
                }
                // Poll would wake it again only if it still wants something.
                assert!(half.wants_read() || half.wants_write(), "{full_reads} reads: no interest");
            }
            assert!(half.shut && to.shut.get(), "{full_reads} reads: end-of-file not passed on");
            assert!(to.got == data, "{full_reads} reads: bytes differ");
        }
    }
}
