//! The mount-point layer of an image: a read-only overlay layer, made once per topmost image
//! layer and stacked above the image, holding the empty files and directories every container
//! mounts over (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/proc`, `/sys`, `/dev`)
//! where the image lacks them. Without it the launcher creates them in each container's upper
//! directory (a copy-up of `/etc` plus three files: four inodes per container on the host file
//! system, which on this VM's journal-less ext4 are the expensive part of a start). docker's
//! per-container "init" layer plays the same role.
//!
//! Only entries the launcher would create are added: a target the image has (or that sits below
//! a symlink or other non-directory) is left out, so the merged view is the same as before. A
//! parent directory the image has is copied with its owner, mode and times, so `ls -ld /etc` does
//! not change either. The layer lives at `images/layers/<chain>/mounts/` beside that layer's
//! `diff/` and goes away with it.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Timespec, Timestamps};

use super::unpack::OPAQUE_XATTR;

/// Files the engine bind-mounts in every container.
const FILES: [&str; 3] = ["etc/resolv.conf", "etc/hostname", "etc/hosts"];
/// Directories every container mounts a file system on.
const DIRS: [&str; 3] = ["proc", "sys", "dev"];

/// What a path is in the merged view of an image's layers.
enum Found {
    /// A directory: the topmost one's metadata.
    Dir(fs::Metadata),
    /// Missing or whited out.
    Absent,
    /// A file, symlink, device, or something that could not be read.
    Other,
}

/// Looks `rel` up through `layers` (topmost first) with overlayfs's rules: a whiteout or a
/// non-directory hides everything below it, an opaque directory hides lower directories.
fn lookup(layers: &[PathBuf], rel: &Path) -> Found {
    let mut active: Vec<&PathBuf> = layers.iter().collect();
    let mut prefix = PathBuf::new();
    let mut found = Found::Absent;
    for comp in rel.components() {
        prefix.push(comp);
        let mut next = Vec::new();
        found = Found::Absent;
        for layer in active {
            let p = layer.join(&prefix);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let opaque =
                        rustix::fs::lgetxattr(&p, OPAQUE_XATTR, &mut [0u8; 4]).is_ok_and(|n| n > 0);
                    if next.is_empty() {
                        found = Found::Dir(m);
                    }
                    next.push(layer);
                    if opaque {
                        break;
                    }
                }
                Ok(m) => {
                    // A whiteout (0/0 character device) deletes; anything else is a non-dir.
                    let whiteout = FileType::from_raw_mode(m.mode()) == FileType::CharacterDevice
                        && m.rdev() == 0;
                    if next.is_empty() && !whiteout {
                        found = Found::Other;
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => {
                    if next.is_empty() {
                        found = Found::Other;
                    }
                    break;
                }
            }
        }
        match found {
            Found::Dir(_) => active = next,
            // A missing parent makes the rest missing; a non-directory one makes it unusable.
            _ => return found,
        }
    }
    found
}

/// Gives `path` the owner, mode and times of `m`.
fn copy_attrs(path: &Path, m: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    let ts = Timestamps {
        last_access: Timespec { tv_sec: m.atime(), tv_nsec: m.atime_nsec() as _ },
        last_modification: Timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() as _ },
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &ts, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
}

/// Fills `out` with the entries the launcher would otherwise create in a container of an image
/// with `layers`.
fn fill(layers: &[PathBuf], out: &Path) -> io::Result<()> {
    // Parent directories made, with the image's metadata to restore after their children.
    let mut made: Vec<(PathBuf, Option<fs::Metadata>)> = Vec::new();
    let targets = FILES.iter().map(|f| (*f, false)).chain(DIRS.iter().map(|d| (*d, true)));
    'target: for (rel, is_dir) in targets {
        let rel = Path::new(rel);
        if !matches!(lookup(layers, rel), Found::Absent) {
            continue;
        }
        let mut parents = Vec::new();
        let mut p = rel.parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            match lookup(layers, dir) {
                Found::Dir(m) => parents.push((dir.to_path_buf(), Some(m))),
                Found::Absent => parents.push((dir.to_path_buf(), None)),
                // Below a symlink: left to the launcher, which resolves it inside the rootfs.
                Found::Other => continue 'target,
            }
            p = dir.parent();
        }
        for (dir, meta) in parents.into_iter().rev() {
            if made.iter().any(|(d, _)| *d == dir) {
                continue;
            }
            let path = out.join(&dir);
            fs::create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
            made.push((dir, meta));
        }
        let path = out.join(rel);
        if is_dir {
            fs::create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        } else {
            fs::File::create(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        }
    }
    // Deepest first, so setting a child's times never changes its parent's afterwards.
    for (dir, meta) in made.iter().rev() {
        if let Some(m) = meta {
            copy_attrs(&out.join(dir), m)?;
        }
    }
    Ok(())
}

/// The mount-point layer for an image whose layers are `layers` (topmost first, each
/// `images/layers/<chain>/diff`), made on first use; None when the image has every mount point
/// (nothing to stack) or the layer cannot be made (the launcher then creates what is missing in
/// the container's upper directory, as before).
pub fn mount_point_layer(layers: &[PathBuf]) -> Option<PathBuf> {
    let top = layers.first()?.parent()?;
    let dir = top.join("mounts");
    if !dir.is_dir() {
        // Built aside and renamed into place; a concurrent create may win the rename (same
        // content), and a crash leaves only a temp dir that goes with the layer.
        let tmp = top.join(format!(
            ".mounts.tmp{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&tmp);
        let built = fs::create_dir(&tmp).and_then(|()| fill(layers, &tmp));
        let renamed = built.and_then(|()| fs::rename(&tmp, &dir));
        if let Err(e) = renamed {
            let _ = fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                tracing::debug!(path = %dir.display(), "mount-point layer not made: {e}");
                return None;
            }
        }
    }
    let empty = fs::read_dir(&dir).ok()?.next().is_none();
    (!empty).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in walkdir(dir) {
            out.push(e.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
        }
        out.sort();
        out
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walkdir(&e.path()));
            }
        }
        out
    }

    #[test]
    fn adds_only_what_the_image_lacks() {
        let t = tempfile::tempdir().unwrap();
        let (upper, lower) = (t.path().join("l2/diff"), t.path().join("l1/diff"));
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(lower.join("proc")).unwrap();
        fs::write(lower.join("etc/hosts"), "x").unwrap();
        fs::set_permissions(lower.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::create_dir_all(&upper).unwrap();
        // The upper layer replaces /sys with a file: left alone.
        fs::write(upper.join("sys"), "").unwrap();
        let layers = vec![upper.clone(), lower.clone()];
        let dir = mount_point_layer(&layers).unwrap();
        assert_eq!(dir, t.path().join("l2/mounts"));
        assert_eq!(names(&dir), vec!["dev", "etc", "etc/hostname", "etc/resolv.conf"]);
        let m = fs::metadata(dir.join("etc")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750);
        // Made once: a second call finds it.
        assert_eq!(mount_point_layer(&layers), Some(dir));
    }

    #[test]
    fn symlinked_etc_and_complete_images_add_nothing() {
        let t = tempfile::tempdir().unwrap();
        let l = t.path().join("l/diff");
        for d in ["proc", "sys", "dev", "real"] {
            fs::create_dir_all(l.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("real", l.join("etc")).unwrap();
        assert_eq!(mount_point_layer(std::slice::from_ref(&l)), None);
        assert!(names(&t.path().join("l/mounts")).is_empty());
    }
}
