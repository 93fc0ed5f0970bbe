//! berth-network: bridge networks, container endpoints, IPAM, NAT/published ports and service DNS.
//!
//! Entry point: [`Networks`] over a state root (records live in `<root>/networks/`). All calls
//! are synchronous and safe to call from async code via `spawn_blocking`; the DNS server
//! ([`dns::serve`]) is async. See docs/network.md for the design.

#![warn(missing_docs)]

pub mod dns;
pub mod error;
pub mod files;
pub mod ipam;
pub mod model;
pub mod netlink;
pub mod nft;
pub mod orphans;
pub mod proxy_socket;
pub mod store;
pub mod sysctl;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

pub use error::{NetworkError, Result};
/// Re-exported: request and record maps use it.
pub use indexmap::IndexMap;
pub use ipam::{Ipv4Net, Ipv6Net};
pub use model::*;
pub use proxy_socket::{
    ProxyListener, UdpProxySocket, bind_ipv6_proxy, bind_ipv6_udp_proxy, ipv6_available,
    wants_ipv6_proxy,
};

use store::{Lock, read_json, write_json};

/// Default MTU when `com.docker.network.driver.mtu` is not given.
pub const DEFAULT_MTU: u32 = 1500;

/// Most lingering veths a network remembers (see [`Lingering`]).
const MAX_LINGERING: usize = 256;

/// The networks of one state root.
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    /// Opens (creating if needed) `<state_root>/networks`.
    pub fn open(state_root: &Path) -> Result<Self> {
        let dir = state_root.join("networks");
        std::fs::create_dir_all(&dir).map_err(|e| NetworkError::io("create directory", &dir, e))?;
        Ok(Networks { dir })
    }

    /// The `networks/` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<Lock> {
        Lock::exclusive(&self.dir.join("lock"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every readable network's full state, sorted by name. A damaged record is left out
    /// (and named in a warning): see [`Networks::damaged`].
    pub fn states(&self) -> Result<Vec<NetworkState>> {
        load_states(&self.dir)
    }

    /// The records that cannot be read (empty, garbage, truncated). `network rm <id>` removes
    /// them, with their bridge and rules.
    pub fn damaged(&self) -> Result<Vec<DamagedRecord>> {
        Ok(scan_states(&self.dir)?.damaged)
    }

    /// `<dir>/<id>.creating`: present while the network's bridge and rules are being made.
    fn creating_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{CREATING_SUFFIX}"))
    }

    /// True when network `id`'s creation has not finished: under the root lock, this means
    /// its creator died half-way (a create holds that lock from start to end).
    pub fn is_half_made(&self, id: &str) -> bool {
        self.creating_path(id).exists()
    }

    /// Saves what changes on connect/disconnect/publish: the `<id>.live` file (see
    /// [`LiveState`]).
    fn save(&self, st: &NetworkState) -> Result<()> {
        let live = LiveState::of(st);
        let path = live_path(&self.dir, &st.network.id);
        // Compact: rewritten on every connect and disconnect, under the root lock.
        let bytes = serde_json::to_vec(&live)
            .map_err(|e| NetworkError::Json { path: path.clone(), source: e })?;
        berth_slotfile::write(&path, &bytes).map_err(|e| NetworkError::io("write", &path, e))?;
        self.bump()
    }

    /// Saves the whole network at create: the definition in `<id>.json` (replaced with a
    /// rename, which ext4 makes crash-safe by flushing the data first) and no live part yet.
    fn save_definition(&self, st: &NetworkState) -> Result<()> {
        write_json(&self.state_path(&st.network.id), &LiveState::default().strip(st))?;
        self.bump()
    }

    /// Tells readers (the DNS server) that records changed.
    fn bump(&self) -> Result<()> {
        // Only the file's mtime carries the news (the DNS server keys on inode and mtime):
        // setting it is one inode update, where rewriting the file and renaming it over the old
        // one cost a create, a data flush and a rename (each stalls for milliseconds on a busy
        // disk).
        let path = self.dir.join(dns::GENERATION_FILE);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| NetworkError::io("open", &path, e))?;
        f.set_modified(std::time::SystemTime::now())
            .map_err(|e| NetworkError::io("set the time of", &path, e))
    }

    fn resolve_in(states: &[NetworkState], key: &str) -> Result<NetworkState> {
        if let Some(s) = states.iter().find(|s| s.network.name == key || s.network.id == key) {
            return Ok(s.clone());
        }
        let by_prefix: Vec<&NetworkState> =
            states.iter().filter(|s| !key.is_empty() && s.network.id.starts_with(key)).collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(NetworkError::NotFound(key.to_string())),
            _ => Err(NetworkError::Ambiguous(key.to_string())),
        }
    }

    /// The full state of one network by name, id or unique id prefix. A key that only names a
    /// damaged record (by id or id prefix) gives [`NetworkError::Damaged`].
    pub fn state(&self, key: &str) -> Result<NetworkState> {
        let scan = scan_states(&self.dir)?;
        warn_damaged(&scan.damaged);
        match Self::resolve_in(&scan.states, key) {
            Err(NetworkError::NotFound(_)) => {
                let hits: Vec<&DamagedRecord> = scan
                    .damaged
                    .iter()
                    .filter(|d| d.id == key || (!key.is_empty() && d.id.starts_with(key)))
                    .collect();
                match hits.as_slice() {
                    [] => Err(NetworkError::NotFound(key.to_string())),
                    [d] => Err(NetworkError::Damaged {
                        id: d.id.clone(),
                        path: d.path.clone(),
                        message: d.error.clone(),
                    }),
                    _ => Err(NetworkError::Ambiguous(key.to_string())),
                }
            }
            r => r,
        }
    }

    /// `network inspect`.
    pub fn inspect(&self, key: &str) -> Result<NetworkRecord> {
        Ok(self.state(key)?.network)
    }

    /// `network ls` with docker-style filters.
    pub fn list(&self, filters: &Filters) -> Result<Vec<NetworkRecord>> {
        Ok(self.states()?.into_iter().map(|s| s.network).filter(|r| filters.matches(r)).collect())
    }

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
        let id = store::random_id()?;
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
                if let Some((_, other)) =
                    ours.iter().chain(host.iter()).find(|(n, _)| n.overlaps(&subnet))
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
            let _ = self.bump();
        };
        if let Err(e) = std::fs::File::create_new(&marker) {
            return Err(NetworkError::io("create", &marker, e));
        }
        if let Err(e) = self.save_definition(&st) {
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

    /// `network rm`: refuses while endpoints exist; removes rules, bridge and record. A
    /// damaged record (named by its id or an id prefix) is removed with the bridge and rules
    /// that can be found for it.
    pub fn remove(&self, key: &str) -> Result<()> {
        let _root = self.lock()?;
        match self.state(key) {
            Err(NetworkError::Damaged { id, path, .. }) => self.remove_damaged(&id, &path),
            st => self.remove_locked(&st?),
        }
    }

    /// Removes the damaged record `path` of network `id` (caller holds the root lock): its
    /// bridge (named in its rules, else berth's name for the id), its tagged rules, its subnet
    /// (from the rules or the bridge's address), its files and its forwarding hold. Refused
    /// while the live part, when readable, lists an endpoint whose veth still exists.
    fn remove_damaged(&self, id: &str, path: &Path) -> Result<()> {
        let live = live_path(&self.dir, id);
        let endpoints = berth_slotfile::read(&live)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<LiveState>(&b).ok())
            .map(|l| l.endpoints)
            .unwrap_or_default();
        let mut busy = Vec::new();
        for ep in endpoints.values() {
            if netlink::link_exists(&ep.endpoint.host_ifname)? {
                busy.push(ep.name.as_str());
            }
        }
        if !busy.is_empty() {
            return Err(NetworkError::InUse {
                network: id.to_string(),
                containers: busy.join(", "),
            });
        }
        // Only a name berth made can carry kernel objects of ours (a stray `x.json` has none).
        if id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let _machine = sysctl::machine_lock()?;
            let tag = nft::net_tag(id);
            let (bridge, from_rules) = nft::tagged_facts(&tag);
            let bridge = bridge.unwrap_or_else(|| format!("brt-{}", &id[..10]));
            let subnet = match from_rules {
                Some(n) => Some(n),
                None => netlink::link_ipv4(&bridge)?.and_then(|(a, p)| Ipv4Net::new(a, p)),
            };
            tracing::info!(network = %id, %bridge, ?subnet, "removing a network with a damaged record");
            netlink::delete_link_unlisted(&bridge)?;
            nft::remove_tagged(&tag, subnet.as_ref())?;
        }
        for f in [path.to_path_buf(), live, self.creating_path(id)] {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetworkError::io("remove", &f, e));
                }
                _ => {}
            }
        }
        sysctl::release_forwarding(path)?;
        self.bump()
    }

    fn remove_locked(&self, st: &NetworkState) -> Result<()> {
        let st = &self.drop_stale_endpoints(st.clone())?;
        if !st.endpoints.is_empty() {
            let names: Vec<&str> = st.endpoints.values().map(|e| e.name.as_str()).collect();
            return Err(NetworkError::InUse {
                network: st.network.name.clone(),
                containers: names.join(", "),
            });
        }
        let _machine = sysctl::machine_lock()?;
        // The bridge and the veths exited containers left to the kernel go in one batch
        // (their link group), while nft removes the rules.
        let mut links = vec![st.bridge.clone()];
        links.extend(st.lingering.iter().map(|l| l.host_ifname.clone()));
        let pending = netlink::start_delete(st.group, links)?;
        let rules = nft::remove_tagged(&nft::net_tag(&st.network.id), Some(&st.subnet));
        let unlisted = pending.wait_unlisted();
        rules?;
        unlisted?;
        let path = self.state_path(&st.network.id);
        std::fs::remove_file(&path).map_err(|e| NetworkError::io("remove", &path, e))?;
        for f in [live_path(&self.dir, &st.network.id), self.creating_path(&st.network.id)] {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetworkError::io("remove", &f, e));
                }
                _ => {}
            }
        }
        if !st.network.internal {
            sysctl::release_forwarding(&path)?;
        }
        self.bump()
    }

    /// `network prune`: removes every matching network without endpoints; returns their names.
    pub fn prune(&self, filters: &Filters) -> Result<Vec<String>> {
        let _root = self.lock()?;
        let mut removed = Vec::new();
        for st in self.states()? {
            if st.endpoints.is_empty() && filters.matches(&st.network) {
                self.remove_locked(&st)?;
                removed.push(st.network.name);
            }
        }
        Ok(removed)
    }

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
            store::short_hash(&format!("{}/{}", st.network.id, cfg.container_id))
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
                endpoint_id: store::random_id()?,
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

    /// Forgets endpoints whose host veth is gone (the container's namespace died without a
    /// disconnect, e.g. its monitor was killed), with their ports, names and addresses.
    fn drop_stale_endpoints(&self, mut st: NetworkState) -> Result<NetworkState> {
        let mut stale = Vec::new();
        for (cid, ep) in &st.endpoints {
            if !netlink::link_exists(&ep.endpoint.host_ifname)? {
                stale.push(cid.clone());
            }
        }
        if stale.is_empty() {
            return Ok(st);
        }
        let _machine = sysctl::machine_lock()?;
        for cid in &stale {
            tracing::info!(network = %st.network.name, container = %cid, "dropping stale endpoint");
            let (gone, kept): (Vec<PublishedPort>, Vec<PublishedPort>) =
                st.ports.drain(..).partition(|p| &p.container_id == cid);
            st.ports = kept;
            nft::remove_ports(&st.network.id, &gone)?;
            st.endpoints.remove(cid);
            st.allocations.retain(|_, c| c != cid);
            st.allocations6.retain(|_, c| c != cid);
            st.network.containers.remove(cid);
            st.dns.retain(|d| &d.container_id != cid);
        }
        self.save(&st)?;
        Ok(st)
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

    /// Every port published for `container_id`, on any network (for `port` / `ps`).
    pub fn published_ports(&self, container_id: &str) -> Result<Vec<PublishedPort>> {
        Ok(self
            .states()?
            .into_iter()
            .flat_map(|s| s.ports)
            .filter(|p| p.container_id == container_id)
            .collect())
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

    /// Completes network `st`, whose creator died half-way (caller holds the root lock): its
    /// bridge may lack addresses and its rules may be partial, so both are made again.
    fn finish_creation(&self, st: &NetworkState) -> Result<()> {
        tracing::info!(network = %st.network.name, "completing a network whose creation was cut short");
        {
            let _machine = sysctl::machine_lock()?;
            // By its link group, as `remove` does: an interface that took the name meanwhile
            // is not ours to delete.
            netlink::start_delete(st.group, vec![st.bridge.clone()])?.wait_unlisted()?;
        }
        self.ensure_kernel(st)?;
        let marker = self.creating_path(&st.network.id);
        std::fs::remove_file(&marker).map_err(|e| NetworkError::io("remove", &marker, e))
    }

    /// Removes what writers that died left in the directory (caller holds the root lock, under
    /// which every record is written): temp files, and creation marks without a record.
    fn sweep_stale_files(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let stale = if name.starts_with('.') {
                name.contains(store::TEMP_INFIX)
            } else if let Some(id) = name.strip_suffix(CREATING_SUFFIX) {
                !self.state_path(id).exists()
            } else {
                false
            };
            if stale {
                let _ = std::fs::remove_file(ent.path());
            }
        }
    }

    /// Recreates a recorded network's bridge, nft rules and forwarding hold when they are gone
    /// (after a reboot or a manual `ip link del`); a no-op when the bridge exists.
    pub fn ensure_kernel(&self, st: &NetworkState) -> Result<()> {
        if netlink::link_exists(&st.bridge)? {
            return Ok(());
        }
        tracing::info!(network = %st.network.name, bridge = %st.bridge, "recreating missing bridge");
        let _machine = sysctl::machine_lock()?;
        let v6 = st.gateway6.zip(st.subnet6.map(|s| s.prefix()));
        let alias = orphans::bridge_alias(&st.network.id, &self.dir);
        netlink::create_bridge(
            &st.bridge,
            st.mtu,
            st.gateway,
            st.subnet.prefix(),
            v6,
            st.group,
            &alias,
        )?;
        let id = &st.network.id;
        nft::remove_tagged(&nft::net_tag(id), None)?;
        if !st.network.internal {
            sysctl::enable_route_localnet(&st.bridge)?;
        }
        nft::add_network(id, &st.bridge, &st.subnet, st.network.internal)?;
        if st.subnet6.is_some() {
            nft::add_network6(id, &st.bridge)?;
        }
        for p in &st.ports {
            nft::add_port(id, p)?;
        }
        if !st.network.internal {
            sysctl::hold_forwarding(&self.state_path(id))?;
        }
        Ok(())
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

/// `<dir>/<id>.live`: the network's [`LiveState`].
fn live_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.live"))
}

/// The parts of a network's state that change on every connect, disconnect and publish, kept
/// apart from the definition (`<id>.json`, written once at create). They are rewritten in
/// place as a two-slot record ([`berth_slotfile`]): no data flush (a rename over a file cost
/// 0.3–4 ms of ext4 flush per write on a busy disk), no new inode per write (each would slow
/// later inode allocations on a journal-less ext4). Not flushed: it describes endpoints that a
/// crash kills anyway, so an unreadable one reads as "no endpoints".
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct LiveState {
    containers: BTreeMap<String, ContainerEndpoint>,
    allocations: BTreeMap<Ipv4Addr, String>,
    endpoints: BTreeMap<String, EndpointState>,
    ports: Vec<PublishedPort>,
    dns: Vec<DnsEntry>,
    #[serde(default)]
    allocations6: BTreeMap<std::net::Ipv6Addr, String>,
    #[serde(default)]
    lingering: Vec<Lingering>,
}

impl LiveState {
    pub(crate) fn of(st: &NetworkState) -> Self {
        LiveState {
            containers: st.network.containers.clone(),
            allocations: st.allocations.clone(),
            endpoints: st.endpoints.clone(),
            ports: st.ports.clone(),
            dns: st.dns.clone(),
            allocations6: st.allocations6.clone(),
            lingering: st.lingering.clone(),
        }
    }

    /// `st` with its live parts replaced by these.
    fn apply(self, st: &mut NetworkState) {
        st.network.containers = self.containers;
        st.allocations = self.allocations;
        st.endpoints = self.endpoints;
        st.ports = self.ports;
        st.dns = self.dns;
        st.allocations6 = self.allocations6;
        st.lingering = self.lingering;
    }

    /// A copy of `st` with these (empty) live parts: the definition alone.
    fn strip(self, st: &NetworkState) -> NetworkState {
        let mut d = st.clone();
        self.apply(&mut d);
        d
    }
}

/// What marks a network whose creation has not finished: `<id>.creating`.
const CREATING_SUFFIX: &str = ".creating";

/// A network record (`networks/<id>.json`) that cannot be read: empty, garbage, truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    /// The network's id: the file's name without `.json`.
    pub id: String,
    /// The record's path.
    pub path: PathBuf,
    /// Why it cannot be read.
    pub error: String,
}

impl std::fmt::Display for DamagedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "network record {} cannot be read ({}); it is left out (`berth network rm {}` removes it)",
            self.path.display(),
            self.error,
            self.id
        )
    }
}

/// The records of a directory: the readable ones (sorted by name) and the damaged ones.
struct Scan {
    states: Vec<NetworkState>,
    damaged: Vec<DamagedRecord>,
}

/// Reads every `<id>.json` record in `dir` with its `<id>.live` part.
fn scan_states(dir: &Path) -> Result<Scan> {
    let mut scan = Scan { states: Vec::new(), damaged: Vec::new() };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(NetworkError::io("read directory", dir, e)),
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let name = name.to_string_lossy();
        let Some(id) = name.strip_suffix(".json").filter(|_| !name.starts_with('.')) else {
            continue;
        };
        match load_state(dir, &ent.path()) {
            Ok(Some(st)) => scan.states.push(st),
            // Removed since the listing.
            Ok(None) => {}
            Err(e) => {
                let error = match e {
                    NetworkError::Json { source, .. } => source.to_string(),
                    NetworkError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                scan.damaged.push(DamagedRecord { id: id.to_string(), path: ent.path(), error });
            }
        }
    }
    scan.states.sort_by(|a, b| a.network.name.cmp(&b.network.name));
    scan.damaged.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scan)
}

/// Reads every readable `<id>.json` record in `dir` with its `<id>.live` part, sorted by name;
/// damaged records are left out and named in a warning.
pub(crate) fn load_states(dir: &Path) -> Result<Vec<NetworkState>> {
    let scan = scan_states(dir)?;
    warn_damaged(&scan.damaged);
    Ok(scan.states)
}

/// Warns about each damaged record once per process (commands read the records many times).
fn warn_damaged(damaged: &[DamagedRecord]) {
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for d in damaged {
        let first = WARNED.lock().map(|mut w| w.insert(d.path.clone())).unwrap_or(true);
        if first {
            tracing::warn!("{d}");
        }
    }
}

/// Test hook: when `BERTH_TEST_PAUSE_AT` names `point`, the process stops itself (SIGSTOP)
/// there, so a test can kill it at a known step of a multi-step change. Nothing else sets it.
fn pause_point(point: &str) {
    if std::env::var_os("BERTH_TEST_PAUSE_AT").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

/// Reads one network's definition at `path` (`<dir>/<id>.json`) with its `<id>.live` part.
fn load_state(dir: &Path, path: &Path) -> Result<Option<NetworkState>> {
    let Some(mut st) = read_json::<NetworkState>(path)? else { return Ok(None) };
    let live = live_path(dir, &st.network.id);
    let parsed = berth_slotfile::read(&live).map_err(|e| e.to_string()).and_then(|b| {
        b.map(|b| serde_json::from_slice::<LiveState>(&b)).transpose().map_err(|e| e.to_string())
    });
    match parsed {
        Ok(Some(l)) => l.apply(&mut st),
        // Older roots keep everything in `<id>.json`.
        Ok(None) => {}
        // Unreadable after a crash (its data need not have reached the disk): the endpoints
        // it listed died with the crash anyway.
        Err(e) => {
            tracing::warn!(
                "{}: {e}; treating network {} as having no endpoints",
                live.display(),
                st.network.name
            );
            LiveState::default().apply(&mut st);
        }
    }
    Ok(Some(st))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_left_out_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path()).unwrap();
        let empty = "ab".repeat(32);
        let garbage = "cd".repeat(32);
        std::fs::write(nets.dir().join(format!("{empty}.json")), b"").unwrap();
        std::fs::write(nets.dir().join(format!("{garbage}.json")), b"{\"network\": [").unwrap();
        assert!(nets.states().unwrap().is_empty());
        assert!(nets.list(&Filters::default()).unwrap().is_empty());
        let damaged = nets.damaged().unwrap();
        assert_eq!(damaged.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [&empty, &garbage]);
        let text = damaged[0].to_string();
        assert!(text.contains(&format!("{empty}.json")) && text.contains("network rm"), "{text}");
        // By id or a unique prefix: a sentence naming the file; unknown keys stay NotFound.
        let err = nets.state(&garbage[..6]).unwrap_err();
        assert!(matches!(&err, NetworkError::Damaged { id, .. } if *id == garbage), "{err}");
        assert!(err.to_string().contains(&format!("{garbage}.json")), "{err}");
        assert!(matches!(nets.state("ef"), Err(NetworkError::NotFound(_))));
    }

    #[test]
    fn stale_temp_files_and_marks_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(dir.path()).unwrap();
        let d = nets.dir();
        std::fs::write(d.join(".abc.json.tmp123"), b"{").unwrap();
        std::fs::write(d.join(".abc.live.tmp9"), b"x").unwrap();
        std::fs::write(d.join("orphan.creating"), b"").unwrap();
        std::fs::write(d.join("kept.creating"), b"").unwrap();
        std::fs::write(d.join("kept.json"), b"{}").unwrap();
        nets.sweep_stale_files();
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["kept.creating", "kept.json"]);
    }
}
