//! What a container asks of the networks (its network mode, endpoints, links, DNS names),
//! checked at create, and the `NetworkSettings` that inspect shows.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use berth_network::Networks;
use berth_store::StateRoot;

use super::error::NetAttachError;
use super::ports::port_mappings;
use crate::container::ContainerError;
use crate::container::api::{EndpointRequest, NetworkSettings, PortBinding};
use crate::container::record::{ContainerRecord, Loaded};

/// Name of the default network (`--network bridge`), created on demand like docker's.
pub const DEFAULT_BRIDGE: &str = "bridge";

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
pub(super) fn dns_aliases(rec: &ContainerRecord, req: &EndpointRequest) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
