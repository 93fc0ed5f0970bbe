//! berth-network: bridge networks, container endpoints, IPAM, NAT/published ports and service DNS.
//!
//! Entry point: [`Networks`] over a state root (records live in `<root>/networks/`). All calls
//! are synchronous and safe to call from async code via `spawn_blocking`; the DNS server
//! ([`dns::serve`]) is async. See docs/network.md for the design.

#![warn(missing_docs)]

pub mod disk;
pub mod dns;
pub mod error;
pub mod files;
pub mod ipam;
pub mod model;
pub mod netlink;
pub mod nft;
pub mod orphans;
pub mod proxy_socket;
pub mod sysctl;

mod connect;
mod create;
mod live;
mod publish;
mod recovery;
mod remove;
mod reserve;
mod state;

pub use create::DEFAULT_MTU;
pub use error::{NetworkError, Result};
/// Re-exported: request and record maps use it.
pub use indexmap::IndexMap;
pub use ipam::{Ipv4Net, Ipv6Net};
pub use model::*;
pub use proxy_socket::{
    ProxyListener, UdpProxySocket, bind_ipv6_proxy, bind_ipv6_udp_proxy, ipv6_available,
    wants_ipv6_proxy,
};
pub use publish::{PortReservation, reserve_port};
pub use state::{DamagedRecord, Networks};
