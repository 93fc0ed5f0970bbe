//! Registries: pull, push, login and logout over the OCI distribution API (v2) with docker's
//! habits: references, `~/.docker/config.json` credentials and helpers, Bearer and Basic auth,
//! plain HTTP only for loopback and registries named insecure.
//!
//! Layers are streamed from the registry straight into the safe unpacker; their digest and size
//! are checked on the way, and a layer is committed to the store only once both match (a
//! mismatch drops its staging directory). Each verified layer is committed at once, so an
//! interrupted pull keeps it for the next one; the image itself (config, tag, repo digest) is
//! written last, under the root lock.

mod auth;
mod client;
mod config;
mod login;
mod pull;
mod push;

use std::fmt;
use std::sync::Arc;

pub use auth::{Credentials, logout};
pub use config::{
    CERTS_DIR_ENV, INSECURE_ENV, docker_config_dir, normalise_server, set_docker_config_dir,
    trusting_client,
};
pub use login::login;
pub use pull::{list_tags, pull};
pub use push::push;

/// What went wrong talking to a registry; each message is one sentence naming the registry,
/// the reference or the blob.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants credentials and has none (or none that give access).
    #[error(
        "{action} access denied for {repository}: the repository does not exist or needs credentials (berth login {registry})"
    )]
    AccessDenied {
        /// `pull` or `push`.
        action: &'static str,
        /// The repository (familiar form).
        repository: String,
        /// The registry domain.
        registry: String,
    },
    /// The registry refused the credentials given.
    #[error(
        "unauthorized: the registry {registry} refused the credentials of {username:?} (incorrect username or password)"
    )]
    BadCredentials {
        /// The registry domain.
        registry: String,
        /// The user name that was tried.
        username: String,
    },
    /// No manifest for this tag or digest.
    #[error("manifest for {reference} not found: manifest unknown")]
    ManifestUnknown {
        /// The reference (familiar form).
        reference: String,
    },
    /// A blob the manifest names is not in the registry.
    #[error(
        "the registry has no blob {digest} that {reference} names (blob unknown): the image in the registry is incomplete"
    )]
    BlobUnknown {
        /// The blob digest.
        digest: String,
        /// The reference (familiar form).
        reference: String,
    },
    /// Bytes from the registry do not hash to the digest that names them.
    #[error(
        "{what} {expected} of {reference} arrived with digest {got}: the registry's copy is damaged or was changed, nothing of it was stored"
    )]
    DigestMismatch {
        /// `layer`, `config`, `manifest`.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        got: String,
        /// The reference (familiar form).
        reference: String,
    },
    /// A blob's length differs from its descriptor's size.
    #[error(
        "{what} {digest} of {reference} is {got} bytes where its descriptor says {expected}: nothing of it was stored"
    )]
    SizeMismatch {
        /// `layer`, `config`, `manifest`.
        what: &'static str,
        /// The blob digest.
        digest: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The size that came (or at least came).
        got: u64,
        /// The reference (familiar form).
        reference: String,
    },
    /// A manifest, config or token is larger than berth accepts.
    #[error("{what} of {reference} is larger than {limit} bytes: refusing it")]
    TooLarge {
        /// What it was.
        what: &'static str,
        /// The reference or registry.
        reference: String,
        /// The limit.
        limit: u64,
    },
    /// A Docker image format v1 (schema 1) manifest.
    #[error(
        "{reference} is a Docker image format v1 (schema 1) image, which berth does not pull: push it again with a current client to convert it to schema 2 or OCI"
    )]
    Schema1 {
        /// The reference (familiar form).
        reference: String,
    },
    /// Nothing in an index matches the wanted platform.
    #[error(
        "no matching manifest for {wanted} in the manifest list entries of {reference}: it offers {offered}"
    )]
    NoMatchingPlatform {
        /// The reference (familiar form).
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// What the index lists.
        offered: String,
    },
    /// A single-platform image for another platform than the one asked for.
    #[error(
        "image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
    )]
    PlatformMismatch {
        /// The reference (familiar form).
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's.
        actual: String,
    },
    /// A platform string that does not parse.
    #[error(
        "invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
    )]
    BadPlatform(String),
    /// A manifest or index of a type or shape berth does not read.
    #[error("{reference}: {reason}")]
    BadManifest {
        /// The reference (familiar form).
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other answer the registry gave.
    #[error("the registry {registry} answered {status} to {what}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// The registry domain.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The request (e.g. `GET manifest team/app:1`).
        what: String,
        /// The registry's error message, if it gave one.
        detail: Option<String>,
    },
    /// The registry could not be reached (after retries).
    #[error("cannot reach the registry {registry} ({url}): {reason}")]
    Unreachable {
        /// The registry domain.
        registry: String,
        /// The URL tried.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The credentials store (config file or helper) failed.
    #[error("credentials: {0}")]
    Credentials(String),
    /// A layer's download stopped because another layer of the same pull failed (that
    /// failure is what the pull reports).
    #[error("the download was stopped: another layer of the image failed")]
    Cancelled,
    /// An image that cannot be pushed as asked.
    #[error("{0}")]
    Push(String),
}

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// GOARCH name (`amd64`, `arm64`).
    pub architecture: String,
    /// `v8`, `v7`, ... when given.
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform (`linux/<host arch>`).
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: crate::archive::host_arch().into(),
            variant: None,
        }
    }

    /// Parses `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`, `amd64` (os defaults to linux).
    pub fn parse(s: &str) -> Result<Platform, RegistryError> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if parts.is_empty() || parts.len() > 3 || !parts.iter().all(ok) {
            return Err(RegistryError::BadPlatform(s.to_string()));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match lower.as_slice() {
            [a] => ("linux".to_string(), a.clone(), None),
            [o, a] => (o.clone(), a.clone(), None),
            [o, a, v] => (o.clone(), a.clone(), Some(v.clone())),
            _ => return Err(RegistryError::BadPlatform(s.to_string())),
        };
        let arch = match arch.as_str() {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            _ => arch,
        };
        Ok(Platform { os, architecture: arch, variant })
    }

    /// Whether an index entry's platform fits this one (arm64's variant `v8` is its default).
    pub(crate) fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let norm = |v: Option<&str>| match (arch, v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        self.os == os
            && self.architecture == arch
            && (self.variant.is_none() || norm(self.variant.as_deref()) == norm(variant))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Progress of a pull or push, for the CLI's per-layer lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest was resolved: the layers that will be shown, by short id.
    Layers(Vec<String>),
    /// A layer is already here (pull) or already in the registry (push).
    Exists(String),
    /// Waiting for another pull of the same layer.
    Waiting(String),
    /// Bytes moved so far of a layer's blob.
    Bytes {
        /// Short id of the layer.
        id: String,
        /// Bytes so far.
        current: u64,
        /// Total bytes, if known.
        total: Option<u64>,
    },
    /// A layer is pulled and unpacked, or pushed.
    Done(String),
    /// A layer was mounted from another repository of the same registry (push).
    Mounted {
        /// Short id of the layer.
        id: String,
        /// The repository it came from.
        from: String,
    },
    /// A layer failed; the pull is failing.
    Failed(String),
}

/// Receives progress events; called from several tasks.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Options of a pull.
#[derive(Clone)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Layers fetched at once (docker's default is 3).
    pub max_concurrent: usize,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
    /// Credentials to use instead of docker's config (the Engine API's `X-Registry-Auth`).
    pub credentials: Option<Credentials>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { platform: None, max_concurrent: 3, progress: None, credentials: None }
    }
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("max_concurrent", &self.max_concurrent)
            .finish()
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The image id (`sha256:` of the config).
    pub id: String,
    /// The digest of what the reference names in the registry (index or manifest).
    pub digest: String,
    /// The reference pulled, fully qualified (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Whether the store changed (a new image or a tag that moved); false: up to date.
    pub updated: bool,
}

/// Options of a push.
#[derive(Clone)]
pub struct PushOptions {
    /// Layers uploaded at once (docker's default is 5).
    pub max_concurrent: usize,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
    /// Credentials to use instead of docker's config (the Engine API's `X-Registry-Auth`).
    pub credentials: Option<Credentials>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions { max_concurrent: 5, progress: None, credentials: None }
    }
}

impl fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushOptions").field("max_concurrent", &self.max_concurrent).finish()
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest in the registry.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
}

/// The 12-hex short form of a digest, as docker's progress shows layers.
pub(crate) fn short_digest(d: &str) -> String {
    crate::short_id(d)
}

pub(crate) fn emit(sink: &Option<ProgressSink>, p: Progress) {
    if let Some(s) = sink {
        s(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "arm64", None));
        assert!(!p.matches("linux", "amd64", None));
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches("linux", "arm64", None));
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert!(!p.matches("linux", "arm", Some("v6")));
        assert_eq!(Platform::parse("x86_64").unwrap().to_string(), "linux/amd64");
        for bad in ["", "linux//amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
