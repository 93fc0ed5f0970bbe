//! Endpoints: connecting a container (veth, addresses, routes, DNS names), disconnecting it,
//! its default route, its docker-style settings and its DNS records.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{NetworkError, Result};
use crate::ipam;
use crate::model::{
    ContainerEndpoint, DnsEntry, Endpoint, EndpointConfig, EndpointSettings, EndpointState,
    Lingering, NetworkState, PublishedPort,
};
use crate::state::{Networks, load_state};
use crate::{disk, netlink, nft, sysctl};

/// Most lingering veths a network remembers (see [`Lingering`]).
const MAX_LINGERING: usize = 256;

impl Networks {
    /// Connects a container (its network namespace at `netns`, e.g. `/proc/<pid>/ns/net`):
    /// veth pair into the bridge, address, `lo` up, default route (first non-internal network
    /// only), and DNS records for its name and aliases.
    pub fn connect(&self, network: &str, netns: &Path, cfg: EndpointConfig) -> Result<Endpoint> {
        let _root = self.lock()?;
        let states = self.states()?;
        let mut st = Self::resolve_in(&states, network)?;
        let net = st.network.name.clone();
        if st.endpoints.contains_key(&cfg.container_id) {
            return Err(NetworkError::AlreadyConnected { network: net, container: cfg.name });
        }
        if self.is_half_made(&st.network.id) {
            self.finish_creation(&st)?;
        }
        let ip = match cfg.ipv4_address {
            Some(ip) => {
                let bad = |reason: &str| NetworkError::AddressUnavailable {
                    network: net.clone(),
                    address: ip,
                    reason: reason.to_string(),
                };
                if !st.subnet.contains(ip) {
                    return Err(bad(&format!("is outside the subnet {}", st.subnet)));
                }
                if ip == st.subnet.network() || ip == st.subnet.broadcast() {
                    return Err(bad("is the network or broadcast address"));
                }
                if ip == st.gateway {
                    return Err(bad("is the gateway"));
                }
                if let Some(owner) = st.allocations.get(&ip) {
                    let who =
                        st.endpoints.get(owner).map(|e| e.name.clone()).unwrap_or(owner.clone());
                    return Err(bad(&format!("is already in use by {who}")));
                }
                ip
            }
            None => ipam::next_free(st.subnet, st.ip_range, st.gateway, &st.allocations)
                .ok_or_else(|| NetworkError::AddressesExhausted(net.clone()))?,
        };
        let ip6 = match (st.subnet6, st.gateway6) {
            (Some(s6), Some(g6)) => {
                let a = match cfg.ipv6_address {
                    Some(a) => {
                        let taken = st.allocations6.contains_key(&a);
                        if !s6.contains(a) || a == g6 || a == s6.network() || taken {
                            return Err(NetworkError::Invalid {
                                network: net.clone(),
                                message: format!(
                                    "IPv6 address {a} is {}",
                                    if taken {
                                        "already in use".to_string()
                                    } else {
                                        format!("not a free host address of {s6}")
                                    }
                                ),
                            });
                        }
                        a
                    }
                    None => ipam::next_free6(s6, g6, &st.allocations6)
                        .ok_or_else(|| NetworkError::AddressesExhausted(net.clone()))?,
                };
                Some((a, s6.prefix()))
            }
            _ => None,
        };
        let mac = match cfg.mac_address.as_deref() {
            Some(m) => netlink::parse_mac(m).ok_or_else(|| NetworkError::Invalid {
                network: net.clone(),
                message: format!("mac address {m:?} is not of the form aa:bb:cc:dd:ee:ff"),
            })?,
            None => netlink::mac_for(ip),
        };
        let ifname = if cfg.interface_name.is_empty() {
            "eth0".to_string()
        } else {
            cfg.interface_name.clone()
        };
        let host_ifname = format!(
            "veth{:08x}",
            disk::short_hash(&format!("{}/{}", st.network.id, cfg.container_id))
        );
        let default_via = (!st.network.internal).then_some(st.gateway);
        // The container's current default-route owner on another network, with its priority.
        let owner: Option<(String, i32)> = states.iter().find_map(|s| {
            s.endpoints
                .get(&cfg.container_id)
                .filter(|e| e.endpoint.default_route)
                .map(|e| (s.network.id.clone(), e.priority))
        });
        let replace_default =
            !st.network.internal && owner.as_ref().is_some_and(|(_, p)| cfg.priority > *p);
        // An exited container's veth with this MAC may still be on the bridge: delete it first.
        let mac_s = netlink::format_mac(&mac);
        let (gone, kept): (Vec<Lingering>, Vec<Lingering>) =
            st.lingering.drain(..).partition(|l| l.mac == mac_s || l.host_ifname == host_ifname);
        st.lingering = kept;
        let plan = netlink::VethPlan {
            bridge: st.bridge.clone(),
            host_ifname: host_ifname.clone(),
            netns: netns.to_path_buf(),
            ifname: ifname.clone(),
            mac,
            mtu: st.mtu,
            ip,
            prefix: st.subnet.prefix(),
            default_via,
            ip6,
            default_via6: if st.network.internal { None } else { st.gateway6 },
            replace_default,
            group: st.group,
            stale: gone.into_iter().map(|l| l.host_ifname).collect(),
        };
        let default_route = match netlink::plug_veth(plan.clone()) {
            // Bridge gone (reboot, manual delete): rebuild it from the record and retry once.
            Err(netlink::PlugError::NoBridge) => {
                self.ensure_kernel(&st)?;
                netlink::plug_veth(plan).map_err(NetworkError::from)?
            }
            r => r.map_err(NetworkError::from)?,
        };
        let endpoint = Endpoint {
            ip,
            prefix: st.subnet.prefix(),
            gateway: st.gateway,
            mac: netlink::format_mac(&mac),
            ifname,
            host_ifname: host_ifname.clone(),
            default_route,
            ip6,
        };
        st.allocations.insert(ip, cfg.container_id.clone());
        if let Some((a, _)) = ip6 {
            st.allocations6.insert(a, cfg.container_id.clone());
        }
        st.endpoints.insert(
            cfg.container_id.clone(),
            EndpointState {
                name: cfg.name.clone(),
                endpoint: endpoint.clone(),
                priority: cfg.priority,
            },
        );
        st.network.containers.insert(
            cfg.container_id.clone(),
            ContainerEndpoint {
                name: cfg.name.clone(),
                endpoint_id: disk::random_id()?,
                mac_address: endpoint.mac.clone(),
                ipv4_address: format!("{ip}/{}", st.subnet.prefix()),
                ipv6_address: ip6.map(|(a, p)| format!("{a}/{p}")).unwrap_or_default(),
            },
        );
        let mut names = vec![cfg.name.clone()];
        names.extend(cfg.aliases.iter().cloned());
        set_dns(&mut st, &cfg.container_id, &names, ip, ip6.map(|(a, _)| a), &cfg.dns_servers);
        set_links(&mut st, &cfg.container_id, &cfg.links);
        if let Err(e) = self.save(&st) {
            let _ = netlink::delete_link(&host_ifname);
            return Err(e);
        }
        // The previous owner no longer holds the default route.
        if let (true, Some((owner_id, _))) = (replace_default && default_route, owner)
            && let Ok(mut prev) = self.state(&owner_id)
            && let Some(e) = prev.endpoints.get_mut(&cfg.container_id)
        {
            e.endpoint.default_route = false;
            self.save(&prev)?;
        }
        Ok(endpoint)
    }

    /// The endpoint of `container_id` on `network`, if connected.
    pub fn endpoint(&self, network: &str, container_id: &str) -> Result<Option<Endpoint>> {
        Ok(self.state(network)?.endpoints.get(container_id).map(|e| e.endpoint.clone()))
    }

    /// Docker's `NetworkSettings.Networks.<name>` entry for `container_id` on `network`.
    pub fn endpoint_settings(
        &self,
        network: &str,
        container_id: &str,
    ) -> Result<Option<EndpointSettings>> {
        let st = self.state(network)?;
        let Some(ep) = st.endpoints.get(container_id) else { return Ok(None) };
        let names: Vec<String> = st
            .dns
            .iter()
            .filter(|d| d.container_id == container_id)
            .flat_map(|d| d.names.iter().cloned())
            .collect();
        let container = st.network.containers.get(container_id);
        // docker shows links as `target:alias`.
        let links: Vec<String> = st
            .dns
            .iter()
            .filter(|d| d.container_id == container_id)
            .flat_map(|d| d.links.iter().map(|(alias, target)| format!("{target}:{alias}")))
            .collect();
        Ok(Some(EndpointSettings {
            ipam_config: None,
            links: (!links.is_empty()).then_some(links),
            aliases: names
                .iter()
                .filter(|n| **n != ep.name.to_ascii_lowercase())
                .cloned()
                .collect(),
            mac_address: ep.endpoint.mac.clone(),
            network_id: st.network.id.clone(),
            endpoint_id: container.map(|c| c.endpoint_id.clone()).unwrap_or_default(),
            gateway: ep.endpoint.gateway.to_string(),
            ip_address: ep.endpoint.ip.to_string(),
            ip_prefix_len: ep.endpoint.prefix,
            ipv6_gateway: st.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            global_ipv6_address: ep.endpoint.ip6.map(|(a, _)| a.to_string()).unwrap_or_default(),
            global_ipv6_prefix_len: ep.endpoint.ip6.map(|(_, p)| p).unwrap_or(0),
            dns_names: names,
        }))
    }

    /// Disconnects `container_id` from every network it is on (container stop); keeps going
    /// after a failure and returns the first error. Returns the networks it left.
    pub fn disconnect_all(&self, container_id: &str) -> Result<Vec<String>> {
        self.disconnect_all_as(container_id, true)
    }

    /// [`Networks::disconnect_all`] for a container that exited and whose network namespace
    /// nothing else holds: its veths are left to the kernel's namespace cleanup (see
    /// [`Networks::disconnect_as`]), so the caller does not wait for their deletion.
    pub fn disconnect_exited(&self, container_id: &str) -> Result<Vec<String>> {
        self.disconnect_all_as(container_id, false)
    }

    fn disconnect_all_as(&self, container_id: &str, delete_veth: bool) -> Result<Vec<String>> {
        // A look without the lock first: most callers (every removal) are on no network.
        let on: Vec<String> = self
            .states()?
            .into_iter()
            .filter(|s| s.endpoints.contains_key(container_id))
            .map(|s| s.network.id)
            .collect();
        if on.is_empty() {
            return Ok(Vec::new());
        }
        // Under the lock only these networks are read again: the lock is what every exiting
        // container of a `down` queues on.
        let _root = self.lock()?;
        let mut left = Vec::new();
        let mut first_err = None;
        for id in on {
            let Some(mut st) = load_state(&self.dir, &self.state_path(&id))? else { continue };
            if !st.endpoints.contains_key(container_id) {
                continue;
            }
            match self.disconnect_locked(&mut st, container_id, delete_veth) {
                Ok(()) => left.push(st.network.name),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(left),
        }
    }

    /// Disconnects a container: removes its veth, published ports, DNS records and address.
    pub fn disconnect(&self, network: &str, container_id: &str) -> Result<()> {
        self.disconnect_as(network, container_id, true)
    }

    /// [`Networks::disconnect`] with `delete_veth` false for a container whose network
    /// namespace died with it: the kernel deletes the veth pair when it cleans up the
    /// namespace (asynchronously; nobody waits for its RCU grace periods), so the host end is
    /// only remembered as lingering: a new endpoint with its MAC address, or the network's
    /// removal, deletes it if it is still there.
    fn disconnect_as(&self, network: &str, container_id: &str, delete_veth: bool) -> Result<()> {
        let _root = self.lock()?;
        let mut st = self.state(network)?;
        self.disconnect_locked(&mut st, container_id, delete_veth)
    }

    /// The work of [`Networks::disconnect_as`] on `st`, read under the root lock.
    fn disconnect_locked(
        &self,
        st: &mut NetworkState,
        container_id: &str,
        delete_veth: bool,
    ) -> Result<()> {
        let Some(ep) = st.endpoints.remove(container_id) else {
            return Err(NetworkError::NotConnected {
                network: st.network.name.clone(),
                container: container_id.to_string(),
            });
        };
        if delete_veth {
            // The peer dies with it; the host end may already be gone.
            netlink::delete_link_unlisted(&ep.endpoint.host_ifname)?;
        } else {
            st.lingering.retain(|l| l.host_ifname != ep.endpoint.host_ifname);
            st.lingering.push(Lingering {
                host_ifname: ep.endpoint.host_ifname.clone(),
                mac: ep.endpoint.mac.clone(),
            });
            // Bounded: the kernel deletes them within milliseconds; old entries are moot.
            let extra = st.lingering.len().saturating_sub(MAX_LINGERING);
            st.lingering.drain(..extra);
        }
        let (gone, kept): (Vec<PublishedPort>, Vec<PublishedPort>) =
            st.ports.drain(..).partition(|p| p.container_id == container_id);
        st.ports = kept;
        if !gone.is_empty() {
            let _machine = sysctl::machine_lock()?;
            nft::remove_ports(&st.network.id, &gone)?;
        }
        st.allocations.retain(|_, c| c != container_id);
        st.allocations6.retain(|_, c| c != container_id);
        st.network.containers.remove(container_id);
        st.dns.retain(|d| d.container_id != container_id);
        self.save(st)
    }

    /// Gives `container_id`'s endpoint on `network` the default route of its namespace at
    /// `netns` (after the network that held it was disconnected); recorded on the endpoint.
    pub fn take_default_route(
        &self,
        network: &str,
        container_id: &str,
        netns: &Path,
    ) -> Result<()> {
        let _root = self.lock()?;
        let mut st = self.state(network)?;
        let not_connected = || NetworkError::NotConnected {
            network: st.network.name.clone(),
            container: container_id.to_string(),
        };
        let ep = st.endpoints.get(container_id).ok_or_else(not_connected)?;
        if st.network.internal || ep.endpoint.default_route {
            return Ok(());
        }
        netlink::replace_default_route(netns, &ep.endpoint.ifname, st.gateway)?;
        if let Some(e) = st.endpoints.get_mut(container_id) {
            e.endpoint.default_route = true;
        }
        self.save(&st)
    }

    /// Sets `container_id`'s DNS names on `network` (replacing earlier ones) to answer `ip`.
    pub fn add_records(
        &self,
        network: &str,
        container_id: &str,
        names: &[String],
        ip: Ipv4Addr,
    ) -> Result<()> {
        let _root = self.lock()?;
        let mut st = self.state(network)?;
        let ip6 = st.endpoints.get(container_id).and_then(|e| e.endpoint.ip6).map(|(a, _)| a);
        // Keep the container's upstreams and links: only its names change.
        let old = st.dns.iter().find(|d| d.container_id == container_id).cloned();
        let up = old.as_ref().map(|d| d.upstreams.clone()).unwrap_or_default();
        set_dns(&mut st, container_id, names, ip, ip6, &up);
        if let (Some(old), Some(new)) =
            (old, st.dns.iter_mut().find(|d| d.container_id == container_id))
        {
            new.links = old.links;
        }
        self.save(&st)
    }

    /// Removes `container_id`'s DNS names from `network` (answers stop at once).
    pub fn remove_records(&self, network: &str, container_id: &str) -> Result<()> {
        let _root = self.lock()?;
        let mut st = self.state(network)?;
        st.dns.retain(|d| d.container_id != container_id);
        self.save(&st)
    }
}

fn set_dns(
    st: &mut NetworkState,
    container_id: &str,
    names: &[String],
    ip: Ipv4Addr,
    ip6: Option<std::net::Ipv6Addr>,
    up: &[std::net::IpAddr],
) {
    let mut clean: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !clean.contains(&n) {
            clean.push(n);
        }
    }
    st.dns.retain(|d| d.container_id != container_id);
    st.dns.push(DnsEntry {
        container_id: container_id.to_string(),
        names: clean,
        ipv4: ip,
        ipv6: ip6,
        upstreams: up.to_vec(),
        links: BTreeMap::new(),
    });
}

/// Sets the links (alias -> target name) of `container_id`'s DNS entry on `st`.
fn set_links(st: &mut NetworkState, container_id: &str, links: &[(String, String)]) {
    let clean = |n: &str| n.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(d) = st.dns.iter_mut().find(|d| d.container_id == container_id) {
        d.links = links
            .iter()
            .map(|(alias, target)| (clean(alias), clean(target)))
            .filter(|(a, t)| !a.is_empty() && !t.is_empty())
            .collect();
    }
}
