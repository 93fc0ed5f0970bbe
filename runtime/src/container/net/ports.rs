//! Published ports: parsing `PortBindings`, publishing them on a network (a host port range
//! takes its first free port), and what the monitor holds for them while the container runs
//! (IPv4 port reservations, IPv6 proxy sockets).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_network::{Networks, PortMapping, PortReservation, Protocol, PublishedPort};
use berth_store::StateRoot;

use super::error::NetAttachError;
use crate::container::api::{PortBinding, PortSummary};
use crate::container::record::ContainerRecord;
use crate::monitor_protocol::ProxySockets;

/// What the monitor holds while the container runs: the published ports' reservations and
/// the IPv6 sockets of the userland proxy (TCP listeners, UDP sockets) until the monitor's
/// relay takes them over (`NetHold::take_proxies`).
#[derive(Debug, Default)]
pub struct NetHold {
    /// Each IPv4 binding with its reservation; a cell so the monitor can follow a live
    /// `network connect`/`disconnect` (`resync`) through a shared reference.
    pub(super) reservations: std::cell::RefCell<Vec<(PublishedPort, PortReservation)>>,
    pub(super) proxies: std::cell::RefCell<ProxySockets>,
    pub(super) attached: bool,
    /// This container's directory, where `container:` joiners of its namespace leave marks.
    pub(super) dir: Option<std::path::PathBuf>,
    /// The mark this container (a `container:` joiner) left in its target's directory.
    pub(super) joined: Option<std::path::PathBuf>,
}

impl NetHold {
    /// Hands the IPv6 proxy sockets to the monitor's relay (which then owns them, so a resync
    /// can add and close sockets while it runs).
    pub fn take_proxies(&self) -> ProxySockets {
        std::mem::take(&mut *self.proxies.borrow_mut())
    }

    pub(super) fn clear(&mut self) {
        self.reservations.get_mut().clear();
        *self.proxies.get_mut() = ProxySockets::default();
    }
}

/// Parses `80`, `80/tcp`, `53/udp` into a port and protocol.
pub fn parse_port_proto(key: &str) -> Result<(u16, Protocol), NetAttachError> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(NetAttachError::Port(format!(
                "invalid protocol {other:?} in port {key:?}"
            )));
        }
    };
    let port = p
        .parse::<u16>()
        .map_err(|_| NetAttachError::Port(format!("invalid container port {key:?}")))?;
    Ok((port, proto))
}

/// A `HostIp`: empty for every address, else an IPv4 or IPv6 address (brackets allowed).
pub fn parse_host_ip(s: &str) -> Result<Option<IpAddr>, std::net::AddrParseError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    bare.parse::<IpAddr>().map(Some)
}

/// The port mappings a host config asks for, checked.
pub fn port_mappings(rec: &ContainerRecord) -> Result<Vec<PortMapping>, NetAttachError> {
    Ok(port_requests(rec)?.into_iter().map(|(m, _)| m).collect())
}

/// The port mappings with the last host port each may use (`HostPort: "8000-8010"` takes the
/// first free one; otherwise the last equals `host_port`).
pub(super) fn port_requests(
    rec: &ContainerRecord,
) -> Result<Vec<(PortMapping, u16)>, NetAttachError> {
    let mut out: Vec<(PortMapping, u16)> = Vec::new();
    for (key, binds) in &rec.host_config.port_bindings {
        let (container_port, protocol) = parse_port_proto(key)?;
        let binds = if binds.is_empty() { vec![PortBinding::default()] } else { binds.clone() };
        for b in binds {
            let host_ip = parse_host_ip(&b.host_ip).map_err(|_| {
                NetAttachError::Port(format!("invalid host address {:?} for port {key}", b.host_ip))
            })?;
            let bad =
                || NetAttachError::Port(format!("invalid host port {:?} for {key}", b.host_port));
            let (first, last) = match b.host_port.split_once('-') {
                _ if b.host_port.is_empty() => (0, 0),
                Some((a, z)) => {
                    let (a, z) = (
                        a.parse::<u16>().map_err(|_| bad())?,
                        z.parse::<u16>().map_err(|_| bad())?,
                    );
                    if z < a {
                        return Err(bad());
                    }
                    (a, z)
                }
                None => {
                    let p = b.host_port.parse::<u16>().map_err(|_| bad())?;
                    (p, p)
                }
            };
            out.push((PortMapping { host_ip, host_port: first, container_port, protocol }, last));
        }
    }
    if rec.host_config.publish_all_ports {
        for key in rec.config.exposed_ports.iter().flat_map(|m| m.keys()) {
            let (container_port, protocol) = parse_port_proto(key)?;
            let bound = out
                .iter()
                .any(|(m, _)| m.container_port == container_port && m.protocol == protocol);
            if !bound {
                out.push((
                    PortMapping { host_ip: None, host_port: 0, container_port, protocol },
                    0,
                ));
            }
        }
    }
    Ok(out)
}

/// Publishes `m`, trying each host port up to `last` when a range was given.
pub(super) fn publish_one(
    nets: &Networks,
    net: &str,
    id: &str,
    ip: Ipv4Addr,
    m: PortMapping,
    last: u16,
) -> Result<PublishedPort, NetAttachError> {
    if last <= m.host_port {
        return Ok(nets.publish(net, id, ip, m)?);
    }
    for port in m.host_port..=last {
        match nets.publish(net, id, ip, PortMapping { host_port: port, ..m.clone() }) {
            Ok(p) => return Ok(p),
            Err(berth_network::NetworkError::PortInUse { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(NetAttachError::NoFreePort {
        net: net.to_string(),
        first: m.host_port,
        last,
        port: m.container_port,
        protocol: m.protocol.as_str(),
    })
}

/// Publishes `m` (see [`publish_one`]) and holds it: an IPv4 binding by a reservation, plus
/// (with `ipv6`, for every address) the `[::]:PORT` proxy socket recorded as a second binding;
/// an IPv6 binding by its proxy socket alone. A kernel-chosen port (0) or a range moves on to
/// another port when only the IPv6 side is taken; a fixed port fails like a taken IPv4 one.
#[allow(clippy::too_many_arguments)]
pub(super) fn publish_held(
    nets: &Networks,
    net: &str,
    id: &str,
    ip: Ipv4Addr,
    m: PortMapping,
    last: u16,
    ipv6: bool,
    hold: &mut NetHold,
) -> Result<(), NetAttachError> {
    let mut m = m;
    let mut tries = 0;
    loop {
        let p = publish_one(nets, net, id, ip, m.clone(), last)?;
        let held = if p.is_ipv6() {
            hold_proxy(&p, hold).map_err(|e| (e, vec![p.clone()]))
        } else {
            let r = berth_network::reserve_port(&p)?;
            hold.reservations.get_mut().push((p.clone(), r));
            if !(ipv6 && berth_network::wants_ipv6_proxy(&p)) {
                return Ok(());
            }
            // The `::` companion: recorded (so inspect and ps show it) and then bound.
            let m6 = PortMapping {
                host_ip: Some(Ipv6Addr::UNSPECIFIED.into()),
                host_port: p.host_port,
                ..m.clone()
            };
            match nets.publish(net, id, ip, m6) {
                Ok(p6) => hold_proxy(&p6, hold).map_err(|e| (e, vec![p6, p.clone()])),
                Err(e) => Err((e, vec![p.clone()])),
            }
        };
        let Err((e, made)) = held else { return Ok(()) };
        let fixed = m.host_port != 0 && last <= m.host_port;
        let moves_on = matches!(e, berth_network::NetworkError::PortInUse { .. });
        tries += 1;
        if fixed || !moves_on || tries >= 16 || (m.host_port != 0 && p.host_port >= last) {
            return Err(e.into());
        }
        if !p.is_ipv6() {
            hold.reservations.get_mut().pop();
        }
        for q in &made {
            nets.unpublish(net, q)?;
        }
        if m.host_port != 0 {
            m.host_port = p.host_port + 1;
        }
    }
}

/// Binds the IPv6 proxy socket of `p` (TCP listener or UDP socket) into `hold`.
pub(super) fn hold_proxy(p: &PublishedPort, hold: &mut NetHold) -> berth_network::Result<()> {
    match p.protocol {
        Protocol::Tcp => hold.proxies.get_mut().tcp.push(berth_network::bind_ipv6_proxy(p)?),
        Protocol::Udp => hold.proxies.get_mut().udp.push(berth_network::bind_ipv6_udp_proxy(p)?),
    }
    Ok(())
}

/// Publishes the container's port bindings on network `net` (endpoint address `ip`).
/// Stops at the first failure and returns it; what was published stays (the caller undoes).
pub(super) fn publish_all(
    nets: &Networks,
    rec: &ContainerRecord,
    net: &str,
    ip: Ipv4Addr,
) -> Result<Vec<PublishedPort>, NetAttachError> {
    let mut out = Vec::new();
    for (m, last) in port_requests(rec)? {
        // An IPv6 binding is served by the monitor's proxy socket alone, which only a start
        // makes: recording it here would show a port nothing answers on.
        if berth_network::proxy_socket::canonical_host_ip(m.host_ip).is_ipv6() {
            continue;
        }
        out.push(publish_one(nets, net, &rec.id, ip, m, last)?);
    }
    Ok(out)
}

/// Published ports of a container for `list` (docker's `Ports`).
pub(crate) fn port_summaries(root: &StateRoot, id: &str) -> Vec<PortSummary> {
    let Ok(nets) = Networks::open(root.path()) else { return Vec::new() };
    nets.published_ports(id).unwrap_or_default().iter().map(summary).collect()
}

fn summary(p: &PublishedPort) -> PortSummary {
    PortSummary {
        ip: p.host_ip.to_string(),
        private_port: p.container_port,
        public_port: p.host_port,
        typ: p.protocol.as_str().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::api::{EndpointRequest, PortBinding};
    use crate::container::net::settings::endpoints_of;
    use crate::container::record::ContainerRecord;
    use std::net::Ipv4Addr;

    #[test]
    fn order_and_ports() {
        let mut rec = ContainerRecord::default();
        rec.host_config.network_mode = "a".into();
        rec.networking_config
            .endpoints_config
            .insert("b".into(), EndpointRequest { gw_priority: 5, ..Default::default() });
        rec.networking_config.endpoints_config.insert("a".into(), EndpointRequest::default());
        let names: Vec<String> = endpoints_of(&rec).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["b", "a"]);
        rec.host_config.port_bindings.insert("80".into(), vec![]);
        rec.host_config.port_bindings.insert(
            "53/udp".into(),
            vec![PortBinding { host_ip: "127.0.0.1".into(), host_port: "5353".into() }],
        );
        let m = port_mappings(&rec).unwrap();
        assert_eq!(m[0].host_port, 0);
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert_eq!(m[1].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert!(parse_port_proto("80/sctp").is_err());
        rec.host_config.port_bindings.insert(
            "81".into(),
            vec![PortBinding { host_ip: String::new(), host_port: "9000-9005".into() }],
        );
        let r = port_requests(&rec).unwrap();
        assert_eq!((r[2].0.host_port, r[2].1), (9000, 9005));
        rec.host_config.network_mode = "container:x".into();
        assert!(endpoints_of(&rec).is_empty());
    }
}
