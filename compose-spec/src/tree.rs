//! The positioned YAML tree every loading stage works on: each node keeps the file, line and
//! column it came from (so errors can point at it) and its custom tag (`!reset`, `!override`).
//!
//! Scalars are resolved with the YAML 1.2 core schema when parsed (plain `8080` is an `Int`,
//! quoted `"8080"` a `String`); later stages convert strings to the types the spec wants.

use std::sync::Arc;

use indexmap::IndexMap;

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mark {
    /// The file as the user named it (or `-` for stdin, or `<cli>` for synthesised values).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// One YAML node with its position and optional custom tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub mark: Mark,
    /// A custom (non-core) tag such as `!reset` or `!override`, without resolving it.
    pub tag: Option<String>,
}

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (quoted, or plain and not another type).
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with string keys in declaration order.
    Map(Mapping),
}

/// A mapping: key -> (position of the key, value node), in declaration order.
pub type Mapping = IndexMap<String, (Mark, Node)>;

impl Node {
    /// A node with no custom tag.
    pub fn new(value: Value, mark: Mark) -> Self {
        Node { value, mark, tag: None }
    }

    /// The mapping, if this node is one.
    pub fn as_map(&self) -> Option<&Mapping> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The mapping (mutable), if this node is one.
    pub fn as_map_mut(&mut self) -> Option<&mut Mapping> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence, if this node is one.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The string, if this node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key)).map(|(_, n)| n)
    }

    /// A short name of the value's type for error messages (`string`, `mapping`, ...).
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }
}

impl Node {
    /// The value as JSON (positions and tags dropped; NaN/infinite floats become null).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(m) => {
                J::Object(m.iter().map(|(k, (_, v))| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

impl Node {
    /// The type name with its article, for messages: `a mapping`, `an integer`.
    pub fn a_type_name(&self) -> String {
        let t = self.type_name();
        if t.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {t}") } else { format!("a {t}") }
    }
}
