//! `berth config` through the real binary: corpus output equals the library's, exit codes, flags.

use std::path::{Path, PathBuf};

use compose_spec::emit::to_yaml;
use compose_spec::load_project;
use compose_spec::loader::LoadOptions;

use crate::support;

/// `shared/conformance`, found by walking up from the crate (worktrees and CI clones differ).
fn conformance_dir() -> PathBuf {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared").join("conformance");
        if c.is_dir() {
            // The binary runs with this as its cwd, which the kernel reports resolved: compare
            // against the resolved path too (shared/ may be a symlink).
            return c.canonicalize().unwrap_or(c);
        }
        dir = d.parent();
    }
    panic!("shared/conformance not found above {}", env!("CARGO_MANIFEST_DIR"));
}

fn opts(dir: &Path) -> LoadOptions {
    let environment = [("HOME".to_string(), "/home/tester".to_string())].into_iter().collect();
    LoadOptions { working_dir: dir.to_path_buf(), environment, ..Default::default() }
}

/// The `berth config` binary prints the same YAML for a couple of samples.
#[test]
fn corpus_through_cli_binary() {
    let bin = support::berth_bin();
    for name in ["flask-redis", "wordpress-mysql"] {
        let dir = conformance_dir().join("awesome-compose").join(name);
        let out = std::process::Command::new(bin)
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

/// `berth config` exit codes: 14 without a file, 15 for an invalid one, nothing on stdout.
#[test]
fn cli_exit_codes() {
    let bin = support::berth_bin();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = |dir: &Path| {
        std::process::Command::new(bin)
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

/// compose's rules beyond the schema stop every command that loads the project (exit 15, one
/// sentence naming file, line and key) before anything is made in the state root.
#[test]
fn rule_violations_stop_every_command() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path().join("root");
    std::fs::write(
        tmp.path().join("compose.yaml"),
        "services:\n  web:\n    image: bb\n    network_mode: none\n    networks: [default]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for args in
        [&["config"][..], &["up", "-d"], &["down"], &["ps"], &["run", "--rm", "web", "true"]]
    {
        let out = std::process::Command::new(support::berth_bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .current_dir(tmp.path())
            .env_remove("COMPOSE_FILE")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(15), "{args:?}: {err}");
        assert!(
            err.trim_end().ends_with(
                "compose.yaml:4:5: services.web.network_mode: \"network_mode\" and \"networks\" are mutually exclusive"
            ),
            "{args:?}: {err}"
        );
    }
    // Opening the state root makes its skeleton; no container or network record may exist.
    for dir in ["containers", "networks"] {
        let made: Vec<_> = std::fs::read_dir(root.join(dir))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let records: Vec<_> = made
            .iter()
            .filter(|n| {
                let n = n.to_string_lossy();
                dir == "containers" && !n.starts_with('.') && n != "lock"
                    || n.ends_with(".json")
                    || n.ends_with(".live")
            })
            .collect();
        assert!(records.is_empty(), "{dir}: {made:?}");
    }
}

/// `--no-interpolate` prints the merged model untyped, variables kept (as compose does).
#[test]
fn cli_no_interpolate_keeps_variables() {
    let bin = support::berth_bin();
    let dir = conformance_dir().join("awesome-compose/plex");
    let out = std::process::Command::new(bin)
        .args(["config", "--no-interpolate"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("name: plex\nservices:\n"), "{text}");
    assert!(text.contains("      - ${PLEX_MEDIA_PATH}:/media/\n"), "{text}");
}

/// Every stack in `samples/` loads and validates through `berth config`.
#[test]
fn samples_load_through_config() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut count = 0;
    for entry in std::fs::read_dir(&samples).unwrap_or_else(|e| panic!("{e}")).flatten() {
        let file = entry.path().join("compose.yaml");
        if !file.is_file() {
            continue;
        }
        let out = std::process::Command::new(support::berth_bin())
            .arg("-f")
            .arg(&file)
            .args(["config", "-q"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        count += 1;
    }
    println!("loaded {count} samples");
    assert!(count >= 6, "only {count} samples found");
}
