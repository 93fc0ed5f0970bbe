//! Engine network methods (docker's `/networks` API): thin async wrappers over `berth_network`,
//! plus connect/disconnect of existing containers (recorded, and live while they run).

use berth_network::{Filters, NetworkCreate, NetworkError, NetworkRecord, Networks};

use crate::container::EndpointRequest;
use crate::container::net::{
    DEFAULT_BRIDGE, connect_one, endpoints_of, ensure_default_bridge, ensure_dns, is_bridge_mode,
    live_connected, live_disconnected,
};
use crate::container::{ContainerError, record::ContainerPaths};
use crate::engine::{Engine, blocking};

/// Errors of network operations; each displays as one sentence naming the network/container.
#[derive(Debug, thiserror::Error)]
pub enum EngineNetworkError {
    /// From the network library (names the network, address or port).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// From the container side (names the container).
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The request doesn't make sense for this container.
    #[error("{0}")]
    Invalid(String),
}

impl From<tokio::task::JoinError> for EngineNetworkError {
    fn from(e: tokio::task::JoinError) -> Self {
        EngineNetworkError::Invalid(format!("network task failed: {e}"))
    }
}

impl Engine {
    fn networks(&self) -> Result<Networks, EngineNetworkError> {
        Ok(Networks::open(self.root().path())?)
    }

    /// Creates a network (docker's `POST /networks/create`).
    pub async fn network_create(
        &self,
        req: NetworkCreate,
    ) -> Result<NetworkRecord, EngineNetworkError> {
        let nets = self.networks()?;
        let rec = blocking(move || Ok::<_, EngineNetworkError>(nets.create(req)?)).await?;
        self.network_event("create", &rec.id, &rec.name, None);
        Ok(rec)
    }

    /// Journals network event `action` (docker's attributes: `name`, `type`, `container`).
    fn network_event(&self, action: &str, id: &str, name: &str, container: Option<&str>) {
        let mut attrs = vec![("name", name.to_string()), ("type", "bridge".to_string())];
        if let Some(c) = container {
            attrs.push(("container", c.to_string()));
        }
        crate::events::object(self.root().path(), "network", action, id, &attrs);
    }

    /// Lists networks matching `filters`.
    pub async fn network_list(
        &self,
        filters: Filters,
    ) -> Result<Vec<NetworkRecord>, EngineNetworkError> {
        let nets = self.networks()?;
        blocking(move || Ok(nets.list(&filters)?)).await
    }

    /// One network by name, id or id prefix.
    pub async fn network_inspect(&self, key: &str) -> Result<NetworkRecord, EngineNetworkError> {
        let nets = self.networks()?;
        let key = key.to_string();
        blocking(move || Ok(nets.inspect(&key)?)).await
    }

    /// Removes a network (refused while containers are connected).
    pub async fn network_remove(&self, key: &str) -> Result<(), EngineNetworkError> {
        let nets = self.networks()?;
        let key = key.to_string();
        let rec = blocking(move || {
            let rec = nets.inspect(&key)?;
            nets.remove(&key)?;
            Ok::<_, EngineNetworkError>(rec)
        })
        .await?;
        self.network_event("destroy", &rec.id, &rec.name, None);
        Ok(())
    }

    /// Removes every unused network matching `filters`; returns their names.
    pub async fn network_prune(&self, filters: Filters) -> Result<Vec<String>, EngineNetworkError> {
        let nets = self.networks()?;
        let removed = blocking(move || Ok::<_, EngineNetworkError>(nets.prune(&filters)?)).await?;
        for name in &removed {
            self.network_event("destroy", name, name, None);
        }
        Ok(removed)
    }

    /// Connects a container to a network: recorded for its next starts, and attached now
    /// when it runs (docker's `POST /networks/{id}/connect`).
    pub async fn network_connect(
        &self,
        network: &str,
        container: &str,
        req: EndpointRequest,
    ) -> Result<(), EngineNetworkError> {
        let e = self.clone();
        let (network, container) = (network.to_string(), container.to_string());
        blocking(move || e.connect_sync(&network, &container, req)).await
    }

    fn connect_sync(
        &self,
        network: &str,
        container: &str,
        req: EndpointRequest,
    ) -> Result<(), EngineNetworkError> {
        let nets = self.networks()?;
        if network == DEFAULT_BRIDGE {
            // docker always has `bridge`; berth makes it on first use.
            ensure_default_bridge(&nets)?;
        }
        let net = nets.state(network)?.network.name;
        let l = self.load(container)?;
        let mode = &l.rec.host_config.network_mode;
        // `none` is left for the network (docker wants `network disconnect none C` first).
        let from_none = matches!(mode.as_str(), "none" | "");
        if !from_none && !is_bridge_mode(mode) {
            return Err(EngineNetworkError::Invalid(format!(
                "container {} uses network mode {mode:?} and cannot be connected to network {net}",
                l.rec.name
            )));
        }
        if endpoints_of(&l.rec).iter().any(|(n, _)| *n == net) {
            return Err(
                NetworkError::AlreadyConnected { network: net, container: l.rec.name }.into()
            );
        }
        let paths = ContainerPaths::new(self.root(), &l.rec.id);
        if l.st.state.running && l.st.state.pid > 0 {
            let pid = l.st.state.pid as i32;
            let ep = connect_one(&nets, &l.rec, &net, &req, pid)?;
            let root = self.root().path();
            let live = ensure_dns(root, Some(self.helper_exe()), &[ep.gateway])
                .and_then(|()| live_connected(&nets, &l.rec, &paths, &net, &ep));
            if let Err(e) = live {
                // Nothing half-made: the endpoint (and any port rule of it) goes again.
                let _ = nets.disconnect(&net, &l.rec.id);
                return Err(EngineNetworkError::Invalid(format!(
                    "connecting container {} to network {net}: {e}",
                    l.rec.name
                )));
            }
            poke_monitor(&l.st);
        }
        let _g = paths.lock().map_err(ContainerError::from)?;
        let mut rec = paths.read_config().map_err(ContainerError::from)?.unwrap_or(l.rec);
        if from_none {
            rec.host_config.network_mode = net.clone();
        }
        rec.networking_config.endpoints_config.insert(net.clone(), req);
        paths.write_config(&rec).map_err(ContainerError::from)?;
        let id = nets.state(&net).map(|s| s.network.id).unwrap_or_default();
        self.network_event("connect", &id, &net, Some(&rec.id));
        Ok(())
    }

    /// Disconnects a container from a network, live and in its record.
    pub async fn network_disconnect(
        &self,
        network: &str,
        container: &str,
    ) -> Result<(), EngineNetworkError> {
        let e = self.clone();
        let (network, container) = (network.to_string(), container.to_string());
        blocking(move || e.disconnect_sync(&network, &container)).await
    }

    fn disconnect_sync(&self, network: &str, container: &str) -> Result<(), EngineNetworkError> {
        let nets = self.networks()?;
        let net = nets.state(network)?.network.name;
        let l = self.load(container)?;
        if !endpoints_of(&l.rec).iter().any(|(n, _)| *n == net) {
            return Err(NetworkError::NotConnected { network: net, container: l.rec.name }.into());
        }
        let paths = ContainerPaths::new(self.root(), &l.rec.id);
        if let Some(old) = nets.endpoint(&net, &l.rec.id)? {
            nets.disconnect(&net, &l.rec.id)?;
            if l.st.state.running && l.st.state.pid > 0 {
                let pid = l.st.state.pid as i32;
                let moved = live_disconnected(&nets, &l.rec, &paths, pid, &old);
                poke_monitor(&l.st);
                moved.map_err(|e| {
                    EngineNetworkError::Invalid(format!(
                        "disconnecting container {} from network {net}: {e}",
                        l.rec.name
                    ))
                })?;
            }
        }
        let _g = paths.lock().map_err(ContainerError::from)?;
        let mut rec = paths.read_config().map_err(ContainerError::from)?.unwrap_or(l.rec);
        rec.networking_config.endpoints_config.shift_remove(&net);
        let id = nets.state(&net).map(|s| s.network.id).unwrap_or_default();
        self.network_event("disconnect", &id, &net, Some(&rec.id));
        if rec.host_config.network_mode == net {
            // The mode network is gone; keep any others as the container's networks.
            rec.host_config.network_mode = match rec.networking_config.endpoints_config.first() {
                Some((n, _)) => n.clone(),
                None => "none".into(),
            };
        }
        paths.write_config(&rec).map_err(ContainerError::from)?;
        Ok(())
    }
}

/// Tells a running container's monitor that its published ports changed, so it reserves the
/// new ones and lets go of the old (`crate::container::net::resync`).
fn poke_monitor(st: &crate::container::record::StateRecord) {
    if st.monitor_pid > 0 {
        let _ = crate::process::signal_verified(st.monitor_pid, st.monitor_start, libc::SIGUSR1);
    }
}
