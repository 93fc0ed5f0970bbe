//! Every Dockerfile of docker/awesome-compose (copied in `tests/corpus/`, CC0) parses, and a few
//! of their habits come out as docker reads them.

use std::path::{Path, PathBuf};

use berth_builder::dockerfile::{Command, Kind, parse};

fn dockerfiles(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            dockerfiles(&p, out);
        } else if p.file_name().is_some_and(|n| n == "Dockerfile") {
            out.push(p);
        }
    }
}

#[test]
fn every_corpus_dockerfile_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files = Vec::new();
    dockerfiles(&root, &mut files);
    assert_eq!(files.len(), 35, "the corpus has 35 Dockerfiles");
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let df = parse(f, &src).unwrap_or_else(|e| panic!("{e}"));
        assert!(!df.stages.is_empty(), "{}", f.display());
        for st in &df.stages {
            assert!(!st.base.is_empty());
        }
    }
}

#[test]
fn corpus_habits_read_as_docker_does() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/react-rust-postgres/backend/Dockerfile");
    let df = parse(&f, &std::fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.4"));
    let names: Vec<_> = df.stages.iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        [
            Some("base".into()),
            Some("development".into()),
            Some("dev-envs".into()),
            Some("builder".into()),
            None
        ]
    );
    let dev = &df.stages[2];
    let Kind::Run { heredocs, .. } = &dev.instructions[1].kind else { panic!() };
    assert_eq!(
        heredocs[0].content,
        "apt-get update\napt-get install -y --no-install-recommends git\n"
    );
    let Kind::Copy(c) = &dev.instructions[3].kind else { panic!() };
    assert_eq!(c.from.as_deref(), Some("gloursdocker/docker"));
    let last = df.stages.last().unwrap();
    assert_eq!(
        last.instructions.last().unwrap().kind,
        Kind::Cmd(Command::Exec(vec!["/react-rust-postgres".into()]))
    );
}
