//! Watch mode latency, as a developer sees it (issue 12):
//! - one edit: from the host's write of a watched file to the new content being readable inside
//!   the container (read through `/proc/<pid>/root`, the container's own view), median and p90
//!   over `--edits` edits (default 50), each after the previous one landed;
//! - a burst: 500 new files written back to back, until all are readable in the container;
//! - a compose-file edit that changes one service's environment, until the recreated container
//!   answers `echo $V` with the new value (`up --watch` only: `berth watch` reloads too).
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/watch_sync [--edits N]`. Drives the `berth` next to this bench (or
//! `$BERTH_BIN`) with its own state root and project; `down` cleans up, also on failure.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LONG: &str = r#"["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

fn compose(v: &str) -> String {
    format!(
        "services:\n  web:\n    image: bb\n    command: {LONG}\n    network_mode: none\n    environment:\n      V: \"{v}\"\n    develop:\n      watch:\n        - path: ./src\n          action: sync\n          target: /app\n"
    )
}

struct Setup {
    bin: PathBuf,
    root: PathBuf,
    project: PathBuf,
    watch: Option<Child>,
    out: PathBuf,
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.project)
            .arg("--root")
            .arg(&self.root)
            .args(["-p", "wbench"])
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        berth_bench::output(&mut self.command(args), &format!("berth {}", args.join(" ")))
    }

    /// The pid of the service's container (its process on the host).
    fn pid(&self) -> Result<i32, String> {
        let out = self.run(&["container", "inspect", "-f", "{{.State.Pid}}", "wbench-web-1"])?;
        out.trim().parse().map_err(|e| format!("pid {out:?}: {e}"))
    }

    fn output(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.out).and_then(|mut f| f.read_to_string(&mut s));
        s
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(mut c) = self.watch.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.command(&["--progress", "quiet", "down", "-t", "0"]).output();
    }
}

/// Polls (every 0.1 ms) until `cond`, at most `secs`; the time it took.
fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) -> Result<Duration, String> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > Duration::from_secs(secs) {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(t.elapsed())
}

fn reads(path: &Path, want: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s == want)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn bench() -> Result<(), String> {
    let mut edits = 50usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--edits" => {
                edits =
                    it.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0).ok_or("--edits N")?
            }
            other => return Err(format!("unknown argument {other:?} (--edits N)")),
        }
    }
    let bin = match std::env::var_os("BERTH_BIN") {
        Some(b) => PathBuf::from(b),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("berth"),
    };
    let tmp = tempfile::Builder::new()
        .prefix("berth-bench-watch-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let project = tmp.path().join("proj");
    std::fs::create_dir_all(project.join("src")).map_err(|e| e.to_string())?;
    std::fs::write(project.join("compose.yaml"), compose("1")).map_err(|e| e.to_string())?;
    let mut s = Setup {
        bin,
        root: tmp.path().join("root"),
        project: project.clone(),
        watch: None,
        out: tmp.path().join("watch.out"),
    };
    let tar = tmp.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).map_err(|e| e.to_string())?;
    s.run(&["image", "import", tar.to_str().ok_or("temp path not UTF-8")?, "bb:latest"])?;
    let out = std::fs::File::create(&s.out).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    s.watch = Some(
        s.command(&["up", "--watch"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn berth up --watch: {e}"))?,
    );
    until(60, "Watch enabled", || s.output().contains("Watch enabled"))
        .map_err(|e| format!("{e}:\n{}", s.output()))?;
    let pid = s.pid()?;
    let inside = PathBuf::from(format!("/proc/{pid}/root/app"));
    // One edit at a time.
    let file = project.join("src/edit.txt");
    let mut lat = Vec::new();
    for n in 0..edits + 2 {
        let content = format!("edit {n}");
        let t = Instant::now();
        std::fs::write(&file, &content).map_err(|e| e.to_string())?;
        until(10, "an edit", || reads(&inside.join("edit.txt"), &content))?;
        if n >= 2 {
            lat.push(ms(t.elapsed()));
        }
        // Edits a person makes are apart: the next one is not part of this batch.
        std::thread::sleep(Duration::from_millis(100));
    }
    lat.sort_by(f64::total_cmp);
    let p90 = lat[(lat.len() * 9).div_ceil(10) - 1];
    let median = berth_bench::median(&mut lat);
    println!(
        "edit visible in the container: median {median:.1} ms, p90 {p90:.1} ms, fastest {:.1} ms over {edits} edits",
        lat[0]
    );
    // A burst of 500 files.
    std::fs::create_dir_all(project.join("src/burst")).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for n in 0..500 {
        std::fs::write(project.join(format!("src/burst/f{n:03}")), n.to_string())
            .map_err(|e| e.to_string())?;
    }
    until(60, "500 files", || {
        (0..500).rev().all(|n| reads(&inside.join(format!("burst/f{n:03}")), &n.to_string()))
    })?;
    println!("burst of 500 new files: all in the container after {:.1} ms", ms(t.elapsed()));
    // A compose-file edit that changes the service's environment.
    let t = Instant::now();
    std::fs::write(project.join("compose.yaml"), compose("2")).map_err(|e| e.to_string())?;
    until(60, "the recreated container", || {
        s.command(&["container", "exec", "wbench-web-1", "sh", "-c", "echo $V"])
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "2")
    })?;
    println!(
        "compose-file edit (environment of one service): new container answers after {:.1} ms",
        ms(t.elapsed())
    );
    Ok(())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("watch_sync: {e}");
        std::process::exit(1);
    }
}
