//! Loads every awesome-compose sample 100 times through the full `config` path (load, normalise,
//! validate, print YAML) and prints the median microseconds per file and overall.
//!
//! Run: `cargo run --release -p berth-bench --bin compose_load`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use compose_spec::emit::to_yaml;
use compose_spec::load_project;
use compose_spec::loader::LoadOptions;
use compose_spec::model::Map;

const ROUNDS: usize = 100;

/// `shared/conformance/awesome-compose`, found by walking up from the crate.
fn corpus() -> Option<PathBuf> {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared").join("conformance").join("awesome-compose");
        if c.is_dir() {
            return Some(c);
        }
        dir = d.parent();
    }
    None
}

fn main() -> ExitCode {
    let Some(root) = corpus() else {
        eprintln!("shared/conformance/awesome-compose not found");
        return ExitCode::from(1);
    };
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect(),
        Err(e) => {
            eprintln!("cannot read {}: {e}", root.display());
            return ExitCode::from(1);
        }
    };
    dirs.sort();
    let environment: Map<String> = std::env::vars().collect();
    let mut medians = Vec::new();
    for dir in &dirs {
        let opts = LoadOptions {
            working_dir: dir.clone(),
            environment: environment.clone(),
            ..Default::default()
        };
        let mut samples = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            match load_project(&opts) {
                Ok((p, _)) => {
                    std::hint::black_box(to_yaml(&p));
                }
                Err(e) => {
                    eprintln!("{}: {e}", dir.display());
                    return ExitCode::from(1);
                }
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let m = berth_bench::median(&mut samples);
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name:<32} {m:>8.1} µs");
        medians.push(m);
    }
    let overall = berth_bench::median(&mut medians);
    println!("files: {}  rounds: {ROUNDS}  median per file: {overall:.1} µs", dirs.len());
    ExitCode::SUCCESS
}
