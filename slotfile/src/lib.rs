//! Small records rewritten in place: two checksummed slots in one file, read without locks.
//!
//! A record that changes often (a container's run state, a network's endpoints) used to be
//! replaced by writing a temporary file and renaming it over the old one. Each write then made
//! one inode and freed another. On an ext4 without a journal every inode allocation scans past
//! the inodes freed in the last 30 s, so a burst of container starts slowed itself down
//! quadratically. Here a record lives in one file for its whole life:
//!
//! - The file holds two slots of `slot_size` bytes each (the file is exactly `2 * slot_size`
//!   long). Each slot is a 32-byte header (magic, slot size, sequence number, length, CRC-32 of
//!   header and payload) followed by the payload.
//! - A write (writers are serialised by the caller's lock) overwrites the slot that does *not*
//!   hold the newest record, with the next sequence number, using `pwrite`: no new inode, no
//!   freed block.
//! - A reader takes the valid slot with the highest sequence number. A slot being written reads
//!   as invalid (its checksum fails), so a reader sees the previous record, never a mix; a
//!   crash mid-write damages only the slot being written.
//! - When a payload outgrows its slot, or the file is missing or still in the old plain-JSON
//!   form, the file is written anew with larger slots and renamed into place (atomic for
//!   readers; one inode, rarely).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"BSF1";
const HEADER: usize = 32;
/// Smallest slot: two of them fill one 4 KiB block.
const MIN_SLOT: usize = 2048;
/// How often a reader re-reads a file whose slots are both invalid (two writes raced it)
/// before calling the file corrupt.
const READ_ATTEMPTS: usize = 50;

/// A decoded slot header whose checksum matched.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    len: usize,
}

fn crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..24]);
    h.update(payload);
    h.finalize()
}

/// The valid record in slot `index` of `file` (whose slots are `slot_size` long), if any.
fn slot_at(file: &[u8], slot_size: usize, index: usize) -> Option<Slot> {
    let s = file.get(index * slot_size..(index + 1) * slot_size)?;
    if s[..4] != MAGIC || u32::from_le_bytes(s[4..8].try_into().ok()?) as usize != slot_size {
        return None;
    }
    let seq = u64::from_le_bytes(s[8..16].try_into().ok()?);
    let len = u32::from_le_bytes(s[16..20].try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(s[24..28].try_into().ok()?);
    let payload = s.get(HEADER..HEADER + len)?;
    (crc(s, payload) == sum).then_some(Slot { seq, len })
}

/// The file's layout: its slot size and newest valid slot (index, header).
fn newest(file: &[u8]) -> Option<(usize, usize, Slot)> {
    if file.len() < 2 * HEADER || !file.len().is_multiple_of(2) {
        return None;
    }
    let slot_size = file.len() / 2;
    let a = slot_at(file, slot_size, 0);
    let b = slot_at(file, slot_size, 1);
    match (a, b) {
        (Some(a), Some(b)) if b.seq > a.seq => Some((slot_size, 1, b)),
        (Some(a), _) => Some((slot_size, 0, a)),
        (None, Some(b)) => Some((slot_size, 1, b)),
        (None, None) => None,
    }
}

/// Whether `file` is a record in the old form: a whole JSON document (written by temp file and
/// rename), read as it is.
fn is_plain_json(file: &[u8]) -> bool {
    matches!(file.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
}

fn corrupt(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: neither slot holds a valid record", path.display()),
    )
}

/// Reads the newest record at `path`; `Ok(None)` when the file is missing, an empty record when
/// the file is empty (what a crash while it was being created can leave). A file in the old
/// plain-JSON form is returned whole.
pub fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..READ_ATTEMPTS {
        let file = match fs::read(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if file.is_empty() || is_plain_json(&file) {
            return Ok(Some(file));
        }
        if let Some((slot_size, index, slot)) = newest(&file) {
            let start = index * slot_size + HEADER;
            return Ok(Some(file[start..start + slot.len].to_vec()));
        }
        // Both slots invalid: two writes overlapped this read (each write takes microseconds),
        // or the file is damaged. Let the writer finish and look again.
        std::thread::yield_now();
    }
    Err(corrupt(path))
}

/// Writes `payload` as the newest record at `path`. The caller serialises writers of one path
/// (readers need no lock). Not flushed to disk: after a power loss the file holds this record,
/// the previous one, or (if it was being created) nothing.
pub fn write(path: &Path, payload: &[u8]) -> io::Result<()> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => {
            let mut current = Vec::new();
            io::Read::read_to_end(&mut &f, &mut current)?;
            if let Some((slot_size, index, slot)) = newest(&current)
                && HEADER + payload.len() <= slot_size
            {
                let target = 1 - index;
                let bytes = encode(slot_size, slot.seq + 1, payload);
                return f.write_all_at(&bytes, (target * slot_size) as u64);
            }
            let next = newest(&current).map_or(1, |(_, _, s)| s.seq + 1);
            replace(path, payload, next)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(path, payload, 1),
        Err(e) => Err(e),
    }
}

/// One slot's bytes (header and payload; the rest of the slot is left as it was).
fn encode(slot_size: usize, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(slot_size as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let sum = crc(&out, payload);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

/// The slot size for `len` payload bytes: room for the payload to double before the next
/// re-layout.
fn slot_size_for(len: usize) -> usize {
    (2 * (HEADER + len)).next_power_of_two().max(MIN_SLOT)
}

/// Writes a fresh two-slot file beside `path` and renames it over `path`.
fn replace(path: &Path, payload: &[u8], seq: u64) -> io::Result<()> {
    let slot_size = slot_size_for(payload.len());
    if slot_size > u32::MAX as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "record too large"));
    }
    let mut bytes = encode(slot_size, seq, payload);
    bytes.resize(2 * slot_size, 0);
    let tmp = temp_path(path);
    let mut f = File::create(&tmp)?;
    if let Err(e) = f.write_all(&bytes) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    drop(f);
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("record");
    dir.join(format!(".{name}.tmp{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn missing_reads_as_none_and_empty_as_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r");
        assert_eq!(read(&p).unwrap(), None);
        fs::write(&p, b"").unwrap();
        assert_eq!(read(&p).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn rewrites_stay_in_one_inode_and_read_back_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r");
        write(&p, b"first").unwrap();
        let ino = inode(&p);
        for i in 0..10 {
            let v = format!("value {i} {}", "x".repeat(i * 50));
            write(&p, v.as_bytes()).unwrap();
            assert_eq!(read(&p).unwrap().unwrap(), v.as_bytes());
            assert_eq!(inode(&p), ino, "write {i} replaced the file");
        }
        assert_eq!(fs::metadata(&p).unwrap().len(), 2 * MIN_SLOT as u64);
        // No temporary file left beside it.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn outgrowing_the_slot_relays_the_file_and_keeps_the_record() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r");
        write(&p, b"small").unwrap();
        let big = vec![b'y'; 10_000];
        write(&p, &big).unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), big);
        let len = fs::metadata(&p).unwrap().len() as usize;
        assert_eq!(len, 2 * slot_size_for(big.len()));
        // Smaller records after that stay in the larger slots, in place.
        let ino = inode(&p);
        write(&p, b"small again").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"small again");
        assert_eq!(inode(&p), ino);
    }

    #[test]
    fn plain_json_from_before_is_read_whole_and_then_converted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        fs::write(&p, b"{\"State\":{}}\n").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"{\"State\":{}}\n");
        write(&p, b"{\"a\":1}").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"{\"a\":1}");
        assert!(!is_plain_json(&fs::read(&p).unwrap()));
    }

    /// A record file at `<d>/r` holding "one" (slot 0) and then "two" (slot 1), opened for
    /// damaging.
    fn two_records(d: &Path) -> (PathBuf, File) {
        let p = d.join("r");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        (p, f)
    }

    #[test]
    fn a_torn_slot_reads_as_the_previous_record() {
        let d = tempfile::tempdir().unwrap();
        let (p, f) = two_records(d.path());
        // Damage a payload byte of "two", as a write cut short would.
        f.write_all_at(b"X", (MIN_SLOT + HEADER) as u64).unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"one");
        // The next write goes to the slot that does not hold the newest valid record.
        write(&p, b"three").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"three");
    }

    #[test]
    fn both_slots_damaged_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (p, f) = two_records(d.path());
        f.write_all_at(b"X", HEADER as u64).unwrap();
        f.write_all_at(b"X", (MIN_SLOT + HEADER) as u64).unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("r: neither slot"), "{e}");
        // A write after that starts the file afresh.
        write(&p, b"again").unwrap();
        assert_eq!(read(&p).unwrap().unwrap(), b"again");
    }

    #[test]
    fn concurrent_readers_never_see_a_mix() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r");
        // Every record is one byte repeated: a mix of two writes would show two bytes.
        write(&p, &[b'a'; 1500]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = read(&p).unwrap().unwrap();
                    assert_eq!(r.len(), 1500);
                    assert!(r.iter().all(|&b| b == r[0]), "mixed record");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..20_000u32 {
            write(&p, &[b'a' + (i % 26) as u8; 1500]).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
