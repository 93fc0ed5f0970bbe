//! The live part of a network record (`<id>.live`): what changes on every connect, disconnect
//! and publish, kept apart from the definition.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::model::{
    ContainerEndpoint, DnsEntry, EndpointState, Lingering, NetworkState, PublishedPort,
};

/// `<dir>/<id>.live`: the network's [`LiveState`].
pub(crate) fn live_path(dir: &Path, id: &str) -> PathBuf {
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
    pub(crate) endpoints: BTreeMap<String, EndpointState>,
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
    pub(crate) fn apply(self, st: &mut NetworkState) {
        st.network.containers = self.containers;
        st.allocations = self.allocations;
        st.endpoints = self.endpoints;
        st.ports = self.ports;
        st.dns = self.dns;
        st.allocations6 = self.allocations6;
        st.lingering = self.lingering;
    }

    /// A copy of `st` with these (empty) live parts: the definition alone.
    pub(crate) fn strip(self, st: &NetworkState) -> NetworkState {
        let mut d = st.clone();
        self.apply(&mut d);
        d
    }
}
