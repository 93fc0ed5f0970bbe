//! Pull of a ~100 MB, 5-layer image from a loopback registry (Debian's docker-registry, started
//! here) into an empty state root, beside `skopeo copy` of the same image to a directory (which
//! only writes the blobs), alternating, median of RUNS (default 5). With `--docker-host URL` (or
//! `$BENCH_DOCKER_HOST`; `bench/docker-side registry_pull` starts a private dockerd) `docker pull`
//! of the same image into that daemon runs in the same loop, its image removed after each run.
//!
//! `cargo run --release -p berth-bench --bin registry_pull [-- --docker-host URL]` (needs
//! docker-registry, skopeo)

use std::process::Command;
use std::time::Instant;

use berth_bench::layout::{self, Layout};
use berth_image::ImageStore;
use berth_image::registry::{self, PullOptions};
use berth_store::StateRoot;
use berth_testsupport::registry::{Registry, RegistryAuth};

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
    let mut layout = Layout::create(&work.path().join("layout"))?;
    let mut layers = Vec::new();
    for i in 0..5u64 {
        let files: Vec<(String, Vec<u8>)> = (0..8)
            .map(|f| (format!("layer{i}/file{f}"), layout::content(5 << 20, i * 100 + f + 1)))
            .collect();
        layers.push(layout.layer(&files)?);
    }
    let wire: usize = layers.iter().map(|l| l.size).sum();
    layout.image(&layers.iter().collect::<Vec<_>>(), "b")?;
    let r = format!("{}/bench/pull:1", reg.addr);
    layout.push("b", &r)?;
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
