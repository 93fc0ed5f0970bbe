//! Helpers shared by the image and volume tests: tar building, gzip, digests.

#![allow(dead_code)]

use std::io::{Read, Write};

use sha2::Digest;

/// `sha256:<hex>` of `b`.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// gzip of `b`.
pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// One tar entry for [`layer`].
pub enum E<'a> {
    /// Regular file with content and mode.
    File(&'a str, &'a str, u32),
    /// Directory.
    Dir(&'a str),
    /// Symlink path -> target.
    Sym(&'a str, &'a str),
    /// Hard link path -> target.
    Hard(&'a str, &'a str),
}

/// A tar made of `entries` in order; paths are written raw (so `../x` and `/x` are possible).
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, c, mode) => {
                let mut h = header(tar::EntryType::Regular, c.len() as u64, *mode);
                set_raw_path(&mut h, p);
                h.set_cksum();
                b.append(&h, c.as_bytes()).unwrap();
            }
            E::Dir(p) => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                set_raw_path(&mut h, p);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Sym(p, t) | E::Hard(p, t) => {
                let kind = if matches!(e, E::Sym(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = header(kind, 0, 0o777);
                set_raw_path(&mut h, p);
                let name = h.as_old_mut().linkname.as_mut();
                name.fill(0);
                name[..t.len()].copy_from_slice(t.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Writes the path bytes directly: `Header::set_path` refuses `..` and absolute paths, but
/// crafted archives have them.
fn set_raw_path(h: &mut tar::Header, p: &str) {
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..p.len()].copy_from_slice(p.as_bytes());
}

/// A layer of regular files (0644), parents implied.
pub fn simple_layer(files: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<E> = files.iter().map(|(p, c)| E::File(p, c, 0o644)).collect();
    layer(&entries)
}

/// A tar of regular files with the given bytes.
pub fn build_tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, c) in files {
        let mut h = header(tar::EntryType::Regular, c.len() as u64, 0o644);
        h.set_path(p).unwrap();
        h.set_cksum();
        b.append(&h, &c[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The same tar without the member `name`.
pub fn strip_member(archive: &[u8], name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(archive);
    let mut b = tar::Builder::new(Vec::new());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}
