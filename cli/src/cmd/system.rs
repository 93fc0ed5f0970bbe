//! `berth system`: `prune` (docker's `system prune` in the state root, then what deleted or
//! damaged state roots left on the host), `df` and `info`, in docker's output shapes, and
//! `service` (the Docker Engine API on a socket, crate berth-api).

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use berth_image::{ImageStore, RemoveItem};
use berth_runtime::container::ListFilters;
use berth_runtime::system::{self, DiskUsage};
use berth_runtime::volume::VolumeStore;
use berth_store::StateRoot;

use super::EngineOpts;

/// `berth system` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Remove unused data, and what deleted or damaged state roots left on this host.
    Prune {
        /// Remove all unused images, not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes.
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show disk usage.
    Df {
        /// Show detailed information on space usage.
        #[arg(short, long)]
        verbose: bool,
        /// Format output: `table` (default), `json`, or a Go template (`{{.Type}} {{.Size}}`).
        #[arg(long)]
        format: Option<String>,
    },
    /// Display system-wide information.
    Info {
        /// Format output: `json`, or a Go template (`{{.CgroupVersion}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Serve the Docker Engine API (docker CLI, docker-py, bollard...) over this state root.
    Service {
        /// Where to listen: `unix:///PATH` (0660, group `berth` if it exists) or
        /// `tcp://127.0.0.1:PORT` (loopback only); repeatable. Default: the sockets systemd's
        /// socket activation passes, else unix:///run/berth/berth.sock.
        #[arg(short = 'H', long = "host", value_name = "URI")]
        hosts: Vec<String>,
        /// Exit after this many seconds without a connection (0: run until stopped).
        #[arg(short = 't', long = "timeout", visible_alias = "time", default_value_t = 5)]
        timeout: u64,
    },
}

/// Runs a `berth system` subcommand.
pub fn run(opts: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Prune { all, volumes, force } => prune(opts, all, volumes, force),
        Command::Df { verbose, format } => df(opts, verbose, format.as_deref()),
        Command::Info { format } => info(opts, format.as_deref()),
        Command::Service { hosts, timeout } => service(opts, &hosts, timeout),
    }
}

/// `berth system service`: serves until SIGINT/SIGTERM or `timeout` idle seconds; containers
/// keep running after it exits (each has its monitor).
fn service(opts: &EngineOpts, hosts: &[String], timeout: u64) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let hosts = hosts
        .iter()
        .map(|h| h.parse::<berth_api::Host>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("berth system service: {e}"))?;
    let engine = super::engine_access::engine(opts)?;
    let idle_timeout = (timeout > 0).then(|| std::time::Duration::from_secs(timeout));
    // Several clients at once (a waiting `run` while another request comes): worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(berth_api::serve(engine, berth_api::ServeOptions { hosts, idle_timeout }))
        .map_err(|e| anyhow::anyhow!("berth system service: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// docker's `units.HumanSize`: decimal units, four significant digits (`16.43MB`).
pub fn human_size(n: u64) -> String {
    human_size_with_precision(n, 4)
}

/// docker's `units.HumanSizeWithPrecision`: decimal units, `digits` significant digits
/// (`image ls` uses 3: `4.26MB`).
pub fn human_size_with_precision(n: u64, digits: i32) -> String {
    scaled(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], digits)
}

/// docker's `units.BytesSize`: binary units, four significant digits (`3.827GiB`).
pub fn bytes_size(n: u64) -> String {
    scaled(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"], 4)
}

fn scaled(n: u64, base: f64, units: &[&str], digits: i32) -> String {
    let mut v = n as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", significant(v, digits), units[i])
}

/// Go's `%.<digits>g` for the values sizes take (0 and 1..1024): `digits` significant digits,
/// trailing zeros dropped.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// Prints rows like docker's tabwriter (minimum width 10, padding 3; the last column as is).
fn table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![10; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count() + 3);
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn confirm(prompt: &str) -> bool {
    eprint!("{prompt} [y/N] ");
    let _ = io::stderr().flush();
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// The warning docker prints before `system prune`, plus berth's host part.
fn prune_warning(all: bool, volumes: bool) -> String {
    let mut w = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if volumes {
        w.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    w.push_str(if all {
        "  - all images without at least one container associated to them\n"
    } else {
        "  - all dangling images\n"
    });
    w.push_str(
        "  - what deleted or damaged state roots left on this host (their containers and\n    monitors, DNS servers, mounts, cgroups, bridges, nft rules)\n",
    );
    w.push_str("\nAre you sure you want to continue?");
    w
}

fn section(out: &mut impl Write, title: &str, lines: &[String]) -> io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title}")?;
    for l in lines {
        writeln!(out, "{l}")?;
    }
    writeln!(out)
}

fn prune(opts: &EngineOpts, all: bool, volumes: bool, force: bool) -> anyhow::Result<ExitCode> {
    if !force && !confirm(&prune_warning(all, volumes)) {
        return Ok(ExitCode::SUCCESS);
    }
    let engine = super::engine_access::engine(opts)?;
    let rt = super::engine_access::runtime()?;
    let mut out = io::stdout().lock();
    let mut failed = false;
    let mut fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("berth system prune: {what}: {e}");
        failed = true;
    };
    let mut reclaimed = 0u64;

    // Stopped containers (docker: everything not running or paused).
    let mut deleted = Vec::new();
    match rt.block_on(engine.container_list(true, &ListFilters::default())) {
        Ok(list) => {
            for c in list {
                if matches!(c.state.as_str(), "running" | "paused" | "restarting") {
                    continue;
                }
                let size = engine.container_size_rw(&c.id);
                match rt.block_on(engine.container_remove(&c.id, false, false)) {
                    Ok(()) => {
                        reclaimed += size;
                        deleted.push(c.id);
                    }
                    Err(e) => fail(&format!("container {}", &c.id[..12]), &e),
                }
            }
        }
        Err(e) => fail("listing containers", &e),
    }
    section(&mut out, "Deleted Containers:", &deleted)?;

    match rt.block_on(engine.network_prune(Default::default())) {
        Ok(names) => section(&mut out, "Deleted Networks:", &names)?,
        Err(e) => fail("networks", &e),
    }

    let root = StateRoot::open(&opts.root)?;
    if volumes {
        let used = rt.block_on(engine.container_volumes_in_use());
        match VolumeStore::open(&root).prune(false, &[], &|n| used.iter().any(|u| u == n)) {
            Ok(r) => {
                reclaimed += r.space_reclaimed;
                section(&mut out, "Deleted Volumes:", &r.volumes_deleted)?;
            }
            Err(e) => fail("volumes", &e),
        }
    }

    let used = rt.block_on(engine.container_images_in_use());
    match ImageStore::open(&root).and_then(|s| s.prune(all, &|id| used.iter().any(|u| u == id))) {
        Ok(r) => {
            reclaimed += r.space_reclaimed;
            let lines: Vec<String> = r
                .images_deleted
                .iter()
                .map(|it| match it {
                    RemoveItem::Untagged(r) => format!("untagged: {r}"),
                    RemoveItem::Deleted(id) => format!("deleted: {id}"),
                })
                .collect();
            section(&mut out, "Deleted Images:", &lines)?;
        }
        Err(e) => fail("images", &e),
    }

    let host = system::prune_host(engine.root().path());
    let lines: Vec<String> = host.removed.iter().map(ToString::to_string).collect();
    section(&mut out, "Deleted Host Leftovers:", &lines)?;
    for (l, e) in &host.failed {
        fail(&l.to_string(), e);
    }
    for l in &host.unknown {
        eprintln!("berth system prune: left {l} alone: remove it by hand if no berth uses it");
    }

    writeln!(out, "Total reclaimed space: {}", human_size(reclaimed))?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// docker's `system df` summary rows as strings (`Size`, `Reclaimable` with its percentage).
fn summary_rows(du: &DiskUsage) -> Vec<serde_json::Value> {
    du.summary()
        .into_iter()
        .map(|r| {
            let reclaimable = if r.size > 0 && r.kind != "Build Cache" {
                format!("{} ({}%)", human_size(r.reclaimable), r.reclaimable * 100 / r.size)
            } else {
                human_size(r.reclaimable)
            };
            serde_json::json!({
                "Active": r.active.to_string(),
                "Reclaimable": reclaimable,
                "Size": human_size(r.size),
                "TotalCount": r.total.to_string(),
                "Type": r.kind,
            })
        })
        .collect()
}

fn df(opts: &EngineOpts, verbose: bool, format: Option<&str>) -> anyhow::Result<ExitCode> {
    let engine = super::engine_access::engine(opts)?;
    let du = super::engine_access::runtime()?.block_on(engine.system_df())?;
    let mut out = io::stdout().lock();
    match format {
        Some("json") if verbose => writeln!(out, "{}", serde_json::to_string(&du)?)?,
        Some("json") => {
            for r in summary_rows(&du) {
                writeln!(out, "{r}")?;
            }
        }
        Some(t) if t != "table" => {
            for r in summary_rows(&du) {
                writeln!(out, "{}", super::template::render(t, &r)?)?;
            }
        }
        _ if verbose => df_verbose(&mut out, &du)?,
        _ => {
            let mut rows =
                vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].map(String::from).to_vec()];
            for r in summary_rows(&du) {
                let f = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                rows.push(vec![
                    f("Type"),
                    f("TotalCount"),
                    f("Active"),
                    f("Size"),
                    f("Reclaimable"),
                ]);
            }
            table(&mut out, &rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ago(t: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let d = berth_runtime::time::human_duration(chrono::Duration::seconds(now - t));
    format!("{d} ago")
}

fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex[..hex.len().min(12)].to_string()
}

/// `system df -v`: docker's four detailed tables.
fn df_verbose(out: &mut impl Write, du: &DiskUsage) -> io::Result<()> {
    writeln!(out, "Images space usage:\n")?;
    let mut rows = vec![
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for i in &du.images {
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
                    _ => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repo, tag) in tags {
            rows.push(vec![
                repo,
                tag,
                short_id(&i.id),
                ago(i.created),
                human_size(i.size),
                human_size(i.shared_size),
                human_size(i.size - i.shared_size.min(i.size)),
                i.containers.to_string(),
            ]);
        }
    }
    table(out, &rows)?;
    writeln!(out, "\nContainers space usage:\n")?;
    let mut rows = vec![
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
            .map(String::from)
            .to_vec(),
    ];
    for c in &du.containers {
        let mut cmd = c.command.clone();
        if cmd.chars().count() > 20 {
            cmd = cmd.chars().take(19).collect::<String>() + "…";
        }
        rows.push(vec![
            c.id[..c.id.len().min(12)].to_string(),
            c.image.clone(),
            format!("\"{cmd}\""),
            c.local_volumes.to_string(),
            human_size(c.size_rw),
            ago(c.created),
            c.status.clone(),
            c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
        ]);
    }
    table(out, &rows)?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for v in &du.volumes {
        rows.push(vec![v.name.clone(), v.links.to_string(), human_size(v.size)]);
    }
    table(out, &rows)?;
    writeln!(out, "\nBuild cache usage: 0B\n")?;
    table(
        out,
        &[["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]
            .map(String::from)
            .to_vec()],
    )
}

fn info(opts: &EngineOpts, format: Option<&str>) -> anyhow::Result<ExitCode> {
    let engine = super::engine_access::engine(opts)?;
    let i = super::engine_access::runtime()?.block_on(engine.system_info())?;
    let mut out = io::stdout().lock();
    match format {
        Some("json") => writeln!(out, "{}", serde_json::to_string(&i)?)?,
        Some(t) => writeln!(out, "{}", super::template::render(t, &serde_json::to_value(&i)?)?)?,
        None => {
            let mut s = String::new();
            s.push_str(&format!(
                "Client:\n Version:    {}\n Debug Mode: false\n\n",
                i.server_version
            ));
            s.push_str("Server:\n");
            s.push_str(&format!(" Containers: {}\n", i.containers));
            s.push_str(&format!("  Running: {}\n", i.containers_running));
            s.push_str(&format!("  Paused: {}\n", i.containers_paused));
            s.push_str(&format!("  Stopped: {}\n", i.containers_stopped));
            s.push_str(&format!(" Images: {}\n", i.images));
            s.push_str(&format!(" Server Version: {}\n", i.server_version));
            s.push_str(&format!(" Storage Driver: {}\n", i.driver));
            for [k, v] in &i.driver_status {
                s.push_str(&format!("  {k}: {v}\n"));
            }
            s.push_str(&format!(" Logging Driver: {}\n", i.logging_driver));
            s.push_str(&format!(" Cgroup Driver: {}\n", i.cgroup_driver));
            s.push_str(&format!(" Cgroup Version: {}\n", i.cgroup_version));
            s.push_str(&format!("  Layout: {}\n", i.cgroup_layout));
            s.push_str(&format!(" Kernel Version: {}\n", i.kernel_version));
            s.push_str(&format!(" Operating System: {}\n", i.operating_system));
            s.push_str(&format!(" OSType: {}\n", i.os_type));
            s.push_str(&format!(" Architecture: {}\n", i.architecture));
            s.push_str(&format!(" CPUs: {}\n", i.ncpu));
            s.push_str(&format!(" Total Memory: {}\n", bytes_size(i.mem_total)));
            s.push_str(&format!(" Name: {}\n", i.name));
            s.push_str(&format!(" Berth Root Dir: {}\n", i.docker_root_dir));
            out.write_all(s.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(212), "212B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1840), "1.84kB");
        assert_eq!(human_size(16_430_000), "16.43MB");
        assert_eq!(human_size(4_263_000), "4.263MB");
        assert_eq!(human_size(123_456_789_000), "123.5GB");
        assert_eq!(bytes_size(4_108_034_048), "3.826GiB");
        assert_eq!(bytes_size(1024), "1KiB");
    }

    #[test]
    fn table_pads_like_docker() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["TYPE".into(), "TOTAL".into(), "SIZE".into()],
            vec!["Local Volumes".into(), "2".into(), "36B".into()],
        ];
        table(&mut out, &rows).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "TYPE            TOTAL     SIZE\nLocal Volumes   2         36B\n"
        );
    }
}
