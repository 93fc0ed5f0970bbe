//! Sockets for the IPv6 userland proxy of published TCP ports.
//!
//! Published ports are DNAT rules in `table ip berth`, which IPv6 traffic never meets (the
//! containers have IPv4 addresses only). Like docker's userland proxy, the container monitor
//! listens on `[::]:PORT` and relays each connection to the container's IPv4 address. This
//! module only makes the sockets; the relaying lives in the monitor's poll loop.

use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, connect, listen,
    setsockopt, socket, sockopt,
};

use crate::{NetworkError, Protocol, PublishedPort, Result};

/// A listening `[::]:PORT` socket whose connections go to `target` (the container's address
/// and port).
#[derive(Debug)]
pub struct ProxyListener {
    /// Non-blocking, IPv6 only.
    pub listener: TcpListener,
    /// Where accepted connections are relayed to.
    pub target: SocketAddrV4,
}

/// Whether the host has IPv6 (`[::1]` can be bound).
pub fn ipv6_available() -> bool {
    TcpListener::bind(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0)).is_ok()
}

/// Whether `p` gets an IPv6 proxy listener: TCP published on every address, as docker does.
pub fn wants_ipv6_proxy(p: &PublishedPort) -> bool {
    p.protocol == Protocol::Tcp && p.host_ip.is_unspecified()
}

/// Binds `[::]:p.host_port` (IPV6_V6ONLY, so the IPv4 reservation of the same port is no
/// conflict), non-blocking, listening, relaying to the container's address of `p`.
pub fn bind_ipv6_proxy(p: &PublishedPort) -> Result<ProxyListener> {
    let err = |e: nix::errno::Errno| NetworkError::PortInUse {
        network: String::from("-"),
        host_ip: String::from("[::]"),
        port: p.host_port,
        protocol: p.protocol.as_str().to_string(),
        detail: format!(" ({})", std::io::Error::from(e)),
    };
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err)?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(err)?;
    // As std's TcpListener: a port in TIME_WAIT may be bound again at once.
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err)?;
    let addr = SockaddrIn6::from(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, p.host_port, 0, 0));
    bind(fd.as_raw_fd(), &addr).map_err(err)?;
    listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN)).map_err(err)?;
    Ok(ProxyListener {
        listener: TcpListener::from(fd),
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
            host_ip: Ipv4Addr::UNSPECIFIED,
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
}
