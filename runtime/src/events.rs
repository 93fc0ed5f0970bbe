//! The event journal: what only the acting process sees (a signal sent, a command executed in
//! a container) is appended to `{root}/events.jsonl`, so `events` can report docker's `kill`
//! and `exec_*` events. State changes (create, start, die, ...) are read off the containers
//! themselves and are not journaled.
//!
//! One JSON object per line, each written with a single `write` on an `O_APPEND` descriptor, so
//! concurrent writers never interleave within a line. Past [`MAX_SIZE`] the file is renamed to
//! `events.jsonl.1` (replacing the previous one) and a new one starts; a reader holding the old
//! file finishes it before moving to the new one.

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
    /// docker's action (`kill`, `exec_create: CMD`, `exec_start: CMD`, `exec_die`).
    pub action: String,
    /// The container's id.
    pub id: String,
    /// docker's attributes (`signal`, `execID`, `exitCode`).
    pub attributes: BTreeMap<String, String>,
}

impl JournalEvent {
    /// An event of container `id` happening now.
    pub fn now(action: impl Into<String>, id: &str, attributes: &[(&str, String)]) -> Self {
        JournalEvent {
            time: chrono::Utc::now(),
            action: action.into(),
            id: id.to_string(),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        }
    }
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

impl JournalReader {
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
