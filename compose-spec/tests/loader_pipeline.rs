//! The whole pipeline on temporary projects: discovery, project name, `.env`, extends,
//! include, profiles, env_file and paths (examples from the compose docs plus our own).

mod common;

use common::{json, load_ok, opts, project, s, service};
use serde_json::json;

#[test]
fn discovery_prefers_compose_yaml_and_searches_upward() {
    let d = project(&[
        ("compose.yaml", "services:\n  a:\n    image: a\n"),
        ("docker-compose.yml", "services:\n  b:\n    image: b\n"),
        ("sub/deeper/README", "x"),
    ]);
    let t = load_ok(&opts(&d.path().join("sub/deeper"), &[]));
    assert_eq!(t.config_files, vec![d.path().join("compose.yaml")]);
    assert_eq!(t.project_dir, d.path());
    assert!(json(&t)["services"].get("a").is_some());
}

#[test]
fn discovery_docker_compose_yml_with_its_override() {
    let d = project(&[
        ("docker-compose.yml", "services:\n  b:\n    image: b\n"),
        ("docker-compose.override.yml", "services:\n  b:\n    image: c\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(t.config_files.len(), 2);
    assert_eq!(service(&t, "b"), json!({"image": "c"}));
}

#[test]
fn compose_file_variable_and_separator() {
    let d = project(&[
        ("one.yaml", "services:\n  a:\n    image: a\n"),
        ("two.yaml", "services:\n  a:\n    image: b\n"),
    ]);
    let t = load_ok(&opts(
        d.path(),
        &[("COMPOSE_FILE", "one.yaml;two.yaml"), ("COMPOSE_PATH_SEPARATOR", ";")],
    ));
    assert_eq!(service(&t, "a"), json!({"image": "b"}));
    // COMPOSE_FILE may also come from .env.
    let d = project(&[
        (".env", "COMPOSE_FILE=one.yaml\n"),
        ("one.yaml", "services:\n  a:\n    image: a\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(t.config_files, vec![d.path().join("one.yaml")]);
}

#[test]
fn stdin_file() {
    let d = project(&[]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["-".into()];
    o.stdin = Some("services:\n  a:\n    image: ${IMG:-x}\n".into());
    o.project_name = Some("demo".into());
    let t = load_ok(&o);
    assert_eq!(service(&t, "a"), json!({"image": "x"}));
    assert_eq!(t.config_files, vec![std::path::PathBuf::from("-")]);
}

#[test]
fn project_name_precedence() {
    let d = project(&[
        ("My Proj_/compose.yaml", "name: from-file\nservices: {}\n"),
        ("Other.Dir/compose.yaml", "services: {}\n"),
    ]);
    let dir = d.path().join("My Proj_");
    let t = load_ok(&opts(&dir, &[]));
    assert_eq!(t.project_name, "from-file");
    let t = load_ok(&opts(&dir, &[("COMPOSE_PROJECT_NAME", "from-env")]));
    assert_eq!(t.project_name, "from-env");
    let mut o = opts(&dir, &[("COMPOSE_PROJECT_NAME", "from-env")]);
    o.project_name = Some("from-flag".into());
    let t = load_ok(&o);
    assert_eq!(t.project_name, "from-flag");
    assert_eq!(json(&t)["name"], json!("from-flag"));
    let t = load_ok(&opts(&d.path().join("Other.Dir"), &[]));
    assert_eq!(t.project_name, "otherdir");
    assert_eq!(json(&t)["name"], json!("otherdir"));
}

#[test]
fn name_is_interpolated() {
    let d = project(&[("compose.yaml", "name: ${N:-dflt}\nservices: {}\n")]);
    assert_eq!(load_ok(&opts(d.path(), &[])).project_name, "dflt");
    assert_eq!(load_ok(&opts(d.path(), &[("N", "set")])).project_name, "set");
}

#[test]
fn dotenv_and_process_environment_precedence() {
    let d = project(&[
        (".env", "A=from-dotenv\nB=from-dotenv\n"),
        ("custom.env", "A=from-custom\n"),
        ("compose.yaml", "services:\n  s:\n    image: \"${A}-${B:-none}\"\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[("B", "from-process")]));
    assert_eq!(service(&t, "s")["image"], json!("from-dotenv-from-process"));
    assert_eq!(t.environment.get("B").map(String::as_str), Some("from-process"));
    let mut o = opts(d.path(), &[]);
    o.env_files = vec!["custom.env".into()];
    let t = load_ok(&o);
    assert_eq!(service(&t, "s")["image"], json!("from-custom-none"));
    let t = load_ok(&opts(d.path(), &[("COMPOSE_ENV_FILES", "custom.env,.env")]));
    assert_eq!(service(&t, "s")["image"], json!("from-dotenv-from-dotenv"));
}

#[test]
fn unset_variables_warn_and_interpolated_values_stay_strings() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  s:\n    image: x${MISSING}\n    scale: ${N}\n    ${KEY}: 1\n",
    )]);
    let t = load_ok(&opts(d.path(), &[("N", "3"), ("KEY", "x-dyn")]));
    assert_eq!(service(&t, "s"), json!({"image": "x", "scale": "3", "x-dyn": 1}));
    assert_eq!(t.warnings, ["The \"MISSING\" variable is not set. Defaulting to a blank string."]);
}

#[test]
fn no_interpolate_keeps_templates() {
    let d = project(&[("compose.yaml", "services:\n  s:\n    image: ${IMG:?x}\n")]);
    let mut o = opts(d.path(), &[]);
    o.interpolate = false;
    assert_eq!(service(&load_ok(&o), "s")["image"], json!("${IMG:?x}"));
}

#[test]
fn extends_from_another_file_docs_example() {
    let d = project(&[
        (
            "compose.yaml",
            "services:\n  web:\n    extends:\n      file: common-services.yml\n      service: webapp\n    environment:\n      - DEBUG=1\n    cpu_shares: 5\n  important_web:\n    extends: web\n    cpu_shares: 10\n",
        ),
        (
            "common-services.yml",
            "services:\n  webapp:\n    build: .\n    ports:\n      - \"8000:8000\"\n    volumes:\n      - \"/data\"\n",
        ),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    let root = s(d.path().to_path_buf());
    let want_web = json!({
        "build": root, "ports": ["8000:8000"], "volumes": ["/data"],
        "environment": {"DEBUG": "1"}, "cpu_shares": 5
    });
    assert_eq!(service(&t, "web"), want_web);
    let mut iw = want_web.clone();
    iw["cpu_shares"] = json!(10);
    assert_eq!(service(&t, "important_web"), iw);
    assert!(json(&t)["services"].get("webapp").is_none());
}

#[test]
fn extends_relative_paths_point_into_the_other_directory() {
    let d = project(&[
        (
            "main/compose.yaml",
            "services:\n  webapp:\n    image: example\n    extends:\n      file: ../commons/compose.yaml\n      service: base\n",
        ),
        (
            "commons/compose.yaml",
            "services:\n  base:\n    env_file: ./container.env\n    volumes: [\"./data:/data\"]\n    build:\n      context: ./ctx\n      dockerfile: Dockerfile.dev\n",
        ),
        ("commons/container.env", "FROM_FILE=1\n"),
    ]);
    let t = load_ok(&opts(&d.path().join("main"), &[]));
    let commons = d.path().join("commons");
    assert_eq!(
        service(&t, "webapp"),
        json!({
            "env_file": [{"path": s(commons.join("container.env")), "required": true}],
            "volumes": [format!("{}:/data", s(commons.join("data")))],
            "build": {"context": s(commons.join("ctx")), "dockerfile": "Dockerfile.dev"},
            "image": "example",
            "environment": {"FROM_FILE": "1"}
        })
    );
}

#[test]
fn extends_merge_rules_and_reset() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  base:\n    image: b\n    command: [a, b]\n    depends_on: [db]\n    volumes_from: [db]\n    ports: [\"1:1\"]\n    labels: {x: \"1\"}\n  db:\n    image: db\n  child:\n    extends: base\n    command: c\n    ports: !reset []\n    labels: {y: \"2\"}\n",
    )]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(
        service(&t, "child"),
        json!({"image": "b", "command": "c", "labels": {"x": "1", "y": "2"}})
    );
}

#[test]
fn include_docs_example_and_long_form() {
    let d = project(&[
        (
            "compose.yaml",
            "include:\n  - my-compose-include.yaml\nservices:\n  serviceA:\n    build: .\n    depends_on:\n      - serviceB\n",
        ),
        ("my-compose-include.yaml", "services:\n  serviceB:\n    image: b\n    env_file: b.env\n"),
        ("b.env", "X=1\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(service(&t, "serviceB")["image"], json!("b"));
    assert_eq!(service(&t, "serviceB")["environment"], json!({"X": "1"}));

    let d = project(&[
        (
            "app/compose.yaml",
            "include:\n  - path: ../commons/compose.yaml\n    project_directory: ..\n    env_file: ../another/.env\nservices:\n  a:\n    image: a\n",
        ),
        (
            "commons/compose.yaml",
            "services:\n  c:\n    image: \"${TAG}\"\n    volumes: [\"./x:/x\"]\nvolumes:\n  data: {}\n",
        ),
        ("another/.env", "TAG=from-include-env\n"),
    ]);
    let t = load_ok(&opts(&d.path().join("app"), &[]));
    assert_eq!(
        service(&t, "c"),
        json!({"image": "from-include-env", "volumes": [format!("{}:/x", s(d.path().join("x")))]})
    );
    assert_eq!(json(&t)["volumes"], json!({"data": {}}));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn include_with_override_list_and_identical_definitions() {
    let d = project(&[
        (
            "compose.yaml",
            "include:\n  - path: [third/compose.yaml, override.yaml]\nnetworks:\n  shared: {}\nservices: {}\n",
        ),
        ("third/compose.yaml", "services:\n  t:\n    image: one\nnetworks:\n  shared: {}\n"),
        ("override.yaml", "services:\n  t:\n    image: two\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(service(&t, "t"), json!({"image": "two"}));
}

#[test]
fn profiles_docs_example() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  frontend:\n    image: frontend\n    profiles: [frontend]\n  phpmyadmin:\n    image: phpmyadmin\n    depends_on: [db]\n    profiles: [debug]\n  backend:\n    image: backend\n  db:\n    image: mysql\n",
    )]);
    let names = |t: &compose_spec::loader::LoadedTree| -> Vec<String> {
        json(t)["services"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(names(&t), ["backend", "db"]);
    assert_eq!(t.disabled_services, ["frontend", "phpmyadmin"]);
    let mut o = opts(d.path(), &[]);
    o.profiles = vec!["debug".into()];
    let t = load_ok(&o);
    assert_eq!(names(&t), ["phpmyadmin", "backend", "db"]);
    assert_eq!(t.enabled_profiles, ["debug"]);
    let t = load_ok(&opts(d.path(), &[("COMPOSE_PROFILES", "frontend, debug")]));
    assert_eq!(names(&t).len(), 4);
    let mut o = opts(d.path(), &[]);
    o.services = vec!["frontend".into()];
    let t = load_ok(&o);
    assert_eq!(names(&t), ["frontend", "backend", "db"]);
    assert_eq!(t.enabled_profiles, ["frontend"]);
    let mut o = opts(d.path(), &[]);
    o.profiles = vec!["*".into()];
    assert_eq!(names(&load_ok(&o)).len(), 4);
}

#[test]
fn env_file_forms_and_precedence() {
    let d = project(&[
        (
            "compose.yaml",
            "services:\n  s:\n    image: x\n    env_file:\n      - a.env\n      - path: ./missing.env\n        required: false\n      - path: b.env\n    environment:\n      B: explicit\n      C:\n      D:\n",
        ),
        ("a.env", "A=a\nB=a\n"),
        ("b.env", "A=b\nD=from-file\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[("C", "from-process")]));
    let root = d.path();
    assert_eq!(
        service(&t, "s"),
        json!({
            "image": "x",
            "env_file": [
                {"path": s(root.join("a.env")), "required": true},
                {"path": s(root.join("missing.env")), "required": false},
                {"path": s(root.join("b.env")), "required": true}
            ],
            "environment": {"A": "b", "B": "explicit", "D": "from-file", "C": "from-process"}
        })
    );
}

#[test]
fn paths_resolved_or_kept() {
    let src = "services:\n  s:\n    build:\n      context: ./app\n      dockerfile: ../Dockerfile\n    volumes:\n      - ./data:/data:ro\n      - named:/n\n      - ~/cache:/cache\n      - type: bind\n        source: ./b\n        target: /b\n  r:\n    build: https://github.com/x/y.git\n    label_file: ./labels\nconfigs:\n  c:\n    file: ./c.txt\nsecrets:\n  k:\n    file: k.txt\n";
    let d = project(&[("compose.yaml", src), ("labels", "a=b\n")]);
    let t = load_ok(&opts(d.path(), &[("HOME", "/home/u")]));
    let p = |x: &str| s(d.path().join(x));
    assert_eq!(
        service(&t, "s"),
        json!({
            "build": {"context": p("app"), "dockerfile": "../Dockerfile"},
            "volumes": [format!("{}:/data:ro", p("data")), "named:/n", "/home/u/cache:/cache",
                        {"type": "bind", "source": p("b"), "target": "/b"}]
        })
    );
    assert_eq!(
        service(&t, "r"),
        json!({"build": "https://github.com/x/y.git", "label_file": p("labels"), "labels": {"a": "b"}})
    );
    assert_eq!(json(&t)["configs"]["c"]["file"], json!(p("c.txt")));
    assert_eq!(json(&t)["secrets"]["k"]["file"], json!(p("k.txt")));

    let mut o = opts(d.path(), &[]);
    o.resolve_paths = false;
    let t = load_ok(&o);
    assert_eq!(service(&t, "s")["build"]["context"], json!("./app"));
    assert_eq!(service(&t, "r")["label_file"], json!("./labels"));
    assert_eq!(json(&t)["configs"]["c"]["file"], json!("./c.txt"));
}

#[test]
fn project_directory_option_moves_dotenv_and_paths() {
    let d = project(&[
        ("files/compose.yaml", "services:\n  s:\n    image: ${IMG}\n    build: .\n"),
        ("proj/.env", "IMG=from-proj\n"),
    ]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["files/compose.yaml".into()];
    o.project_directory = Some("proj".into());
    let t = load_ok(&o);
    assert_eq!(t.project_dir, d.path().join("proj"));
    assert_eq!(t.project_name, "proj");
    assert_eq!(service(&t, "s"), json!({"image": "from-proj", "build": s(d.path().join("proj"))}));
}

#[test]
fn yaml_fragments_docs_example() {
    let d = project(&[(
        "compose.yaml",
        "x-environment: &default-environment\n  FOO: BAR\n  ZOT: QUIX\nx-keys: &keys\n  KEY: VALUE\nservices:\n  frontend:\n    image: example/webapp\n    environment: \n      << : [*default-environment, *keys]\n      YET_ANOTHER: VARIABLE\n",
    )]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(
        service(&t, "frontend")["environment"],
        json!({"FOO": "BAR", "ZOT": "QUIX", "KEY": "VALUE", "YET_ANOTHER": "VARIABLE"})
    );
}

#[test]
fn extends_an_included_service() {
    let d = project(&[
        (
            "compose.yaml",
            "include:\n  - lib/base.yaml\nservices:\n  app:\n    extends: base\n    image: app\n",
        ),
        ("lib/base.yaml", "services:\n  base:\n    image: base\n    build: ./ctx\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(service(&t, "app"), json!({"image": "app", "build": s(d.path().join("lib/ctx"))}));
}

#[test]
fn env_file_kept_relative_without_path_resolution() {
    let d = project(&[
        ("compose.yaml", "services:\n  s:\n    image: x\n    env_file: ./a.env\n"),
        ("a.env", "A=1\n"),
    ]);
    let mut o = opts(d.path(), &[]);
    o.resolve_paths = false;
    assert_eq!(
        service(&load_ok(&o), "s"),
        json!({"image": "x", "env_file": [{"path": "./a.env", "required": true}], "environment": {"A": "1"}})
    );
}

#[test]
fn extends_paths_rebased_when_not_resolving() {
    let d = project(&[
        (
            "main/compose.yaml",
            "services:\n  webapp:\n    image: example\n    extends:\n      file: ../commons/compose.yaml\n      service: base\n",
        ),
        (
            "commons/compose.yaml",
            "services:\n  base:\n    env_file: ./container.env\n    volumes: [\"./data:/data\", \"/abs:/abs\"]\n",
        ),
        ("commons/container.env", "A=1\n"),
    ]);
    let mut o = opts(&d.path().join("main"), &[]);
    o.resolve_paths = false;
    assert_eq!(
        service(&load_ok(&o), "webapp"),
        json!({
            "env_file": [{"path": "../commons/container.env", "required": true}],
            "volumes": ["../commons/data:/data", "/abs:/abs"],
            "image": "example",
            "environment": {"A": "1"}
        })
    );
}

#[test]
fn label_files_feed_labels() {
    let d = project(&[
        (
            "compose.yaml",
            "services:\n  s:\n    image: x\n    label_file: [./a.labels, ./b.labels]\n    labels:\n      - keep=declared\n",
        ),
        ("a.labels", "com.example.a=1\nkeep=file\n"),
        ("b.labels", "com.example.b=${B:-dflt}\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(
        service(&t, "s")["labels"],
        json!({"com.example.a": "1", "keep": "declared", "com.example.b": "dflt"})
    );
}

#[test]
fn dash_p_is_visible_to_interpolation() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  s:\n    container_name: ${COMPOSE_PROJECT_NAME}-s\n",
    )]);
    let mut o = opts(d.path(), &[]);
    o.project_name = Some("demo".into());
    let t = load_ok(&o);
    assert_eq!(service(&t, "s"), json!({"container_name": "demo-s"}));
    assert!(t.warnings.is_empty());
}

#[test]
fn override_file_in_another_directory_uses_the_project_directory() {
    let d = project(&[
        ("app/compose.yaml", "services:\n  s:\n    image: x\n"),
        (
            "overrides/dev.yaml",
            "services:\n  s:\n    volumes: [\"./src:/src\"]\n    extends:\n      file: base.yaml\n      service: b\n",
        ),
        ("overrides/base.yaml", "services:\n  b:\n    env_file: b.env\n"),
        ("overrides/b.env", "B=1\n"),
    ]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["app/compose.yaml".into(), "overrides/dev.yaml".into()];
    let t = load_ok(&o);
    assert_eq!(t.project_dir, d.path().join("app"));
    assert_eq!(
        service(&t, "s"),
        json!({
            "image": "x",
            // Paths in override files are relative to the project directory...
            "volumes": [format!("{}:/src", s(d.path().join("app/src")))],
            // ...but an extended file's paths stay relative to that file.
            "env_file": [{"path": s(d.path().join("overrides/b.env")), "required": true}],
            "environment": {"B": "1"}
        })
    );
}
