//! YAML text -> positioned [`Node`] tree, built from `saphyr-parser` events.
//!
//! Handles anchors/aliases, merge keys (`<<: *a`, `<<: [*a, *b]`), custom tags (kept in
//! [`Node::tag`]), YAML 1.2 core-schema resolution of plain scalars (plus `0440` as octal, as
//! compose reads it), string keys, and rejects duplicate keys. Every error carries file:line:column (1-based) and the key path.

use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use crate::error::LoadError;
use crate::tree::{Mapping, Mark, Node, Value};

/// Deepest nesting accepted; keeps recursion in this and later stages far from stack overflow.
const MAX_DEPTH: usize = 200;
/// Most nodes alias expansion may produce in one file (guards against "billion laughs").
const MAX_ALIAS_NODES: usize = 1_000_000;

/// Parses one compose file (its first document; later documents are merged over it as
/// compose does) into a positioned tree. An empty document yields `Null`.
pub fn parse(source: &str, file: Arc<str>) -> Result<Node, LoadError> {
    let docs = parse_documents(source, file.clone())?;
    let mut iter = docs.into_iter();
    let Some(mut first) = iter.next() else {
        return Ok(Node::new(Value::Null, Mark { file, line: 1, column: 1 }));
    };
    for doc in iter {
        first = crate::merge::merge_nodes(first, doc, "")?;
    }
    Ok(first)
}

/// Parses every document of a YAML stream (an empty stream yields no documents).
pub fn parse_documents(source: &str, file: Arc<str>) -> Result<Vec<Node>, LoadError> {
    let mut b = Builder {
        parser: Parser::new_from_str(source),
        file,
        anchors: HashMap::new(),
        alias_nodes: 0,
    };
    let mut docs = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                b.anchors.clear();
                let (ev, span) = b.next()?;
                let node = if matches!(ev, Event::DocumentEnd) {
                    Node::new(Value::Null, b.mark(&span))
                } else {
                    b.node(ev, span, "", 0)?
                };
                docs.push(node);
            }
            other => {
                return Err(b.err(&span, "", format!("unexpected YAML event {other:?}")));
            }
        }
    }
    Ok(docs)
}

/// Turns a stream of parser events into nodes.
struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    file: Arc<str>,
    /// Anchor id -> finished node, its node count (for the alias budget) and its height (so
    /// aliases cannot nest deeper than the limit).
    anchors: HashMap<usize, (Node, usize, usize)>,
    alias_nodes: usize,
}

/// A mapping key as read, before merge keys are applied.
enum Entry {
    Pair(String, Mark, Node),
    Merge(Vec<Node>),
}

impl<'a> Builder<'a> {
    fn mark(&self, span: &Span) -> Mark {
        Mark {
            file: self.file.clone(),
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX).max(1),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        }
    }

    fn err(&self, span: &Span, path: &str, msg: impl Into<String>) -> LoadError {
        LoadError::invalid(Some(self.mark(span)), path_opt(path), msg)
    }

    fn scan_err(&self, e: &ScanError) -> LoadError {
        let m = e.marker();
        LoadError::invalid(
            Some(Mark {
                file: self.file.clone(),
                line: u32::try_from(m.line()).unwrap_or(u32::MAX).max(1),
                column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
            }),
            None,
            format!("invalid YAML: {}", e.info()),
        )
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), LoadError> {
        match self.parser.next_event() {
            Some(Ok(x)) => Ok(x),
            Some(Err(e)) => Err(self.scan_err(&e)),
            // The parser stops after StreamEnd; treat running dry the same way.
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        path: &str,
        depth: usize,
    ) -> Result<Node, LoadError> {
        if depth > MAX_DEPTH {
            return Err(self.err(&span, path, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let mark = self.mark(&span);
        match ev {
            Event::Alias(id) => {
                let Some((node, count, height)) = self.anchors.get(&id) else {
                    return Err(self.err(
                        &span,
                        path,
                        "alias refers to an anchor that is not complete",
                    ));
                };
                if depth + height > MAX_DEPTH {
                    return Err(self.err(
                        &span,
                        path,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                self.alias_nodes = self.alias_nodes.saturating_add(*count);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(self.err(&span, path, "too many nodes produced by aliases"));
                }
                let mut node = node.clone();
                node.mark = mark;
                Ok(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut node = Node::new(Value::Null, mark);
                let (value, custom) = self.scalar(&text, style, tag.as_deref(), &span, path)?;
                node.value = value;
                node.tag = custom;
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    match ev {
                        Event::SequenceEnd => break,
                        Event::StreamEnd => {
                            return Err(self.err(&span, path, "unexpected end of sequence"));
                        }
                        ev => {
                            let p = format!("{path}[{}]", items.len());
                            items.push(self.node(ev, span, &p, depth + 1)?);
                        }
                    }
                }
                let mut node = Node::new(Value::Seq(items), mark);
                node.tag = custom_tag(tag.as_deref());
                self.anchor(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                let map = self.mapping(path, depth)?;
                let mut node = Node::new(Value::Map(map), mark);
                node.tag = custom_tag(tag.as_deref());
                self.anchor(anchor, &node);
                Ok(node)
            }
            other => Err(self.err(&span, path, format!("unexpected YAML event {other:?}"))),
        }
    }

    /// Reads key/value pairs up to MappingEnd, then applies merge keys.
    fn mapping(&mut self, path: &str, depth: usize) -> Result<Mapping, LoadError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        loop {
            let (ev, span) = self.next()?;
            let (key, is_merge) = match ev {
                Event::MappingEnd => break,
                Event::StreamEnd => return Err(self.err(&span, path, "unexpected end of mapping")),
                Event::Scalar(ref text, ScalarStyle::Plain, _, None) if text == "<<" => {
                    (String::new(), true)
                }
                Event::Scalar(..) | Event::Alias(_) => {
                    let k = self.node(ev, span, path, depth + 1)?;
                    match key_string(&k) {
                        Some(s) => (s, false),
                        None => {
                            return Err(self.err(
                                &span,
                                path,
                                format!("mapping keys must be scalars, found {}", k.a_type_name()),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(self.err(&span, path, "mapping keys must be scalars"));
                }
            };
            let key_mark = self.mark(&span);
            let (vev, vspan) = self.next()?;
            if is_merge {
                let p = join(path, "<<");
                let v = self.node(vev, vspan, &p, depth + 1)?;
                entries.push(Entry::Merge(merge_sources(v, &p)?));
                continue;
            }
            if let Some(line) = seen.get(&key) {
                return Err(self.err(
                    &span,
                    path,
                    format!("mapping key \"{key}\" already defined at line {line}"),
                ));
            }
            seen.insert(key.clone(), key_mark.line);
            let p = join(path, &key);
            let v = self.node(vev, vspan, &p, depth + 1)?;
            entries.push(Entry::Pair(key, key_mark, v));
        }
        // Explicit keys win over merged ones wherever they appear; among merged sources the
        // first one listed wins. Merged keys take the position of their `<<`.
        let mut map = Mapping::new();
        for e in entries {
            match e {
                Entry::Pair(k, m, v) => {
                    map.insert(k, (m, v));
                }
                Entry::Merge(sources) => {
                    for src in sources {
                        if let Value::Map(m) = src.value {
                            for (k, (km, v)) in m {
                                if !seen.contains_key(&k) && !map.contains_key(&k) {
                                    map.insert(k, (km, v));
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(map)
    }

    fn anchor(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            let count = count_nodes(node);
            self.anchors.insert(anchor, (node.clone(), count, height(node)));
        }
    }

    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        span: &Span,
        path: &str,
    ) -> Result<(Value, Option<String>), LoadError> {
        if let Some(t) = tag.filter(|t| t.is_yaml_core_schema()) {
            let v = match t.suffix.as_str() {
                "str" => Value::String(text.to_string()),
                "null" => Value::Null,
                "bool" => match resolve_plain(text) {
                    v @ Value::Bool(_) => v,
                    _ => return Err(self.err(span, path, format!("{text:?} is not a boolean"))),
                },
                "int" => match resolve_plain(text) {
                    v @ Value::Int(_) => v,
                    _ => return Err(self.err(span, path, format!("{text:?} is not an integer"))),
                },
                "float" => match resolve_plain(text) {
                    Value::Int(i) => Value::Float(i as f64),
                    v @ Value::Float(_) => v,
                    _ => return Err(self.err(span, path, format!("{text:?} is not a float"))),
                },
                _ => resolve_plain(text),
            };
            return Ok((v, None));
        }
        let v = if style == ScalarStyle::Plain {
            resolve_plain(text)
        } else {
            Value::String(text.to_string())
        };
        Ok((v, custom_tag(tag)))
    }
}

/// The custom (non-core) tag as written, e.g. `!reset`.
fn custom_tag(tag: Option<&Tag>) -> Option<String> {
    tag.filter(|t| !t.is_yaml_core_schema()).map(|t| t.to_string())
}

/// A merge key's value: one mapping or a sequence of mappings.
fn merge_sources(v: Node, path: &str) -> Result<Vec<Node>, LoadError> {
    match v.value {
        Value::Map(_) => Ok(vec![v]),
        Value::Seq(items) => {
            for it in &items {
                if it.as_map().is_none() {
                    // An item positioned before its list came through an alias: point at the list.
                    let before = (it.mark.line, it.mark.column) < (v.mark.line, v.mark.column);
                    let mark = if before { v.mark.clone() } else { it.mark.clone() };
                    return Err(LoadError::invalid(
                        Some(mark),
                        path_opt(path),
                        format!(
                            "merge key value must be a mapping or a sequence of mappings, found a sequence containing {}",
                            it.a_type_name()
                        ),
                    ));
                }
            }
            Ok(items)
        }
        _ => Err(LoadError::invalid(
            Some(v.mark.clone()),
            path_opt(path),
            format!(
                "merge key value must be a mapping or a sequence of mappings, found {}",
                v.a_type_name()
            ),
        )),
    }
}

/// A scalar key as a string: integers, booleans and null keys keep their text form.
fn key_string(n: &Node) -> Option<String> {
    Some(match &n.value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Seq(_) | Value::Map(_) => return None,
    })
}

/// Levels of nesting below `n` (a scalar is 0).
fn height(n: &Node) -> usize {
    match &n.value {
        Value::Seq(s) => s.iter().map(height).max().unwrap_or(0) + 1,
        Value::Map(m) => m.values().map(|(_, v)| height(v)).max().unwrap_or(0) + 1,
        _ => 0,
    }
}

fn count_nodes(n: &Node) -> usize {
    match &n.value {
        Value::Seq(s) => s.iter().map(count_nodes).sum::<usize>() + 1,
        Value::Map(m) => m.values().map(|(_, v)| count_nodes(v)).sum::<usize>() + 1,
        _ => 1,
    }
}

/// `a.b` (or `b` at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// `None` for the root path.
pub(crate) fn path_opt(path: &str) -> Option<String> {
    if path.is_empty() { None } else { Some(path.to_string()) }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    // Hex and octal forms; anything else with these prefixes is a string.
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let valid = !rest.is_empty() && rest.chars().all(|c| c.is_digit(radix));
            return match i64::from_str_radix(rest, radix) {
                Ok(i) if valid => Value::Int(i),
                _ => Value::String(text.to_string()),
            };
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    // `0440` is octal, as compose's YAML library reads it (file modes are written this way).
    if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        && let Ok(i) = i64::from_str_radix(digits, 8)
    {
        return Value::Int(if text.starts_with('-') { -i } else { i });
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        // Too large for i64: the core schema still calls it a number.
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    match text.parse::<f64>() {
        Ok(f) if is_core_float(digits) => return Value::Float(f),
        _ => {}
    }
    Value::String(text.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already removed).
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = count_digits(&b[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = count_digits(&b[i..]);
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = count_digits(&b[i..]);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

fn count_digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, LoadError> {
        parse(s, Arc::from("c.yaml"))
    }

    #[test]
    fn scalars_resolve_with_core_schema() {
        let cases = [
            ("1", Value::Int(1)),
            ("-12", Value::Int(-12)),
            ("0x1F", Value::Int(31)),
            ("0o17", Value::Int(15)),
            ("1.5", Value::Float(1.5)),
            ("1e3", Value::Float(1000.0)),
            ("true", Value::Bool(true)),
            ("yes", Value::String("yes".into())),
            ("~", Value::Null),
            ("'1'", Value::String("1".into())),
            ("\"true\"", Value::String("true".into())),
            ("80:80", Value::String("80:80".into())),
            ("1.2.3", Value::String("1.2.3".into())),
            ("!!str 12", Value::String("12".into())),
        ];
        for (src, want) in cases {
            assert_eq!(p(src).map(|n| n.value), Ok(want), "{src}");
        }
    }

    #[test]
    fn marks_are_one_based() {
        let n = p("a:\n  b: 1\n").unwrap_or_else(|e| panic!("{e}"));
        let a = n.get("a").unwrap_or_else(|| panic!("no a"));
        let (km, b) = a.as_map().and_then(|m| m.get("b")).cloned().unwrap_or_else(|| panic!());
        assert_eq!((km.line, km.column), (2, 3));
        assert_eq!((b.mark.line, b.mark.column), (2, 6));
    }
}
