//! The async Engine facade over images and volumes, as the planner and engine work use it.

use std::collections::BTreeMap;

use berth_image::ListFilters;
use berth_runtime::{Engine, EngineOptions};
use berth_testsupport::{TempRoot, busybox_rootfs_tar, require_root};

#[tokio::test]
async fn engine_image_and_volume_methods() {
    if !require_root() {
        return;
    }
    let t = TempRoot::new().unwrap();
    let mut opts = EngineOptions::new(t.path().join("state"));
    opts.helper_exe = Some("/bin/true".into());
    let engine = Engine::open(opts).unwrap();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let f = std::fs::File::open(&tar).unwrap();
    let id = engine
        .image_import(Box::new(f), Some("eng:1".into()), vec!["CMD [\"sh\"]".into()])
        .await
        .unwrap();
    let list = engine.image_list(ListFilters::default()).await.unwrap();
    assert_eq!(list[0].repo_tags, vec!["eng:1"]);
    let resolved = engine.image_resolve("eng".into()).await.unwrap_err();
    assert_eq!(resolved.to_string(), "no such image: eng:latest");
    let r = engine.image_resolve("eng:1".into()).await.unwrap();
    assert_eq!(r.id, id);
    assert!(r.layers[0].join("bin/busybox").is_file());

    let v = engine
        .volume_create(Some("eng_etc".into()), BTreeMap::new(), BTreeMap::new())
        .await
        .unwrap();
    assert!(engine.volume_populate("eng_etc".into(), "eng:1".into(), "/etc".into()).await.unwrap());
    assert!(v.mountpoint.join("passwd").is_file());
    assert_eq!(engine.volume_mount_source("eng_etc".into()).await.unwrap(), v.mountpoint);
    // In-use hooks come from the caller.
    let err =
        engine.volume_remove("eng_etc".into(), false, vec!["eng_etc".into()]).await.unwrap_err();
    assert_eq!(err.to_string(), "remove eng_etc: volume is in use");
    let err = engine.image_remove("eng:1".into(), false, vec![id.clone()]).await.unwrap_err();
    assert!(err.to_string().contains("being used by a container"), "{err}");
    engine.volume_remove("eng_etc".into(), false, vec![]).await.unwrap();
    engine.image_remove("eng:1".into(), false, vec![]).await.unwrap();
    assert!(engine.image_list(ListFilters::default()).await.unwrap().is_empty());
}
