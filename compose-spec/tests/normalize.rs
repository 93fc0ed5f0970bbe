//! Short syntax -> long syntax, table-driven, with the shapes `docker compose config` prints
//! (taken from the compose-spec examples and compose's own expected outputs).

use compose_spec::emit::{to_yaml, value_to_yaml};
use compose_spec::load_project;
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;

fn load(yaml: &str) -> Project {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("compose.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    let environment = [("HOME", "/home/u"), ("FROM_HOST", "host-value")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LoadOptions {
        working_dir: tmp.path().to_path_buf(),
        project_directory: Some("/proj".into()),
        project_name: Some("demo".into()),
        environment,
        ..Default::default()
    };
    match load_project(&opts) {
        Ok((p, _)) => p,
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

/// (name, service body under `services: s:`, expected YAML fragment of the printed service).
const CASES: &[(&str, &str, &str)] = &[
    (
        "port range with ip and protocol",
        "ports: [\"127.0.0.1:8080-8081:80-81/udp\"]",
        "ports:\n  - mode: ingress\n    host_ip: 127.0.0.1\n    target: 80\n    published: \"8080\"\n    protocol: udp\n  - mode: ingress\n    host_ip: 127.0.0.1\n    target: 81\n    published: \"8081\"\n    protocol: udp\n",
    ),
    (
        "container port only",
        "ports: [\"3000\"]",
        "ports:\n  - mode: ingress\n    target: 3000\n    protocol: tcp\n",
    ),
    (
        "integer port",
        "ports: [8080]",
        "ports:\n  - mode: ingress\n    target: 8080\n    protocol: tcp\n",
    ),
    (
        "host range onto one container port",
        "ports: [\"12400-12500:1240\"]",
        "ports:\n  - mode: ingress\n    target: 1240\n    published: 12400-12500\n    protocol: tcp\n",
    ),
    (
        "ipv6 host ip",
        "ports: [\"[::1]:8080:80\"]",
        "ports:\n  - mode: ingress\n    host_ip: ::1\n    target: 80\n    published: \"8080\"\n    protocol: tcp\n",
    ),
    (
        "long port gets defaults",
        "ports: [{target: 80, published: 8080}]",
        "ports:\n  - mode: ingress\n    target: 80\n    published: \"8080\"\n    protocol: tcp\n",
    ),
    (
        "relative bind, read-only",
        "volumes: [\"./data:/data:ro\"]",
        "volumes:\n  - type: bind\n    source: /proj/data\n    target: /data\n    read_only: true\n    bind:\n      create_host_path: true\n",
    ),
    (
        "named volume",
        "volumes: [\"db:/var/lib/db\"]",
        "volumes:\n  - type: volume\n    source: db\n    target: /var/lib/db\n    volume: {}\n",
    ),
    (
        "anonymous volume",
        "volumes: [\"/cache\"]",
        "volumes:\n  - type: volume\n    target: /cache\n    volume: {}\n",
    ),
    (
        "bind with selinux label and home",
        "volumes: [\"~/conf:/etc/conf:z\"]",
        "volumes:\n  - type: bind\n    source: /home/u/conf\n    target: /etc/conf\n    bind:\n      selinux: z\n      create_host_path: true\n",
    ),
    (
        "volume nocopy",
        "volumes: [\"db:/data:nocopy\"]",
        "volumes:\n  - type: volume\n    source: db\n    target: /data\n    volume:\n      nocopy: true\n",
    ),
    (
        "tmpfs long syntax size",
        "volumes: [{type: tmpfs, target: /run, tmpfs: {size: 64m}}]",
        "volumes:\n  - type: tmpfs\n    target: /run\n    tmpfs:\n      size: \"67108864\"\n",
    ),
    (
        "depends_on list",
        "depends_on: [db]",
        "depends_on:\n  db:\n    condition: service_started\n    required: true\n",
    ),
    (
        "depends_on map keeps condition",
        "depends_on: {db: {condition: service_healthy, restart: true}}",
        "depends_on:\n  db:\n    condition: service_healthy\n    restart: true\n    required: true\n",
    ),
    (
        "links imply depends_on with restart",
        "links: [\"db:database\"]",
        "depends_on:\n  db:\n    condition: service_started\n    restart: true\n    required: true\n",
    ),
    (
        "environment list, value from host, unset stays null",
        "environment: [\"B=2\", FROM_HOST, NOT_SET, \"A=1\"]",
        "environment:\n  A: \"1\"\n  B: \"2\"\n  FROM_HOST: host-value\n  NOT_SET: null\n",
    ),
    (
        "labels list and numbers",
        "labels: [\"com.example.a=x\", com.example.empty]\n",
        "labels:\n  com.example.a: x\n  com.example.empty: \"\"\n",
    ),
    (
        "annotations number to string",
        "annotations: {num: 42, n: x}",
        "annotations:\n  \"n\": x\n  num: \"42\"\n",
    ),
    ("build string", "build: ./app", "build:\n  context: /proj/app\n  dockerfile: Dockerfile\n"),
    (
        "healthcheck string test and durations",
        "healthcheck: {test: curl -f localhost, interval: 90s, timeout: 500ms, retries: \"3\", start_period: 1h}",
        "healthcheck:\n  test:\n    - CMD-SHELL\n    - curl -f localhost\n  timeout: 500ms\n  interval: 1m30s\n  retries: 3\n  start_period: 1h0m0s\n",
    ),
    (
        "ulimits single and soft/hard",
        "ulimits: {nproc: 65535, nofile: {soft: 20000, hard: 40000}}",
        "ulimits:\n  nofile:\n    soft: 20000\n    hard: 40000\n  nproc: 65535\n",
    ),
    (
        "secrets short syntax",
        "secrets: [token]",
        "secrets:\n  - source: token\n    target: /run/secrets/token\n",
    ),
    ("configs short syntax", "configs: [conf]", "configs:\n  - source: conf\n"),
    (
        "extra_hosts list sorted",
        "extra_hosts: [\"somehost:162.242.195.82\", \"otherhost=50.31.209.229\"]",
        "extra_hosts:\n  - otherhost=50.31.209.229\n  - somehost=162.242.195.82\n",
    ),
    (
        "extra_hosts mapping",
        "extra_hosts: {myhost: \"10.0.0.1\"}",
        "extra_hosts:\n  - myhost=10.0.0.1\n",
    ),
    (
        "command string split like a shell",
        "command: bundle exec thin -p 3000 --tag \"a b\"",
        "command:\n  - bundle\n  - exec\n  - thin\n  - -p\n  - \"3000\"\n  - --tag\n  - a b\n",
    ),
    (
        "entrypoint string",
        "entrypoint: /code/entrypoint.sh -p 3000",
        "entrypoint:\n  - /code/entrypoint.sh\n  - -p\n  - \"3000\"\n",
    ),
    (
        "byte sizes",
        "mem_limit: 1g\n    mem_reservation: 512m\n    shm_size: 1024",
        "mem_limit: \"1073741824\"\n",
    ),
    (
        "cpus and replicas from strings",
        "cpus: \"1.5\"\n    deploy: {replicas: \"3\", resources: {limits: {cpus: \"1.5\", memory: 50M}}}",
        "deploy:\n  replicas: 3\n  resources:\n    limits:\n      cpus: 1.5\n      memory: \"52428800\"\n",
    ),
    ("networks list to map", "networks: [front]", "networks:\n  front: null\n"),
    ("default network added", "restart: \"no\"", "networks:\n  default: null\nrestart: \"no\"\n"),
    ("stop_grace_period", "stop_grace_period: 1m30s", "stop_grace_period: 1m30s\n"),
    (
        "devices short syntax",
        "devices: [\"/dev/ttyUSB0:/dev/ttyUSB0\"]",
        "devices:\n  - source: /dev/ttyUSB0\n    target: /dev/ttyUSB0\n    permissions: rwm\n",
    ),
    (
        "pull_policy if_not_present becomes missing",
        "pull_policy: if_not_present",
        "pull_policy: missing\n",
    ),
    (
        "env_file optional",
        "env_file: [{path: ./opt.env, required: false}]",
        "env_file:\n  - path: /proj/opt.env\n    required: false\n",
    ),
];

const TOP: &str = "\nnetworks:\n  front: {}\nvolumes:\n  db: {}\nsecrets:\n  token:\n    environment: FROM_HOST\nconfigs:\n  conf:\n    content: hello\n";

#[test]
fn short_to_long() {
    let mut failures = Vec::new();
    for (name, body, want) in CASES {
        let yaml = format!(
            "services:\n  s:\n    image: busybox\n    {body}\n  db:\n    image: postgres\n{TOP}"
        );
        let p = load(&yaml);
        let got = value_to_yaml(&p.services["s"]);
        if !got.contains(want) {
            failures.push(format!("{name}:\n--- want (fragment)\n{want}--- got\n{got}"));
        }
    }
    println!("{} normalisation cases", CASES.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn top_level_names() {
    let p = load(
        "services:\n  s:\n    image: busybox\n    networks: [front, ext]\nnetworks:\n  front: {}\n  ext:\n    external: true\n  named:\n    name: custom\nvolumes:\n  db: {}\n  old:\n    external:\n      name: legacy\n",
    );
    let y = to_yaml(&p);
    let want = "networks:\n  ext:\n    name: ext\n    external: true\n  front:\n    name: demo_front\n  named:\n    name: custom\nvolumes:\n  db:\n    name: demo_db\n  old:\n    name: legacy\n    external: true\n";
    assert!(y.contains(want), "{y}");
    assert!(y.starts_with("name: demo\nservices:\n"), "{y}");
}

#[test]
fn json_shapes() {
    let p = load("services:\n  s:\n    image: busybox\n    labels: {a: \"<b>&\"}\n");
    let j = compose_spec::emit::to_json(&p);
    assert!(j.contains("\"command\": null,"), "{j}");
    assert!(j.contains("\"entrypoint\": null,"), "{j}");
    assert!(j.contains("\"a\": \"\\u003cb\\u003e\\u0026\""), "{j}");
    assert!(j.contains("\"ipam\": {}"), "{j}");
    assert!(j.starts_with("{\n  \"name\": \"demo\",\n  \"networks\""), "{j}");
}

#[test]
fn hash_is_stable_and_ignores_scale() {
    let a = load("services:\n  s:\n    image: busybox\n");
    let b = load("services:\n  s:\n    image: busybox\n    scale: 3\n    depends_on: []\n");
    let c = load("services:\n  s:\n    image: busybox:1\n");
    let h = |p: &Project| compose_spec::service_hash(&p.services["s"]);
    assert_eq!(h(&a), h(&b));
    assert_ne!(h(&a), h(&c));
    assert_eq!(h(&a).len(), 64);
}

/// The key lists used for unknown-key checks match compose-spec.json.
#[test]
fn key_lists_match_the_schema() {
    let mut dir = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let schema = loop {
        let Some(d) = dir else { panic!("shared/conformance not found") };
        let f = d.join("shared/conformance/compose-spec.json");
        if f.is_file() {
            break f;
        }
        dir = d.parent();
    };
    let text = std::fs::read_to_string(schema).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let keys = |o: &serde_json::Value| -> std::collections::BTreeSet<String> {
        o.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    };
    let service = keys(&v["$defs"]["service"]["properties"]);
    let ours: std::collections::BTreeSet<String> =
        compose_spec::normalize::SERVICE_KEYS.iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, service);
    let top = keys(&v["properties"]);
    let ours: std::collections::BTreeSet<String> =
        compose_spec::normalize::TOP_KEYS.iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, top);
}

/// No panic on any shape of input: every node of every corpus file is replaced in turn by a
/// null, a number, a string, a list and a mapping; normalising and validating must return Ok or
/// an error, never panic.
#[test]
fn no_panics_on_mutated_corpus() {
    use compose_spec::normalize::{NormalizeOptions, normalize};
    use compose_spec::tree::{Mark, Node, Value};

    fn count(n: &Node) -> usize {
        1 + match &n.value {
            Value::Seq(s) => s.iter().map(count).sum(),
            Value::Map(m) => m.values().map(|(_, v)| count(v)).sum(),
            _ => 0,
        }
    }
    /// Replaces the `i`-th node (pre-order) with `with`; returns true when done.
    fn replace(n: &mut Node, i: &mut usize, with: &Value) -> bool {
        if *i == 0 {
            n.value = with.clone();
            return true;
        }
        *i -= 1;
        match &mut n.value {
            Value::Seq(s) => s.iter_mut().any(|c| replace(c, i, with)),
            Value::Map(m) => m.values_mut().any(|(_, c)| replace(c, i, with)),
            _ => false,
        }
    }

    let mut dir = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let corpus = loop {
        let Some(d) = dir else { panic!("shared/conformance not found") };
        let c = d.join("shared/conformance/awesome-compose");
        if c.is_dir() {
            break c;
        }
        dir = d.parent();
    };
    let mark = Mark { file: "m".into(), line: 1, column: 1 };
    let variants = [
        Value::Null,
        Value::Int(-1),
        Value::String("a:b:c:d".into()),
        Value::Seq(vec![Node::new(Value::Bool(true), mark.clone())]),
        Value::Map(Default::default()),
    ];
    let mut runs = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&corpus)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for d in entries.iter().filter(|p| p.is_dir()) {
        let opts = LoadOptions { working_dir: d.clone(), ..Default::default() };
        let Ok(tree) = compose_spec::loader::load_tree(&opts) else { continue };
        let nopts = NormalizeOptions {
            project_name: tree.project_name.clone(),
            project_dir: tree.project_dir.clone(),
            defaults: true,
            resolve_paths: true,
            ..Default::default()
        };
        for i in 0..count(&tree.root) {
            for v in &variants {
                let mut root = tree.root.clone();
                let mut k = i;
                replace(&mut root, &mut k, v);
                if let Ok((p, marks, _)) = normalize(&root, &nopts) {
                    let _ = compose_spec::validate::validate(&p, &marks);
                    let _ = compose_spec::emit::to_yaml(&p);
                }
                runs += 1;
            }
        }
    }
    println!("{runs} mutated loads without a panic");
    assert!(runs > 1000);
}
