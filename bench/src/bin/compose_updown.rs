//! Wall time of `berth up -d` then `berth down -t 2` for a project of 10 and of 50 busybox
//! services (`sh -c 'trap "exit 0" TERM; sleep 3600 & wait'`, network_mode none), median of
//! RUNS rounds each. Drives the real `berth` binary (the one next to this bench, or $BERTH_BIN).
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/compose_updown`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn berth_bin() -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Ok(b) = std::env::var("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or("the bench binary has no directory")?;
    Ok(dir.join("berth"))
}

fn berth(
    bin: &Path,
    root: &Path,
    dir: &Path,
    args: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(bin)
        .current_dir(dir)
        .arg("--root")
        .arg(root)
        .args(["--progress", "quiet"])
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("berth {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn compose(n: usize) -> String {
    let mut s = String::from("services:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  s{i}:\n    image: bb\n    network_mode: none\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n"
        ));
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = berth_bin()?;
    let tmp = tempfile::Builder::new().prefix("berth-bench-compose-").tempdir()?;
    let root = tmp.path().join("root");
    let tar = tmp.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar)?;
    let tar_s = tar.to_str().ok_or("temp path is not UTF-8")?;
    berth(&bin, &root, tmp.path(), &["image", "import", tar_s, "bb:latest"])?;
    for n in [10usize, 50] {
        let dir = tmp.path().join(format!("p{n}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("compose.yaml"), compose(n))?;
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = Instant::now();
            berth(&bin, &root, &dir, &["up", "-d"])?;
            ups.push(t.elapsed());
            let t = Instant::now();
            berth(&bin, &root, &dir, &["down", "-t", "2"])?;
            downs.push(t.elapsed());
        }
        println!(
            "{n} services: up -d median {:.0} ms, down median {:.0} ms ({RUNS} runs)",
            median(ups).as_secs_f64() * 1000.0,
            median(downs).as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
