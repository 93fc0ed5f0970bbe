//! Request, record and state types. Records use the Docker API's PascalCase JSON shape.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::ipam::{Ipv4Net, Ipv6Net};

/// Option key for the bridge MTU.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// Option key for the bridge interface name.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// One IPAM pool request: all fields optional (a free pool is picked when `subnet` is None).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamRequest {
    /// CIDR subnet, e.g. `172.28.0.0/16`.
    pub subnet: Option<String>,
    /// Sub-range of the subnet to allocate dynamic addresses from.
    pub ip_range: Option<String>,
    /// Gateway address (default: first host address).
    pub gateway: Option<String>,
}

/// What `create` needs.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// Network name (unique per state root).
    pub name: String,
    /// Driver: `bridge` (or empty) is the only one supported.
    pub driver: Option<String>,
    /// No NAT, no default route, no traffic leaves the bridge.
    pub internal: bool,
    /// Whether standalone containers may attach (recorded only).
    pub attachable: bool,
    /// Labels (compose puts its project labels here).
    pub labels: IndexMap<String, String>,
    /// Driver options (`com.docker.network.driver.mtu`, `com.docker.network.bridge.name`).
    pub options: IndexMap<String, String>,
    /// IPAM pools; only the first IPv4 one is used.
    pub ipam: Vec<IpamRequest>,
    /// Give containers IPv6 addresses too (subnet from an IPv6 `ipam` entry, else a ULA /64).
    pub enable_ipv6: bool,
}

/// The Docker-shaped IPAM section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// Always `default`.
    pub driver: String,
    /// IPAM driver options (none).
    pub options: IndexMap<String, String>,
    /// The pools.
    pub config: Vec<IpamConfig>,
}

/// One Docker-shaped IPAM pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// CIDR subnet.
    pub subnet: String,
    /// Allocation range, when given.
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway address.
    pub gateway: String,
}

/// A container's endpoint as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerEndpoint {
    /// Container name.
    pub name: String,
    /// Endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC address.
    pub mac_address: String,
    /// `ip/prefix`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// IPv6 value on IPv6-enabled networks, else empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A network as `docker network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkRecord {
    /// Name.
    pub name: String,
    /// 64-hex id.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// Always `bridge`.
    pub driver: String,
    /// Whether IPv6 was requested.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Address management.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// Internal (no egress) network.
    pub internal: bool,
    /// Attachable flag.
    pub attachable: bool,
    /// Driver options.
    pub options: IndexMap<String, String>,
    /// Labels.
    pub labels: IndexMap<String, String>,
    /// Attached containers by id.
    pub containers: BTreeMap<String, ContainerEndpoint>,
}

/// A container's view of one network, as `docker inspect` shows it under
/// `NetworkSettings.Networks.<name>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// Static addresses requested (null when dynamic).
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<serde_json::Value>,
    /// Legacy links (none).
    pub links: Option<Vec<String>>,
    /// Network-scoped aliases.
    pub aliases: Vec<String>,
    /// MAC address.
    pub mac_address: String,
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Gateway address.
    pub gateway: String,
    /// Container address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// IPv6 value on IPv6-enabled networks, else empty.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// IPv6 value on IPv6-enabled networks, else empty.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// IPv6 prefix length on IPv6-enabled networks, else 0.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// Every name this container answers to on the network.
    #[serde(rename = "DNSNames")]
    pub dns_names: Vec<String>,
}

/// What `connect` needs to know about the container.
#[derive(Debug, Clone, Default)]
pub struct EndpointConfig {
    /// Container id (key of the endpoint).
    pub container_id: String,
    /// Container name (also a DNS name).
    pub name: String,
    /// Further DNS names: service name, `{service}-{n}`, hostname, network aliases.
    pub aliases: Vec<String>,
    /// Static address; else the next free one.
    pub ipv4_address: Option<Ipv4Addr>,
    /// Static IPv6 address on an IPv6-enabled network; else the next free one.
    pub ipv6_address: Option<Ipv6Addr>,
    /// Static MAC; else derived from the address like docker (02:42:a.b.c.d).
    pub mac_address: Option<String>,
    /// Interface name inside the container (`eth0`, `eth1`, ... by order).
    pub interface_name: String,
    /// Default-route priority: the first non-internal network sets the default route, and a
    /// later one with a strictly higher priority takes it over.
    pub priority: i32,
    /// Upstream resolvers for this container's forwarded queries (compose `dns:`); empty = host's.
    pub dns_servers: Vec<IpAddr>,
    /// Links (`--link NAME:ALIAS`): alias -> target container name, answered to this
    /// container only.
    pub links: Vec<(String, String)>,
}

/// The result of `connect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Container address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway (the bridge address; also the DNS server address).
    pub gateway: Ipv4Addr,
    /// MAC address.
    pub mac: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// Host-side veth name.
    pub host_ifname: String,
    /// Whether this endpoint installed the container's default route.
    pub default_route: bool,
    /// IPv6 address with its prefix length, on IPv6-enabled networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<(Ipv6Addr, u8)>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A port to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to listen on; None or 0.0.0.0 = every host address (and 127.0.0.1). An
    /// IPv6 address is served by the monitor's proxy only (no DNAT rule).
    pub host_ip: Option<IpAddr>,
    /// Host port; 0 = pick a free one.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// A published port as recorded in the network state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Owning container.
    pub container_id: String,
    /// Host address (0.0.0.0 = any). IPv6 (`::` = any): served by the monitor's userland proxy,
    /// with no DNAT rule.
    pub host_ip: IpAddr,
    /// Actual host port.
    pub host_port: u16,
    /// Container address.
    pub container_ip: Ipv4Addr,
    /// Container port.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

impl PublishedPort {
    /// Whether this binding is an IPv6 one (the monitor's proxy serves it; no nft rule).
    pub fn is_ipv6(&self) -> bool {
        self.host_ip.is_ipv6()
    }

    /// `host:port` as docker prints it (`0.0.0.0:8080`, `[::]:8080`).
    pub fn host_addr(&self) -> String {
        std::net::SocketAddr::new(self.host_ip, self.host_port).to_string()
    }
}

/// Per-endpoint state kept beside the Docker record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// Container name.
    pub name: String,
    /// The endpoint as returned by connect.
    pub endpoint: Endpoint,
    /// Its `EndpointConfig::priority` (decides which network owns the default route).
    #[serde(default)]
    pub priority: i32,
}

/// One container's DNS names on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEntry {
    /// Owning container.
    pub container_id: String,
    /// Lower-case names.
    pub names: Vec<String>,
    /// Address answered for A queries.
    pub ipv4: Ipv4Addr,
    /// Address answered for AAAA queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// Per-container upstream resolvers (empty = the server's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<IpAddr>,
    /// Links of this container: lower-case alias -> lower-case target name. Only queries from
    /// this container see them (docker's links on user-defined networks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

/// Everything berth keeps about one network: `networks/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The Docker-shaped record.
    pub network: NetworkRecord,
    /// Bridge interface name.
    pub bridge: String,
    /// Bridge / veth MTU.
    pub mtu: u32,
    /// IPv4 subnet.
    pub subnet: Ipv4Net,
    /// Dynamic allocation range.
    pub ip_range: Option<Ipv4Net>,
    /// Gateway (bridge) address.
    pub gateway: Ipv4Addr,
    /// Allocated addresses -> container id.
    pub allocations: BTreeMap<Ipv4Addr, String>,
    /// Endpoints by container id.
    pub endpoints: BTreeMap<String, EndpointState>,
    /// Published ports.
    pub ports: Vec<PublishedPort>,
    /// DNS records.
    pub dns: Vec<DnsEntry>,
    /// IPv6 subnet (IPv6-enabled networks).
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    /// IPv6 gateway on the bridge.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Allocated IPv6 addresses -> container id.
    #[serde(default)]
    pub allocations6: BTreeMap<Ipv6Addr, String>,
    /// Link group of the bridge and the host-side veths (0: none, records made before groups),
    /// so removing the network deletes them all with one request.
    #[serde(default)]
    pub group: u32,
    /// Host veths of exited containers, left to the kernel's namespace cleanup, newest last.
    #[serde(default)]
    pub lingering: Vec<Lingering>,
}

/// A host-side veth whose container exited: not deleted (the kernel deletes the pair when it
/// cleans up the namespace, asynchronously) but remembered until a new endpoint takes its MAC
/// address or the network goes, which delete it if it is still there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lingering {
    /// Host-side interface name.
    pub host_ifname: String,
    /// The container end's MAC address (`aa:bb:...`).
    pub mac: String,
}

/// Filters for `list` and `prune` (docker semantics: OR within a key, AND across keys).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Substring of the name.
    pub name: Vec<String>,
    /// Prefix of the id.
    pub id: Vec<String>,
    /// `key` or `key=value`.
    pub label: Vec<String>,
}

impl Filters {
    /// True when `rec` passes every filter.
    pub fn matches(&self, rec: &NetworkRecord) -> bool {
        let name_ok =
            self.name.is_empty() || self.name.iter().any(|n| rec.name.contains(n.as_str()));
        let id_ok = self.id.is_empty() || self.id.iter().any(|i| rec.id.starts_with(i.as_str()));
        let label_ok = self.label.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => rec.labels.get(k).is_some_and(|x| x == v),
            None => rec.labels.contains_key(l.as_str()),
        });
        name_ok && id_ok && label_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_docker() {
        let rec: NetworkRecord = serde_json::from_value(serde_json::json!({
            "Name": "proj_default", "Id": "abcdef0123", "Created": "", "Scope": "local",
            "Driver": "bridge", "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": []},
            "Internal": false, "Attachable": false, "Options": {},
            "Labels": {"com.docker.compose.project": "proj", "x": ""}, "Containers": {}
        }))
        .unwrap();
        let f = |name: &[&str], id: &[&str], label: &[&str]| Filters {
            name: name.iter().map(|s| s.to_string()).collect(),
            id: id.iter().map(|s| s.to_string()).collect(),
            label: label.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f(&[], &[], &[]).matches(&rec));
        assert!(f(&["default", "nope"], &[], &[]).matches(&rec));
        assert!(!f(&["nope"], &[], &[]).matches(&rec));
        assert!(f(&[], &["abc"], &["com.docker.compose.project=proj", "x"]).matches(&rec));
        assert!(!f(&[], &[], &["com.docker.compose.project=other"]).matches(&rec));
        assert!(!f(&[], &["bcd"], &[]).matches(&rec));
    }
}
