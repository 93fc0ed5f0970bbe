//! Median time of create + start + wait + remove of a `true` container through the Engine API
//! (50 runs after 3 warm-ups), and the monitor's resident set size (min/median/max over
//! 5 idle `sleep` containers, read once each monitor has settled).
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/run_true` (`berth` and `berth-monitor` next to this one, or `$BERTH_EXE`).
//! `--publish` also measures monitors of containers on the default bridge with a published
//! port (`-p 0:80`: the monitor then holds the IPv6 relay listener); `--rss-only` skips the
//! timing runs.
//!
//! With `--docker-host URL` (or `$BENCH_DOCKER_HOST`) the same run also imports the same root
//! filesystem into that docker daemon (`docker import`) and times `docker run --rm bb:latest
//! true` (50 runs after 3 warm-ups), printing the ratio; `bench/docker-side` sets that up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_runtime::container::PortBinding;
use berth_runtime::container::{Config, ContainerCreateConfig};
use berth_runtime::{Engine, EngineOptions};

fn helper() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_EXE") {
        return PathBuf::from(p);
    }
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("berth")
}

fn vm_rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Prints a result line; a closed stdout (e.g. `| head -1`) must not panic the bench while
/// containers still run.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

const RUNS: usize = 50;
const WARMUP: usize = 3;

/// Command-line options besides the docker ones.
struct Opts {
    publish: bool,
    rss_only: bool,
}

async fn bench(docker: Option<berth_bench::Docker>, opts: Opts) -> Result<(), String> {
    let root =
        tempfile::Builder::new().prefix("berth-bench-").tempdir().map_err(|e| e.to_string())?;
    let tar = root.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).map_err(|e| e.to_string())?;
    let engine =
        Engine::open(EngineOptions { root: root.path().join("state"), helper_exe: Some(helper()) })
            .map_err(|e| e.to_string())?;
    let f = std::fs::File::open(&tar).map_err(|e| e.to_string())?;
    engine
        .image_import(Box::new(f), Some("bb:latest".into()), vec![])
        .await
        .map_err(|e| e.to_string())?;
    let cfg = || ContainerCreateConfig {
        config: Config {
            image: "bb:latest".into(),
            cmd: Some(vec!["true".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let median = if opts.rss_only { None } else { Some(time_runs(&engine, &cfg).await?) };
    monitor_rss(&engine, root.path(), &cfg, false).await?;
    if opts.publish {
        let r = monitor_rss(&engine, root.path(), &cfg, true).await;
        // The default bridge (and with it the DNS server) goes with the last container.
        let _ = engine.network_remove("bridge").await;
        r?;
    }

    if let (Some(docker), Some(median)) = (docker, median) {
        docker_side(&docker, &tar, median)?;
    }
    Ok(())
}

/// create + start + wait + remove of a `true` container, RUNS times after WARMUP; returns the
/// median in ms.
async fn time_runs(
    engine: &Engine,
    cfg: &impl Fn() -> ContainerCreateConfig,
) -> Result<f64, String> {
    let mut samples = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        let id = engine.container_create(None, cfg()).await.map_err(|e| e.to_string())?;
        let t1 = t.elapsed();
        engine.container_start(&id).await.map_err(|e| e.to_string())?;
        let t2 = t.elapsed();
        let code = engine.container_wait(&id).await.map_err(|e| e.to_string())?;
        let t3 = t.elapsed();
        engine.container_remove(&id, true, true).await.map_err(|e| e.to_string())?;
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!("create {t1:?} start {t2:?} wait {t3:?} rm {:?}", t.elapsed());
        }
        if code != 0 {
            return Err(format!("true exited {code}"));
        }
        if i >= WARMUP {
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = berth_bench::median(&mut samples);
    say(format!(
        "run_true: create+start+wait+remove median {median:.2} ms (fastest {:.2} ms) over {} runs",
        samples.first().copied().unwrap_or(0.0),
        samples.len()
    ));
    Ok(median)
}

/// Containers whose monitors are measured, per kind.
const RSS_CONTAINERS: usize = 5;

/// Starts RSS_CONTAINERS idle `sleep` containers (with `publish`: on the default bridge with
/// container port 80 published on a free host port), reads each monitor's VmRSS once it has
/// settled, prints min/median/max and removes them.
async fn monitor_rss(
    engine: &Engine,
    root: &Path,
    cfg: &impl Fn() -> ContainerCreateConfig,
    publish: bool,
) -> Result<(), String> {
    let mut ids = Vec::new();
    let r: Result<String, String> = async {
        for _ in 0..RSS_CONTAINERS {
            let mut c = cfg();
            c.config.cmd = Some(vec!["sleep".into(), "3600".into()]);
            if publish {
                c.host_config.network_mode = "bridge".into();
                c.host_config.port_bindings.insert(
                    "80/tcp".into(),
                    vec![PortBinding { host_ip: String::new(), host_port: "0".into() }],
                );
            }
            let id = engine.container_create(None, c).await.map_err(|e| e.to_string())?;
            ids.push(id.clone());
            engine.container_start(&id).await.map_err(|e| e.to_string())?;
        }
        let mut kib = Vec::new();
        for id in &ids {
            let path = root.join("state/containers").join(id).join("state.json");
            let state: serde_json::Value = berth_store::read_json_in_place(&path)
                .map_err(|e| e.to_string())?
                .ok_or(format!("no state record {}", path.display()))?;
            let mon = state["MonitorPid"].as_i64().unwrap_or(0) as i32;
            kib.push(settled_rss_kib(mon).await.ok_or(format!("no VmRSS for monitor {mon}"))?);
        }
        let all = kib.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        kib.sort_unstable();
        Ok(format!(
            "monitor VmRSS{}: min {} / median {} / max {} KiB over {} monitors ({all})",
            if publish { " with a published port" } else { "" },
            kib[0],
            kib[kib.len() / 2],
            kib[kib.len() - 1],
            kib.len(),
        ))
    }
    .await;
    // Removed before printing, so a closed stdout can't leave them running.
    for id in &ids {
        let _ = engine.container_remove(id, true, true).await;
    }
    say(r?);
    Ok(())
}

/// A monitor's VmRSS once it has settled: it lets go of its start-up memory after 200 ms
/// idle, so this waits for 300 ms then for three equal readings 100 ms apart (at most 5 s).
async fn settled_rss_kib(pid: i32) -> Option<u64> {
    let tick = std::time::Duration::from_millis(100);
    tokio::time::sleep(3 * tick).await;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let (mut last, mut same) = (vm_rss_kib(pid)?, 0);
    while same < 2 && Instant::now() < deadline {
        tokio::time::sleep(tick).await;
        let now = vm_rss_kib(pid)?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Some(last)
}

/// Times `docker run --rm bb:latest true` on the same root filesystem and prints the ratio to
/// berth's `berth_median` (ms).
fn docker_side(docker: &berth_bench::Docker, tar: &Path, berth_median: f64) -> Result<(), String> {
    say(format!("docker: dockerd {} at {}", docker.server_version()?, docker.host));
    docker.import(tar, "bb:latest")?;
    let mut samples = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        docker.run(&["run", "--rm", "bb:latest", "true"])?;
        if i >= WARMUP {
            samples.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = berth_bench::median(&mut samples);
    say(format!(
        "docker run --rm true: median {median:.1} ms (fastest {:.1} ms) over {} runs",
        samples.first().copied().unwrap_or(0.0),
        samples.len()
    ));
    say(format!("ratio docker/berth: {:.1}x", median / berth_median));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let docker = match berth_bench::Docker::from_args(&mut args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("run_true: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut opts = Opts { publish: false, rss_only: false };
    for a in &args {
        match a.as_str() {
            "--publish" => opts.publish = true,
            "--rss-only" => opts.rss_only = true,
            _ => {
                eprintln!(
                    "run_true: unknown argument {a:?} (--docker-host URL, --publish, --rss-only)"
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("run_true: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(docker, opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run_true: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
