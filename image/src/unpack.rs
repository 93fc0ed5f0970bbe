//! Safe layer unpacking: a tar stream becomes an overlayfs-ready directory.
//!
//! The `tar` crate only parses; every file system change is made here relative to directory file
//! descriptors opened component by component with `O_NOFOLLOW`, so no entry can write outside the
//! layer directory: `..` components are refused, absolute paths are taken relative to the layer
//! (like docker), writing *through* any symlink is refused (symlinks themselves may point
//! anywhere: they are resolved inside the container's root at run time), and hard links must name
//! a file already in the layer. Docker whiteouts become overlayfs whiteouts: `.wh.NAME` -> a 0/0
//! character device `NAME`, `.wh..wh..opq` -> `trusted.overlay.opaque=y` on the parent directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::ImageError;
use super::tarsplit::Recorder;

/// Docker's whiteout prefix for a deleted file.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Docker's marker for an opaque directory.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Counts and hashes bytes read through it, optionally copying them to a file.
pub(crate) struct TeeReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    copy: Option<File>,
    /// Bytes read so far.
    pub count: u64,
}

impl<R: Read> TeeReader<R> {
    /// Wraps `inner`; every byte read is hashed and, if `copy` is set, written to it.
    pub fn new(inner: R, copy: Option<File>) -> Self {
        TeeReader { inner, hasher: <sha2::Sha256 as sha2::Digest>::new(), copy, count: 0 }
    }

    /// Reads the rest of the stream (tar padding after the end marker) and returns
    /// `sha256:<hex>` of everything read, flushing the copy.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        if let Some(f) = self.copy.take() {
            f.sync_all()?;
        }
        let digest = sha2::Digest::finalize(self.hasher);
        Ok((format!("sha256:{}", hex::encode(digest)), self.count))
    }
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        if let Some(f) = self.copy.as_mut() {
            io::Write::write_all(f, &buf[..n])?;
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The size of the buffer file contents are copied through.
const COPY_BUF: usize = 1 << 20;

/// Copies `from` to its end into `to` through `buf`, in pieces of up to [`COPY_BUF`] bytes.
/// std's `io::copy` would use 8 KiB: for a layer that is tens of thousands of `write`s, each of
/// which makes ext4 zero the part of a fresh page cache folio it does not cover, and as many
/// small inflate calls. Returns the bytes copied.
fn copy_content(from: &mut impl Read, to: &mut File, buf: &mut Vec<u8>) -> io::Result<u64> {
    if buf.len() < COPY_BUF {
        buf.resize(COPY_BUF, 0);
    }
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        io::Write::write_all(to, &buf[..filled])?;
        total += filled as u64;
    }
}

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

type ZstdFrame<R> = ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>;

/// Decodes a zstd stream of one or more frames (a frame per call of the compressor; ruzstd's
/// decoder reads one).
struct ZstdFrames<R: io::BufRead> {
    source: Option<R>,
    frame: Option<ZstdFrame<R>>,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(frame) = self.frame.as_mut() {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.frame.take().map(|f| f.into_inner());
            }
            let Some(mut source) = self.source.take() else { return Ok(0) };
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let frame = ZstdFrame::new(source)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            self.frame = Some(frame);
        }
    }
}

/// Wraps `reader` in a gzip or zstd decoder when it starts with that format's magic; plain tar
/// otherwise.
pub(crate) fn maybe_gunzip<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = io::BufReader::with_capacity(128 * 1024, reader);
    let head = io::BufRead::fill_buf(&mut buf)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Ok(Box::new(ZstdFrames { source: Some(buf), frame: None }))
    } else {
        Ok(Box::new(buf))
    }
}

/// Splits a tar path into normal components: leading `/` and `.` are dropped (relative to the
/// layer, like docker), `..` is refused.
pub(crate) fn clean_path(path: &Path) -> Result<Vec<OsString>, ImageError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(unsafe_entry(path, "the path has a '..' component"));
            }
            Component::Prefix(_) => return Err(unsafe_entry(path, "unexpected path prefix")),
        }
    }
    Ok(out)
}

fn unsafe_entry(path: &Path, reason: &str) -> ImageError {
    ImageError::UnsafeEntry { path: path.display().to_string(), reason: reason.to_string() }
}

fn entry_err(path: &Path, op: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Unpack { path: path.display().to_string(), reason: format!("{op}: {e}") }
}

/// Extended attributes a layer may set through PAX `SCHILY.xattr.*` records. Others (notably
/// `trusted.overlay.*`, which would let a tar forge overlayfs redirects) are dropped.
fn allowed_xattr(name: &str) -> bool {
    name == "security.capability" || name.starts_with("user.")
}

/// The allowed xattrs carried by PAX records for this entry.
fn entry_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                if allowed_xattr(name) {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                } else {
                    tracing::debug!(xattr = name, "dropping layer xattr");
                }
            }
        }
    }
    out
}

/// Sets xattrs on an open file; a file system without xattr support only gets a warning.
fn apply_xattrs(fd: &OwnedFd, xattrs: &[(String, Vec<u8>)], path: &Path) {
    for (name, value) in xattrs {
        if let Err(e) = rfs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
            tracing::warn!(path = %path.display(), xattr = %name, "cannot set xattr: {e}");
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Opens `dir` for use as the base of `*at` calls; `O_NOFOLLOW` so a symlinked component is
/// refused rather than followed.
fn open_dir_at(parent: impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the layer root directory.
pub(crate) fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    rfs::openat(rfs::CWD, dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
}

/// Walks `comps` from `root`, one `O_NOFOLLOW` open per component; missing directories are
/// created (0755) when `create`, a symlink or non-directory component is refused.
fn open_parents(
    root: &OwnedFd,
    comps: &[OsString],
    create: bool,
    entry: &Path,
) -> Result<OwnedFd, ImageError> {
    let mut cur = rustix::io::dup(root).map_err(|e| entry_err(entry, "dup", e))?;
    for (i, c) in comps.iter().enumerate() {
        let next = match open_dir_at(&cur, c) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(entry_err(entry, "create parent directory", e)),
                }
                open_dir_at(&cur, c).map_err(|e| entry_err(entry, "open parent directory", e))?
            }
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                let walked: PathBuf = comps[..=i].iter().collect();
                let what = match rfs::statat(&cur, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                        "it would write through the symlink"
                    }
                    _ => "its parent is not a directory:",
                };
                return Err(unsafe_entry(entry, &format!("{what} {}", walked.display())));
            }
            Err(e) => return Err(entry_err(entry, "open parent directory", e)),
        };
        cur = next;
    }
    Ok(cur)
}

/// Removes whatever is at `name` under `parent` (recursively for a directory); `path` is the same
/// object's full path, safe to use since every parent was just opened without following links.
fn remove_existing(parent: &OwnedFd, name: &OsStr, path: &Path) -> io::Result<()> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            std::fs::remove_dir_all(path)
        }
        Ok(_) => rfs::unlinkat(parent, name, AtFlags::empty()).map_err(Into::into),
    }
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

fn owner(header: &tar::Header) -> (Option<Uid>, Option<Gid>) {
    // -1 means "leave unchanged" to chown; never pass it as an id.
    let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok()).filter(|u| *u != u32::MAX);
    let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok()).filter(|g| *g != u32::MAX);
    (uid.map(Uid::from_raw), gid.map(Gid::from_raw))
}

/// Sets owner, then mode (chown clears setuid bits, so mode comes after) and mtime on an open fd.
fn apply_meta_fd(fd: &OwnedFd, header: &tar::Header, root: bool) -> io::Result<()> {
    if root {
        let (u, g) = owner(header);
        rfs::fchown(fd, u, g)?;
    }
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    rfs::fchmod(fd, Mode::from_raw_mode(mode))?;
    rfs::futimens(fd, &timestamps(header.mtime().unwrap_or(0)))?;
    Ok(())
}

/// Unpacks the tar stream `reader` into the empty directory `dest`; returns the total size of
/// regular file contents. On error `dest` may hold partial content: the caller discards it.
pub(crate) fn unpack_tar<R: Read>(reader: R, dest: &Path) -> Result<u64, ImageError> {
    unpack_recorded(reader, dest, None)
}

/// [`unpack_tar`] telling `split` (which `reader` must pass through) where file contents are
/// and what is replaced, so the stream can be rebuilt from `dest` later.
pub(crate) fn unpack_recorded<R: Read>(
    reader: R,
    dest: &Path,
    split: Option<&Recorder>,
) -> Result<u64, ImageError> {
    unpack_entries(reader, dest, split, true)
}

/// Unpacks a plain file tree (a build context): the same safe walk as a layer, but `.wh.`
/// names are ordinary files there, as docker's context extraction keeps them. The stream may
/// be gzip or zstd; past `limit` bytes of tar the unpack stops with
/// [`ImageError::LayerTooLarge`]. On error `dest` may hold partial content: the caller
/// removes it.
pub fn unpack_context<R: Read>(
    reader: R,
    dest: &Path,
    limit: Option<u64>,
) -> Result<u64, ImageError> {
    let plain = maybe_gunzip(reader).map_err(|e| entry_err(dest, "read archive", e))?;
    let mut bounded = LimitReader { inner: plain, left: limit, hit: false };
    let r = unpack_entries(&mut bounded, dest, None, false);
    if let (true, Some(limit)) = (bounded.hit, limit) {
        return Err(ImageError::LayerTooLarge { limit });
    }
    r
}

/// Fails reads past `left` bytes (None: unbounded), remembering that it did.
struct LimitReader<R> {
    inner: R,
    left: Option<u64>,
    hit: bool,
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = self.left.as_mut() {
            if n as u64 > *left {
                self.hit = true;
                return Err(io::Error::other("the archive is larger than the limit"));
            }
            *left -= n as u64;
        }
        Ok(n)
    }
}

fn unpack_entries<R: Read>(
    reader: R,
    dest: &Path,
    split: Option<&Recorder>,
    layer: bool,
) -> Result<u64, ImageError> {
    // Every replacement of an existing entry first lets the recorder keep what it needs.
    let replace = |parent: &OwnedFd, comps: &[OsString], full: &Path, raw: &Path| {
        if let Some(s) = split {
            s.before_remove(comps).map_err(|e| entry_err(raw, "keep replaced file", e))?;
        }
        let Some(name) = comps.last() else { return Ok(()) };
        remove_existing(parent, name, full).map_err(|e| entry_err(raw, "replace", e))
    };
    let root_fd = open_root(dest).map_err(|e| entry_err(dest, "open layer directory", e))?;
    let root = is_root();
    let mut archive = tar::Archive::new(reader);
    let mut size = 0u64;
    // File contents go through one large buffer (allocated at the first file).
    let mut buf: Vec<u8> = Vec::new();
    // Directory mtimes are set last: creating children would bump them.
    let mut dir_times: Vec<(Vec<OsString>, u64)> = Vec::new();
    let entries = archive.entries().map_err(|e| entry_err(dest, "read tar", e))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            // The docker CLI's context tar (when it adds a Dockerfile from outside the context)
            // stops right after the last entry's data, without its padding and the end blocks;
            // dockerd reads it, so a context may end there. Data cut short is caught below.
            Err(e) if !layer && e.to_string().contains("unexpected EOF during skip") => break,
            Err(e) => {
                return Err(ImageError::Unpack {
                    path: "(archive)".into(),
                    reason: format!("read tar entry: {e}"),
                });
            }
        };
        let raw_path = entry.path().map_err(|e| entry_err(dest, "entry path", e))?.into_owned();
        let comps = clean_path(&raw_path)?;
        let etype = entry.header().entry_type();
        let header = entry.header().clone();
        let xattrs = entry_xattrs(&mut entry);
        let Some((name, parents)) = comps.split_last() else {
            // The archive's root ("./"): its metadata becomes the layer root's.
            if etype == EntryType::Directory {
                apply_meta_fd(&root_fd, &header, root)
                    .map_err(|e| entry_err(&raw_path, "set metadata", e))?;
                dir_times.push((Vec::new(), header.mtime().unwrap_or(0)));
            }
            continue;
        };
        let parent = open_parents(&root_fd, parents, true, &raw_path)?;
        let full: PathBuf =
            std::iter::once(dest.as_os_str()).chain(comps.iter().map(|c| c.as_os_str())).collect();
        let name_bytes = name.as_bytes();

        if layer && name_bytes == OPAQUE_MARKER.as_bytes() {
            rfs::fsetxattr(&parent, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| entry_err(&raw_path, "mark directory opaque", e))?;
            continue;
        }
        if layer && name_bytes.starts_with(b".wh..wh.") {
            continue; // aufs bookkeeping (.wh..wh.plnk etc.), meaningless here
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes())
            && layer
        {
            // `.wh.` + "", "." or ".." would name the directory itself or its parent.
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(unsafe_entry(&raw_path, "whiteout of an invalid name"));
            }
            let hidden = OsStr::from_bytes(hidden);
            let hidden_full = full.with_file_name(hidden);
            let hidden_comps: Vec<OsString> =
                parents.iter().cloned().chain([hidden.to_os_string()]).collect();
            replace(&parent, &hidden_comps, &hidden_full, &raw_path)?;
            rfs::mknodat(
                &parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|e| entry_err(&raw_path, "create whiteout (needs root)", e))?;
            continue;
        }

        match etype {
            EntryType::Directory => {
                match rfs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rfs::statat(&parent, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(|e| entry_err(&raw_path, "stat", e))?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            replace(&parent, &comps, &full, &raw_path)?;
                            rfs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o700))
                                .map_err(|e| entry_err(&raw_path, "create directory", e))?;
                        }
                    }
                    Err(e) => return Err(entry_err(&raw_path, "create directory", e)),
                }
                let fd = open_dir_at(&parent, name)
                    .map_err(|e| entry_err(&raw_path, "open directory", e))?;
                apply_meta_fd(&fd, &header, root)
                    .map_err(|e| entry_err(&raw_path, "set metadata", e))?;
                apply_xattrs(&fd, &xattrs, &raw_path);
                dir_times.push((comps.clone(), header.mtime().unwrap_or(0)));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                replace(&parent, &comps, &full, &raw_path)?;
                let fd = rfs::openat(
                    &parent,
                    name.as_os_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| entry_err(&raw_path, "create file", e))?;
                let mut file = File::from(fd);
                // A sparse entry's stream bytes are not the file's: those stay recorded.
                if let Some(s) = split
                    && etype != EntryType::GNUSparse
                {
                    s.file_content(entry.raw_file_position(), entry.size(), &comps)
                        .map_err(|e| entry_err(&raw_path, "record layer", e))?;
                }
                let want = entry.size();
                let copied = copy_content(&mut entry, &mut file, &mut buf)
                    .map_err(|e| entry_err(&raw_path, "write file", e))?;
                if etype != EntryType::GNUSparse && copied != want {
                    return Err(entry_err(&raw_path, "read file", "the archive ends inside it"));
                }
                size += copied;
                let fd = OwnedFd::from(file);
                apply_meta_fd(&fd, &header, root)
                    .map_err(|e| entry_err(&raw_path, "set metadata", e))?;
                // After chown/chmod: chown drops security.capability.
                apply_xattrs(&fd, &xattrs, &raw_path);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| entry_err(&raw_path, "symlink target", e))?
                    .ok_or_else(|| unsafe_entry(&raw_path, "symlink without a target"))?
                    .into_owned();
                replace(&parent, &comps, &full, &raw_path)?;
                rfs::symlinkat(target.as_os_str(), &parent, name.as_os_str())
                    .map_err(|e| entry_err(&raw_path, "create symlink", e))?;
                if root {
                    let (u, g) = owner(&header);
                    rfs::chownat(&parent, name.as_os_str(), u, g, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| entry_err(&raw_path, "chown symlink", e))?;
                }
                rfs::utimensat(
                    &parent,
                    name.as_os_str(),
                    &timestamps(header.mtime().unwrap_or(0)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| entry_err(&raw_path, "set symlink time", e))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| entry_err(&raw_path, "link target", e))?
                    .ok_or_else(|| unsafe_entry(&raw_path, "hard link without a target"))?
                    .into_owned();
                let tcomps = clean_path(&target)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(unsafe_entry(&raw_path, "hard link to the layer root"));
                };
                let not_in_layer = || {
                    unsafe_entry(
                        &raw_path,
                        &format!("hard link target {} is not in this layer", target.display()),
                    )
                };
                let tparent = open_parents(&root_fd, tparents, false, &raw_path)
                    .map_err(|_| not_in_layer())?;
                match rfs::statat(&tparent, tname.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(unsafe_entry(&raw_path, "hard link to a directory"));
                    }
                    Ok(_) => {}
                    Err(_) => return Err(not_in_layer()),
                }
                if tcomps != comps {
                    replace(&parent, &comps, &full, &raw_path)?;
                    // flags 0: link the named object itself, never a symlink's target.
                    rfs::linkat(
                        &tparent,
                        tname.as_os_str(),
                        &parent,
                        name.as_os_str(),
                        AtFlags::empty(),
                    )
                    .map_err(|e| entry_err(&raw_path, "create hard link", e))?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ftype = match etype {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ftype != FileType::Fifo && !root {
                    tracing::warn!(path = %raw_path.display(), "skipping device node: not root");
                    continue;
                }
                let dev = rfs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                replace(&parent, &comps, &full, &raw_path)?;
                let mode = header.mode().unwrap_or(0o644) & 0o7777;
                rfs::mknodat(&parent, name.as_os_str(), ftype, Mode::from_raw_mode(mode), dev)
                    .map_err(|e| entry_err(&raw_path, "create node", e))?;
                if root {
                    let (u, g) = owner(&header);
                    rfs::chownat(&parent, name.as_os_str(), u, g, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| entry_err(&raw_path, "chown node", e))?;
                    // chown may drop mode bits; mknod's mode is also filtered by umask.
                    rfs::chmodat(
                        &parent,
                        name.as_os_str(),
                        Mode::from_raw_mode(mode),
                        AtFlags::empty(),
                    )
                    .map_err(|e| entry_err(&raw_path, "chmod node", e))?;
                }
                rfs::utimensat(
                    &parent,
                    name.as_os_str(),
                    &timestamps(header.mtime().unwrap_or(0)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| entry_err(&raw_path, "set node time", e))?;
            }
            // PAX/GNU metadata records are consumed by the tar crate; anything else is ignored.
            _ => {}
        }
    }
    for (comps, mtime) in dir_times.iter().rev() {
        let fd = match comps.split_last() {
            None => rustix::io::dup(&root_fd).map_err(|e| entry_err(dest, "dup", e))?,
            Some((name, parents)) => {
                let path: PathBuf = comps.iter().collect();
                // A later entry may have replaced a parent (e.g. by a symlink): nothing to do.
                let Ok(p) = open_parents(&root_fd, parents, false, &path) else { continue };
                match open_dir_at(&p, name) {
                    Ok(fd) => fd,
                    Err(_) => continue, // replaced by a later entry
                }
            }
        };
        rfs::futimens(&fd, &timestamps(*mtime))
            .map_err(|e| entry_err(dest, "set directory time", e))?;
    }
    Ok(size)
}
