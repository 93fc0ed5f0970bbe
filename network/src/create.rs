//! `network create`: validating the request, choosing subnet, gateway and bridge, then the
//! record, the bridge and the nft rules in a crash-safe order.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::{NetworkError, Result};
use crate::ipam::{self, Ipv4Net, Ipv6Net};
use crate::model::{
    Ipam, IpamConfig, NetworkCreate, NetworkRecord, NetworkState, OPT_BRIDGE_NAME, OPT_MTU,
};
use crate::state::Networks;
use crate::{disk, netlink, nft, orphans, reserve, sysctl};

/// Default MTU when `com.docker.network.driver.mtu` is not given.
pub const DEFAULT_MTU: u32 = 1500;

impl Networks {
    /// `network create`: records the network, creates its bridge and its nft rules.
    pub fn create(&self, req: NetworkCreate) -> Result<NetworkRecord> {
        let name = req.name.clone();
        validate_name(&name)?;
        let invalid = |message: String| NetworkError::Invalid { network: name.clone(), message };
        match req.driver.as_deref() {
            None | Some("") | Some("bridge") => {}
            Some(d) => return Err(invalid(format!("driver {d:?} is not supported (only bridge)"))),
        }
        let mtu = match req.options.get(OPT_MTU) {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| invalid(format!("{OPT_MTU}={v:?} is not a valid MTU")))?,
            None => DEFAULT_MTU,
        };
        let _root = self.lock()?;
        let states = self.states()?;
        if states.iter().any(|s| s.network.name == name) {
            return Err(NetworkError::AlreadyExists(name));
        }
        let id = disk::random_id()?;
        let bridge = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) => b.clone(),
            None => format!("brt-{}", &id[..10]),
        };
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ', ':']) {
            return Err(invalid(format!("bridge name {bridge:?} is not a valid interface name")));
        }
        if states.iter().any(|s| s.bridge == bridge) {
            return Err(invalid(format!("bridge {bridge} is used by another network")));
        }
        // Serialise with other state roots: two creates must not pick the same free pool.
        let _machine = sysctl::machine_lock()?;
        // A given bridge name must not be some other interface's: the record names its bridge
        // before it exists, and removing a half-made network deletes that bridge. (A
        // generated name holds part of a fresh random id.)
        if req.options.contains_key(OPT_BRIDGE_NAME) && netlink::link_exists(&bridge)? {
            return Err(invalid(format!("bridge name {bridge} is taken by an existing interface")));
        }
        self.sweep_stale_files();
        let ours: Vec<(Ipv4Net, String)> =
            states.iter().map(|s| (s.subnet, format!("network {}", s.network.name))).collect();
        let v4 = req.ipam.iter().find(|c| c.subnet.as_deref().is_none_or(|s| !s.contains(':')));
        let (subnet, ip_range, gateway) = match v4.and_then(|c| c.subnet.clone()) {
            Some(s) => {
                let subnet: Ipv4Net = s.parse().map_err(|e: String| invalid(e))?;
                if subnet.prefix() > 30 {
                    return Err(invalid(format!("subnet {subnet} is too small")));
                }
                let host = ipam::host_occupied();
                let elsewhere = reserve::others(&id);
                if let Some((_, other)) = ours
                    .iter()
                    .chain(host.iter())
                    .chain(elsewhere.iter())
                    .find(|(n, _)| n.overlaps(&subnet))
                {
                    return Err(NetworkError::SubnetOverlap {
                        network: name,
                        subnet: subnet.to_string(),
                        other: other.clone(),
                    });
                }
                let c = v4.cloned().unwrap_or_default();
                let range = match c.ip_range.as_deref() {
                    Some(r) => {
                        let r: Ipv4Net = r.parse().map_err(|e: String| invalid(e))?;
                        if !subnet.overlaps(&r) || r.prefix() < subnet.prefix() {
                            return Err(invalid(format!("ip_range {r} is not inside {subnet}")));
                        }
                        Some(r)
                    }
                    None => None,
                };
                let gw = match c.gateway.as_deref() {
                    Some(g) => {
                        let g: Ipv4Addr = g.parse().map_err(|_| {
                            invalid(format!("gateway {g:?} is not an IPv4 address"))
                        })?;
                        if !subnet.contains(g) || g == subnet.network() || g == subnet.broadcast() {
                            return Err(invalid(format!(
                                "gateway {g} is not a host address of {subnet}"
                            )));
                        }
                        g
                    }
                    None => subnet.nth(1).ok_or_else(|| invalid("subnet has no hosts".into()))?,
                };
                (subnet, range, gw)
            }
            None => {
                let mut taken: Vec<Ipv4Net> = ours.iter().map(|(n, _)| *n).collect();
                taken.extend(ipam::host_occupied().into_iter().map(|(n, _)| n));
                taken.extend(reserve::others(&id).into_iter().map(|(n, _)| n));
                let subnet = ipam::pick_pool(&taken)
                    .ok_or_else(|| NetworkError::PoolExhausted(name.clone()))?;
                let gw = subnet.nth(1).ok_or_else(|| NetworkError::PoolExhausted(name.clone()))?;
                (subnet, None, gw)
            }
        };
        let (subnet6, gateway6) = if req.enable_ipv6 {
            let c6 = req.ipam.iter().find(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':')));
            let s6: Ipv6Net = match c6.and_then(|c| c.subnet.as_deref()) {
                Some(s) => s.parse().map_err(|e: String| invalid(e))?,
                None => {
                    // A ULA /64 derived from the id: fdXX:XXXX:XXXX:XXXX::/64.
                    let b: Vec<u16> = (0..4)
                        .map(|i| u16::from_str_radix(&id[i * 4..i * 4 + 4], 16).unwrap_or(0))
                        .collect();
                    let a = std::net::Ipv6Addr::new(
                        0xfd00 | (b[0] & 0xff),
                        b[1],
                        b[2],
                        b[3],
                        0,
                        0,
                        0,
                        0,
                    );
                    Ipv6Net::new(a, 64)
                        .ok_or_else(|| invalid("bad generated IPv6 subnet".into()))?
                }
            };
            if s6.prefix() > 120 {
                return Err(invalid(format!("IPv6 subnet {s6} is too small")));
            }
            if let Some(o) = states.iter().find(|s| s.subnet6.is_some_and(|x| x.overlaps(&s6))) {
                return Err(NetworkError::SubnetOverlap {
                    network: name,
                    subnet: s6.to_string(),
                    other: format!("network {}", o.network.name),
                });
            }
            let g6 = match c6.and_then(|c| c.gateway.as_deref()) {
                Some(g) => {
                    g.parse::<std::net::Ipv6Addr>().ok().filter(|g| s6.contains(*g)).ok_or_else(
                        || invalid(format!("IPv6 gateway {g:?} is not an address of {s6}")),
                    )?
                }
                None => {
                    s6.nth(1).ok_or_else(|| invalid(format!("IPv6 subnet {s6} has no hosts")))?
                }
            };
            (Some(s6), Some(g6))
        } else {
            (None, None)
        };
        let mut ipam_config = vec![IpamConfig {
            subnet: subnet.to_string(),
            ip_range: ip_range.map(|r| r.to_string()),
            gateway: gateway.to_string(),
        }];
        if let (Some(s6), Some(g6)) = (subnet6, gateway6) {
            ipam_config.push(IpamConfig {
                subnet: s6.to_string(),
                ip_range: None,
                gateway: g6.to_string(),
            });
        }
        let record = NetworkRecord {
            name: name.clone(),
            id: id.clone(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            scope: "local".into(),
            driver: "bridge".into(),
            enable_ipv6: req.enable_ipv6,
            ipam: Ipam {
                driver: "default".into(),
                options: Default::default(),
                config: ipam_config,
            },
            internal: req.internal,
            attachable: req.attachable,
            options: req.options.clone(),
            labels: req.labels.clone(),
            containers: BTreeMap::new(),
        };
        let st = NetworkState {
            network: record.clone(),
            bridge: bridge.clone(),
            mtu,
            subnet,
            ip_range,
            gateway,
            allocations: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            ports: Vec::new(),
            dns: Vec::new(),
            subnet6,
            gateway6,
            allocations6: BTreeMap::new(),
            group: netlink::pick_group(&id)?,
            lingering: Vec::new(),
        };
        // The record comes first, marked as being created (`<id>.creating`), then the kernel
        // objects, then the mark goes. A crash at any step leaves a network that `network ls`
        // shows, that reserves its subnet, and that `network rm`/`prune`/`down` remove or the
        // next `connect` completes (see `finish_creation`).
        let path = self.state_path(&id);
        let marker = self.creating_path(&id);
        let undo_record = || {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&marker);
            let _ = reserve::release(&id);
            let _ = self.bump();
        };
        if let Err(e) = std::fs::File::create_new(&marker) {
            return Err(NetworkError::io("create", &marker, e));
        }
        // Other roots see the subnet from here on, before the bridge carries its route.
        if let Err(e) =
            self.save_definition(&st).and_then(|()| reserve::reserve(&id, &name, subnet, &path))
        {
            undo_record();
            return Err(e);
        }
        pause_point("network-create:after-record");
        let v6 = gateway6.zip(subnet6.map(|s| s.prefix()));
        let alias = orphans::bridge_alias(&id, &self.dir);
        if let Err(e) =
            netlink::create_bridge(&bridge, mtu, gateway, subnet.prefix(), v6, st.group, &alias)
        {
            undo_record();
            return Err(e);
        }
        pause_point("network-create:after-bridge");
        let kernel = (|| -> Result<()> {
            if !req.internal {
                sysctl::enable_route_localnet(&bridge)?;
            }
            nft::add_network(&id, &bridge, &subnet, req.internal)?;
            if subnet6.is_some() {
                nft::add_network6(&id, &bridge)?;
            }
            pause_point("network-create:after-rules");
            if !req.internal {
                sysctl::hold_forwarding(&path)?;
            }
            pause_point("network-create:after-forwarding");
            std::fs::remove_file(&marker).map_err(|e| NetworkError::io("remove", &marker, e))
        })();
        if let Err(e) = kernel {
            let _ = nft::remove_tagged(&nft::net_tag(&id), Some(&subnet));
            let _ = netlink::delete_link(&bridge);
            undo_record();
            let _ = sysctl::release_forwarding(&path);
            return Err(e);
        }
        tracing::debug!(network = %name, %subnet, %bridge, "network created");
        Ok(record)
    }
}

/// Test hook: when `BERTH_TEST_PAUSE_AT` names `point`, the process stops itself (SIGSTOP)
/// there, so a test can kill it at a known step of a multi-step change. Nothing else sets it.
fn pause_point(point: &str) {
    if std::env::var_os("BERTH_TEST_PAUSE_AT").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid {
            network: name.to_string(),
            message: "names must start with a letter or digit and contain only [a-zA-Z0-9_.-]"
                .into(),
        })
    }
}
