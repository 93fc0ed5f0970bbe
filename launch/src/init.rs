//! The minimal init (`init: true`): PID 1 of the container is a forked copy of the launcher's
//! child that never execs. It forwards signals to the real process, reaps every zombie, and
//! exits with the real process's status. Allocation-free (runs after a fork).

use super::sys;

/// Runs the init loop for `child` with every signal blocked in `all`. Never returns.
pub fn run(child: libc::pid_t, all: &libc::sigset_t) -> ! {
    // Signals stay blocked (inherited from the parent's clone): they queue for sigwaitinfo.
    sys::set_sigmask(all);
    loop {
        let sig = match sys::sigwait(all) {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != libc::SIGCHLD {
            sys::kill(child, sig);
            continue;
        }
        // Reap everything that exited; leave when the real process did.
        while let Ok((pid, status)) = sys::waitpid(-1, libc::WNOHANG) {
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    1
                };
                sys::exit(code);
            }
        }
    }
}
