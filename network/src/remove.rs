//! `network rm` and `network prune`, including the removal of a damaged record's leftovers.

use std::path::Path;

use crate::error::{NetworkError, Result};
use crate::ipam::Ipv4Net;
use crate::live::{LiveState, live_path};
use crate::model::{Filters, NetworkState};
use crate::state::Networks;
use crate::{netlink, nft, reserve, sysctl};

impl Networks {
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
            reserve::release(id)?;
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
        reserve::release(&st.network.id)?;
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
}
