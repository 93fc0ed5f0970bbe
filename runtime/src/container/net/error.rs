//! Why a container's network settings are refused or its networks could not be set up.

use crate::container::ContainerError;

/// Why a container's network settings are refused or its networks could not be set up; each
/// displays as one sentence naming the port, network, link or file.
#[derive(Debug, thiserror::Error)]
pub enum NetAttachError {
    /// From the network library (names the network, address or port).
    #[error(transparent)]
    Network(#[from] berth_network::NetworkError),
    /// A port key of `PortBindings` or `ExposedPorts` that doesn't parse.
    #[error("{0}")]
    Port(String),
    /// A link that doesn't parse.
    #[error("invalid link {0:?}: expected NAME or NAME:ALIAS")]
    Link(String),
    /// No port of a host port range is free.
    #[error("network {net}: no free host port in {first}-{last} for {port}/{protocol}")]
    NoFreePort {
        /// The network the port is published on.
        net: String,
        /// The range's first port.
        first: u16,
        /// The range's last port.
        last: u16,
        /// The container port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: &'static str,
    },
    /// Ports are asked for, but every network of the container is internal.
    #[error("container {0}: ports cannot be published on internal networks only")]
    InternalOnly(String),
    /// The container whose namespace `container:X` joins can't be used.
    #[error(transparent)]
    Container(#[from] Box<ContainerError>),
    /// The container whose namespace `container:X` joins doesn't run.
    #[error("cannot join network namespace of container {0}: container is not running")]
    NotRunning(String),
    /// The mark a `container:X` joiner leaves in X's directory could not be made.
    #[error("cannot join network namespace of container {target}: {source}")]
    Join {
        /// X.
        target: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file the container bind-mounts could not be written.
    #[error("write {}: {source}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The record could not be read.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// No `berth` executable to start the DNS server with.
    #[error("find current executable: {0}")]
    Exe(std::io::Error),
    /// The launcher failed (in the `pre_start` hook: the attach's own error is inside).
    #[error(transparent)]
    Launch(#[from] berth_launch::LaunchError),
}
