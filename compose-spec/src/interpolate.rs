//! Variable interpolation: `$VAR`, `${VAR}`, `${VAR:-def}`, `${VAR-def}`, `${VAR:?msg}`,
//! `${VAR?msg}`, `${VAR:+alt}`, `${VAR+alt}`, nesting in the word part, and `$$` escapes.

use indexmap::IndexMap;

use crate::error::LoadError;
use crate::tree::{Mapping, Node, Value};
use crate::yaml::{join, path_opt};

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// The template is malformed (the whole template is given).
    Invalid(String),
    /// A `?` / `:?` variable is missing: (name, message).
    Required(String, String),
}

impl SubstError {
    /// The error as a sentence fragment, compose-like.
    pub fn message(&self) -> String {
        match self {
            SubstError::Invalid(t) => format!(
                "invalid interpolation format {t:?}: you may need to escape any $ with another $"
            ),
            SubstError::Required(name, msg) if msg.is_empty() => {
                format!("required variable {name} is missing a value")
            }
            SubstError::Required(name, msg) => {
                format!("required variable {name} is missing a value: {msg}")
            }
        }
    }
}

/// The warning compose prints for an unset variable.
pub fn unset_warning(name: &str) -> String {
    format!("The \"{name}\" variable is not set. Defaulting to a blank string.")
}

/// Substitutes variables in `template`; `lookup` returns a variable's value when it is set.
/// Unset variables without a default become empty and add a warning (once per name).
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<String, SubstError> {
    let mut s = Subst { template, lookup, warnings };
    s.run(template)
}

struct Subst<'a> {
    /// The outermost template (for error messages).
    template: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warnings: &'a mut Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

impl Subst<'_> {
    fn invalid(&self) -> SubstError {
        SubstError::Invalid(self.template.to_string())
    }

    fn get(&mut self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn get_or_warn(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v,
            None => {
                let w = unset_warning(name);
                if !self.warnings.contains(&w) {
                    self.warnings.push(w);
                }
                String::new()
            }
        }
    }

    fn run(&mut self, text: &str) -> Result<String, SubstError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let mut chars = after.chars();
            match chars.next() {
                Some('$') => {
                    out.push('$');
                    rest = &after[1..];
                }
                Some('{') => {
                    let body_start = 1;
                    let end = closing_brace(after).ok_or_else(|| self.invalid())?;
                    let body = &after[body_start..end];
                    out.push_str(&self.braced(body)?);
                    rest = &after[end + 1..];
                }
                Some(c) if is_name_start(c) => {
                    let len = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                    let name = &after[..len];
                    out.push_str(&self.get_or_warn(name));
                    rest = &after[len..];
                }
                // Not a variable reference: compose keeps the `$` as written.
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `name`, or `name` followed by an operator and a word (itself a template).
    fn braced(&mut self, body: &str) -> Result<String, SubstError> {
        let name_len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
        let name = &body[..name_len];
        if name.is_empty() || !name.starts_with(is_name_start) {
            return Err(self.invalid());
        }
        let op_and_word = &body[name_len..];
        if op_and_word.is_empty() {
            return Ok(self.get_or_warn(name));
        }
        let (colon, rest) = match op_and_word.strip_prefix(':') {
            Some(r) => (true, r),
            None => (false, op_and_word),
        };
        let mut it = rest.chars();
        let op = it.next().ok_or_else(|| self.invalid())?;
        let word = it.as_str();
        let value = self.get(name);
        // With `:`, an empty value counts as unset.
        let set = match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        match op {
            '-' => {
                if set {
                    Ok(value.unwrap_or_default())
                } else {
                    self.run(word)
                }
            }
            '?' => {
                if set {
                    Ok(value.unwrap_or_default())
                } else {
                    let msg = self.run(word)?;
                    Err(SubstError::Required(name.to_string(), msg))
                }
            }
            '+' => {
                if set {
                    self.run(word)
                } else {
                    Ok(String::new())
                }
            }
            _ => Err(self.invalid()),
        }
    }
}

/// Index (in `s`, which starts with `{`) of the `}` closing it. As compose counts: every `{`
/// opens (and the character right after it is skipped), every `}` closes, so a default that
/// holds braces (`${JSON:-{"a":1}}`) ends at the brace that balances the first one.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Interpolates every string scalar (values and mapping keys) of `node` in place.
pub fn interpolate_node(
    node: &mut Node,
    env: &IndexMap<String, String>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    let lookup = |k: &str| env.get(k).cloned();
    walk(node, &lookup, path, warnings)
}

fn walk(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    match &mut node.value {
        Value::String(s) if s.contains('$') => {
            *s = substitute(s, lookup, warnings).map_err(|e| {
                LoadError::invalid(Some(node.mark.clone()), path_opt(path), e.message())
            })?;
        }
        Value::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                walk(it, lookup, &format!("{path}[{i}]"), warnings)?;
            }
        }
        Value::Map(m) => {
            if m.keys().any(|k| k.contains('$')) {
                let old = std::mem::take(m);
                let mut new = Mapping::new();
                for (k, (km, v)) in old {
                    let k2 = if k.contains('$') {
                        substitute(&k, lookup, warnings).map_err(|e| {
                            LoadError::invalid(
                                Some(km.clone()),
                                path_opt(&join(path, &k)),
                                e.message(),
                            )
                        })?
                    } else {
                        k
                    };
                    new.insert(k2, (km, v));
                }
                *m = new;
            }
            for (k, (_, v)) in m.iter_mut() {
                walk(v, lookup, &join(path, k), warnings)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_brace_nested() {
        assert_eq!(closing_brace("{A:-${B}}x"), Some(8));
        assert_eq!(closing_brace("{A"), None);
        assert_eq!(closing_brace(r#"{J:-{"json":1}}x"#), Some(14));
        assert_eq!(closing_brace(r#"{J:-{"a":{"b":1}}}"#), Some(17));
    }
}
