//! Helpers for compose tests: a state root with `bb:latest`, a project directory with a compose
//! file and a unique project name; on drop `down -v --remove-orphans`, then (when the test
//! passed) an assertion that no container, mount, cgroup or monitor is left.

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
}

/// A command that keeps running and stops at once on SIGTERM.
pub const LONG: &str = r#"["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]"#;

impl Project {
    /// A fresh project with `compose` as its compose.yaml; None when root tests are skipped.
    pub fn new(prefix: &str, compose: &str) -> Option<Self> {
        let env = ContainerEnv::new()?;
        let dir = tempfile::Builder::new().prefix("berth-proj-").tempdir().expect("project dir");
        let name = berth_testsupport::unique_name(prefix).to_lowercase().replace('_', "-");
        let p = Project { env, dir, name };
        p.write(compose);
        Some(p)
    }

    /// Replaces compose.yaml.
    pub fn write(&self, compose: &str) {
        std::fs::write(self.dir.path().join("compose.yaml"), compose).expect("write compose.yaml");
    }

    /// The project directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Runs `berth --root R -p NAME ARGS...` in the project directory.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(crate::support::berth_bin())
            .current_dir(self.dir.path())
            .arg("--root")
            .arg(self.env.path())
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("spawn berth")
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

impl Drop for Project {
    fn drop(&mut self) {
        let ids: Vec<String> = {
            let out = self.env.run(&["container", "ls", "-aq", "--no-trunc"]);
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
        };
        let down = self.run(&["down", "-v", "--remove-orphans", "-t", "2"]);
        if std::thread::panicking() {
            return;
        }
        assert!(down.status.success(), "down failed: {}", String::from_utf8_lossy(&down.stderr));
        let left = self.env.run(&["container", "ls", "-aq"]);
        assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "", "containers left after down");
        for id in ids {
            self.env.assert_no_leftovers(&id);
        }
        let files = self.env.path().join("compose").join(&self.name);
        assert!(!files.exists(), "{} left after down", files.display());
        let vols = self.env.run(&["volume", "ls", "-q"]);
        assert_eq!(String::from_utf8_lossy(&vols.stdout).trim(), "", "volumes left after down -v");
    }
}
