//! Published ports: DNAT mappings with their host-port checks, and the sockets that reserve a
//! published host port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use crate::error::{NetworkError, Result};
use crate::model::{PortMapping, Protocol, PublishedPort};
use crate::state::Networks;
use crate::{nft, proxy_socket, sysctl};

impl Networks {
    /// Every port published for `container_id`, on any network (for `port` / `ps`).
    pub fn published_ports(&self, container_id: &str) -> Result<Vec<PublishedPort>> {
        Ok(self
            .states()?
            .into_iter()
            .flat_map(|s| s.ports)
            .filter(|p| p.container_id == container_id)
            .collect())
    }

    /// Publishes `mapping` to `container_ip` (an endpoint of `container_id` on `network`).
    /// Returns the record with the actual host port (a free one when `host_port` is 0).
    pub fn publish(
        &self,
        network: &str,
        container_id: &str,
        container_ip: Ipv4Addr,
        mapping: PortMapping,
    ) -> Result<PublishedPort> {
        let _root = self.lock()?;
        let states = self.states()?;
        let mut st = Self::resolve_in(&states, network)?;
        let net = st.network.name.clone();
        if st.network.internal {
            return Err(NetworkError::Invalid {
                network: net,
                message: "ports cannot be published on an internal network".into(),
            });
        }
        let host_ip = proxy_socket::canonical_host_ip(mapping.host_ip);
        let proto = mapping.protocol;
        let in_use = |port: u16| -> Option<String> {
            states.iter().find_map(|s| {
                s.ports
                    .iter()
                    .find(|p| {
                        p.protocol == proto
                            && p.host_port == port
                            && p.host_ip.is_ipv4() == host_ip.is_ipv4()
                            && (p.host_ip.is_unspecified()
                                || host_ip.is_unspecified()
                                || p.host_ip == host_ip)
                    })
                    .map(|p| {
                        format!(
                            " (published for container {} on network {})",
                            p.container_id, s.network.name
                        )
                    })
            })
        };
        let port_err = |port: u16, e: std::io::Error| probe_error(&net, host_ip, port, proto, e);
        let host_port = if mapping.host_port == 0 {
            let mut found = None;
            for _ in 0..32 {
                let p = probe_port(host_ip, 0, proto).map_err(|e| port_err(0, e))?;
                if in_use(p).is_none() {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or_else(|| NetworkError::PortInUse {
                network: net.clone(),
                host_ip: proxy_socket::bracketed(host_ip),
                port: 0,
                protocol: proto.as_str().to_string(),
                detail: ": no free port found".into(),
            })?
        } else {
            if let Some(d) = in_use(mapping.host_port) {
                return Err(NetworkError::PortInUse {
                    network: net.clone(),
                    host_ip: proxy_socket::bracketed(host_ip),
                    port: mapping.host_port,
                    protocol: proto.as_str().to_string(),
                    detail: d,
                });
            }
            probe_port(host_ip, mapping.host_port, proto)
                .map_err(|e| port_err(mapping.host_port, e))?;
            mapping.host_port
        };
        let p = PublishedPort {
            container_id: container_id.to_string(),
            host_ip,
            host_port,
            container_ip,
            container_port: mapping.container_port,
            protocol: proto,
        };
        {
            let _machine = sysctl::machine_lock()?;
            nft::add_port(&st.network.id, &p)?;
        }
        st.ports.push(p.clone());
        if let Err(e) = self.save(&st) {
            let _m = sysctl::machine_lock();
            let _ = nft::remove_port(&st.network.id, &p);
            return Err(e);
        }
        Ok(p)
    }

    /// Removes a published port (matched by protocol, host address and host port).
    pub fn unpublish(&self, network: &str, port: &PublishedPort) -> Result<()> {
        let _root = self.lock()?;
        let mut st = self.state(network)?;
        let same = |p: &PublishedPort| {
            p.protocol == port.protocol
                && p.host_port == port.host_port
                && p.host_ip == port.host_ip
        };
        if let Some(p) = st.ports.iter().find(|p| same(p)).cloned() {
            let _machine = sysctl::machine_lock()?;
            nft::remove_port(&st.network.id, &p)?;
        }
        st.ports.retain(|p| !same(p));
        self.save(&st)
    }
}

/// A socket holding a published host port so no host process can bind it while the mapping
/// exists (DNAT alone does not stop that). The container monitor keeps it open; traffic still
/// goes through DNAT, which runs before local socket lookup.
#[derive(Debug)]
pub enum PortReservation {
    /// A listening TCP socket (never accepted from).
    Tcp(TcpListener),
    /// A bound UDP socket (never read).
    Udp(UdpSocket),
}

/// Binds `p.host_ip:p.host_port` for the lifetime of the returned reservation (an IPv6
/// binding is held by its proxy socket instead: see `proxy_socket`).
pub fn reserve_port(p: &PublishedPort) -> Result<PortReservation> {
    let err = |e: std::io::Error| probe_error("-", p.host_ip, p.host_port, p.protocol, e);
    let addr = SocketAddr::new(p.host_ip, p.host_port);
    match p.protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(PortReservation::Tcp).map_err(err),
        Protocol::Udp => UdpSocket::bind(addr).map(PortReservation::Udp).map_err(err),
    }
}

/// The error for a host port that could not be bound: the address is not the host's, or the
/// port is taken.
fn probe_error(
    network: &str,
    host_ip: IpAddr,
    port: u16,
    proto: Protocol,
    e: std::io::Error,
) -> NetworkError {
    let (network, protocol) = (network.to_string(), proto.as_str().to_string());
    if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT)) {
        return NetworkError::HostAddressUnavailable { network, host_ip, port, protocol };
    }
    NetworkError::PortInUse {
        network,
        host_ip: proxy_socket::bracketed(host_ip),
        port,
        protocol,
        detail: format!(" ({e})"),
    }
}

/// Checks that `host_ip:port` is free by binding it; returns the bound port (0 = kernel's pick).
/// IPv6 is bound v6-only, so the IPv4 binding of the same port is no conflict.
fn probe_port(host_ip: IpAddr, port: u16, proto: Protocol) -> std::io::Result<u16> {
    let addr = SocketAddr::new(host_ip, port);
    match (host_ip, proto) {
        (IpAddr::V6(ip), _) => proxy_socket::bind_v6only(ip, port, proto, false)
            .and_then(|fd| {
                nix::sys::socket::getsockname::<nix::sys::socket::SockaddrIn6>(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                )
                .map_err(std::io::Error::from)
            })
            .map(|a| a.port()),
        (_, Protocol::Tcp) => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        (_, Protocol::Udp) => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}
