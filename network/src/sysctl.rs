//! Kernel switches berth flips: `net.ipv4.ip_forward` (held while any non-internal berth network
//! exists on the machine, restored to its old value after) and per-bridge `route_localnet`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::disk::{Lock, read_json, write_json};
use crate::error::{NetworkError, Result};

/// Machine-wide directory for state shared by every berth state root (sysctl record, lock).
pub const MACHINE_DIR: &str = "/run/berth-network";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Takes the machine-wide lock that serialises nft and sysctl changes across state roots.
pub fn machine_lock() -> Result<Lock> {
    Lock::exclusive(&Path::new(MACHINE_DIR).join("lock"))
}

/// What we changed: the value before we enabled forwarding, and who needs it now.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ForwardRecord {
    /// `ip_forward` before berth set it to 1; None when it was already 1.
    original: Option<String>,
    /// Network state files that need forwarding; stale ones (file gone) are dropped.
    holders: Vec<PathBuf>,
}

fn record_path() -> PathBuf {
    Path::new(MACHINE_DIR).join("ip_forward.json")
}

/// The record, or None when there is none. A damaged one (a crash, a full disk) counts as
/// none, with a warning: it must not block every network create and remove on the machine;
/// what is lost is the value to restore and the other holders, which only delays a restore.
fn read_record(path: &Path) -> Result<Option<ForwardRecord>> {
    match read_json(path) {
        Err(NetworkError::Json { source, .. }) => {
            tracing::warn!("{}: {source}; starting a new record", path.display());
            Ok(None)
        }
        r => r,
    }
}

fn read_sysctl(path: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| NetworkError::io("read", path, e))
}

fn write_sysctl(path: &str, v: &str) -> Result<()> {
    std::fs::write(path, v).map_err(|e| NetworkError::io("write", path, e))
}

/// Registers `holder` as needing forwarding and enables it (caller holds the machine lock).
pub fn hold_forwarding(holder: &Path) -> Result<()> {
    let path = record_path();
    let mut rec = read_record(&path)?.unwrap_or_default();
    rec.holders.retain(|h| h.exists());
    let current = read_sysctl(IP_FORWARD)?;
    if current != "1" {
        if rec.original.is_none() {
            rec.original = Some(current);
        }
        write_sysctl(IP_FORWARD, "1")?;
    }
    if !rec.holders.iter().any(|h| h == holder) {
        rec.holders.push(holder.to_path_buf());
    }
    write_json(&path, &rec)
}

/// Drops `holder`; when no holder is left, restores `ip_forward` if berth changed it.
pub fn release_forwarding(holder: &Path) -> Result<()> {
    let path = record_path();
    let Some(mut rec) = read_record(&path)? else { return Ok(()) };
    rec.holders.retain(|h| h != holder && h.exists());
    if rec.holders.is_empty() {
        if let Some(orig) = rec.original.take() {
            write_sysctl(IP_FORWARD, &orig)?;
        }
        return std::fs::remove_file(&path).map_err(|e| NetworkError::io("remove", &path, e));
    }
    write_json(&path, &rec)
}

/// Sets `route_localnet` on our bridge so 127.0.0.1 can be DNATed to a container behind it.
pub fn enable_route_localnet(bridge: &str) -> Result<()> {
    write_sysctl(&format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), "1")
}

/// Drops the holders whose network record is gone (a deleted state root's networks) from the
/// `ip_forward` record, restoring `ip_forward` when none is left; returns the dropped ones.
/// The caller holds the machine lock.
pub fn drop_stale_holders() -> Result<Vec<PathBuf>> {
    let path = record_path();
    let Some(rec) = read_json::<ForwardRecord>(&path)? else { return Ok(Vec::new()) };
    let stale: Vec<PathBuf> = rec.holders.iter().filter(|h| !h.exists()).cloned().collect();
    if !stale.is_empty() || rec.holders.is_empty() {
        // An empty holder path is never a holder: release_forwarding drops the stale ones and
        // restores the old value once nothing holds forwarding.
        release_forwarding(Path::new(""))?;
    }
    Ok(stale)
}

/// The network records the `ip_forward` record lists as needing forwarding (each
/// `<state root>/networks/<id>.json`), whether or not they still exist.
pub fn forwarding_holders() -> Vec<PathBuf> {
    read_json::<ForwardRecord>(&record_path()).ok().flatten().map(|r| r.holders).unwrap_or_default()
}
