//! Engine-side names compose gives a project's objects: containers, networks, volumes. A leaf
//! module, so the container config, the operations and the one-off code share them without
//! importing each other.

use compose_spec::model::{Project, Service};

/// The container name of replica `number` of `service` (`container_name` wins).
pub fn container_name(project: &str, service: &str, s: &Service, number: u32) -> String {
    match &s.container_name {
        Some(n) => n.clone(),
        None => format!("{project}-{service}-{number}"),
    }
}

/// The engine-side name of compose network `key` (its `name:`, else `{project}_{key}`;
/// external ones keep their key).
pub fn network_name(p: &Project, key: &str) -> String {
    match p.networks.get(key) {
        Some(n) => n.name.clone().unwrap_or_else(|| {
            if n.external { key.to_string() } else { format!("{}_{key}", p.name) }
        }),
        None => format!("{}_{key}", p.name),
    }
}
