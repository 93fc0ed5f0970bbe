//! docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, with `max-size` /
//! `max-file` rotation (`container-json.log`, `.1`, `.2`, ... oldest last). Writing is done by the
//! monitor; reading (tail, since/until, follow across rotations) by `logs` and attached runs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lines longer than this are split into several entries (as docker does at 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Errors of the logs module.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An option value could not be parsed.
    #[error("invalid log option {key}={value}")]
    BadOption {
        /// The option.
        key: String,
        /// Its value.
        value: String,
    },
    /// Reading or writing a log file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// One log entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JsonLine {
    /// The text, including its trailing newline when the line was complete.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 time with nanoseconds.
    pub time: String,
}

/// Rotation settings of the json-file driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the current file would exceed this many bytes (None: never).
    pub max_size: Option<u64>,
    /// Number of files kept, the current one included (>= 1).
    pub max_file: u32,
}

impl Rotation {
    /// Parses the driver options (`max-size`: `10m`, `1k`, bytes; `max-file`: count).
    pub fn from_options<'a>(
        opts: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, LogError> {
        let mut r = Rotation { max_size: None, max_file: 1 };
        for (k, v) in opts {
            let bad = || LogError::BadOption { key: k.clone(), value: v.clone() };
            match k.as_str() {
                "max-size" => {
                    let n = parse_size(v).ok_or_else(bad)?;
                    r.max_size = (n > 0).then_some(n);
                }
                "max-file" => {
                    r.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

/// Parses docker sizes: `123`, `10k`, `5m`, `1g` (also `kb`, `mb`, `gb`, `b`; powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

/// Appends entries to `container-json.log`, rotating by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
}

impl LogWriter {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter { path: path.to_path_buf(), rotation, file, size })
    }

    /// Writes one entry of `stream` with the current time.
    pub fn write(&mut self, stream: &str, bytes: &[u8]) -> Result<(), LogError> {
        let line = JsonLine {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_string(),
            time: crate::time::now_rfc3339(),
        };
        let mut buf = serde_json::to_vec(&line).unwrap_or_default();
        buf.push(b'\n');
        if let Some(max) = self.rotation.max_size
            && self.size > 0
            && self.size + buf.len() as u64 > max
        {
            self.rotate()?;
        }
        self.file.write_all(&buf).map_err(|e| LogError::Io {
            op: "write",
            path: self.path.clone(),
            source: e,
        })?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let n = self.rotation.max_file;
        if n <= 1 {
            self.file.set_len(0).map_err(|e| LogError::Io {
                op: "truncate",
                path: self.path.clone(),
                source: e,
            })?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..n - 1).rev() {
            let from = rotated(&self.path, i);
            if from.exists() {
                let _ = fs::rename(&from, rotated(&self.path, i + 1));
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1)).map_err(|e| LogError::Io {
            op: "rotate",
            path: self.path.clone(),
            source: e,
        })?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| LogError::Io {
        op: "open",
        path: path.to_path_buf(),
        source: e,
    })
}

/// `path.N`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Splits a byte stream into log lines: complete lines, or 16 KiB pieces of a longer one.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Adds `data`; returns the complete entries it finished.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n')
                && i < MAX_LINE
            {
                out.push(self.buf.drain(..=i).collect());
                continue;
            }
            if self.buf.len() >= MAX_LINE {
                out.push(self.buf.drain(..MAX_LINE).collect());
                continue;
            }
            break;
        }
        out
    }

    /// The unfinished rest (at end of stream).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

/// A decoded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text.
    pub text: String,
    /// The stored time string.
    pub time: String,
    /// The time in unix nanoseconds (0 if unparseable).
    pub time_ns: i128,
}

impl LogEntry {
    fn from_line(line: &[u8]) -> Option<Self> {
        let j: JsonLine = serde_json::from_slice(line).ok()?;
        let time_ns = chrono::DateTime::parse_from_rfc3339(&j.time)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(i128::from)
            .unwrap_or(0);
        Some(LogEntry { stream: j.stream, text: j.log, time: j.time, time_ns })
    }
}

/// The log files of `path`, oldest first (`.N` ... `.1`, then the current file).
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files.push(path.to_path_buf());
    files
}

/// Reads every stored entry, oldest first.
pub fn read_all(path: &Path) -> Vec<LogEntry> {
    log_files(path).iter().flat_map(|f| read_all_file(f)).collect()
}

/// Reads the entries of one log file.
pub fn read_all_file(path: &Path) -> Vec<LogEntry> {
    let mut out = Vec::new();
    if let Ok(file) = File::open(path) {
        for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
            if let Some(e) = LogEntry::from_line(&line) {
                out.push(e);
            }
        }
    }
    out
}

/// Follows the current log file from a position, across rotations.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    reader: Option<(BufReader<File>, u64)>,
    partial: Vec<u8>,
}

impl LogFollower {
    /// Starts at the end of the current file (entries written from now on).
    pub fn from_end(path: &Path) -> Self {
        let mut f = LogFollower { path: path.to_path_buf(), reader: None, partial: Vec::new() };
        if let Ok(file) = File::open(path) {
            let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            let mut r = BufReader::new(file);
            let _ = io::Seek::seek(&mut r, io::SeekFrom::End(0));
            f.reader = Some((r, ino));
        }
        f
    }

    /// Starts at the beginning of the current file.
    pub fn from_start(path: &Path) -> Self {
        LogFollower { path: path.to_path_buf(), reader: None, partial: Vec::new() }
    }

    /// Returns entries appended since the last call.
    pub fn poll(&mut self) -> Vec<LogEntry> {
        let mut out = Vec::new();
        loop {
            if self.reader.is_none() {
                match File::open(&self.path) {
                    Ok(file) => {
                        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
                        self.reader = Some((BufReader::new(file), ino));
                    }
                    Err(_) => return out,
                }
            }
            let Some((reader, ino)) = self.reader.as_mut() else { return out };
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        self.partial.extend_from_slice(&line);
                        if self.partial.ends_with(b"\n") {
                            if let Some(e) = LogEntry::from_line(&self.partial) {
                                out.push(e);
                            }
                            self.partial.clear();
                        }
                    }
                }
            }
            // Rotated (renamed away or truncated)? Then continue with the new current file.
            let current = fs::metadata(&self.path).ok();
            let pos = io::Seek::stream_position(reader).unwrap_or(0);
            match current {
                Some(m) if m.ino() != *ino => {
                    self.reader = None;
                    self.partial.clear();
                }
                Some(m) if m.len() < pos => {
                    let _ = io::Seek::seek(reader, io::SeekFrom::Start(0));
                    self.partial.clear();
                }
                _ => return out,
            }
        }
    }
}

/// Selects entries by stream, time window and tail count.
pub fn select(
    entries: Vec<LogEntry>,
    stdout: bool,
    stderr: bool,
    since: Option<i128>,
    until: Option<i128>,
    tail: Option<usize>,
) -> Vec<LogEntry> {
    let mut v: Vec<LogEntry> = entries
        .into_iter()
        .filter(|e| (e.stream == "stdout" && stdout) || (e.stream == "stderr" && stderr))
        .filter(|e| since.is_none_or(|s| e.time_ns >= s))
        .filter(|e| until.is_none_or(|u| e.time_ns < u))
        .collect();
    if let Some(n) = tail {
        let skip = v.len().saturating_sub(n);
        v.drain(..skip);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10k"), Some(10240));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("300"), Some(300));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn splitter_splits_lines_and_long_runs() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nb"), vec![b"a\n".to_vec()]);
        assert_eq!(s.push(b"c\n"), vec![b"bc\n".to_vec()]);
        let long = vec![b'x'; MAX_LINE + 5];
        let out = s.push(&long);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(s.finish(), Some(vec![b'x'; 5]));
    }

    #[test]
    fn write_rotate_read_follow() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container-json.log");
        let rot = Rotation { max_size: Some(200), max_file: 3 };
        let mut w = LogWriter::open(&p, rot).unwrap();
        let mut f = LogFollower::from_start(&p);
        let mut followed = Vec::new();
        for i in 0..20 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
            followed.extend(f.poll());
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists());
        assert!(!rotated(&p, 3).exists());
        let all = read_all(&p);
        assert!(all.len() < 20, "oldest entries rotated away");
        assert_eq!(all.last().unwrap().text, "line 19\n");
        assert_eq!(followed.len(), 20);
        assert_eq!(followed[7].text, "line 7\n");
        let tail = select(all, true, true, None, None, Some(2));
        assert_eq!(tail[0].text, "line 18\n");
        let raw = fs::read_to_string(&p).unwrap();
        let first = raw.lines().next().unwrap();
        assert!(first.starts_with("{\"log\":\"line "), "{first}");
        assert!(first.contains("\"stream\":\"stdout\",\"time\":\""), "{first}");
    }

    #[test]
    fn follower_reads_a_removed_containers_log_to_its_end() {
        // Removal renames the container directory away and deletes its log (a recycled
        // directory never keeps it): a follower still holding the file reads its last lines.
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("c1");
        fs::create_dir(&cdir).unwrap();
        let p = cdir.join("container-json.log");
        let rot = Rotation { max_size: None, max_file: 1 };
        let mut w = LogWriter::open(&p, rot).unwrap();
        let mut f = LogFollower::from_start(&p);
        w.write("stdout", b"first\n").unwrap();
        assert_eq!(f.poll().iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), ["first\n"]);
        w.write("stdout", b"last\n").unwrap();
        let moved = dir.path().join(".rm-c1");
        fs::rename(&cdir, &moved).unwrap();
        fs::remove_file(moved.join("container-json.log")).unwrap();
        assert_eq!(f.poll().iter().map(|e| e.text.as_str()).collect::<Vec<_>>(), ["last\n"]);
        assert!(f.poll().is_empty());
    }
}
