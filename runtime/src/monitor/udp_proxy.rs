//! The IPv6 userland proxy of published UDP ports (docker-proxy's UDP half, inside the monitor).
//!
//! Each IPv6 UDP socket of a published port (`[::]:PORT/udp` or an explicit IPv6 host address)
//! receives client datagrams. Per client address there is one *flow*: a non-blocking UDP socket
//! connected to the container's address, so the container's replies come back on it (and only
//! its replies: a connected socket drops datagrams from other sources) and are sent to that
//! client from the published socket. A flow idle for [`FLOW_IDLE`] is closed, as conntrack and
//! docker-proxy do; at most [`MAX_FLOWS`] exist, and a new client beyond that takes the place
//! of the flow idle longest. UDP gives no delivery promise, so a datagram that would block is
//! dropped rather than queued: memory does not grow with traffic.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use berth_network::UdpProxySocket;
use nix::poll::{PollFd, PollFlags};

/// Client flows kept at once (one fd each).
pub(super) const MAX_FLOWS: usize = 256;
/// A flow with no datagram either way for this long is closed (docker-proxy: 90 s).
pub(super) const FLOW_IDLE: Duration = Duration::from_secs(90);
/// Datagrams handled per socket per wake-up, so one busy client can't starve the rest.
const BURST: usize = 64;
/// Room for the largest UDP payload.
const DATAGRAM_MAX: usize = 65_536;

/// One client's flow: datagrams from `client` (arriving on socket `socket`) go out on
/// `upstream`; what comes back on `upstream` goes to `client`.
struct Flow {
    socket: usize,
    client: SocketAddr,
    upstream: UdpSocket,
    last: Instant,
}

/// The UDP relay state of one container run.
pub(super) struct UdpRelay {
    sockets: Vec<UdpProxySocket>,
    flows: Vec<Flow>,
    /// Allocated at the first datagram: a monitor whose UDP port sees no IPv6 traffic never
    /// holds it.
    buf: Vec<u8>,
}

impl UdpRelay {
    pub(super) fn new(sockets: Vec<UdpProxySocket>) -> Self {
        UdpRelay { sockets, flows: Vec::new(), buf: Vec::new() }
    }

    /// The published sockets (for a resync to compare with what should be bound).
    pub(super) fn sockets(&self) -> &[UdpProxySocket] {
        &self.sockets
    }

    /// Closes the sockets `drop` picks (with their flows) and adds `add`.
    pub(super) fn replace(
        &mut self,
        drop: impl Fn(&UdpProxySocket) -> bool,
        add: Vec<UdpProxySocket>,
    ) {
        let keep: Vec<bool> = self.sockets.iter().map(|s| !drop(s)).collect();
        // New index of each kept socket, so the flows follow their socket.
        let mut new_index = Vec::with_capacity(keep.len());
        let mut n = 0;
        for k in &keep {
            new_index.push(n);
            n += usize::from(*k);
        }
        self.flows.retain(|f| keep[f.socket]);
        for f in &mut self.flows {
            f.socket = new_index[f.socket];
        }
        let mut k = 0;
        self.sockets.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        self.sockets.extend(add);
    }

    /// Closes every flow (the container is gone).
    pub(super) fn close_all(&mut self) {
        self.flows.clear();
    }

    /// Adds the published sockets, then the flows' upstream sockets, to `pfds`.
    pub(super) fn register<'b>(&'b self, pfds: &mut Vec<PollFd<'b>>) -> (usize, usize) {
        for s in &self.sockets {
            pfds.push(PollFd::new(s.socket.as_fd(), PollFlags::POLLIN));
        }
        for f in &self.flows {
            pfds.push(PollFd::new(f.upstream.as_fd(), PollFlags::POLLIN));
        }
        (self.sockets.len(), self.flows.len())
    }

    /// When the next flow falls idle (None without flows).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.flows.iter().map(|f| f.last + FLOW_IDLE).min()
    }

    /// Handles readiness: `sockets_ready[i]` for published socket `i`, `flows_ready[j]` for
    /// flow `j` (both as registered), then closes idle flows.
    pub(super) fn service(&mut self, sockets_ready: &[bool], flows_ready: &[bool], now: Instant) {
        if self.buf.is_empty() && (sockets_ready.contains(&true) || flows_ready.contains(&true)) {
            self.buf = vec![0u8; DATAGRAM_MAX];
        }
        // Replies first: flow indices are those registered until a new flow changes them.
        for (j, ready) in flows_ready.iter().enumerate() {
            if *ready && j < self.flows.len() {
                self.replies(j, now);
            }
        }
        for (i, ready) in sockets_ready.iter().enumerate() {
            if *ready {
                self.requests(i, now);
            }
        }
        self.flows.retain(|f| now.saturating_duration_since(f.last) < FLOW_IDLE);
    }

    /// Container -> client: what came back on flow `j`.
    fn replies(&mut self, j: usize, now: Instant) {
        let f = &mut self.flows[j];
        let out = &self.sockets[f.socket].socket;
        for _ in 0..BURST {
            match f.upstream.recv(&mut self.buf) {
                Ok(n) => {
                    f.last = now;
                    // A full client socket buffer drops the datagram, as the network might.
                    let _ = out.send_to(&self.buf[..n], f.client);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock; or ECONNREFUSED from an ICMP "port unreachable" (nothing
                // listens in the container yet): the flow stays, the client may retry.
                Err(_) => return,
            }
        }
    }

    /// Client -> container: datagrams waiting on published socket `i`.
    fn requests(&mut self, i: usize, now: Instant) {
        let sock = &self.sockets[i];
        for _ in 0..BURST {
            let (n, client) = match sock.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let j = match self.flows.iter().position(|f| f.socket == i && f.client == client) {
                Some(j) => j,
                None => {
                    let Ok(upstream) = berth_network::proxy_socket::udp_connected(sock.target)
                    else {
                        continue;
                    };
                    if self.flows.len() >= MAX_FLOWS
                        && let Some(old) = (0..self.flows.len()).min_by_key(|&k| self.flows[k].last)
                    {
                        self.flows.swap_remove(old);
                    }
                    self.flows.push(Flow { socket: i, client, upstream, last: now });
                    self.flows.len() - 1
                }
            };
            let f = &mut self.flows[j];
            f.last = now;
            let _ = f.upstream.send(&self.buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// A relay on `[::1]:0` to an echo socket on 127.0.0.1 (the "container").
    fn relay_to_echo() -> (Vec<UdpProxySocket>, UdpSocket, SocketAddr) {
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        echo.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let std::net::SocketAddr::V4(target) = echo.local_addr().unwrap() else { unreachable!() };
        let socket = UdpSocket::bind("[::1]:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap();
        (vec![UdpProxySocket { socket, target }], echo, addr)
    }

    fn client() -> UdpSocket {
        let c = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    /// Echoes one datagram on `echo`, with a prefix.
    fn echo_one(echo: &UdpSocket) {
        let mut b = [0u8; 64];
        let (n, from) = echo.recv_from(&mut b).unwrap();
        let mut out = b"re:".to_vec();
        out.extend_from_slice(&b[..n]);
        echo.send_to(&out, from).unwrap();
    }

    /// Waits (bounded) until `s` has a datagram, so `service` finds it without poll.
    fn readable(s: &UdpSocket) {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        s.peek(&mut b).ok();
        s.set_nonblocking(true).unwrap();
    }

    #[test]
    fn flows_per_client_replies_and_idle_end() {
        let (socks, echo, addr) = relay_to_echo();
        let mut r = UdpRelay::new(socks);
        let now = Instant::now();
        let (a, b) = (client(), client());
        a.send_to(b"a", addr).unwrap();
        b.send_to(b"b", addr).unwrap();
        // Loopback sends are queued at once: one wake-up takes both.
        readable(&r.sockets[0].socket);
        r.service(&[true], &[], now);
        assert_eq!(r.flows.len(), 2, "one flow per client");
        echo_one(&echo);
        echo_one(&echo);
        for j in 0..2 {
            readable(&r.flows[j].upstream);
        }
        r.service(&[false], &[true, true], now);
        let mut buf = [0u8; 16];
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re:a");
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"re:b");
        // A second datagram of a reuses its flow.
        a.send_to(b"a2", addr).unwrap();
        readable(&r.sockets[0].socket);
        r.service(&[true], &[false, false], now + Duration::from_secs(60));
        assert_eq!(r.flows.len(), 2);
        assert_eq!(r.next_deadline(), Some(now + FLOW_IDLE));
        // b idles out first, then a.
        r.service(&[false], &[false, false], now + FLOW_IDLE);
        assert_eq!(r.flows.len(), 1);
        assert_eq!(r.flows[0].client, a.local_addr().unwrap());
        r.service(&[false], &[false], now + Duration::from_secs(60) + FLOW_IDLE);
        assert!(r.flows.is_empty() && r.next_deadline().is_none());
    }

    #[test]
    fn flows_are_bounded_and_the_longest_idle_goes() {
        let (socks, _echo, addr) = relay_to_echo();
        let mut r = UdpRelay::new(socks);
        let t0 = Instant::now();
        let first = client();
        first.send_to(b"x", addr).unwrap();
        readable(&r.sockets[0].socket);
        r.service(&[true], &[], t0);
        let clients: Vec<UdpSocket> = (0..MAX_FLOWS).map(|_| client()).collect();
        for (k, c) in clients.iter().enumerate() {
            c.send_to(b"x", addr).unwrap();
            readable(&r.sockets[0].socket);
            let flows = vec![false; r.flows.len()];
            r.service(&[true], &flows, t0 + Duration::from_millis(1 + k as u64));
        }
        assert_eq!(r.flows.len(), MAX_FLOWS);
        let first_addr = first.local_addr().unwrap();
        assert!(!r.flows.iter().any(|f| f.client == first_addr), "the oldest flow was evicted");
        r.close_all();
        assert!(r.flows.is_empty());
    }
}
