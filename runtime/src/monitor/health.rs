//! Healthchecks: docker's schedule (interval, start period and its own interval, timeout,
//! retries), running a check in the container and recording its result.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use berth_launch::Stdio;

use super::error::{MonitorError, sys};
use super::fds::set_nonblock;
use crate::container::api::{Health, HealthConfig, HealthLogEntry};
use crate::container::record::{ContainerPaths, ContainerRecord};
use crate::container::{launcher, spec};
use crate::time::now_rfc3339;

/// A healthcheck process while it runs, and its result once it has exited.
pub(crate) struct HealthRun {
    pub(crate) pid: i32,
    pub(crate) out: File,
    pub(crate) buf: Vec<u8>,
    pub(crate) start: String,
    pub(crate) deadline: Instant,
    pub(crate) exit: Option<i64>,
    pub(crate) out_open: bool,
}

/// At most this much of a check's output is kept.
const HEALTH_OUTPUT_MAX: usize = 4096;

/// Starts one healthcheck process in the container whose first process is `pid` (in
/// `cgroup`), its output going to a pipe the monitor reads.
pub(crate) fn start_check(
    rec: &ContainerRecord,
    h: &HealthConfig,
    pid: i32,
    cgroup: &str,
    seccomp: berth_launch::SeccompMode,
) -> Result<HealthRun, MonitorError> {
    let argv: Vec<String> = match h.test.first().map(String::as_str) {
        Some("CMD") => h.test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        _ => h.test.clone(),
    };
    let process = spec::exec_process(rec, &argv, &[], None, None, false, false)?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let w2 = w.try_clone().map_err(MonitorError::Dup)?;
    let start = now_rfc3339();
    let pid = launcher::exec_in(
        pid,
        &process,
        cgroup,
        seccomp,
        Stdio::Pipes { stdin: None, stdout: w, stderr: w2 },
    )?;
    set_nonblock(r.as_raw_fd());
    Ok(HealthRun {
        pid,
        out: File::from(r),
        buf: Vec::new(),
        start,
        deadline: Instant::now() + dur(h.timeout, 30),
        exit: None,
        out_open: true,
    })
}

/// Records a finished healthcheck in the state: the health status, failing streak and the
/// last five results, as docker keeps them. Returns the new status when it changed (docker's
/// `health_status: …` event).
pub(crate) fn record_health(
    paths: &ContainerPaths,
    h: &HealthConfig,
    c: HealthRun,
    in_start_period: bool,
) -> Option<String> {
    let code = c.exit.unwrap_or(-1);
    let entry = HealthLogEntry {
        start: c.start,
        end: now_rfc3339(),
        exit_code: code,
        output: String::from_utf8_lossy(&c.buf[..c.buf.len().min(HEALTH_OUTPUT_MAX)]).into_owned(),
    };
    let retries = if h.retries > 0 { h.retries } else { 3 };
    let mut changed = None;
    let _ = paths.update_state(|st| {
        if !st.state.running {
            return;
        }
        let health = st
            .state
            .health
            .get_or_insert_with(|| Health { status: "starting".into(), ..Default::default() });
        let before = health.status.clone();
        if code == 0 {
            health.status = "healthy".into();
            health.failing_streak = 0;
        } else if !in_start_period {
            health.failing_streak += 1;
            if health.failing_streak >= retries {
                health.status = "unhealthy".into();
            }
        }
        health.log.push(entry);
        let excess = health.log.len().saturating_sub(5);
        health.log.drain(..excess);
        if health.status != before {
            changed = Some(health.status.clone());
        }
    });
    changed
}

/// Reads what the check wrote so far (up to [`HEALTH_OUTPUT_MAX`]).
pub(crate) fn read_health_output(c: &mut HealthRun) {
    let mut b = [0u8; 4096];
    loop {
        match c.out.read(&mut b) {
            Ok(0) => {
                c.out_open = false;
                return;
            }
            Ok(n) => {
                if c.buf.len() < HEALTH_OUTPUT_MAX {
                    c.buf.extend_from_slice(&b[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.out_open = false;
                return;
            }
        }
    }
}

/// The healthcheck to run, if any (`NONE` or an empty test disables it).
pub(crate) fn health_config(rec: &ContainerRecord) -> Option<HealthConfig> {
    let h = rec.config.healthcheck.clone()?;
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => None,
        _ => Some(h),
    }
}

/// `ns` nanoseconds, or `default_secs` when unset.
pub(crate) fn dur(ns: i64, default_secs: u64) -> Duration {
    if ns > 0 { Duration::from_nanos(ns as u64) } else { Duration::from_secs(default_secs) }
}

/// The delay before the first check: the start interval during a start period, else the interval.
pub(crate) fn first_delay(h: &HealthConfig) -> Duration {
    if h.start_period > 0 && h.start_interval > 0 {
        dur(h.start_interval, 5)
    } else {
        dur(h.interval, 30)
    }
}

/// The delay before the next check: the start interval while the start period lasts.
pub(crate) fn interval_now(h: &HealthConfig, started: Instant) -> Duration {
    if h.start_interval > 0 && started.elapsed() < dur(h.start_period, 0) {
        dur(h.start_interval, 5)
    } else {
        dur(h.interval, 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn checks_follow_dockers_schedule() {
        // Unset durations take docker's defaults: every 30 s.
        let unset = HealthConfig::default();
        assert_eq!(first_delay(&unset), Duration::from_secs(30));
        assert_eq!(interval_now(&unset, Instant::now()), Duration::from_secs(30));
        let h = HealthConfig {
            interval: 10 * SEC,
            start_period: 60 * SEC,
            start_interval: 2 * SEC,
            ..Default::default()
        };
        // In the start period, the start interval; after it, the interval.
        assert_eq!(first_delay(&h), Duration::from_secs(2));
        assert_eq!(interval_now(&h, Instant::now()), Duration::from_secs(2));
        let long_ago = Instant::now().checked_sub(Duration::from_secs(61));
        if let Some(t) = long_ago {
            assert_eq!(interval_now(&h, t), Duration::from_secs(10));
        }
        // A start interval without a start period is never used.
        let no_period = HealthConfig { start_period: 0, ..h.clone() };
        assert_eq!(first_delay(&no_period), Duration::from_secs(10));
        assert_eq!(interval_now(&no_period, Instant::now()), Duration::from_secs(10));
        // A start period without a start interval: the interval from the start.
        let no_start_interval = HealthConfig { start_interval: 0, ..h };
        assert_eq!(first_delay(&no_start_interval), Duration::from_secs(10));
        assert_eq!(interval_now(&no_start_interval, Instant::now()), Duration::from_secs(10));
    }
}
