//! Pull of a ~100 MB, 5-layer image from a loopback registry (Debian's docker-registry, started
//! here) into an empty state root, beside `skopeo copy` of the same image to a directory (which
//! only writes the blobs), alternating, median of RUNS (default 5). With `--docker-host URL` (or
//! `$BENCH_DOCKER_HOST`; `bench/docker-side registry_pull` starts a private dockerd) `docker pull`
//! of the same image into that daemon runs in the same loop, its image removed after each run.
//!
//! `cargo run --release -p berth-bench --bin registry_pull [-- --docker-host URL]` (needs
//! docker-registry, skopeo)

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use berth_image::ImageStore;
use berth_image::registry::{self, PullOptions};
use berth_store::StateRoot;
use berth_testsupport::registry::{Registry, RegistryAuth};

/// Semi-compressible bytes: runs of pseudo-random words and zeros (gzip to about half).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(2) {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(&[0u8; 8]);
        }
    }
    out.truncate(len);
    out
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let docker = berth_bench::Docker::from_args(&mut args)?;
    if let Some(a) = args.first() {
        return Err(
            format!("unknown argument {a:?} (usage: registry_pull [--docker-host URL])").into()
        );
    }
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let blob = |b: &[u8]| -> std::io::Result<String> {
        let d = sha256(b);
        std::fs::write(layout.join("blobs/sha256").join(&d[7..]), b)?;
        Ok(d)
    };
    let (mut descs, mut diff_ids, mut wire) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..5u64 {
        let mut t = tar::Builder::new(Vec::new());
        for f in 0..8 {
            let data = content(5 << 20, i * 100 + f + 1);
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, format!("layer{i}/file{f}"), &data[..])?;
        }
        let tar = t.into_inner()?;
        diff_ids.push(sha256(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar)?;
        let gz = gz.finish()?;
        wire += gz.len();
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": blob(&gz)?, "size": gz.len()}));
    }
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))?;
    let cd = blob(&config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs}))?;
    let md = blob(&manifest)?;
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "b"}}]}))?,
    )?;
    let r = format!("{}/bench/pull:1", reg.addr);
    let st = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:b", layout.display()))
        .arg(format!("docker://{r}"))
        .status()?;
    assert!(st.success(), "skopeo push failed");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mut berth, mut skopeo, mut dockers) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(dk) = &docker {
        // dockerd treats 127.0.0.0/8 registries as insecure (plain HTTP) by default.
        println!("docker side: dockerd {}", dk.server_version()?);
        let _ = dk.run(&["rmi", "-f", &r]);
    }
    for i in 0..runs {
        let root = StateRoot::open(work.path().join(format!("root{i}")))?;
        let store = ImageStore::open(&root)?;
        let start = Instant::now();
        rt.block_on(registry::pull(&store, &r, &PullOptions::default()))?;
        berth.push(start.elapsed().as_secs_f64() * 1000.0);
        let dir = work.path().join(format!("skopeo{i}"));
        let start = Instant::now();
        let st = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{r}"))
            .arg(format!("dir:{}", dir.display()))
            .status()?;
        skopeo.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(st.success(), "skopeo copy failed");
        std::fs::remove_dir_all(&dir)?;
        std::fs::remove_dir_all(root.path())?;
        if let Some(dk) = &docker {
            let start = Instant::now();
            dk.run(&["pull", "--quiet", &r])?;
            dockers.push(start.elapsed().as_secs_f64() * 1000.0);
            dk.run(&["rmi", &r])?;
        }
    }
    let (b, s) = (berth_bench::median(&mut berth), berth_bench::median(&mut skopeo));
    println!(
        "pull of 5 layers, {:.1} MB on the wire ({} MB unpacked) from a loopback registry, median of {runs}: berth {b:.0} ms (pull + verify + unpack), skopeo copy to dir {s:.0} ms: {:.2}x",
        wire as f64 / 1e6,
        5 * 8 * 5 * 1024 * 1024 / 1_000_000,
        b / s
    );
    if docker.is_some() {
        let d = berth_bench::median(&mut dockers);
        println!(
            "docker pull of the same image, median of {runs}: {d:.0} ms: docker / berth = {:.2}x",
            d / b
        );
    }
    Ok(())
}
