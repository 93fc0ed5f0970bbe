//! Descriptor flags the monitor sets on its pipes and terminal.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Makes `fd` non-blocking.
pub(crate) fn set_nonblock(fd: RawFd) {
    // SAFETY: fcntl on an fd we own; only the O_NONBLOCK flag is changed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// Makes `fd` close-on-exec.
pub(crate) fn set_cloexec(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
}
