//! Looking at containers: inspect, list (with docker's status text), top, stats, and which
//! volumes and images containers use.

use std::fs;

use super::api::*;
use super::damaged::Entry;
use super::record::{ContainerPaths, Loaded};
use super::{ContainerError, cgroup};
use crate::engine::Engine;
use crate::process;
use crate::time::human_duration;

fn since(t: &str) -> String {
    match crate::time::parse_time(t) {
        Some(t) => human_duration(chrono::Utc::now() - t),
        None => "Less than a second".into(),
    }
}

/// docker's list `Status` column for a state.
pub fn status_text(st: &ContainerState) -> String {
    let health = st
        .health
        .as_ref()
        .map(|h| match h.status.as_str() {
            "starting" => " (health: starting)".to_string(),
            "" => String::new(),
            s => format!(" ({s})"),
        })
        .unwrap_or_default();
    if st.restarting {
        format!("Restarting ({}) {} ago", st.exit_code, since(&st.finished_at))
    } else if st.running && st.paused {
        format!("Up {} (Paused)", since(&st.started_at))
    } else if st.running {
        format!("Up {}{health}", since(&st.started_at))
    } else if st.status == "created" {
        "Created".into()
    } else {
        format!("Exited ({}) {} ago", st.exit_code, since(&st.finished_at))
    }
}

/// Builds the inspect view of a loaded container.
pub(crate) fn inspect_of(l: &Loaded) -> ContainerInspect {
    let mut state = l.st.state.clone();
    if !state.running {
        state.pid = 0;
    }
    ContainerInspect {
        id: l.rec.id.clone(),
        created: l.rec.created.clone(),
        path: l.rec.path.clone(),
        args: l.rec.args.clone(),
        state,
        image: l.rec.image_id.clone(),
        resolv_conf_path: l.paths.resolv_conf().to_string_lossy().to_string(),
        hostname_path: l.paths.hostname().to_string_lossy().to_string(),
        hosts_path: l.paths.hosts().to_string_lossy().to_string(),
        log_path: l.paths.log().to_string_lossy().to_string(),
        name: format!("/{}", l.rec.name),
        restart_count: l.st.restart_count,
        driver: "overlay2".into(),
        platform: "linux".into(),
        host_config: l.rec.host_config.clone(),
        mounts: l.rec.mounts.clone(),
        config: l.rec.config.clone(),
        network_settings: super::net::settings(l),
    }
}

fn ps_row(pid: i32) -> Option<Vec<String>> {
    let stat = process::proc_stat(pid)?;
    let ticks = process::clock_ticks();
    let secs = stat.cpu_ticks / ticks;
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let stime = process::boot_time()
        .map(|b| {
            let t = chrono::DateTime::from_timestamp((b + stat.start_ticks / ticks) as i64, 0)
                .unwrap_or_default();
            t.format("%H:%M").to_string()
        })
        .unwrap_or_else(|| "?".into());
    let ppid = stat.ppid;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("0")
        .to_string();
    let uname = fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let v: Vec<&str> = l.split(':').collect();
                (v.get(2) == Some(&uid.as_str())).then(|| v[0].to_string())
            })
        })
        .unwrap_or(uid);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = cmdline
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    Some(vec![uname, pid.to_string(), ppid, "0".into(), stime, "?".into(), time, cmd])
}

impl Engine {
    /// Full details of a container (by id, name or unique id prefix).
    pub async fn container_inspect(&self, key: &str) -> Result<ContainerInspect, ContainerError> {
        let l = self.load(key)?;
        Ok(inspect_of(&l))
    }

    /// The fifo an attached client writes the stdin of container `id` (full id) to.
    pub fn container_stdin_fifo(&self, id: &str) -> std::path::PathBuf {
        ContainerPaths::new(self.root(), id).stdin_fifo()
    }

    /// Whether the last stop of container `id` (full id) was asked for (stop, restart, down)
    /// rather than its process's own end; false when unknown.
    pub fn container_stop_was_requested(&self, id: &str) -> bool {
        ContainerPaths::new(self.root(), id).read_state().map(|s| s.manual_stop).unwrap_or(false)
    }

    /// Bytes in the writable layer of container `id` (full id), docker's `SizeRw`.
    pub fn container_size_rw(&self, id: &str) -> u64 {
        crate::system::du(&ContainerPaths::new(self.root(), id).upper())
    }

    /// Lists containers (`all`: also stopped ones), newest first.
    pub async fn container_list(
        &self,
        all: bool,
        filters: &ListFilters,
    ) -> Result<Vec<ContainerSummary>, ContainerError> {
        let mut out: Vec<(String, ContainerSummary)> = Vec::new();
        for r in self.leftover_removals() {
            r.finish();
        }
        let mut damaged = Vec::new();
        for entry in self.scan_containers() {
            let rec = match entry {
                Entry::Ok(r) => r,
                Entry::Damaged(d) => {
                    damaged.push(d);
                    continue;
                }
            };
            let paths = ContainerPaths::new(self.root(), &rec.id);
            let st = match self.checked_state(&paths) {
                Ok(st) => st,
                Err(ContainerError::Damaged { damage, .. }) => {
                    let id = rec.id.clone();
                    damaged.push(self.damaged(&id, damage, Some(rec)));
                    continue;
                }
                Err(_) => continue,
            };
            let s = &st.state;
            if !all && !s.running && !s.restarting && filters.status.is_empty() {
                continue;
            }
            if !filters.matches(&rec.id, &rec.name, &rec.config.labels, &s.status) {
                continue;
            }
            let mut argv = vec![rec.path.clone()];
            argv.extend(rec.args.iter().cloned());
            let created = crate::time::parse_time(&rec.created).map(|t| t.timestamp()).unwrap_or(0);
            out.push((
                rec.created.clone(),
                ContainerSummary {
                    id: rec.id.clone(),
                    names: vec![format!("/{}", rec.name)],
                    image: if rec.config.image.is_empty() {
                        "(rootfs)".into()
                    } else {
                        rec.config.image.clone()
                    },
                    image_id: rec.image_id.clone(),
                    command: argv.join(" "),
                    created,
                    labels: rec.config.labels.clone(),
                    state: s.status.clone(),
                    status: status_text(s),
                    mounts: rec.mounts.clone(),
                    ports: super::net::port_summaries(self.root(), &rec.id),
                },
            ));
        }
        out.extend(self.damaged_rows(damaged, all, filters));
        out.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(out.into_iter().map(|(_, s)| s).collect())
    }

    /// Processes of a running container, with `ps -ef`-like columns.
    pub async fn container_top(&self, key: &str) -> Result<TopResult, ContainerError> {
        let l = self.load(key)?;
        if !l.st.state.running {
            return Err(ContainerError::NotRunning(l.rec.name.clone()));
        }
        let cg = l.st.cgroup.as_ref().and_then(|c| c.to_str()).unwrap_or_default().to_string();
        let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
        let mut rows = Vec::new();
        for pid in cgroup::pids(&cg) {
            if let Some(row) = ps_row(pid) {
                rows.push(row);
            }
        }
        Ok(TopResult { titles: titles.iter().map(|s| s.to_string()).collect(), processes: rows })
    }

    /// One sample of the container's resource usage.
    pub async fn container_stats(&self, key: &str) -> Result<ContainerStats, ContainerError> {
        let l = self.load(key)?;
        let mut s =
            ContainerStats { id: l.rec.id.clone(), name: l.rec.name.clone(), ..Default::default() };
        if l.st.state.running {
            let cg = l.st.cgroup.as_ref().and_then(|c| c.to_str()).unwrap_or_default().to_string();
            let u = cgroup::usage(&cg).map_err(|e| ContainerError::Invalid(e.to_string()))?;
            s.cpu_total_ns = u.cpu_ns;
            s.memory_usage = u.memory;
            s.memory_limit = u.memory_limit;
            s.pids = u.pids;
            s.memory_inactive_file = u.memory_inactive_file;
            s.block_read = u.block_read;
            s.block_write = u.block_write;
            if l.st.state.pid > 0 {
                (s.net_rx, s.net_tx) = net_io(l.st.state.pid as i32);
            }
        }
        s.read_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(s)
    }

    /// Names of the volumes any container (running or not) mounts, for `volume rm`/`prune`.
    pub async fn container_volumes_in_use(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .all_records()
            .into_iter()
            .flat_map(|r| r.mounts.into_iter().filter(|m| m.typ == "volume").map(|m| m.name))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Ids of the images some container (in any state) was created from; `image rm`/`prune`
    /// refuse to delete them without force, like docker.
    pub async fn container_images_in_use(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.all_records().into_iter().map(|r| r.image_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Bytes (received, transmitted) on every interface but `lo` of `pid`'s network namespace.
pub fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

/// Sums `/proc/net/dev` counters (columns: rx bytes is the 1st, tx bytes the 9th), skipping `lo`.
fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else { continue };
        if iface.trim() == "lo" {
            continue;
        }
        let cols: Vec<u64> = counters.split_whitespace().map(|c| c.parse().unwrap_or(0)).collect();
        if cols.len() >= 9 {
            rx += cols[0];
            tx += cols[8];
        }
    }
    (rx, tx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
 eth0:    1500      10    0    0    0     0          0         0      700       5    0    0    0     0       0          0\n  \
 eth1:      10       1    0    0    0     0          0         0        3       1    0    0    0     0       0          0\n";
        assert_eq!(super::parse_net_dev(text), (1510, 703));
    }
}
