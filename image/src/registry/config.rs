//! Where a registry is and how to talk to it: its endpoint (docker.io is served by
//! registry-1.docker.io), whether plain HTTP is allowed, and docker's client configuration
//! directory (`$DOCKER_CONFIG`, else `~/.docker`).

use std::net::IpAddr;
use std::path::PathBuf;

/// Comma-separated registries (`host` or `host:port`) that may be reached over plain HTTP
/// besides loopback ones; docker's `insecure-registries`.
pub const INSECURE_ENV: &str = "BERTH_INSECURE_REGISTRIES";

static CONFIG_DIR: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

/// Makes [`docker_config_dir`] return `dir` in this process (None: back to the environment),
/// for embedders and tests that must not change the process environment.
pub fn set_docker_config_dir(dir: Option<PathBuf>) {
    if let Ok(mut d) = CONFIG_DIR.write() {
        *d = dir;
    }
}

/// docker's client configuration directory: `$DOCKER_CONFIG`, else `$HOME/.docker` (unless
/// [`set_docker_config_dir`] chose one).
pub fn docker_config_dir() -> PathBuf {
    if let Some(d) = CONFIG_DIR.read().ok().and_then(|d| d.clone()) {
        return d;
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".docker")
}

/// A directory of per-registry CA certificates (`DIR/<host[:port]>/*.crt`) used instead of the
/// default ones, `/etc/berth/certs.d` and docker's `/etc/docker/certs.d`.
pub const CERTS_DIR_ENV: &str = "BERTH_CERTS_DIR";

/// The certificate files docker reads for a registry from `<certs dir>/<host[:port]>/`.
#[derive(Debug, Default)]
pub(crate) struct TlsFiles {
    /// Every `*.crt`: extra CA certificates.
    pub cas: Vec<PathBuf>,
    /// `*.cert` with the `*.key` of the same name: a client certificate.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The certificate files for `domain` in `$BERTH_CERTS_DIR`, else `/etc/berth/certs.d` and
/// `/etc/docker/certs.d`.
pub(crate) fn tls_files(domain: &str) -> TlsFiles {
    let dirs: Vec<PathBuf> = match std::env::var_os(CERTS_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(d) => vec![PathBuf::from(d)],
        None => vec!["/etc/berth/certs.d".into(), "/etc/docker/certs.d".into()],
    };
    let mut out = TlsFiles::default();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d.join(domain)) else { continue };
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            match f.extension().and_then(|x| x.to_str()) {
                Some("crt") => out.cas.push(f),
                Some("cert") if out.client.is_none() => {
                    let key = f.with_extension("key");
                    if key.is_file() {
                        out.client = Some((f, key));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// A reqwest client builder that trusts what berth's registry client trusts for `domain`
/// (`host[:port]`): the system's roots (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR`
/// when set) plus every `*.crt` of the domain's certificates directory ([`CERTS_DIR_ENV`],
/// else `/etc/berth/certs.d`, `/etc/docker/certs.d`), and that never sends a loopback request
/// through a proxy (as Go's ProxyFromEnvironment; other proxies come from the environment).
/// The error is one sentence naming the certificate file.
pub fn trusting_client(domain: &str) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder();
    if is_loopback(domain) {
        builder = builder.no_proxy();
    }
    for file in tls_files(domain).cas {
        let bad = |reason: String| format!("the CA certificate {}: {reason}", file.display());
        let pem = std::fs::read(&file).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    Ok(builder)
}

/// The host part of a `host[:port]` domain (brackets of an IPv6 literal removed).
pub(crate) fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => domain,
    }
}

/// Whether `domain` is on this machine: `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback(domain: &str) -> bool {
    let host = host_of(domain);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `domain` may be spoken to over plain HTTP: loopback, or named in
/// [`INSECURE_ENV`] (with or without its port).
pub(crate) fn plain_http_allowed(domain: &str) -> bool {
    if is_loopback(domain) {
        return true;
    }
    let list = std::env::var(INSECURE_ENV).unwrap_or_default();
    list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).any(|entry| {
        let entry = entry.trim_start_matches("http://").trim_start_matches("https://");
        let entry = entry.trim_end_matches('/');
        entry.eq_ignore_ascii_case(domain) || entry.eq_ignore_ascii_case(host_of(domain))
    })
}

/// The host:port requests go to: Docker Hub's API is `registry-1.docker.io`.
pub(crate) fn api_host(domain: &str) -> &str {
    if domain == crate::DEFAULT_DOMAIN || domain == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// The key docker's config.json and credential helpers use for a registry: Docker Hub's is
/// `https://index.docker.io/v1/`, the others their `host[:port]`.
pub(crate) fn credentials_key(domain: &str) -> String {
    if domain == crate::DEFAULT_DOMAIN || domain == "index.docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        domain.to_string()
    }
}

/// The registry domain a `berth login SERVER` argument names (`https://host/v2/` -> `host`).
pub fn normalise_server(server: &str) -> String {
    let s = server.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    if host == "index.docker.io" || host == "registry-1.docker.io" || host.is_empty() {
        crate::DEFAULT_DOMAIN.to_string()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_keys() {
        for d in ["localhost:5000", "127.0.0.1:41000", "127.3.2.1", "[::1]:5000", "LOCALHOST"] {
            assert!(is_loopback(d), "{d}");
            assert!(plain_http_allowed(d), "{d}");
        }
        for d in ["docker.io", "10.0.0.1:5000", "example.com", "[::2]:5000"] {
            assert!(!is_loopback(d), "{d}");
        }
        assert_eq!(credentials_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(credentials_key("localhost:5000"), "localhost:5000");
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(normalise_server("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_server("http://localhost:5000/v2/"), "localhost:5000");
    }
}
