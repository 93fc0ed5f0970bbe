//! Median time of create + start + wait + remove of a `true` container through the Engine API
//! (50 runs after 3 warm-ups), and the monitor's resident set size.
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/run_true` (the monitor is the `berth` binary next to this one, or `$BERTH_EXE`).
//!
//! With `--docker-host URL` (or `$BENCH_DOCKER_HOST`) the same run also imports the same root
//! filesystem into that docker daemon (`docker import`) and times `docker run --rm bb:latest
//! true` (50 runs after 3 warm-ups), printing the ratio; `bench/docker-side` sets that up.

use std::path::{Path, PathBuf};
use std::time::Instant;

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

const RUNS: usize = 50;
const WARMUP: usize = 3;

async fn bench(docker: Option<berth_bench::Docker>) -> Result<(), String> {
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
    println!(
        "run_true: create+start+wait+remove median {median:.2} ms (fastest {:.2} ms) over {} runs",
        samples.first().copied().unwrap_or(0.0),
        samples.len()
    );

    // Monitor RSS of an idle running container.
    let mut c = cfg();
    c.config.cmd = Some(vec!["sleep".into(), "3600".into()]);
    let id = engine.container_create(None, c).await.map_err(|e| e.to_string())?;
    engine.container_start(&id).await.map_err(|e| e.to_string())?;
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.path().join("state/containers").join(&id).join("state.json"))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mon = state["MonitorPid"].as_i64().unwrap_or(0) as i32;
    // Idle RSS: give the monitor a moment to settle into its poll loop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    match vm_rss_kib(mon) {
        Some(kib) => println!("monitor VmRSS: {kib} KiB (pid {mon})"),
        None => println!("monitor VmRSS: unavailable"),
    }
    engine.container_remove(&id, true, true).await.map_err(|e| e.to_string())?;

    if let Some(docker) = docker {
        docker_side(&docker, &tar, median)?;
    }
    Ok(())
}

/// Times `docker run --rm bb:latest true` on the same root filesystem and prints the ratio to
/// berth's `berth_median` (ms).
fn docker_side(docker: &berth_bench::Docker, tar: &Path, berth_median: f64) -> Result<(), String> {
    println!("docker: dockerd {} at {}", docker.server_version()?, docker.host);
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
    println!(
        "docker run --rm true: median {median:.1} ms (fastest {:.1} ms) over {} runs",
        samples.first().copied().unwrap_or(0.0),
        samples.len()
    );
    println!("ratio docker/berth: {:.1}x", median / berth_median);
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
    if let Some(a) = args.first() {
        eprintln!("run_true: unknown argument {a:?} (only --docker-host URL)");
        return std::process::ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("run_true: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(docker)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run_true: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
