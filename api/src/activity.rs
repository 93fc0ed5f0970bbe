//! Open connections and when the last one closed: what the idle timeout (`--timeout`) reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Open connections and when the last one closed, for the idle timeout.
#[derive(Debug)]
pub(crate) struct Activity {
    open: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

/// Held while a connection (or a hijacked stream) is open.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<Activity>);

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            open: AtomicUsize::new(0),
            last: std::sync::Mutex::new(Instant::now()),
        })
    }

    pub(crate) fn enter(self: &Arc<Self>) -> ActiveGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    pub(crate) fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last.lock().ok().map(|l| l.elapsed())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if let Ok(mut l) = self.0.last.lock() {
            *l = Instant::now();
        }
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}
