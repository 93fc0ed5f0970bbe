//! The namespaces a container creates (clone flags) and joins (opened before the fork).

use libc::c_ulong;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::LaunchError;

/// Namespaces to create (clone flags) and to join (fd, type).
pub struct NsPlan {
    /// Flags for clone(2) (pid, net, mnt, uts, ipc).
    pub clone_flags: c_ulong,
    /// Create a cgroup namespace after joining the cgroup.
    pub new_cgroupns: bool,
    /// Namespaces to join in the child: (fd, CLONE_NEW* type, name).
    pub join: Vec<(std::os::fd::OwnedFd, libc::c_int, &'static str)>,
    /// A pid namespace to join: entered last, by a child of the new process (child.rs).
    pub join_pid: Option<std::os::fd::OwnedFd>,
    /// Whether the container has its own network namespace.
    pub new_net: bool,
    /// Whether the container has its own UTS namespace.
    pub new_uts: bool,
}

/// Parses `linux.namespaces`.
pub fn namespaces(spec: &Spec) -> Result<NsPlan, LaunchError> {
    let mut plan = NsPlan {
        clone_flags: 0,
        new_cgroupns: false,
        join: Vec::new(),
        join_pid: None,
        new_net: false,
        new_uts: false,
    };
    let mut has_mnt = false;
    let nss = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    for ns in nss {
        let (flag, name) = match ns.typ() {
            LinuxNamespaceType::Pid => (libc::CLONE_NEWPID, "pid"),
            LinuxNamespaceType::Network => (libc::CLONE_NEWNET, "net"),
            LinuxNamespaceType::Mount => (libc::CLONE_NEWNS, "mnt"),
            LinuxNamespaceType::Uts => (libc::CLONE_NEWUTS, "uts"),
            LinuxNamespaceType::Ipc => (libc::CLONE_NEWIPC, "ipc"),
            LinuxNamespaceType::Cgroup => (libc::CLONE_NEWCGROUP, "cgroup"),
            other => {
                return Err(LaunchError::Unsupported(format!("{other:?} namespaces")));
            }
        };
        match ns.path() {
            Some(path) => {
                if flag == libc::CLONE_NEWNS {
                    return Err(LaunchError::Unsupported(
                        "joining an existing mount namespace".into(),
                    ));
                }
                let fd = std::fs::File::open(path).map_err(|source| LaunchError::Io {
                    what: format!("open {name} namespace {}", path.display()),
                    source,
                })?;
                if flag == libc::CLONE_NEWPID {
                    plan.join_pid = Some(fd.into());
                } else {
                    plan.join.push((fd.into(), flag, name));
                }
            }
            None => match flag {
                libc::CLONE_NEWCGROUP => plan.new_cgroupns = true,
                f => {
                    has_mnt |= f == libc::CLONE_NEWNS;
                    plan.new_net |= f == libc::CLONE_NEWNET;
                    plan.new_uts |= f == libc::CLONE_NEWUTS;
                    plan.clone_flags |= f as c_ulong;
                }
            },
        }
    }
    if !has_mnt {
        return Err(LaunchError::InvalidSpec(
            "a new mount namespace is required (the root filesystem is mounted inside it)".into(),
        ));
    }
    Ok(plan)
}
