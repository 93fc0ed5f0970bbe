//! Opt-in start-up timing: with `BERTH_TIMING=<file>` every process (CLI, monitor) appends
//! `<pid> <CLOCK_MONOTONIC µs> <label>` lines to that file, so one container's create, start,
//! exit and removal can be laid out on one clock across processes (docs/launch.md "Profile").
//! Without the variable a mark costs one atomic load.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

static SINK: OnceLock<Option<File>> = OnceLock::new();

fn sink() -> Option<&'static File> {
    SINK.get_or_init(|| {
        let path = std::env::var_os("BERTH_TIMING")?;
        std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
    })
    .as_ref()
}

/// Records that `label` was reached now (no-op unless `BERTH_TIMING` is set). Not for use
/// between fork and exec.
pub fn mark(label: &str) {
    let Some(mut f) = sink() else { return };
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    // One write(2) per line on an O_APPEND file: lines from several processes don't interleave.
    let line = format!("{} {us} {label}\n", std::process::id());
    let _ = f.write_all(line.as_bytes());
}
