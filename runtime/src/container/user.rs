//! Resolving `user[:group]` and supplementary groups against the image's /etc/passwd and
//! /etc/group, read through the image layers (topmost first) without mounting anything.

use std::path::{Path, PathBuf};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership and `group_add`).
    pub additional_gids: Vec<u32>,
    /// Home directory (for HOME), if known.
    pub home: Option<String>,
}

/// Reads `path` (absolute, in the container) from the first layer that has it; None if absent
/// or whited out.
pub fn read_through_layers(layers: &[PathBuf], path: &str) -> Option<String> {
    let rel = path.trim_start_matches('/');
    for layer in layers {
        let p = layer.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => return std::fs::read_to_string(&p).ok(),
            // An overlay whiteout (char device 0:0) or anything else hides lower layers.
            Ok(_) => return None,
            Err(_) => {
                let wh = p.with_file_name(format!(
                    ".wh.{}",
                    Path::new(rel).file_name().and_then(|n| n.to_str()).unwrap_or("")
                ));
                if wh.exists() {
                    return None;
                }
            }
        }
    }
    None
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(s: &str) -> Vec<Passwd> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(s: &str) -> Vec<Group> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A user or group that the image's passwd or group file does not have (docker's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No passwd entry has this name.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// No group entry has this name.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

/// Resolves docker's `user` string (`""`, `name`, `uid`, `name:group`, `uid:gid`) and `group_add`
/// with the given passwd and group file contents; errors are one sentence like docker's.
pub fn resolve(
    user: &str,
    group_add: &[String],
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let users = parse_passwd(passwd.unwrap_or(""));
    let groups = parse_group(group.unwrap_or(""));
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let (uid, mut gid, name, home) = if let Ok(uid) = u.parse::<u32>() {
        match users.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone()), Some(p.home.clone())),
            None => (uid, 0, None, None),
        }
    } else {
        match users.iter().find(|p| p.name == u) {
            Some(p) => (p.uid, p.gid, Some(p.name.clone()), Some(p.home.clone())),
            None => {
                return Err(UserError::NoUser(u.to_string()));
            }
        }
    };
    if let Some(g) = g {
        gid = lookup_group(g, &groups)?;
    }
    let mut additional = Vec::new();
    if g.is_none()
        && let Some(name) = &name
    {
        for gr in &groups {
            if gr.members.iter().any(|m| m == name) && !additional.contains(&gr.gid) {
                additional.push(gr.gid);
            }
        }
    }
    for ga in group_add {
        let id = lookup_group(ga, &groups)?;
        if !additional.contains(&id) {
            additional.push(id);
        }
    }
    Ok(ResolvedUser { uid, gid, additional_gids: additional, home })
}

fn lookup_group(g: &str, groups: &[Group]) -> Result<u32, UserError> {
    if let Ok(id) = g.parse::<u32>() {
        return Ok(id);
    }
    groups
        .iter()
        .find(|gr| gr.name == g)
        .map(|gr| gr.gid)
        .ok_or_else(|| UserError::NoGroup(g.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
    const G: &str = "root:x:0:\napp:x:1000:\nstaff:x:50:app\n";

    #[test]
    fn users_and_groups() {
        let r = resolve("", &[], Some(P), Some(G)).unwrap();
        assert_eq!((r.uid, r.gid), (0, 0));
        let r = resolve("app", &[], Some(P), Some(G)).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids.clone()), (1000, 1000, vec![50]));
        assert_eq!(r.home.as_deref(), Some("/home/app"));
        let r = resolve("1234:staff", &["root".into()], Some(P), Some(G)).unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (1234, 50, vec![0]));
        assert!(
            resolve("nobody", &[], Some(P), Some(G))
                .unwrap_err()
                .to_string()
                .contains("unable to find user nobody")
        );
    }
}
