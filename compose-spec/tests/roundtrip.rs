//! Loading the YAML (and JSON) that `config` prints gives back an equal Project, for every
//! awesome-compose sample.

use std::path::{Path, PathBuf};

use compose_spec::emit::{to_json, to_yaml};
use compose_spec::load_project;
use compose_spec::loader::LoadOptions;
use compose_spec::model::{Extensions, Project};

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

fn env() -> indexmap::IndexMap<String, String> {
    [("HOME".to_string(), "/home/tester".to_string())].into_iter().collect()
}

/// Loads `text` as the only compose file of a project rooted at `project_dir`.
fn reload(text: &str, project_dir: &Path, file_name: &str) -> Project {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = tmp.path().join(file_name);
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let opts = LoadOptions {
        working_dir: tmp.path().to_path_buf(),
        files: vec![file],
        project_directory: Some(project_dir.to_path_buf()),
        environment: env(),
        // The printed values are final: `$` in them is literal.
        interpolate: false,
        ..Default::default()
    };
    match load_project(&opts) {
        Ok((p, _)) => comparable(p),
        Err(e) => panic!("reloading failed: {e}\n{text}"),
    }
}

fn comparable(mut p: Project) -> Project {
    p.config_files.clear();
    p
}

/// compose's JSON leaves out `x-*` keys below the top level.
fn without_nested_extensions(mut p: Project) -> Project {
    for s in p.services.values_mut() {
        s.extensions = Extensions::default();
    }
    for n in p.networks.values_mut() {
        n.extensions = Extensions::default();
    }
    for v in p.volumes.values_mut() {
        v.extensions = Extensions::default();
    }
    p
}

#[test]
fn yaml_and_json_round_trip() {
    let mut samples: Vec<PathBuf> = std::fs::read_dir(conformance_dir().join("awesome-compose"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    samples.sort();
    assert_eq!(samples.len(), 39);
    for dir in &samples {
        let opts =
            LoadOptions { working_dir: dir.clone(), environment: env(), ..Default::default() };
        let p = match load_project(&opts) {
            Ok((p, _)) => comparable(p),
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let yaml = to_yaml(&p);
        let again = reload(&yaml, &p.working_dir, "compose.yaml");
        assert_eq!(again, p, "{}: YAML round trip differs", dir.display());
        assert_eq!(to_yaml(&again), yaml, "{}: YAML not stable", dir.display());

        let json = to_json(&p);
        let again = reload(&json, &p.working_dir, "compose.json");
        assert_eq!(
            without_nested_extensions(again.clone()),
            without_nested_extensions(p.clone()),
            "{}: JSON round trip differs",
            dir.display()
        );
        assert_eq!(to_json(&again), json, "{}: JSON not stable", dir.display());
    }
    println!("round-tripped {} samples", samples.len());
}
