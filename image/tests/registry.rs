//! Pull and push against a real distribution registry (Debian's `docker-registry`) on
//! loopback: images berth pushed and images `skopeo` pushed (OCI and Docker media types, an
//! index with two platforms, gzip, zstd and plain layers, whiteouts), auth (htpasswd Basic, a
//! token server's Bearer flow), and faults (damaged and missing blobs, a hostile server's huge
//! manifest, unknown tags and platforms, a registry killed mid-pull, concurrent pulls).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use berth_image::registry::{self, Credentials, Platform, Progress, PullOptions, PushOptions};
use berth_image::{ImageError, ImageStore};
use berth_store::StateRoot;
use berth_testsupport::registry::{Registry, RegistryAuth};
use berth_testsupport::{TempRoot, require_root};
use common::{E, gzip, layer, sha256};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn new_store() -> (TempRoot, ImageStore) {
    let t = TempRoot::new().unwrap();
    let root = StateRoot::open(&t.path()).unwrap();
    let s = ImageStore::open(&root).unwrap();
    (t, s)
}

fn busybox_tar() -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&p).unwrap();
    fs::read(p).unwrap()
}

/// Directory names under `images/layers` (chain ids).
fn layer_dirs(store_root: &Path) -> BTreeSet<String> {
    fs::read_dir(store_root.join("images/layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

fn tmp_entries(store_root: &Path) -> Vec<String> {
    fs::read_dir(store_root.join("images/tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// Collects progress events.
fn recorder() -> (Arc<Mutex<Vec<Progress>>>, registry::ProgressSink) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    (seen, Arc::new(move |p| s2.lock().unwrap().push(p)))
}

/// An OCI image layout on disk, written by hand, for skopeo to push.
struct Layout {
    dir: PathBuf,
}

/// How a layer blob is compressed.
#[derive(Clone, Copy)]
enum Comp {
    Gzip,
    Zstd,
    Plain,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    fn blob(&self, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        d
    }

    /// Writes an image; returns its manifest descriptor.
    fn image(&self, arch: &str, layers: &[(&[u8], Comp)]) -> serde_json::Value {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, comp) in layers {
            diff_ids.push(sha256(tar));
            let (blob, mt) = match comp {
                Comp::Gzip => (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
                Comp::Zstd => (zstd(tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
                Comp::Plain => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
            };
            let d = self.blob(&blob);
            descs.push(json!({"mediaType": mt, "digest": d, "size": blob.len()}));
        }
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": [format!("ARCH={arch}")]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "test"}],
        }))
        .unwrap();
        let cd = self.blob(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let md = self.blob(&manifest);
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
               "platform": {"architecture": arch, "os": "linux"}})
    }

    /// index.json naming `entries` (as one nested index when `nested`, else directly).
    fn index(&self, entries: Vec<serde_json::Value>, tag: &str, nested: bool) {
        let top = if nested {
            let inner = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": entries,
            }))
            .unwrap();
            let d = self.blob(&inner);
            vec![json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d,
                        "size": inner.len(), "annotations": {"org.opencontainers.image.ref.name": tag}})]
        } else {
            entries
                .into_iter()
                .map(|mut e| {
                    e["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
                    e
                })
                .collect()
        };
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": top});
        fs::write(self.dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
    }
}

fn zstd(b: &[u8]) -> Vec<u8> {
    let mut c = Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("zstd (apt-get install zstd)");
    let mut stdin = c.stdin.take().unwrap();
    let data = b.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `skopeo copy` with loopback TLS off; panics with its output when it fails.
fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false", "--quiet"])
        .args(args)
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a file of a pulled image through its layers (topmost first), honouring whiteouts.
fn read_in_image(store: &ImageStore, image: &str, path: &str) -> Option<String> {
    let resolved = store.resolve(image).unwrap();
    for l in &resolved.layers {
        let p = l.join(path);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()) {
                return None; // whiteout
            }
            return fs::read_to_string(p).ok();
        }
    }
    None
}

#[test]
fn berth_pushes_and_pulls_back_the_same_image() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let (_t1, a) = new_store();
    let id = a.import(&busybox_tar()[..], Some("bb:local"), &["CMD [\"sh\"]".into()]).unwrap();
    let target = format!("{}/test/bb:1", reg.addr);
    a.tag("bb:local", &target).unwrap();
    let rt = rt();
    let (seen, sink) = recorder();
    let pushed = rt
        .block_on(registry::push(&a, &target, &PushOptions { progress: Some(sink), ..Default::default() }))
        .unwrap();
    assert!(pushed.digest.starts_with("sha256:"));
    assert!(seen.lock().unwrap().iter().any(|p| matches!(p, Progress::Done(_))));
    // The registry holds docker's shape of manifest.
    let man = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{target}")])
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&man.stdout).to_string();
    assert!(raw.contains("application/vnd.docker.distribution.manifest.v2+json"), "{raw}");
    assert!(raw.starts_with("{\n   \"schemaVersion\": 2"), "{raw}");
    assert_eq!(sha256(&man.stdout), pushed.digest);
    let ins = a.inspect(&target).unwrap();
    assert_eq!(ins.repo_digests, vec![format!("{}/test/bb@{}", reg.addr, pushed.digest)]);

    // Pushed again: every blob is already there.
    let (seen, sink) = recorder();
    rt.block_on(registry::push(&a, &target, &PushOptions { progress: Some(sink), ..Default::default() }))
        .unwrap();
    let ev = seen.lock().unwrap().clone();
    assert!(ev.iter().any(|p| matches!(p, Progress::Exists(_))), "{ev:?}");
    assert!(!ev.iter().any(|p| matches!(p, Progress::Done(_))), "{ev:?}");
    // To another repository of the same registry: mounted, not uploaded.
    let other = format!("{}/other/bb:2", reg.addr);
    a.tag("bb:local", &other).unwrap();
    let (seen, sink) = recorder();
    rt.block_on(registry::push(&a, &other, &PushOptions { progress: Some(sink), ..Default::default() }))
        .unwrap();
    let ev = seen.lock().unwrap().clone();
    assert!(ev.iter().any(|p| matches!(p, Progress::Mounted { from, .. } if from == "test/bb")), "{ev:?}");

    // Pulled into an empty store: the same image id, its repo digest recorded.
    let (_t2, b) = new_store();
    let rep = rt.block_on(registry::pull(&b, &target, &PullOptions::default())).unwrap();
    assert_eq!(rep.id, id);
    assert_eq!(rep.digest, pushed.digest);
    assert!(rep.updated);
    let ins = b.inspect(&target).unwrap();
    assert_eq!(ins.repo_tags, vec![target.clone()]);
    assert_eq!(ins.repo_digests, vec![format!("{}/test/bb@{}", reg.addr, pushed.digest)]);
    assert!(read_in_image(&b, &target, "etc/group").unwrap().starts_with("root:x:0:"));
    // By digest: found locally, and pulled as such.
    let by_digest = format!("{}/test/bb@{}", reg.addr, pushed.digest);
    assert_eq!(b.resolve_id(&by_digest).unwrap(), id);
    let again = rt.block_on(registry::pull(&b, &by_digest, &PullOptions::default())).unwrap();
    assert_eq!(again.id, id);
    assert!(!again.updated);
    // Up to date the second time.
    let again = rt.block_on(registry::pull(&b, &target, &PullOptions::default())).unwrap();
    assert!(!again.updated);
    // save -> load of a pulled image gives the same id (its layers are complete).
    let mut saved = Vec::new();
    b.save(&[target.clone()], &mut saved).unwrap();
    let (_t3, c) = new_store();
    assert_eq!(c.load(&saved[..]).unwrap()[0].id, id);
}
