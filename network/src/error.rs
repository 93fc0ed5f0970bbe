//! Typed errors for every network operation; each names the network, address or port involved.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Everything that can go wrong in berth-network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// An I/O operation on a state or kernel path failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A state record could not be (de)serialised.
    #[error("corrupt network record {path}: {source}")]
    Json {
        /// The record's path.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// No network has this name or id.
    #[error("network {0} not found")]
    NotFound(String),
    /// An id prefix matched more than one network.
    #[error("network name or id {0} is ambiguous")]
    Ambiguous(String),
    /// A network with this name exists already.
    #[error("network with name {0} already exists")]
    AlreadyExists(String),
    /// The request is not valid (bad subnet, driver, option ...).
    #[error("network {network}: {message}")]
    Invalid {
        /// The network concerned.
        network: String,
        /// What is wrong.
        message: String,
    },
    /// The requested subnet overlaps another network or a host route.
    #[error("network {network}: subnet {subnet} overlaps {other}")]
    SubnetOverlap {
        /// The network being created.
        network: String,
        /// Its subnet.
        subnet: String,
        /// What it overlaps.
        other: String,
    },
    /// No free subnet is left in the default pools.
    #[error("network {0}: no free subnet left in the default address pools")]
    PoolExhausted(String),
    /// A static address is outside the subnet, the gateway, or taken.
    #[error("network {network}: address {address} {reason}")]
    AddressUnavailable {
        /// The network concerned.
        network: String,
        /// The requested address.
        address: Ipv4Addr,
        /// Why it can't be used.
        reason: String,
    },
    /// No address is left in the network's range.
    #[error("network {0}: no free address left")]
    AddressesExhausted(String),
    /// The network still has endpoints.
    #[error("network {network} has active endpoints ({containers})")]
    InUse {
        /// The network.
        network: String,
        /// Names of the attached containers.
        containers: String,
    },
    /// The container is already connected to the network.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// The container is not connected to the network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// The network.
        network: String,
        /// The container.
        container: String,
    },
    /// A host port is already in use.
    #[error("network {network}: host port {host_ip}:{port}/{protocol} is already in use{detail}")]
    PortInUse {
        /// The network.
        network: String,
        /// The host address.
        host_ip: String,
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: String,
        /// Who holds it, when known.
        detail: String,
    },
    /// A published port's host address is not an address of this host (or its family is
    /// not available).
    #[error(
        "network {network}: cannot publish port {port}/{protocol} on {host_ip}: the host has no such address"
    )]
    HostAddressUnavailable {
        /// The network.
        network: String,
        /// The host address asked for.
        host_ip: std::net::IpAddr,
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: String,
    },
    /// A netlink request failed.
    #[error("{context}: {message}")]
    Netlink {
        /// What was being done (names the network / link).
        context: String,
        /// The kernel's answer.
        message: String,
    },
    /// An nft invocation failed.
    #[error("nftables ({context}): {message}")]
    Nft {
        /// What was being done.
        context: String,
        /// nft's stderr or the spawn error.
        message: String,
    },
    /// A network's record cannot be read (empty, garbage, truncated).
    #[error("network record {path} cannot be read ({message}); `berth network rm {id}` removes it")]
    Damaged {
        /// The network's id (the record's file name).
        id: String,
        /// The record.
        path: PathBuf,
        /// Why it cannot be read.
        message: String,
    },
    /// A DNS server error.
    #[error("dns: {0}")]
    Dns(String),
}

impl NetworkError {
    /// Wraps an io::Error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetworkError::Io { op, path: path.into(), source }
    }
}

/// Shorthand result type.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
