//! The container-side filesystem setup: the root filesystem, mounts (docker's defaults and
//! the spec's), the cgroup mounts, masked and read-only paths, hostname and sysctls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libc::c_ulong;
use oci_spec::runtime::{Mount, Spec};

use super::devices::dev_steps;
use super::namespaces::NsPlan;
use super::steps::{InRoot, Op, Step, Target, container_rel, cpath, cstr, mkdirs};
use crate::{LaunchError, Rootfs};

/// The container-side setup: rootfs, mounts, hostname, sysctls, masked/readonly paths.
pub struct FsPlan {
    /// Propagation flags for "/" (MS_REC|MS_SLAVE by default).
    pub propagation: c_ulong,
    /// The new root path (host view).
    pub root: CString,
    /// "." for pivot_root.
    pub dot: CString,
    /// "/" for the final chdir and the read-only remount.
    pub slash: CString,
    /// Mounting the root filesystem on `root`.
    pub rootfs: Step,
    /// Before pivot_root, in order, inside the rootfs.
    pub pre: Vec<Step>,
    /// After pivot_root, in order.
    pub post: Vec<Step>,
    /// Remount / read-only.
    pub readonly_root: bool,
    /// Hostname to set.
    pub hostname: Option<CString>,
    /// Domain name to set.
    pub domainname: Option<CString>,
    /// (/proc/sys path, value) pairs.
    pub sysctls: Vec<(CString, CString)>,
    /// sysctl keys for messages.
    pub sysctl_names: Vec<String>,
    /// Working directory levels to create (container paths), as root, after pivot.
    pub cwd_mkdirs: Vec<CString>,
}

/// Splits mount options into flags, propagation flags and data.
fn parse_options(opts: &[String]) -> (c_ulong, c_ulong, Vec<String>, bool) {
    let mut flags: c_ulong = 0;
    let mut prop: c_ulong = 0;
    let mut data = Vec::new();
    let mut bind = false;
    for o in opts {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "suid" => flags &= !libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "dev" => flags &= !libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "exec" => flags &= !libc::MS_NOEXEC,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "async" => flags &= !libc::MS_SYNCHRONOUS,
            "dirsync" => flags |= libc::MS_DIRSYNC,
            "noatime" => flags |= libc::MS_NOATIME,
            "atime" => flags &= !libc::MS_NOATIME,
            "nodiratime" => flags |= libc::MS_NODIRATIME,
            "diratime" => flags &= !libc::MS_NODIRATIME,
            "relatime" => flags |= libc::MS_RELATIME,
            "norelatime" => flags &= !libc::MS_RELATIME,
            "strictatime" => flags |= libc::MS_STRICTATIME,
            "nostrictatime" => flags &= !libc::MS_STRICTATIME,
            "bind" => bind = true,
            "rbind" => {
                bind = true;
                flags |= libc::MS_REC;
            }
            "private" => prop = libc::MS_PRIVATE,
            "rprivate" => prop = libc::MS_PRIVATE | libc::MS_REC,
            "slave" => prop = libc::MS_SLAVE,
            "rslave" => prop = libc::MS_SLAVE | libc::MS_REC,
            "shared" => prop = libc::MS_SHARED,
            "rshared" => prop = libc::MS_SHARED | libc::MS_REC,
            "unbindable" => prop = libc::MS_UNBINDABLE,
            "runbindable" => prop = libc::MS_UNBINDABLE | libc::MS_REC,
            // Mount-API-only or recursive-ro options berth doesn't implement are ignored.
            "rro" | "rrw" | "tmpcopyup" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, prop, data, bind)
}

/// The mounts docker gives every container, used when the spec has none at that destination.
fn default_mounts(new_net: bool) -> Vec<Mount> {
    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| {
        let mut mnt = Mount::default();
        mnt.set_destination(PathBuf::from(dest))
            .set_typ(Some(typ.to_string()))
            .set_source(Some(PathBuf::from(src)))
            .set_options(Some(opts.iter().map(|s| s.to_string()).collect()));
        mnt
    };
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        if new_net {
            m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
        } else {
            m("/sys", "bind", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])
        },
    ]
}

/// Builds the filesystem plan.
pub fn fs_plan(
    spec: &Spec,
    rootfs: &Rootfs,
    ns: &NsPlan,
    console: Option<&Path>,
) -> Result<FsPlan, LaunchError> {
    let linux = spec.linux().clone().unwrap_or_default();
    let (root_dir, rootfs_step) = match rootfs {
        Rootfs::Overlay { lower, upper, work, target, volatile } => {
            if lower.is_empty() {
                return Err(LaunchError::InvalidSpec("overlay rootfs without lower layers".into()));
            }
            for p in lower.iter().chain([upper, work]) {
                let s = p.to_string_lossy();
                if s.contains(',') || s.contains(':') {
                    return Err(LaunchError::InvalidSpec(format!(
                        "overlay layer path {s} contains ',' or ':'"
                    )));
                }
            }
            let lowers: Vec<String> =
                lower.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let data = format!(
                "lowerdir={},upperdir={},workdir={}{}",
                lowers.join(":"),
                upper.display(),
                work.display(),
                if *volatile { ",volatile" } else { "" }
            );
            if data.len() >= 4000 {
                return Err(LaunchError::Unsupported(format!(
                    "{} image layers: the overlay mount options exceed a page",
                    lower.len()
                )));
            }
            let step = Step {
                op: Op::Mount {
                    src: Some(cstr("overlay", "")?),
                    target: Target::Host(cpath(target, "rootfs target")?),
                    fstype: Some(cstr("overlay", "")?),
                    flags: 0,
                    data: Some(cstr(data, "overlay options")?),
                },
                desc: format!("mount overlay root filesystem on {}", target.display()),
            };
            (target.clone(), step)
        }
        Rootfs::Dir(dir) => {
            let step = Step {
                op: Op::Mount {
                    src: Some(cpath(dir, "rootfs")?),
                    target: Target::Host(cpath(dir, "rootfs")?),
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: None,
                },
                desc: format!("bind root filesystem {}", dir.display()),
            };
            (dir.clone(), step)
        }
    };

    // Defaults at their destinations unless the spec mounts there; then the spec's others.
    let spec_mounts = spec.mounts().clone().unwrap_or_default();
    let mut mounts: Vec<Mount> = Vec::new();
    for d in default_mounts(ns.new_net) {
        match spec_mounts.iter().find(|m| m.destination() == d.destination()) {
            Some(m) => mounts.push(m.clone()),
            None => mounts.push(d),
        }
    }
    let defaults: Vec<PathBuf> = mounts.iter().map(|m| m.destination().clone()).collect();
    mounts.extend(spec_mounts.into_iter().filter(|m| !defaults.contains(m.destination())));

    let mut pre = Vec::new();
    let layout = berth_cgroups::Layout::detect().ok();
    let is_v2 = matches!(layout, Some(berth_cgroups::Layout::V2(_)));
    for m in &mounts {
        let rel = container_rel(m.destination(), "mount destination")?;
        let at = InRoot::new(&rel)?;
        let dest = m.destination().display().to_string();
        let (flags, prop, data, bind_opt) = parse_options(&m.options().clone().unwrap_or_default());
        let mut typ = m.typ().clone().unwrap_or_else(|| "bind".into());
        let mut flags = flags;
        let mut source = m.source().clone();
        if bind_opt {
            typ = "bind".into();
        }
        // sysfs can only be mounted with an own network namespace: share the host's read-only.
        if typ == "sysfs" && !ns.new_net {
            typ = "bind".into();
            source = Some(PathBuf::from("/sys"));
            flags |= libc::MS_REC | libc::MS_RDONLY;
        }
        if typ == "bind" {
            let src = source.clone().ok_or_else(|| {
                LaunchError::InvalidSpec(format!("bind mount on {dest} has no source"))
            })?;
            let src = std::fs::canonicalize(&src).map_err(|source| LaunchError::Io {
                what: format!("bind mount source {} for {dest}", src.display()),
                source,
            })?;
            if let Some(parent) = rel.parent() {
                mkdirs(parent, &mut pre)?;
            }
            if src.is_dir() {
                pre.push(Step {
                    op: Op::Mkdir { at: at.clone(), mode: 0o755 },
                    desc: format!("create mount point {dest}"),
                });
            } else {
                pre.push(Step {
                    op: Op::Touch { at: at.clone() },
                    desc: format!("create mount point {dest}"),
                });
            }
            pre.push(Step {
                op: Op::Mount {
                    src: Some(cpath(&src, "bind source")?),
                    target: Target::Root(at.clone()),
                    fstype: None,
                    flags: libc::MS_BIND | (flags & libc::MS_REC),
                    data: None,
                },
                desc: format!("bind {} on {dest}", src.display()),
            });
            let remount = flags & !libc::MS_REC;
            if remount != 0 {
                pre.push(Step {
                    op: Op::Mount {
                        src: None,
                        target: Target::Root(at.clone()),
                        fstype: None,
                        flags: libc::MS_BIND | libc::MS_REMOUNT | remount,
                        data: None,
                    },
                    desc: format!("remount {dest} with its options"),
                });
            }
        } else {
            mkdirs(&rel, &mut pre)?;
            let (fstype, src) = match typ.as_str() {
                "cgroup" | "cgroup2" if is_v2 => ("cgroup2".to_string(), "cgroup".to_string()),
                // v1/hybrid: a tmpfs holding one mount per hierarchy (see cgroup_v1_steps), or
                // left empty without a cgroup namespace rather than showing the host's tree.
                "cgroup" | "cgroup2" => ("tmpfs".to_string(), "cgroup".to_string()),
                t => (
                    t.to_string(),
                    m.source().as_ref().map_or_else(|| t.to_string(), |s| s.display().to_string()),
                ),
            };
            let data =
                if fstype == "tmpfs" && src == "cgroup" { vec!["mode=755".into()] } else { data };
            let v1_view = src == "cgroup" && fstype == "tmpfs" && ns.new_cgroupns;
            // The v1 view is filled first and made read-only afterwards.
            let flags = match (src == "cgroup", v1_view) {
                (true, true) => flags & !libc::MS_RDONLY,
                (true, false) => flags | libc::MS_RDONLY,
                _ => flags,
            };
            pre.push(Step {
                op: Op::Mount {
                    src: Some(cstr(&src, "mount source")?),
                    target: Target::Root(at.clone()),
                    fstype: Some(cstr(&fstype, "mount type")?),
                    flags: flags & !libc::MS_REC,
                    data: if data.is_empty() {
                        None
                    } else {
                        Some(cstr(data.join(","), "mount options")?)
                    },
                },
                desc: format!("mount {fstype} on {dest}"),
            });
            if m.destination() == Path::new("/dev") && fstype == "tmpfs" {
                dev_steps(&linux, &mut pre)?;
            }
            if v1_view && let Some(layout) = &layout {
                cgroup_v1_steps(&rel, layout, &mut pre)?;
            }
        }
        if prop != 0 {
            pre.push(Step {
                op: Op::Mount {
                    src: None,
                    target: Target::Root(at),
                    fstype: None,
                    flags: prop,
                    data: None,
                },
                desc: format!("set propagation of {dest}"),
            });
        }
    }
    if let Some(console) = console {
        let t = InRoot::new(Path::new("dev/console"))?;
        pre.push(Step { op: Op::Touch { at: t.clone() }, desc: "create /dev/console".into() });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cpath(console, "console")?),
                target: Target::Root(t),
                fstype: None,
                flags: libc::MS_BIND,
                data: None,
            },
            desc: format!("bind the terminal {} on /dev/console", console.display()),
        });
    }

    // After pivot_root: container paths.
    let mut post = Vec::new();
    for p in linux.readonly_paths().clone().unwrap_or_default() {
        container_rel(Path::new(&p), "readonly path")?;
        post.push(Step {
            op: Op::Readonly { path: cstr(&p, "readonly path")? },
            desc: format!("make {p} read-only"),
        });
    }
    for p in linux.masked_paths().clone().unwrap_or_default() {
        container_rel(Path::new(&p), "masked path")?;
        post.push(Step {
            op: Op::Mask { path: cstr(&p, "masked path")? },
            desc: format!("mask {p}"),
        });
    }

    let propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") | Some("rslave") => libc::MS_SLAVE | libc::MS_REC,
        Some("slave") => libc::MS_SLAVE,
        Some("private") => libc::MS_PRIVATE,
        Some("rprivate") => libc::MS_PRIVATE | libc::MS_REC,
        // Shared would leak the container's mounts to the host: refuse, as runc limits it.
        Some(other) => {
            return Err(LaunchError::Unsupported(format!("rootfsPropagation {other}")));
        }
    };

    let hostname = match spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        Some(h) if ns.new_uts => Some(cstr(h, "hostname")?),
        Some(_) => {
            return Err(LaunchError::InvalidSpec(
                "a hostname needs a UTS namespace (not with uts: host)".into(),
            ));
        }
        None => None,
    };
    let domainname = match spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        Some(h) if ns.new_uts => Some(cstr(h, "domainname")?),
        Some(_) => {
            return Err(LaunchError::InvalidSpec("a domainname needs a UTS namespace".into()));
        }
        None => None,
    };

    let mut sysctls = Vec::new();
    let mut sysctl_names = Vec::new();
    let mut keys: Vec<(String, String)> =
        linux.sysctl().clone().unwrap_or_default().into_iter().collect();
    keys.sort();
    for (k, v) in keys {
        check_sysctl(&k, ns)?;
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        sysctls.push((cstr(path, "sysctl")?, cstr(v, "sysctl value")?));
        sysctl_names.push(k);
    }

    let cwd = spec.process().as_ref().map(|p| p.cwd().clone()).unwrap_or_else(|| "/".into());
    let cwd_rel = container_rel(&cwd, "process.cwd")?;
    let mut cwd_mkdirs = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in cwd_rel.components() {
        cur.push(c);
        cwd_mkdirs.push(cpath(&cur, "process.cwd")?);
    }

    Ok(FsPlan {
        propagation,
        root: cpath(&root_dir, "rootfs")?,
        rootfs: rootfs_step,
        dot: cstr(".", "")?,
        slash: cstr("/", "")?,
        pre,
        post,
        readonly_root: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
        hostname,
        domainname,
        sysctls,
        sysctl_names,
        cwd_mkdirs,
    })
}

/// Only namespaced sysctls are allowed (as docker): the others would change the host.
fn check_sysctl(key: &str, ns: &NsPlan) -> Result<(), LaunchError> {
    let ipc = key == "kernel.sem"
        || key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key.starts_with("fs.mqueue.");
    if ipc {
        return Ok(());
    }
    if key.starts_with("net.") {
        if ns.new_net {
            return Ok(());
        }
        return Err(LaunchError::Sysctl {
            key: key.into(),
            reason: "net.* sysctls need the container's own network namespace".into(),
        });
    }
    Err(LaunchError::Sysctl {
        key: key.into(),
        reason: "not a namespaced sysctl (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)"
            .into(),
    })
}

/// The container's /sys/fs/cgroup on v1/hybrid: one read-only cgroup mount per hierarchy (in
/// the container's cgroup namespace they show its own cgroup as the root, so e.g.
/// memory/memory.limit_in_bytes is the container's limit), symlinks for co-mounted controllers
/// (cpu -> cpu,cpuacct), the cgroup2 mount as `unified`, then the tmpfs made read-only.
fn cgroup_v1_steps(
    rel: &Path,
    layout: &berth_cgroups::Layout,
    pre: &mut Vec<Step>,
) -> Result<(), LaunchError> {
    use berth_cgroups::Layout;
    let (v1, unified) = match layout {
        Layout::V1(m) => (m, None),
        Layout::Hybrid { v1, unified } => (v1, Some(unified)),
        Layout::V2(_) => return Ok(()),
    };
    let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // mount point -> controllers mounted there
    let mut hierarchies: std::collections::BTreeMap<&Path, Vec<&str>> = Default::default();
    for (ctrl, mp) in v1 {
        hierarchies.entry(mp.as_path()).or_default().push(ctrl);
    }
    for (mp, ctrls) in &hierarchies {
        let Some(dir) = mp.file_name() else { continue };
        let at = InRoot::new(&rel.join(dir))?;
        pre.push(Step {
            op: Op::Mkdir { at: at.clone(), mode: 0o755 },
            desc: format!("create /{}", rel.join(dir).display()),
        });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cstr("cgroup", "")?),
                target: Target::Root(at),
                fstype: Some(cstr("cgroup", "")?),
                flags: ro,
                data: Some(cstr(ctrls.join(","), "cgroup controllers")?),
            },
            desc: format!("mount the {} cgroup hierarchy", ctrls.join(",")),
        });
        for c in ctrls {
            if Path::new(c) != Path::new(dir) {
                pre.push(Step {
                    op: Op::Symlink {
                        target: cstr(dir.as_bytes(), "cgroup dir")?,
                        at: InRoot::new(&rel.join(c))?,
                    },
                    desc: format!("link /{}", rel.join(c).display()),
                });
            }
        }
    }
    if let Some(u) = unified.and_then(|u| u.file_name()) {
        let at = InRoot::new(&rel.join(u))?;
        pre.push(Step {
            op: Op::Mkdir { at: at.clone(), mode: 0o755 },
            desc: format!("create /{}", rel.join(u).display()),
        });
        pre.push(Step {
            op: Op::Mount {
                src: Some(cstr("cgroup2", "")?),
                target: Target::Root(at),
                fstype: Some(cstr("cgroup2", "")?),
                flags: ro,
                data: None,
            },
            desc: "mount the cgroup2 hierarchy".into(),
        });
    }
    pre.push(Step {
        op: Op::Mount {
            src: None,
            target: Target::Root(InRoot::new(rel)?),
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REMOUNT | ro,
            data: None,
        },
        desc: format!("make /{} read-only", rel.display()),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(new_net: bool) -> NsPlan {
        NsPlan {
            clone_flags: 0,
            new_cgroupns: false,
            join: Vec::new(),
            join_pid: None,
            new_net,
            new_uts: true,
        }
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let o: Vec<String> =
            ["rbind", "ro", "nosuid", "rslave", "size=1m", "mode=1777"].map(String::from).to_vec();
        let (flags, prop, data, bind) = parse_options(&o);
        assert!(bind);
        assert_eq!(flags, libc::MS_REC | libc::MS_RDONLY | libc::MS_NOSUID);
        assert_eq!(prop, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(data, ["size=1m", "mode=1777"]);
    }

    #[test]
    fn only_namespaced_sysctls() {
        assert!(check_sysctl("net.ipv4.ip_forward", &ns(true)).is_ok());
        assert!(check_sysctl("net.ipv4.ip_forward", &ns(false)).is_err());
        for k in ["kernel.shmmax", "kernel.msgmax", "kernel.sem", "fs.mqueue.msg_max"] {
            assert!(check_sysctl(k, &ns(false)).is_ok(), "{k}");
        }
        assert!(check_sysctl("kernel.panic", &ns(true)).is_err());
        assert!(check_sysctl("vm.swappiness", &ns(true)).is_err());
    }

    #[test]
    fn container_paths_are_checked() {
        assert!(container_rel(Path::new("relative"), "x").is_err());
        assert!(container_rel(Path::new("/a/../etc"), "x").is_err());
        assert_eq!(container_rel(Path::new("/a/./b/"), "x").ok(), Some(PathBuf::from("a/b")));
        let r = InRoot::new(Path::new("dev/shm")).expect("in root");
        assert_eq!(r.parent.as_deref(), Some(c"dev"));
        assert_eq!(r.name.as_c_str(), c"shm");
    }
}
