//! `.env` syntax as compose reads it: `KEY=VALUE` lines, `export ` prefixes, `#` comments,
//! single quotes (literal), double quotes (escapes, interpolation), multi-line quoted values,
//! inline comments after unquoted values, and `${VAR}` references to earlier keys or the
//! environment. Used for `.env`, `--env-file` and service `env_file`.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::error::LoadError;
use crate::interpolate::substitute;
use crate::tree::Mark;

/// Parses `.env` text. `lookup` gives variables from outside the file (checked before keys
/// defined earlier in the file); a bare `KEY` line takes its value from `lookup` or is skipped.
pub fn parse(
    src: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, LoadError> {
    let mut out: IndexMap<String, String> = IndexMap::new();
    let file: Arc<str> = Arc::from(file);
    let chars: Vec<char> = src.trim_start_matches('\u{feff}').chars().collect();
    let mut i = 0;
    let mut line: u32 = 1;
    let err = |line: u32, col: u32, msg: String| {
        LoadError::invalid(Some(Mark { file: file.clone(), line, column: col }), None, msg)
    };
    while i < chars.len() {
        // Start of a line: skip blanks.
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        if chars[i] == '\n' {
            i += 1;
            line += 1;
            continue;
        }
        if chars[i] == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        // Column of `i` on its own line (quoted values may span lines).
        let col = |i: usize| {
            let start = chars[..i].iter().rposition(|c| *c == '\n').map_or(0, |p| p + 1);
            u32::try_from(i - start + 1).unwrap_or(u32::MAX)
        };
        // Key.
        let key_start = i;
        while i < chars.len() && !matches!(chars[i], '=' | '\n' | ' ' | '\t' | '\r' | '#') {
            i += 1;
        }
        let mut key: String = chars[key_start..i].iter().collect();
        if key == "export" {
            let save = i;
            while i < chars.len() && matches!(chars[i], ' ' | '\t') {
                i += 1;
            }
            if i < chars.len() && !matches!(chars[i], '\n' | '=' | '#' | '\r') && i > save {
                let ks = i;
                while i < chars.len() && !matches!(chars[i], '=' | '\n' | ' ' | '\t' | '\r' | '#') {
                    i += 1;
                }
                key = chars[ks..i].iter().collect();
            } else {
                i = save;
            }
        }
        if let Some(bad) = key.chars().find(|c| !(c.is_alphanumeric() || "_.-[]".contains(*c))) {
            return Err(err(
                line,
                col(key_start),
                format!("unexpected character {bad:?} in variable name {key:?}"),
            ));
        }
        while i < chars.len() && matches!(chars[i], ' ' | '\t') {
            i += 1;
        }
        if i >= chars.len() || matches!(chars[i], '\n' | '\r' | '#') {
            // A bare key: inherit from the environment if set.
            if let Some(v) = lookup(&key) {
                out.insert(key, v);
            }
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if chars[i] != '=' {
            return Err(err(
                line,
                col(i),
                format!("unexpected character {:?} after variable name {key:?}", chars[i]),
            ));
        }
        i += 1;
        while i < chars.len() && matches!(chars[i], ' ' | '\t') {
            i += 1;
        }
        let value = match chars.get(i) {
            Some(&q @ ('\'' | '"')) => {
                let start_line = line;
                let start_col = col(i);
                i += 1;
                let mut raw = String::new();
                let mut closed = false;
                while i < chars.len() {
                    let c = chars[i];
                    if c == '\\' && q == '"' && i + 1 < chars.len() {
                        raw.push(c);
                        raw.push(chars[i + 1]);
                        if chars[i + 1] == '\n' {
                            line += 1;
                        }
                        i += 2;
                        continue;
                    }
                    if c == '\\' && q == '\'' && chars.get(i + 1) == Some(&'\'') {
                        raw.push('\'');
                        i += 2;
                        continue;
                    }
                    if c == q {
                        closed = true;
                        i += 1;
                        break;
                    }
                    if c == '\n' {
                        line += 1;
                    }
                    raw.push(c);
                    i += 1;
                }
                if !closed {
                    return Err(err(
                        start_line,
                        start_col,
                        format!("unterminated quoted value for {key:?}"),
                    ));
                }
                // Anything after the closing quote up to the end of line must be a comment.
                while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r') {
                    i += 1;
                }
                if i < chars.len() && chars[i] == '#' {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                } else if i < chars.len() && chars[i] != '\n' {
                    return Err(err(
                        line,
                        col(i),
                        format!(
                            "unexpected character {:?} after the quoted value of {key:?}",
                            chars[i]
                        ),
                    ));
                }
                if q == '\'' {
                    raw
                } else {
                    let unescaped = unescape_double(&raw);
                    expand(&unescaped, &out, lookup)
                        .map_err(|m| err(start_line, start_col, format!("{key}: {m}")))?
                }
            }
            _ => {
                let vs = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let mut raw: String = chars[vs..i].iter().collect();
                // An inline comment starts at ` #`.
                if let Some(p) = raw.find(" #").or_else(|| raw.find("\t#")) {
                    raw.truncate(p);
                }
                let raw = raw.trim().to_string();
                expand(&raw, &out, lookup).map_err(|m| err(line, col(vs), format!("{key}: {m}")))?
            }
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// Reads and parses an env file.
pub fn read_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, LoadError> {
    let shown = path.display().to_string();
    let src = read_regular_file(path).map_err(|e| {
        LoadError::invalid(None, None, format!("cannot read env file {shown}: {}", io_msg(&e)))
    })?;
    parse(&src, &shown, lookup)
}

/// Largest file the loader reads (compose files and env files are small; this stops devices
/// and runaway files).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Reads a regular file as UTF-8; devices, FIFOs and directories are refused (they could block
/// or never end). The type is checked on the opened file, and the open itself cannot block on
/// a FIFO (O_NONBLOCK), so a path swapped for one in between is refused too.
pub(crate) fn read_regular_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    (&mut f).take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other("file too large"));
    }
    String::from_utf8(buf).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
}

/// An I/O error as a short phrase without the OS error number.
pub(crate) fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::InvalidData => "not valid UTF-8".to_string(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(p) => s[..p].to_lowercase(),
                None => s,
            }
        }
    }
}

fn expand(
    raw: &str,
    earlier: &IndexMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if !raw.contains('$') {
        return Ok(raw.to_string());
    }
    let f = |k: &str| lookup(k).or_else(|| earlier.get(k).cloned());
    // Unset variables in .env files expand to empty without the compose-file warning.
    let mut ignored = Vec::new();
    substitute(raw, &f, &mut ignored).map_err(|e| e.message())
}

fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
