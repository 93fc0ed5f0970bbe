//! Every awesome-compose sample loads with `load_tree`, including the ones using `.env`.

use std::path::{Path, PathBuf};

use compose_spec::loader::{LoadOptions, load_tree};
use indexmap::IndexMap;

/// `shared/conformance`, found by walking up from the crate (worktrees and CI clones differ).
fn conformance_dir() -> Option<PathBuf> {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared").join("conformance");
        if c.is_dir() {
            return Some(c);
        }
        dir = d.parent();
    }
    None
}

#[test]
fn every_awesome_compose_sample_loads() {
    let Some(dir) = conformance_dir() else {
        panic!("shared/conformance not found above {}", env!("CARGO_MANIFEST_DIR"));
    };
    let mut samples: Vec<PathBuf> = std::fs::read_dir(dir.join("awesome-compose"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    samples.sort();
    assert_eq!(samples.len(), 39, "expected 39 samples");
    let mut failures = Vec::new();
    let mut with_env = 0;
    for s in &samples {
        let mut env = IndexMap::new();
        env.insert("HOME".to_string(), "/home/tester".to_string());
        let opts = LoadOptions { working_dir: s.clone(), environment: env, ..Default::default() };
        match load_tree(&opts) {
            Ok(t) => {
                assert!(t.root.get("services").is_some(), "{}: no services", s.display());
                if s.join(".env").is_file() {
                    with_env += 1;
                    assert!(
                        !t.warnings.iter().any(|w| w.contains("variable is not set")),
                        "{}: unexpected warnings {:?}",
                        s.display(),
                        t.warnings
                    );
                }
            }
            Err(e) => failures.push(format!("{}: {e}", s.display())),
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(with_env, 4);
}

#[test]
fn env_sample_values_are_interpolated() {
    let Some(dir) = conformance_dir() else { panic!("no conformance dir") };
    let opts = LoadOptions {
        working_dir: dir.join("awesome-compose/postgresql-pgadmin"),
        ..Default::default()
    };
    let t = match load_tree(&opts) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(t.project_name, "postgresql-pgadmin");
    assert_eq!(t.environment.get("POSTGRES_USER").map(String::as_str), Some("yourUser"));
    let text = format!("{:?}", t.root);
    assert!(text.contains("yourUser"), "POSTGRES_USER not substituted");
    assert!(!text.contains("${POSTGRES_USER}"));
}

#[test]
fn obsolete_version_is_left_for_the_model_stage() {
    let Some(dir) = conformance_dir() else { panic!("no conformance dir") };
    let opts =
        LoadOptions { working_dir: dir.join("awesome-compose/wireguard"), ..Default::default() };
    let t = match load_tree(&opts) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    // The model stage validates `version` and prints compose's "obsolete" warning.
    assert_eq!(t.root.get("version").map(|v| v.to_json()), Some(serde_json::json!("3.7")));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}
