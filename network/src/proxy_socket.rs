//! Sockets for the IPv6 userland proxy of published ports.
//!
//! Published ports are DNAT rules in `table ip berth`, which IPv6 traffic never meets (the
//! containers have IPv4 addresses only). Like docker's userland proxy, the container monitor
//! listens on the IPv6 host address (`[::]:PORT` for a port published on every address, or the
//! explicit IPv6 host address) and relays TCP connections and UDP datagrams to the container's
//! IPv4 address. This module only makes the sockets; the relaying lives in the monitor's poll
//! loop.

use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, listen,
    setsockopt, socket, sockopt,
};

use crate::{NetworkError, Protocol, PublishedPort, Result};

/// A listening IPv6 TCP socket whose connections go to `target` (the container's address and
/// port).
#[derive(Debug)]
pub struct ProxyListener {
    /// Non-blocking, IPv6 only.
    pub listener: TcpListener,
    /// Where accepted connections are relayed to.
    pub target: SocketAddrV4,
}

/// A bound IPv6 UDP socket whose datagrams go to `target` (the container's address and port).
#[derive(Debug)]
pub struct UdpProxySocket {
    /// Non-blocking, IPv6 only.
    pub socket: UdpSocket,
    /// Where datagrams are relayed to.
    pub target: SocketAddrV4,
}

/// Whether the host has IPv6 (`[::1]` can be bound).
pub fn ipv6_available() -> bool {
    TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)).is_ok()
}

/// Whether `p`, an IPv4 binding on every address, also gets `[::]:PORT` (as docker does).
pub fn wants_ipv6_proxy(p: &PublishedPort) -> bool {
    p.host_ip.is_ipv4() && p.host_ip.is_unspecified()
}

/// A mapping's host address as recorded: every address (`0.0.0.0`) when none is given, an
/// IPv4-mapped IPv6 address as the IPv4 address it stands for.
pub fn canonical_host_ip(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V6(a)) => a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(a)),
        Some(a) => a,
    }
}

/// An address as it goes before `:PORT`: IPv6 in brackets (`[::1]`), IPv4 as is.
pub fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    }
}

/// Binds `[ip]:port` IPv6-only (so the IPv4 binding of the same port is no conflict),
/// non-blocking and close-on-exec; a TCP socket listens when `listen_now`.
pub fn bind_v6only(
    ip: Ipv6Addr,
    port: u16,
    proto: Protocol,
    listen_now: bool,
) -> std::io::Result<OwnedFd> {
    let typ = match proto {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let fd =
        socket(AddressFamily::Inet6, typ, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    if proto == Protocol::Tcp {
        // As std's TcpListener: a port in TIME_WAIT may be bound again at once. (Not for UDP,
        // where it would let a second socket share the port.)
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrIn6::from(SocketAddrV6::new(ip, port, 0, 0)))?;
    if listen_now && proto == Protocol::Tcp {
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

/// The IPv6 address `p`'s proxy socket binds: its own for an IPv6 binding, else `::`.
fn proxy_addr(p: &PublishedPort) -> Ipv6Addr {
    match p.host_ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
    }
}

fn bind_err(p: &PublishedPort, e: std::io::Error) -> NetworkError {
    let ip = IpAddr::V6(proxy_addr(p));
    if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT)) {
        return NetworkError::HostAddressUnavailable {
            network: String::from("-"),
            host_ip: ip,
            port: p.host_port,
            protocol: p.protocol.as_str().to_string(),
        };
    }
    NetworkError::PortInUse {
        network: String::from("-"),
        host_ip: bracketed(ip),
        port: p.host_port,
        protocol: p.protocol.as_str().to_string(),
        detail: format!(" ({e})"),
    }
}

/// Binds the TCP proxy listener of `p` (`[::]:PORT` for an IPv4 any-address binding, else
/// its IPv6 address), listening, relaying to the container's address of `p`.
pub fn bind_ipv6_proxy(p: &PublishedPort) -> Result<ProxyListener> {
    let fd =
        bind_v6only(proxy_addr(p), p.host_port, Protocol::Tcp, true).map_err(|e| bind_err(p, e))?;
    Ok(ProxyListener {
        listener: TcpListener::from(fd),
        target: SocketAddrV4::new(p.container_ip, p.container_port),
    })
}

/// Binds the UDP proxy socket of `p` (address as for [`bind_ipv6_proxy`]).
pub fn bind_ipv6_udp_proxy(p: &PublishedPort) -> Result<UdpProxySocket> {
    let fd = bind_v6only(proxy_addr(p), p.host_port, Protocol::Udp, false)
        .map_err(|e| bind_err(p, e))?;
    Ok(UdpProxySocket {
        socket: UdpSocket::from(fd),
        target: SocketAddrV4::new(p.container_ip, p.container_port),
    })
}

/// Starts a non-blocking connect to `addr`: the stream is writable (poll) once connected, and
/// `take_error` then tells whether it failed.
pub fn connect_nonblocking(addr: SocketAddrV4) -> std::io::Result<TcpStream> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match connect(fd.as_raw_fd(), &SockaddrIn::from(addr)) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => Ok(TcpStream::from(fd)),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking UDP socket connected to `addr` (one per client flow of the UDP proxy, so
/// the container's replies come back on it and nothing else does).
pub fn udp_connected(addr: SocketAddrV4) -> std::io::Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr};

    #[test]
    fn v6_listener_beside_v4_and_busy_port() {
        if !ipv6_available() {
            return;
        }
        let v4 = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let p = PublishedPort {
            container_id: "x".into(),
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port: port,
            container_ip: Ipv4Addr::LOCALHOST,
            container_port: 1,
            protocol: Protocol::Tcp,
        };
        assert!(wants_ipv6_proxy(&p));
        let l = bind_ipv6_proxy(&p).expect("v6only beside the v4 socket");
        let e = bind_ipv6_proxy(&p).unwrap_err();
        assert!(matches!(e, NetworkError::PortInUse { .. }), "{e}");
        assert!(e.to_string().contains(&format!("[::]:{port}/tcp")), "{e}");
        drop(l);
    }

    #[test]
    fn nonblocking_connect_completes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(a) = l.local_addr().unwrap() else { unreachable!() };
        let mut s = connect_nonblocking(a).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        s.set_nonblocking(false).unwrap();
        assert!(s.take_error().unwrap().is_none());
        s.write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        peer.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
    }

    #[test]
    fn udp_socket_addresses_and_unavailable_host_address() {
        assert_eq!(canonical_host_ip(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical_host_ip(Some(mapped)), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(bracketed("::1".parse().unwrap()), "[::1]");
        assert_eq!(bracketed("10.0.0.1".parse().unwrap()), "10.0.0.1");
        if !ipv6_available() {
            return;
        }
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(target) = echo.local_addr().unwrap() else { unreachable!() };
        let p = |ip: &str, port| PublishedPort {
            container_id: "x".into(),
            host_ip: ip.parse().unwrap(),
            host_port: port,
            container_ip: *target.ip(),
            container_port: target.port(),
            protocol: Protocol::Udp,
        };
        let s = bind_ipv6_udp_proxy(&p("::1", 0)).expect("bind [::1]:0/udp");
        let port = s.socket.local_addr().unwrap().port();
        // Taken: the same port again (no SO_REUSEADDR for UDP).
        let e = bind_ipv6_udp_proxy(&p("::1", port)).unwrap_err();
        assert!(e.to_string().contains(&format!("[::1]:{port}/udp")), "{e}");
        // An address the host doesn't have (documentation prefix): its own sentence.
        let e = bind_ipv6_udp_proxy(&p("2001:db8::1", port)).unwrap_err();
        assert!(matches!(e, NetworkError::HostAddressUnavailable { .. }), "{e}");
        assert!(
            e.to_string().contains("2001:db8::1") && e.to_string().contains(&format!("{port}/udp")),
            "{e}"
        );
        let up = udp_connected(target).unwrap();
        up.send(b"hi").unwrap();
        let mut b = [0u8; 2];
        let (n, _) = echo.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"hi");
    }
}
