//! Image references with docker's normalisation: `busybox` is `docker.io/library/busybox:latest`
//! and is shown as `busybox:latest`.
//!
//! A small hand-written parser: oci-spec's `distribution::Reference` sits behind a feature the
//! workspace does not enable, and docker's rules we need (default domain, `library/`, default tag,
//! familiar form, `name@sha256:…` and `name:tag@sha256:…`) fit in a page.

use std::fmt;

use super::ImageError;

/// The registry assumed when a name has no domain part.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag assumed when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// A normalised `domain/path:tag` (or `domain/path[:tag]@sha256:…`) reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry domain, e.g. `docker.io` or `localhost:5000`.
    pub domain: String,
    /// Repository path, e.g. `library/busybox`.
    pub path: String,
    /// Tag, e.g. `latest`; empty for a digest-only reference (`name@sha256:…`).
    pub tag: String,
    /// `sha256:<hex>` of a digest reference.
    pub digest: Option<String>,
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
        let (s_name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                if !valid_digest(d) {
                    return Err(bad("a digest must be sha256: and 64 lowercase hex digits"));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = s_name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match s_name[last_slash..].rfind(':') {
            Some(i) => (&s_name[..last_slash + i], &s_name[last_slash + i + 1..]),
            None if digest.is_some() => (s_name, ""),
            None => (s_name, DEFAULT_TAG),
        };
        let digest_only = tag.is_empty() && digest.is_some();
        if !digest_only && !valid_tag(tag) {
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
        Ok(Reference { domain, path, tag: tag.to_string(), digest })
    }

    /// Parses a reference that names a tag (for `tag`, `import`, `load`): a digest in it is an
    /// error, as with docker ("refusing to create a tag with a digest reference").
    pub fn parse_tag(s: &str) -> Result<Self, ImageError> {
        let r = Self::parse(s)?;
        if r.digest.is_some() {
            return Err(ImageError::InvalidReference {
                reference: s.to_string(),
                reason: "refusing to create a tag with a digest reference".to_string(),
            });
        }
        Ok(r)
    }

    /// The fully qualified form, e.g. `docker.io/library/busybox:latest` (the index key), or
    /// `docker.io/library/busybox@sha256:…` for a digest reference.
    pub fn full(&self) -> String {
        let mut s = format!("{}/{}", self.domain, self.path);
        if !self.tag.is_empty() {
            s.push(':');
            s.push_str(&self.tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The repository with its domain, e.g. `docker.io/library/busybox` (the registry's name
    /// for it is [`Reference::path`]).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// What a registry is asked for: the digest when there is one, else the tag.
    pub fn registry_ref(&self) -> &str {
        self.digest.as_deref().unwrap_or(&self.tag)
    }

    /// The same repository with tag `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: tag.to_string(), digest: None, ..self.clone() }
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
    /// The familiar form, e.g. `busybox:latest` or `busybox@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar_name())?;
        if !self.tag.is_empty() {
            write!(f, ":{}", self.tag)?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
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

/// `sha256:` and 64 lowercase hex digits (the only algorithm berth stores).
pub(crate) fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
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
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.full(), format!("docker.io/library/busybox@{d}"));
        assert_eq!(r.to_string(), format!("busybox@{d}"));
        assert_eq!(r.registry_ref(), d);
        let r = Reference::parse(&format!("registry.example:443/team/app:1.2@{d}")).unwrap();
        assert_eq!(r.domain, "registry.example:443");
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag, "1.2");
        assert_eq!(r.registry_ref(), d);
        assert!(Reference::parse_tag(&format!("a@{d}")).is_err());
        for bad in ["", "Busybox", "a:b:c", "a@sha256:00", "a/../b", "x:-t", "a//b", "a@"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
