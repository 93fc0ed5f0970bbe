//! No panics on damaged input: deterministic mutations of the awesome-compose samples and of
//! YAML-ish fragments go through the YAML parser, `.env` parser, interpolation and `load_tree`.
//! (The open-ended search is the cargo-fuzz target in `fuzz/`; this keeps a bounded version in
//! `cargo test`.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use compose_spec::loader::{LoadOptions, load_tree};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const PIECES: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "&a ",
    "*a",
    "<<: *a\n",
    "<<: [*a, *a]\n",
    "!reset ",
    "!override ",
    "${",
    "}",
    "$$",
    "${X:-${Y}}",
    "${X:?e}",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "---\n",
    "...\n",
    "#",
    "\t",
    "extends: ",
    "include:\n  - ",
    "profiles: [p]\n",
    "env_file: ",
    "services:\n  s:\n    ",
    "build: .\n",
    "volumes: [\"./a:/a\"]\n",
    "0x",
    "0o7",
    "1e9",
    ".inf",
    "~",
    "null",
    "\\",
    "é",
    "\u{feff}",
];

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..(1 + rng.below(6)) {
        let at = rng.below(s.len() + 1);
        match rng.below(3) {
            0 if !s.is_empty() => {
                let end = (at + rng.below(20)).min(s.len());
                let start = at.min(end);
                s.drain(start..end);
            }
            1 => {
                let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
                s.splice(at..at, piece);
            }
            _ => {
                if !s.is_empty() {
                    let i = rng.below(s.len());
                    s[i] = char::from(b' ' + (rng.below(95) as u8));
                }
            }
        }
    }
    s.into_iter().collect()
}

fn exercise(text: &str) {
    let _ = compose_spec::yaml::parse(text, Arc::from("m.yaml"));
    let lookup = |k: &str| if k == "X" { Some("x".to_string()) } else { None };
    let _ = compose_spec::dotenv::parse(text, ".env", &lookup);
    let mut w = Vec::new();
    let _ = compose_spec::interpolate::substitute(text, &lookup, &mut w);
    let opts = LoadOptions {
        working_dir: PathBuf::from("/nonexistent-berth-robustness"),
        files: vec!["-".into()],
        stdin: Some(text.to_string()),
        project_name: Some("robust".into()),
        ..Default::default()
    };
    let _ = load_tree(&opts);
}

fn samples() -> Vec<String> {
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let c = d.join("shared/conformance/awesome-compose");
        if c.is_dir() {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&c).into_iter().flatten().flatten() {
                for name in ["compose.yaml", "compose.yml"] {
                    if let Ok(s) = std::fs::read_to_string(e.path().join(name)) {
                        out.push(s);
                    }
                }
            }
            out.sort();
            return out;
        }
        dir = d.parent();
    }
    Vec::new()
}

#[test]
fn mutated_samples_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut inputs = samples();
    inputs.push("a: &a {b: *a}\n".into());
    inputs.push("services:\n  s:\n    extends: s\n".into());
    for src in &inputs {
        exercise(src);
        for _ in 0..40 {
            exercise(&mutate(src, &mut rng));
        }
    }
}

#[test]
fn random_piece_soup_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let n = 1 + rng.below(30);
        let text: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        exercise(&text);
    }
}
