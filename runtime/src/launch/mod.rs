//! The launcher: turns a [`LaunchSpec`] into a running process inside new (or joined) namespaces,
//! like an OCI runtime does for a bundle. The engine builds the spec; the monitor calls [`spawn`].
//!
//! The OCI runtime-spec `Spec` carries the process (args, env, cwd, user, capabilities, rlimits,
//! no_new_privileges, terminal), hostname/domainname, mounts, and `linux` (namespaces — a
//! namespace with a `path` is joined, without one is created —, resources, cgroups path, masked and
//! read-only paths, sysctls, devices). What OCI leaves to the caller is in [`LaunchSpec`] itself.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Everything needed to start a container's first process.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The OCI runtime spec (process, mounts, linux namespaces/resources/paths/sysctls/devices).
    pub oci: oci_spec::runtime::Spec,
    /// How the root filesystem is made; mounted inside the container's mount namespace only,
    /// so nothing is left on the host when the container dies.
    pub rootfs: Rootfs,
    /// Which seccomp filter to install.
    pub seccomp: SeccompMode,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals (`init: true`).
    pub init: bool,
}

/// The container's root filesystem.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// overlayfs of read-only image layers (`lower`, topmost first) with a per-container upper.
    Overlay {
        /// Image layer directories, topmost first (overlayfs `lowerdir` order).
        lower: Vec<PathBuf>,
        /// The container's writable layer.
        upper: PathBuf,
        /// overlayfs work directory (same filesystem as `upper`).
        work: PathBuf,
        /// The (empty) directory the overlay is mounted on before pivot_root.
        target: PathBuf,
    },
    /// An existing directory used as is (tests, `--rootfs`).
    Dir(PathBuf),
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// The equivalent of docker's default profile.
    Default,
    /// No filter (`security_opt: seccomp=unconfined`, and `privileged`).
    Unconfined,
}

/// The standard streams handed to the container's process.
#[derive(Debug)]
pub enum Stdio {
    /// Separate pipes/files; `stdin` None means /dev/null.
    Pipes {
        /// Standard input, or None for /dev/null.
        stdin: Option<OwnedFd>,
        /// Standard output.
        stdout: OwnedFd,
        /// Standard error.
        stderr: OwnedFd,
    },
    /// A pseudo-terminal: the slave side becomes the process's stdin/stdout/stderr and its
    /// controlling terminal.
    Pty {
        /// The pty slave.
        slave: OwnedFd,
    },
}

// The launcher work adds: `spawn(&LaunchSpec, Stdio, pre_start: impl FnOnce(Pid) -> Result<..>)
// -> Result<Spawned, LaunchError>` (pre_start runs in the caller after namespaces exist and
// before the entrypoint is exec'd, e.g. to attach networking), `exec_in(...)` for `exec`, and
// the cleanup of the cgroup.
