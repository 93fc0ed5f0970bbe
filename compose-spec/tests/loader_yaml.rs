//! YAML parsing: anchors, merge keys, tags, scalar resolution, keys and errors with positions.

use std::sync::Arc;

use compose_spec::yaml::parse;
use compose_spec::{LoadError, Node, Value};

fn ok(src: &str) -> Node {
    match parse(src, Arc::from("compose.yaml")) {
        Ok(n) => n,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(src: &str) -> LoadError {
    match parse(src, Arc::from("compose.yaml")) {
        Ok(n) => panic!("expected an error, got {n:?}"),
        Err(e) => e,
    }
}

fn at<'a>(n: &'a Node, path: &[&str]) -> &'a Node {
    let mut cur = n;
    for k in path {
        cur = match cur.get(k) {
            Some(c) => c,
            None => panic!("no key {k} in {cur:?}"),
        };
    }
    cur
}

fn keys(n: &Node) -> Vec<String> {
    n.as_map().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn empty_documents_are_null() {
    assert_eq!(ok("").value, Value::Null);
    assert_eq!(ok("# only a comment\n").value, Value::Null);
    assert_eq!(ok("---\n").value, Value::Null);
}

#[test]
fn anchors_and_aliases_copy_nodes() {
    let n = ok("x: &a {p: 1}\ny: *a\nz: &s hello\nw: *s\n");
    assert_eq!(at(&n, &["y", "p"]).value, Value::Int(1));
    assert_eq!(at(&n, &["w"]).value, Value::String("hello".into()));
    // The alias node is positioned where the alias is written.
    assert_eq!(at(&n, &["y"]).mark.line, 2);
}

#[test]
fn merge_key_explicit_keys_win() {
    let n = ok("base: &b {a: 1, b: 2}\nsvc:\n  b: 3\n  <<: *b\n  c: 4\n");
    let svc = at(&n, &["svc"]);
    assert_eq!(at(svc, &["a"]).value, Value::Int(1));
    assert_eq!(at(svc, &["b"]).value, Value::Int(3));
    assert_eq!(at(svc, &["c"]).value, Value::Int(4));
    assert_eq!(keys(svc), ["b", "a", "c"]);
}

#[test]
fn merge_key_list_earlier_wins() {
    let n = ok("a: &a {k: 1, x: a}\nb: &b {k: 2, y: b}\nm:\n  <<: [*a, *b]\n  z: 0\n");
    let m = at(&n, &["m"]);
    assert_eq!(at(m, &["k"]).value, Value::Int(1));
    assert_eq!(at(m, &["x"]).value, Value::String("a".into()));
    assert_eq!(at(m, &["y"]).value, Value::String("b".into()));
    assert_eq!(at(m, &["z"]).value, Value::Int(0));
}

#[test]
fn quoted_merge_key_is_an_ordinary_key() {
    let n = ok("m:\n  '<<': {a: 1}\n");
    assert_eq!(keys(at(&n, &["m"])), ["<<"]);
}

#[test]
fn custom_tags_are_kept() {
    let n = ok(
        "services:\n  web:\n    ports: !reset []\n    env: !override {A: 1}\n    x: !reset null\n",
    );
    let web = at(&n, &["services", "web"]);
    assert_eq!(at(web, &["ports"]).tag.as_deref(), Some("!reset"));
    assert_eq!(at(web, &["env"]).tag.as_deref(), Some("!override"));
    assert_eq!(at(web, &["x"]).tag.as_deref(), Some("!reset"));
    assert_eq!(at(web, &["x"]).value, Value::Null);
}

#[test]
fn integer_and_other_scalar_keys_become_strings() {
    let n = ok("8080: a\ntrue: b\n1.5: c\n");
    assert_eq!(keys(&n), ["8080", "true", "1.5"]);
}

#[test]
fn block_scalars_and_quotes_stay_strings() {
    let n = ok("a: |\n  12\nb: '12'\nc: \"1.0\"\nd: 012\n");
    assert_eq!(at(&n, &["a"]).value, Value::String("12\n".into()));
    assert_eq!(at(&n, &["b"]).value, Value::String("12".into()));
    assert_eq!(at(&n, &["c"]).value, Value::String("1.0".into()));
    assert_eq!(at(&n, &["d"]).value, Value::Int(10));
}

#[test]
fn positions_of_nested_nodes() {
    let n = ok("services:\n  web:\n    image: nginx\n    ports:\n      - 80:80\n");
    let (km, img) = at(&n, &["services", "web"])
        .as_map()
        .and_then(|m| m.get("image"))
        .cloned()
        .unwrap_or_else(|| panic!());
    assert_eq!((km.line, km.column), (3, 5));
    assert_eq!((img.mark.line, img.mark.column), (3, 12));
    let ports = at(&n, &["services", "web", "ports"]);
    let first = &ports.as_seq().unwrap_or_default()[0];
    assert_eq!((first.mark.line, first.mark.column), (5, 9));
}

#[test]
fn multiple_documents_are_merged() {
    let n = ok("a: 1\nb: {x: 1}\n---\nb: {y: 2}\n");
    assert_eq!(keys(at(&n, &["b"])), ["x", "y"]);
}

#[test]
fn duplicate_key_is_an_error() {
    let e = err("services:\n  web:\n    image: a\n    image: b\n");
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:5: services.web: mapping key \"image\" already defined at line 3"
    );
}

#[test]
fn syntax_error_has_position() {
    let e = err("services:\n  web:\n    image: [a, b\n");
    assert_eq!(e.mark.as_ref().map(|m| m.line), Some(4));
    assert!(e.message.starts_with("invalid YAML: "), "{e}");
    let e = err("a: b\n c: d\n");
    assert_eq!(
        e.to_string(),
        "compose.yaml:2:3: invalid YAML: mapping values are not allowed in this context"
    );
}

#[test]
fn bad_merge_key_value() {
    let e = err("x:\n  <<: 5\n");
    assert_eq!(
        e.to_string(),
        "compose.yaml:2:7: x.<<: merge key value must be a mapping or a sequence of mappings, found an integer"
    );
    let e = err("a: &a [1]\nx:\n  <<: [*a]\n");
    assert_eq!(
        e.to_string(),
        "compose.yaml:3:8: x.<<: merge key value must be a mapping or a sequence of mappings, found a sequence containing a sequence"
    );
}

#[test]
fn unknown_alias_is_an_error() {
    let e = err("a: *nope\n");
    assert_eq!(e.mark.as_ref().map(|m| (m.line, m.column)), Some((1, 4)));
}

#[test]
fn complex_keys_are_rejected() {
    let e = err("? [a, b]\n: c\n");
    assert_eq!(e.message, "mapping keys must be scalars");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = "[".repeat(5000);
    let _ = err(&src);
    let src = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let e = err(&src);
    assert!(e.message.contains("nesting deeper") || e.message.contains("recursion"), "{e}");
}

#[test]
fn billion_laughs_is_bounded() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(err(&src).message.contains("too many nodes"));
}

#[test]
fn common_compose_idioms() {
    let n = ok(
        "\u{feff}services:\r\n  db:\r\n    healthcheck:\r\n      test: [\"CMD-SHELL\", \"pg_isready -U $${POSTGRES_USER}\"]\r\n    command: >\r\n      a\r\n      b\r\n",
    );
    let db = at(&n, &["services", "db"]);
    assert_eq!(at(db, &["command"]).value, Value::String("a b\n".into()));
    let test = at(db, &["healthcheck", "test"]).as_seq().map(|s| s.len());
    assert_eq!(test, Some(2));
    let n = ok("x: &a {k: 1}\ny: {<<: *a, z: 2}\n");
    assert_eq!(keys(at(&n, &["y"])), ["k", "z"]);
}
