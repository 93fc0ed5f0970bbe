//! Bridge networking for containers: what a container asks of the networks, its published
//! ports, attaching it at start and detaching it at exit, and the `NetworkSettings` that
//! inspect shows.
//!
//! Everything kernel-side is done by `berth_network`; this module only decides what to ask
//! for, in which order, and undoes a partial attach so a failed start leaves nothing. Its
//! files form layers: `error` → `ports` (bindings and what is held for them) → `settings`
//! (the request, checked at create; inspect's view) → `attach` (start, live changes, exit).

mod attach;
mod error;
mod ports;
mod settings;

pub use error::NetAttachError;
pub use ports::{NetHold, parse_host_ip, parse_port_proto, port_mappings};
pub use settings::{
    DEFAULT_BRIDGE, endpoints_of, ensure_default_bridge, is_bridge_mode, parse_links,
};

pub(crate) use attach::{
    connect_one, detach, ensure_dns, live_connected, live_disconnected, release, renamed, resync,
    spawn,
};
pub(crate) use ports::port_summaries;
pub(crate) use settings::{check_create, settings};
