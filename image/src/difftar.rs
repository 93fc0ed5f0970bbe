//! A container's overlay upper directory written as a docker layer tar: overlayfs whiteouts
//! (0/0 character devices) become `.wh.NAME` files, opaque directories get `.wh..wh..opq`,
//! hard links inside the layer stay links, `security.capability` travels as a PAX record.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::unpack::OPAQUE_XATTR;

/// Writes the diff in `upper` as an uncompressed tar to `out` (entries sorted by name, so the
/// same tree gives the same bytes) and returns `out`.
pub fn write_upper_tar<W: Write>(upper: &Path, out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(upper, "", &mut b, &mut links)?;
    b.into_inner()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn header(md: &fs::Metadata, typ: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(typ);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn empty_file(b: &mut tar::Builder<impl Write>, path: &str, md: &fs::Metadata) -> io::Result<()> {
    let mut h = header(md, tar::EntryType::Regular);
    h.set_mode(0o644);
    b.append_data(&mut h, path, io::empty())
}

fn walk<W: Write>(
    dir: &Path,
    prefix: &str,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let path = e.path();
        let md = fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let wh = if prefix.is_empty() {
                format!(".wh.{name}")
            } else {
                format!("{prefix}/.wh.{name}")
            };
            empty_file(b, &wh, &md)?;
            continue;
        }
        if let Some(cap) = xattr(&path, "security.capability") {
            b.append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])?;
        }
        if ft.is_dir() {
            let mut h = header(&md, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{rel}/"), io::empty())?;
            if xattr(&path, OPAQUE_XATTR).is_some_and(|v| v == b"y") {
                empty_file(b, &format!("{rel}/.wh..wh..opq"), &md)?;
            }
            walk(&path, &rel, b, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)?;
            let mut h = header(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel, target)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = header(&md, tar::EntryType::Link);
                    b.append_link(&mut h, &rel, first)?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            let mut h = header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            let f = fs::File::open(&path)?;
            b.append_data(&mut h, &rel, f)?;
        } else {
            let typ = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets do not go into layers (as docker)
            };
            let mut h = header(&md, typ);
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            b.append_data(&mut h, &rel, io::empty())?;
        }
    }
    Ok(())
}
