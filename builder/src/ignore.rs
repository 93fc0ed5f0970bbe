//! `.dockerignore` with docker's rules (moby's `patternmatcher` and `ignorefile`): one pattern a
//! line, `#` lines are comments, patterns are cleaned like Go's `filepath.Clean` with a leading
//! `/` dropped, `*`/`?`/`[...]` as `filepath.Match` (never crossing `/`), `**` any number of
//! directories, `!` re-includes; the last matching pattern decides, and a path is excluded when
//! it or one of its parent directories is.

use std::path::{Path, PathBuf};

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// This character.
    Lit(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class { ranges: Vec<(char, char)>, negated: bool },
    /// `**/` or `**` inside: nothing, or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything.
    All,
}

/// One line of a `.dockerignore`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The cleaned pattern text (without `!`).
    pub text: String,
    /// A `!` line: re-includes what it matches.
    pub exclusion: bool,
    toks: Vec<Tok>,
}

/// A bad pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: invalid pattern {pattern:?}: {reason}")]
pub struct IgnoreError {
    /// The ignore file.
    pub file: String,
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// Go's `filepath.Clean` on a slash path.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i >= chars.len() { Tok::All } else { Tok::AnyDirs });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(n) => {
                    toks.push(Tok::Lit(*n));
                    i += 1;
                }
                None => return Err("a trailing backslash escapes nothing".into()),
            },
            '[' => {
                let mut negated = false;
                if matches!(chars.get(i), Some('^') | Some('!')) {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut closed = false;
                while i < chars.len() {
                    let mut lo = chars[i];
                    i += 1;
                    if lo == ']' && !ranges.is_empty() {
                        closed = true;
                        break;
                    }
                    if lo == '\\' {
                        lo = *chars.get(i).ok_or("unterminated character class")?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or("unterminated character class")?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err("a character range goes backwards".into());
                        }
                    }
                    ranges.push((lo, hi));
                }
                if !closed {
                    return Err("unterminated character class".into());
                }
                toks.push(Tok::Class { ranges, negated });
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

fn match_toks(toks: &[Tok], s: &[char]) -> bool {
    let Some((t, rest)) = toks.split_first() else { return s.is_empty() };
    match t {
        Tok::Lit(c) => s.first() == Some(c) && match_toks(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && match_toks(rest, &s[1..]),
        Tok::Class { ranges, negated } => {
            s.first().is_some_and(|c| {
                ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated && *c != '/'
            }) && match_toks(rest, &s[1..])
        }
        Tok::Star => {
            for n in 0..=s.len() {
                if match_toks(rest, &s[n..]) {
                    return true;
                }
                if n < s.len() && s[n] == '/' {
                    break;
                }
            }
            false
        }
        Tok::AnyDirs => {
            if match_toks(rest, s) {
                return true;
            }
            (0..s.len()).any(|n| s[n] == '/' && match_toks(rest, &s[n + 1..]))
        }
        Tok::All => true,
    }
}

/// Go's `filepath.Match` of a whole slash path (`*`, `?`, `[...]` never cross `/`): COPY globs.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let s: Vec<char> = path.chars().collect();
    compile(pattern).is_ok_and(|t| match_toks(&t, &s))
}

impl Pattern {
    /// Whether the pattern matches this exact slash path.
    pub fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        match_toks(&self.toks, &s)
    }
}

/// The patterns of one `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ignore {
    /// In file order.
    pub patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses a `.dockerignore`'s text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            let mut text = if p.is_empty() { String::new() } else { clean(p) };
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let toks = compile(&text).map_err(|reason| IgnoreError {
                file: file.into(),
                pattern: line.trim().into(),
                reason,
            })?;
            patterns.push(Pattern { text, exclusion, toks });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `path` (slash-separated, relative to the context) is excluded: docker's
    /// `MatchesOrParentMatches`.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let dirs: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // An include can't change an excluded path and an exclusion an included one.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&path);
            if !m && dirs.len() > 1 {
                m = (1..dirs.len()).any(|i| p.matches(&dirs[..i].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether any `!` pattern exists (then an excluded directory must still be walked).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }
}

/// The ignore file for a build: `<Dockerfile>.dockerignore` beside the Dockerfile when it
/// exists, else `.dockerignore` at the root of the context.
pub fn ignore_file(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    let mut beside = dockerfile.as_os_str().to_owned();
    beside.push(".dockerignore");
    let beside = PathBuf::from(beside);
    if beside.is_file() {
        return Some(beside);
    }
    let root = context.join(".dockerignore");
    root.is_file().then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(".dockerignore", text).unwrap()
    }

    #[test]
    fn clean_is_go_clean() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("."), ".");
        assert_eq!(clean("a/./b/.."), "a");
    }

    /// The example of docker's documentation (docs "Dockerignore files").
    #[test]
    fn docker_documented_example() {
        let i = ig("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(i.excluded("somedir/temporary.txt"));
        assert!(i.excluded("somedir/temp"));
        assert!(!i.excluded("temporary.txt"));
        assert!(i.excluded("somedir/subdir/temporary.txt"));
        assert!(i.excluded("tempa"));
        assert!(!i.excluded("tempab"));
        assert!(i.excluded("tempb/file"));
        // `# comment` is ignored, so a file of that name is not excluded.
        assert!(!i.excluded("# comment"));
    }

    #[test]
    fn double_star_and_leading_slash() {
        let i = ig("**/*.go\n/build\n./tmp/\n");
        assert!(i.excluded("a.go"));
        assert!(i.excluded("x/y/z.go"));
        assert!(!i.excluded("x/y/z.gox"));
        assert!(i.excluded("build"));
        assert!(i.excluded("build/out/bin"));
        assert!(!i.excluded("src/build"));
        assert!(i.excluded("tmp/x"));
        let i = ig("a/**/b\n**\n");
        assert!(i.excluded("anything/at/all"));
        let i = ig("a/**/b\n");
        assert!(i.excluded("a/b"));
        assert!(i.excluded("a/x/y/b"));
        assert!(!i.excluded("a/xb"));
    }

    /// docker's documented exception examples: the last matching line decides.
    #[test]
    fn exceptions() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.excluded("CHANGELOG.md"));
        assert!(!i.excluded("README.md"));
        let i = ig("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.excluded("README-secret.md"));
        assert!(!i.excluded("README-public.md"));
        assert!(i.excluded("other.md"));
        let i = ig("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(!i.excluded("README-secret.md"));
        // A whole directory, one file inside it back.
        let i = ig("docs\n!docs/keep.txt\n");
        assert!(i.excluded("docs/other.txt"));
        assert!(!i.excluded("docs/keep.txt"));
        assert!(i.has_exclusions());
    }

    #[test]
    fn match_rules_of_filepath_match() {
        let i = ig("*\n");
        assert!(i.excluded("a"));
        assert!(i.excluded("a/b"), "a parent directory matches");
        let i = ig("[a-c]?.txt\n\\*.log\nfile[!0-9]\n");
        assert!(i.excluded("b1.txt"));
        assert!(!i.excluded("d1.txt"));
        assert!(i.excluded("*.log"));
        assert!(!i.excluded("x.log"));
        assert!(i.excluded("filex"));
        assert!(!i.excluded("file1"));
        let i = ig("a*b\n");
        assert!(!i.excluded("a/b"), "* never crosses /");
        assert!(Ignore::parse("x", "[a-\n").is_err());
        assert!(Ignore::parse("x", "a\\\n").is_err());
    }

    #[test]
    fn ignore_file_beside_a_named_dockerfile_wins() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".dockerignore"), "a\n").unwrap();
        let df = d.path().join("app.Dockerfile");
        assert_eq!(ignore_file(d.path(), &df), Some(d.path().join(".dockerignore")));
        std::fs::write(d.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        assert_eq!(ignore_file(d.path(), &df), Some(d.path().join("app.Dockerfile.dockerignore")));
    }

    #[test]
    fn corpus_ignore_files_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let i = Ignore::parse(
            "f",
            &std::fs::read_to_string(root.join("react-nginx/.dockerignore")).unwrap(),
        )
        .unwrap();
        assert!(i.excluded("node_modules/x/y.js"));
    }
}
