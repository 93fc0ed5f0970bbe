//! Volumes: create (named, anonymous, idempotent), list filters, inspect shape, rm in use,
//! prune, bind options, and population from image content.

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::os::unix::fs::MetadataExt;

use berth_image::ImageStore;
use berth_runtime::volume::{VolumeError, VolumeFilters, VolumeStore};
use berth_store::StateRoot;
use berth_testsupport::{TempRoot, require_root};

fn stores() -> (TempRoot, StateRoot, VolumeStore) {
    let t = TempRoot::new().unwrap();
    let root = StateRoot::open(t.path()).unwrap();
    let v = VolumeStore::open(&root);
    (t, root, v)
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn unused(_: &str) -> bool {
    false
}

#[test]
fn create_inspect_idempotent() {
    let (t, _r, v) = stores();
    let vol = v.create(Some("data"), labels(&[("a", "1")]), BTreeMap::new()).unwrap();
    assert_eq!(vol.name, "data");
    assert_eq!(vol.driver, "local");
    assert_eq!(vol.scope, "local");
    assert_eq!(vol.mountpoint, t.path().join("volumes/data/_data"));
    assert!(vol.mountpoint.is_dir());
    fs::write(vol.mountpoint.join("f"), "keep").unwrap();
    // Same name again: the same volume, content kept.
    let again = v.create(Some("data"), BTreeMap::new(), BTreeMap::new()).unwrap();
    assert_eq!(again, vol);
    assert_eq!(fs::read_to_string(again.mountpoint.join("f")).unwrap(), "keep");
    let json = serde_json::to_value(v.inspect("data").unwrap()).unwrap();
    for k in ["Name", "Driver", "Mountpoint", "Labels", "Scope", "Options", "CreatedAt"] {
        assert!(json.get(k).is_some(), "missing {k}");
    }
    assert_eq!(json["Labels"]["a"], "1");
    assert!(matches!(v.inspect("nope"), Err(VolumeError::NoSuchVolume(_))));
    assert_eq!(v.inspect("nope").unwrap_err().to_string(), "no such volume: nope");
    assert!(matches!(
        v.create(Some("../x"), BTreeMap::new(), BTreeMap::new()),
        Err(VolumeError::InvalidName(_))
    ));
    assert!(matches!(
        v.create(Some("a"), BTreeMap::new(), BTreeMap::new()),
        Err(VolumeError::InvalidName(_))
    ));
    let anon = v.create(None, BTreeMap::new(), BTreeMap::new()).unwrap();
    assert_eq!(anon.name.len(), 64);
    assert!(anon.labels.contains_key("com.docker.volume.anonymous"));
    assert!(anon.name.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn list_filters_rm_prune() {
    let (_t, _r, v) = stores();
    v.create(Some("proj_db"), labels(&[("com.docker.compose.project", "proj")]), BTreeMap::new())
        .unwrap();
    v.create(
        Some("proj_cache"),
        labels(&[("com.docker.compose.project", "proj")]),
        BTreeMap::new(),
    )
    .unwrap();
    v.create(Some("other"), BTreeMap::new(), BTreeMap::new()).unwrap();
    let anon = v.create(None, BTreeMap::new(), BTreeMap::new()).unwrap().name;
    // Named by the engine but labelled anonymous (a container's anonymous volume): pruned too.
    let labelled = labels(&[("com.docker.volume.anonymous", "")]);
    v.create(Some("ctr_anon"), labelled, BTreeMap::new()).unwrap();
    let names = |f: VolumeFilters, used: &dyn Fn(&str) -> bool| {
        v.list(&f, used).unwrap().into_iter().map(|v| v.name).collect::<Vec<_>>()
    };
    assert_eq!(names(VolumeFilters::default(), &unused).len(), 5);
    let by_label = VolumeFilters {
        label: vec!["com.docker.compose.project=proj".into()],
        ..Default::default()
    };
    assert_eq!(names(by_label, &unused), vec!["proj_cache", "proj_db"]);
    let by_name = VolumeFilters { name: vec!["proj_".into()], ..Default::default() };
    assert_eq!(names(by_name, &unused).len(), 2);
    let used = |n: &str| n == "proj_db";
    let dangling = VolumeFilters { dangling: Some(false), ..Default::default() };
    assert_eq!(names(dangling, &used), vec!["proj_db"]);

    // In use: refused even with force; missing: error unless force.
    assert!(matches!(v.remove("proj_db", true, &used), Err(VolumeError::InUse(_))));
    assert!(matches!(v.remove("ghost", false, &used), Err(VolumeError::NoSuchVolume(_))));
    v.remove("ghost", true, &used).unwrap();
    v.remove("proj_cache", false, &used).unwrap();
    assert!(v.inspect("proj_cache").is_err());

    // Prune: anonymous only by default, named too with all, never in-use ones.
    fs::write(v.mountpoint(&anon).unwrap().join("x"), "12345").unwrap();
    let r = v.prune(false, &[], &used).unwrap();
    let mut want = vec![anon, "ctr_anon".to_string()];
    want.sort();
    assert_eq!(r.volumes_deleted, want);
    assert_eq!(r.space_reclaimed, 5);
    let r = v.prune(true, &[], &used).unwrap();
    assert_eq!(r.volumes_deleted, vec!["other"]);
    assert_eq!(names(VolumeFilters::default(), &unused), vec!["proj_db"]);
}

#[test]
fn bind_options() {
    let (t, _r, v) = stores();
    let dev = t.path().join("hostdir");
    fs::create_dir(&dev).unwrap();
    let opts = labels(&[("type", "none"), ("o", "bind"), ("device", dev.to_str().unwrap())]);
    let vol = v.create(Some("bound"), BTreeMap::new(), opts.clone()).unwrap();
    assert_eq!(vol.options, Some(opts));
    assert_eq!(v.mount_source("bound").unwrap(), dev);
    assert!(matches!(
        v.create(Some("bound"), BTreeMap::new(), BTreeMap::new()),
        Err(VolumeError::Conflict(_))
    ));
    let tmpfs = labels(&[("type", "tmpfs"), ("device", "tmpfs")]);
    let err = v.create(Some("tm"), BTreeMap::new(), tmpfs).unwrap_err();
    assert!(err.to_string().contains("type=tmpfs"), "{err}");
    assert_eq!(v.mount_source("bound").unwrap(), dev);
    v.remove("bound", false, &unused).unwrap();
    assert!(dev.is_dir(), "the device directory is the user's: never removed");
}

#[test]
fn populate_from_image_once() {
    if !require_root() {
        return;
    }
    let (_t, r, v) = stores();
    let images = ImageStore::open(&r).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("srv/data").unwrap();
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let mut f = tar::Header::new_gnu();
    f.set_entry_type(tar::EntryType::Regular);
    f.set_path("srv/data/seed.txt").unwrap();
    f.set_mode(0o640);
    f.set_uid(1000);
    f.set_gid(50);
    f.set_size(4);
    f.set_cksum();
    b.append(&f, &b"seed"[..]).unwrap();
    images.import(Cursor::new(b.into_inner().unwrap()), Some("seeded"), &[]).unwrap();

    let vol = v.create(Some("seeded_data"), BTreeMap::new(), BTreeMap::new()).unwrap();
    assert!(v.populate_from_image("seeded_data", &images, "seeded", "/srv/data").unwrap());
    let seed = vol.mountpoint.join("seed.txt");
    assert_eq!(fs::read_to_string(&seed).unwrap(), "seed");
    let m = fs::metadata(&seed).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 50, 0o640));
    let root = fs::metadata(&vol.mountpoint).unwrap();
    assert_eq!(
        (root.uid(), root.mode() & 0o7777),
        (1000, 0o750),
        "volume root takes the image dir's owner and mode"
    );
    // Only once: emptied by the user, it stays empty.
    fs::remove_file(&seed).unwrap();
    assert!(!v.populate_from_image("seeded_data", &images, "seeded", "/srv/data").unwrap());
    assert!(!seed.exists());
    // A volume that already has content is not populated.
    let other = v.create(Some("has_content"), BTreeMap::new(), BTreeMap::new()).unwrap();
    fs::write(other.mountpoint.join("mine"), "x").unwrap();
    assert!(!v.populate_from_image("has_content", &images, "seeded", "/srv/data").unwrap());
    assert!(!other.mountpoint.join("seed.txt").exists());
}
