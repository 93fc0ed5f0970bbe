//! `berth image` and `berth volume` end to end: import, ls, inspect, tag, save/load, rm, prune;
//! volume create, ls, inspect, rm, prune. Each test has its own state root.

use std::process::{Command, Stdio};

use berth_testsupport::{TempRoot, busybox_rootfs_tar};

use crate::support::{berth, berth_bin, raw_tar_file};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "berth failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn image_import_ls_inspect_tag_rm() {
    let t = TempRoot::new().unwrap();
    let root = t.path().join("state");
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let id = ok(&berth(
        &root,
        &["image", "import", tar.to_str().unwrap(), "bb:1", "-c", "CMD [\"sh\"]", "-c", "ENV A=b"],
    ));
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");

    let ls = ok(&berth(&root, &["image", "ls"]));
    let lines: Vec<&str> = ls.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY"), "{ls}");
    assert!(lines[0].contains("IMAGE ID") && lines[0].ends_with("SIZE"), "{ls}");
    assert!(lines[1].starts_with("bb ") && lines[1].contains(&id[7..19]), "{ls}");

    let json = ok(&berth(&root, &["image", "inspect", "bb:1"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["RepoTags"][0], "bb:1");
    assert_eq!(v[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(v[0]["Config"]["Env"][0], "A=b");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);

    ok(&berth(&root, &["image", "tag", "bb:1", "bb:2"]));
    let rows = ok(&berth(&root, &["image", "ls", "--format", "json"]));
    assert_eq!(rows.lines().count(), 2);
    let row: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(row["Repository"], "bb");
    assert_eq!(ok(&berth(&root, &["image", "ls", "-q"])).trim(), &id[7..19]);

    let rm = ok(&berth(&root, &["image", "rm", "bb:2"]));
    assert_eq!(rm.trim(), "Untagged: bb:2");
    let rm = ok(&berth(&root, &["image", "rm", "bb:1"]));
    assert!(rm.contains("Untagged: bb:1") && rm.contains(&format!("Deleted: {id}")), "{rm}");

    let missing = berth(&root, &["image", "inspect", "bb:1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stderr).trim(), "no such image: bb:1");
    let bad = berth(&root, &["image", "import", "/nonexistent.tar", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot open /nonexistent.tar"));
}

#[test]
fn image_save_load_round_trip_via_file_and_stdin() {
    let t = TempRoot::new().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let id = ok(&berth(&a, &["image", "import", tar.to_str().unwrap(), "rt:1"])).trim().to_string();
    let archive = t.path().join("out.tar");
    ok(&berth(&a, &["image", "save", "-o", archive.to_str().unwrap(), "rt:1"]));
    let loaded = ok(&berth(&b, &["image", "load", "-i", archive.to_str().unwrap()]));
    assert_eq!(loaded.trim(), "Loaded image: rt:1");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&b, &["image", "inspect", "rt:1"]))).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());

    // save to stdout, load from stdin.
    let c = t.path().join("c");
    let saved = Command::new(berth_bin())
        .args(["--root", a.to_str().unwrap(), "image", "save", "rt:1"])
        .output()
        .unwrap();
    assert!(saved.status.success());
    let mut child = Command::new(berth_bin())
        .args(["--root", c.to_str().unwrap(), "image", "load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &saved.stdout).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out).trim(), "Loaded image: rt:1");

    // prune -a removes the unused image.
    let pruned = ok(&berth(&c, &["image", "prune", "-a", "--force"]));
    assert!(pruned.contains(&format!("deleted: {id}")), "{pruned}");
    assert!(ok(&berth(&c, &["image", "ls", "-q"])).trim().is_empty());
}

#[test]
fn volume_create_ls_inspect_rm_prune() {
    let t = TempRoot::new().unwrap();
    let root = t.path().join("state");
    assert_eq!(ok(&berth(&root, &["volume", "create", "--label", "a=1", "data"])).trim(), "data");
    let anon = ok(&berth(&root, &["volume", "create"])).trim().to_string();
    assert_eq!(anon.len(), 64);
    let ls = ok(&berth(&root, &["volume", "ls"]));
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    assert!(ls.contains("local     data\n"), "{ls}");
    assert_eq!(ok(&berth(&root, &["volume", "ls", "-q", "--filter", "label=a=1"])).trim(), "data");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &["volume", "inspect", "data"]))).unwrap();
    assert_eq!(v[0]["Name"], "data");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Labels"]["a"], "1");
    assert_eq!(v[0]["Mountpoint"], root.join("volumes/data/_data").to_str().unwrap());
    let pruned = ok(&berth(&root, &["volume", "prune", "--force"]));
    assert!(pruned.contains(&anon) && !pruned.contains("data\n"), "{pruned}");
    assert_eq!(ok(&berth(&root, &["volume", "rm", "data"])).trim(), "data");
    let missing = berth(&root, &["volume", "rm", "data"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stderr).trim(), "no such volume: data");
    assert_eq!(ok(&berth(&root, &["volume", "ls", "-q"])).trim(), "");
}

#[test]
fn concurrent_imports_from_two_processes() {
    let t = TempRoot::new().unwrap();
    let root = t.path().join("state");
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let spawn = || {
        Command::new(berth_bin())
            .args([
                "--root",
                root.to_str().unwrap(),
                "image",
                "import",
                tar.to_str().unwrap(),
                "race:1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ids = [ok(&a).trim().to_string(), ok(&b).trim().to_string()];
    // One of the two owns the tag, the other is dangling; both are whole images.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &["image", "inspect", "race:1"]))).unwrap();
    assert!(ids.iter().any(|i| v[0]["Id"] == i.as_str()));
    for id in &ids {
        ok(&berth(&root, &["image", "inspect", id]));
    }
    assert_eq!(std::fs::read_dir(root.join("images/layers")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(root.join("images/tmp")).unwrap().count(), 0);
    let dangling = ok(&berth(&root, &["image", "ls", "-q", "--filter", "dangling=true"]));
    assert_eq!(dangling.lines().count(), 1);
}

#[test]
fn image_import_from_stdin_and_unsafe_tar_error() {
    let t = TempRoot::new().unwrap();
    let root = t.path().join("state");
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar).unwrap();
    let out = Command::new(berth_bin())
        .args(["--root", root.to_str().unwrap(), "image", "import", "-", "piped"])
        .stdin(std::fs::File::open(&tar).unwrap())
        .output()
        .unwrap();
    let id = ok(&out).trim().to_string();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&berth(&root, &["image", "inspect", "piped"]))).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());

    // A crafted tar with a `../` entry: one clear sentence, exit 1, nothing stored.
    let evil = t.path().join("evil.tar");
    std::fs::write(&evil, raw_tar_file("../escape", b"x")).unwrap();
    let out = berth(&root, &["image", "import", evil.to_str().unwrap(), "evil"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "cannot import {}: refusing unsafe layer entry ../escape: the path has a '..' component",
            evil.display()
        )
    );
    assert!(!t.path().join("escape").exists() && !root.join("images/escape").exists());
    assert_eq!(berth(&root, &["image", "inspect", "evil"]).status.code(), Some(1));
}

#[test]
fn image_import_and_load_refuse_a_gzip_bomb_and_store_nothing() {
    let t = TempRoot::new().unwrap();
    let root = t.path().join("state");
    // 100 MiB of zeros in a tar, gzip-compressed to about 100 KiB.
    let bomb = t.path().join("bomb.tar.gz");
    let made = Command::new("sh")
        .arg("-c")
        .arg("head -c 104857600 /dev/zero > zeros && tar -cf - zeros | gzip -1 > bomb.tar.gz && rm zeros")
        .current_dir(t.path())
        .status()
        .unwrap();
    assert!(made.success());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let with_limit = |args: &[&str], limit: &str| {
        Command::new(berth_bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("BERTH_MAX_LAYER_SIZE", limit)
            .output()
            .unwrap()
    };
    let b = bomb.to_str().unwrap();
    let out = with_limit(&["image", "import", b, "bomb"], "10m");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "cannot import {b}: refusing a layer that unpacks to more than 10 MiB (the limit; set BERTH_MAX_LAYER_SIZE to change it)"
        )
    );
    // The bomb's tar as an archive to load: refused the same way.
    let out = with_limit(&["image", "load", "-i", b], "10m");
    assert_eq!(out.status.code(), Some(1));
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(
        se.contains(&format!("cannot load {b}: refusing a layer that unpacks to more than 10 MiB")),
        "{se}"
    );
    // Nothing half-stored.
    assert_eq!(ok(&berth(&root, &["image", "ls", "-q"])).trim(), "");
    for d in ["images/tmp", "images/layers", "images/blobs/sha256"] {
        assert_eq!(std::fs::read_dir(root.join(d)).unwrap().count(), 0, "{d}");
    }
    let out = with_limit(&["image", "import", b, "bomb"], "a lot");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "cannot import {b}: BERTH_MAX_LAYER_SIZE=\"a lot\" is not a size (bytes, or a number with k, m, g or t; 0: no limit)"
        )
    );
    // Under the default limit it imports; the store keeps no second, uncompressed copy: the
    // blobs hold only the config, the layer its files and a small tar-split.
    let id = ok(&berth(&root, &["image", "import", b, "bomb"])).trim().to_string();
    let blobs: Vec<_> =
        std::fs::read_dir(root.join("images/blobs/sha256")).unwrap().flatten().collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(format!("sha256:{}", blobs[0].file_name().to_string_lossy()), id);
    let layers: Vec<_> = std::fs::read_dir(root.join("images/layers")).unwrap().flatten().collect();
    let split = std::fs::metadata(layers[0].path().join("tar-split")).unwrap().len();
    assert!(split < 64 << 10, "tar-split is {split} bytes");
}
