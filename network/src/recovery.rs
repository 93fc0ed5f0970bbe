//! Repairing what crashes and reboots leave: stale endpoints, half-made networks, stale temp
//! files and missing bridges or rules.

use crate::error::{NetworkError, Result};
use crate::model::{NetworkState, PublishedPort};
use crate::state::{CREATING_SUFFIX, Networks};
use crate::{disk, ipam, netlink, nft, orphans, reserve, sysctl};

impl Networks {
    /// Forgets endpoints whose host veth is gone (the container's namespace died without a
    /// disconnect, e.g. its monitor was killed), with their ports, names and addresses.
    pub(crate) fn drop_stale_endpoints(&self, mut st: NetworkState) -> Result<NetworkState> {
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

    /// Completes network `st`, whose creator died half-way (caller holds the root lock): its
    /// bridge may lack addresses and its rules may be partial, so both are made again.
    pub(crate) fn finish_creation(&self, st: &NetworkState) -> Result<()> {
        tracing::info!(network = %st.network.name, "completing a network whose creation was cut short");
        // One hold of the machine lock from the delete to the new bridge: no other root may
        // see the subnet free in between.
        let _machine = sysctl::machine_lock()?;
        // By its link group, as `remove` does: an interface that took the name meanwhile
        // is not ours to delete. Waited for to the end: the new bridge gets the same group,
        // and a request still queued would delete it.
        netlink::start_delete(st.group, vec![st.bridge.clone()])?.wait_done()?;
        self.make_kernel(st)?;
        let marker = self.creating_path(&st.network.id);
        std::fs::remove_file(&marker).map_err(|e| NetworkError::io("remove", &marker, e))
    }

    /// Removes what writers that died left in the directory (caller holds the root lock, under
    /// which every record is written): temp files, and creation marks without a record.
    pub(crate) fn sweep_stale_files(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let stale = if name.starts_with('.') {
                name.contains(disk::TEMP_INFIX)
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
        self.make_kernel(st)
    }

    /// Makes network `st`'s bridge, rules and forwarding hold (caller holds the root and the
    /// machine lock, and the bridge does not exist).
    fn make_kernel(&self, st: &NetworkState) -> Result<()> {
        // A network whose create was killed before its bridge existed reserved its subnet only
        // in this root's records: another root may have taken it since. Two bridges with one
        // subnet would mix their traffic and DNS, so refuse to complete it then.
        // The network's own bridge, still going away after `finish_creation` deleted it, is not
        // another owner (each entry's description ends with its interface name).
        let own = format!(" {}", st.bridge);
        let id = &st.network.id;
        if let Some((_, other)) = ipam::host_occupied()
            .into_iter()
            .filter(|(_, what)| !what.ends_with(&own))
            .chain(reserve::others(id))
            .find(|(n, _)| n.overlaps(&st.subnet))
        {
            return Err(NetworkError::SubnetOverlap {
                network: st.network.name.clone(),
                subnet: format!("{} (remove the network and create it again)", st.subnet),
                other,
            });
        }
        // After a reboot emptied /run, the record's reservation is made again.
        reserve::reserve(id, &st.network.name, st.subnet, &self.state_path(id))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
