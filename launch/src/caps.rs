//! Capability sets: docker's default set, and conversion of OCI sets to the kernel's bitmasks.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::LaunchError;
use super::sys::CapData;

/// Docker's default capability set (CapEff 00000000a80425fb).
pub const DOCKER_DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's default sets: bounding = effective = permitted = inheritable = the default list,
/// ambient empty.
pub fn docker_default_capabilities() -> LinuxCapabilities {
    let set: Capabilities = DOCKER_DEFAULT_CAPS.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set.clone()))
        .set_inheritable(Some(set))
        .set_ambient(Some(HashSet::new()));
    c
}

/// Every capability berth itself holds (its bounding set), in all sets but ambient
/// (`privileged`).
pub fn all_capabilities() -> LinuxCapabilities {
    let last = last_cap();
    // "All" is what berth itself may hand out: its own bounding set.
    let own = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let set: Capabilities = own
        .into_iter()
        .filter(|c| u32::from(c.index()) <= last)
        .filter_map(|c| {
            let name = c.to_string();
            Capability::from_str(name.strip_prefix("CAP_").unwrap_or(&name)).ok()
        })
        .collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set.clone()))
        .set_inheritable(Some(set))
        .set_ambient(Some(HashSet::new()));
    c
}

/// The kernel number of an OCI capability.
pub fn cap_number(c: &Capability) -> Result<u8, LaunchError> {
    let name = format!("CAP_{c}");
    caps::Capability::from_str(&name)
        .map(|c| c.index())
        .map_err(|_| LaunchError::InvalidSpec(format!("unknown capability {name}")))
}

/// A set as a 64-bit mask.
pub fn mask(set: &Option<Capabilities>) -> Result<u64, LaunchError> {
    let mut m = 0u64;
    for c in set.iter().flatten() {
        m |= 1u64 << cap_number(c)?;
    }
    Ok(m)
}

/// Precomputed capability changes for the child.
#[derive(Debug, Clone)]
pub struct CapPlan {
    /// Capabilities to drop from the bounding set.
    pub bounding_drop: Vec<u32>,
    /// Effective/permitted/inheritable as capset data.
    pub data: [CapData; 2],
    /// Ambient capabilities to raise.
    pub ambient: Vec<u32>,
    /// The effective mask (for the seccomp profile's capability-dependent rules).
    pub effective: u64,
}

/// The highest capability number the kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Builds the plan from the OCI sets.
pub fn plan(c: &LinuxCapabilities) -> Result<CapPlan, LaunchError> {
    let bounding = mask(c.bounding())?;
    let eff = mask(c.effective())?;
    let perm = mask(c.permitted())? | eff;
    let inh = mask(c.inheritable())?;
    let amb = mask(c.ambient())?;
    // A capability outside berth's own bounding set can't be granted: say which, up front.
    if let Ok(own) = caps::read(None, caps::CapSet::Bounding) {
        let own_mask = own.iter().fold(0u64, |m, c| m | 1u64 << c.index());
        let missing: Vec<String> = caps::all()
            .into_iter()
            .filter(|c| (perm | inh | amb) & !own_mask & (1u64 << c.index()) != 0)
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            let mut missing = missing;
            missing.sort();
            return Err(LaunchError::InvalidSpec(format!(
                "capabilities {} are not available: berth itself does not hold them",
                missing.join(", ")
            )));
        }
    }
    let last = last_cap();
    let bounding_drop = (0..=last).filter(|i| bounding & (1u64 << i) == 0).collect();
    let ambient = (0..=last).filter(|i| amb & (1u64 << i) != 0).collect();
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    Ok(CapPlan {
        bounding_drop,
        data: [
            CapData { effective: lo(eff), permitted: lo(perm), inheritable: lo(inh | amb) },
            CapData { effective: hi(eff), permitted: hi(perm), inheritable: hi(inh | amb) },
        ],
        ambient,
        effective: eff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask() {
        let c = docker_default_capabilities();
        assert_eq!(mask(c.effective()).ok(), Some(0xa80425fb));
    }
}
