//! Layers are stored once (unpacked, plus their tar stream without file contents) and `save`
//! rebuilds their exact bytes; a layer or archive that unpacks beyond the limit is refused and
//! leaves nothing behind.

mod common;

use std::fs;
use std::io::{Cursor, Read, Write};
use std::path::Path;

use berth_image::{ImageError, ImageStore};
use berth_store::StateRoot;
use berth_testsupport::TempRoot;
use common::*;

fn store() -> (TempRoot, ImageStore) {
    let t = TempRoot::new().unwrap();
    let root = StateRoot::open(t.path()).unwrap();
    let s = ImageStore::open(&root).unwrap();
    (t, s)
}

fn entry(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A layer the unpacker must work hard on: one path twice, a directory replaced by a file, a
/// hard-linked file overwritten, a whiteout of a file of the same layer, a name longer than
/// ustar's 100 bytes (GNU long name), PAX records, a file large enough to span many reads, and
/// GNU tar's zero padding after the end marker.
fn tricky_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = entry(tar::EntryType::Regular, data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    file(&mut b, "a", b"first");
    file(&mut b, "a", b"second, longer");
    let mut h = entry(tar::EntryType::Directory, 0);
    b.append_data(&mut h, "d/", std::io::empty()).unwrap();
    file(&mut b, "d/x", b"under d");
    file(&mut b, "d", b"d is a file now");
    file(&mut b, "h", b"hard-linked");
    let mut h = entry(tar::EntryType::Link, 0);
    b.append_link(&mut h, "h2", "h").unwrap();
    file(&mut b, "h", b"h replaced");
    file(&mut b, "gone", b"whited out below");
    file(&mut b, ".wh.gone", b"");
    let long = format!("deep/{}/file", "n".repeat(150));
    file(&mut b, &long, b"long name");
    b.append_pax_extensions([("user.note", &b"v"[..])]).unwrap();
    file(&mut b, "with-pax", b"pax");
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    file(&mut b, "big", &big);
    let mut out = b.into_inner().unwrap();
    out.extend_from_slice(&[0u8; 8192]);
    out
}

/// A GNU sparse file, as `tar --sparse` writes it (skipped when GNU tar is missing).
fn sparse_layer(dir: &Path) -> Option<Vec<u8>> {
    let f = fs::File::create(dir.join("sparse")).unwrap();
    f.set_len(4 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"data in a hole", 1 << 20).unwrap();
    let out = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf", "-", "-C"])
        .arg(dir)
        .arg("sparse")
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// The bytes of member `name` of a tar.
fn member(archive: &[u8], name: &str) -> Vec<u8> {
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return v;
        }
    }
    panic!("no member {name}");
}

#[test]
fn layers_are_stored_once_and_saved_byte_for_byte() {
    let (t, s) = store();
    let scratch = tempfile::tempdir().unwrap();
    let mut layers = vec![("tricky", tricky_layer())];
    if let Some(sparse) = sparse_layer(scratch.path()) {
        layers.push(("sparse", sparse));
    }
    for (name, tar) in &layers {
        for compressed in [false, true] {
            let input = if compressed { gzip(tar) } else { tar.clone() };
            let reference = format!("{name}:{compressed}");
            let id = s.import(Cursor::new(input), Some(&reference), &[]).unwrap();
            let diff_id = s.inspect(&id).unwrap().root_fs.layers[0].clone();
            assert_eq!(diff_id, sha256(tar), "{reference}");
            // No uncompressed copy of the layer in the blobs: only the image config.
            let hex = diff_id.trim_start_matches("sha256:");
            assert!(!t.path().join("images/blobs/sha256").join(hex).exists(), "{reference}");
            let layer_dir = t.path().join("images/layers").join(hex);
            assert!(layer_dir.join("tar-split").is_file(), "{reference}");
            // Replaced files' contents are kept aside (a, d/x, h, gone), only for them.
            assert_eq!(
                layer_dir.join("tar-split.kept").is_file(),
                *name == "tricky",
                "{reference}"
            );
            // save writes the layer's exact bytes.
            let mut archive = Vec::new();
            s.save(std::slice::from_ref(&reference), &mut archive).unwrap();
            assert!(member(&archive, &format!("blobs/sha256/{hex}")) == *tar, "{reference}");
            let (_t2, s2) = store();
            assert_eq!(s2.load(Cursor::new(archive)).unwrap()[0].id, id, "{reference}");
        }
    }
    // What the tricky layer unpacked to: the last version of each path.
    let diff = s.resolve("tricky:false").unwrap().layers[0].clone();
    let read = |p: &str| fs::read_to_string(diff.join(p)).unwrap();
    assert_eq!(read("a"), "second, longer");
    assert_eq!(read("d"), "d is a file now");
    assert_eq!((read("h"), read("h2")), ("h replaced".into(), "hard-linked".into()));
    // A layer file that changed is an error naming the layer, never a wrong archive.
    let hex = s.inspect("tricky:false").unwrap().root_fs.layers[0].clone();
    fs::write(diff.join("big"), b"changed").unwrap();
    let err = s.save(&["tricky:false".to_string()], std::io::sink()).unwrap_err().to_string();
    assert!(err.contains(&hex), "{err}");
}

/// `n` MiB of zeros in a tar member `name`, gzip-compressed as concatenated members (each MiB
/// compressed once): about 1 KiB per MiB, made without compressing the whole stream.
fn gzip_bomb(name: &str, mib: u64) -> Vec<u8> {
    let mut h = entry(tar::EntryType::Regular, mib << 20);
    h.set_path(name).unwrap();
    h.set_cksum();
    let mut out = gzip(h.as_bytes());
    let zeros = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..mib {
        out.extend_from_slice(&zeros);
    }
    out.extend_from_slice(&gzip(&[0u8; 1024]));
    out
}

/// Asserts nothing of a refused import or load is in the store.
fn assert_store_empty(root: &Path, s: &ImageStore) {
    assert!(s.image_ids().unwrap().is_empty());
    for d in ["images/tmp", "images/layers", "images/blobs/sha256"] {
        let left: Vec<_> =
            fs::read_dir(root.join(d)).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "{d}: {left:?}");
    }
}

#[test]
fn a_layer_beyond_the_limit_is_refused_and_nothing_is_stored() {
    let (t, mut s) = store();
    s.set_max_layer_size(Some(10 << 20));
    let bomb = gzip_bomb("zeros", 100);
    assert!(bomb.len() < 1 << 20, "the bomb is {} bytes", bomb.len());
    let err = s.import(Cursor::new(&bomb), Some("bomb"), &[]).unwrap_err();
    assert!(matches!(err, ImageError::LayerTooLarge { limit } if limit == 10 << 20), "{err}");
    assert_eq!(
        err.to_string(),
        "refusing a layer that unpacks to more than 10 MiB (the limit; set BERTH_MAX_LAYER_SIZE to change it)"
    );
    assert_store_empty(&t.path(), &s);
    // The same bomb as a member of an archive to load.
    let mut archive = tar::Builder::new(Vec::new());
    let inner = {
        let mut d = flate2::read::MultiGzDecoder::new(&bomb[..]);
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        v
    };
    let mut h = entry(tar::EntryType::Regular, inner.len() as u64);
    archive.append_data(&mut h, "layer.tar", &inner[..]).unwrap();
    let archive = gzip(&archive.into_inner().unwrap());
    let err = s.load(Cursor::new(archive)).unwrap_err();
    assert!(matches!(err, ImageError::LayerTooLarge { .. }), "{err}");
    assert_store_empty(&t.path(), &s);
    // A plain tar counts the same way, and a layer within the limit is stored.
    s.set_max_layer_size(Some(4096));
    let plain = simple_layer(&[("f", &"x".repeat(8000))]);
    assert!(matches!(
        s.import(Cursor::new(plain), None, &[]),
        Err(ImageError::LayerTooLarge { .. })
    ));
    assert_store_empty(&t.path(), &s);
    s.set_max_layer_size(Some(10 << 20));
    s.import(Cursor::new(gzip_bomb("small", 2)), Some("small"), &[]).unwrap();
    let diff = s.resolve("small").unwrap().layers[0].clone();
    assert_eq!(fs::metadata(diff.join("small")).unwrap().len(), 2 << 20);
    // No limit at all.
    s.set_max_layer_size(None);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&simple_layer(&[("g", "y")])).unwrap();
    s.import(Cursor::new(e.finish().unwrap()), Some("nolimit"), &[]).unwrap();
}
