//! Processes as the kernel shows them: `/proc/<pid>/stat` (start time, parent, CPU time),
//! liveness by pid and start time, pidfds and verified signals, signal names, and docker's
//! exit codes of a wait status. A leaf: it imports nothing of the crate.
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::wait::WaitStatus;

/// Sends `sig` to `pid` only if it is still the process that started at `start`: the pid is
/// pinned with a pidfd first, so a reused pid can't be hit between the check and the signal.
pub fn signal_verified(pid: i32, start: u64, sig: i32) -> Result<bool, std::io::Error> {
    let Some(fd) = pidfd_open(pid) else { return Ok(false) };
    if process_start_time(pid) != Some(start) {
        return Ok(false);
    }
    pidfd_send_signal(&fd, sig)?;
    Ok(true)
}

/// A pidfd for `pid` (None if it is gone).
pub(crate) fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub(crate) fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> Result<(), std::io::Error> {
    // SAFETY: a valid pidfd, a signal number, a null siginfo (kernel fills it) and flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Parses `SIGTERM`, `TERM`, `term` or `15` into a signal number.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(n)
}

/// The fields of `/proc/<pid>/stat` after the command name, which may contain spaces and
/// parentheses (so the split is after the last `)`); index 0 is field 3 (state).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// What `ps` shows of a process from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The parent's pid (field 4).
    pub ppid: String,
    /// User plus system CPU time, clock ticks (fields 14 and 15).
    pub cpu_ticks: u64,
    /// Start time, clock ticks since boot (field 22).
    pub start_ticks: u64,
}

/// `ps` figures of `pid`, None if it is gone.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let f = stat_fields(pid)?;
    Some(ProcStat {
        ppid: f.get(1)?.clone(),
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
    })
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), None if gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let fields = stat_fields(pid)?;
    // A zombie counts as gone.
    if fields.first().map(String::as_str) == Some("Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still exists (and isn't a zombie).
pub fn process_alive(pid: i32, start: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start)
}

/// The exit code of a wait status, shell style (128+N when killed by signal N).
pub fn exit_code_of(ws: WaitStatus) -> Option<i64> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c as i64),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i64),
        _ => None,
    }
}

/// Clock ticks per second (`_SC_CLK_TCK`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// The boot time, seconds since the epoch (`btime` of /proc/stat).
pub fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
