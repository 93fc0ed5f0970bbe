//! Interpolation and `.env` parsing, table-driven (examples from the compose-spec
//! interpolation document and the env-file syntax page, plus edge cases).

mod common;

use compose_spec::dotenv;
use compose_spec::interpolate::{SubstError, substitute};
use indexmap::IndexMap;

fn env() -> IndexMap<String, String> {
    [("SET", "value"), ("EMPTY", ""), ("FOO", "foo"), ("TAG", "1.2")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(t: &str) -> (Result<String, SubstError>, Vec<String>) {
    let e = env();
    let lookup = |k: &str| e.get(k).cloned();
    let mut w = Vec::new();
    let r = substitute(t, &lookup, &mut w);
    (r, w)
}

#[test]
fn substitution_table() {
    let cases: &[(&str, &str)] = &[
        ("${SET}", "value"),
        // A default holding braces ends where compose's brace count ends it.
        (r#"${SET:-{"json":1}}"#, "value"),
        (r#"ok ${SET-{"a":{"b":1}}} end"#, "ok value end"),
        (r#"${UNSET:-{"a":{"b":1}}}"#, r#"{"a":{"b":1}}"#),
        (r#"${SET:+{"json":1}}"#, r#"{"json":1}"#),
        ("$SET", "value"),
        ("$SET-x", "value-x"),
        ("pre${SET}post", "prevaluepost"),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${SET:-default}", "value"),
        ("${UNSET-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET:?err}x", "never"),
        ("${SET:?err}", "value"),
        ("${EMPTY?err}", ""),
        ("${SET:+replacement}", "replacement"),
        ("${EMPTY:+replacement}", ""),
        ("${EMPTY+replacement}", "replacement"),
        ("${UNSET+replacement}", ""),
        ("${UNSET:-${FOO}}", "foo"),
        ("${UNSET?$FOO}", "never"),
        ("${UNSET:-${UNSET2:-default}}", "default"),
        ("${UNSET:-a ${FOO} b}", "a foo b"),
        ("$$VAR_NOT_INTERPOLATED_BY_COMPOSE", "$VAR_NOT_INTERPOLATED_BY_COMPOSE"),
        ("$${SET}", "${SET}"),
        ("cost: $5", "cost: $5"),
        ("trailing $", "trailing $"),
        ("image:${TAG}", "image:1.2"),
        ("${SET:-x}${FOO}", "valuefoo"),
        ("${UNSET:-}", ""),
        ("no variables", "no variables"),
        ("ünïcode ${FOO} ✓", "ünïcode foo ✓"),
    ];
    for (t, want) in cases {
        let (r, _) = run(t);
        if *want == "never" {
            assert!(matches!(r, Err(SubstError::Required(..))), "{t}: {r:?}");
        } else {
            assert_eq!(r.as_deref(), Ok(*want), "{t}");
        }
    }
}

#[test]
fn unset_variable_warns_once() {
    let (r, w) = run("${NOPE}/${NOPE}/$NOPE2");
    assert_eq!(r.as_deref(), Ok("//"));
    assert_eq!(
        w,
        [
            "The \"NOPE\" variable is not set. Defaulting to a blank string.",
            "The \"NOPE2\" variable is not set. Defaulting to a blank string."
        ]
    );
    // Defaults do not warn.
    assert!(run("${NOPE:-x}").1.is_empty());
}

#[test]
fn invalid_templates() {
    for t in ["${}", "${SET", "${SET:x}", "${1A}", "${SET!}", "${ SET}", "x ${A:-${B}"] {
        let (r, _) = run(t);
        assert_eq!(r, Err(SubstError::Invalid(t.to_string())), "{t}");
    }
    assert_eq!(
        SubstError::Invalid("${".into()).message(),
        "invalid interpolation format \"${\": you may need to escape any $ with another $"
    );
}

#[test]
fn required_message() {
    let (r, _) = run("${UNSET:?please set UNSET to ${FOO}}");
    let e = match r {
        Err(e) => e,
        Ok(v) => panic!("expected error, got {v}"),
    };
    assert_eq!(e.message(), "required variable UNSET is missing a value: please set UNSET to foo");
    let (r, _) = run("${UNSET?}");
    assert_eq!(
        r.map_err(|e| e.message()),
        Err("required variable UNSET is missing a value".into())
    );
}

fn dotenv_parse(src: &str, outer: &[(&str, &str)]) -> IndexMap<String, String> {
    let o: IndexMap<String, String> =
        outer.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = |k: &str| o.get(k).cloned();
    match dotenv::parse(src, ".env", &lookup) {
        Ok(m) => m,
        Err(e) => panic!("{src:?}: {e}"),
    }
}

#[test]
fn dotenv_table() {
    let cases: &[(&str, &str, &str)] = &[
        ("VAR=VAL", "VAR", "VAL"),
        ("VAR=\"VAL\"", "VAR", "VAL"),
        ("VAR='VAL'", "VAR", "VAL"),
        ("VAR=VAL # comment", "VAR", "VAL"),
        ("VAR=VAL# not a comment", "VAR", "VAL# not a comment"),
        ("VAR=\"VAL # not a comment\"", "VAR", "VAL # not a comment"),
        ("VAR=\"VAL\" # comment", "VAR", "VAL"),
        ("VAR='$OTHER'", "VAR", "$OTHER"),
        ("VAR='${OTHER}'", "VAR", "${OTHER}"),
        ("VAR='Let\\'s go!'", "VAR", "Let's go!"),
        ("VAR=\"{\\\"hello\\\": \\\"json\\\"}\"", "VAR", "{\"hello\": \"json\"}"),
        ("VAR=\"some\\tvalue\"", "VAR", "some\tvalue"),
        ("VAR='some\\tvalue'", "VAR", "some\\tvalue"),
        ("VAR=some\\tvalue", "VAR", "some\\tvalue"),
        ("export VAR=exported", "VAR", "exported"),
        ("  VAR  =  spaced  ", "VAR", "spaced"),
        ("VAR=", "VAR", ""),
        ("VAR=\"\"", "VAR", ""),
        ("VAR=\"line1\nline2\"", "VAR", "line1\nline2"),
        ("VAR='multi\nline'", "VAR", "multi\nline"),
        ("VAR=\"a\\nb\"", "VAR", "a\nb"),
        ("VAR=${OUTER}", "VAR", "outer"),
        ("VAR=\"${OUTER:-x}y\"", "VAR", "outery"),
        ("VAR=${MISSING:-default}", "VAR", "default"),
        ("VAR=\"price \\$5\"", "VAR", "price $5"),
        ("VAR=a=b=c", "VAR", "a=b=c"),
        ("OUTER", "OUTER", "outer"),
        ("# comment\n\nVAR=1\r\n", "VAR", "1"),
        ("\u{feff}VAR=bom", "VAR", "bom"),
    ];
    for (src, key, want) in cases {
        let m = dotenv_parse(src, &[("OUTER", "outer")]);
        assert_eq!(m.get(*key).map(String::as_str), Some(*want), "{src:?} -> {m:?}");
    }
}

#[test]
fn dotenv_refers_to_earlier_keys_and_environment_wins() {
    let m = dotenv_parse("A=1\nB=${A}2\nC=$B-3\nD=${X}\n", &[("X", "env")]);
    assert_eq!(m.get("B").map(String::as_str), Some("12"));
    assert_eq!(m.get("C").map(String::as_str), Some("12-3"));
    assert_eq!(m.get("D").map(String::as_str), Some("env"));
    let m = dotenv_parse("A=file\nB=$A\n", &[("A", "process")]);
    assert_eq!(m.get("B").map(String::as_str), Some("process"));
    // A bare key not set outside is skipped.
    let m = dotenv_parse("NOT_SET\nY=1\n", &[]);
    assert_eq!(m.keys().collect::<Vec<_>>(), ["Y"]);
}

#[test]
fn dotenv_errors_have_positions() {
    let lookup = |_: &str| None;
    let e = match dotenv::parse("A=1\nB=\"open\n", ".env", &lookup) {
        Err(e) => e,
        Ok(m) => panic!("{m:?}"),
    };
    assert_eq!(e.to_string(), ".env:2:3: unterminated quoted value for \"B\"");
    let e = match dotenv::parse("A=1\nBAD KEY=2\n", ".env", &lookup) {
        Err(e) => e,
        Ok(m) => panic!("{m:?}"),
    };
    assert_eq!(e.to_string(), ".env:2:5: unexpected character 'K' after variable name \"BAD\"");
    let e = match dotenv::parse("A='x\ny' junk\n", ".env", &lookup) {
        Err(e) => e,
        Ok(m) => panic!("{m:?}"),
    };
    assert_eq!(e.to_string(), ".env:2:4: unexpected character 'j' after the quoted value of \"A\"");
    let e = match dotenv::parse("A=${B\n", ".env", &lookup) {
        Err(e) => e,
        Ok(m) => panic!("{m:?}"),
    };
    assert_eq!(
        e.to_string(),
        ".env:1:3: A: invalid interpolation format \"${B\": you may need to escape any $ with another $"
    );
}
