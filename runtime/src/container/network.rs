//! Bridge networking for containers: attaching a new container's network namespace from the launcher's
//! `pre_start` hook (veths, addresses, DNS names, published ports, resolv.conf and hosts),
//! detaching on exit, and the `NetworkSettings` that inspect shows.
//!
//! Everything kernel-side is done by `berth_network`; this module only decides what to ask
//! for, in which order, and undoes a partial attach so a failed start leaves nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use berth_launch::{LaunchSpec, Stdio};
use berth_network::{
    EndpointConfig, Networks, PortMapping, PortReservation, Protocol, PublishedPort,
};
use berth_store::StateRoot;

use super::ContainerError;
use super::api::{EndpointRequest, NetworkSettings, PortBinding, PortSummary};
use super::record::Loaded;
use super::record::{ContainerPaths, ContainerRecord};
use super::rt::Started;
use crate::monitor_protocol::{BoundSocket, ProxySockets};

/// Why a container's network settings are refused or its networks could not be set up; each
/// displays as one sentence naming the port, network, link or file.
#[derive(Debug, thiserror::Error)]
pub enum NetAttachError {
    /// From the network library (names the network, address or port).
    #[error(transparent)]
    Network(#[from] berth_network::NetworkError),
    /// A port key of `PortBindings` or `ExposedPorts` that doesn't parse.
    #[error("{0}")]
    Port(String),
    /// A link that doesn't parse.
    #[error("invalid link {0:?}: expected NAME or NAME:ALIAS")]
    Link(String),
    /// No port of a host port range is free.
    #[error("network {net}: no free host port in {first}-{last} for {port}/{protocol}")]
    NoFreePort {
        /// The network the port is published on.
        net: String,
        /// The range's first port.
        first: u16,
        /// The range's last port.
        last: u16,
        /// The container port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: &'static str,
    },
    /// Ports are asked for, but every network of the container is internal.
    #[error("container {0}: ports cannot be published on internal networks only")]
    InternalOnly(String),
    /// The container whose namespace `container:X` joins can't be used.
    #[error(transparent)]
    Container(#[from] Box<ContainerError>),
    /// The container whose namespace `container:X` joins doesn't run.
    #[error("cannot join network namespace of container {0}: container is not running")]
    NotRunning(String),
    /// The mark a `container:X` joiner leaves in X's directory could not be made.
    #[error("cannot join network namespace of container {target}: {source}")]
    Join {
        /// X.
        target: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file the container bind-mounts could not be written.
    #[error("write {}: {source}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The record could not be read.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// No `berth` executable to start the DNS server with.
    #[error("find current executable: {0}")]
    Exe(std::io::Error),
    /// The launcher failed (in the `pre_start` hook: the attach's own error is inside).
    #[error(transparent)]
    Launch(#[from] berth_launch::LaunchError),
}

/// Name of the default network (`--network bridge`), created on demand like docker's.
pub const DEFAULT_BRIDGE: &str = "bridge";

/// What the monitor holds while the container runs: the published ports' reservations and
/// the IPv6 sockets of the userland proxy (TCP listeners, UDP sockets) until the monitor's
/// relay takes them over (`NetHold::take_proxies`).
#[derive(Debug, Default)]
pub struct NetHold {
    /// Each IPv4 binding with its reservation; a cell so the monitor can follow a live
    /// `network connect`/`disconnect` (`resync`) through a shared reference.
    reservations: std::cell::RefCell<Vec<(PublishedPort, PortReservation)>>,
    proxies: std::cell::RefCell<ProxySockets>,
    attached: bool,
    /// This container's directory, where `container:` joiners of its namespace leave marks.
    dir: Option<std::path::PathBuf>,
    /// The mark this container (a `container:` joiner) left in its target's directory.
    joined: Option<std::path::PathBuf>,
}

/// Prefix of the marks `container:X` joiners leave in X's directory while they run: X's
/// namespace outlives X then, so X's veths must be deleted, not left to the namespace's end.
const JOINER_MARK: &str = "netns-joined-by-";

/// True when a running `container:` joiner may still use the namespace of the container
/// whose directory is `dir`.
fn has_joiners(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(JOINER_MARK)))
}

impl NetHold {
    /// Hands the IPv6 proxy sockets to the monitor's relay (which then owns them, so a resync
    /// can add and close sockets while it runs).
    pub fn take_proxies(&self) -> ProxySockets {
        std::mem::take(&mut *self.proxies.borrow_mut())
    }

    fn clear(&mut self) {
        self.reservations.get_mut().clear();
        *self.proxies.get_mut() = ProxySockets::default();
    }
}

/// Whether `mode` attaches berth bridge networks (`bridge` or a network name).
pub fn is_bridge_mode(mode: &str) -> bool {
    !matches!(mode, "" | "none" | "host" | "default") && !mode.starts_with("container:")
}

/// The networks a container joins, highest priority first (the network mode's own first among
/// equals), each with its request.
pub fn endpoints_of(rec: &ContainerRecord) -> Vec<(String, EndpointRequest)> {
    let mode = rec.host_config.network_mode.as_str();
    let eps = &rec.networking_config.endpoints_config;
    let mut out: Vec<(String, EndpointRequest)> = Vec::new();
    if is_bridge_mode(mode) {
        out.push((mode.to_string(), eps.get(mode).cloned().unwrap_or_default()));
    }
    if mode != "none" && mode != "host" && !mode.starts_with("container:") {
        for (n, r) in eps {
            if n != mode {
                out.push((n.clone(), r.clone()));
            }
        }
    }
    // Stable: equal priorities keep the order above.
    out.sort_by_key(|(_, r)| -r.gw_priority);
    out
}

fn net_err(e: berth_network::NetworkError) -> ContainerError {
    ContainerError::Invalid(e.to_string())
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
fn port_requests(rec: &ContainerRecord) -> Result<Vec<(PortMapping, u16)>, NetAttachError> {
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
fn publish_one(
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
fn publish_held(
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
fn hold_proxy(p: &PublishedPort, hold: &mut NetHold) -> berth_network::Result<()> {
    match p.protocol {
        Protocol::Tcp => hold.proxies.get_mut().tcp.push(berth_network::bind_ipv6_proxy(p)?),
        Protocol::Udp => hold.proxies.get_mut().udp.push(berth_network::bind_ipv6_udp_proxy(p)?),
    }
    Ok(())
}

/// Checks a create request's network settings (networks exist, addresses parse, ports parse);
/// creates the default `bridge` network when it is asked for and missing.
pub(crate) fn check_create(root: &StateRoot, rec: &ContainerRecord) -> Result<(), ContainerError> {
    let mode = rec.host_config.network_mode.as_str();
    port_mappings(rec).map_err(|e| ContainerError::Invalid(e.to_string()))?;
    if !rec.host_config.links.is_empty() {
        if mode == "host" || mode.starts_with("container:") {
            return Err(ContainerError::Invalid(format!(
                "links cannot be used with network mode {mode:?}"
            )));
        }
        parse_links(&rec.host_config.links).map_err(|e| ContainerError::Invalid(e.to_string()))?;
    }
    if let Some(target) = mode.strip_prefix("container:") {
        if target.is_empty() {
            return Err(ContainerError::Invalid("network mode container: needs a name".into()));
        }
        // Like docker, the container must exist at create (it must run only at start): the
        // caller looks it up.
        return Ok(());
    }
    if !is_bridge_mode(mode) {
        if !rec.host_config.port_bindings.is_empty() && mode == "host" {
            tracing::warn!("published ports are discarded when using host network mode");
        }
        return Ok(());
    }
    let nets = Networks::open(root.path()).map_err(net_err)?;
    for (net, req) in endpoints_of(rec) {
        if net == DEFAULT_BRIDGE {
            ensure_default_bridge(&nets).map_err(net_err)?;
        }
        nets.state(&net).map_err(net_err)?;
        if let Some(ip) = req.ipam_config.as_ref().map(|c| c.ipv4_address.as_str())
            && !ip.is_empty()
            && ip.parse::<Ipv4Addr>().is_err()
        {
            return Err(ContainerError::Invalid(format!(
                "invalid IPv4 address {ip:?} for network {net}"
            )));
        }
    }
    for d in &rec.host_config.dns {
        d.parse::<IpAddr>()
            .map_err(|_| ContainerError::Invalid(format!("invalid DNS server address {d:?}")))?;
    }
    Ok(())
}

/// Parses links (`NAME[:ALIAS]`, or docker's stored `/NAME:/LINKER/ALIAS`) into
/// (alias, target container name) pairs; the alias defaults to the name.
pub fn parse_links(links: &[String]) -> Result<Vec<(String, String)>, NetAttachError> {
    links
        .iter()
        .map(|l| {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let name = name.trim_start_matches('/');
            // `/linker/alias` keeps only its last part.
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let ok = |x: &str| {
                !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            };
            if ok(name) && ok(alias) {
                Ok((alias.to_string(), name.to_string()))
            } else {
                Err(NetAttachError::Link(l.clone()))
            }
        })
        .collect()
}

/// Creates the default `bridge` network unless it exists.
pub fn ensure_default_bridge(nets: &Networks) -> berth_network::Result<()> {
    if nets.state(DEFAULT_BRIDGE).is_ok() {
        return Ok(());
    }
    let req = berth_network::NetworkCreate {
        name: DEFAULT_BRIDGE.into(),
        driver: Some("bridge".into()),
        ..Default::default()
    };
    match nets.create(req) {
        Ok(_) | Err(berth_network::NetworkError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// DNS names of a container on a network: hostname, the compose service name and
/// `{service}-{n}`, and the endpoint's aliases (the container name is registered anyway).
fn dns_aliases(rec: &ContainerRecord, req: &EndpointRequest) -> Vec<String> {
    let mut names = Vec::new();
    let labels = &rec.config.labels;
    if let Some(svc) = labels.get("com.docker.compose.service") {
        names.push(svc.clone());
        if let Some(n) = labels.get("com.docker.compose.container-number") {
            names.push(format!("{svc}-{n}"));
        }
    }
    if !rec.config.hostname.is_empty() {
        names.push(rec.config.hostname.clone());
    }
    names.extend(req.aliases.iter().cloned());
    names.retain(|n| !n.is_empty() && *n != rec.name);
    names.dedup();
    names
}

/// The index of the next free `ethN` in the container's namespace.
fn next_ifname(nets: &Networks, id: &str) -> String {
    let used: Vec<String> = nets
        .states()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.endpoints.get(id).map(|e| e.endpoint.ifname.clone()))
        .collect();
    (0..).map(|i| format!("eth{i}")).find(|n| !used.contains(n)).unwrap_or_else(|| "eth0".into())
}

/// Connects the container (namespace of `pid`) to one network.
pub(crate) fn connect_one(
    nets: &Networks,
    rec: &ContainerRecord,
    net: &str,
    req: &EndpointRequest,
    pid: i32,
) -> berth_network::Result<berth_network::Endpoint> {
    let ipv4_address =
        req.ipam_config.as_ref().and_then(|c| c.ipv4_address.parse::<Ipv4Addr>().ok());
    let cfg = EndpointConfig {
        container_id: rec.id.clone(),
        name: rec.name.clone(),
        aliases: dns_aliases(rec, req),
        ipv4_address,
        ipv6_address: req.ipam_config.as_ref().and_then(|c| c.ipv6_address.parse().ok()),
        mac_address: (!req.mac_address.is_empty()).then(|| req.mac_address.clone()),
        interface_name: next_ifname(nets, &rec.id),
        priority: req.gw_priority,
        dns_servers: rec.host_config.dns.iter().filter_map(|d| d.parse().ok()).collect(),
        links: parse_links(&rec.host_config.links).unwrap_or_default(),
    };
    nets.connect(net, Path::new(&format!("/proc/{pid}/ns/net")), cfg)
}

/// The container's live endpoints, by network name, in connection order (`eth0` first).
fn live_endpoints(nets: &Networks, id: &str) -> Vec<(String, berth_network::Endpoint, bool)> {
    let mut out: Vec<(String, berth_network::Endpoint, bool)> = nets
        .states()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| {
            let internal = s.network.internal;
            s.endpoints.get(id).map(|e| (s.network.name.clone(), e.endpoint.clone(), internal))
        })
        .collect();
    out.sort_by_key(|(_, e, _)| {
        e.ifname.trim_start_matches("eth").parse::<u32>().unwrap_or(u32::MAX)
    });
    out
}

/// Publishes the container's port bindings on network `net` (endpoint address `ip`).
/// Stops at the first failure and returns it; what was published stays (the caller undoes).
fn publish_all(
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

/// After a running container was connected to `net` (endpoint `ep`): its hosts file gets the
/// new address (rewritten whole when this is its first network, with resolv.conf pointing at
/// the new gateway), and its port bindings are published when this is its first non-internal
/// network. On error the caller disconnects `net` again (which drops any rule made here).
pub(crate) fn live_connected(
    nets: &Networks,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    net: &str,
    ep: &berth_network::Endpoint,
) -> Result<(), NetAttachError> {
    let live = live_endpoints(nets, &rec.id);
    let others: Vec<_> = live.iter().filter(|(n, _, _)| n != net).collect();
    let internal = live.iter().any(|(n, _, i)| n == net && *i);
    if others.is_empty() {
        write_first_network_files(rec, paths, ep)?;
    } else {
        // Like docker: one more `address hostname` line per network.
        let mut text = std::fs::read_to_string(paths.hosts()).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{}\t{}\n", ep.ip, rec.config.hostname));
        write_in_place(&paths.hosts(), &text)?;
    }
    let published = nets.published_ports(&rec.id)?;
    if !internal && published.is_empty() {
        publish_all(nets, rec, net, ep.ip)?;
    }
    Ok(())
}

/// After a running container (namespace of `pid`) left `net`, where it had `old` (address
/// `old.ip`): that address leaves its hosts file; when it stays on other networks, resolv.conf
/// names the first one's gateway if it named the old one, the port bindings move to the first
/// remaining non-internal network if they were on `net`, and that network's gateway takes the
/// default route if `net` held it.
pub(crate) fn live_disconnected(
    nets: &Networks,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    pid: i32,
    old: &berth_network::Endpoint,
) -> Result<(), NetAttachError> {
    let text = std::fs::read_to_string(paths.hosts()).unwrap_or_default();
    let prefix = format!("{}\t", old.ip);
    let kept: String =
        text.lines().filter(|l| !l.starts_with(&prefix)).map(|l| format!("{l}\n")).collect();
    if kept != text {
        write_in_place(&paths.hosts(), &kept)?;
    }
    let live = live_endpoints(nets, &rec.id);
    let Some((_, first, _)) = live.first() else { return Ok(()) };
    let resolv = std::fs::read_to_string(paths.resolv_conf()).unwrap_or_default();
    let old_ns = format!("nameserver {}", old.gateway);
    if resolv.lines().any(|l| l.trim() == old_ns) {
        let new_ns = format!("nameserver {}", first.gateway);
        let text: String = resolv
            .lines()
            .map(|l| if l.trim() == old_ns { new_ns.clone() } else { l.to_string() })
            .map(|l| format!("{l}\n"))
            .collect();
        write_in_place(&paths.resolv_conf(), &text)?;
    }
    let outer = live.iter().find(|(_, _, internal)| !internal);
    if let Some((net, ep, _)) = outer {
        if old.default_route {
            nets.take_default_route(net, &rec.id, Path::new(&format!("/proc/{pid}/ns/net")))?;
        }
        let published = nets.published_ports(&rec.id)?;
        if published.is_empty() {
            publish_all(nets, rec, net, ep.ip)?;
        }
    }
    Ok(())
}

/// Makes sure the per-root DNS server answers on each of `gateways` before a container is
/// handed its network (see `berth_network::dns::ensure_serving`): starts it (`berth --root R
/// __dns`, with `exe` the berth binary; None: the `berth` that started this monitor, else the
/// current executable) when none runs.
pub(crate) fn ensure_dns(
    root: &Path,
    exe: Option<&Path>,
    gateways: &[Ipv4Addr],
) -> Result<(), NetAttachError> {
    let exe = match exe {
        Some(e) => e.to_path_buf(),
        None => match crate::monitor_protocol::berth_exe() {
            Some(e) => e.to_path_buf(),
            None => crate::sealed_exe::original_exe().map_err(NetAttachError::Exe)?,
        },
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(root).arg("__dns");
    Ok(berth_network::dns::ensure_serving(root, cmd, gateways)?)
}

/// Attaches every network of `rec` to the namespace of `pid`, publishes its ports and writes
/// its resolv.conf and hosts. On error everything attached so far is detached again.
fn attach(
    root: &StateRoot,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    pid: i32,
    hold: &mut NetHold,
) -> Result<(), NetAttachError> {
    let eps = endpoints_of(rec);
    if eps.is_empty() {
        return Ok(());
    }
    let nets = Networks::open(root.path())?;
    hold.attached = true;
    hold.dir = Some(paths.dir.clone());
    let res = attach_inner(&nets, root, rec, paths, pid, &eps, hold);
    if res.is_err() {
        hold.clear();
        let _ = nets.disconnect_all(&rec.id);
        hold.attached = false;
    }
    res
}

fn attach_inner(
    nets: &Networks,
    root: &StateRoot,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    pid: i32,
    eps: &[(String, EndpointRequest)],
    hold: &mut NetHold,
) -> Result<(), NetAttachError> {
    let mut first: Option<berth_network::Endpoint> = None;
    let mut publish_on: Option<(String, Ipv4Addr)> = None;
    let mut gateways = Vec::new();
    for (net, req) in eps {
        if net == DEFAULT_BRIDGE {
            ensure_default_bridge(nets)?;
        }
        let ep = match connect_one(nets, rec, net, req, pid) {
            // Left by an earlier start of this container that died before recording it (its
            // monitor killed mid-start): the start lock is held and no monitor of it lives,
            // so that endpoint is stale. Drop it and connect again.
            Err(berth_network::NetworkError::AlreadyConnected { .. }) => {
                tracing::info!(container = %rec.name, network = %net, "replacing a stale endpoint");
                nets.disconnect(net, &rec.id)?;
                connect_one(nets, rec, net, req, pid)
            }
            r => r,
        }?;
        gateways.push(ep.gateway);
        crate::monitor_protocol::test_pause("after-network");
        let internal = nets.state(net).map(|s| s.network.internal).unwrap_or(false);
        if publish_on.is_none() && !internal {
            publish_on = Some((net.clone(), ep.ip));
        }
        if first.is_none() {
            first = Some(ep);
        }
    }
    let mappings = port_requests(rec)?;
    if !mappings.is_empty() {
        let Some((net, ip)) = &publish_on else {
            return Err(NetAttachError::InternalOnly(rec.name.clone()));
        };
        let ipv6 = berth_network::ipv6_available();
        for (m, last) in mappings {
            publish_held(nets, net, &rec.id, *ip, m, last, ipv6, hold)?;
        }
    }
    if let Some(ep) = &first {
        write_first_network_files(rec, paths, ep)?;
        ensure_dns(root.path(), None, &gateways)?;
    }
    Ok(())
}

/// Without a network, `Dns*` and `ExtraHosts` still shape resolv.conf and hosts (as docker).
fn none_mode_files(rec: &ContainerRecord, paths: &ContainerPaths) -> Result<(), NetAttachError> {
    let hc = &rec.host_config;
    if !(hc.dns.is_empty() && hc.dns_search.is_empty() && hc.dns_options.is_empty()) {
        let dns: Vec<IpAddr> = hc.dns.iter().filter_map(|d| d.parse().ok()).collect();
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let text = berth_network::files::resolv_conf(
            None,
            &dns,
            &hc.dns_search,
            &hc.dns_options,
            &host_resolv,
        );
        write_in_place(&paths.resolv_conf(), &text)?;
    }
    if !hc.extra_hosts.is_empty() {
        let text = berth_network::files::hosts(&rec.config.hostname, None, &hc.extra_hosts, None)?;
        write_in_place(&paths.hosts(), &text)?;
    }
    Ok(())
}

/// resolv.conf (the gateway's DNS server first) and hosts (the container's address on it) for
/// a container whose first network is the one of `ep`.
fn write_first_network_files(
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    ep: &berth_network::Endpoint,
) -> Result<(), NetAttachError> {
    let hc = &rec.host_config;
    let dns: Vec<IpAddr> = hc.dns.iter().filter_map(|d| d.parse().ok()).collect();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = berth_network::files::resolv_conf(
        Some(ep.gateway),
        &dns,
        &hc.dns_search,
        &hc.dns_options,
        &host_resolv,
    );
    let hosts = berth_network::files::hosts(
        &rec.config.hostname,
        Some(ep.ip),
        &hc.extra_hosts,
        Some(ep.gateway),
    )?;
    // Written in place (same inode): the container bind-mounts these files.
    write_in_place(&paths.resolv_conf(), &resolv)?;
    write_in_place(&paths.hosts(), &hosts)
}

/// Rewrites a file the container bind-mounts, keeping its inode (see [`crate::fsutil`]).
fn write_in_place(path: &Path, text: &str) -> Result<(), NetAttachError> {
    crate::fsutil::write_in_place(path, text.as_bytes(), false)
        .map_err(|source| NetAttachError::Write { path: path.to_path_buf(), source })
}

/// The pid and paths of the running container `key` whose namespace `container:key` joins.
fn running_pid(root: &StateRoot, key: &str) -> Result<(i32, ContainerPaths), NetAttachError> {
    let l = crate::Engine::on_root(root.clone()).load(key).map_err(Box::new)?;
    if !l.st.state.running || l.st.state.pid <= 0 {
        return Err(NetAttachError::NotRunning(key.to_string()));
    }
    Ok((l.st.state.pid as i32, l.paths))
}

/// Spawns the container with its networks: `container:X` joins X's namespace; bridge modes are
/// attached from the launcher's `pre_start` hook, so the network is up before the entrypoint
/// runs. The returned hold must be kept while the container runs and passed to [`detach`].
pub(crate) fn spawn(
    root: &StateRoot,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    mut spec: LaunchSpec,
    stdio: Stdio,
) -> Result<(Started, NetHold), NetAttachError> {
    let mut hold = NetHold::default();
    if let Some(target) = rec.host_config.network_mode.strip_prefix("container:") {
        let (pid, other) = running_pid(root, target)?;
        let mark = other.dir.join(format!("{JOINER_MARK}{}", rec.id));
        std::fs::write(&mark, b"")
            .map_err(|source| NetAttachError::Join { target: target.to_string(), source })?;
        hold.joined = Some(mark);
        let ns_path = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
        if let Some(linux) = spec.oci.linux_mut().as_mut()
            && let Some(nss) = linux.namespaces_mut().as_mut()
        {
            for ns in nss.iter_mut() {
                if ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network {
                    ns.set_path(Some(ns_path.clone()));
                }
            }
        }
        // Share the other container's name resolution like docker does.
        for (from, to) in
            [(other.resolv_conf(), paths.resolv_conf()), (other.hosts(), paths.hosts())]
        {
            if let Ok(text) = std::fs::read_to_string(&from) {
                let _ = write_in_place(&to, &text);
            }
        }
    }
    if rec.host_config.network_mode == "none" {
        none_mode_files(rec, paths)?;
    }
    let res =
        // The launcher's hook reports a failure as text, which it shows as it is.
        berth_launch::spawn(&spec, stdio, |pid| {
            attach(root, rec, paths, pid.as_raw(), &mut hold).map_err(|e| e.to_string())
        });
    match res {
        Ok(s) => Ok((Started { pid: s.pid.as_raw(), cgroup: s.cgroup.path().to_string() }, hold)),
        Err(e) => {
            let attached = hold.attached;
            if let Some(mark) = hold.joined.take() {
                let _ = std::fs::remove_file(mark);
            }
            drop(hold);
            // The process may not be gone yet: delete its veths rather than leave them.
            if attached {
                release(root, &rec.id);
            }
            Err(e.into())
        }
    }
}

/// Makes what the monitor holds follow the ports now published for `id` (after a live
/// `network connect`/`disconnect`, which pokes the monitor): reserves each IPv4 binding it
/// does not hold yet and lets go of those no longer published; closes the proxy sockets in
/// `bound` whose IPv6 binding is gone or relays elsewhere now, and makes the IPv6 bindings the
/// container asks for that a live connect could not make (the `[::]` one of a port on every
/// address, explicit IPv6 host addresses) on the network its ports are published on. Best
/// effort: a binding that can't be made is logged and left out. `close` is called with the
/// sockets to close before any new one is bound (a moved binding may keep its port); the new
/// sockets are returned.
pub(crate) fn resync(
    root: &StateRoot,
    id: &str,
    hold: &NetHold,
    bound: &[BoundSocket],
    close: &mut dyn FnMut(&[BoundSocket]),
) -> ProxySockets {
    // A stop or a forced removal pokes the monitor too (to cancel a pending restart), and then
    // nothing has changed: this finds everything in place. (`manual_stop` can't tell the
    // cases apart: a start does not clear it.)
    let Ok(nets) = Networks::open(root.path()) else { return ProxySockets::default() };
    let Ok(published) = nets.published_ports(id) else { return ProxySockets::default() };
    let same = |a: &PublishedPort, b: &PublishedPort| {
        a.protocol == b.protocol && a.host_ip == b.host_ip && a.host_port == b.host_port
    };
    {
        let mut held = hold.reservations.borrow_mut();
        held.retain(|(p, _)| published.iter().any(|q| same(p, q)));
        for p in published.iter().filter(|p| !p.is_ipv6()) {
            if !held.iter().any(|(q, _)| same(p, q))
                && let Ok(r) = berth_network::reserve_port(p)
            {
                held.push((p.clone(), r));
            }
        }
    }
    let serves = |b: &BoundSocket, p: &PublishedPort| {
        b.protocol == p.protocol
            && b.local.ip() == p.host_ip
            && b.local.port() == p.host_port
            && b.target == std::net::SocketAddrV4::new(p.container_ip, p.container_port)
    };
    let gone: Vec<BoundSocket> = bound
        .iter()
        .filter(|b| !published.iter().any(|p| p.is_ipv6() && serves(b, p)))
        .cloned()
        .collect();
    if !gone.is_empty() {
        close(&gone);
    }
    let kept: Vec<BoundSocket> = bound.iter().filter(|b| !gone.contains(b)).cloned().collect();
    add_missing_ipv6(&nets, root, id, &published, &kept).unwrap_or_else(|e| {
        tracing::warn!(container = id, "IPv6 bindings after a live network change: {e}");
        ProxySockets::default()
    })
}

/// The IPv6 half of [`resync`]: binds the IPv6 bindings of `id` that have no record (or a
/// record no socket in `bound` serves) and returns their sockets.
fn add_missing_ipv6(
    nets: &Networks,
    root: &StateRoot,
    id: &str,
    published: &[PublishedPort],
    bound: &[BoundSocket],
) -> Result<ProxySockets, NetAttachError> {
    let none = Ok(ProxySockets::default());
    let paths = ContainerPaths::new(root, id);
    let Some(rec) = paths.read_config()? else { return none };
    let live = live_endpoints(nets, id);
    let Some((net, ep, _)) = live.iter().find(|(_, _, internal)| !internal) else { return none };
    if !berth_network::ipv6_available() {
        return none;
    }
    let kept = |p: &PublishedPort| {
        bound.iter().any(|b| {
            b.protocol == p.protocol && b.local.ip() == p.host_ip && b.local.port() == p.host_port
        })
    };
    let mut tmp = NetHold::default();
    let warn = |what: String, e: NetAttachError| {
        tracing::warn!(container = id, "IPv6 binding of {what}: {e}");
    };
    // The `[::]` companion of each IPv4 binding on every address, on the same port.
    let v6any: IpAddr = Ipv6Addr::UNSPECIFIED.into();
    for v4 in published.iter().filter(|p| !p.is_ipv6() && p.host_ip.is_unspecified()) {
        let recorded = published.iter().find(|p| {
            p.host_ip == v6any && p.protocol == v4.protocol && p.host_port == v4.host_port
        });
        let res = match recorded {
            Some(p) if kept(p) => continue,
            // A record nothing serves (its socket relayed to an old address): again.
            Some(p) => nets.unpublish(net, p).map_err(NetAttachError::from),
            None => Ok(()),
        }
        .and_then(|()| {
            let m6 = PortMapping {
                host_ip: Some(v6any),
                host_port: v4.host_port,
                container_port: v4.container_port,
                protocol: v4.protocol,
            };
            let p6 = nets.publish(net, id, v4.container_ip, m6)?;
            hold_proxy(&p6, &mut tmp).map_err(|e| {
                let _ = nets.unpublish(net, &p6);
                NetAttachError::from(e)
            })
        });
        if let Err(e) = res {
            warn(v4.host_addr(), e);
        }
    }
    // Explicit IPv6 host addresses of `PortBindings`; each record serves one mapping.
    let mut claimed: Vec<&PublishedPort> = Vec::new();
    for (m, last) in port_requests(&rec)? {
        let host_ip = berth_network::proxy_socket::canonical_host_ip(m.host_ip);
        if !host_ip.is_ipv6() {
            continue;
        }
        let fits = |p: &PublishedPort| {
            p.host_ip == host_ip
                && p.protocol == m.protocol
                && p.container_port == m.container_port
                && (m.host_port == 0
                    || (m.host_port..=last.max(m.host_port)).contains(&p.host_port))
                && !claimed.iter().any(|c| std::ptr::eq(*c, p))
        };
        let recorded = published.iter().find(|p| fits(p));
        if let Some(p) = recorded {
            claimed.push(p);
        }
        let res = match recorded {
            Some(p) if kept(p) => continue,
            Some(p) => nets.unpublish(net, p).map_err(NetAttachError::from),
            None => Ok(()),
        }
        .and_then(|()| publish_held(nets, net, id, ep.ip, m.clone(), last, true, &mut tmp));
        if let Err(e) = res {
            warn(format!("{}/{}", m.container_port, m.protocol.as_str()), e);
        }
    }
    Ok(tmp.take_proxies())
}

/// Detaches the exited container from every network (addresses, DNS names, port rules) and
/// releases its port reservations. Its veths die with its network namespace in the kernel's
/// namespace cleanup, which nobody waits for; deleting them here made the monitor, and so
/// `stop` and `down`, wait 20-40 ms of RCU grace periods each. Only while a `container:`
/// joiner keeps the namespace alive are they deleted here. Best effort: a failure is logged.
pub(crate) fn detach(root: &StateRoot, id: &str, mut hold: NetHold) {
    if let Some(mark) = hold.joined.take() {
        let _ = std::fs::remove_file(mark);
    }
    let attached = hold.attached;
    let shared = hold.dir.as_deref().is_some_and(has_joiners);
    drop(hold);
    if !attached {
        return release(root, id);
    }
    let Ok(nets) = Networks::open(root.path()) else { return };
    let r = if shared { nets.disconnect_all(id) } else { nets.disconnect_exited(id) };
    if let Err(e) = r {
        tracing::warn!(container = id, "disconnecting: {e}");
    }
}

/// Removes whatever network state `id` still has (used by remove, after a monitor died).
pub(crate) fn release(root: &StateRoot, id: &str) {
    let Ok(nets) = Networks::open(root.path()) else { return };
    if let Err(e) = nets.disconnect_all(id) {
        tracing::warn!(container = id, "disconnecting: {e}");
    }
}

/// After a rename, the container answers to its new name on every network it is connected to.
pub(crate) fn renamed(root: &StateRoot, rec: &ContainerRecord) {
    let Ok(nets) = Networks::open(root.path()) else { return };
    for (net, req) in endpoints_of(rec) {
        if let Ok(Some(ep)) = nets.endpoint(&net, &rec.id) {
            let mut names = vec![rec.name.clone()];
            names.extend(dns_aliases(rec, &req));
            if let Err(e) = nets.add_records(&net, &rec.id, &names, ep.ip) {
                tracing::warn!(container = %rec.name, network = %net, "renaming DNS records: {e}");
            }
        }
    }
}

/// `NetworkSettings` for inspect: the configured networks, with live values while connected.
pub(crate) fn settings(l: &Loaded) -> NetworkSettings {
    let mut out = NetworkSettings::default();
    let Some(root) = l.paths.dir.parent().and_then(|p| p.parent()) else { return out };
    let Ok(nets) = Networks::open(root) else { return out };
    let rec = &l.rec;
    let mode = rec.host_config.network_mode.as_str();
    if mode == "host" || mode == "none" {
        // docker's built-in `host`/`none` networks: an entry with ids and no addresses.
        let id = |s: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s.as_bytes()));
        let entry = berth_network::EndpointSettings {
            network_id: id(&format!("berth-network/{mode}")),
            endpoint_id: id(&format!("berth-endpoint/{mode}/{}", rec.id)),
            ..Default::default()
        };
        out.networks.insert(mode.to_string(), serde_json::to_value(entry).unwrap_or_default());
        return out;
    }
    for (net, req) in endpoints_of(rec) {
        let live = nets.endpoint_settings(&net, &rec.id).ok().flatten();
        if let Some(s) = live.as_ref().filter(|_| net == DEFAULT_BRIDGE) {
            out.ip_address = s.ip_address.clone();
            out.gateway = s.gateway.clone();
            out.ip_prefix_len = s.ip_prefix_len;
            out.mac_address = s.mac_address.clone();
        }
        let v = match live {
            Some(s) => serde_json::to_value(s).unwrap_or_default(),
            None => serde_json::json!({
                "IPAMConfig": req.ipam_config,
                "Aliases": req.aliases,
                "MacAddress": req.mac_address,
                "NetworkID": nets.state(&net).map(|s| s.network.id).unwrap_or_default(),
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            }),
        };
        out.networks.insert(net, v);
    }
    let published = nets.published_ports(&rec.id).unwrap_or_default();
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    for key in rec.host_config.port_bindings.keys() {
        let k = if key.contains('/') { key.clone() } else { format!("{key}/tcp") };
        ports.insert(k, None);
    }
    for key in rec.config.exposed_ports.iter().flat_map(|m| m.keys()) {
        ports.entry(key.clone()).or_insert(None);
    }
    for p in &published {
        let k = format!("{}/{}", p.container_port, p.protocol.as_str());
        ports.entry(k).or_insert(None).get_or_insert_with(Vec::new).push(PortBinding {
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port.to_string(),
        });
    }
    out.ports = if is_bridge_mode(&rec.host_config.network_mode) { ports } else { BTreeMap::new() };
    out
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

    #[test]
    fn link_syntax() {
        let l = |v: &[&str]| parse_links(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(l(&["web"]).unwrap(), vec![("web".to_string(), "web".to_string())]);
        assert_eq!(l(&["web:db"]).unwrap(), vec![("db".to_string(), "web".to_string())]);
        // docker's stored form
        assert_eq!(l(&["/web:/app/db"]).unwrap(), vec![("db".to_string(), "web".to_string())]);
        assert!(l(&["web:"]).is_err());
        assert!(l(&["a b"]).is_err());
    }
}
