//! Negative cases: each error's kind, exact message, and position.

mod common;

use common::{load_err, opts, project};
use compose_spec::ErrorKind;

/// Loads `compose.yaml` with `files` around it and returns the error's display form and kind.
fn fail(files: &[(&str, &str)], env: &[(&str, &str)]) -> (String, ErrorKind) {
    let d = project(files);
    let e = load_err(&opts(d.path(), env));
    (e.to_string().replace(&d.path().to_string_lossy().into_owned(), "<dir>"), e.kind)
}

/// (files, process environment, expected message, expected kind).
type Case = (
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
    &'static str,
    ErrorKind,
);

#[test]
fn negative_table() {
    use ErrorKind::*;
    let cases: &[Case] = &[
        // YAML syntax error.
        (
            &[("compose.yaml", "services:\n  web:\n    image: \"unterminated\n")],
            &[],
            "compose.yaml:3:12: invalid YAML: while scanning a quoted scalar, found unexpected end of stream",
            Invalid,
        ),
        (
            &[("compose.yaml", "services:\n  web:\n   image: a\n  ports: [\n")],
            &[],
            "compose.yaml:5:1: invalid YAML: while parsing a node, did not find expected node content",
            Invalid,
        ),
        // Duplicate key.
        (
            &[("compose.yaml", "services:\n  web:\n    image: a\n  web:\n    image: b\n")],
            &[],
            "compose.yaml:4:3: services: mapping key \"web\" already defined at line 2",
            Invalid,
        ),
        // Bad merge key.
        (
            &[("compose.yaml", "x-a: &a [1, 2]\nservices:\n  web:\n    <<: *a\n")],
            &[],
            "compose.yaml:4:9: services.web.<<: merge key value must be a mapping or a sequence of mappings, found a sequence containing an integer",
            Invalid,
        ),
        // Required variable.
        (
            &[("compose.yaml", "services:\n  web:\n    image: ${IMAGE:?set IMAGE please}\n")],
            &[],
            "compose.yaml:3:12: services.web.image: required variable IMAGE is missing a value: set IMAGE please",
            Invalid,
        ),
        (
            &[(
                "compose.yaml",
                "services:\n  web:\n    image: x\n    environment:\n      - A=${EMPTY?}\n      - B=${EMPTY:?}\n",
            )],
            &[("EMPTY", "")],
            "compose.yaml:6:9: services.web.environment[1]: required variable EMPTY is missing a value",
            Invalid,
        ),
        // Bad interpolation syntax.
        (
            &[("compose.yaml", "services:\n  web:\n    image: \"${IMAGE\"\n")],
            &[],
            "compose.yaml:3:12: services.web.image: invalid interpolation format \"${IMAGE\": you may need to escape any $ with another $",
            Invalid,
        ),
        (
            &[("compose.yaml", "services:\n  web:\n    labels:\n      ${}: x\n")],
            &[],
            "compose.yaml:4:7: services.web.labels.${}: invalid interpolation format \"${}\": you may need to escape any $ with another $",
            Invalid,
        ),
        // Invalid project names from the variable and from `name:`.
        (
            &[("compose.yaml", "services: {}\n")],
            &[("COMPOSE_PROJECT_NAME", "Bad Name")],
            "invalid project name \"Bad Name\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number",
            Invalid,
        ),
        (
            &[("compose.yaml", "name: _bad\nservices: {}\n")],
            &[],
            "compose.yaml:1:7: name: invalid project name \"_bad\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number",
            Invalid,
        ),
        // extends: unknown service, missing file, cycles, unknown service in another file.
        (
            &[("compose.yaml", "services:\n  web:\n    extends: nope\n")],
            &[],
            "compose.yaml:3:14: services.web.extends: cannot extend service \"web\": service \"nope\" not found",
            Invalid,
        ),
        (
            &[(
                "compose.yaml",
                "services:\n  web:\n    extends:\n      file: base.yaml\n      service: b\n",
            )],
            &[],
            "compose.yaml:4:7: services.web.extends: cannot read <dir>/base.yaml: no such file or directory",
            Invalid,
        ),
        (
            &[(
                "compose.yaml",
                "services:\n  a:\n    extends: b\n  b:\n    extends: c\n  c:\n    extends: a\n",
            )],
            &[],
            "compose.yaml:3:5: services.a.extends: circular extends reference: a -> b -> c -> a",
            Invalid,
        ),
        (
            &[("compose.yaml", "services:\n  a:\n    extends: a\n")],
            &[],
            "compose.yaml:3:5: services.a.extends: circular extends reference: a -> a",
            Invalid,
        ),
        (
            &[
                (
                    "compose.yaml",
                    "services:\n  web:\n    extends:\n      file: base.yaml\n      service: nope\n",
                ),
                ("base.yaml", "services:\n  b:\n    image: b\n"),
            ],
            &[],
            "compose.yaml:4:7: services.web.extends: cannot extend service \"web\": service \"nope\" not found in <dir>/base.yaml",
            Invalid,
        ),
        // include: missing file, conflicting service, cycle.
        (
            &[("compose.yaml", "include:\n  - missing.yaml\nservices: {}\n")],
            &[],
            "compose.yaml:2:5: include[0]: cannot read included file <dir>/missing.yaml: no such file or directory",
            Invalid,
        ),
        (
            &[
                ("compose.yaml", "include:\n  - other.yaml\nservices:\n  web:\n    image: mine\n"),
                ("other.yaml", "services:\n  web:\n    image: theirs\n"),
            ],
            &[],
            "compose.yaml:2:5: include[0]: imported compose file <dir>/other.yaml defines conflicting service web",
            Invalid,
        ),
        (
            &[
                ("compose.yaml", "include:\n  - other.yaml\nservices: {}\n"),
                ("other.yaml", "include:\n  - compose.yaml\nservices: {}\n"),
            ],
            &[],
            "other.yaml:2:5: include[0]: include cycle: <dir>/compose.yaml is already being loaded",
            Invalid,
        ),
        // env_file required but missing.
        (
            &[("compose.yaml", "services:\n  web:\n    image: x\n    env_file: web.env\n")],
            &[],
            "compose.yaml:4:15: services.web.env_file: env file <dir>/web.env not found",
            Invalid,
        ),
        // label_file missing.
        (
            &[("compose.yaml", "services:\n  web:\n    image: x\n    label_file: nope.labels\n")],
            &[],
            "compose.yaml:4:17: services.web.label_file: label file <dir>/nope.labels not found",
            Invalid,
        ),
        // Not a mapping at the top.
        (
            &[("compose.yaml", "- a\n- b\n")],
            &[],
            "compose.yaml:1:1: top-level object must be a mapping, found a sequence",
            Invalid,
        ),
        // .env syntax error.
        (
            &[(".env", "GOOD=1\nBAD=\"open\n"), ("compose.yaml", "services: {}\n")],
            &[],
            "<dir>/.env:2:5: unterminated quoted value for \"BAD\"",
            Invalid,
        ),
        // Type clash between files is covered in loader_merge; a non-mapping service here.
        (
            &[("compose.yaml", "services:\n  web: [1]\n  b:\n    extends: web\n")],
            &[],
            "compose.yaml:4:5: services.b: cannot override a sequence with a mapping",
            Invalid,
        ),
    ];
    let mut bad = Vec::new();
    for (files, env, want, kind) in cases {
        let (got, k) = fail(files, env);
        if got != *want || k != *kind {
            bad.push(format!("want {want:?} ({kind:?})\n got {got:?} ({k:?})"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn missing_dash_f_file_is_not_found() {
    let d = project(&[("compose.yaml", "services: {}\n")]);
    let mut o = opts(d.path(), &[]);
    o.files = vec!["nope.yaml".into()];
    let e = load_err(&o);
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.exit_code(), 14);
    assert_eq!(
        e.to_string(),
        format!("open {}: no such file or directory", d.path().join("nope.yaml").display())
    );
}

#[test]
fn bad_dash_p_is_a_usage_error() {
    let d = project(&[("compose.yaml", "services: {}\n")]);
    let mut o = opts(d.path(), &[]);
    o.project_name = Some("-x".into());
    let e = load_err(&o);
    assert_eq!(e.kind, ErrorKind::Usage);
    assert_eq!(e.exit_code(), 16);
    assert!(e.to_string().starts_with("invalid project name \"-x\": must consist only of"));
}

#[test]
fn missing_env_file_option() {
    let d = project(&[("compose.yaml", "services: {}\n")]);
    let mut o = opts(d.path(), &[]);
    o.env_files = vec!["nope.env".into()];
    let e = load_err(&o);
    assert_eq!(
        e.to_string(),
        format!("couldn't find env file: {}", d.path().join("nope.env").display())
    );
}

#[test]
fn devices_and_directories_are_not_read() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  a:\n    extends:\n      file: /dev/zero\n      service: x\n",
    )]);
    let e = load_err(&opts(d.path(), &[]));
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:7: services.a.extends: cannot read /dev/zero: not a regular file"
    );
    // A device is "not a regular file", never "not found" (and never read).
    let d =
        project(&[("compose.yaml", "services:\n  a:\n    image: x\n    env_file: /dev/zero\n")]);
    let e = load_err(&opts(d.path(), &[]));
    assert_eq!(
        e.to_string(),
        "compose.yaml:4:15: services.a.env_file: cannot read env file /dev/zero: not a regular file"
    );
    assert_eq!(e.exit_code(), 15);
    // Also when not required: it exists, so it is not skipped.
    let d = project(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    env_file: {path: /dev/zero, required: false}\n",
    )]);
    assert!(load_err(&opts(d.path(), &[])).to_string().ends_with("/dev/zero: not a regular file"));
    let d =
        project(&[("compose.yaml", "services:\n  a:\n    image: x\n    label_file: /dev/zero\n")]);
    assert_eq!(
        load_err(&opts(d.path(), &[])).to_string(),
        "compose.yaml:4:17: services.a.label_file: cannot read env file /dev/zero: not a regular file"
    );
    let d = project(&[("compose.yaml", "services: {}\n")]);
    let mut o = opts(d.path(), &[]);
    o.env_files = vec!["/dev/zero".into()];
    assert_eq!(load_err(&o).to_string(), "cannot read env file /dev/zero: not a regular file");
}

/// Loads in a thread and fails the test (instead of hanging it) after 20 s.
fn load_err_within(o: compose_spec::loader::LoadOptions) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_err(&o).to_string());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the load hung")
}

#[test]
fn fifos_are_refused_without_hanging() {
    let d = project(&[("compose.yaml", "services:\n  a:\n    image: x\n    env_file: f.env\n")]);
    for name in ["f.env", ".env"] {
        let made = std::process::Command::new("mkfifo").arg(d.path().join(name)).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {name}");
    }
    let fifo = d.path().join("f.env");
    // The project's `.env` is read first: a FIFO there is refused by name.
    let got = load_err_within(opts(d.path(), &[]));
    assert_eq!(
        got,
        format!("cannot read env file {}: not a regular file", d.path().join(".env").display())
    );
    std::fs::remove_file(d.path().join(".env")).unwrap();
    let got = load_err_within(opts(d.path(), &[]));
    assert_eq!(
        got,
        format!(
            "compose.yaml:4:15: services.a.env_file: cannot read env file {}: not a regular file",
            fifo.display()
        )
    );
}

#[test]
fn no_compose_file_is_not_found() {
    let d = project(&[("README.md", "hi")]);
    // The search goes upward: a compose file left in a parent (e.g. /tmp) would be found.
    let stray = d
        .path()
        .ancestors()
        .skip(1)
        .any(|a| compose_spec::discovery::DEFAULT_FILES.iter().any(|n| a.join(n).is_file()));
    if stray {
        eprintln!("skipped: a parent of {} holds a compose file", d.path().display());
        return;
    }
    let e = load_err(&opts(d.path(), &[]));
    assert_eq!(e.to_string(), "no configuration file provided: not found");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.exit_code(), 14);
}
