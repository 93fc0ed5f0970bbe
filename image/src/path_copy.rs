//! Copying the merged content of an image path (top layer wins, whiteouts and opaque
//! directories honoured) into a directory: how a fresh named volume gets the image's content.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps};

use super::ImageError;
use super::image_store::ImageStore;
use super::unpack::OPAQUE_XATTR;

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rfs::lgetxattr(path, OPAQUE_XATTR, &mut buf[..]), Ok(n) if &buf[..n] == b"y")
}

/// Empties `dir` (keeps the directory itself).
fn clear_dir(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        remove_any(&e.path())?;
    }
    Ok(())
}

/// Removes whatever is at `p` (never following a symlink); absent is fine.
fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

/// Copies owner, mode (after owner: chown clears setuid) and mtime of `md` onto `dst`.
fn copy_meta(md: &fs::Metadata, dst: &Path) -> io::Result<()> {
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))?;
    }
    if !md.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    let t = Timespec { tv_sec: md.mtime(), tv_nsec: md.mtime_nsec() };
    let times = Timestamps { last_access: t, last_modification: t };
    rfs::utimensat(rfs::CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Merges layer directory `src` onto `dst` (which exists as a directory).
fn merge_dir(src: &Path, dst: &Path) -> io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let s = e.path();
        let d = dst.join(e.file_name());
        let md = fs::symlink_metadata(&s)?;
        let ft = md.file_type();
        if is_whiteout(&md) {
            remove_any(&d)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(dm) if dm.is_dir() => {
                    if is_opaque(&s) {
                        clear_dir(&d)?;
                    }
                }
                Ok(_) => {
                    remove_any(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(_) => fs::create_dir(&d)?,
            }
            merge_dir(&s, &d)?;
            copy_meta(&md, &d)?;
            continue;
        }
        remove_any(&d)?;
        if ft.is_file() {
            fs::copy(&s, &d)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
        } else {
            let kind = FileType::from_raw_mode(md.mode());
            rfs::mknodat(rfs::CWD, &d, kind, Mode::from_raw_mode(md.mode() & 0o7777), md.rdev())?;
        }
        copy_meta(&md, &d)?;
    }
    Ok(())
}

/// The merged view's entry at `comps` (no symlink resolution): the topmost layer that has it,
/// unless a whiteout, an opaque directory or a non-directory ancestor hides it.
fn merged_lookup(layers_bottom_first: &[PathBuf], comps: &[OsString]) -> Option<fs::Metadata> {
    for layer in layers_bottom_first.iter().rev() {
        let mut p = layer.clone();
        let mut hides_lower = false;
        for (i, c) in comps.iter().enumerate() {
            p.push(c);
            let Ok(md) = fs::symlink_metadata(&p) else { break };
            if is_whiteout(&md) {
                return None;
            }
            if i + 1 == comps.len() {
                return Some(md);
            }
            if !md.is_dir() {
                return None;
            }
            if is_opaque(&p) {
                hides_lower = true;
            }
        }
        if hides_lower {
            return None;
        }
    }
    None
}

/// Resolves `path` in the image's merged view, following symlinks the way the container would
/// see them (absolute targets from the image root, `..` clamped at the root). None on a loop.
fn resolve_in_image(layers_bottom_first: &[PathBuf], path: &Path) -> Option<Vec<OsString>> {
    let mut todo: VecDeque<OsString> = path.components().filter_map(|c| token(&c)).collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        cur.push(c);
        let Some(md) = merged_lookup(layers_bottom_first, &cur) else { continue };
        if !md.file_type().is_symlink() {
            continue;
        }
        hops += 1;
        if hops > 40 {
            return None;
        }
        // Find the layer whose symlink is visible and read it.
        let target = layers_bottom_first.iter().rev().find_map(|l| {
            let p: PathBuf =
                std::iter::once(l.as_os_str()).chain(cur.iter().map(|c| c.as_os_str())).collect();
            fs::read_link(p).ok()
        })?;
        cur.pop();
        if target.is_absolute() {
            cur.clear();
        }
        for t in target.components().filter_map(|c| token(&c)).rev() {
            todo.push_front(t);
        }
    }
    Some(cur)
}

/// A path component as a token: normal names and `..`; root and `.` vanish.
fn token(c: &Component<'_>) -> Option<OsString> {
    match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    }
}

impl ImageStore {
    /// Copies the merged content under `path_in_image` of `image` into the existing directory
    /// `dest` (content, ownership, modes, times; the top layer wins). Returns false when the
    /// path is not a directory in the image (nothing copied), like docker's volume population.
    pub fn copy_path_from_image(
        &self,
        image: &str,
        path_in_image: &str,
        dest: &Path,
    ) -> Result<bool, ImageError> {
        let resolved = self.resolve(image)?;
        let bottom_first: Vec<PathBuf> = resolved.layers.iter().rev().cloned().collect();
        let Some(comps) = resolve_in_image(&bottom_first, Path::new(path_in_image)) else {
            return Ok(false); // a symlink loop: nothing to copy, like a missing path
        };
        let err = |e: io::Error| ImageError::io("copy image content", dest, e);
        let mut present = false;
        let mut top_meta: Option<fs::Metadata> = None;
        for layer in resolved.layers.iter().rev() {
            let mut cur: PathBuf = layer.clone();
            let mut reachable = true;
            for (i, c) in comps.iter().enumerate() {
                cur.push(c);
                let Ok(md) = fs::symlink_metadata(&cur) else {
                    reachable = false;
                    break;
                };
                let last = i + 1 == comps.len();
                if is_whiteout(&md) || !md.is_dir() {
                    // Deleted, or replaced by a non-directory, in this layer.
                    clear_dir(dest).map_err(err)?;
                    present = false;
                    top_meta = None;
                    reachable = false;
                    break;
                }
                if is_opaque(&cur) {
                    clear_dir(dest).map_err(err)?;
                }
                if last {
                    present = true;
                    top_meta = Some(md);
                }
            }
            if reachable {
                if comps.is_empty() {
                    present = true;
                }
                merge_dir(&cur, dest).map_err(err)?;
            }
        }
        if let Some(md) = top_meta {
            copy_meta(&md, dest).map_err(err)?;
        }
        Ok(present)
    }
}
