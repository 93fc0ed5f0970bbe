//! Wall time of `berth up -d` then `berth down -t 2` for a project of 10 and of 50 busybox
//! services (`sh -c 'trap "exit 0" TERM; sleep 3600 & wait'`), median of RUNS rounds each.
//! Drives the real `berth` binary (the one next to this bench, or $BERTH_BIN).
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/compose_updown [--network-mode none] [--runs N] [--docker-host URL]`.
//!
//! The services use compose's default network unless `--network-mode none` puts
//! `network_mode: none` on each. With `--docker-host URL` (or `$BENCH_DOCKER_HOST`) the same run
//! imports the same root filesystem into that docker daemon and times `docker-compose up -d` /
//! `down -t 2` on the same file (`$DOCKER_COMPOSE_BIN`, default `docker-compose`), printing the
//! ratio of the full up+down cycle; `bench/docker-side` sets that up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_bench::Docker;

const SIZES: [usize; 2] = [10, 50];

fn berth_bin() -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Ok(b) = std::env::var("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or("the bench binary has no directory")?;
    Ok(dir.join("berth"))
}

/// Runs berth in `dir` with its own state `root`; returns its stderr (warnings).
fn berth(bin: &Path, root: &Path, dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .current_dir(dir)
        .arg("--root")
        .arg(root)
        .args(["--progress", "quiet"])
        .args(args)
        .output()
        .map_err(|e| format!("berth {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("berth {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

fn compose(n: usize, network_none: bool) -> String {
    let mut s = String::from("services:\n");
    for i in 0..n {
        s.push_str(&format!("  s{i}:\n    image: bb\n"));
        if network_none {
            s.push_str("    network_mode: none\n");
        }
        s.push_str("    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n");
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median up and down times of RUNS rounds of `up`/`down` (each a closure running one command).
fn rounds(
    runs: usize,
    mut up: impl FnMut() -> Result<(), String>,
    mut down: impl FnMut() -> Result<(), String>,
) -> Result<(Duration, Duration), String> {
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        up()?;
        ups.push(t.elapsed());
        let t = Instant::now();
        down()?;
        downs.push(t.elapsed());
    }
    Ok((median(ups), median(downs)))
}

struct Opts {
    network_none: bool,
    runs: usize,
    docker: Option<Docker>,
}

fn parse_args() -> Result<Opts, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let docker = Docker::from_args(&mut args)?;
    let mut opts = Opts { network_none: false, runs: 5, docker };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--network-mode" => match it.next().as_deref() {
                Some("none") => opts.network_none = true,
                Some("default") => opts.network_none = false,
                other => {
                    return Err(format!("--network-mode takes none or default, not {other:?}"));
                }
            },
            "--runs" => {
                opts.runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs takes a positive number")?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--network-mode none|default, --runs N, --docker-host URL)"
                ));
            }
        }
    }
    Ok(opts)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = parse_args()?;
    let runs = opts.runs;
    let bin = berth_bin()?;
    let tmp = tempfile::Builder::new().prefix("berth-bench-compose-").tempdir()?;
    let root = tmp.path().join("root");
    let tar = tmp.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar)?;
    let tar_s = tar.to_str().ok_or("temp path is not UTF-8")?;
    berth(&bin, &root, tmp.path(), &["image", "import", tar_s, "bb:latest"])?;
    let compose_bin: PathBuf =
        std::env::var_os("DOCKER_COMPOSE_BIN").unwrap_or_else(|| "docker-compose".into()).into();
    if let Some(d) = &opts.docker {
        d.import(&tar, "bb:latest")?;
        let version = berth_bench::output(
            d.command(&compose_bin).args(["version", "--short"]),
            "docker-compose version",
        )?;
        println!(
            "docker: dockerd {} at {}, docker-compose {}",
            d.server_version()?,
            d.host,
            version.trim()
        );
    }
    println!(
        "network: {}",
        if opts.network_none { "network_mode: none" } else { "compose default network" }
    );
    for n in SIZES {
        let dir = tmp.path().join(format!("p{n}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("compose.yaml"), compose(n, opts.network_none))?;
        let mut warned = false;
        let (bup, bdown) = rounds(
            runs,
            || {
                let err = berth(&bin, &root, &dir, &["up", "-d"])?;
                if !warned && !err.trim().is_empty() {
                    eprintln!("berth up -d said: {}", err.trim());
                    warned = true;
                }
                Ok(())
            },
            || berth(&bin, &root, &dir, &["down", "-t", "2"]).map(drop),
        )?;
        println!(
            "{n} services: up -d median {:.0} ms, down median {:.0} ms ({runs} runs)",
            ms(bup),
            ms(bdown)
        );
        let Some(d) = &opts.docker else { continue };
        let dc = |args: &[&str]| {
            berth_bench::output(
                d.command(&compose_bin).current_dir(&dir).args(args),
                &format!("docker-compose {}", args.join(" ")),
            )
            .map(drop)
        };
        // docker 20.10 sometimes refuses to remove the project network after all its containers
        // are gone ("has active endpoints", moby/moby#42119; compose v2 skips it with a
        // warning). The containers are removed by then, so the round counts as done; the next
        // `up` reuses the network.
        let mut stuck = 0;
        let mut down = || match dc(&["down", "-t", "2"]) {
            Err(e) if e.contains("active endpoints") => {
                stuck += 1;
                Ok(())
            }
            other => other,
        };
        let (dup, ddown) = rounds(runs, || dc(&["up", "-d"]), &mut down)?;
        if stuck > 0 {
            println!("  (docker-compose down: network removal refused {stuck}x, moby/moby#42119)");
        }
        println!(
            "{n} services docker-compose: up -d median {:.0} ms, down median {:.0} ms ({runs} runs)",
            ms(dup),
            ms(ddown)
        );
        println!(
            "{n} services up+down: berth {:.0} ms, docker-compose {:.0} ms, ratio {:.1}x (target >= 15x)",
            ms(bup + bdown),
            ms(dup + ddown),
            (dup + ddown).as_secs_f64() / (bup + bdown).as_secs_f64()
        );
    }
    Ok(())
}
