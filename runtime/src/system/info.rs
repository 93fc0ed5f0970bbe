//! `berth system info`: docker info's useful subset: container and image counts, the storage,
//! logging and cgroup drivers, the cgroup layout as it really is, and the machine (kernel, OS,
//! CPUs, memory). Field names follow docker's JSON, so `--format '{{.CgroupVersion}}'` works.

use std::path::Path;

use berth_cgroups::Layout;
use serde::Serialize;

use super::SystemError;
use crate::Engine;
use crate::container::ListFilters;

/// What `system info` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    /// Containers in any state.
    pub containers: usize,
    /// Running (and restarting) containers.
    pub containers_running: usize,
    /// Paused containers.
    pub containers_paused: usize,
    /// Created, exited and dead containers.
    pub containers_stopped: usize,
    /// Images in the store.
    pub images: usize,
    /// berth's version.
    pub server_version: String,
    /// Always `overlay2` (overlayfs over unpacked layers).
    pub driver: String,
    /// Details of the storage driver, as docker's `[name, value]` pairs.
    pub driver_status: Vec<[String; 2]>,
    /// Always `json-file`.
    pub logging_driver: String,
    /// Always `cgroupfs` (berth writes cgroup files itself; no systemd).
    pub cgroup_driver: String,
    /// `1` or `2`: the hierarchy limits are set in (`1` on a hybrid layout, as docker says).
    pub cgroup_version: String,
    /// berth's own: `v1`, `v2` or `hybrid`, with what the unified hierarchy has.
    pub cgroup_layout: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of /etc/os-release.
    pub operating_system: String,
    /// Always `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// `uname -m`.
    pub architecture: String,
    /// CPUs this process may run on.
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    /// Physical memory in bytes.
    pub mem_total: u64,
    /// The host name.
    pub name: String,
    /// The state root (docker's key name, for templates written for docker).
    pub docker_root_dir: String,
}

/// The cgroup version docker would report and a description of the layout.
fn cgroup_facts() -> (String, String) {
    let controllers = |p: &Path| {
        std::fs::read_to_string(p.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    match Layout::detect() {
        Ok(Layout::V2(root)) => {
            ("2".into(), format!("v2 at {} ({})", root.display(), controllers(&root).join(" ")))
        }
        Ok(Layout::V1(m)) => {
            ("1".into(), format!("v1 ({})", m.keys().cloned().collect::<Vec<_>>().join(" ")))
        }
        Ok(Layout::Hybrid { v1, unified }) => {
            let c = controllers(&unified);
            let what = if c.is_empty() {
                "without controllers".to_string()
            } else {
                format!("with {}", c.join(" "))
            };
            (
                "1".into(),
                format!(
                    "hybrid: v1 controllers ({}), cgroup2 at {} {what}",
                    v1.keys().cloned().collect::<Vec<_>>().join(" "),
                    unified.display()
                ),
            )
        }
        Err(e) => ("".into(), e.to_string()),
    }
}

/// docker's name for the file system the state root is on.
fn backing_fs(root: &Path) -> String {
    match nix::sys::statfs::statfs(root) {
        Ok(s) => {
            let t = s.filesystem_type().0 as u64;
            match t {
                0xEF53 => "extfs".into(),
                0x5846_5342 => "xfs".into(),
                0x9123_683E => "btrfs".into(),
                0x0102_1994 => "tmpfs".into(),
                0x794C_7630 => "overlayfs".into(),
                0x2FC1_2FC1 => "zfs".into(),
                other => format!("<unknown> (0x{other:x})"),
            }
        }
        Err(e) => format!("<unknown> ({e})"),
    }
}

/// The value of `key` in an os-release text, unquoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// `MemTotal` of /proc/meminfo in bytes.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpus() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count()).filter(|i| set.is_set(*i).unwrap_or(false)).count()
        })
        .unwrap_or(0)
}

impl Engine {
    /// `docker info`'s useful subset for this state root and machine.
    pub async fn system_info(&self) -> Result<SystemInfo, SystemError> {
        let list = self.container_list(true, &ListFilters::default()).await?;
        let running =
            list.iter().filter(|c| matches!(c.state.as_str(), "running" | "restarting")).count();
        let paused = list.iter().filter(|c| c.state == "paused").count();
        let images = self.images()?.image_ids()?.len();
        let (cgroup_version, cgroup_layout) = cgroup_facts();
        let uts = nix::sys::utsname::uname().ok();
        let uname = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
        };
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| os_release_value(&t, "PRETTY_NAME"))
            .unwrap_or_else(|| "Linux".into());
        let root = self.root().path();
        let root_abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Ok(SystemInfo {
            containers: list.len(),
            containers_running: running,
            containers_paused: paused,
            containers_stopped: list.len() - running - paused,
            images,
            server_version: env!("CARGO_PKG_VERSION").into(),
            driver: "overlay2".into(),
            driver_status: vec![["Backing Filesystem".into(), backing_fs(root)]],
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version,
            cgroup_layout,
            kernel_version: uname(|u| u.release()),
            operating_system: os,
            os_type: "linux".into(),
            architecture: uname(|u| u.machine()),
            ncpu: cpus(),
            mem_total: mem_total(),
            name: uname(|u| u.nodename()),
            docker_root_dir: root_abs.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_and_machine_facts() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            os_release_value(t, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os_release_value(t, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_value(t, "VERSION"), None);
        assert!(mem_total() > 0);
        assert!(cpus() >= 1);
        assert!(!backing_fs(Path::new("/")).is_empty());
    }
}
