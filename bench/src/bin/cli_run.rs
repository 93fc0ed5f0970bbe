//! Wall time of the `berth` CLI starting a container as a user runs it: `berth container run
//! --rm bb true`, and the compose one-off `berth run --rm SERVICE true` (a service on the
//! project's default network, and one with `network_mode: none`), each from spawning the
//! process to reaping it: median and fastest of `--runs` timed runs (default 21).
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/cli_run [--runs N] [--compare OTHER_BERTH]`. Drives the `berth` next to this
//! bench (or `$BERTH_BIN`), with `berth-monitor` beside it. `--compare` times a second build
//! (e.g. main's, copied with its `berth-monitor` somewhere) in the same minutes, alternating
//! blocks of 7 runs (each after 2 warm-ups), so that both see the same load; the 1-minute load
//! average is printed before and after, since the figures follow it.
//!
//! Each binary gets its own state root (busybox imported as `bb:latest`) and compose project;
//! after the runs the bench checks that `--rm` left no container behind, and `down` removes
//! the project's network (also when a run fails).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Untimed runs before each block of timed ones.
const WARMUP: usize = 2;

/// Timed runs of one binary before the other one's turn.
const BLOCK: usize = 7;

/// The compose project: `net` on the default network, `nonet` without one.
const COMPOSE: &str =
    "services:\n  net:\n    image: bb\n  nonet:\n    image: bb\n    network_mode: none\n";

/// What is timed, as the user types it after `berth --root R`.
const CASES: [(&str, &[&str]); 3] = [
    ("container run --rm bb true", &["container", "run", "--rm", "bb", "true"]),
    ("run --rm net true (compose, default network)", &["run", "--rm", "net", "true"]),
    ("run --rm nonet true (compose, network_mode: none)", &["run", "--rm", "nonet", "true"]),
];

/// One binary under test with its own state root and compose project.
struct Subject {
    bin: PathBuf,
    root: PathBuf,
    project: PathBuf,
}

impl Subject {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.current_dir(&self.project).arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs `args` to completion; an error with its stderr when it fails.
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let what = format!("{} {}", self.bin.display(), args.join(" "));
        berth_bench::output(&mut self.command(args), &what)
    }

    /// One timed run of `args`, in ms (stdout discarded, as `true` prints nothing).
    fn time(&self, args: &[&str]) -> Result<f64, String> {
        let mut c = self.command(args);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let out = c.output().map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            return Err(format!(
                "{} {}: {}: {}",
                self.bin.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(ms)
    }
}

impl Drop for Subject {
    /// Removes the project's network (and anything a failed run left) from the host.
    fn drop(&mut self) {
        let _ = self.command(&["--progress", "quiet", "down", "-t", "0"]).output();
    }
}

fn berth_bin() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(me.with_file_name("berth"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Prints a result line; a closed stdout must not panic the bench midway.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn setup(bin: PathBuf, base: &Path, tag: &str, tar: &Path) -> Result<Subject, String> {
    if !bin.is_file() {
        return Err(format!("{}: no such berth binary", bin.display()));
    }
    let project = base.join(format!("proj-{tag}"));
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    std::fs::write(project.join("compose.yaml"), COMPOSE).map_err(|e| e.to_string())?;
    let s = Subject { bin, root: base.join(format!("root-{tag}")), project };
    let tar = tar.to_str().ok_or("the temp path is not UTF-8")?;
    s.run(&["image", "import", tar, "bb:latest"])?;
    Ok(s)
}

fn parse_args() -> Result<(usize, Option<PathBuf>), String> {
    let (mut runs, mut compare) = (21, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs takes a positive number")?;
            }
            "--compare" => {
                compare = Some(PathBuf::from(it.next().ok_or("--compare takes a path")?))
            }
            other => return Err(format!("unknown argument {other:?} (--runs N, --compare BERTH)")),
        }
    }
    Ok((runs, compare))
}

fn bench() -> Result<(), String> {
    let (runs, compare) = parse_args()?;
    let tmp =
        tempfile::Builder::new().prefix("berth-bench-cli-").tempdir().map_err(|e| e.to_string())?;
    let tar = tmp.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).map_err(|e| e.to_string())?;
    let mut subjects = vec![setup(berth_bin()?, tmp.path(), "a", &tar)?];
    if let Some(b) = compare {
        subjects.push(setup(b, tmp.path(), "b", &tar)?);
    }
    say(format!("load average before: {}", loadavg()));
    for (label, args) in CASES {
        let mut samples = vec![Vec::new(); subjects.len()];
        // In blocks of runs, alternating: both binaries see the same minutes of load, and one
        // run's after-effects in the kernel (an older build's filesystem sync at each container
        // exit, its deferred inotify teardown) fall mostly on runs of the same binary. Each
        // block starts with warm-up runs.
        let mut done = 0;
        while done < runs {
            let block = BLOCK.min(runs - done);
            for (s, v) in subjects.iter().zip(samples.iter_mut()) {
                for i in 0..WARMUP + block {
                    let ms = s.time(args)?;
                    if i >= WARMUP {
                        v.push(ms);
                    }
                }
            }
            done += block;
        }
        for (s, v) in subjects.iter().zip(samples.iter_mut()) {
            let median = berth_bench::median(v);
            say(format!(
                "{label}: median {median:.2} ms, fastest {:.2} ms over {runs} runs ({})",
                v.first().copied().unwrap_or(0.0),
                s.bin.display()
            ));
        }
    }
    say(format!("load average after: {}", loadavg()));
    // `--rm` leaves nothing: no container of either kind is left in any root.
    for s in &subjects {
        let left = s.run(&["container", "ls", "-aq"])?;
        if !left.trim().is_empty() {
            return Err(format!("{}: --rm left containers behind: {left}", s.bin.display()));
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("cli_run: {e}");
        std::process::exit(1);
    }
}
