//! Fuzzes the loader: YAML parsing, `.env` parsing, interpolation and the whole pipeline on
//! stdin content. Any panic, overflow or hang is a bug; errors are fine.
#![no_main]

use std::sync::Arc;

use compose_spec::loader::{LoadOptions, load_tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = compose_spec::yaml::parse(text, Arc::from("fuzz.yaml"));
    let lookup = |k: &str| if k == "SET" { Some("v".to_string()) } else { None };
    let _ = compose_spec::dotenv::parse(text, ".env", &lookup);
    let mut warnings = Vec::new();
    let _ = compose_spec::interpolate::substitute(text, &lookup, &mut warnings);
    let mut environment = indexmap::IndexMap::new();
    environment.insert("SET".to_string(), "v".to_string());
    let opts = LoadOptions {
        working_dir: "/nonexistent-berth-fuzz".into(),
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        project_name: Some("fuzz".into()),
        environment,
        ..Default::default()
    };
    let _ = load_tree(&opts);
});
