//! Layer unpacking: crafted malicious tarballs are refused or contained, metadata is preserved,
//! docker whiteouts become an overlayfs layout (checked by mounting it), and image content is
//! copied out with whiteouts honoured.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::{ImageError, ImageStore};
use berth_store::StateRoot;
use berth_testsupport::{TempRoot, mounts_under, require_root};
use common::*;

fn store() -> (TempRoot, ImageStore) {
    let t = TempRoot::new().unwrap();
    let root = StateRoot::open(t.path().join("state")).unwrap();
    let s = ImageStore::open(&root).unwrap();
    (t, s)
}

/// Every path under `dir` (not following symlinks).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&p));
            }
        }
    }
    out
}

/// Imports `tar` expecting refusal; asserts nothing was committed or left in staging.
fn assert_refused(s: &ImageStore, t: &TempRoot, tar: Vec<u8>, needle: &str) -> String {
    let err = s.import(Cursor::new(tar), Some("evil:1"), &[]).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err:?}");
    let msg = err.to_string();
    eprintln!("refused: {msg}");
    assert!(msg.contains(needle), "{msg}");
    assert!(s.inspect("evil:1").is_err());
    let images = t.path().join("state/images");
    assert_eq!(fs::read_dir(images.join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(images.join("tmp")).unwrap().count(), 0);
    msg
}

#[test]
fn dotdot_entry_is_refused() {
    let (t, s) = store();
    let tar = layer(&[E::File("ok", "fine", 0o644), E::File("../evil", "x", 0o644)]);
    assert_refused(&s, &t, tar, "'..'");
    let tar = layer(&[E::File("a/../../../evil2", "x", 0o644)]);
    assert_refused(&s, &t, tar, "'..'");
    assert!(walk(t.path().as_path()).iter().all(|p| !p.ends_with("evil") && !p.ends_with("evil2")));
}

#[test]
fn absolute_entry_is_contained() {
    let (t, s) = store();
    let marker = format!("berth-abs-{}", std::process::id());
    let abs = format!("/tmp/{marker}/file");
    let tar = layer(&[E::File(&abs, "inside", 0o644)]);
    s.import(Cursor::new(tar), Some("abs"), &[]).unwrap();
    assert!(!Path::new(&abs).exists(), "wrote outside the layer");
    let l = &s.resolve("abs").unwrap().layers[0];
    assert_eq!(fs::read_to_string(l.join("tmp").join(&marker).join("file")).unwrap(), "inside");
    drop(t);
}

#[test]
fn write_through_escaping_symlink_is_refused() {
    let (t, s) = store();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let target = outside.to_str().unwrap().to_string();
    let tar = layer(&[E::Sym("a", &target), E::File("a/pwned", "x", 0o644)]);
    assert_refused(&s, &t, tar, "symlink");
    // The same with a relative escape and with /etc.
    let tar = layer(&[E::Sym("b", "../../../../../../.."), E::File("b/tmp/pwned", "x", 0o644)]);
    assert_refused(&s, &t, tar, "symlink");
    let tar =
        layer(&[E::Sym("etc", "/etc"), E::File("etc/passwd", "root::0:0::/:/bin/sh\n", 0o644)]);
    assert_refused(&s, &t, tar, "symlink");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn symlinked_parent_dir_is_refused() {
    let (t, s) = store();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // A directory entry whose parent is a symlink, then a file deeper inside it.
    let tar = layer(&[
        E::Dir("real"),
        E::Sym("real/up", outside.to_str().unwrap()),
        E::Dir("real/up/sub"),
        E::File("real/up/sub/f", "x", 0o644),
    ]);
    assert_refused(&s, &t, tar, "real/up");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn overwriting_a_symlink_replaces_it() {
    let (t, s) = store();
    let victim = t.path().join("victim");
    fs::write(&victim, "original").unwrap();
    let tar = layer(&[E::Sym("f", victim.to_str().unwrap()), E::File("f", "replaced", 0o600)]);
    s.import(Cursor::new(tar), Some("over"), &[]).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    let l = &s.resolve("over").unwrap().layers[0];
    assert!(fs::symlink_metadata(l.join("f")).unwrap().is_file());
    assert_eq!(fs::read_to_string(l.join("f")).unwrap(), "replaced");
}

#[test]
fn hardlinks_must_stay_in_the_layer() {
    let (t, s) = store();
    assert_refused(&s, &t, layer(&[E::Hard("shadow", "/etc/shadow")]), "not in this layer");
    assert_refused(&s, &t, layer(&[E::Hard("up", "../../etc/shadow")]), "'..'");
    // Through a symlink inside the layer pointing out.
    let tar = layer(&[E::Sym("e", "/etc"), E::Hard("s", "e/shadow")]);
    assert_refused(&s, &t, tar, "not in this layer");
    // A link to a file of the same layer works and shares the inode.
    let tar = layer(&[E::File("bin/a", "x", 0o755), E::Hard("bin/b", "bin/a")]);
    s.import(Cursor::new(tar), Some("links"), &[]).unwrap();
    let l = &s.resolve("links").unwrap().layers[0];
    let (a, b) = (fs::metadata(l.join("bin/a")).unwrap(), fs::metadata(l.join("bin/b")).unwrap());
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn metadata_is_preserved() {
    if !require_root() {
        return;
    }
    let (_t, s) = store();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("usr/bin/su").unwrap();
    h.set_size(2);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(50);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, &b"su"[..]).unwrap();
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_path("home/app").unwrap();
    d.set_mode(0o700);
    d.set_uid(1000);
    d.set_gid(1000);
    d.set_mtime(1_500_000_000);
    d.set_size(0);
    d.set_cksum();
    b.append(&d, std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    s.import(Cursor::new(tar), Some("meta"), &[]).unwrap();
    let l = &s.resolve("meta").unwrap().layers[0];
    let m = fs::metadata(l.join("usr/bin/su")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!((m.uid(), m.gid()), (1000, 50));
    assert_eq!(m.mtime(), 1_600_000_000);
    let m = fs::metadata(l.join("home/app")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o700);
    assert_eq!(m.uid(), 1000);
    assert_eq!(m.mtime(), 1_500_000_000);
}

/// A two-layer docker-save archive: the upper layer deletes `dir/a` and makes `opq` opaque.
fn whiteout_archive() -> Vec<u8> {
    let l1 = layer(&[
        E::File("dir/a", "a", 0o644),
        E::File("dir/b", "b", 0o644),
        E::File("opq/x", "x", 0o644),
        E::File("gone/deep/f", "f", 0o644),
        E::File("keep", "k", 0o644),
    ]);
    let l2 = layer(&[
        E::File("dir/.wh.a", "", 0o644),
        E::Dir("opq"),
        E::File("opq/.wh..wh..opq", "", 0o644),
        E::File("opq/y", "y", 0o644),
        E::File(".wh.gone", "", 0o644),
    ]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&l1), sha256(&l2)]}
    });
    build_tar(&[
        ("c.json", serde_json::to_vec(&config).unwrap()),
        ("1.tar", l1),
        ("2.tar", l2),
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["wh:1"],"Layers":["1.tar","2.tar"]}]"#.to_vec(),
        ),
    ])
}

/// Unmounts on drop so a failing assertion never leaves a mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn whiteouts_become_an_overlay_layout() {
    if !require_root() {
        return;
    }
    let (t, s) = store();
    s.load(Cursor::new(whiteout_archive())).unwrap();
    let r = s.resolve("wh:1").unwrap();
    let (upper, lower) = (&r.layers[0], &r.layers[1]);
    let wh = fs::symlink_metadata(upper.join("dir/a")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "0/0 whiteout");
    assert!(!upper.join("dir/.wh.a").exists());
    let mut buf = [0u8; 8];
    let n =
        rustix::fs::lgetxattr(upper.join("opq"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(lower.join("dir/a").is_file());

    // Mount the layers read-only and check the merged view.
    let target = t.path().join("merged");
    fs::create_dir(&target).unwrap();
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .unwrap();
    let guard = Unmount(target.clone());
    assert!(!target.join("dir/a").exists());
    assert_eq!(fs::read_to_string(target.join("dir/b")).unwrap(), "b");
    assert!(!target.join("opq/x").exists());
    assert_eq!(fs::read_to_string(target.join("opq/y")).unwrap(), "y");
    assert!(!target.join("gone").exists());
    assert_eq!(fs::read_to_string(target.join("keep")).unwrap(), "k");
    drop(guard);
    assert!(mounts_under(t.path().as_path()).is_empty());
}

#[test]
fn copy_path_honours_whiteouts() {
    if !require_root() {
        return;
    }
    let (t, s) = store();
    s.load(Cursor::new(whiteout_archive())).unwrap();
    let names = |d: &Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    for (path, want) in [("/dir", vec!["b"]), ("opq", vec!["y"]), ("/", vec!["dir", "keep", "opq"])]
    {
        let dest = t.path().join(format!("copy{}", path.replace('/', "_")));
        fs::create_dir(&dest).unwrap();
        assert!(s.copy_path_from_image("wh:1", path, &dest).unwrap());
        assert_eq!(names(&dest), want, "{path}");
    }
    let dest = t.path().join("copy_gone");
    fs::create_dir(&dest).unwrap();
    assert!(!s.copy_path_from_image("wh:1", "/gone/deep", &dest).unwrap());
    assert!(names(&dest).is_empty());
}

/// One PAX record: `"<len> <key>=<value>\n"`, the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[test]
fn pax_xattrs_allowed_ones_only() {
    if !require_root() {
        return;
    }
    let (_t, s) = store();
    let mut pax = pax_record("SCHILY.xattr.user.note", b"hello");
    pax.extend(pax_record("SCHILY.xattr.trusted.overlay.redirect", b"/etc"));
    let mut b = tar::Builder::new(Vec::new());
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_path("PaxHeaders/f").unwrap();
    x.set_size(pax.len() as u64);
    x.set_mode(0o644);
    x.set_cksum();
    b.append(&x, &pax[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("f").unwrap();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    s.import(Cursor::new(b.into_inner().unwrap()), Some("pax"), &[]).unwrap();
    let f = s.resolve("pax").unwrap().layers[0].join("f");
    let mut buf = [0u8; 16];
    let n = rustix::fs::lgetxattr(&f, "user.note", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert!(rustix::fs::lgetxattr(&f, "trusted.overlay.redirect", &mut buf[..]).is_err());
}

#[test]
fn whiteouts_of_dot_names_are_refused() {
    let (t, s) = store();
    for name in ["sub/.wh..", "sub/.wh...", ".wh."] {
        let tar = layer(&[E::File("sub/keep", "k", 0o644), E::File(name, "", 0o644)]);
        assert_refused(&s, &t, tar, "whiteout of an invalid name");
    }
}

#[test]
fn directory_later_replaced_by_symlink() {
    let (t, s) = store();
    let tar =
        layer(&[E::Dir("d"), E::Dir("d/sub"), E::File("d/sub/f", "x", 0o644), E::Sym("d", "/etc")]);
    s.import(Cursor::new(tar), Some("replaced"), &[]).unwrap();
    let l = &s.resolve("replaced").unwrap().layers[0];
    assert_eq!(fs::read_link(l.join("d")).unwrap(), Path::new("/etc"));
    drop(t);
}

#[test]
fn copy_path_follows_symlinks_inside_the_image() {
    if !require_root() {
        return;
    }
    let (t, s) = store();
    let tar = layer(&[
        E::File("run/data/x", "x", 0o644),
        E::Sym("var/run", "/run"),
        E::File("b/c/f", "f", 0o644),
        E::Sym("a", "b/../b/c"),
        E::Sym("loop1", "loop2"),
        E::Sym("loop2", "loop1"),
        E::Sym("out", "../../../../run"),
    ]);
    s.import(Cursor::new(tar), Some("links"), &[]).unwrap();
    for (path, file) in [("/var/run/data", "x"), ("/a", "f"), ("/out/data", "x")] {
        let dest = t.path().join(format!("d{}", path.replace('/', "_")));
        fs::create_dir(&dest).unwrap();
        assert!(s.copy_path_from_image("links", path, &dest).unwrap(), "{path}");
        assert!(dest.join(file).is_file(), "{path}");
    }
    let dest = t.path().join("loop");
    fs::create_dir(&dest).unwrap();
    assert!(!s.copy_path_from_image("links", "/loop1", &dest).unwrap());
}

#[test]
fn corrupted_tars_fail_cleanly() {
    let (t, s) = store();
    let base = layer(&[
        E::Dir("d"),
        E::File("d/f", "hello world", 0o644),
        E::Sym("d/l", "f"),
        E::Hard("d/h", "d/f"),
        E::File("top", "x", 0o755),
    ]);
    // A small deterministic generator: flip bytes of headers and data, or cut the stream.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..120 {
        let mut tar = base.clone();
        if i % 4 == 3 {
            let cut = (next() as usize) % tar.len();
            tar.truncate(cut);
        } else {
            for _ in 0..(1 + next() % 4) {
                let pos = (next() as usize) % 2560;
                tar[pos] = next() as u8;
            }
        }
        // Must return (Ok or a typed error), never panic.
        let _ = s.import(Cursor::new(tar), Some(&format!("fuzz:{i}")), &[]);
    }
    assert_eq!(fs::read_dir(t.path().join("state/images/tmp")).unwrap().count(), 0);
    // Nothing was written beside the state root.
    let names: Vec<String> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["state"]);
}

/// A build context: `.wh.` names stay plain files, `..` is refused, gzip is read, and the
/// limit stops an archive that unpacks to more than it allows.
#[test]
fn build_contexts_unpack_as_plain_trees() {
    let d = tempfile::tempdir().unwrap();
    let ctx = d.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    let tar =
        layer(&[E::File("Dockerfile", "FROM scratch\n", 0o644), E::File("a/.wh.b", "x", 0o644)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    berth_image::unpack_context(Cursor::new(gz.finish().unwrap()), &ctx, None).unwrap();
    assert_eq!(fs::read_to_string(ctx.join("Dockerfile")).unwrap(), "FROM scratch\n");
    assert!(fs::symlink_metadata(ctx.join("a/.wh.b")).unwrap().is_file());

    let evil = d.path().join("evil");
    fs::create_dir(&evil).unwrap();
    let tar = layer(&[E::File("../outside", "x", 0o644)]);
    let err = berth_image::unpack_context(Cursor::new(tar), &evil, None).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err:?}");
    assert!(!d.path().join("outside").exists());

    let big = d.path().join("big");
    fs::create_dir(&big).unwrap();
    let tar = layer(&[E::File("f", &"y".repeat(64 << 10), 0o644)]);
    let err = berth_image::unpack_context(Cursor::new(tar), &big, Some(16 << 10)).unwrap_err();
    assert!(matches!(err, ImageError::LayerTooLarge { .. }), "{err:?}");
}

/// The docker CLI's context tar may end right after the last entry's data (no padding, no end
/// blocks): read as complete. Data cut short is still an error.
#[test]
fn build_contexts_may_lack_the_end_blocks_but_not_data() {
    let d = tempfile::tempdir().unwrap();
    let tar =
        layer(&[E::File("Dockerfile", "FROM scratch\n", 0o644), E::File("b", "0123456789", 0o644)]);
    // The second entry's header starts at 1024; its data is 10 bytes.
    let cut = &tar[..1024 + 512 + 10];
    let ok = d.path().join("ok");
    fs::create_dir(&ok).unwrap();
    berth_image::unpack_context(Cursor::new(cut.to_vec()), &ok, None).unwrap();
    assert_eq!(fs::read_to_string(ok.join("b")).unwrap(), "0123456789");
    let short = d.path().join("short");
    fs::create_dir(&short).unwrap();
    let cut = &tar[..1024 + 512 + 5];
    assert!(berth_image::unpack_context(Cursor::new(cut.to_vec()), &short, None).is_err());
}
