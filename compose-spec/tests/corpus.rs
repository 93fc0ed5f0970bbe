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

/// The `berth config` binary prints the same YAML for a couple of samples.
#[test]
fn corpus_through_cli_binary() {
    let Some(bin) = berth_bin() else {
        println!("berth binary not built; skipping");
        return;
    };
    for name in ["flask-redis", "wordpress-mysql"] {
        let dir = conformance_dir().join("awesome-compose").join(name);
        let out = std::process::Command::new(&bin)
            .arg("config")
            .current_dir(&dir)
            .env("HOME", "/home/tester")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let (p, _) = load_project(&opts(&dir)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), to_yaml(&p), "{name}");
    }
}

/// The workspace's `berth` binary, if it has been built.
fn berth_bin() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    ["debug", "release"].iter().map(|p| target.join(p).join("berth")).find(|p| p.is_file())
}

/// `berth config` exit codes: 14 without a file, 15 for an invalid one, nothing on stdout.
#[test]
fn cli_exit_codes() {
    let Some(bin) = berth_bin() else {
        println!("berth binary not built; skipping");
        return;
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |dir: &Path| {
        std::process::Command::new(&bin)
            .arg("config")
            .current_dir(dir)
            .env_remove("COMPOSE_FILE")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run(tmp.path());
    assert_eq!(out.status.code(), Some(14), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    std::fs::write(tmp.path().join("compose.yaml"), "services:\n  web:\n    imgae: nginx\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(tmp.path());
    assert_eq!(out.status.code(), Some(15));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim_end().ends_with(
            "compose.yaml:3:5: services.web.imgae: unknown key \"imgae\" (did you mean \"image\"?)"
        ),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// `--no-interpolate` prints the merged model untyped, variables kept (as compose does).
#[test]
fn cli_no_interpolate_keeps_variables() {
    let Some(bin) = berth_bin() else {
        println!("berth binary not built; skipping");
        return;
    };
    let dir = conformance_dir().join("awesome-compose/plex");
    let out = std::process::Command::new(&bin)
        .args(["config", "--no-interpolate"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("name: plex\nservices:\n"), "{text}");
    assert!(text.contains("      - ${PLEX_MEDIA_PATH}:/media/\n"), "{text}");
}
