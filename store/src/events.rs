//! The event journal: docker's events, appended to `{root}/events.jsonl` by the process that
//! does what they report (the CLI, the API service or a container's monitor), so the API's
//! `GET /events` can replay the past (`since`) and follow what any berth process does. Here, in
//! the state root's crate, so the image and volume stores journal their own changes; the
//! runtime's `events` module adds the container events (create, start, die with `exitCode`,
//! kill, stop, restart, pause, unpause, rename, destroy, exec_*) and the network ones.
//!
//! One JSON object per line, each written with a single `write` on an `O_APPEND` descriptor, so
//! concurrent writers never interleave within a line; no fsync (an event is a report, not a
//! record berth relies on). Past [`MAX_SIZE`] the file is renamed to `events.jsonl.1`
//! (replacing the previous one) and a new one starts, so the journal never holds more than
//! twice that; a reader holding the old file finishes it before moving to the new one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The journal's size before it is rotated.
const MAX_SIZE: u64 = 1 << 20;

/// One journaled event, in docker's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEvent {
    /// When it happened.
    pub time: chrono::DateTime<chrono::Utc>,
    /// docker's event type: `container`, `network`, `volume` or `image` (lines written before
    /// types were journaled are container events).
    #[serde(rename = "type", default = "container_type")]
    pub kind: String,
    /// docker's action (`create`, `die`, `kill`, `exec_create: CMD`, `connect`, `tag`, ...).
    pub action: String,
    /// The object's id (container id, network id, volume name, image id or reference).
    pub id: String,
    /// docker's actor attributes (`name`, `image`, labels, `signal`, `execID`, `exitCode`,
    /// `container`, ...).
    pub attributes: BTreeMap<String, String>,
}

fn container_type() -> String {
    "container".into()
}

impl JournalEvent {
    /// An event of container `id` happening now.
    pub fn now(action: impl Into<String>, id: &str, attributes: &[(&str, String)]) -> Self {
        Self::of("container", action, id, attributes)
    }

    /// An event of type `kind` (`network`, `volume`, `image`) of object `id` happening now.
    pub fn of(
        kind: &str,
        action: impl Into<String>,
        id: &str,
        attributes: &[(&str, String)],
    ) -> Self {
        JournalEvent {
            time: chrono::Utc::now(),
            kind: kind.to_string(),
            action: action.into(),
            id: id.to_string(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        }
    }
}

/// Journals event `action` of type `kind` (`network`, `volume`, `image`) of object `id`
/// (best effort, as [`append`]).
pub fn object(root: &Path, kind: &str, action: &str, id: &str, attributes: &[(&str, String)]) {
    append(root, &JournalEvent::of(kind, action, id, attributes));
}

fn journal_path(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

/// Appends `ev` to the journal of the state root `root`. Best effort: the operation that
/// happened is not failed because its event could not be written.
pub fn append(root: &Path, ev: &JournalEvent) {
    let Ok(mut line) = serde_json::to_vec(ev) else { return };
    line.push(b'\n');
    let path = journal_path(root);
    let res = OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
        f.write_all(&line)?;
        if f.metadata()?.len() > MAX_SIZE {
            // Whoever crosses the limit first rotates; a racing writer's rename of the new,
            // small file only loses the events between the two renames from the `.1` copy.
            std::fs::rename(&path, root.join("events.jsonl.1"))?;
        }
        Ok(())
    });
    if let Err(e) = res {
        tracing::debug!("event journal {}: {e}", path.display());
    }
}

/// Reads the events appended after it was opened.
pub struct JournalReader {
    path: PathBuf,
    /// The journal file being read (None until one exists).
    file: Option<BufReader<File>>,
    /// Bytes of an incomplete last line, kept until its newline arrives.
    partial: Vec<u8>,
}

fn same_file(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

impl JournalReader {
    /// A reader of everything the journal holds: returns the events kept (oldest first: the
    /// rotated file, then the current one) and the reader positioned after them, so a caller
    /// replays the past and then follows with `read_new` without a gap or a duplicate.
    pub fn with_history(root: &Path) -> (Self, Vec<JournalEvent>) {
        let path = journal_path(root);
        // The current file first: a rotation after this makes the `.1` copy the same file,
        // which is then read once, as the current one.
        let current = File::open(&path).ok();
        let mut out = Vec::new();
        if let Ok(old) = File::open(root.join("events.jsonl.1"))
            && !current.as_ref().is_some_and(|c| same_file(c, &old))
        {
            let mut r = JournalReader { path: path.clone(), file: None, partial: Vec::new() };
            r.file = Some(BufReader::new(old));
            r.drain(&mut out);
        }
        let mut r = JournalReader { path, file: current.map(BufReader::new), partial: Vec::new() };
        out.extend(r.read_new());
        (r, out)
    }

    /// A reader positioned at the journal's current end.
    pub fn at_end(root: &Path) -> Self {
        let path = journal_path(root);
        let file = File::open(&path).ok().and_then(|mut f| {
            f.seek(SeekFrom::End(0)).ok()?;
            Some(BufReader::new(f))
        });
        JournalReader { path, file, partial: Vec::new() }
    }

    /// The events appended since the last call (lines that don't parse are skipped).
    pub fn read_new(&mut self) -> Vec<JournalEvent> {
        let mut out = Vec::new();
        loop {
            self.drain(&mut out);
            if let Some(f) = self.file.as_ref() {
                // Rotated: the path names a new file. The old one is read to its end above.
                let same = match (std::fs::metadata(&self.path), f.get_ref().metadata()) {
                    (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                    (Err(_), _) => true,
                    _ => false,
                };
                if same {
                    return out;
                }
                self.partial.clear();
            }
            match File::open(&self.path) {
                Ok(f) => self.file = Some(BufReader::new(f)),
                Err(_) => return out,
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<JournalEvent>) {
        let Some(f) = self.file.as_mut() else { return };
        loop {
            match f.read_until(b'\n', &mut self.partial) {
                Ok(0) | Err(_) => return,
                Ok(_) if self.partial.last() == Some(&b'\n') => {
                    if let Ok(ev) = serde_json::from_slice(&self.partial) {
                        out.push(ev);
                    }
                    self.partial.clear();
                }
                // A line still being written: keep its start for the next call.
                Ok(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_events_are_read_once_across_rotation() {
        let root = tempfile::tempdir().expect("tempdir");
        append(root.path(), &JournalEvent::now("kill", "old", &[]));
        let mut r = JournalReader::at_end(root.path());
        assert!(r.read_new().is_empty(), "events before the reader opened are not replayed");
        let ev = JournalEvent::now("kill", "c1", &[("signal", "15".into())]);
        append(root.path(), &ev);
        assert_eq!(r.read_new(), vec![ev]);
        assert!(r.read_new().is_empty());
        // Grow past the limit: the file is rotated, and nothing is lost or read twice.
        let big = "x".repeat(4096);
        let n = (MAX_SIZE / 4096) as usize + 2;
        for i in 0..n {
            append(
                root.path(),
                &JournalEvent::now(format!("exec_create: {big}"), &i.to_string(), &[]),
            );
        }
        assert!(root.path().join("events.jsonl.1").exists());
        let ids: Vec<String> = r.read_new().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, (0..n).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn history_spans_the_rotated_file_and_is_followed_without_gap_or_duplicate() {
        let root = tempfile::tempdir().expect("tempdir");
        let (mut r, past) = JournalReader::with_history(root.path());
        assert!(past.is_empty(), "no journal yet: no history");
        append(root.path(), &JournalEvent::now("create", "first", &[]));
        assert_eq!(r.read_new().len(), 1, "a reader made before the journal existed follows it");
        // Fill past one rotation: the history is the rotated file, then the current one.
        let big = "x".repeat(4096);
        let n = (MAX_SIZE / 4096) as usize + 10;
        for i in 0..n {
            append(
                root.path(),
                &JournalEvent::of("network", "create", &i.to_string(), &[("name", big.clone())]),
            );
        }
        assert!(root.path().join("events.jsonl.1").exists());
        let (mut r, past) = JournalReader::with_history(root.path());
        let ids: Vec<String> = past.iter().map(|e| e.id.clone()).collect();
        // The first event is in the rotated file's start, and every later one follows in order.
        assert_eq!(ids.first().map(String::as_str), Some("first"));
        let tail: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(&ids[1..], &tail[..]);
        assert!(past[1..].iter().all(|e| e.kind == "network"));
        // The reader continues after the history: only new events.
        assert!(r.read_new().is_empty());
        append(root.path(), &JournalEvent::of("volume", "destroy", "v", &[]));
        let next = r.read_new();
        assert_eq!((next.len(), next[0].kind.as_str()), (1, "volume"));
        // A second rotation drops the oldest file: the journal stays bounded.
        for i in 0..n {
            append(
                root.path(),
                &JournalEvent::of("network", "destroy", &i.to_string(), &[("name", big.clone())]),
            );
        }
        let (_, past) = JournalReader::with_history(root.path());
        assert!(past.iter().all(|e| e.id != "first"), "the oldest events rotated out");
        let size = |f: &str| std::fs::metadata(root.path().join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(size("events.jsonl") + size("events.jsonl.1") <= 2 * (MAX_SIZE + 8192));
    }

    #[test]
    fn lines_written_before_types_read_as_container_events() {
        let old = r#"{"time":"2026-01-01T00:00:00Z","action":"kill","id":"c","attributes":{}}"#;
        let ev: JournalEvent = serde_json::from_str(old).expect("parse");
        assert_eq!(ev.kind, "container");
    }

    #[test]
    fn a_half_written_line_waits_for_its_end() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut r = JournalReader::at_end(root.path());
        let line = serde_json::to_string(&JournalEvent::now("kill", "c", &[])).expect("json");
        let (a, b) = line.split_at(10);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal_path(root.path()))
            .expect("open");
        f.write_all(a.as_bytes()).expect("write");
        assert!(r.read_new().is_empty());
        f.write_all(format!("{b}\n").as_bytes()).expect("write");
        assert_eq!(r.read_new().len(), 1);
    }
}
