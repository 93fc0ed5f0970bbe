//! Wall time of the docker CLI running a container through berth's Engine API socket:
//! `docker run --rm bb true` (docker's default bridge network) and `docker run --rm --network
//! none bb true`, each from spawning `docker` to reaping it: median and fastest of `--runs`
//! timed runs (default 21, after 2 warm-ups); then `GET /containers/json?all=1` with 100
//! created containers, straight over the socket and as `docker ps -a`; then the events latency:
//! from a container's `start` event's own time (`timeNano`) until a client following `GET
//! /events` has read it, over `--runs` container starts.
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench &&
//! target/release/api_run [--runs N] [--docker-host URL]`. Starts `berth system service` (the
//! `berth` next to this bench, or `$BERTH_BIN`, with `berth-monitor` beside it) on a socket in
//! its own temporary state root (busybox imported as `bb:latest`), drives the `docker` client on
//! the PATH against it, checks that `--rm` left no container, and stops the service and removes
//! the default bridge network it made (also when a run fails). With `--docker-host` (or
//! `$BENCH_DOCKER_HOST`; `bench/docker-side api_run` starts a private dockerd, benchmark only)
//! the same client runs the same commands against that daemon too, interleaved run by run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Untimed runs before the timed ones.
const WARMUP: usize = 2;

/// What is timed, as the user types it after `docker`.
const CASES: [(&str, &[&str]); 2] = [
    ("docker run --rm bb true", &["run", "--rm", "bb", "true"]),
    ("docker run --rm --network none bb true", &["run", "--rm", "--network", "none", "bb", "true"]),
];

/// A daemon the docker client talks to: berth's service or dockerd.
struct Endpoint {
    /// "berth" or "dockerd".
    label: &'static str,
    /// Its Unix socket.
    sock: PathBuf,
    /// An empty docker config directory (no context, no credentials helper).
    config: PathBuf,
}

impl Endpoint {
    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// One timed `docker ARGS`, in ms.
    fn time(&self, args: &[&str]) -> Result<f64, String> {
        let mut c = self.docker(args);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let out = c.output().map_err(|e| format!("docker: {e}"))?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            return Err(format!(
                "docker {}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(ms)
    }
}

/// The berth service under test, stopped (SIGTERM) and cleaned up on drop.
struct Service {
    bin: PathBuf,
    root: PathBuf,
    at: Endpoint,
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(["network", "rm", "bridge"])
            .output();
    }
}

fn berth_bin() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(me.with_file_name("berth"))
}

fn start(bin: PathBuf, base: &Path, tar: &Path) -> Result<Service, String> {
    let root = base.join("root");
    let tar = tar.to_str().ok_or("the temp path is not UTF-8")?;
    let mut import = Command::new(&bin);
    import.arg("--root").arg(&root).args(["image", "import", tar, "bb:latest"]);
    berth_bench::output(&mut import, "berth image import")?;
    let sock = base.join("api.sock");
    let config = base.join("docker-config");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .arg("--root")
        .arg(&root)
        .args(["system", "service", "-t", "0", "-H"])
        .arg(format!("unix://{}", sock.display()))
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let svc = Service { bin, root, at: Endpoint { label: "berth", sock, config }, child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&svc.at.sock).is_err() {
        if Instant::now() > deadline {
            return Err(format!("the service did not listen on {}", svc.at.sock.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(svc)
}

/// dockerd at `host` (`unix:///path`), with `bb:latest` imported from `tar`.
fn dockerd(host: &str, base: &Path, tar: &Path) -> Result<Endpoint, String> {
    let sock = host.strip_prefix("unix://").ok_or("--docker-host must be unix:///path")?;
    let config = base.join("docker-config-dockerd");
    std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
    let at = Endpoint { label: "dockerd", sock: PathBuf::from(sock), config };
    let tar = tar.to_str().ok_or("the temp path is not UTF-8")?;
    berth_bench::output(&mut at.docker(&["import", tar, "bb:latest"]), "docker import")?;
    Ok(at)
}

fn parse_args() -> Result<(usize, Option<String>), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let docker = berth_bench::Docker::from_args(&mut args)?.map(|d| d.host);
    let mut runs = 21;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs takes a positive number")?;
            }
            other => {
                return Err(format!("unknown argument {other:?} (--runs N, --docker-host URL)"));
            }
        }
    }
    Ok((runs, docker))
}

fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn report(label: &str, who: &str, v: &mut [f64]) -> f64 {
    let median = berth_bench::median(v);
    say(format!(
        "{label} ({who}): median {median:.2} ms, fastest {:.2} ms over {} runs",
        v.first().copied().unwrap_or(0.0),
        v.len()
    ));
    median
}

fn bench() -> Result<(), String> {
    let (runs, docker_host) = parse_args()?;
    let tmp =
        tempfile::Builder::new().prefix("berth-bench-api-").tempdir().map_err(|e| e.to_string())?;
    let tar = tmp.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).map_err(|e| e.to_string())?;
    let svc = start(berth_bin()?, tmp.path(), &tar)?;
    let mut ats = vec![&svc.at];
    let other = match &docker_host {
        Some(h) => Some(dockerd(h, tmp.path(), &tar)?),
        None => None,
    };
    if let Some(o) = &other {
        say(format!(
            "docker side: {}",
            berth_bench::output(
                &mut o.docker(&[
                    "version",
                    "-f",
                    "client {{.Client.Version}}, dockerd {{.Server.Version}}"
                ]),
                "docker version"
            )?
            .trim()
        ));
        ats.push(o);
    }
    for (label, args) in CASES {
        let mut v: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); ats.len()];
        for i in 0..WARMUP + runs {
            for (at, v) in ats.iter().zip(v.iter_mut()) {
                let ms = at.time(args)?;
                if i >= WARMUP {
                    v.push(ms);
                }
            }
        }
        let medians: Vec<f64> =
            ats.iter().zip(v.iter_mut()).map(|(at, v)| report(label, at.label, v)).collect();
        if let [b, d] = medians[..] {
            say(format!("{label}: dockerd / berth = {:.1}x", d / b));
        }
    }
    for at in &ats {
        let left = at.docker(&["ps", "-aq"]).output().map_err(|e| format!("docker ps: {e}"))?;
        if !left.stdout.is_empty() {
            return Err(format!(
                "--rm left containers on {}: {}",
                at.label,
                String::from_utf8_lossy(&left.stdout)
            ));
        }
    }
    for at in &ats {
        list_100(at, runs)?;
    }
    for at in &ats {
        events_latency(at, runs)?;
    }
    Ok(())
}

/// Nanoseconds since the epoch, now.
fn now_nanos() -> i128 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    d.map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// Follows `GET /events` (container starts only) and runs `runs` containers: per start, how
/// long after the event's own time the client had it.
fn events_latency(at: &Endpoint, runs: usize) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&at.sock).map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%5D%7D HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .map_err(|e| e.to_string())?;
    let reader = s.try_clone().map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::channel::<i128>();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(reader);
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let got = now_nanos();
            // Each event is one JSON line (one chunk); chunk-size lines have no timeNano.
            if let Some(i) = line.find("\"timeNano\":") {
                let digits: String =
                    line[i + 11..].chars().take_while(char::is_ascii_digit).collect();
                if let Ok(t) = digits.parse::<i128>()
                    && tx.send(got - t).is_err()
                {
                    return;
                }
            }
            line.clear();
        }
    });
    let mut v = Vec::with_capacity(runs);
    for _ in 0..WARMUP + runs {
        at.time(&["run", "--rm", "--network", "none", "bb", "true"])?;
        let ns = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("no start event from {} within 10 s", at.label))?;
        v.push(ns as f64 / 1e6);
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let mut v = v.split_off(WARMUP);
    report("events latency (start event's time to the client reading it)", at.label, &mut v);
    Ok(())
}

/// `GET /containers/json?all=1` over the socket, the whole answer read; in ms.
fn get_list(sock: &Path) -> Result<f64, String> {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.write_all(
        b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "containers/json: {}",
            String::from_utf8_lossy(&out[..out.len().min(200)])
        ));
    }
    Ok(ms)
}

/// The list with 100 created containers, which are removed afterwards (also on failure).
fn list_100(svc: &Endpoint, runs: usize) -> Result<(), String> {
    struct Cleanup<'a>(&'a Endpoint);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            if let Ok(out) = self.0.docker(&["ps", "-aq"]).output() {
                let ids = String::from_utf8_lossy(&out.stdout).to_string();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f"];
                    args.extend(ids);
                    let _ = self.0.docker(&args).output();
                }
            }
        }
    }
    let _cleanup = Cleanup(svc);
    for i in 0..100 {
        let name = format!("list{i}");
        let out = svc
            .docker(&["create", "--network", "none", "--name", &name, "bb", "true"])
            .output()
            .map_err(|e| format!("docker create: {e}"))?;
        if !out.status.success() {
            return Err(format!("docker create: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    let mut raw = Vec::with_capacity(runs);
    let mut cli = Vec::with_capacity(runs);
    for i in 0..WARMUP + runs {
        let r = get_list(&svc.sock)?;
        let c = svc.time(&["ps", "-a"])?;
        if i >= WARMUP {
            raw.push(r);
            cli.push(c);
        }
    }
    report("GET /containers/json?all=1, 100 containers", svc.label, &mut raw);
    report("docker ps -a, 100 containers", svc.label, &mut cli);
    Ok(())
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("api_run: {e}");
        std::process::exit(1);
    }
}
