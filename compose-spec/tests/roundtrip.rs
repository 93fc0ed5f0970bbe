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
    p.environment.clear();
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

/// A file using most of the specification round-trips too.
#[test]
fn kitchen_sink_round_trip() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("compose.yaml"), KITCHEN_SINK).unwrap_or_else(|e| panic!("{e}"));
    let opts = LoadOptions {
        working_dir: tmp.path().to_path_buf(),
        environment: env(),
        ..Default::default()
    };
    let p = match load_project(&opts) {
        Ok((p, _)) => comparable(p),
        Err(e) => panic!("{e}"),
    };
    let yaml = to_yaml(&p);
    assert!(yaml.contains("        mode: \"0440\"\n"), "{yaml}");
    assert!(yaml.contains("    content: |\n      line one\n      line two\n"), "{yaml}");
    let again = reload(&yaml, &p.working_dir, "compose.yaml");
    assert_eq!(again, p);
    assert_eq!(to_yaml(&again), yaml);
    let json = to_json(&p);
    let again = reload(&json, &p.working_dir, "compose.json");
    assert_eq!(without_nested_extensions(again), without_nested_extensions(p));
}

const KITCHEN_SINK: &str = r#"name: kitchen
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: nginx:1.25
    build:
      context: ./web
      args: [A=1, B]
      ssh: [default]
      cache_from: [a]
      secrets: [tok]
    command: ["nginx", "-g", "daemon off;"]
    entrypoint: /docker-entrypoint.sh
    environment:
      EMPTY: ""
      NUM: 3
      BOOL: true
    labels: {com.x: "y"}
    ports:
      - "8080:80"
      - target: 443
        published: "8443"
        protocol: tcp
        mode: host
    expose: [80, "81"]
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - type: volume
        source: data
        target: /data
        volume: {nocopy: true, subpath: sub}
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 1g, mode: 1777}
    networks:
      front:
        aliases: [www]
        ipv4_address: 10.5.0.5
    depends_on:
      api: {condition: service_healthy}
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 1m30s
      timeout: 10s
      retries: 3
      start_period: 40s
    deploy:
      replicas: 2
      resources:
        limits: {cpus: '0.50', memory: 50M, pids: 100}
        reservations: {cpus: '0.25', memory: 20M, devices: [{capabilities: [gpu], count: all}]}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 120s}
      update_config: {parallelism: 2, delay: 10s, order: stop-first}
    logging:
      driver: json-file
      options: {max-size: 10m, max-file: "3"}
    ulimits:
      nproc: 65535
      nofile: {soft: 20000, hard: 40000}
    sysctls: [net.core.somaxconn=1024]
    extra_hosts: ["somehost=162.242.195.82"]
    cap_add: [NET_ADMIN]
    secrets:
      - source: tok
        target: token
        mode: 0440
    configs: [cfg]
    x-meta: {b: 1, a: 2}
    stop_grace_period: 1m
    dns: 8.8.8.8
    tmpfs: /run
    develop:
      watch:
        - path: ./src
          action: sync
          target: /src
    post_start:
      - command: echo started
  api:
    image: "api:latest"
    healthcheck:
      test: curl -f http://localhost/ || exit 1
      disable: false
    networks: [back, front]
    pids_limit: 10
    mem_limit: 512m
    shm_size: 64M
    cpus: 1.5
    user: "1000:1000"
    read_only: true
    init: true
networks:
  front:
    driver: bridge
    ipam:
      config:
        - subnet: 10.5.0.0/16
          gateway: 10.5.0.1
  back:
    internal: true
volumes:
  data:
    driver: local
    labels: [a=b]
secrets:
  tok:
    file: ./tok.txt
configs:
  cfg:
    content: |
      line one
      line two
x-top: hello
"#;
