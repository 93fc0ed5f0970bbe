//! Owner markers on what berth puts on the host, and the records that tell whether their owner
//! still knows them: what `berth system prune` reads to find the bridges, nft rules, subnet
//! elements and `ip_forward` holders a deleted or damaged state root left behind.
//!
//! A bridge carries its owner in its `ifalias`: `berth <network id> <absolute state root>`. It
//! is orphaned when `<root>/networks/<id>.json` no longer exists (the root was deleted, or no
//! longer has the network's record). See docs/system.md.

use std::path::{Path, PathBuf};

use crate::ipam::Ipv4Net;

/// What every berth bridge alias starts with.
pub const ALIAS_PREFIX: &str = "berth ";

/// The name prefix of bridges berth names itself (`brt-<id[..10]>`).
pub const BRIDGE_PREFIX: &str = "brt-";

/// The kernel's limit on an `ifalias` (IFALIASZ, with its terminating NUL).
const MAX_ALIAS: usize = 255;

/// The `ifalias` marking network `id`'s bridge: `berth <id> <absolute state root>`, where the
/// state root is the parent of `networks_dir`. Without the root (`berth <id>`) when the root's
/// path is not UTF-8 or too long for an alias; such a bridge is judged by its id alone.
pub fn bridge_alias(id: &str, networks_dir: &Path) -> String {
    let root = std::path::absolute(networks_dir)
        .ok()
        .and_then(|d| d.parent().map(Path::to_path_buf))
        .and_then(|r| r.to_str().map(str::to_string));
    match root {
        Some(r) if ALIAS_PREFIX.len() + id.len() + 1 + r.len() <= MAX_ALIAS => {
            format!("{ALIAS_PREFIX}{id} {r}")
        }
        _ => format!("{ALIAS_PREFIX}{id}"),
    }
}

/// The network id and (when the alias names one) the state root of a berth bridge alias.
pub fn parse_alias(alias: &str) -> Option<(String, Option<PathBuf>)> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (id, root) = match rest.split_once(' ') {
        Some((id, root)) => (id, Some(PathBuf::from(root)).filter(|r| r.is_absolute())),
        None => (rest, None),
    };
    is_hex_id(id).then(|| (id.to_string(), root))
}

/// Whether `s` looks like a berth object id: 64 lower-case hex digits.
pub fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The record of network `id` in the state root `root` (`networks/<id>.json`).
pub fn record_path(root: &Path, id: &str) -> PathBuf {
    root.join("networks").join(format!("{id}.json"))
}

/// One network a state root knows, read as leniently as possible: a record that cannot be
/// parsed still counts (its id is its file name), with no bridge or subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownNetwork {
    /// The network id.
    pub id: String,
    /// The bridge the record names.
    pub bridge: Option<String>,
    /// The IPv4 subnet the record names.
    pub subnet: Option<Ipv4Net>,
}

/// Every network record (`networks/<id>.json`) of the state root `root`; none when the root or
/// its `networks/` is gone.
pub fn known_networks(root: &Path) -> Vec<KnownNetwork> {
    let Ok(rd) = std::fs::read_dir(root.join("networks")) else { return Vec::new() };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
        if !is_hex_id(id) {
            continue;
        }
        let v: Option<serde_json::Value> = crate::disk::read_json(&e.path()).ok().flatten();
        let field = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(|x| x.as_str());
        out.push(KnownNetwork {
            id: id.to_string(),
            bridge: field("bridge").map(str::to_string),
            subnet: field("subnet").and_then(|s| s.parse().ok()),
        });
    }
    out
}

/// The bridge name berth gives network `id` when none is asked for.
pub fn default_bridge_name(id: &str) -> String {
    format!("{BRIDGE_PREFIX}{}", &id[..id.len().min(10)])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn alias_round_trip_and_limits() {
        let a = bridge_alias(ID, Path::new("/var/lib/berth/networks"));
        assert_eq!(a, format!("berth {ID} /var/lib/berth"));
        assert_eq!(parse_alias(&a), Some((ID.to_string(), Some(PathBuf::from("/var/lib/berth")))));
        // A root with spaces survives: it is everything after the id.
        let a = bridge_alias(ID, Path::new("/tmp/a b/networks"));
        assert_eq!(parse_alias(&a).and_then(|(_, r)| r), Some(PathBuf::from("/tmp/a b")));
        // Too long for IFALIASZ: the id alone.
        let long = format!("/{}/networks", "x".repeat(300));
        let a = bridge_alias(ID, Path::new(&long));
        assert_eq!(a, format!("berth {ID}"));
        assert_eq!(parse_alias(&a), Some((ID.to_string(), None)));
        // Relative roots are made absolute.
        let a = bridge_alias(ID, Path::new("rel/networks"));
        let root = parse_alias(&a).and_then(|(_, r)| r).expect("root");
        assert!(root.is_absolute() && root.ends_with("rel"), "{root:?}");
        // Not ours.
        assert_eq!(parse_alias("berth nothex /x"), None);
        assert_eq!(parse_alias("uplink to rack 3"), None);
        assert_eq!(parse_alias(&format!("berth {ID} relative/root")), Some((ID.to_string(), None)));
    }

    #[test]
    fn known_networks_reads_damaged_records_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nets = dir.path().join("networks");
        std::fs::create_dir_all(&nets).expect("mkdir");
        std::fs::write(nets.join(format!("{ID}.json")), b"").expect("write");
        let other = ID.replace('0', "f");
        std::fs::write(
            nets.join(format!("{other}.json")),
            br#"{"bridge":"brt-ffff","subnet":"10.89.3.0/24"}"#,
        )
        .expect("write");
        std::fs::write(nets.join("lock"), b"").expect("write");
        let mut k = known_networks(dir.path());
        k.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(k.len(), 2);
        assert_eq!((k[0].id.as_str(), k[0].bridge.as_deref()), (ID, None));
        assert_eq!(k[1].bridge.as_deref(), Some("brt-ffff"));
        assert_eq!(k[1].subnet.map(|s| s.to_string()).as_deref(), Some("10.89.3.0/24"));
        assert!(known_networks(&dir.path().join("gone")).is_empty());
    }
}
