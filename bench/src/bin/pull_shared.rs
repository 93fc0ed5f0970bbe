//! Bytes a compose pull fetches when ten services' images share one base layer: `berth pull`
//! of a 10-service compose file, from a loopback registry (Debian's docker-registry, started
//! here; the images pushed by skopeo) into an empty state root. Prints the blob bytes the
//! registry sent (its access log's `http.response.written` of blob GETs) beside the unique blob
//! bytes of the ten images (one base layer, ten own layers, ten configs) and beside what ten
//! separate copies would have cost.
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench && target/release/pull_shared`
//! (drives the `berth` next to this bench, or `$BERTH_BIN`; needs docker-registry and skopeo).

use std::path::PathBuf;

use berth_bench::layout::{self, Layout};
use berth_testsupport::registry::{Registry, RegistryAuth};

/// Services in the compose file.
const SERVICES: u64 = 10;

fn berth_bin() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("BERTH_BIN") {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(me.with_file_name("berth"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reg = Registry::start(RegistryAuth::None);
    let work = tempfile::tempdir()?;
    let mut layout = Layout::create(&work.path().join("layout"))?;
    let base_files: Vec<(String, Vec<u8>)> =
        (0..8).map(|f| (format!("base/file{f}"), layout::content(5 << 19, f + 1))).collect();
    let base = layout.layer(&base_files)?;
    let mut unique = base.size;
    let mut separate = 0;
    for i in 0..SERVICES {
        let own = layout.layer(&[(format!("svc/{i}"), layout::content(256 << 10, 1000 + i))])?;
        let config = layout.image(&[&base, &own], &format!("s{i}"))?;
        unique += own.size + config;
        separate += base.size + own.size + config;
        layout.push(&format!("s{i}"), &format!("{}/shared/s{i}:1", reg.addr))?;
    }
    let before = reg.bytes_sent("/blobs/");
    let project = work.path().join("project");
    std::fs::create_dir(&project)?;
    let services: String = (0..SERVICES)
        .map(|i| {
            format!("  s{i}:\n    image: {}/shared/s{i}:1\n    command: [\"true\"]\n", reg.addr)
        })
        .collect();
    std::fs::write(project.join("compose.yaml"), format!("services:\n{services}"))?;
    let root = work.path().join("root");
    let out = std::process::Command::new(berth_bin()?)
        .arg("--root")
        .arg(&root)
        .args(["pull", "-q"])
        .current_dir(&project)
        .output()?;
    if !out.status.success() {
        return Err(format!("berth pull: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    let layers = std::fs::read_dir(root.join("images/layers"))?.count();
    let fetched = (reg.bytes_sent("/blobs/") - before) as usize;
    println!(
        "berth pull of {SERVICES} services sharing one {:.1} MB base layer: {fetched} blob bytes fetched from the registry, unique blob bytes {unique} ({:.3}x of them); ten separate copies would be {separate} bytes; {layers} layers stored",
        base.size as f64 / 1e6,
        fetched as f64 / unique as f64
    );
    Ok(())
}
