//! Cgroup limits, stats, freezer and cleanup on real containers (needs root).

mod launch_common;

use std::time::{Duration, Instant};

use berth_cgroups::{Cgroup, CgroupError, Layout};
use launch_common::*;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

fn memory(limit: i64) -> LinuxMemory {
    let mut m = LinuxMemory::default();
    m.set_limit(Some(limit)).set_swap(Some(limit));
    m
}

#[test]
fn memory_limit_oom_kill_is_detected() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"]);
    with_resources(&mut s, |r| {
        r.set_memory(Some(memory(32 << 20)));
    });
    let mut c = start(s);
    let st = c.cgroup().stats().expect("stats");
    assert_eq!(st.memory_limit, Some(32 << 20));
    let (code, _, err) = c.finish();
    assert_eq!(code, 137, "dd should be OOM-killed: {err}");
    assert!(c.cgroup().oom_killed());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo spawned; sleep 30",
    ]);
    with_resources(&mut s, |r| {
        let mut p = LinuxPids::default();
        p.set_limit(10);
        r.set_pids(Some(p));
    });
    let mut c = start(s);
    let (code, out, err) = c.finish();
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("spawned"), "{out}");
    assert!(err.contains("fork"), "{err}");
    let st = c.cgroup().stats().expect("stats");
    assert_eq!(st.pids_limit, Some(10));
}

#[test]
fn cpu_limits_are_written_and_stats_read() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut s = spec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; sleep 30",
    ]);
    with_resources(&mut s, |r| {
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(Some(50_000)).set_period(Some(100_000)).set_shares(Some(512));
        r.set_cpu(Some(cpu));
    });
    let c = start(s);
    assert_eq!(c.line(), "done\n");
    let cg = c.cgroup();
    match cg.layout() {
        Layout::V2(root) => {
            let max =
                std::fs::read_to_string(root.join(cg.path()).join("cpu.max")).expect("cpu.max");
            assert_eq!(max.trim(), "50000 100000");
        }
        Layout::V1(m) | Layout::Hybrid { v1: m, .. } => {
            let d = m["cpu"].join(cg.path());
            let q = std::fs::read_to_string(d.join("cpu.cfs_quota_us")).expect("quota");
            let sh = std::fs::read_to_string(d.join("cpu.shares")).expect("shares");
            assert_eq!((q.trim(), sh.trim()), ("50000", "512"));
        }
    }
    let st = cg.stats().expect("stats");
    assert!(st.cpu_usage_ns > 0 && st.memory_usage > 0 && st.pids_current >= 1, "{st:?}");
    // Another process (the CLI) reattaches by path.
    let again = Cgroup::open(cg.path()).expect("open");
    assert_eq!(again.pids().expect("pids"), cg.pids().expect("pids"));
}

#[test]
fn freeze_and_thaw() {
    if !berth_testsupport::require_root() {
        return;
    }
    let c = start(spec(&["sh", "-c", "while true; do echo tick; sleep 0.05; done"]));
    assert_eq!(c.line(), "tick\n");
    c.cgroup().freeze().expect("freeze");
    assert!(c.cgroup().is_frozen());
    let rx = c.stdout.as_ref().expect("stdout");
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "output while frozen");
    c.cgroup().thaw().expect("thaw");
    assert!(!c.cgroup().is_frozen());
    assert_eq!(c.line(), "tick\n");
}

#[test]
fn refused_limit_is_named_and_leaves_nothing() {
    if !berth_testsupport::require_root() {
        return;
    }
    let path = format!("berth/{}/inner", berth_testsupport::unique_name("cgbad"));
    let mut r = LinuxResources::default();
    let mut cpu = LinuxCpu::default();
    cpu.set_cpus(Some("999".into()));
    r.set_cpu(Some(cpu));
    match Cgroup::create(&path, &r) {
        Err(CgroupError::Limit { file, value, .. }) => {
            assert!(file.ends_with("cpuset.cpus"), "{}", file.display());
            assert_eq!(value, "999");
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(c) => {
            let _ = c.destroy();
            panic!("accepted cpuset 999");
        }
    }
    let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or_default().to_string();
    assert!(matches!(Cgroup::open(&parent), Err(CgroupError::NotFound(_))));
    assert!(Cgroup::create("../escape", &r).is_err());
}

#[test]
fn destroy_kills_leftover_processes() {
    if !berth_testsupport::require_root() {
        return;
    }
    let mut c = start(spec(&["sh", "-c", "sleep 100 & sleep 100 & echo up; wait"]));
    assert_eq!(c.line(), "up\n");
    let s = c.spawned.take().expect("spawned");
    let start = Instant::now();
    s.cgroup.destroy().expect("destroy");
    assert!(start.elapsed() < Duration::from_secs(5));
    let _ = nix::sys::wait::waitpid(s.pid, None);
    assert!(s.cgroup.dirs().iter().all(|d| !d.exists()));
}

/// Both ways of killing a whole cgroup (`cgroup.kill`, and freeze + SIGKILL + thaw) empty it
/// while PID 1 is still forking, and a cgroup paused by the freezer dies too.
#[test]
fn kill_all_empties_a_forking_cgroup() {
    if !berth_testsupport::require_root() {
        return;
    }
    for (how, paused) in [("cgroup.kill", false), ("freeze", false), ("cgroup.kill", true)] {
        // Bounded: 1500 sleeps at most, under a pids limit of 2000.
        let mut s = spec(&[
            "sh",
            "-c",
            "i=0; while [ $i -lt 1500 ]; do sleep 100 & i=$((i+1)); done; echo spawned; wait",
        ]);
        with_resources(&mut s, |r| {
            let mut p = LinuxPids::default();
            p.set_limit(2000);
            r.set_pids(Some(p));
        });
        let c = start(s);
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.cgroup().pids().expect("pids").len() < 200 {
            assert!(Instant::now() < deadline, "{how}: the shell did not fork");
            std::thread::sleep(Duration::from_millis(10));
        }
        if paused {
            c.cgroup().freeze().expect("freeze");
        }
        let r = match how {
            "freeze" => c.cgroup().kill_all_frozen(Duration::from_secs(30)),
            _ => c.cgroup().kill_all(Duration::from_secs(30)),
        };
        r.unwrap_or_else(|e| panic!("{how}: {e}"));
        assert!(c.cgroup().is_empty(), "{how}");
        assert_eq!(c.cgroup().pids().expect("pids"), Vec::new(), "{how}");
        assert!(!c.cgroup().is_frozen(), "{how}: left frozen");
    }
}
