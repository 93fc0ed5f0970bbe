//! Helpers shared by the loader tests: temporary projects and loading shortcuts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use compose_spec::LoadError;
use compose_spec::loader::{LoadOptions, LoadedTree, load_tree};
use indexmap::IndexMap;
use serde_json::Value as J;

/// A temporary directory holding `files` (paths relative to it; parents created).
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = match tempfile::Builder::new().prefix("berth-loader").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    for (name, content) in files {
        let p = dir.path().join(name);
        if let Some(parent) = p.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            panic!("mkdir {}: {e}", parent.display());
        }
        if let Err(e) = std::fs::write(&p, content) {
            panic!("write {}: {e}", p.display());
        }
    }
    dir
}

/// Options for loading from `dir` with the given process environment.
pub fn opts(dir: &Path, env: &[(&str, &str)]) -> LoadOptions {
    let environment: IndexMap<String, String> =
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    LoadOptions { working_dir: dir.to_path_buf(), environment, ..Default::default() }
}

/// Loads or panics with the error.
pub fn load_ok(o: &LoadOptions) -> LoadedTree {
    match load_tree(o) {
        Ok(t) => t,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Loads and expects an error.
pub fn load_err(o: &LoadOptions) -> LoadError {
    match load_tree(o) {
        Ok(t) => panic!("expected an error, got {}", t.root.to_json()),
        Err(e) => e,
    }
}

/// The merged tree as JSON.
pub fn json(t: &LoadedTree) -> J {
    t.root.to_json()
}

/// `services.<name>` of a loaded tree as JSON.
pub fn service(t: &LoadedTree, name: &str) -> J {
    json(t)["services"][name].clone()
}

/// `p` as a string (for expected absolute paths).
pub fn s(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}
