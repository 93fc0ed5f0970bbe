//! Profiles: services without `profiles` are always enabled; others only when one of their
//! profiles is active (`--profile`, `COMPOSE_PROFILES`, `*` for all) or when the service is
//! named on the command line (which activates its profiles). Disabled services are removed.

use crate::tree::{Node, Value};

/// The profiles a service declares (strings only).
pub fn service_profiles(svc: &Node) -> Vec<String> {
    match svc.get("profiles").map(|p| &p.value) {
        Some(Value::Seq(items)) => {
            items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect()
        }
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Adds the profiles of the services named in `targets` to `enabled` and removes every service
/// that is not enabled. Returns the final list of enabled profiles.
pub fn apply(root: &mut Node, enabled: Vec<String>, targets: &[String]) -> Vec<String> {
    apply_reporting(root, enabled, targets).0
}

/// As [`apply`], also returning the names of the services removed.
pub fn apply_reporting(
    root: &mut Node,
    mut enabled: Vec<String>,
    targets: &[String],
) -> (Vec<String>, Vec<String>) {
    let Some(services) =
        root.as_map_mut().and_then(|m| m.get_mut("services")).and_then(|(_, s)| s.as_map_mut())
    else {
        return (enabled, Vec::new());
    };
    for t in targets {
        if let Some((_, svc)) = services.get(t) {
            for p in service_profiles(svc) {
                if !enabled.contains(&p) {
                    enabled.push(p);
                }
            }
        }
    }
    let all = enabled.iter().any(|p| p == "*");
    let mut disabled = Vec::new();
    services.retain(|name, (_, svc)| {
        let ps = service_profiles(svc);
        let keep = ps.is_empty() || all || ps.iter().any(|p| enabled.contains(p));
        if !keep {
            disabled.push(name.clone());
        }
        keep
    });
    (enabled, disabled)
}

/// Splits `COMPOSE_PROFILES` (comma separated, blanks ignored).
pub fn from_env(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}
