//! `berth container stats`: docker's live resource table (CPU %, memory, network and block I/O,
//! pids), refreshed every second, or one frame with `--no-stream`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use berth_runtime::Engine;
use berth_runtime::container::{ContainerStats, ListFilters};

use super::engine_access::engine_err;

/// Docker samples once a second; CPU % is the CPU time used between two samples.
const INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `berth container stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running ones).
    #[arg(short, long)]
    all: bool,
    /// Print one frame and exit instead of refreshing every second.
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate the container id.
    #[arg(long)]
    no_trunc: bool,
    /// Format output: `table` (default) or `json` (one object per container and frame).
    #[arg(long, default_value = "table")]
    format: String,
    /// Containers (default: every running container).
    containers: Vec<String>,
}

/// One displayed row, with docker's field names for `--format json`.
#[derive(Debug, serde::Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct Row {
    block_i_o: String,
    #[serde(rename = "CPUPerc")]
    cpu_perc: String,
    container: String,
    #[serde(rename = "ID")]
    id: String,
    mem_perc: String,
    mem_usage: String,
    name: String,
    #[serde(rename = "NetIO")]
    net_i_o: String,
    #[serde(rename = "PIDs")]
    pids: String,
}

/// Runs `stats` until interrupted (or once with `--no-stream`).
pub async fn run(engine: &Engine, a: StatsArgs) -> anyhow::Result<ExitCode> {
    let host_mem = host_memory();
    let tty = std::io::stdout().is_terminal() && a.format != "json";
    let mut prev: HashMap<String, ContainerStats> = HashMap::new();
    let mut first = true;
    loop {
        let keys = targets(engine, &a).await?;
        let mut rows = Vec::new();
        let mut now = HashMap::new();
        for key in &keys {
            let s = match engine.container_stats(key).await {
                Ok(s) => s,
                // A container removed while we stream drops out, as in docker.
                Err(_) if a.containers.is_empty() => continue,
                Err(e) => return Err(engine_err(e)),
            };
            rows.push(row(key, &s, prev.get(&s.id), host_mem, a.no_trunc));
            now.insert(s.id.clone(), s);
        }
        prev = now;
        // The first sample has no CPU baseline: show a frame only once there is one.
        if !first {
            print_frame(&rows, &a.format, tty);
            if a.no_stream {
                return Ok(ExitCode::SUCCESS);
            }
        }
        first = false;
        tokio::time::sleep(INTERVAL).await;
    }
}

/// The containers to sample this frame: the named ones, else the (running) list.
async fn targets(engine: &Engine, a: &StatsArgs) -> anyhow::Result<Vec<String>> {
    if !a.containers.is_empty() {
        return Ok(a.containers.clone());
    }
    let list = engine.container_list(a.all, &ListFilters::default()).await.map_err(engine_err)?;
    Ok(list.into_iter().map(|c| c.id).collect())
}

/// One row from a sample and the previous sample of the same container.
fn row(
    key: &str,
    s: &ContainerStats,
    prev: Option<&ContainerStats>,
    host_mem: u64,
    no_trunc: bool,
) -> Row {
    let cpu = prev
        .filter(|p| s.read_ns > p.read_ns && s.cpu_total_ns >= p.cpu_total_ns)
        .map_or(0.0, |p| {
            (s.cpu_total_ns - p.cpu_total_ns) as f64 / (s.read_ns - p.read_ns) as f64 * 100.0
        });
    let used = s.memory_usage.saturating_sub(s.memory_inactive_file);
    let limit = if s.memory_limit == 0 { host_mem } else { s.memory_limit.min(host_mem.max(1)) };
    let mem_perc = if limit == 0 { 0.0 } else { used as f64 / limit as f64 * 100.0 };
    let id = if no_trunc { s.id.clone() } else { s.id.chars().take(12).collect() };
    Row {
        block_i_o: format!("{} / {}", decimal_size(s.block_read), decimal_size(s.block_write)),
        cpu_perc: format!("{cpu:.2}%"),
        container: key.to_string(),
        id,
        mem_perc: format!("{mem_perc:.2}%"),
        mem_usage: format!("{} / {}", binary_size(used), binary_size(limit)),
        name: s.name.clone(),
        net_i_o: format!("{} / {}", decimal_size(s.net_rx), decimal_size(s.net_tx)),
        pids: s.pids.to_string(),
    }
}

fn print_frame(rows: &[Row], format: &str, tty: bool) {
    let mut out = std::io::stdout().lock();
    if format == "json" {
        for r in rows {
            let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        let _ = out.flush();
        return;
    }
    let mut table = vec![
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        table.push(vec![
            r.id.clone(),
            r.name.clone(),
            r.cpu_perc.clone(),
            r.mem_usage.clone(),
            r.mem_perc.clone(),
            r.net_i_o.clone(),
            r.block_i_o.clone(),
            r.pids.clone(),
        ]);
    }
    if tty {
        // Redraw in place, as docker does on a terminal.
        let _ = write!(out, "\x1b[2J\x1b[H");
    }
    let mut widths = [0usize; 8];
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &table {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    let _ = out.flush();
}

/// Total RAM, which docker shows as the limit of an unlimited container.
fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Docker's memory units (base 1024, 4 significant digits: `1.5MiB`, `64MiB`).
fn binary_size(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"], 4)
}

/// Docker's I/O units (base 1000, 3 significant digits: `1.2kB`).
fn decimal_size(n: u64) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB", "TB"], 3)
}

/// `n` in the largest unit below `base`, printed like Go's `%.{digits}g` (no trailing zeros).
fn scaled(n: u64, base: f64, units: &[&str], digits: i32) -> String {
    let mut v = n as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    let whole = if v < 1.0 { 1 } else { v.log10().floor() as i32 + 1 };
    let decimals = (digits - whole).max(0) as usize;
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_from_two_samples() {
        let base = ContainerStats {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            cpu_total_ns: 1_000_000_000,
            read_ns: 10_000_000_000,
            ..Default::default()
        };
        let next = ContainerStats {
            cpu_total_ns: 1_250_000_000,
            read_ns: 11_000_000_000,
            memory_usage: 3 * 1024 * 1024,
            memory_inactive_file: 1024 * 1024,
            net_rx: 1500,
            block_write: 4096,
            pids: 2,
            ..base.clone()
        };
        let r = row("web", &next, Some(&base), 8 * 1024 * 1024, false);
        assert_eq!(r.cpu_perc, "25.00%");
        assert_eq!(r.mem_usage, "2MiB / 8MiB");
        assert_eq!(r.mem_perc, "25.00%");
        assert_eq!(r.net_i_o, "1.5kB / 0B");
        assert_eq!(r.block_i_o, "0B / 4.1kB");
        assert_eq!(binary_size(1_234_567), "1.177MiB");
        assert_eq!(decimal_size(999), "999B");
        assert_eq!(r.id, "0123456789ab");
        assert_eq!(r.pids, "2");
        // No baseline: 0 %, never a division by zero.
        assert_eq!(row("web", &next, None, 0, true).cpu_perc, "0.00%");
    }

    #[test]
    fn json_row_uses_docker_field_names() {
        let r = row("c", &ContainerStats { id: "x".into(), ..Default::default() }, None, 1, false);
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "BlockIO",
            "CPUPerc",
            "Container",
            "ID",
            "MemPerc",
            "MemUsage",
            "Name",
            "NetIO",
            "PIDs",
        ] {
            assert!(v.get(k).is_some(), "missing {k} in {v}");
        }
    }
}
