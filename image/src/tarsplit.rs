//! A layer's tar stream kept as everything but its file contents (docker's "tar-split" idea):
//! the unpacked layer directory already holds the contents, so `tar-split` keeps only the
//! headers, padding and other bytes of the stream, and `save` rebuilds the exact bytes the
//! diff id names. The store so never keeps a second, uncompressed copy of a layer.
//!
//! `tar-split` (gzip-compressed) is a sequence of records, a tag byte then little-endian fields:
//! - `R` len:u64, then len bytes: bytes of the stream as they were;
//! - `F` len:u64, path_len:u32, path: the next len bytes of the stream are the content of
//!   `diff/<path>`;
//! - `E` total:u64: the end; the stream was `total` bytes long.
//!
//! A tar may hold one path twice: the unpacker then replaces the first file, whose content is
//! copied first into `tar-split.kept` as (file record number:u64, len:u64, bytes). Usually absent.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The records file in a layer directory.
pub(crate) const SPLIT_FILE: &str = "tar-split";
/// The contents of replaced files, beside [`SPLIT_FILE`].
pub(crate) const KEPT_FILE: &str = "tar-split.kept";

/// Raw bytes are flushed into a record once this many are pending.
const RAW_CHUNK: usize = 64 * 1024;

/// The error a [`Recording`] reader returns once the stream passes the size limit; the caller
/// asks [`Recorder::exceeded`] to tell it from other read errors.
const TOO_LARGE: &str = "the layer exceeds the size limit";

struct State {
    /// Bytes of the stream read so far.
    pos: u64,
    /// Refuse the stream beyond this many bytes.
    limit: Option<u64>,
    exceeded: bool,
    hasher: sha2::Sha256,
    /// Bytes still to come that are the content of the last file record (not recorded).
    skip: u64,
    /// Raw bytes not yet written as a record.
    pending: Vec<u8>,
    out: flate2::write::GzEncoder<BufWriter<File>>,
    /// The layer's `diff/` directory.
    diff: PathBuf,
    kept_path: PathBuf,
    kept: Option<BufWriter<File>>,
    /// File records written so far.
    files: u64,
    /// Path (components) -> number of the file record whose content is there now.
    live: BTreeMap<Vec<OsString>, u64>,
}

impl State {
    fn flush_raw(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out.write_all(b"R")?;
        self.out.write_all(&(self.pending.len() as u64).to_le_bytes())?;
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

/// Records a layer's stream while it is unpacked into `diff`; share it between the
/// [`Recording`] reader the tar parser reads and the unpacker, which reports file contents and
/// replacements.
#[derive(Clone)]
pub(crate) struct Recorder(Rc<RefCell<State>>);

impl Recorder {
    /// Starts recording into `layer_dir/tar-split` for the layer unpacked into `diff`.
    pub fn create(layer_dir: &Path, diff: &Path, limit: Option<u64>) -> io::Result<Recorder> {
        let out = File::create(layer_dir.join(SPLIT_FILE))?;
        let out = flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::fast());
        Ok(Recorder(Rc::new(RefCell::new(State {
            pos: 0,
            limit,
            exceeded: false,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            skip: 0,
            pending: Vec::new(),
            out,
            diff: diff.to_path_buf(),
            kept_path: layer_dir.join(KEPT_FILE),
            kept: None,
            files: 0,
            live: BTreeMap::new(),
        }))))
    }

    /// The reader to hand the tar parser: every byte of `inner` passes the recorder.
    pub fn reader<R: Read>(&self, inner: R) -> Recording<R> {
        Recording { inner, rec: self.clone() }
    }

    /// Whether reading stopped at the size limit.
    pub fn exceeded(&self) -> bool {
        self.0.borrow().exceeded
    }

    /// The unpacker is about to copy `len` content bytes starting at stream offset `pos` into
    /// the file at `comps`: those bytes are not recorded. An offset other than the current one
    /// (never seen with the tar crate) leaves the bytes recorded as they are.
    pub fn file_content(&self, pos: u64, len: u64, comps: &[OsString]) -> io::Result<()> {
        let mut st = self.0.borrow_mut();
        if len == 0 || pos != st.pos || st.skip != 0 {
            return Ok(());
        }
        st.flush_raw()?;
        let path = comps.iter().map(|c| c.as_bytes()).collect::<Vec<_>>().join(&b'/');
        let path_len = u32::try_from(path.len()).map_err(io::Error::other)?;
        st.out.write_all(b"F")?;
        st.out.write_all(&len.to_le_bytes())?;
        st.out.write_all(&path_len.to_le_bytes())?;
        st.out.write_all(&path)?;
        st.skip = len;
        let n = st.files;
        st.files += 1;
        st.live.insert(comps.to_vec(), n);
        Ok(())
    }

    /// The unpacker is about to remove or replace `comps` (and what is under it): contents of
    /// recorded files there are copied into `tar-split.kept` first.
    pub fn before_remove(&self, comps: &[OsString]) -> io::Result<()> {
        let mut st = self.0.borrow_mut();
        let gone: Vec<(Vec<OsString>, u64)> = st
            .live
            .range(comps.to_vec()..)
            .take_while(|(k, _)| k.starts_with(comps))
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        for (k, n) in gone {
            st.live.remove(&k);
            let path: PathBuf = std::iter::once(st.diff.as_os_str())
                .chain(k.iter().map(|c| c.as_os_str()))
                .collect();
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let len = f.metadata()?.len();
            if st.kept.is_none() {
                let kp = st.kept_path.clone();
                st.kept = Some(BufWriter::new(File::create(kp)?));
            }
            let Some(kept) = st.kept.as_mut() else { continue };
            kept.write_all(&n.to_le_bytes())?;
            kept.write_all(&len.to_le_bytes())?;
            let copied = io::copy(&mut (&mut f).take(len), kept)?;
            if copied != len {
                return Err(io::Error::other(format!("{} shrank while kept", path.display())));
            }
        }
        Ok(())
    }

    /// Ends the record (the stream must have been read to its end): returns `sha256:<hex>` of
    /// the whole stream and its length.
    pub fn finish(self) -> io::Result<(String, u64)> {
        let mut st = self.0.borrow_mut();
        st.flush_raw()?;
        let total = st.pos;
        st.out.write_all(b"E")?;
        st.out.write_all(&total.to_le_bytes())?;
        st.out.try_finish()?;
        st.out.get_mut().flush()?;
        if let Some(k) = st.kept.as_mut() {
            k.flush()?;
        }
        let hasher = std::mem::replace(&mut st.hasher, <sha2::Sha256 as sha2::Digest>::new());
        let digest = sha2::Digest::finalize(hasher);
        Ok((format!("sha256:{}", hex::encode(digest)), total))
    }
}

/// A reader passing every byte through a [`Recorder`] (hash, size limit, record).
pub(crate) struct Recording<R> {
    inner: R,
    rec: Recorder,
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut st = self.rec.0.borrow_mut();
        st.pos += n as u64;
        if st.limit.is_some_and(|l| st.pos > l) {
            st.exceeded = true;
            return Err(io::Error::other(TOO_LARGE));
        }
        sha2::Digest::update(&mut st.hasher, &buf[..n]);
        let skip = st.skip.min(n as u64) as usize;
        st.skip -= skip as u64;
        st.pending.extend_from_slice(&buf[skip..n]);
        if st.pending.len() >= RAW_CHUNK {
            st.flush_raw()?;
        }
        Ok(n)
    }
}

/// Where the bytes of the current record come from.
enum Source {
    /// `n` bytes from the records file.
    Raw(u64),
    /// `n` bytes from a file of the layer (or of `tar-split.kept`, from an offset).
    File(File, u64, Option<u64>),
    /// No record open.
    Between,
    /// The end record was read and the stream checked.
    Done,
}

/// Rebuilds a layer's tar stream from its `tar-split` and `diff/`, checking that it hashes to
/// the diff id (a changed layer file is an error, never a wrong archive).
pub(crate) struct Rebuilt {
    records: flate2::read::GzDecoder<BufReader<File>>,
    diff: PathBuf,
    kept: Option<File>,
    /// File record number -> (offset, len) in `tar-split.kept`.
    kept_at: HashMap<u64, (u64, u64)>,
    files: u64,
    src: Source,
    hasher: sha2::Sha256,
    count: u64,
    diff_id: String,
}

impl Rebuilt {
    /// Opens the layer in `layer_dir` whose stream hashes to `diff_id`.
    pub fn open(layer_dir: &Path, diff_id: &str) -> io::Result<Rebuilt> {
        let records =
            flate2::read::GzDecoder::new(BufReader::new(File::open(layer_dir.join(SPLIT_FILE))?));
        let mut kept_at = HashMap::new();
        let kept = match File::open(layer_dir.join(KEPT_FILE)) {
            Ok(f) => {
                let mut r = BufReader::new(&f);
                let mut off = 0u64;
                let mut head = [0u8; 16];
                loop {
                    match r.read_exact(&mut head) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                    let (n, len) = (le64(&head[..8]), le64(&head[8..]));
                    kept_at.insert(n, (off + 16, len));
                    io::copy(&mut (&mut r).take(len), &mut io::sink())?;
                    off += 16 + len;
                }
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Rebuilt {
            records,
            diff: layer_dir.join("diff"),
            kept,
            kept_at,
            files: 0,
            src: Source::Between,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            count: 0,
            diff_id: diff_id.to_string(),
        })
    }

    /// Reads the next record header and opens its source.
    fn next_record(&mut self) -> io::Result<()> {
        let mut tag = [0u8; 1];
        self.records.read_exact(&mut tag)?;
        let mut b8 = [0u8; 8];
        self.records.read_exact(&mut b8)?;
        let n = u64::from_le_bytes(b8);
        self.src = match tag[0] {
            b'R' => Source::Raw(n),
            b'F' => {
                let mut b4 = [0u8; 4];
                self.records.read_exact(&mut b4)?;
                let mut path = vec![0u8; u32::from_le_bytes(b4) as usize];
                self.records.read_exact(&mut path)?;
                let number = self.files;
                self.files += 1;
                match (self.kept_at.get(&number), &self.kept) {
                    (Some(&(off, len)), Some(k)) if len == n => {
                        Source::File(k.try_clone()?, n, Some(off))
                    }
                    _ => {
                        let p = self.diff.join(PathBuf::from(OsString::from_vec(path)));
                        let f = std::fs::OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_NOFOLLOW)
                            .open(&p)
                            .map_err(|e| {
                                io::Error::new(e.kind(), format!("{}: {e}", p.display()))
                            })?;
                        Source::File(f, n, None)
                    }
                }
            }
            b'E' => {
                let digest = sha2::Digest::finalize(std::mem::replace(
                    &mut self.hasher,
                    <sha2::Sha256 as sha2::Digest>::new(),
                ));
                let got = format!("sha256:{}", hex::encode(digest));
                if n != self.count || got != self.diff_id {
                    return Err(io::Error::other(format!(
                        "the layer's files changed: rebuilt {got} ({} bytes), expected {} ({n} bytes)",
                        self.count, self.diff_id
                    )));
                }
                Source::Done
            }
            t => return Err(io::Error::other(format!("corrupt tar-split record tag {t}"))),
        };
        Ok(())
    }
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl Read for Rebuilt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.src {
                Source::Done => return Ok(0),
                Source::Between => {
                    self.next_record()?;
                    continue;
                }
                Source::Raw(0) | Source::File(_, 0, _) => {
                    self.src = Source::Between;
                    continue;
                }
                Source::Raw(left) => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = self.records.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    *left -= n as u64;
                    n
                }
                Source::File(f, left, at) => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = match at {
                        Some(off) => {
                            let n = f.read_at(&mut buf[..want], *off)?;
                            *off += n as u64;
                            n
                        }
                        None => f.read(&mut buf[..want])?,
                    };
                    if n == 0 {
                        return Err(io::Error::other("a layer file is shorter than recorded"));
                    }
                    *left -= n as u64;
                    n
                }
            };
            sha2::Digest::update(&mut self.hasher, &buf[..n]);
            self.count += n as u64;
            return Ok(n);
        }
    }
}
