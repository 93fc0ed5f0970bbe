//! File events, batched.
//!
//! Directories are watched recursively (`notify` adds watches for directories created later);
//! a watched file is watched through its parent directory, because editors save by writing a
//! new file and renaming it over the old one, which would end a watch on the file itself.
//! Events are collected until no new one came for the quiet period (or the batch grew older
//! than its longest wait, so a file written without pause still gets synced). Events that
//! arrive while the caller handles a batch wait in the channel for the next one: none is lost.
//! When the kernel's queue overflowed, the batch says so ([`Batch::rescan`]) and the caller
//! treats every watched path as changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::WatchError;

/// The default quiet period: an editor's write-and-rename takes a few milliseconds, a
/// `git checkout` of many files writes them back to back.
pub const QUIET: Duration = Duration::from_millis(40);
/// The default longest time a batch collects before it is handed out.
pub const LONGEST: Duration = Duration::from_secs(2);

/// One batch of changed paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Every path an event named (created, written, removed, renamed from or to).
    pub paths: BTreeSet<PathBuf>,
    /// The kernel dropped events: every watched path must be treated as changed.
    pub rescan: bool,
}

/// A running watch over some paths.
pub struct FileEvents {
    // Dropping it ends the kernel watches.
    _watcher: notify::RecommendedWatcher,
    rx: Receiver<notify::Result<notify::Event>>,
    /// What the caller asked to watch (events elsewhere in a watched parent are dropped).
    roots: Vec<PathBuf>,
}

impl FileEvents {
    /// Starts watching `paths` (directories recursively, files through their parent).
    pub fn watch(paths: &[PathBuf]) -> Result<Self, WatchError> {
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            // The receiver only goes away with the watch.
            let _ = tx.send(ev);
        })
        .map_err(|source| WatchError::Watch { path: PathBuf::new(), source })?;
        let mut watched: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        for p in paths {
            if p.is_dir() {
                watched.insert((p.clone(), true));
            } else {
                let parent = p.parent().unwrap_or(Path::new("/")).to_path_buf();
                watched.insert((parent, false));
            }
        }
        // A directory already watched recursively covers anything under it.
        let recursive: Vec<PathBuf> =
            watched.iter().filter(|(_, r)| *r).map(|(p, _)| p.clone()).collect();
        for (p, rec) in &watched {
            let covered = recursive.iter().any(|r| r != p && p.starts_with(r));
            if covered || (!rec && recursive.contains(p)) {
                continue;
            }
            let mode = if *rec { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            watcher
                .watch(p, mode)
                .map_err(|source| WatchError::Watch { path: p.clone(), source })?;
        }
        Ok(FileEvents { _watcher: watcher, rx, roots: paths.to_vec() })
    }

    /// Waits for the next batch: blocks until an event comes, then collects until `quiet`
    /// passed without one (or `longest` since the first). Returns `Ok(None)` when `stop()`
    /// says so (checked a few times a second while nothing happens).
    pub fn next_batch(
        &self,
        quiet: Duration,
        longest: Duration,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Batch>, WatchError> {
        let mut batch = Batch::default();
        let mut first: Option<Instant> = None;
        loop {
            let wait = match first {
                None => Duration::from_millis(200),
                Some(t) => {
                    let left = longest.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        return Ok(Some(batch));
                    }
                    quiet.min(left)
                }
            };
            match self.rx.recv_timeout(wait) {
                Ok(ev) => {
                    if self.add(&mut batch, ev) && first.is_none() {
                        first = Some(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) if first.is_some() => return Ok(Some(batch)),
                Err(RecvTimeoutError::Timeout) => {
                    if stop() {
                        return Ok(None);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(WatchError::Stopped),
            }
        }
    }

    /// Adds what `ev` names to `batch`; true when it added something.
    fn add(&self, batch: &mut Batch, ev: notify::Result<notify::Event>) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                // The backend's errors (an overflow among them) lose events: rescan.
                tracing::debug!("file watch error: {e}");
                batch.rescan = true;
                return true;
            }
        };
        if ev.need_rescan() {
            batch.rescan = true;
            return true;
        }
        let counts = match ev.kind {
            // Reads, opens and closes after reading change nothing.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if !counts {
            return false;
        }
        let mut added = false;
        for p in ev.paths {
            if self.roots.iter().any(|r| p.starts_with(r)) {
                added |= batch.paths.insert(p);
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_writes_is_one_batch_and_nothing_is_lost_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let ev = FileEvents::watch(std::slice::from_ref(&root)).expect("watch");
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        for i in 0..200 {
            std::fs::write(root.join(format!("sub/f{i}")), b"x").expect("write");
        }
        let mut seen = BTreeSet::new();
        let mut batches = 0;
        // A file is reported, or the new directory it is in (files written before the kernel
        // watched it are found by the planner's walk of a reported directory).
        let covered = |seen: &BTreeSet<PathBuf>, i: usize| {
            seen.contains(&root.join("sub")) || seen.contains(&root.join(format!("sub/f{i}")))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let late = || Instant::now() > deadline;
        while (0..200).any(|i| !covered(&seen, i)) {
            let b = ev.next_batch(QUIET, LONGEST, &late).expect("batch");
            let b = b.unwrap_or_else(|| panic!("events lost: saw {seen:?}"));
            assert!(!b.rescan);
            seen.extend(b.paths);
            batches += 1;
        }
        // One batch, unless the scheduler paused the writer for longer than the quiet period.
        assert!(batches <= 2, "{batches} batches for one burst");
        // Written while nobody waited for a batch: it is in the next one.
        std::fs::write(root.join("late"), b"y").expect("write");
        let b = ev.next_batch(QUIET, LONGEST, &late).expect("batch").expect("the late write");
        assert!(b.paths.contains(&root.join("late")), "{b:?}");
    }

    #[test]
    fn a_watched_file_survives_a_save_by_rename_and_siblings_are_not_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        let file = root.join("requirements.txt");
        std::fs::write(&file, b"a").expect("write");
        let ev = FileEvents::watch(std::slice::from_ref(&file)).expect("watch");
        let deadline = Instant::now() + Duration::from_secs(20);
        let late = || Instant::now() > deadline;
        for round in 0..3 {
            std::fs::write(root.join("other"), b"o").expect("sibling");
            let tmp = root.join(".requirements.txt.tmp");
            std::fs::write(&tmp, format!("v{round}")).expect("tmp");
            std::fs::rename(&tmp, &file).expect("rename over");
            let b = ev.next_batch(QUIET, LONGEST, &late).expect("batch").expect("the save");
            assert!(b.paths.contains(&file), "round {round}: {b:?}");
            assert!(!b.paths.contains(&root.join("other")), "round {round}: {b:?}");
        }
    }

    #[test]
    fn stop_ends_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = FileEvents::watch(&[dir.path().to_path_buf()]).expect("watch");
        assert_eq!(ev.next_batch(QUIET, LONGEST, &|| true).expect("no error"), None);
    }
}
