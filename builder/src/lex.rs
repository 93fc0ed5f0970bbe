//! Dockerfile words: quotes, the escape character and variable substitution, with the rules of
//! BuildKit's shell lexer (`$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`,
//! `${VAR:?msg}`, `${VAR?msg}`, escaped `\$`; single quotes literal, double quotes expand).
//!
//! Instructions that take substitution (FROM, COPY, ADD, ENV, ARG, LABEL, EXPOSE, VOLUME, USER,
//! WORKDIR, STOPSIGNAL and the flags of RUN/COPY/ADD) are expanded when the build reaches them,
//! against the variables in scope there; RUN, CMD and ENTRYPOINT are left to the shell.

/// Variables in scope for substitution: name -> value, last definition wins.
pub trait Vars {
    /// The value of `name`, None when it is not set.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Vars for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Vars::get(self.as_slice(), name)
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    /// A quote or `${` was not closed.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    /// `${` followed by something that is not a variable name.
    #[error("bad substitution in {0:?}")]
    BadSubstitution(String),
    /// `${VAR?msg}` / `${VAR:?msg}` with VAR unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message of the substitution (or docker's default).
        message: String,
    },
}

/// Collects words the way BuildKit does: characters from substitutions are split on
/// whitespace, quoted or escaped characters never are.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.cur));
                self.in_word = false;
            }
        } else {
            self.cur.push(c);
            self.in_word = true;
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.cur);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
    /// Heredoc body: quotes are literal, the escape character only escapes `$` and itself.
    heredoc: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end; returns the text and its words.
    fn process(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), LexError> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match c {
                '\'' | '"' if self.heredoc => {
                    self.pos += 1;
                    words.add_raw_char(c);
                    out.push(c);
                }
                _ if self.heredoc && c == self.escape => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if n == '$' || n == self.escape => {
                            self.pos += 1;
                            out.push(n);
                        }
                        _ => out.push(c),
                    }
                }
                '\'' => {
                    let s = self.single_quoted()?;
                    words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '"' => {
                    let s = self.double_quoted()?;
                    words.add_raw_string(&s);
                    out.push_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    words.add_string(&s);
                    out.push_str(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        // The escape character makes the next one literal; at the end it goes.
                        match self.next() {
                            Some(n) => {
                                words.add_raw_char(n);
                                out.push(n);
                            }
                            None => break,
                        }
                    } else {
                        words.add_char(c);
                        out.push(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(LexError::Unterminated(s)),
            None => Ok((out, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, LexError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err(LexError::Unterminated('\'')),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, LexError> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(LexError::Unterminated('"')),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            // Only these can be escaped inside double quotes; others keep it.
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                s.push(n);
                            }
                            Some(_) => s.push(c),
                        }
                    } else {
                        s.push(c);
                    }
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        // `$1`, `$2`: positional parameters, one digit, always empty here.
        if let Some(c) = self.peek()
            && c.is_ascii_digit()
        {
            self.pos += 1;
            name.push(c);
            return name;
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    fn dollar(&mut self) -> Result<String, LexError> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.vars.get(&name).unwrap_or_default().to_string());
        }
        self.pos += 1; // '{'
        let name = self.name();
        if name.is_empty() {
            return Err(LexError::BadSubstitution(self.rest_text()));
        }
        let value = self.vars.get(&name).map(str::to_string);
        match self.next() {
            Some('}') => Ok(value.unwrap_or_default()),
            None => Err(LexError::Unterminated('}')),
            Some(':') => {
                let op = self.next().ok_or(LexError::Unterminated('}'))?;
                let (word, _) = self.process(Some('}'))?;
                let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                match op {
                    '-' => Ok(if set_nonempty { value.unwrap_or_default() } else { word }),
                    '+' => Ok(if set_nonempty { word } else { String::new() }),
                    '?' if set_nonempty => Ok(value.unwrap_or_default()),
                    '?' => Err(required(name, word)),
                    _ => Err(LexError::BadSubstitution(format!("${{{name}:{op}{word}}}"))),
                }
            }
            Some(op @ ('-' | '+' | '?')) => {
                let (word, _) = self.process(Some('}'))?;
                match (op, value) {
                    ('-', Some(v)) => Ok(v),
                    ('-', None) => Ok(word),
                    ('+', Some(_)) => Ok(word),
                    ('+', None) => Ok(String::new()),
                    ('?', Some(v)) => Ok(v),
                    _ => Err(required(name, word)),
                }
            }
            Some(c) => Err(LexError::BadSubstitution(format!("${{{name}{c}"))),
        }
    }

    fn rest_text(&self) -> String {
        self.chars[self.pos.saturating_sub(2)..].iter().collect()
    }
}

fn required(name: String, word: String) -> LexError {
    let message = if word.is_empty() { "is not allowed to be unset".into() } else { word };
    LexError::Required { name, message }
}

/// Expands one word: quotes removed, escapes applied, variables substituted; whitespace kept.
pub fn expand_word(word: &str, escape: char, vars: &dyn Vars) -> Result<String, LexError> {
    let mut l = Lexer { chars: word.chars().collect(), pos: 0, escape, vars, heredoc: false };
    Ok(l.process(None)?.0)
}

/// Expands a heredoc body as a shell does: `$VAR` and `${...}` substituted, `\$` and `\\`
/// escaped, quotes and everything else literal.
pub fn expand_heredoc(text: &str, escape: char, vars: &dyn Vars) -> Result<String, LexError> {
    let mut l = Lexer { chars: text.chars().collect(), pos: 0, escape, vars, heredoc: true };
    Ok(l.process(None)?.0)
}

/// Expands and splits into words: whitespace outside quotes separates, also whitespace that a
/// substitution brought in (`EXPOSE $PORTS`).
pub fn expand_words(text: &str, escape: char, vars: &dyn Vars) -> Result<Vec<String>, LexError> {
    let mut l = Lexer { chars: text.chars().collect(), pos: 0, escape, vars, heredoc: false };
    Ok(l.process(None)?.1)
}

/// Splits raw text into words at unquoted, unescaped whitespace, keeping quotes and escapes
/// (what the parser stores for ENV/LABEL/ARG pairs before their expansion at build time).
pub fn split_raw(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        [("A", "a"), ("EMPTY", ""), ("SP", "x y"), ("HOME", "/root")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn w(s: &str) -> String {
        expand_word(s, '\\', &vars()).unwrap()
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(w("$A"), "a");
        assert_eq!(w("${A}b"), "ab");
        assert_eq!(w("$Ab"), "");
        assert_eq!(w("$UNSET-x"), "-x");
        assert_eq!(w("cost $5"), "cost ");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$-x"), "$-x");
    }

    #[test]
    fn modifiers_follow_docker() {
        assert_eq!(w("${UNSET:-d}"), "d");
        assert_eq!(w("${EMPTY:-d}"), "d");
        assert_eq!(w("${A:-d}"), "a");
        assert_eq!(w("${UNSET-d}"), "d");
        assert_eq!(w("${EMPTY-d}"), "");
        assert_eq!(w("${A:+set}"), "set");
        assert_eq!(w("${EMPTY:+set}"), "");
        assert_eq!(w("${EMPTY+set}"), "set");
        assert_eq!(w("${UNSET+set}"), "");
        assert_eq!(w("${UNSET:-$A}"), "a");
        assert_eq!(w("${UNSET:-${HOME}/x}"), "/root/x");
        assert_eq!(w("${A?}"), "a");
        let e = expand_word("${UNSET:?need it}", '\\', &vars()).unwrap_err();
        assert_eq!(e.to_string(), "UNSET: need it");
        assert!(expand_word("${EMPTY?}", '\\', &vars()).is_ok());
        assert!(expand_word("${A", '\\', &vars()).is_err());
        assert!(expand_word("${}", '\\', &vars()).is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w(r"\$A"), "$A");
        assert_eq!(w(r"'$A'"), "$A");
        assert_eq!(w(r#""$A b""#), "a b");
        assert_eq!(w(r#""\$A \"q\" \n""#), r#"$A "q" \n"#);
        assert_eq!(w(r"a\ b"), "a b");
        assert_eq!(expand_word("`$A", '`', &vars()).unwrap(), "$A");
        assert_eq!(expand_word(r"C:\dir", '`', &vars()).unwrap(), r"C:\dir");
        assert!(expand_word("'open", '\\', &vars()).is_err());
        assert!(expand_word("\"open", '\\', &vars()).is_err());
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let h = |s: &str| expand_heredoc(s, '\\', &vars()).unwrap();
        assert_eq!(h("it's \"$A\" ${UNSET:-d}\n"), "it's \"a\" d\n");
        assert_eq!(h(r"\$A \\ \n"), r"$A \ \n");
    }

    #[test]
    fn words_split_like_buildkit() {
        let ws = |s: &str| expand_words(s, '\\', &vars()).unwrap();
        assert_eq!(ws("80 $SP"), ["80", "x", "y"]);
        assert_eq!(ws(r#""$SP" 'a b' c\ d"#), ["x y", "a b", "c d"]);
        assert_eq!(ws("  "), Vec::<String>::new());
        assert_eq!(split_raw(r#"A="x y" B=\"z c"#, '\\'), [r#"A="x y""#, r#"B=\"z"#, "c"]);
    }
}
