//! Printing a [`Project`] the way `docker compose config` does: YAML as Go's yaml.v3 writes it
//! (2-space indent, sequences indented under their key, yaml.v3's quoting rules) and JSON as
//! Go's `encoding/json` writes it (2-space indent, `<>&` escaped). Also the per-service config
//! hash compose stores in the `com.docker.compose.config-hash` label.

use serde::Serialize;
use serde_json::Value as J;
use sha2::{Digest, Sha256};

use crate::model::{Network, Project, Service, Volume, with_json_mode};

/// The project as compose's YAML.
pub fn to_yaml(p: &Project) -> String {
    let v = to_value(p, false);
    let mut out = String::new();
    yaml_value(&mut out, &v, 0);
    out
}

/// The project as compose's JSON (`config --format json`).
pub fn to_json(p: &Project) -> String {
    let mut v = to_value(p, true);
    // compose prints the project through a Go map: top-level keys sorted, extensions included.
    if let J::Object(m) = &mut v {
        for (k, e) in &p.extensions.0 {
            m.insert(k.clone(), e.clone());
        }
        let mut entries: Vec<(String, J)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        m.extend(entries);
    }
    let mut out = String::new();
    json_value(&mut out, &v, Some(0));
    out.push('\n');
    out
}

/// A loaded but untyped tree (`config --no-interpolate`) as compose prints its raw model: keys
/// sorted at every level, `name` added; JSON when `json` is set.
pub fn tree_to_text(root: &crate::tree::Node, project_name: &str, json: bool) -> String {
    let mut v = crate::convert::to_json(root);
    if let J::Object(m) = &mut v {
        m.insert("name".into(), J::String(project_name.to_string()));
        let mut entries: Vec<(String, J)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        m.extend(entries);
    }
    let mut out = String::new();
    if json {
        json_value(&mut out, &v, Some(0));
        out.push('\n');
    } else {
        yaml_value(&mut out, &v, 0);
    }
    out
}

/// Any serialisable model value as compose's YAML (used for single sections).
pub fn value_to_yaml<T: Serialize>(v: &T) -> String {
    let v = with_json_mode(false, || serde_json::to_value(v)).unwrap_or(J::Null);
    let mut out = String::new();
    yaml_value(&mut out, &v, 0);
    out
}

/// The config hash of one service: sha256 over its compact JSON with the fields compose leaves
/// out (build, pull_policy, scale, deploy.replicas, depends_on, profiles) removed.
pub fn service_hash(s: &Service) -> String {
    let mut s = s.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    s.depends_on.clear();
    s.profiles.clear();
    hash_json(&s)
}

/// The config hash of a network (sha256 over its compact JSON), as compose computes it.
pub fn network_hash(n: &Network) -> String {
    hash_json(n)
}

/// The config hash of a volume (driver defaults to `local`), as compose computes it.
pub fn volume_hash(v: &Volume) -> String {
    let mut v = v.clone();
    if v.driver.is_none() {
        v.driver = Some("local".into());
    }
    hash_json(&v)
}

fn hash_json<T: Serialize>(t: &T) -> String {
    let v = with_json_mode(true, || serde_json::to_value(t)).unwrap_or(J::Null);
    let mut out = String::new();
    json_value(&mut out, &v, None);
    hex::encode(Sha256::digest(out.as_bytes()))
}

fn to_value(p: &Project, json: bool) -> J {
    // Serialising plain data structures to a JSON value cannot fail (string keys only).
    with_json_mode(json, || serde_json::to_value(p)).unwrap_or(J::Null)
}

// ---------------------------------------------------------------- YAML

fn is_empty_container(v: &J) -> bool {
    matches!(v, J::Object(m) if m.is_empty()) || matches!(v, J::Array(a) if a.is_empty())
}

/// Writes `v` as the body of a block at `indent` (a mapping's keys start at `indent`).
fn yaml_value(out: &mut String, v: &J, indent: usize) {
    match v {
        J::Object(m) if !m.is_empty() => {
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 || !out.is_empty() && !out.ends_with("- ") {
                    pad(out, indent);
                }
                write_entry(out, k, val, indent);
            }
        }
        J::Array(a) if !a.is_empty() => {
            for item in a {
                pad(out, indent);
                write_item(out, item, indent);
            }
        }
        other => {
            out.push_str(&inline(other, indent));
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

fn write_entry(out: &mut String, k: &str, val: &J, indent: usize) {
    out.push_str(&scalar_str(k, indent));
    out.push(':');
    match val {
        J::Object(m) if !m.is_empty() => {
            out.push('\n');
            for (ck, cv) in m {
                pad(out, indent + 2);
                write_entry(out, ck, cv, indent + 2);
            }
        }
        J::Array(a) if !a.is_empty() => {
            out.push('\n');
            for item in a {
                pad(out, indent + 2);
                write_item(out, item, indent + 2);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other, indent + 2));
            out.push('\n');
        }
    }
}

/// One sequence item; the cursor is at the dash's column `indent`.
fn write_item(out: &mut String, item: &J, indent: usize) {
    out.push_str("- ");
    match item {
        J::Object(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    pad(out, indent + 2);
                }
                write_entry(out, k, v, indent + 2);
            }
        }
        J::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    pad(out, indent + 2);
                }
                write_item(out, x, indent + 2);
            }
        }
        other => {
            out.push_str(&inline(other, indent + 2));
            out.push('\n');
        }
    }
}

/// A scalar or empty container on one line (block scalars continue on the next lines).
fn inline(v: &J, indent: usize) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => number(n),
        J::String(s) => scalar_str(s, indent),
        _ if is_empty_container(v) => {
            if v.is_object() {
                "{}".into()
            } else {
                "[]".into()
            }
        }
        _ => "null".into(),
    }
}

fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    crate::convert::fmt_float(f)
}

/// A string scalar quoted as yaml.v3 would; multi-line strings become literal blocks.
fn scalar_str(s: &str, indent: usize) -> String {
    if s.contains('\n') {
        if literal_ok(s) {
            return literal(s, indent);
        }
        return double_quoted(s);
    }
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().all(printable) { single_quoted(s) } else { double_quoted(s) }
}

fn printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

fn literal_ok(s: &str) -> bool {
    if !s.chars().all(printable) {
        return false;
    }
    if s.starts_with([' ', '\n']) {
        return false;
    }
    // A space right before a line break, or trailing spaces, rule out block styles in libyaml.
    !s.contains(" \n") && !s.ends_with(' ')
}

fn literal(s: &str, indent: usize) -> String {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let mut out = format!("|{chomp}");
    let body = if trailing == 1 {
        &s[..s.len() - 1]
    } else if trailing == 0 {
        s
    } else {
        &s[..s.len() - trailing]
    };
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    out
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if !printable(c) => {
                let v = c as u32;
                if v <= 0xff {
                    out.push_str(&format!("\\x{v:02X}"));
                } else if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04X}"));
                } else {
                    out.push_str(&format!("\\U{v:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Would a plain scalar with this text be read as something other than a string (yaml.v3
/// resolves YAML 1.1 booleans, ints with `0x`/`0o`/`_`, floats, null, timestamps)?
fn resolves_to_non_string(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "<<"
            | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    ) {
        // Mixed-case forms like "tRUE" are plain strings to yaml.v3, but quoting them is harmless.
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return false;
    }
    if is_go_int(s) || is_yaml_float(s) || is_timestamp(s) || is_base60(s) {
        return true;
    }
    false
}

fn is_go_int(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return false;
    }
    let (digits, radix) = if let Some(r) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        (r, 2)
    } else {
        (t, 10)
    };
    let digits = digits.trim_start_matches('_');
    !digits.is_empty() && digits.chars().all(|c| c == '_' || c.is_digit(radix))
}

fn is_yaml_float(s: &str) -> bool {
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mant_ok = match mant.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() && !b.is_empty() && b.chars().all(|c| c.is_ascii_digit()))
                || (!a.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit()))
        }
        None => !mant.is_empty() && mant.chars().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        }
    };
    mant_ok && exp_ok
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' '))
}

fn is_base60(s: &str) -> bool {
    // yaml.v3 quotes YAML 1.1 sexagesimal numbers: [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (body, frac) = match t.split_once('.') {
        Some((b, f)) => (b, Some(f)),
        None => (t, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = body.split(':');
    let first = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty()
        || !first.starts_with(|c: char| c.is_ascii_digit())
        || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    rest.iter().all(|m| {
        let b = m.as_bytes();
        match b.len() {
            1 => b[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
            _ => false,
        }
    })
}

/// libyaml's test for a plain scalar in block context.
fn plain_ok(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let Some(&first) = chars.first() else { return false };
    if first == ' ' || chars.last() == Some(&' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if !chars.iter().all(|c| printable(*c) && *c != '\n') {
        return false;
    }
    let followed_by_space = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ');
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && followed_by_space(0) {
        return false;
    }
    for (i, c) in chars.iter().enumerate() {
        if *c == ':' && followed_by_space(i) {
            return false;
        }
        if *c == '#' && i > 0 && chars[i - 1] == ' ' {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------- JSON

/// Go-style JSON; `indent` None writes compact output.
fn json_value(out: &mut String, v: &J, indent: Option<usize>) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&json_number(n)),
        J::String(s) => json_string(out, s),
        J::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent.map(|n| n + 1));
                json_value(out, x, indent.map(|n| n + 1));
            }
            newline(out, indent);
            out.push(']');
        }
        J::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent.map(|n| n + 1));
                json_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                json_value(out, x, indent.map(|n| n + 1));
            }
            newline(out, indent);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, level: Option<usize>) {
    if let Some(l) = level {
        out.push('\n');
        for _ in 0..l {
            out.push_str("  ");
        }
    }
}

fn json_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        format!("{f:e}")
    } else {
        crate::convert::fmt_float(f)
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(scalar_str("3000", 0), "\"3000\"");
        assert_eq!(scalar_str("no", 0), "\"no\"");
        assert_eq!(scalar_str("", 0), "\"\"");
        assert_eq!(scalar_str("redis:alpine", 0), "redis:alpine");
        assert_eq!(scalar_str("a: b", 0), "'a: b'");
        assert_eq!(scalar_str("-p", 0), "-p");
        assert_eq!(scalar_str("- x", 0), "'- x'");
        assert_eq!(scalar_str("*", 0), "'*'");
        assert_eq!(scalar_str("1.5", 0), "\"1.5\"");
        assert_eq!(scalar_str("0x1F", 0), "\"0x1F\"");
        assert_eq!(scalar_str("1_000", 0), "\"1_000\"");
        assert_eq!(scalar_str("127.0.0.1", 0), "127.0.0.1");
        assert_eq!(scalar_str("02:42:ac:11:65:43", 0), "02:42:ac:11:65:43");
        assert_eq!(scalar_str("a\nb\n", 4), "|\n    a\n    b");
    }
}
