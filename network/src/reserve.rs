//! Machine-wide subnet reservations: every state root's networks, visible to every other root.
//!
//! A network's record reserves its subnet inside its own root from the moment it is written,
//! but other roots only see a subnet once its bridge carries the route. A create killed
//! between the two (or a bridge gone after a manual `ip link del`) would let another root pick
//! the same subnet, and then the first network could never be completed. So each network also
//! leaves a small file in [`MACHINE_DIR`]`/subnets/` naming its subnet and its record; one whose
//! record is gone (its root was deleted) no longer counts and is swept. Callers hold the
//! machine lock ([`crate::sysctl::machine_lock`]) for every function here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::disk::{TEMP_INFIX, read_json, write_json};
use crate::error::{NetworkError, Result};
use crate::ipam::Ipv4Net;
use crate::sysctl::MACHINE_DIR;

/// One reservation: a network's IPv4 subnet and the record that owns it.
#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    /// The reserved subnet.
    subnet: Ipv4Net,
    /// The network's name, for messages.
    name: String,
    /// The network's state record; the reservation lives as long as this file exists.
    record: PathBuf,
}

fn dir() -> PathBuf {
    Path::new(MACHINE_DIR).join("subnets")
}

fn path_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// The subnets other networks reserve (every network but `except`, an id), each with a
/// description naming the network and its record; stale reservations are removed.
pub(crate) fn others(except: &str) -> Vec<(Ipv4Net, String)> {
    others_in(&dir(), except)
}

fn others_in(dir: &Path, except: &str) -> Vec<(Ipv4Net, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for ent in rd.flatten() {
        let path = ent.path();
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.contains(TEMP_INFIX) {
            // A writer died between write and rename (we hold the lock all writers take).
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Some(id) = name.strip_suffix(".json") else { continue };
        if id == except {
            continue;
        }
        match read_json::<Reservation>(&path) {
            Ok(Some(r)) if r.record.exists() => out.push((
                r.subnet,
                format!("network {} (reserved by {})", r.name, r.record.display()),
            )),
            // A damaged reservation reserves nothing: it would block a subnet for good.
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    out
}

/// Records that network `id` (`name`, recorded at `record`) holds `subnet`.
pub(crate) fn reserve(id: &str, name: &str, subnet: Ipv4Net, record: &Path) -> Result<()> {
    reserve_in(&dir(), id, name, subnet, record)
}

fn reserve_in(dir: &Path, id: &str, name: &str, subnet: Ipv4Net, record: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| NetworkError::io("create", dir, e))?;
    let r = Reservation { subnet, name: name.to_string(), record: record.to_path_buf() };
    write_json(&path_of(dir, id), &r)
}

/// Drops network `id`'s reservation (none is fine).
pub(crate) fn release(id: &str) -> Result<()> {
    release_in(&dir(), id)
}

fn release_in(dir: &Path, id: &str) -> Result<()> {
    let p = path_of(dir, id);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(NetworkError::io("remove", &p, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_live_while_their_record_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("subnets");
        let rec_a = tmp.path().join("a.json");
        let rec_b = tmp.path().join("b.json");
        std::fs::write(&rec_a, b"{}").unwrap();
        let net: Ipv4Net = "172.20.0.0/16".parse().unwrap();
        reserve_in(&dir, "aaa", "one", net, &rec_a).unwrap();
        reserve_in(&dir, "bbb", "two", net, &rec_b).unwrap();
        std::fs::write(dir.join("ccc.json"), b"{").unwrap();
        std::fs::write(dir.join(".ddd.json.tmp7"), b"{").unwrap();

        let seen = others_in(&dir, "zzz");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, net);
        assert!(seen[0].1.starts_with("network one"), "{}", seen[0].1);
        // The one whose record is missing, the damaged one and the temp file were swept.
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["aaa.json"]);

        assert!(others_in(&dir, "aaa").is_empty(), "a network's own reservation is not another's");
        release_in(&dir, "aaa").unwrap();
        release_in(&dir, "aaa").unwrap();
        assert!(others_in(&dir, "zzz").is_empty());
    }
}
