//! Small file helpers shared by the container modules: rewriting a file in place and emptying a
//! directory, both without allocating new inodes (on this kind of ext4, each allocation scans
//! past every inode freed in the last 30 s, so a container's life should allocate ~none).

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Writes `bytes` to `path` over its old content, keeping its inode (created if missing), then
/// cuts it to length; fsynced when `durable`. O_TRUNC would free the file's blocks only for the
/// write to allocate them again (and on a file system mounted with `discard`, discard them each
/// time). Readers may see a mix while it runs: use it for files nobody reads meanwhile, or that
/// a bind mount must keep showing (the same inode).
pub fn write_in_place(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    f.write_all(bytes)?;
    f.set_len(bytes.len() as u64)?;
    if durable {
        f.sync_all()?;
    }
    Ok(())
}

/// Deletes every entry of `dir` (recursively, whatever its mode: we run as root), keeping `dir`
/// itself and the entries `keep` accepts (by name and file type).
pub fn empty_dir(dir: &Path, keep: impl Fn(&str, fs::FileType) -> bool) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ty = e.file_type()?;
        if e.file_name().to_str().is_some_and(|n| keep(n, ty)) {
            continue;
        }
        let p = e.path();
        // remove_dir_all never follows symlinks (it unlinks them), nor crosses into them.
        let r = if ty.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes every extended attribute of `path` (not following a symlink).
pub fn clear_xattrs(path: &Path) -> io::Result<()> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut buf) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    };
    for name in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = std::ffi::OsStr::from_bytes(name);
        match rustix::fs::lremovexattr(path, name) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn rewrites_keep_the_inode_and_cut_the_old_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("resolv.conf");
        write_in_place(&p, b"nameserver 10.0.0.1\nsearch a.example b.example\n", false)
            .expect("write");
        let ino = fs::metadata(&p).expect("stat").ino();
        write_in_place(&p, b"nameserver 10.0.0.2\n", true).expect("rewrite");
        assert_eq!(fs::read_to_string(&p).expect("read"), "nameserver 10.0.0.2\n");
        // Same inode: a bind mount of the file in the container sees the new text.
        assert_eq!(fs::metadata(&p).expect("stat").ino(), ino);
    }

    #[test]
    fn empty_dir_deletes_all_but_the_kept_whatever_the_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::create_dir_all(d.join("locked/inner")).expect("mkdir");
        fs::write(d.join("locked/inner/f"), "x").expect("write");
        fs::set_permissions(d.join("locked/inner"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        fs::set_permissions(d.join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
        fs::write(d.join("keep.txt"), "k").expect("write");
        fs::write(d.join("drop.txt"), "d").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("precious"), "p").expect("write");
        std::os::unix::fs::symlink(outside.path(), d.join("link")).expect("symlink");
        empty_dir(d, |n, t| n == "keep.txt" && t.is_file()).expect("empty");
        let left: Vec<String> = fs::read_dir(d)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["keep.txt"]);
        // The symlink was unlinked, not followed.
        assert!(outside.path().join("precious").is_file());
    }

    #[test]
    fn clear_xattrs_removes_user_attributes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("d");
        fs::create_dir(&p).expect("mkdir");
        if rustix::fs::setxattr(&p, "user.berth.test", b"1", rustix::fs::XattrFlags::empty())
            .is_err()
        {
            // No user xattrs on this file system: nothing to check.
            return;
        }
        clear_xattrs(&p).expect("clear");
        let mut buf = [0u8; 256];
        assert_eq!(rustix::fs::llistxattr(&p, &mut buf).expect("list"), 0);
    }
}
