//! `berth build` wall time, as a user runs it, for issue 14's three figures: a cold build of a
//! 10-step Dockerfile on a local base image, a rebuild with nothing changed (every step from the
//! cache), and a rebuild after editing one copied file near the end. Median and fastest of
//! `--runs` (default 11) each.
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/build_cache [--runs N] [--docker-host URL]`. Drives the `berth` next to this
//! bench (or `$BERTH_BIN`). With `--docker-host` (or `$BENCH_DOCKER_HOST`; `bench/docker-side
//! build_cache` starts a private dockerd) the same Dockerfile and context are built by docker's
//! classic builder (`DOCKER_BUILDKIT=0`: BuildKit resolves every FROM in a registry, which is
//! unreachable here; RUN steps on each one's default bridge: docker0, berth's `bridge`) in the
//! same run. A cold build is made cold by a fresh
//! state root for berth and `--no-cache` for docker.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The 10-step Dockerfile: the late `COPY app/late.txt` is the file the third case edits.
const DOCKERFILE: &str = "FROM bb\n\
ENV APP=/app\n\
WORKDIR $APP\n\
COPY app/first.txt ./\n\
RUN echo one > /app/one.txt\n\
RUN mkdir -p /app/data && echo two > /app/data/two.txt\n\
LABEL bench=build_cache\n\
RUN echo three > /app/three.txt\n\
COPY app/late.txt ./\n\
RUN cat /app/late.txt > /app/copy.txt\n\
CMD [\"cat\", \"/app/copy.txt\"]\n";

fn berth_bin() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(me.with_file_name("berth"))
}

/// A state root of the bench, removed on drop (also when a run fails) with the default bridge
/// its builds' RUN steps made (and so the root's DNS server, which exits with the last network).
struct BuildRoot {
    berth: PathBuf,
    path: PathBuf,
}

impl Drop for BuildRoot {
    fn drop(&mut self) {
        let _ = Command::new(&self.berth)
            .arg("--root")
            .arg(&self.path)
            .args(["network", "rm", "--force", "bridge"])
            .output();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Times one command to completion, in ms; an error with its stderr when it fails.
fn time(c: &mut Command, what: &str) -> Result<f64, String> {
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what}: {}: {}", out.status, err.trim()));
    }
    Ok(ms)
}

/// The three figures of one builder: (cold, unchanged, one file edited), each all runs.
#[derive(Default)]
struct Figures {
    cold: Vec<f64>,
    unchanged: Vec<f64>,
    edited: Vec<f64>,
}

fn report(who: &str, f: &mut Figures) {
    for (name, v) in
        [("cold", &mut f.cold), ("unchanged", &mut f.unchanged), ("one file edited", &mut f.edited)]
    {
        let med = berth_bench::median(v);
        println!(
            "{who:<7} {name:<16} median {med:8.1} ms  fastest {:8.1} ms  ({} runs)",
            v[0],
            v.len()
        );
    }
}

fn bench() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let docker = berth_bench::Docker::from_args(&mut args)?;
    let mut runs = 11;
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|n| n.parse().ok()).ok_or("--runs needs a number")?;
    }
    let berth = berth_bin()?;
    let tmp = berth_testsupport::TempRoot::new().map_err(|e| e.to_string())?;
    let tar = tmp.path().join("rootfs.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).map_err(|e| e.to_string())?;
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("app")).map_err(|e| e.to_string())?;
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).map_err(|e| e.to_string())?;
    std::fs::write(ctx.join("app/first.txt"), "first\n").map_err(|e| e.to_string())?;
    let late = ctx.join("app/late.txt");
    let ctx_s = ctx.to_str().ok_or("temp path is not UTF-8")?.to_string();
    let berth_cmd = |root: &Path, extra: &[&str]| {
        let mut c = Command::new(&berth);
        c.arg("--root").arg(root).args(["build", "-t", "bench:1"]).args(extra).arg(&ctx_s);
        c
    };
    println!(
        "load average before: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let mut b = Figures::default();
    let mut d = Figures::default();
    if let Some(dk) = &docker {
        dk.import(&tar, "bb:latest")?;
    }
    for i in 0..runs {
        std::fs::write(&late, format!("late {i}\n")).map_err(|e| e.to_string())?;
        // berth: a fresh state root per cold build.
        let guard = BuildRoot { berth: berth.clone(), path: tmp.path().join(format!("root{i}")) };
        let root = guard.path.clone();
        berth_bench::output(
            Command::new(&berth).arg("--root").arg(&root).args([
                "image",
                "import",
                tar.to_str().unwrap_or_default(),
                "bb:latest",
            ]),
            "berth image import",
        )?;
        b.cold.push(time(&mut berth_cmd(&root, &[]), "berth build (cold)")?);
        b.unchanged.push(time(&mut berth_cmd(&root, &[]), "berth build (unchanged)")?);
        std::fs::write(&late, format!("late {i} edited\n")).map_err(|e| e.to_string())?;
        b.edited.push(time(&mut berth_cmd(&root, &[]), "berth build (edited)")?);
        drop(guard);
        if let Some(dk) = &docker {
            std::fs::write(&late, format!("late {i}\n")).map_err(|e| e.to_string())?;
            let docker_cmd = |extra: &[&str]| {
                let mut c = dk.command(&dk.bin);
                c.env("DOCKER_BUILDKIT", "0")
                    .args(["build", "-q", "-t", "bench:1"])
                    .args(extra)
                    .arg(&ctx_s);
                c
            };
            d.cold.push(time(&mut docker_cmd(&["--no-cache"]), "docker build (cold)")?);
            d.unchanged.push(time(&mut docker_cmd(&[]), "docker build (unchanged)")?);
            std::fs::write(&late, format!("late {i} edited\n")).map_err(|e| e.to_string())?;
            d.edited.push(time(&mut docker_cmd(&[]), "docker build (edited)")?);
        }
    }
    report("berth", &mut b);
    if docker.is_some() {
        report("docker", &mut d);
        let ratio = berth_bench::median(&mut d.unchanged) / berth_bench::median(&mut b.unchanged);
        println!("unchanged rebuild: docker / berth = {ratio:.1}x");
    }
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    Ok(())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("build_cache: {e}");
        std::process::exit(1);
    }
}
