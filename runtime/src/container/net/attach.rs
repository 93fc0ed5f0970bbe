//! Attaching a starting container to its networks from the launcher's `pre_start` hook
//! (veths, addresses, DNS names, published ports, resolv.conf and hosts), following a live
//! `network connect`/`disconnect`, and detaching at exit. A partial attach is undone, so a
//! failed start leaves nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use berth_launch::{LaunchSpec, Stdio};
use berth_network::{EndpointConfig, Networks, PortMapping, PublishedPort};
use berth_store::StateRoot;

use super::error::NetAttachError;
use super::ports::{NetHold, hold_proxy, port_requests, publish_all, publish_held};
use super::settings::{
    DEFAULT_BRIDGE, dns_aliases, endpoints_of, ensure_default_bridge, parse_links,
};
use crate::container::api::EndpointRequest;
use crate::container::launcher::Started;
use crate::container::record::{ContainerPaths, ContainerRecord};
use crate::monitor_protocol::{BoundSocket, ProxySockets};

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

/// Rewrites a file the container bind-mounts, keeping its inode (see [`crate::inplace`]).
fn write_in_place(path: &Path, text: &str) -> Result<(), NetAttachError> {
    crate::inplace::write_in_place(path, text.as_bytes(), false)
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
