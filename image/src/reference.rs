//! Image references with docker's normalisation: `busybox` is `docker.io/library/busybox:latest`
//! and is shown as `busybox:latest`.
//!
//! A small hand-written parser: oci-spec's `distribution::Reference` sits behind a feature the
//! workspace does not enable, and docker's rules we need (default domain, `library/`, default tag,
//! familiar form) fit in a page.

use std::fmt;

use super::ImageError;

/// The registry assumed when a name has no domain part.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag assumed when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// A normalised `domain/path:tag` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry domain, e.g. `docker.io` or `localhost:5000`.
    pub domain: String,
    /// Repository path, e.g. `library/busybox`.
    pub path: String,
    /// Tag, e.g. `latest`.
    pub tag: String,
}

impl Reference {
    /// Parses and normalises `s` (`busybox`, `busybox:1.36`, `example.com/a/b:tag`).
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        if s.contains('@') {
            return Err(bad("digest references are not supported yet"));
        }
        // The tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, DEFAULT_TAG),
        };
        if !valid_tag(tag) {
            return Err(bad("invalid tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !valid_domain(&domain) {
            return Err(bad("invalid registry domain"));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(bad("repository name must be lowercase letters, digits and separators"));
        }
        Ok(Reference { domain, path, tag: tag.to_string() })
    }

    /// The fully qualified form, e.g. `docker.io/library/busybox:latest` (the index key).
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// The repository without tag in familiar form, e.g. `busybox` or `example.com/a/b`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix("library/").unwrap_or(&self.path).to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }
}

impl fmt::Display for Reference {
    /// The familiar form, e.g. `busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.familiar_name(), self.tag)
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == ':')
        && !d.starts_with(['.', '-', ':'])
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`, checked loosely: lowercase alphanumerics joined by
/// single separators, starting and ending with an alphanumeric.
fn valid_path_component(c: &str) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    !c.is_empty()
        && c.starts_with(alnum)
        && c.ends_with(alnum)
        && c.chars().all(|ch| alnum(ch) || ch == '.' || ch == '_' || ch == '-')
        && !c.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.to_string(), "busybox:latest");
        let r = Reference::parse("me/app:1.0").unwrap();
        assert_eq!(r.full(), "docker.io/me/app:1.0");
        assert_eq!(r.to_string(), "me/app:1.0");
        let r = Reference::parse("localhost:5000/x/y").unwrap();
        assert_eq!(r.full(), "localhost:5000/x/y:latest");
        assert_eq!(r.to_string(), "localhost:5000/x/y:latest");
        assert_eq!(
            Reference::parse("docker.io/library/busybox:1").unwrap().to_string(),
            "busybox:1"
        );
        for bad in ["", "Busybox", "a:b:c", "a@sha256:00", "a/../b", "x:-t", "a//b"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
