//! Shared helpers for berth's tests: busybox root filesystems, temporary state roots, root checks.
//!
//! Container tests run as root (CI is root). Set `BERTH_SKIP_ROOT_TESTS=1` to skip them on a
//! machine where they can't run; without it a non-root run fails loudly rather than passing empty.

pub mod registry;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's `busybox-static` puts its static binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Returns true when root-requiring tests should run; panics when they can't and weren't skipped.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var_os("BERTH_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipping: needs root (BERTH_SKIP_ROOT_TESTS is set)");
        return false;
    }
    panic!("this test needs root; run as root or set BERTH_SKIP_ROOT_TESTS=1 to skip it");
}

/// A name unique to this test process and call, usable as a project or container name:
/// `{prefix}{pid}x{n}` in lower case (valid for compose project names).
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Fills `dir` with a busybox root filesystem: `/bin/busybox`, one symlink per applet in `/bin`,
/// `/etc/passwd`, `/etc/group`, and empty `/tmp`, `/root`, `/home/app`, `/proc`, `/sys`, `/dev`.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    if !Path::new(BUSYBOX).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "/bin/busybox missing: apt-get install busybox-static",
        ));
    }
    for d in ["bin", "etc", "tmp", "root", "home/app", "proc", "sys", "dev", "var/www"] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::copy(BUSYBOX, dir.join("bin/busybox"))?;
    let out = Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let link = dir.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", link)?;
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n")?;
    fs::set_permissions(dir.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
    Ok(())
}

/// Writes a tarball of a busybox root filesystem (as `docker import` takes) to `tar_path`.
pub fn busybox_rootfs_tar(tar_path: &Path) -> io::Result<()> {
    let tmp = tempfile::tempdir()?;
    busybox_rootfs(tmp.path())?;
    let file = fs::File::create(tar_path)?;
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", tmp.path())?;
    builder.into_inner()?.sync_all()
}

/// A temporary state root for one test; removed (best effort) on drop.
pub struct TempRoot {
    dir: tempfile::TempDir,
}

impl TempRoot {
    /// Creates a fresh, empty state root under the system temp dir.
    pub fn new() -> io::Result<Self> {
        Ok(TempRoot { dir: tempfile::Builder::new().prefix("berth-test-").tempdir()? })
    }

    /// The root's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Mount points (from /proc/self/mountinfo) at or below `prefix`: tests assert this is empty
/// after cleanup.
pub fn mounts_under(prefix: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = prefix.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}
