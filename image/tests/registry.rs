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
    let root = StateRoot::open(t.path()).unwrap();
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
        .block_on(registry::push(
            &a,
            &target,
            &PushOptions { progress: Some(sink), ..Default::default() },
        ))
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
    rt.block_on(registry::push(
        &a,
        &target,
        &PushOptions { progress: Some(sink), ..Default::default() },
    ))
    .unwrap();
    let ev = seen.lock().unwrap().clone();
    assert!(ev.iter().any(|p| matches!(p, Progress::Exists(_))), "{ev:?}");
    assert!(!ev.iter().any(|p| matches!(p, Progress::Done(_))), "{ev:?}");
    // To another repository of the same registry: mounted, not uploaded.
    let other = format!("{}/other/bb:2", reg.addr);
    a.tag("bb:local", &other).unwrap();
    let (seen, sink) = recorder();
    rt.block_on(registry::push(
        &a,
        &other,
        &PushOptions { progress: Some(sink), ..Default::default() },
    ))
    .unwrap();
    let ev = seen.lock().unwrap().clone();
    assert!(
        ev.iter().any(|p| matches!(p, Progress::Mounted { from, .. } if from == "test/bb")),
        "{ev:?}"
    );

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
    b.save(std::slice::from_ref(&target), &mut saved).unwrap();
    let (_t3, c) = new_store();
    assert_eq!(c.load(&saved[..]).unwrap()[0].id, id);
}

#[test]
fn pulls_what_skopeo_pushed_index_media_types_compressions_whiteouts() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir().unwrap();
    let base = busybox_tar();
    let amd = layer(&[
        E::File("arch", "amd64\n", 0o644),
        E::Dir("data/"),
        E::File("data/old", "x", 0o644),
        E::File("gone", "g", 0o644),
    ]);
    let arm = layer(&[E::File("arch", "arm64\n", 0o644)]);
    // Whiteout of `gone` and an opaque `data/` with a new file.
    let wh = layer(&[
        E::File(".wh.gone", "", 0o644),
        E::Dir("data/"),
        E::File("data/.wh..wh..opq", "", 0o644),
        E::File("data/new", "n", 0o644),
    ]);
    let zst = layer(&[E::File("zstd-was-here", "z", 0o644)]);
    let l = Layout::new(work.path().join("multi"));
    let a = l.image(
        "amd64",
        &[(&base, Comp::Gzip), (&amd, Comp::Plain), (&wh, Comp::Gzip), (&zst, Comp::Zstd)],
    );
    let b = l.image("arm64", &[(&base, Comp::Gzip), (&arm, Comp::Plain)]);
    l.index(vec![a, b], "multi", true);
    let dest = format!("docker://{}/test/multi:1", reg.addr);
    skopeo(&["--all", "--preserve-digests", &format!("oci:{}:multi", l.dir.display()), &dest]);
    let rt = rt();
    let (t, s) = new_store();
    let r = format!("{}/test/multi:1", reg.addr);
    let rep = rt.block_on(registry::pull(&s, &r, &PullOptions::default())).unwrap();
    assert_eq!(read_in_image(&s, &r, "arch").as_deref(), Some("amd64\n"));
    assert_eq!(read_in_image(&s, &r, "zstd-was-here").as_deref(), Some("z"));
    assert_eq!(read_in_image(&s, &r, "gone"), None);
    assert_eq!(read_in_image(&s, &r, "data/new").as_deref(), Some("n"));
    // The opaque directory hides the lower `data/old`.
    let top_data = s.resolve(&r).unwrap().layers[1].join("data");
    let opaque = xattr_get(&top_data, "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    let ins = s.inspect(&r).unwrap();
    assert_eq!(ins.architecture, "amd64");
    // The repo digest is the index's digest, as docker records it.
    assert_eq!(ins.repo_digests, vec![format!("{}/test/multi@{}", reg.addr, rep.digest)]);
    // An explicit platform picks the other entry.
    let arm_opts = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let rep2 = rt.block_on(registry::pull(&s, &r, &arm_opts)).unwrap();
    assert_ne!(rep2.id, rep.id);
    assert_eq!(read_in_image(&s, &r, "arch").as_deref(), Some("arm64\n"));
    // The busybox layer both platforms share was stored once.
    let layers = layer_dirs(&t.path());
    assert_eq!(layers.len(), 5, "{layers:?}");
    assert_eq!(reg.count_requests("GET", &format!("/blobs/{}", sha256(&gzip(&base)))), 1);
    // A platform the index lacks: a sentence listing what it offers; nothing stored.
    let s390 = PullOptions {
        platform: Some(Platform::parse("linux/s390x").unwrap()),
        ..Default::default()
    };
    let err =
        rt.block_on(registry::pull(&s, &format!("{}/test/multi:1", reg.addr), &s390)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no matching manifest for linux/s390x")
            && msg.contains("linux/amd64, linux/arm64"),
        "{msg}"
    );

    // The amd64 image as Docker schema 2 (skopeo converts; zstd has no docker type, so an image
    // without it), into another repository sharing the base layer.
    let l2 = Layout::new(work.path().join("docker"));
    let d = l2.image("amd64", &[(&base, Comp::Gzip), (&amd, Comp::Gzip)]);
    l2.index(vec![d], "d", false);
    let dref = format!("{}/test/docker:1", reg.addr);
    skopeo(&[
        "--format",
        "v2s2",
        &format!("oci:{}:d", l2.dir.display()),
        &format!("docker://{dref}"),
    ]);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{dref}")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&raw.stdout)
            .contains("application/vnd.docker.distribution.manifest.v2+json")
    );
    let (t2, s2) = new_store();
    rt.block_on(registry::pull(&s2, &dref, &PullOptions::default())).unwrap();
    assert_eq!(read_in_image(&s2, &dref, "data/old").as_deref(), Some("x"));
    // Two images sharing a base: the second pull fetches only its own layers (the chain ids
    // depend on the uncompressed layers, so the gzip and plain copies of `amd` are one layer).
    let (seen, sink) = recorder();
    let opts = PullOptions { progress: Some(sink), ..Default::default() };
    rt.block_on(registry::pull(&s2, &r, &opts)).unwrap();
    assert_eq!(layer_dirs(&t2.path()).len(), 4);
    // An index whose entry names no platform: taken, and its config must fit.
    let l3 = Layout::new(work.path().join("unnamed"));
    let mut d3 = l3.image("amd64", &[(&base, Comp::Gzip)]);
    d3.as_object_mut().unwrap().remove("platform");
    l3.index(vec![d3], "u", true);
    let uref = format!("{}/test/unnamed:1", reg.addr);
    skopeo(&[
        "--all",
        "--preserve-digests",
        &format!("oci:{}:u", l3.dir.display()),
        &format!("docker://{uref}"),
    ]);
    rt.block_on(registry::pull(&s2, &uref, &PullOptions::default())).unwrap();
    let arm = PullOptions {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let err = rt.block_on(registry::pull(&s2, &uref, &arm)).unwrap_err();
    assert!(err.to_string().contains("wanted linux/arm64, actual: linux/amd64"), "{err}");
    let ev = seen.lock().unwrap().clone();
    assert_eq!(ev.iter().filter(|p| matches!(p, Progress::Exists(_))).count(), 2, "{ev:?}");
    assert_eq!(ev.iter().filter(|p| matches!(p, Progress::Done(_))).count(), 2, "{ev:?}");
    assert!(tmp_entries(&t2.path()).is_empty());
}

/// An xattr's value (None when unset).
fn xattr_get(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Asserts a failed pull left no image, no staging debris and none of `absent` layers.
fn nothing_half_stored(t: &TempRoot, s: &ImageStore, absent: &[String]) {
    assert!(s.image_ids().unwrap().is_empty());
    assert!(tmp_entries(&t.path()).is_empty(), "{:?}", tmp_entries(&t.path()));
    let layers = layer_dirs(&t.path());
    for a in absent {
        assert!(!layers.contains(&a[7..]), "layer {a} was stored");
    }
}

/// A "registry" (not the real one: a stand-in for an old or hostile server) whose manifest is
/// `manifest`, or never ends when None.
fn manifest_server(manifest: Option<&'static str>) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        for _ in 0..5 {
            let Ok((s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            // berth tries HTTPS first: a TLS hello (0x16) is closed at once.
            let mut b = [0u8; 1];
            if s.peek(&mut b).is_ok_and(|n| n == 1) && b[0] == 0x16 {
                continue;
            }
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let mut w = s;
            if !first.starts_with("GET ") {
                continue; // berth tries HTTPS first
            }
            if first.contains(" /v2/ ") {
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
                continue;
            }
            if let Some(m) = manifest {
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.distribution.manifest.v1+prettyjws\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{m}",
                    m.len()
                );
                return;
            }
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n{\"schemaVersion\":2,\"x\":\"");
            let chunk = vec![b'a'; 1 << 16];
            // 64 MiB at most: the client must stop long before.
            for _ in 0..1024 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
            return;
        }
    });
    (addr, h)
}

#[test]
fn faults_are_clear_errors_and_store_nothing() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let rt = rt();
    let (_ta, a) = new_store();
    a.import(&busybox_tar()[..], Some("bb:local"), &[]).unwrap();
    let top = layer(&[E::File("top", &"t".repeat(100_000), 0o644)]);
    let work = tempfile::tempdir().unwrap();
    let l = Layout::new(work.path().join("img"));
    let d = l.image("amd64", &[(&busybox_tar(), Comp::Gzip), (&top, Comp::Gzip)]);
    l.index(vec![d], "x", false);
    for repo in ["corrupt", "missing", "fine"] {
        skopeo(&[
            &format!("oci:{}:x", l.dir.display()),
            &format!("docker://{}/t/{repo}:1", reg.addr),
        ]);
    }
    let top_blob = sha256(&gzip(&top));
    let top_chain_free = sha256(&top); // diff id; its chain id differs, checked through image absence

    // 1. Bytes that do not match their digest (the registry's storage file changed in place).
    // Every repository shares the blob file, so damage it, try, then restore it.
    let file = reg.blob_file(&top_blob);
    let good = fs::read(&file).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    fs::write(&file, &bad).unwrap();
    let (t, s) = new_store();
    let err = rt
        .block_on(registry::pull(&s, &format!("{}/t/corrupt:1", reg.addr), &PullOptions::default()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("layer {top_blob}")) && msg.contains("arrived with digest"),
        "{msg}"
    );
    assert!(msg.contains("nothing of it was stored"), "{msg}");
    nothing_half_stored(&t, &s, &[]);
    assert!(layer_dirs(&t.path()).len() <= 1, "only the verified base layer may stay");
    fs::write(&file, &good).unwrap();

    // 2. A manifest naming a blob the registry does not have.
    fs::remove_file(&file).unwrap();
    let (t, s) = new_store();
    let err = rt
        .block_on(registry::pull(&s, &format!("{}/t/missing:1", reg.addr), &PullOptions::default()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("has no blob {top_blob}")), "{msg}");
    nothing_half_stored(&t, &s, &[]);
    fs::write(&file, &good).unwrap();

    // 3. An unknown tag.
    let (t, s) = new_store();
    let err = rt
        .block_on(registry::pull(&s, &format!("{}/t/fine:nope", reg.addr), &PullOptions::default()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest for {}/t/fine:nope not found: manifest unknown", reg.addr)
    );
    nothing_half_stored(&t, &s, &[]);

    // 4. An absurdly large manifest, from a hostile server.
    let (addr, h) = manifest_server(None);
    let err = rt
        .block_on(registry::pull(&s, &format!("{addr}/evil:1"), &PullOptions::default()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("larger than 4194304 bytes"), "{msg}");
    nothing_half_stored(&t, &s, &[]);
    let _ = h.join();

    // 5. A schema 1 manifest (from a server standing in for an old registry): refused.
    let (addr, h) = manifest_server(Some(
        r#"{"schemaVersion":1,"name":"old/app","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}"#,
    ));
    let err = rt
        .block_on(registry::pull(&s, &format!("{addr}/old/app:1"), &PullOptions::default()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{addr}/old/app:1 is a Docker image format v1 (schema 1) image, which berth does not pull: push it again with a current client to convert it to schema 2 or OCI"
        )
    );
    nothing_half_stored(&t, &s, &[]);
    let _ = h.join();

    // 6. An invalid reference and a bad platform are refused before any request.
    assert!(matches!(
        rt.block_on(registry::pull(&s, "Bad:Ref:x", &PullOptions::default())),
        Err(ImageError::InvalidReference { .. })
    ));
    assert!(Platform::parse("linux/").is_err());

    // And after all that, the intact image pulls.
    rt.block_on(registry::pull(&s, &format!("{}/t/fine:1", reg.addr), &PullOptions::default()))
        .unwrap();
    assert_eq!(
        read_in_image(&s, &format!("{}/t/fine:1", reg.addr), "top").map(|c| c.len()),
        Some(100_000)
    );
    let _ = top_chain_free;
}

/// Pseudo-random, incompressible bytes (xorshift), so a layer stays big on the wire.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tar with one file of `len` noise bytes.
fn big_layer(name: &str, len: usize, seed: u64) -> Vec<u8> {
    common::build_tar(&[(name, noise(len, seed))])
}

/// A progress sink that SIGKILLs `pid` when bytes of layer `short` start to arrive.
fn kill_when_started(pid: u32, short: String) -> registry::ProgressSink {
    let done = std::sync::atomic::AtomicBool::new(false);
    Arc::new(move |p| {
        if let Progress::Bytes { id, .. } = &p
            && *id == short
            && !done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // SAFETY: kill has no memory-safety preconditions; pid is the test's own child.
            let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            assert_eq!(rc, 0);
        }
    })
}

#[test]
fn a_pull_cut_off_mid_layer_stores_no_image_and_the_next_pull_reuses_what_was_verified() {
    if !require_root() {
        return;
    }
    let mut reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir().unwrap();
    let small = layer(&[E::File("small", "s", 0o644)]);
    let big = big_layer("big", 48 << 20, 7);
    let l = Layout::new(work.path().join("img"));
    let d = l.image("amd64", &[(&small, Comp::Gzip), (&big, Comp::Plain)]);
    l.index(vec![d], "x", false);
    let r = format!("{}/t/cut:1", reg.addr);
    // --preserve-digests: skopeo would otherwise gzip the plain layer.
    skopeo(&[
        "--preserve-digests",
        &format!("oci:{}:x", l.dir.display()),
        &format!("docker://{r}"),
    ]);
    let small2 = layer(&[E::File("small2", "s2", 0o644)]);
    let big2 = big_layer("big2", 48 << 20, 11);
    let l2 = Layout::new(work.path().join("img2"));
    let d2 = l2.image("amd64", &[(&small2, Comp::Gzip), (&big2, Comp::Plain)]);
    l2.index(vec![d2], "x", false);
    let r2 = format!("{}/t/cut2:1", reg.addr);
    skopeo(&[
        "--preserve-digests",
        &format!("oci:{}:x", l2.dir.display()),
        &format!("docker://{r2}"),
    ]);

    let rt = rt();
    let (t, s) = new_store();
    // One layer at a time: the small one is complete when the big one is cut.
    let opts = |sink| PullOptions { max_concurrent: 1, progress: Some(sink), ..Default::default() };
    let big_short = sha256(&big)[7..19].to_string();
    let err = rt
        .block_on(registry::pull(&s, &r, &opts(kill_when_started(reg.pid().unwrap(), big_short))))
        .unwrap_err();
    assert!(err.to_string().contains(&format!("cannot reach the registry {}", reg.addr)), "{err}");
    assert!(s.image_ids().unwrap().is_empty());
    assert!(tmp_entries(&t.path()).is_empty(), "{:?}", tmp_entries(&t.path()));
    assert_eq!(layer_dirs(&t.path()).len(), 1, "the verified small layer is kept");

    // The registry is back: the pull finishes, re-using the small layer.
    reg.restart();
    let (seen, sink) = recorder();
    rt.block_on(registry::pull(&s, &r, &opts(sink))).unwrap();
    let ev = seen.lock().unwrap().clone();
    assert!(ev.contains(&Progress::Exists(sha256(&gzip(&small))[7..19].to_string())), "{ev:?}");
    assert_eq!(read_in_image(&s, &r, "small").as_deref(), Some("s"));
    assert_eq!(layer_dirs(&t.path()).len(), 2);

    // Cut another pull; prune removes what it left (the orphan small2), not the image's layers.
    let big2_short = sha256(&big2)[7..19].to_string();
    rt.block_on(registry::pull(&s, &r2, &opts(kill_when_started(reg.pid().unwrap(), big2_short))))
        .unwrap_err();
    assert_eq!(layer_dirs(&t.path()).len(), 3);
    let report = s.prune(false, &|_| false).unwrap();
    assert!(report.space_reclaimed >= 2, "{report:?}");
    assert_eq!(layer_dirs(&t.path()).len(), 2);
    let locks: Vec<_> = fs::read_dir(t.path().join("images/locks")).unwrap().flatten().collect();
    assert_eq!(locks.len(), 1, "only the pull lock file stays: {locks:?}");
    assert_eq!(read_in_image(&s, &r, "small").as_deref(), Some("s"));
}

#[test]
fn concurrent_pulls_of_one_image_fetch_and_store_each_layer_once() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir().unwrap();
    let big = big_layer("big", 24 << 20, 3);
    let l = Layout::new(work.path().join("img"));
    let d = l.image("amd64", &[(&busybox_tar(), Comp::Gzip), (&big, Comp::Gzip)]);
    l.index(vec![d], "x", false);
    let r = format!("{}/t/both:1", reg.addr);
    skopeo(&[&format!("oci:{}:x", l.dir.display()), &format!("docker://{r}")]);
    let t = TempRoot::new().unwrap();
    // Two stores on one root, each with its own runtime and lock files, as two processes.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (root, r) = (t.path(), r.clone());
            std::thread::spawn(move || {
                let s = ImageStore::open(&StateRoot::open(&root).unwrap()).unwrap();
                rt().block_on(registry::pull(&s, &r, &PullOptions::default())).map(|p| p.id)
            })
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(layer_dirs(&t.path()).len(), 2);
    let big_blob = sha256(&gzip(&big));
    assert_eq!(reg.count_requests("GET", &format!("/blobs/{big_blob}")), 1, "{}", reg.log());
    let s = ImageStore::open(&StateRoot::open(t.path()).unwrap()).unwrap();
    assert_eq!(s.image_ids().unwrap(), vec![ids[0].clone()]);
}

/// One docker config directory for this test binary (the override is process-wide).
fn docker_config() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| tempfile::tempdir().unwrap()).path().to_path_buf();
    registry::set_docker_config_dir(Some(d.clone()));
    d
}

fn auth_flow(kind: &str) {
    let (user, password) = ("tester".to_string(), "s3cret-pw".to_string());
    let auth = if kind == "basic" {
        RegistryAuth::Basic { user: user.clone(), password: password.clone() }
    } else {
        RegistryAuth::Token { user: user.clone(), password: password.clone() }
    };
    let reg = Registry::start(auth);
    let cfg = docker_config();
    let rt = rt();
    let (_ta, a) = new_store();
    a.import(&busybox_tar()[..], Some("bb:local"), &[]).unwrap();
    let r = format!("{}/private/bb:1", reg.addr);
    a.tag("bb:local", &r).unwrap();
    // Without login: 401, a sentence saying to log in.
    let err = rt.block_on(registry::push(&a, &r, &PushOptions::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "push access denied for {0}/private/bb: the repository does not exist or needs credentials (berth login {0})",
            reg.addr
        )
    );
    // A wrong password: refused, nothing written.
    let wrong = Credentials { username: user.clone(), password: "nope".into() };
    let err = rt.block_on(registry::login(&reg.addr, wrong)).unwrap_err();
    assert!(err.to_string().contains("refused the credentials of \"tester\""), "{err}");
    let config_text = fs::read_to_string(cfg.join("config.json")).unwrap_or_default();
    assert!(!config_text.contains(&reg.addr), "{config_text}");
    // The right one: stored as docker does, then push and pull work.
    let good = Credentials { username: user.clone(), password: password.clone() };
    assert_eq!(rt.block_on(registry::login(&reg.addr, good)).unwrap(), reg.addr);
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(cfg.join("config.json")).unwrap()).unwrap();
    use base64::Engine as _;
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    assert_eq!(v["auths"][&reg.addr]["auth"], want);
    rt.block_on(registry::push(&a, &r, &PushOptions::default())).unwrap();
    let (_tb, b) = new_store();
    rt.block_on(registry::pull(&b, &r, &PullOptions::default())).unwrap();
    // Logged out: denied again.
    assert_eq!(registry::logout(&reg.addr).unwrap(), (reg.addr.clone(), true));
    assert_eq!(registry::logout(&reg.addr).unwrap(), (reg.addr.clone(), false));
    let (_tc, c) = new_store();
    let err = rt.block_on(registry::pull(&c, &r, &PullOptions::default())).unwrap_err();
    assert!(err.to_string().starts_with("pull access denied"), "{err}");
    assert!(c.image_ids().unwrap().is_empty());
}

#[test]
fn htpasswd_basic_auth_login_push_pull_logout() {
    if !require_root() {
        return;
    }
    auth_flow("basic");
}

#[test]
fn token_server_bearer_flow_login_push_pull_logout() {
    if !require_root() {
        return;
    }
    auth_flow("token");
}

/// A reverse proxy in front of the registry that misbehaves on purpose: the first GET of every
/// manifest answers 429 (Retry-After: 1), the first GET of every blob 503, and the second GET
/// of blob `cut` sends half the answer and closes the connection (a reset mid-layer). Every
/// other request is passed through. Returns its address and the number of faults it made.
fn flaky_front(upstream: String, cut: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use berth_testsupport::registry::{FrontAction, front};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let faults = Arc::new(AtomicUsize::new(0));
    let seen: Mutex<std::collections::HashMap<String, usize>> = Mutex::default();
    let f2 = faults.clone();
    let addr = front(upstream, move |method, path| {
        let n = {
            let mut s = seen.lock().unwrap();
            let n = s.entry(format!("{method} {path}")).or_insert(0);
            *n += 1;
            *n
        };
        let action = if method == "GET" && path.contains("/manifests/") && n == 1 {
            FrontAction::Reply(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        } else if method == "GET" && path.contains("/blobs/") && n == 1 {
            FrontAction::Reply(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        } else if method == "GET" && path.ends_with(&format!("/blobs/{cut}")) && n == 2 {
            FrontAction::ForwardHalf
        } else {
            return FrontAction::Forward;
        };
        f2.fetch_add(1, Ordering::SeqCst);
        action
    });
    (addr, faults)
}

#[test]
fn retries_429_and_503_and_a_connection_cut_mid_layer() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir().unwrap();
    let big = big_layer("big", 4 << 20, 5);
    let l = Layout::new(work.path().join("img"));
    let d = l.image("amd64", &[(&busybox_tar(), Comp::Gzip), (&big, Comp::Gzip)]);
    l.index(vec![d], "x", false);
    skopeo(&[&format!("oci:{}:x", l.dir.display()), &format!("docker://{}/t/flaky:1", reg.addr)]);
    let big_blob = sha256(&gzip(&big));
    let (front, faults) = flaky_front(reg.addr.clone(), big_blob);
    let (t, s) = new_store();
    let r = format!("{front}/t/flaky:1");
    rt().block_on(registry::pull(&s, &r, &PullOptions::default())).unwrap();
    // 429 on the manifest, 503 on the config and on both layers, and the cut.
    assert_eq!(faults.load(std::sync::atomic::Ordering::SeqCst), 5);
    let top = s.resolve(&r).unwrap().layers[0].join("big");
    assert_eq!(fs::metadata(top).unwrap().len(), 4 << 20);
    assert!(tmp_entries(&t.path()).is_empty());
}

#[test]
fn ten_images_sharing_a_base_fetch_only_their_unique_bytes() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir().unwrap();
    let base = busybox_tar();
    let l = Layout::new(work.path().join("img"));
    let mut unique: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut refs = Vec::new();
    for i in 0..10 {
        let own = layer(&[E::File("own", &format!("service {i}"), 0o644)]);
        let d = l.image("amd64", &[(&base, Comp::Gzip), (&own, Comp::Gzip)]);
        l.index(vec![d.clone()], "x", false);
        let r = format!("{}/ten/svc{i}:1", reg.addr);
        skopeo(&[
            "--preserve-digests",
            &format!("oci:{}:x", l.dir.display()),
            &format!("docker://{r}"),
        ]);
        // The blobs this image names: its config and its two layers.
        let m: serde_json::Value = serde_json::from_slice(
            &fs::read(l.dir.join("blobs/sha256").join(&d["digest"].as_str().unwrap()[7..]))
                .unwrap(),
        )
        .unwrap();
        unique.insert((
            m["config"]["digest"].as_str().unwrap().into(),
            m["config"]["size"].as_u64().unwrap(),
        ));
        for x in m["layers"].as_array().unwrap() {
            unique.insert((x["digest"].as_str().unwrap().into(), x["size"].as_u64().unwrap()));
        }
        refs.push(r);
    }
    let (t, s) = new_store();
    let rt = rt();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for r in refs.clone() {
            let s = s.clone();
            set.spawn(async move { registry::pull(&s, &r, &PullOptions::default()).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
    });
    assert_eq!(unique.len(), 21, "one base, ten own layers, ten configs");
    let unique_bytes: u64 = unique.iter().map(|(_, n)| n).sum();
    assert_eq!(reg.bytes_sent("/blobs/"), unique_bytes);
    assert_eq!(layer_dirs(&t.path()).len(), 11);
    assert_eq!(s.image_ids().unwrap().len(), 10);
}
