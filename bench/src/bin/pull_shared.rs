//! Bytes a compose pull fetches when ten services' images share one base layer: `berth pull`
//! of a 10-service compose file, from a loopback registry (Debian's docker-registry, started
//! here; the images pushed by skopeo) through a byte-counting TCP relay, into an empty state
//! root. Prints the bytes the registry sent (HTTP headers included) beside the unique bytes of
//! the ten images (one base layer, ten own layers, ten configs and manifests) and beside what
//! ten separate copies would have cost.
//!
//! Run as root: `cargo build --release -p berth-cli -p berth-bench && target/release/pull_shared`
//! (drives the `berth` next to this bench, or `$BERTH_BIN`; needs docker-registry and skopeo).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Copies `from` into `to` until either side ends, adding what passed to `count`.
fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if let Some(c) = &count {
                    c.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A relay on a free loopback port to `upstream`, counting the bytes sent back to clients.
fn counting_relay(upstream: String) -> std::io::Result<(String, Arc<AtomicU64>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else { continue };
            let (Ok(c_in), Ok(s_in)) = (client.try_clone(), server.try_clone()) else { continue };
            std::thread::spawn(move || pump(c_in, server, None));
            let c = c.clone();
            std::thread::spawn(move || pump(s_in, client, Some(c)));
        }
    });
    Ok((addr, count))
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
        let meta = layout.image(&[&base, &own], &format!("s{i}"))?;
        unique += own.size + meta;
        separate += base.size + own.size + meta;
        layout.push(&format!("s{i}"), &format!("{}/shared/s{i}:1", reg.addr))?;
    }
    let (relay, fetched) = counting_relay(reg.addr.clone())?;
    let project = work.path().join("project");
    std::fs::create_dir(&project)?;
    let services: String = (0..SERVICES)
        .map(|i| format!("  s{i}:\n    image: {relay}/shared/s{i}:1\n    command: [\"true\"]\n"))
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
    let fetched = fetched.load(Ordering::Relaxed) as usize;
    println!(
        "berth pull of {SERVICES} services sharing one {:.1} MB base layer: {fetched} bytes fetched from the registry (HTTP headers included), unique image bytes {unique} ({:.3}x of them); ten separate copies would be {separate} bytes; {layers} layers stored",
        base.size as f64 / 1e6,
        fetched as f64 / unique as f64
    );
    Ok(())
}
