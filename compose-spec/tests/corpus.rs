//! Every awesome-compose sample loads into a Project and prints as YAML and JSON.

use std::path::{Path, PathBuf};

use compose_spec::emit::{to_json, to_yaml};
use compose_spec::load_project;
use compose_spec::loader::LoadOptions;

/// `shared/conformance`, found by walking up from the crate (worktrees and CI clones differ).
fn conformance_dir() -> PathBuf {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared").join("conformance");
        if c.is_dir() {
            return c;
        }
        dir = d.parent();
    }
    panic!("shared/conformance not found above {}", env!("CARGO_MANIFEST_DIR"));
}

fn samples() -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("awesome-compose"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    s.sort();
    s
}

fn opts(dir: &Path) -> LoadOptions {
    let environment = [("HOME".to_string(), "/home/tester".to_string())].into_iter().collect();
    LoadOptions { working_dir: dir.to_path_buf(), environment, ..Default::default() }
}

#[test]
fn corpus_loads_and_prints() {
    let all = samples();
    assert_eq!(all.len(), 39);
    let mut ok = 0;
    let mut failures = Vec::new();
    for dir in &all {
        match load_project(&opts(dir)) {
            Ok((p, _warnings)) => {
                let y = to_yaml(&p);
                let j = to_json(&p);
                assert!(y.starts_with("name: "), "{}: {y}", dir.display());
                assert!(serde_json::from_str::<serde_json::Value>(&j).is_ok(), "{}", dir.display());
                assert!(!p.services.is_empty());
                ok += 1;
            }
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    println!("loaded {ok} of {}", all.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn corpus_sample_shapes() {
    let dir = conformance_dir().join("awesome-compose/nginx-golang-postgres");
    let (p, _) = load_project(&opts(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let y = to_yaml(&p);
    println!("{y}");
    assert!(y.contains("    networks:\n      default: null\n"), "{y}");
    assert!(y.contains("networks:\n  default:\n    name: nginx-golang-postgres_default\n"), "{y}");
    assert!(y.contains("        condition: service_healthy\n        required: true\n"), "{y}");
}
