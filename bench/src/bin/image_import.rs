//! Time to import the busybox root file system tar into a fresh image store (median of 10).
//!
//! `cargo run --release -p berth-bench --bin image_import`

use std::time::Instant;

use berth_image::ImageStore;
use berth_store::StateRoot;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = berth_testsupport::TempRoot::new()?;
    let tar = tmp.path().join("rootfs.tar");
    berth_testsupport::busybox_rootfs_tar(&tar)?;
    let size = std::fs::metadata(&tar)?.len();
    let mut samples = Vec::new();
    for i in 0..10 {
        // A fresh state root each time, so no layer is shared with an earlier run.
        let root = StateRoot::open(tmp.path().join(format!("root{i}")))?;
        let store = ImageStore::open(&root)?;
        let f = std::fs::File::open(&tar)?;
        let start = Instant::now();
        store.import(f, Some("busybox:bench"), &[])?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let median = berth_bench::median(&mut samples);
    println!(
        "image import of the busybox rootfs tar ({:.1} MB): median {median:.1} ms over 10 runs (min {:.1}, max {:.1})",
        size as f64 / 1e6,
        samples[0],
        samples[samples.len() - 1]
    );
    Ok(())
}
