//! The container's device nodes: docker's minimal set in its /dev plus the spec's devices.

use std::path::{Path, PathBuf};

use super::steps::{InRoot, Op, Step, container_rel, cpath, cstr, mkdirs};
use crate::LaunchError;

const DEV_NODES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The device steps of the container's /dev: docker's nodes, then the spec's devices.
pub(super) fn dev_steps(
    linux: &oci_spec::runtime::Linux,
    pre: &mut Vec<Step>,
) -> Result<(), LaunchError> {
    let dev = PathBuf::from("dev");
    let mut nodes: Vec<(PathBuf, u32, u64, u32, u32, PathBuf)> = DEV_NODES
        .iter()
        .map(|(n, ma, mi)| {
            (
                dev.join(n),
                libc::S_IFCHR | 0o666,
                libc::makedev(*ma, *mi),
                0,
                0,
                Path::new("/dev").join(n),
            )
        })
        .collect();
    for d in linux.devices().clone().unwrap_or_default() {
        let rel = container_rel(d.path(), "device path")?;
        let kind = match d.typ().as_str() {
            "b" => libc::S_IFBLK,
            "p" => libc::S_IFIFO,
            _ => libc::S_IFCHR,
        };
        let mode = kind | d.file_mode().unwrap_or(0o666) & 0o7777;
        nodes.push((
            rel,
            mode,
            libc::makedev(d.major() as u32, d.minor() as u32),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
            d.path().clone(),
        ));
    }
    for (path, mode, devno, uid, gid, host) in nodes {
        if let Some(parent) = path.parent() {
            mkdirs(parent, pre)?;
        }
        pre.push(Step {
            op: Op::Device {
                at: InRoot::new(&path)?,
                mode,
                dev: devno,
                uid,
                gid,
                host: cpath(&host, "device")?,
            },
            desc: format!("create device {}", host.display()),
        });
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        pre.push(Step {
            op: Op::Symlink { target: cstr(target, "")?, at: InRoot::new(&dev.join(link))? },
            desc: format!("link /dev/{link}"),
        });
    }
    Ok(())
}
