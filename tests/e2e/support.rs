//! Helpers for driving the `berth` binary in end-to-end tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Path of the `berth` binary under test.
pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Runs `berth --root ROOT ARGS...` and returns its output.
pub fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(berth_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        // Tests reach registries on loopback only (which bypasses proxies): a pull that would
        // leave the machine (`run` of a missing image) goes to a closed loopback port instead.
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("spawn berth")
}

/// The inode number of `p` (panics naming the path when it is missing).
pub fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino()
}

/// A state root with the busybox image imported as `bb:latest`, for container tests. On drop,
/// every container in it is force-removed (even when the test failed).
pub struct ContainerEnv {
    /// The temporary state root.
    pub root: berth_testsupport::TempRoot,
}

impl ContainerEnv {
    /// A fresh root with `bb:latest`; None when root tests are skipped.
    pub fn new() -> Option<Self> {
        if !berth_testsupport::require_root() {
            return None;
        }
        let root = berth_testsupport::TempRoot::new().expect("temp root");
        let tar = root.path().join("bb.tar");
        berth_testsupport::busybox_rootfs_tar(&tar).expect("busybox tar");
        let env = ContainerEnv { root };
        env.ok(&["image", "import", tar.to_str().unwrap(), "bb:latest"]);
        Some(env)
    }

    /// The root's path.
    pub fn path(&self) -> std::path::PathBuf {
        self.root.path()
    }

    /// Runs berth in this root.
    pub fn run(&self, args: &[&str]) -> Output {
        berth(&self.path(), args)
    }

    /// Runs berth, asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `container inspect --format TEMPLATE NAME`, trimmed.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["container", "inspect", "--format", template, name]).trim().to_string()
    }

    /// The container's full id.
    pub fn id(&self, name: &str) -> String {
        self.inspect(name, "{{.Id}}")
    }

    /// The state record the monitor writes (for the monitor pid).
    pub fn state_record(&self, name: &str) -> serde_json::Value {
        let id = self.id(name);
        let p = self.path().join("containers").join(id).join("state.json");
        berth_store::read_json_in_place(&p).expect("state.json").expect("a state record")
    }

    /// Every record file under `networks/` (`<id>.json` definitions and `<id>.live` parts,
    /// plain JSON or two-slot records) with its path, parsed.
    pub fn network_records(&self) -> Vec<(std::path::PathBuf, serde_json::Value)> {
        let dir = self.path().join("networks");
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(Some(bytes)) = berth_slotfile::read(&e.path()) else { continue };
            if let Ok(v) = serde_json::from_slice(&bytes) {
                out.push((e.path(), v));
            }
        }
        out
    }

    /// Polls `cond` every 20 ms until it holds; panics with `what` after `secs` seconds.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Asserts nothing of container `id` is left: state dir, mounts, cgroups, processes.
    pub fn assert_no_leftovers(&self, id: &str) {
        let dir = self.path().join("containers").join(id);
        assert!(!dir.exists(), "state dir {} left", dir.display());
        assert!(
            berth_testsupport::mounts_under(&dir).is_empty(),
            "mounts left under {}",
            dir.display()
        );
        for entry in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            let cg = entry.path().join("berth").join(id);
            assert!(!cg.exists(), "cgroup {} left", cg.display());
        }
        // A monitor that has just removed an auto-removed container is still exiting: wait
        // (bounded) for it to go; one that stays is a leftover.
        let root = self.path().to_string_lossy().to_string();
        let monitor_of = |id: &str| {
            std::fs::read_dir("/proc").into_iter().flatten().flatten().find_map(|p| {
                let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                (cmd.contains("__monitor") && cmd.contains(&root) && cmd.contains(id))
                    .then_some(cmd)
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Some(cmd) = monitor_of(id) {
            assert!(std::time::Instant::now() < deadline, "monitor process left: {cmd}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for ContainerEnv {
    fn drop(&mut self) {
        let out = self.run(&["container", "ls", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.run(&["container", "rm", "--force", "--volumes", id]);
        }
        // The default bridge a build's RUN steps (or a container on `bridge`) made, with the
        // root's DNS server, which exits once no network is left.
        if self.root.path().join("networks").exists() {
            let _ = self.run(&["network", "rm", "--force", "bridge"]);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !crate::net::dns_pids(&self.path()).is_empty()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// A one-file ustar archive whose member name is written verbatim (so `../x` or `/x` are
/// possible, as in crafted archives).
pub fn raw_tar_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// A loopback TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// GET `path` from 127.0.0.1:`port`, retrying until it answers 200 (10 s deadline: containers
/// may still be starting); returns the whole response.
pub fn http_response(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = || -> std::io::Result<String> {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        match attempt() {
            Ok(r) if r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200") => return r,
            other => assert!(Instant::now() < deadline, "GET 127.0.0.1:{port}{path}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The body of a 200 answer to GET `path` on 127.0.0.1:`port` (see `http_response`).
pub fn http_body(port: u16, path: &str) -> String {
    let r = http_response(port, path);
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// docker-py's version the tests drive the API service with.
const DOCKER_PY: &str = "7.1.0";

/// The python of a venv with docker-py (`docker` from PyPI), made by the first test that needs
/// it with the `python3` on the PATH and kept in /var/tmp for later runs (made under a lock in
/// a scratch directory, then renamed into place, so a half-made venv is never used).
pub fn docker_py_python() -> std::path::PathBuf {
    static PYTHON: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let base = Path::new("/var/tmp");
            let venv = base.join(format!("berth-test-docker-py-{DOCKER_PY}"));
            let python = venv.join("bin/python");
            let lock = std::fs::File::create(base.join("berth-test-docker-py.lock"))
                .expect("create the venv lock file");
            lock.lock().expect("lock the venv lock file");
            if python.exists() {
                return python;
            }
            let scratch = base.join(format!("berth-test-docker-py-new-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            let run = |c: &mut Command, what: &str| {
                let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(
                    out.status.success(),
                    "{what} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            run(
                Command::new("python3").args(["-m", "venv"]).arg(&scratch),
                "python3 -m venv (docker-py's venv)",
            );
            run(
                Command::new(scratch.join("bin/pip")).args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    &format!("docker=={DOCKER_PY}"),
                ]),
                "pip install docker (from PyPI)",
            );
            // Only `bin/python` is used, which finds the venv from where it is: the move
            // (after everything worked) does not break it, though `bin/pip`'s shebang would.
            std::fs::rename(&scratch, &venv).expect("move the venv into place");
            python
        })
        .clone()
}
