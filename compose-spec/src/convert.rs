//! Checked conversions from positioned tree nodes to typed values, shared by normalisation.
//!
//! Each helper names the key path and position of the offending node in its error, and accepts
//! the string forms interpolation produces (`"3"` for an integer, `"true"` for a boolean).

use indexmap::IndexMap;

use crate::error::LoadError;
use crate::model::{ByteSize, Duration, Extensions, Map};
use crate::tree::{Mapping, Mark, Node, Value};

/// Result alias for conversions.
pub type R<T> = Result<T, LoadError>;

/// An `Invalid` error at `node` for `path`.
pub fn err(node: &Node, path: &str, msg: impl Into<String>) -> LoadError {
    LoadError::invalid(Some(node.mark.clone()), path.to_string(), msg)
}

/// An `Invalid` error at `mark` for `path`.
pub fn err_at(mark: &Mark, path: &str, msg: impl Into<String>) -> LoadError {
    LoadError::invalid(Some(mark.clone()), path.to_string(), msg)
}

/// `parent.key` (or `key` at the root).
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// `parent[i]`.
pub fn idx(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Checks `node` is a mapping whose keys are all in `allowed` (or `x-*`), and returns it with
/// its extensions. Unknown keys get a "did you mean" hint for near misses.
pub fn object<'a>(node: &'a Node, path: &str, allowed: &[&str]) -> R<(&'a Mapping, Extensions)> {
    let map = node
        .as_map()
        .ok_or_else(|| err(node, path, format!("must be a mapping, not a {}", node.type_name())))?;
    let mut ext = IndexMap::new();
    for (k, (mark, v)) in map {
        if k.starts_with("x-") {
            ext.insert(k.clone(), to_json(v));
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            let kp = join(path, k);
            let msg = match did_you_mean(k, allowed) {
                Some(s) => format!("unknown key \"{k}\" (did you mean \"{s}\"?)"),
                None => format!("unknown key \"{k}\""),
            };
            return Err(err_at(mark, &kp, msg));
        }
    }
    Ok((map, Extensions(ext)))
}

/// The closest allowed key within a small edit distance.
pub fn did_you_mean<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let max = (key.chars().count() / 3).clamp(1, 3);
    allowed
        .iter()
        .map(|a| (levenshtein(key, a), *a))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The value under `key`, treating an explicit null as absent.
pub fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Node> {
    m.get(key).map(|(_, n)| n).filter(|n| !matches!(n.value, Value::Null))
}

/// The mark of `key`'s key in `m`.
pub fn key_mark(m: &Mapping, key: &str) -> Option<Mark> {
    m.get(key).map(|(mk, _)| mk.clone())
}

/// Converts a node to JSON (maps sorted by key, as compose prints extension values).
pub fn to_json(n: &Node) -> serde_json::Value {
    match &n.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::String(s) => s.clone().into(),
        Value::Seq(s) => serde_json::Value::Array(s.iter().map(to_json).collect()),
        Value::Map(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), to_json(&m[k].1));
            }
            serde_json::Value::Object(out)
        }
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` would in common cases.
pub fn fmt_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

/// A string-typed key: only a YAML string is accepted (as the schema says).
pub fn string(n: &Node, path: &str) -> R<String> {
    match &n.value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(err(n, path, format!("must be a string, not a {}", n.type_name()))),
    }
}

/// A scalar rendered as a string (numbers and booleans allowed, as in labels and environment).
pub fn scalar(n: &Node, path: &str) -> R<String> {
    match &n.value {
        Value::String(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(fmt_float(*f)),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(err(n, path, format!("must be a string or number, not a {}", n.type_name()))),
    }
}

/// An optional string key.
pub fn opt_string(m: &Mapping, key: &str, path: &str) -> R<Option<String>> {
    get(m, key).map(|n| string(n, &join(path, key))).transpose()
}

/// An optional scalar key rendered as a string.
pub fn opt_scalar(m: &Mapping, key: &str, path: &str) -> R<Option<String>> {
    get(m, key).map(|n| scalar(n, &join(path, key))).transpose()
}

/// An integer (or a string holding one).
pub fn int(n: &Node, path: &str) -> R<i64> {
    match &n.value {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        Value::String(s) => {
            s.trim().parse::<i64>().map_err(|_| err(n, path, format!("\"{s}\" is not an integer")))
        }
        _ => Err(err(n, path, format!("must be an integer, not a {}", n.type_name()))),
    }
}

/// An optional integer key.
pub fn opt_int(m: &Mapping, key: &str, path: &str) -> R<Option<i64>> {
    get(m, key).map(|n| int(n, &join(path, key))).transpose()
}

/// A number (or a string holding one).
pub fn float(n: &Node, path: &str) -> R<f64> {
    match &n.value {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::String(s) => {
            s.trim().parse::<f64>().map_err(|_| err(n, path, format!("\"{s}\" is not a number")))
        }
        _ => Err(err(n, path, format!("must be a number, not a {}", n.type_name()))),
    }
}

/// An optional number key.
pub fn opt_float(m: &Mapping, key: &str, path: &str) -> R<Option<f64>> {
    get(m, key).map(|n| float(n, &join(path, key))).transpose()
}

/// A boolean (or a string `true`/`false`/`yes`/`no`/`on`/`off`).
pub fn boolean(n: &Node, path: &str) -> R<bool> {
    match &n.value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Ok(true),
            "false" | "no" | "n" | "off" => Ok(false),
            _ => Err(err(n, path, format!("\"{s}\" is not a boolean"))),
        },
        _ => Err(err(n, path, format!("must be a boolean, not a {}", n.type_name()))),
    }
}

/// An optional boolean key.
pub fn opt_bool(m: &Mapping, key: &str, path: &str) -> R<Option<bool>> {
    get(m, key).map(|n| boolean(n, &join(path, key))).transpose()
}

/// A boolean key defaulting to false.
pub fn flag(m: &Mapping, key: &str, path: &str) -> R<bool> {
    Ok(opt_bool(m, key, path)?.unwrap_or(false))
}

/// A sequence of scalars, as strings.
pub fn strings(n: &Node, path: &str) -> R<Vec<String>> {
    let seq = n.as_seq().ok_or_else(|| {
        err(n, path, format!("must be a list of strings, not a {}", n.type_name()))
    })?;
    seq.iter().enumerate().map(|(i, item)| scalar(item, &idx(path, i))).collect()
}

/// An optional list-of-strings key.
pub fn opt_strings(m: &Mapping, key: &str, path: &str) -> R<Vec<String>> {
    Ok(get(m, key).map(|n| strings(n, &join(path, key))).transpose()?.unwrap_or_default())
}

/// A string or a list of strings.
pub fn string_or_list(n: &Node, path: &str) -> R<Vec<String>> {
    match &n.value {
        Value::Seq(_) => strings(n, path),
        _ => Ok(vec![scalar(n, path)?]),
    }
}

/// An optional string-or-list key.
pub fn opt_string_or_list(m: &Mapping, key: &str, path: &str) -> R<Vec<String>> {
    Ok(get(m, key).map(|n| string_or_list(n, &join(path, key))).transpose()?.unwrap_or_default())
}

/// A `list_or_dict`: `{K: V}` or `["K=V", "K"]`; a missing value is `None`.
pub fn list_or_dict(n: &Node, path: &str) -> R<Map<Option<String>>> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Map(m) => {
            for (k, (_, v)) in m {
                let val = match &v.value {
                    Value::Null => None,
                    _ => Some(scalar(v, &join(path, k))?),
                };
                out.insert(k.clone(), val);
            }
        }
        Value::Seq(s) => {
            for (i, item) in s.iter().enumerate() {
                let p = idx(path, i);
                let text = scalar(item, &p)?;
                match text.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(text, None),
                };
            }
        }
        _ => {
            return Err(err(
                n,
                path,
                format!("must be a mapping or a list, not a {}", n.type_name()),
            ));
        }
    }
    Ok(out)
}

/// An optional `list_or_dict` key.
pub fn opt_list_or_dict(m: &Mapping, key: &str, path: &str) -> R<Map<Option<String>>> {
    Ok(get(m, key).map(|n| list_or_dict(n, &join(path, key))).transpose()?.unwrap_or_default())
}

/// A `list_or_dict` where a missing value is the empty string (labels, options).
pub fn opt_string_map(m: &Mapping, key: &str, path: &str) -> R<Map<String>> {
    Ok(opt_list_or_dict(m, key, path)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// Parses a duration like Go (`1m30s`, `500ms`, `1.5h`); a bare number means seconds, and
/// compose's `d` and `w` units are taken too.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return n.checked_mul(1_000_000_000);
    }
    units_duration(s, true)
}

/// Parses a duration as Go's `time.ParseDuration` does (a unit after every number but a lone
/// `0`; `ns` to `h`): what docker's flags and Dockerfile options take. Nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    units_duration(s, false)
}

/// `[+-]` then number+unit pairs; `days`: compose's `d` and `w` too.
fn units_duration(s: &str, days: bool) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" if days => 86400e9,
            "w" if days => 7.0 * 86400e9,
            _ => return None,
        };
        total += num * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let v = total.round() as i64;
    Some(if neg { -v } else { v })
}

/// A duration key.
pub fn duration(n: &Node, path: &str) -> R<Duration> {
    let text = scalar(n, path)?;
    parse_duration(&text)
        .map(Duration)
        .ok_or_else(|| err(n, path, format!("\"{text}\" is not a valid duration")))
}

/// An optional duration key.
pub fn opt_duration(m: &Mapping, key: &str, path: &str) -> R<Option<Duration>> {
    get(m, key).map(|n| duration(n, &join(path, key))).transpose()
}

/// Parses a byte size like docker (`1g`, `512m`, `1.5GB`, `100k`, plain bytes); binary units.
pub fn parse_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    if num_end == 0 {
        return None;
    }
    let num: f64 = t[..num_end].parse().ok()?;
    let unit = t[num_end..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let v = num * mult;
    if v > i64::MAX as f64 {
        return None;
    }
    Some(v as i64)
}

/// A byte-size key (integer bytes or a string with a unit).
pub fn bytes(n: &Node, path: &str) -> R<ByteSize> {
    match &n.value {
        Value::Int(i) if *i >= -1 => Ok(ByteSize(*i)),
        Value::String(s) if s.trim() == "-1" => Ok(ByteSize(-1)),
        Value::String(s) => parse_bytes(s)
            .map(ByteSize)
            .ok_or_else(|| err(n, path, format!("\"{s}\" is not a valid byte size"))),
        Value::Int(i) => Err(err(n, path, format!("{i} is not a valid byte size"))),
        _ => Err(err(n, path, format!("must be a byte size, not a {}", n.type_name()))),
    }
}

/// An optional byte-size key.
pub fn opt_bytes(m: &Mapping, key: &str, path: &str) -> R<Option<ByteSize>> {
    get(m, key).map(|n| bytes(n, &join(path, key))).transpose()
}

/// Splits a command string into words like a POSIX shell would (quotes and backslashes).
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(ch) => cur.push(ch),
                    None => cur.push('\\'),
                }
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// A command: a string (split into words) or a list.
pub fn command(n: &Node, path: &str) -> R<Vec<String>> {
    match &n.value {
        Value::String(s) => {
            shell_words(s).map_err(|e| err(n, path, format!("cannot split \"{s}\": {e}")))
        }
        Value::Seq(_) => strings(n, path),
        _ => Err(err(n, path, format!("must be a string or a list, not a {}", n.type_name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("10"), Some(10_000_000_000));
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("1.5gb"), Some(1_610_612_736));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("12q"), None);
    }

    #[test]
    fn words() {
        assert_eq!(shell_words(r#"sh -c "echo 'a b'""#).unwrap(), ["sh", "-c", "echo 'a b'"]);
        assert_eq!(shell_words("a  'b c' d\\ e").unwrap(), ["a", "b c", "d e"]);
        assert!(shell_words("'open").is_err());
        assert_eq!(did_you_mean("imgae", &["image", "build"]), Some("image"));
    }
}
