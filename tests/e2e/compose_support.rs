//! Helpers for compose tests: a state root with `bb:latest`, a project directory with a compose
//! file and a unique project name; on drop `down -v --remove-orphans`, then (when the test
//! passed) an assertion that no container, mount, cgroup, monitor, network, bridge or DNS
//! server of the test is left.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::ContainerEnv;

/// A compose project in its own state root.
pub struct Project {
    /// The state root with the busybox image.
    pub env: ContainerEnv,
    /// The project directory (holds compose.yaml).
    pub dir: tempfile::TempDir,
    /// The unique project name.
    pub name: String,
    /// Environment variables for every berth command (sample ports).
    pub envs: Vec<(String, String)>,
}

/// A command that keeps running and stops at once on SIGTERM.
pub const LONG: &str = r#"["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

impl Project {
    /// A fresh project with `compose` as its compose.yaml; None when root tests are skipped.
    pub fn new(prefix: &str, compose: &str) -> Option<Self> {
        let env = ContainerEnv::new()?;
        let dir = tempfile::Builder::new().prefix("berth-proj-").tempdir().expect("project dir");
        let name = berth_testsupport::unique_name(prefix).to_lowercase().replace('_', "-");
        let p = Project { env, dir, name, envs: Vec::new() };
        p.write(compose);
        Some(p)
    }

    /// A copy of `samples/{sample}` as the project directory, with `busybox:local` imported and
    /// `envs` set for every command; None when root tests are skipped.
    pub fn sample(prefix: &str, sample: &str, envs: &[(&str, String)]) -> Option<Self> {
        let env = ContainerEnv::new()?;
        env.ok(&["image", "tag", "bb:latest", "busybox:local"]);
        let dir = tempfile::Builder::new().prefix("berth-sample-").tempdir().expect("sample dir");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples").join(sample);
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(dir.path())
            .status()
            .expect("spawn cp");
        assert!(status.success(), "copying {}", src.display());
        let name = berth_testsupport::unique_name(prefix).to_lowercase().replace('_', "-");
        let envs = envs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Some(Project { env, dir, name, envs })
    }

    /// Replaces compose.yaml.
    pub fn write(&self, compose: &str) {
        std::fs::write(self.dir.path().join("compose.yaml"), compose).expect("write compose.yaml");
    }

    /// The project directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// `berth --root ROOT -p NAME ARGS...` in the project directory, with the project's
    /// environment, ready to run or spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::support::berth_bin());
        c.current_dir(self.dir.path())
            .arg("--root")
            .arg(self.env.path())
            .arg("-p")
            .arg(&self.name)
            .args(args)
            // Tests reach registries on loopback only (which bypasses proxies): a pull that
            // would leave the machine goes to a closed loopback port instead.
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `berth --root R -p NAME ARGS...` in the project directory.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("spawn berth")
    }

    /// Runs berth, asserts success and returns (stdout, stderr).
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let so = String::from_utf8_lossy(&out.stdout).into_owned();
        let se = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}):\n{so}\n{se}",
            out.status.code()
        );
        (so, se)
    }

    /// The container name of replica `n` of `service`.
    pub fn cname(&self, service: &str, n: u32) -> String {
        format!("{}-{service}-{n}", self.name)
    }

    /// The full id of a container (by name).
    pub fn id(&self, container: &str) -> String {
        self.env.id(container)
    }

    /// `container inspect --format T` of a container.
    pub fn inspect(&self, container: &str, template: &str) -> String {
        self.env.inspect(container, template)
    }

    /// Names of the project's containers (all states), sorted.
    pub fn containers(&self) -> Vec<String> {
        let (so, _) = self.ok(&["ps", "-a", "--format", "json"]);
        let mut v: Vec<String> = so
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).expect("ps json line");
                j["Name"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        v.sort();
        v
    }

    /// Polls `cond` every 50 ms; panics naming `what` after `secs` seconds.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Project {
    /// The project's networks by name (`network ls --format json` rows).
    pub fn networks(&self) -> Vec<serde_json::Value> {
        let out = self.env.ok(&["network", "ls", "--format", "json"]);
        let mut v: Vec<serde_json::Value> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("network ls json line"))
            .collect();
        v.sort_by_key(|n| n["Name"].as_str().unwrap_or_default().to_string());
        v
    }

    /// Full ids of the root's networks.
    pub fn network_ids(&self) -> Vec<String> {
        let out = self.env.ok(&["network", "ls", "-q", "--no-trunc"]);
        out.split_whitespace().map(String::from).collect()
    }

    /// (network id, host-side veth) for every veth the root's network records name:
    /// endpoints and the lingering veths of exited containers.
    pub fn host_veths(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, v) in self.env.network_records() {
            let eps = v["endpoints"].as_object().into_iter().flat_map(|m| m.values());
            let named = eps.filter_map(|ep| ep["endpoint"]["host_ifname"].as_str());
            let lingering = v["lingering"].as_array().into_iter().flatten();
            let named = named.chain(lingering.filter_map(|l| l["host_ifname"].as_str()));
            // `<id>.live` (or `<id>.json` in older roots).
            let id = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            out.extend(named.map(|n| (id.clone(), n.to_string())));
        }
        out
    }

    /// Asserts the root has no network, no bridge of the networks `ids`, and (within 5 s) no
    /// DNS server process.
    pub fn assert_no_network_leftovers(&self, ids: &[String]) {
        let left = self.env.run(&["network", "ls", "-q"]);
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "networks left after down");
        let links = Command::new("ip").args(["-o", "link"]).output().map(|o| o.stdout);
        let links = String::from_utf8_lossy(&links.unwrap_or_default()).into_owned();
        for id in ids {
            let bridge = format!("brt-{}", &id[..10.min(id.len())]);
            assert!(!links.contains(&bridge), "bridge {bridge} left after down");
        }
        let root = self.env.path().to_string_lossy().to_string();
        let dns = || {
            std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|p| {
                let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                cmd.contains("__dns") && cmd.contains(&root)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while dns() {
            assert!(Instant::now() < deadline, "DNS server of {root} left after down");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let ids: Vec<String> = {
            let out = self.env.run(&["container", "ls", "-aq", "--no-trunc"]);
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
        };
        let nets: Vec<String> = {
            let out = self.env.run(&["network", "ls", "-q", "--no-trunc"]);
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
        };
        let veths = self.host_veths();
        let down = self.run(&["down", "-v", "--remove-orphans", "-t", "2"]);
        if std::thread::panicking() {
            // A failed test may leave networks `down` keeps (external ones it made with
            // `network create`): the root is the test's own, so remove every one left.
            let out = self.env.run(&["network", "ls", "-q", "--no-trunc"]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.env.run(&["network", "rm", id]);
            }
            return;
        }
        assert!(down.status.success(), "down failed: {}", String::from_utf8_lossy(&down.stderr));
        // Removing a network deletes its veths (also those of exited containers, which the
        // kernel would delete later with their namespaces) before `down` returns: no waiting.
        // On networks `down` keeps (external ones) the kernel's namespace cleanup takes them.
        let kept = self.network_ids();
        let links = || {
            let out = Command::new("ip").args(["-o", "link"]).output().map(|o| o.stdout);
            String::from_utf8_lossy(&out.unwrap_or_default()).into_owned()
        };
        let now = links();
        for (net, v) in veths.iter().filter(|(net, _)| !kept.contains(net)) {
            assert!(!now.contains(&format!(" {v}@")), "veth {v} of network {net} left after down");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, v) in veths.iter().filter(|(net, _)| kept.contains(net)) {
            while links().contains(&format!(" {v}@")) {
                assert!(Instant::now() < deadline, "veth {v} left after down");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let left = self.env.run(&["container", "ls", "-aq"]);
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "containers left after down");
        for id in ids {
            self.env.assert_no_leftovers(&id);
        }
        let files = self.env.path().join("compose").join(&self.name);
        assert!(!files.exists(), "{} left after down", files.display());
        let vols = self.env.run(&["volume", "ls", "-q"]);
        assert_eq!(String::from_utf8_lossy(&vols.stdout).trim(), "", "volumes left after down -v");
        // The default bridge a build's RUN steps made is not the project's (docker's docker0
        // stays after `down` too): removed here so the root is left with nothing.
        let _ = self.env.run(&["network", "rm", "--force", "bridge"]);
        self.assert_no_network_leftovers(&nets);
    }
}
