//! Bridge networking for containers: the Docker-shaped request types (`NetworkingConfig`,
//! `PortBindings`), attaching a new container's network namespace from the launcher's
//! `pre_start` hook (veths, addresses, DNS names, published ports, resolv.conf and hosts),
//! detaching on exit, and the `NetworkSettings` that inspect shows.
//!
//! Everything kernel-side is done by `berth_network`; this module only decides what to ask
//! for, in which order, and undoes a partial attach so a failed start leaves nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use berth_network::{
    EndpointConfig, Networks, PortMapping, PortReservation, Protocol, ProxyListener, PublishedPort,
};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::api::NetworkSettings;
use super::record::{ContainerPaths, ContainerRecord};
use super::rt::Started;
use super::{ContainerError, Loaded};
use crate::launch::{LaunchSpec, Stdio};
use crate::store::StateRoot;

/// Name of the default network (`--network bridge`), created on demand like docker's.
pub const DEFAULT_BRIDGE: &str = "bridge";

/// docker's `NetworkingConfig` of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    /// Endpoint settings per network name.
    pub endpoints_config: IndexMap<String, EndpointRequest>,
}

/// What a container asks of one network (docker's `EndpointSettings` in a create request).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRequest {
    /// Network-scoped DNS aliases.
    pub aliases: Vec<String>,
    /// Static addresses.
    #[serde(rename = "IPAMConfig", skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// Static MAC address.
    pub mac_address: String,
    /// Higher connects first; the first non-internal network gets the default route.
    pub gw_priority: i32,
}

/// Static addresses of an endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EndpointIpamConfig {
    /// Static IPv4 address.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Static IPv6 address (IPv6-enabled networks).
    #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
}

/// One host binding of a published port (docker's `PortBinding`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (empty: every address).
    pub host_ip: String,
    /// Host port (empty or 0: a free one).
    pub host_port: String,
}

/// One published port as `list` reports it (docker's `Port`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortSummary {
    /// Host address.
    #[serde(rename = "IP")]
    pub ip: String,
    /// Container port.
    pub private_port: u16,
    /// Host port.
    pub public_port: u16,
    /// `tcp` or `udp`.
    #[serde(rename = "Type")]
    pub typ: String,
}

/// What the monitor holds while the container runs: the published ports' reservations and
/// the `[::]:PORT` listeners of the IPv6 proxy.
#[derive(Debug, Default)]
pub struct NetHold {
    reservations: Vec<PortReservation>,
    proxies: Vec<ProxyListener>,
    attached: bool,
}

impl NetHold {
    /// The IPv6 listeners whose connections the monitor relays to the container.
    pub fn proxy_listeners(&self) -> &[ProxyListener] {
        &self.proxies
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
pub fn parse_port_proto(key: &str) -> Result<(u16, Protocol), String> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => return Err(format!("invalid protocol {other:?} in port {key:?}")),
    };
    let port = p.parse::<u16>().map_err(|_| format!("invalid container port {key:?}"))?;
    Ok((port, proto))
}

/// The port mappings a host config asks for, checked.
pub fn port_mappings(rec: &ContainerRecord) -> Result<Vec<PortMapping>, String> {
    Ok(port_requests(rec)?.into_iter().map(|(m, _)| m).collect())
}

/// The port mappings with the last host port each may use (`HostPort: "8000-8010"` takes the
/// first free one; otherwise the last equals `host_port`).
fn port_requests(rec: &ContainerRecord) -> Result<Vec<(PortMapping, u16)>, String> {
    let mut out: Vec<(PortMapping, u16)> = Vec::new();
    for (key, binds) in &rec.host_config.port_bindings {
        let (container_port, protocol) = parse_port_proto(key)?;
        let binds = if binds.is_empty() { vec![PortBinding::default()] } else { binds.clone() };
        for b in binds {
            let host_ip = match b.host_ip.as_str() {
                "" => None,
                s => Some(s.parse::<Ipv4Addr>().map_err(|_| {
                    format!("invalid host address {s:?} for port {key} (IPv4 only)")
                })?),
            };
            let bad = || format!("invalid host port {:?} for {key}", b.host_port);
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
) -> Result<PublishedPort, String> {
    if last <= m.host_port {
        return nets.publish(net, id, ip, m).map_err(|e| e.to_string());
    }
    for port in m.host_port..=last {
        match nets.publish(net, id, ip, PortMapping { host_port: port, ..m.clone() }) {
            Ok(p) => return Ok(p),
            Err(berth_network::NetworkError::PortInUse { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "network {net}: no free host port in {}-{last} for {}/{}",
        m.host_port,
        m.container_port,
        m.protocol.as_str()
    ))
}

/// Publishes `m` (see [`publish_one`]), reserves its host port and, with `ipv6`, binds its
/// `[::]:PORT` proxy listener. A kernel-chosen port (0) or a range moves on to another port
/// when only the IPv6 side is taken; a fixed port fails like a taken IPv4 one.
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
) -> Result<(), String> {
    let mut m = m;
    let mut tries = 0;
    loop {
        let p = publish_one(nets, net, id, ip, m.clone(), last)?;
        hold.reservations.push(berth_network::reserve_port(&p).map_err(|e| e.to_string())?);
        if !(ipv6 && berth_network::wants_ipv6_proxy(&p)) {
            return Ok(());
        }
        match berth_network::bind_ipv6_proxy(&p) {
            Ok(l) => {
                hold.proxies.push(l);
                return Ok(());
            }
            Err(e) => {
                let fixed = m.host_port != 0 && last <= m.host_port;
                tries += 1;
                if fixed || tries >= 16 || (m.host_port != 0 && p.host_port >= last) {
                    return Err(e.to_string());
                }
                hold.reservations.pop();
                nets.unpublish(net, &p).map_err(|e| e.to_string())?;
                if m.host_port != 0 {
                    m.host_port = p.host_port + 1;
                }
            }
        }
    }
}

/// Checks a create request's network settings (networks exist, addresses parse, ports parse);
/// creates the default `bridge` network when it is asked for and missing.
pub(crate) fn check_create(root: &StateRoot, rec: &ContainerRecord) -> Result<(), ContainerError> {
    let mode = rec.host_config.network_mode.as_str();
    port_mappings(rec).map_err(ContainerError::Invalid)?;
    if !rec.host_config.links.is_empty() {
        if mode == "host" || mode.starts_with("container:") {
            return Err(ContainerError::Invalid(format!(
                "links cannot be used with network mode {mode:?}"
            )));
        }
        parse_links(&rec.host_config.links).map_err(ContainerError::Invalid)?;
    }
    if let Some(target) = mode.strip_prefix("container:") {
        if target.is_empty() {
            return Err(ContainerError::Invalid("network mode container: needs a name".into()));
        }
        // Like docker: the container must exist at create (it must run only at start).
        let engine = crate::Engine::open(crate::EngineOptions {
            root: root.path().to_path_buf(),
            helper_exe: Some("/proc/self/exe".into()),
        })?;
        engine.find(target)?;
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
pub fn parse_links(links: &[String]) -> Result<Vec<(String, String)>, String> {
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
                Err(format!("invalid link {l:?}: expected NAME or NAME:ALIAS"))
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
) -> Result<Vec<PublishedPort>, String> {
    let mut out = Vec::new();
    for (m, last) in port_requests(rec)? {
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
) -> Result<(), String> {
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
    let published = nets.published_ports(&rec.id).map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
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
            nets.take_default_route(net, &rec.id, Path::new(&format!("/proc/{pid}/ns/net")))
                .map_err(|e| e.to_string())?;
        }
        let published = nets.published_ports(&rec.id).map_err(|e| e.to_string())?;
        if published.is_empty() {
            publish_all(nets, rec, net, ep.ip)?;
        }
    }
    Ok(())
}

/// Starts the per-root DNS server (`berth --root R __dns`, with `exe` the berth binary;
/// None: the `berth` that started this monitor, else the current executable) unless one runs.
pub(crate) fn ensure_dns(root: &Path, exe: Option<&Path>) -> Result<(), String> {
    let exe = match exe {
        Some(e) => e.to_path_buf(),
        None => match crate::monitor::berth_exe() {
            Some(e) => e.to_path_buf(),
            None => std::env::current_exe().map_err(|e| format!("find current executable: {e}"))?,
        },
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--root").arg(root).arg("__dns");
    berth_network::dns::ensure_server(root, cmd).map(|_| ()).map_err(|e| e.to_string())
}

/// Attaches every network of `rec` to the namespace of `pid`, publishes its ports and writes
/// its resolv.conf and hosts. On error everything attached so far is detached again.
fn attach(
    root: &StateRoot,
    rec: &ContainerRecord,
    paths: &ContainerPaths,
    pid: i32,
    hold: &mut NetHold,
) -> Result<(), String> {
    let eps = endpoints_of(rec);
    if eps.is_empty() {
        return Ok(());
    }
    let nets = Networks::open(root.path()).map_err(|e| e.to_string())?;
    hold.attached = true;
    let res = attach_inner(&nets, root, rec, paths, pid, &eps, hold);
    if res.is_err() {
        hold.reservations.clear();
        hold.proxies.clear();
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
) -> Result<(), String> {
    let mut first: Option<berth_network::Endpoint> = None;
    let mut publish_on: Option<(String, Ipv4Addr)> = None;
    for (net, req) in eps {
        if net == DEFAULT_BRIDGE {
            ensure_default_bridge(nets).map_err(|e| e.to_string())?;
        }
        let ep = connect_one(nets, rec, net, req, pid).map_err(|e| e.to_string())?;
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
            return Err(format!(
                "container {}: ports cannot be published on internal networks only",
                rec.name
            ));
        };
        let ipv6 = berth_network::ipv6_available();
        for (m, last) in mappings {
            publish_held(nets, net, &rec.id, *ip, m, last, ipv6, hold)?;
        }
    }
    if let Some(ep) = &first {
        write_first_network_files(rec, paths, ep)?;
        ensure_dns(root.path(), None)?;
    }
    Ok(())
}

/// Without a network, `Dns*` and `ExtraHosts` still shape resolv.conf and hosts (as docker).
fn none_mode_files(rec: &ContainerRecord, paths: &ContainerPaths) -> Result<(), String> {
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
        let text = berth_network::files::hosts(&rec.config.hostname, None, &hc.extra_hosts, None)
            .map_err(|e| e.to_string())?;
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
) -> Result<(), String> {
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
    )
    .map_err(|e| e.to_string())?;
    // Written in place (same inode): the container bind-mounts these files.
    write_in_place(&paths.resolv_conf(), &resolv)?;
    write_in_place(&paths.hosts(), &hosts)
}

fn write_in_place(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The pid and paths of the running container `key` whose namespace `container:key` joins.
fn running_pid(root: &StateRoot, key: &str) -> Result<(i32, ContainerPaths), String> {
    let engine = crate::Engine::open(crate::EngineOptions {
        root: root.path().to_path_buf(),
        helper_exe: Some("/proc/self/exe".into()),
    })
    .map_err(|e| e.to_string())?;
    let l = engine.load(key).map_err(|e| e.to_string())?;
    if !l.st.state.running || l.st.state.pid <= 0 {
        return Err(format!(
            "cannot join network namespace of container {key}: container is not running"
        ));
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
) -> Result<(Started, NetHold), String> {
    if let Some(target) = rec.host_config.network_mode.strip_prefix("container:") {
        let (pid, other) = running_pid(root, target)?;
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
    let mut hold = NetHold::default();
    let res =
        crate::launch::spawn(&spec, stdio, |pid| attach(root, rec, paths, pid.as_raw(), &mut hold));
    match res {
        Ok(s) => Ok((Started { pid: s.pid.as_raw(), cgroup: s.cgroup.path().to_string() }, hold)),
        Err(e) => {
            if hold.attached {
                detach(root, &rec.id, hold);
            }
            Err(e.to_string())
        }
    }
}

/// Detaches the container from every network (veths, addresses, DNS names, port rules) and
/// releases its port reservations. Best effort: a failure is logged, not returned.
pub(crate) fn detach(root: &StateRoot, id: &str, hold: NetHold) {
    drop(hold);
    release(root, id);
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
        assert_eq!(m[1].host_ip, Some(Ipv4Addr::LOCALHOST));
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
