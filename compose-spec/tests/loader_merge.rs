//! Merging several compose files: the compose-spec merge document's examples plus the
//! compose-go rules for key/value attributes, unique keys, `!reset` and `!override`.

mod common;

use common::{load_err, load_ok, opts, project, service};
use serde_json::json;

/// Loads `compose.yaml` + `override.yaml` and returns service `foo` (or `app`).
fn merged(base: &str, over: &str, svc: &str) -> serde_json::Value {
    let d = project(&[("compose.yaml", base), ("override.yaml", over)]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["compose.yaml".into(), "override.yaml".into()];
    o.resolve_paths = false;
    service(&load_ok(&o), svc)
}

#[test]
fn merge_table() {
    let cases: &[(&str, &str, &str, serde_json::Value)] = &[
        // Mapping (spec example).
        (
            "services:\n  foo:\n    key1: value1\n    key2: value2\n",
            "services:\n  foo:\n    key2: VALUE\n    key3: value3\n",
            "foo",
            json!({"key1": "value1", "key2": "VALUE", "key3": "value3"}),
        ),
        // Sequence (spec example).
        (
            "services:\n  foo:\n    DNS:\n      - 1.1.1.1\n",
            "services:\n  foo:\n    DNS: \n      - 8.8.8.8\n",
            "foo",
            json!({"DNS": ["1.1.1.1", "8.8.8.8"]}),
        ),
        // Shell commands are replaced (spec example).
        (
            "services:\n  foo:\n    command: [\"echo\", \"foo\"]\n",
            "services:\n  foo:\n    command: [\"echo\", \"bar\"]\n",
            "foo",
            json!({"command": ["echo", "bar"]}),
        ),
        (
            "services:\n  foo:\n    entrypoint: a\n    healthcheck:\n      test: [CMD, a]\n      interval: 1s\n",
            "services:\n  foo:\n    entrypoint: [b]\n    healthcheck:\n      test: [CMD, b]\n",
            "foo",
            json!({"entrypoint": ["b"], "healthcheck": {"test": ["CMD", "b"], "interval": "1s"}}),
        ),
        // links are keyed by the text before `=` (compose-go's unicity rule): a later
        // `db=alias` replaces `db` in place; other entries stay.
        (
            "services:\n  foo:\n    links:\n      - db\n      - cache:c\n",
            "services:\n  foo:\n    links:\n      - db=alias1\n      - cache:c\n      - queue\n",
            "foo",
            json!({"links": ["db=alias1", "cache:c", "queue"]}),
        ),
        // models: short and long syntax merge into one mapping.
        (
            "services:\n  foo:\n    models:\n      - llm\n      - embed\n",
            "services:\n  foo:\n    models:\n      vision:\n        endpoint_var: V_URL\n      llm:\n        model_var: LLM\n",
            "foo",
            json!({"models": {"llm": {"model_var": "LLM"}, "embed": null, "vision": {"endpoint_var": "V_URL"}}}),
        ),
        // Unique resources: volumes by target (spec example).
        (
            "services:\n  foo:\n    volumes:\n      - foo:/work\n",
            "services:\n  foo:\n    volumes:\n      - bar:/work\n",
            "foo",
            json!({"volumes": ["bar:/work"]}),
        ),
        (
            "services:\n  foo:\n    volumes:\n      - type: volume\n        source: a\n        target: /w\n      - /x\n",
            "services:\n  foo:\n    volumes:\n      - type: volume\n        source: b\n        target: /w\n        read_only: true\n      - c:/y\n",
            "foo",
            json!({"volumes": [{"type": "volume", "source": "b", "target": "/w", "read_only": true}, "/x", "c:/y"]}),
        ),
        // Ports: identical entries are not duplicated, new ones appended.
        (
            "services:\n  foo:\n    ports:\n      - \"8080:80\"\n",
            "services:\n  foo:\n    ports:\n      - \"8080:80\"\n      - \"8443:443\"\n",
            "foo",
            json!({"ports": ["8080:80", "8443:443"]}),
        ),
        // Secrets by target.
        (
            "services:\n  foo:\n    secrets:\n      - s1\n      - source: s2\n        target: /run/secrets/x\n",
            "services:\n  foo:\n    secrets:\n      - source: s1\n        mode: 0400\n      - s3\n",
            "foo",
            json!({"secrets": [{"source": "s1", "mode": 256}, {"source": "s2", "target": "/run/secrets/x"}, "s3"]}),
        ),
        // environment: list and mapping forms merge by key, later wins.
        (
            "services:\n  foo:\n    environment:\n      - A=1\n      - B=2\n",
            "services:\n  foo:\n    environment:\n      B: 3\n      C: x\n",
            "foo",
            json!({"environment": {"A": "1", "B": "3", "C": "x"}}),
        ),
        // labels likewise.
        (
            "services:\n  foo:\n    labels:\n      a: \"1\"\n",
            "services:\n  foo:\n    labels:\n      - b=2\n      - a=3\n",
            "foo",
            json!({"labels": {"a": "3", "b": "2"}}),
        ),
        // depends_on list + mapping.
        (
            "services:\n  foo:\n    depends_on: [db]\n",
            "services:\n  foo:\n    depends_on:\n      cache:\n        condition: service_healthy\n",
            "foo",
            json!({"depends_on": {"db": {"condition": "service_started", "required": true}, "cache": {"condition": "service_healthy"}}}),
        ),
        // networks list + mapping.
        (
            "services:\n  foo:\n    networks: [front]\n",
            "services:\n  foo:\n    networks:\n      back:\n        aliases: [b]\n",
            "foo",
            json!({"networks": {"front": null, "back": {"aliases": ["b"]}}}),
        ),
        // dns: a scalar and a list, appended unique.
        (
            "services:\n  foo:\n    dns: 8.8.8.8\n",
            "services:\n  foo:\n    dns: [8.8.8.8, 1.1.1.1]\n",
            "foo",
            json!({"dns": ["8.8.8.8", "1.1.1.1"]}),
        ),
        // build: string context merged with a mapping.
        (
            "services:\n  foo:\n    build: ./dir\n",
            "services:\n  foo:\n    build:\n      dockerfile: Other\n",
            "foo",
            json!({"build": {"context": "./dir", "dockerfile": "Other"}}),
        ),
        // logging: different drivers replace, same driver merges options.
        (
            "services:\n  foo:\n    logging:\n      driver: json-file\n      options: {max-size: 1m}\n",
            "services:\n  foo:\n    logging:\n      driver: syslog\n",
            "foo",
            json!({"logging": {"driver": "syslog"}}),
        ),
        (
            "services:\n  foo:\n    logging:\n      driver: json-file\n      options: {max-size: 1m}\n",
            "services:\n  foo:\n    logging:\n      options: {max-file: \"3\"}\n",
            "foo",
            json!({"logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "3"}}}),
        ),
        // ulimits: a number replaces a mapping.
        (
            "services:\n  foo:\n    ulimits:\n      nofile: {soft: 1, hard: 2}\n",
            "services:\n  foo:\n    ulimits:\n      nofile: 5\n",
            "foo",
            json!({"ulimits": {"nofile": 5}}),
        ),
        // extra_hosts appended unique.
        (
            "services:\n  foo:\n    extra_hosts: [\"a=1.1.1.1\"]\n",
            "services:\n  foo:\n    extra_hosts:\n      b: 2.2.2.2\n",
            "foo",
            json!({"extra_hosts": ["a=1.1.1.1", "b=2.2.2.2"]}),
        ),
        // !reset (spec example).
        (
            "services:\n  app:\n    image: myapp\n    ports:\n      - \"8080:80\"\n    environment:\n      FOO: BAR\n",
            "services:\n  app:\n    image: myapp\n    ports: !reset []\n    environment:\n      FOO: !reset null\n",
            "app",
            json!({"image": "myapp", "environment": {}}),
        ),
        // !override (spec example).
        (
            "services:\n  app:\n    image: myapp\n    ports:\n      - \"8080:80\"\n",
            "services:\n  app:\n    ports: !override\n      - \"8443:443\"\n",
            "app",
            json!({"image": "myapp", "ports": ["8443:443"]}),
        ),
        // An empty value in the override leaves the base alone.
        (
            "services:\n  foo:\n    image: a\n",
            "services:\n  foo:\n    image:\n",
            "foo",
            json!({"image": "a"}),
        ),
        // x- extensions are replaced, not merged.
        (
            "services:\n  foo:\n    x-meta: {a: 1}\n",
            "services:\n  foo:\n    x-meta: {b: 2}\n",
            "foo",
            json!({"x-meta": {"b": 2}}),
        ),
    ];
    for (i, (base, over, svc, want)) in cases.iter().enumerate() {
        assert_eq!(&merged(base, over, svc), want, "case {i}");
    }
}

#[test]
fn reset_then_set_again_in_a_third_file() {
    let d = project(&[
        ("a.yaml", "services:\n  s:\n    image: x\n    ports: [\"1:1\"]\n"),
        ("b.yaml", "services:\n  s:\n    ports: !reset []\n"),
        ("c.yaml", "services:\n  s:\n    ports: [\"2:2\"]\n"),
    ]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["a.yaml".into(), "b.yaml".into(), "c.yaml".into()];
    assert_eq!(service(&load_ok(&o), "s"), json!({"image": "x", "ports": ["2:2"]}));
}

#[test]
fn reset_in_a_single_file_removes_the_key() {
    let d = project(&[("compose.yaml", "services:\n  s:\n    image: x\n    ports: !reset []\n")]);
    assert_eq!(service(&load_ok(&opts(d.path(), &[])), "s"), json!({"image": "x"}));
}

#[test]
fn merge_type_mismatch_is_an_error() {
    let d = project(&[
        ("compose.yaml", "services:\n  s:\n    image: x\n    healthcheck:\n      interval: 1s\n"),
        ("o.yaml", "services:\n  s:\n    healthcheck: [nope]\n"),
    ]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["compose.yaml".into(), "o.yaml".into()];
    let e = load_err(&o);
    assert_eq!(
        e.to_string(),
        "o.yaml:3:18: services.s.healthcheck: cannot override a mapping with a sequence"
    );
}

#[test]
fn override_file_is_discovered_and_merged() {
    let d = project(&[
        ("compose.yaml", "services:\n  web:\n    image: nginx\n"),
        ("compose.override.yaml", "services:\n  web:\n    image: nginx:2\n"),
    ]);
    let t = load_ok(&opts(d.path(), &[]));
    assert_eq!(service(&t, "web"), json!({"image": "nginx:2"}));
    assert_eq!(t.config_files.len(), 2);
    assert!(t.config_files[1].ends_with("compose.override.yaml"));
}

#[test]
fn duplicates_within_one_file_collapse() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  s:\n    image: x\n    ports: [\"80:80\", \"81:81\", \"80:80\"]\n    volumes: [\"a:/data\", \"/tmp:/t\", \"b:/data\"]\n    secrets: [k, {source: k, mode: 0400}]\n",
    )]);
    assert_eq!(
        service(&load_ok(&opts(d.path(), &[])), "s"),
        json!({"image": "x", "ports": ["80:80", "81:81"], "volumes": ["b:/data", "/tmp:/t"], "secrets": [{"source": "k", "mode": 256}]})
    );
}
