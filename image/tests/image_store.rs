//! Image store: import, inspect, tag/rm semantics, list filters, resolve, save/load round trip,
//! docker-save and OCI archives built here, gzip layers, concurrent imports.

mod common;

use std::fs;
use std::io::Cursor;

use berth_image::{ImageError, ImageStore, ListFilters, RemoveItem};
use berth_store::StateRoot;
use berth_testsupport::{TempRoot, busybox_rootfs_tar};
use common::*;

fn store() -> (TempRoot, ImageStore) {
    let t = TempRoot::new().unwrap();
    let root = StateRoot::open(t.path()).unwrap();
    let s = ImageStore::open(&root).unwrap();
    (t, s)
}

fn no_use(_: &str) -> bool {
    false
}

#[test]
fn import_busybox_then_inspect() {
    let (t, s) = store();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let changes = vec![
        "CMD [\"sh\"]".to_string(),
        "ENV PATH=/bin".to_string(),
        "WORKDIR /home/app".to_string(),
        "EXPOSE 8080".to_string(),
        "LABEL org.example=1".to_string(),
    ];
    let id = s.import(fs::File::open(&tar).unwrap(), Some("bb:1"), &changes).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71);
    let ins = s.inspect("bb:1").unwrap();
    assert_eq!(ins.id, id);
    assert_eq!(ins.repo_tags, vec!["bb:1".to_string()]);
    assert_eq!(ins.os, "linux");
    assert_eq!(ins.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(ins.config.env, Some(vec!["PATH=/bin".to_string()]));
    assert_eq!(ins.config.working_dir, "/home/app");
    assert!(ins.config.exposed_ports.clone().unwrap().contains_key("8080/tcp"));
    assert_eq!(ins.config.labels.clone().unwrap()["org.example"], "1");
    assert_eq!(ins.root_fs.kind, "layers");
    assert_eq!(ins.root_fs.layers.len(), 1);
    let busybox_size = fs::metadata("/bin/busybox").unwrap().len();
    assert!(ins.size >= busybox_size, "size {} < busybox {busybox_size}", ins.size);
    // The JSON is Docker-shaped.
    let v = serde_json::to_value(&ins).unwrap();
    for k in ["Id", "RepoTags", "Created", "Size", "Architecture", "Os", "Config", "RootFS"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["RootFS"]["Type"], "layers");
    // Resolve gives the layer dirs with the content.
    let r = s.resolve("bb:1").unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.layers.len(), 1);
    assert!(r.layers[0].join("bin/busybox").is_file());
    assert!(fs::symlink_metadata(r.layers[0].join("bin/sh")).unwrap().file_type().is_symlink());
    assert_eq!(r.config.config().as_ref().unwrap().working_dir().as_deref(), Some("/home/app"));
    // By id and prefix.
    assert_eq!(s.inspect(&id).unwrap().id, id);
    assert_eq!(s.inspect(&id[7..19]).unwrap().id, id);
    assert!(matches!(s.inspect("nope"), Err(ImageError::NoSuchImage(n)) if n == "nope:latest"));
    assert_eq!(s.inspect("nope").unwrap_err().to_string(), "no such image: nope:latest");
    // No staging debris.
    assert_eq!(fs::read_dir(t.path().join("images/tmp")).unwrap().count(), 0);
}

#[test]
fn tag_untag_delete() {
    let (_t, s) = store();
    let id = s.import(Cursor::new(simple_layer(&[("a.txt", "A")])), Some("one"), &[]).unwrap();
    s.tag("one", "two:v2").unwrap();
    s.tag(&id, "docker.io/library/three").unwrap();
    let mut tags = s.inspect(&id).unwrap().repo_tags;
    tags.sort();
    assert_eq!(tags, vec!["one:latest", "three:latest", "two:v2"]);
    // Removing one of several tags only untags.
    assert_eq!(
        s.remove("two:v2", false, &no_use).unwrap(),
        vec![RemoveItem::Untagged("two:v2".into())]
    );
    // By id with several tags needs force.
    assert!(matches!(s.remove(&id, false, &no_use), Err(ImageError::MultipleReferences { .. })));
    assert_eq!(s.remove("three", false, &no_use).unwrap().len(), 1);
    // Last tag of an image in use: refused without force, and force only untags.
    let used = |i: &str| i == id;
    assert!(matches!(s.remove("one", false, &used), Err(ImageError::InUse { .. })));
    assert_eq!(
        s.remove("one", true, &used).unwrap(),
        vec![RemoveItem::Untagged("one:latest".into())]
    );
    assert_eq!(s.image_ids().unwrap(), vec![id.clone()]);
    // Now dangling: listed by dangling=true, removed by prune.
    let dangling = s.list(&ListFilters { dangling: Some(true), ..Default::default() }).unwrap();
    assert_eq!(dangling.len(), 1);
    let report = s.prune(false, &no_use).unwrap();
    assert!(report.images_deleted.contains(&RemoveItem::Deleted(id.clone())));
    assert!(s.image_ids().unwrap().is_empty());
    assert_eq!(fs::read_dir(s.state_root().images_dir().join("layers")).unwrap().count(), 0);
}

#[test]
fn remove_last_tag_deletes_image_and_unshared_layers() {
    let (_t, s) = store();
    let a = s.import(Cursor::new(simple_layer(&[("a", "1")])), Some("a"), &[]).unwrap();
    let _b =
        s.import(Cursor::new(simple_layer(&[("a", "1")])), Some("b"), &["CMD x".into()]).unwrap();
    // Same layer content: one layer directory shared by both images.
    let layers = s.state_root().images_dir().join("layers");
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 1);
    let out = s.remove("a", false, &no_use).unwrap();
    assert_eq!(out[0], RemoveItem::Untagged("a:latest".into()));
    assert_eq!(out[1], RemoveItem::Deleted(a));
    assert_eq!(out.len(), 2, "shared layer kept: {out:?}");
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 1);
    let out = s.remove("b", false, &no_use).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(fs::read_dir(&layers).unwrap().count(), 0);
}

#[test]
fn list_filters() {
    let (_t, s) = store();
    s.import(Cursor::new(simple_layer(&[("a", "1")])), Some("web:1"), &["LABEL tier=front".into()])
        .unwrap();
    s.import(Cursor::new(simple_layer(&[("b", "1")])), Some("db:1"), &["LABEL tier=back".into()])
        .unwrap();
    s.import(Cursor::new(simple_layer(&[("c", "1")])), None, &[]).unwrap();
    let all = s.list(&ListFilters::default()).unwrap();
    assert_eq!(all.len(), 3);
    let f = |reference: &[&str], label: &[&str], dangling| ListFilters {
        reference: reference.iter().map(|s| s.to_string()).collect(),
        label: label.iter().map(|s| s.to_string()).collect(),
        dangling,
    };
    let tags = |v: Vec<berth_image::ImageSummary>| {
        v.into_iter().flat_map(|i| i.repo_tags).collect::<Vec<_>>()
    };
    assert_eq!(tags(s.list(&f(&["web"], &[], None)).unwrap()), vec!["web:1"]);
    assert_eq!(tags(s.list(&f(&["*:1"], &["tier=back"], None)).unwrap()), vec!["db:1"]);
    assert_eq!(s.list(&f(&[], &["tier"], None)).unwrap().len(), 2);
    assert_eq!(s.list(&f(&[], &[], Some(true))).unwrap().len(), 1);
    assert_eq!(s.list(&f(&[], &[], Some(false))).unwrap().len(), 2);
}

#[test]
fn gzip_import_and_bad_change() {
    let (_t, s) = store();
    let tar = simple_layer(&[("etc/motd", "hi")]);
    let plain_id = s.import(Cursor::new(tar.clone()), Some("p"), &[]).unwrap();
    let gz_id = s.import(Cursor::new(gzip(&tar)), Some("g"), &[]).unwrap();
    // Same diff id (the uncompressed tar), so the layer is shared.
    let a = s.inspect(&plain_id).unwrap().root_fs.layers;
    let b = s.inspect(&gz_id).unwrap().root_fs.layers;
    assert_eq!(a, b);
    let err = s.import(Cursor::new(tar), Some("x"), &["RUN make".into()]).unwrap_err();
    assert!(err.to_string().contains("RUN is not supported"), "{err}");
    assert!(s.inspect("x").is_err());
}

#[test]
fn save_load_round_trip_same_id() {
    let (t, s) = store();
    let base = simple_layer(&[("a", "1"), ("dir/b", "2")]);
    let id = s.import(Cursor::new(base), Some("rt:1"), &["CMD [\"true\"]".into()]).unwrap();
    s.tag("rt:1", "rt:2").unwrap();
    let mut archive = Vec::new();
    s.save(&["rt:1".to_string(), "rt:2".to_string()], &mut archive).unwrap();

    let (_t2, s2) = store();
    let loaded = s2.load(Cursor::new(archive.clone())).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, id);
    let mut tags = s2.inspect(&id).unwrap().repo_tags;
    tags.sort();
    assert_eq!(tags, vec!["rt:1", "rt:2"]);
    assert_eq!(
        fs::read_to_string(s2.resolve("rt:2").unwrap().layers[0].join("dir/b")).unwrap(),
        "2"
    );
    // Loading again into the same store is idempotent, and a gzipped archive loads too.
    assert_eq!(s2.load(Cursor::new(archive.clone())).unwrap()[0].id, id);
    assert_eq!(s2.load(Cursor::new(gzip(&archive))).unwrap()[0].id, id);
    let err = s2.load(Cursor::new(build_tar(&[("README", b"hi".to_vec())]))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid image archive: neither manifest.json (docker save) nor index.json (OCI layout) found"
    );
    // The archive is also an OCI layout: drop manifest.json and load through index.json.
    let oci = strip_member(&archive, "manifest.json");
    let (_t3, s3) = store();
    let loaded = s3.load(Cursor::new(oci)).unwrap();
    assert_eq!(loaded.len(), 2);
    assert!(loaded.iter().all(|l| l.id == id));
    assert!(s3.inspect("rt:1").is_ok() && s3.inspect("rt:2").is_ok());
    drop(t);
}

#[test]
fn load_legacy_docker_save_with_gzip_layer() {
    // Legacy layout: <hex>.json config, <dir>/layer.tar layers, manifest.json, repositories.
    let l1 = simple_layer(&[("bin/tool", "v1"), ("etc/conf", "base")]);
    let l2 = simple_layer(&[("etc/conf", "override")]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/tool"], "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&l1), sha256(&l2)]}
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let cid = sha256(&config_bytes);
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", &cid[7..]),
        "RepoTags": ["legacy:1"],
        "Layers": ["l1/layer.tar", "l2/layer.tar"]
    }]);
    let archive = build_tar(&[
        (&format!("{}.json", &cid[7..]), config_bytes.clone()),
        ("l1/layer.tar", l1),
        ("l2/layer.tar", gzip(&l2)),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ]);
    let (_t, s) = store();
    let loaded = s.load(Cursor::new(archive)).unwrap();
    assert_eq!(loaded[0].id, cid);
    assert_eq!(loaded[0].refs, vec!["legacy:1"]);
    let ins = s.inspect("legacy:1").unwrap();
    assert_eq!(ins.created, "2024-01-02T03:04:05Z");
    assert_eq!(ins.config.healthcheck.unwrap().test.unwrap(), vec!["CMD", "true"]);
    let r = s.resolve("legacy:1").unwrap();
    assert_eq!(r.layers.len(), 2);
    // Topmost first.
    assert_eq!(fs::read_to_string(r.layers[0].join("etc/conf")).unwrap(), "override");
    assert_eq!(fs::read_to_string(r.layers[1].join("etc/conf")).unwrap(), "base");
    assert_eq!(r.healthcheck.unwrap().interval, Some(1_000_000_000));
}

#[test]
fn load_refuses_mismatched_diff_id() {
    let l1 = simple_layer(&[("a", "1")]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "0".repeat(64))]}
    });
    let archive = build_tar(&[
        ("c.json", serde_json::to_vec(&config).unwrap()),
        ("l1.tar", l1),
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["l1.tar"]}]"#.to_vec(),
        ),
    ]);
    let (t, s) = store();
    let err = s.load(Cursor::new(archive)).unwrap_err();
    assert!(err.to_string().contains("diff id"), "{err}");
    assert!(s.inspect("bad:1").is_err());
    assert_eq!(fs::read_dir(t.path().join("images/layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(t.path().join("images/tmp")).unwrap().count(), 0);
}

#[test]
fn load_oci_layout_built_by_hand() {
    let l1 = simple_layer(&[("hello", "oci")]);
    let gz = gzip(&l1);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&l1)]}
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&cb), "size": cb.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&gz), "size": gz.len()}]
    });
    let mb = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(&mb), "size": mb.len(),
            "annotations": {"org.opencontainers.image.ref.name": "example.com/oci/app:2"}}]
    });
    let blob = |b: &[u8]| format!("blobs/sha256/{}", &sha256(b)[7..]);
    let archive = build_tar(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", serde_json::to_vec(&index).unwrap()),
        (&blob(&cb), cb.clone()),
        (&blob(&mb), mb.clone()),
        (&blob(&gz), gz.clone()),
    ]);
    let (_t, s) = store();
    let loaded = s.load(Cursor::new(archive)).unwrap();
    assert_eq!(loaded[0].refs, vec!["example.com/oci/app:2"]);
    assert_eq!(loaded[0].id, sha256(&cb));
    let r = s.resolve("example.com/oci/app:2").unwrap();
    assert_eq!(fs::read_to_string(r.layers[0].join("hello")).unwrap(), "oci");
}

#[test]
fn concurrent_imports_keep_index_consistent() {
    let (t, s) = store();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                let tag = if i % 2 == 0 { "same:1".to_string() } else { format!("other:{i}") };
                s.import(fs::File::open(&tar).unwrap(), Some(&tag), &[]).unwrap()
            })
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let same = s.inspect("same:1").unwrap();
    assert!(ids.contains(&same.id));
    for id in &ids {
        let r = s.resolve(id).unwrap();
        assert!(r.layers[0].join("bin/busybox").is_file());
    }
    // One shared layer directory, no staging debris, and the index parses.
    assert_eq!(fs::read_dir(t.path().join("images/layers")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(t.path().join("images/tmp")).unwrap().count(), 0);
    assert_eq!(s.image_ids().unwrap().len(), 4);
}
