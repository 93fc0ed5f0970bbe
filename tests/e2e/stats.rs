//! `berth container stats`: figures from the container's cgroup, one frame or a live stream.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{ContainerEnv, berth_bin};

/// Removes the container even when an assertion fails.
struct Cleanup<'a>(&'a ContainerEnv, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["container", "rm", "--force", self.1]);
    }
}

fn stats_rows(env: &ContainerEnv, name: &str) -> Vec<serde_json::Value> {
    let out = env.ok(&["container", "stats", "--no-stream", "--format", "json", name]);
    out.lines().map(|l| serde_json::from_str(l).expect("stats json line")).collect()
}

fn percent(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_str().unwrap().trim_end_matches('%').parse().unwrap()
}

#[test]
fn stats_reports_cpu_memory_limit_and_pids_of_a_busy_container() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("stats");
    let _c = Cleanup(&env, &name);
    env.ok(&[
        "container",
        "create",
        "--name",
        &name,
        "--memory",
        "64m",
        "bb",
        "sh",
        "-c",
        "sleep 3600 & while :; do :; done",
    ]);
    env.ok(&["container", "start", &name]);
    let rows = stats_rows(&env, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["Name"], name.as_str());
    // A busy loop burns CPU between the two samples (how much depends on the machine's load).
    assert!(percent(r, "CPUPerc") > 1.0, "{r}");
    assert!(r["MemUsage"].as_str().unwrap().ends_with("/ 64MiB"), "{r}");
    assert!(percent(r, "MemPerc") > 0.0, "{r}");
    assert_eq!(r["PIDs"], "2", "{r}");
    // The table has docker's columns.
    let table = env.ok(&["container", "stats", "--no-stream", &name]);
    let header = table.lines().next().unwrap();
    for col in ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "PIDS"] {
        assert!(header.contains(col), "{header}");
    }
    // A stopped container reports zeros rather than failing.
    env.ok(&["container", "kill", &name]);
    env.wait_for("exit", 10, || env.inspect(&name, "{{.State.Status}}") == "exited");
    let stopped = &stats_rows(&env, &name)[0];
    assert_eq!(stopped["CPUPerc"], "0.00%");
    assert_eq!(stopped["PIDs"], "0");
}

#[test]
fn stats_streams_frames_for_running_containers() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("stream");
    let _c = Cleanup(&env, &name);
    env.ok(&["container", "create", "--name", &name, "bb", "sleep", "3600"]);
    env.ok(&["container", "start", &name]);
    let mut child = Command::new(berth_bin())
        .arg("--root")
        .arg(env.path())
        .args(["container", "stats", "--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn stats");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Without names, every running container is shown, frame after frame.
    let mut frames = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while frames < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("a stats frame before the deadline");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        if v["Name"] == name.as_str() {
            assert_eq!(v["PIDs"], "1", "{v}");
            frames += 1;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
