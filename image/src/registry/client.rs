//! One registry's HTTP client: endpoint and scheme, the auth challenge (`WWW-Authenticate:
//! Bearer realm=…,service=…` token flow, or Basic), retries with backoff on 429, 5xx and
//! connection failures, and bodies read with a size limit.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use super::RegistryError;
use super::auth::{Credentials, lookup};
use super::config::{api_host, plain_http_allowed};
use crate::ImageError;

/// Tries per request (the first and four retries: 0.25 + 0.5 + 1 + 2 s of waiting).
const ATTEMPTS: u32 = 5;
/// The largest token response read.
const TOKEN_LIMIT: u64 = 1 << 20;

/// How the registry wants requests authorised.
#[derive(Debug, Clone)]
enum Auth {
    /// No challenge: requests go without credentials.
    Anonymous,
    /// `Basic`: the credentials on every request.
    Basic,
    /// `Bearer`: a token from `realm` for our scopes.
    Bearer { realm: String, service: Option<String>, token: Option<String> },
}

/// A client for one registry and one set of repository scopes.
pub(crate) struct Client {
    http: reqwest::Client,
    /// The registry domain as in references (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// `https://host[:port]` or `http://…`.
    base: String,
    creds: Option<Credentials>,
    /// Token scopes (`repository:team/app:pull`).
    scopes: Vec<String>,
    auth: Mutex<Auth>,
    /// For messages: `pull`/`push` and the repository.
    action: &'static str,
    repository: String,
}

fn unreachable(domain: &str, url: &str, e: &reqwest::Error) -> RegistryError {
    // reqwest's Display stops at the outermost layer; the cause says what happened.
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        reason = format!("{reason}: {s}");
        src = s.source();
    }
    RegistryError::Unreachable { registry: domain.to_string(), url: url.to_string(), reason }
}

/// The `errors[].message` of a registry's JSON error body.
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let msgs: Vec<String> = v
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or_default();
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or_default();
            (!code.is_empty() || !msg.is_empty())
                .then(|| if msg.is_empty() { code.to_lowercase() } else { msg.to_string() })
        })
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`).
fn parse_challenge(h: &str) -> Option<(String, Vec<(String, String)>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((key, value));
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

fn backoff(attempt: u32, headers: Option<&HeaderMap>) -> Duration {
    let retry_after = headers
        .and_then(|h| h.get(RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(10)));
    retry_after.unwrap_or(Duration::from_millis(250 << attempt.min(4)))
}

fn retriable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || matches!(s.as_u16(), 500 | 502 | 503 | 504)
}

impl Client {
    /// A client for `domain` with `scopes`, credentials from docker's config when `creds` is
    /// None. Pings `/v2/` to learn the scheme and the auth challenge.
    pub async fn new(
        domain: &str,
        creds: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Client, ImageError> {
        Self::for_repo(domain, creds, scopes, "pull", domain.to_string()).await
    }

    /// Like [`Client::new`], naming the action and repository in errors.
    pub async fn for_repo(
        domain: &str,
        creds: Option<Credentials>,
        scopes: Vec<String>,
        action: &'static str,
        repository: String,
    ) -> Result<Client, ImageError> {
        let creds = match creds {
            Some(c) => Some(c),
            None => {
                let d = domain.to_string();
                tokio::task::spawn_blocking(move || lookup(&d)).await??
            }
        };
        let unreachable = |reason: String| RegistryError::Unreachable {
            registry: domain.to_string(),
            url: String::new(),
            reason,
        };
        let mut builder = super::config::trusting_client(domain)
            .map_err(unreachable)?
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120));
        let tls = super::config::tls_files(domain);
        if let Some((cert, key)) = &tls.client {
            let bad = |reason: String| RegistryError::Unreachable {
                registry: domain.to_string(),
                url: String::new(),
                reason: format!("the client certificate {}: {reason}", cert.display()),
            };
            let mut pem = std::fs::read(cert).map_err(|e| bad(e.to_string()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| bad(format!("{}: {e}", key.display())))?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
            builder = builder.identity(id);
        }
        let http = builder.build().map_err(|e| RegistryError::Unreachable {
            registry: domain.to_string(),
            url: String::new(),
            reason: format!("cannot set up HTTP: {e}"),
        })?;
        let host = api_host(domain);
        let mut client = Client {
            http,
            domain: domain.to_string(),
            base: format!("https://{host}"),
            creds,
            scopes,
            auth: Mutex::new(Auth::Anonymous),
            action,
            repository,
        };
        client.ping().await?;
        Ok(client)
    }

    /// `GET /v2/`: picks the scheme (HTTPS, or plain HTTP where allowed and HTTPS fails) and
    /// records the challenge.
    async fn ping(&mut self) -> Result<(), RegistryError> {
        let https = self.base.clone();
        let resp = match self.http.get(format!("{https}/v2/")).send().await {
            Ok(r) => r,
            Err(e) if plain_http_allowed(&self.domain) => {
                tracing::debug!(registry = %self.domain, "HTTPS failed ({e}), trying plain HTTP");
                self.base = format!("http://{}", api_host(&self.domain));
                let plain = self.retrying(|c, base| c.get(format!("{base}/v2/")), "ping", false);
                match plain.await {
                    Ok(r) if r.status().is_success() || r.status() == StatusCode::UNAUTHORIZED => r,
                    // Not a registry over plain HTTP (a TLS port answering 400): HTTPS's error
                    // (an unknown certificate authority, say) is the one that helps.
                    _ => return Err(unreachable(&self.domain, &format!("{https}/v2/"), &e)),
                }
            }
            Err(_) => self.retrying(|c, base| c.get(format!("{base}/v2/")), "ping", false).await?,
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            *self.auth.get_mut() = self.challenge(resp.headers())?;
        } else if !status.is_success() {
            return Err(RegistryError::Status {
                registry: self.domain.clone(),
                status: status.as_u16(),
                what: "GET /v2/".into(),
                detail: None,
            });
        }
        Ok(())
    }

    /// How a 401's `WWW-Authenticate` asks to authorise (no or an unknown scheme: Basic).
    fn challenge(&self, headers: &HeaderMap) -> Result<Auth, RegistryError> {
        let challenge =
            headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(parse_challenge);
        Ok(match challenge {
            Some((scheme, params)) if scheme == "bearer" => {
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let realm = get("realm").ok_or_else(|| RegistryError::Status {
                    registry: self.domain.clone(),
                    status: 401,
                    what: "GET /v2/".into(),
                    detail: Some("a Bearer challenge without a realm".into()),
                })?;
                Auth::Bearer { realm, service: get("service"), token: None }
            }
            _ => Auth::Basic,
        })
    }

    /// Checks the credentials: a token (Bearer) or `/v2/` itself (Basic) must be granted.
    pub async fn check_login(&self) -> Result<(), ImageError> {
        let auth = self.auth.lock().await.clone();
        match auth {
            Auth::Anonymous => Ok(()),
            Auth::Bearer { realm, service, .. } => {
                self.fetch_token(&realm, service.as_deref(), &[]).await?;
                Ok(())
            }
            Auth::Basic => {
                let header = self.creds.as_ref().map(Credentials::basic).unwrap_or_default();
                let resp = self
                    .retrying(
                        |c, base| c.get(format!("{base}/v2/")).header(AUTHORIZATION, &header),
                        "login",
                        true,
                    )
                    .await?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    return Err(self.bad_creds().into());
                }
                Ok(())
            }
        }
    }

    fn bad_creds(&self) -> RegistryError {
        RegistryError::BadCredentials {
            registry: self.domain.clone(),
            username: self.creds.as_ref().map(|c| c.username.clone()).unwrap_or_default(),
        }
    }

    /// The error for a 401/403 on a repository request.
    pub fn denied(&self) -> RegistryError {
        match (&self.creds, self.auth.try_lock().map(|a| a.clone())) {
            (Some(_), Ok(Auth::Basic)) => self.bad_creds(),
            _ => RegistryError::AccessDenied {
                action: self.action,
                repository: self.repository.clone(),
                registry: self.domain.clone(),
            },
        }
    }

    /// Gets a token for `scopes` from `realm` (with the credentials as Basic, when any).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Status {
            registry: self.domain.clone(),
            status: 401,
            what: "GET /v2/".into(),
            detail: Some(format!("the token realm {realm:?} is not a URL: {e}")),
        })?;
        let realm_host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_http_allowed(&realm_host)) {
            return Err(RegistryError::Status {
                registry: self.domain.clone(),
                status: 401,
                what: "GET /v2/".into(),
                detail: Some(format!(
                    "refusing the token realm {realm}: plain HTTP is only used for loopback and registries in {}",
                    super::INSECURE_ENV
                )),
            });
        }
        // An identity token (docker's `<token>` user) is an OAuth2 refresh token: POSTed as a
        // form, as docker does; user and password go as Basic on a GET.
        let identity = self.creds.as_ref().filter(|c| c.is_identity_token());
        let joined = scopes.join(" ");
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        match identity {
            Some(c) => {
                query.push(("grant_type", "refresh_token"));
                query.push(("client_id", "berth"));
                query.push(("refresh_token", &c.password));
                if !joined.is_empty() {
                    query.push(("scope", &joined));
                }
            }
            None => {
                for s in scopes {
                    query.push(("scope", s));
                }
                if let Some(c) = &self.creds {
                    query.push(("account", &c.username));
                }
            }
        }
        let mut attempt = 0;
        let resp = loop {
            let mut req = match identity {
                Some(_) => self.http.post(url.clone()).form(&query),
                None => self.http.get(url.clone()).query(&query),
            };
            if let (None, Some(c)) = (identity, &self.creds) {
                req = req.header(AUTHORIZATION, c.basic());
            }
            match req.send().await {
                Ok(r) if retriable_status(r.status()) && attempt + 1 < ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt, Some(r.headers()))).await;
                }
                Ok(r) => break r,
                Err(e) if attempt + 1 < ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(backoff(attempt, None)).await;
                }
                Err(e) => return Err(unreachable(&self.domain, realm, &e)),
            }
            attempt += 1;
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(if self.creds.is_some() { self.bad_creds() } else { self.denied() });
        }
        let body = read_limited(resp, TOKEN_LIMIT, "token answer", &self.domain).await?;
        if !status.is_success() {
            return Err(RegistryError::Status {
                registry: self.domain.clone(),
                status: status.as_u16(),
                what: format!("GET token from {realm}"),
                detail: error_detail(&body),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Status {
                registry: self.domain.clone(),
                status: status.as_u16(),
                what: format!("GET token from {realm}"),
                detail: Some(format!("not JSON: {e}")),
            })?;
        // OAuth2 answers carry `access_token`; docker's GET endpoint `token` (often both).
        v.get("access_token")
            .or_else(|| v.get("token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Status {
                registry: self.domain.clone(),
                status: status.as_u16(),
                what: format!("GET token from {realm}"),
                detail: Some("the answer has no token".into()),
            })
    }

    /// The Authorization header value for the next request (fetching a token if needed).
    async fn authorization(&self, refresh: bool) -> Result<Option<String>, RegistryError> {
        let mut auth = self.auth.lock().await;
        match &mut *auth {
            Auth::Anonymous => Ok(None),
            Auth::Basic => {
                Ok(self.creds.as_ref().filter(|c| !c.is_identity_token()).map(Credentials::basic))
            }
            Auth::Bearer { realm, service, token } => {
                if token.is_none() || refresh {
                    let (realm, service) = (realm.clone(), service.clone());
                    *token =
                        Some(self.fetch_token(&realm, service.as_deref(), &self.scopes).await?);
                }
                Ok(token.as_ref().map(|t| format!("Bearer {t}")))
            }
        }
    }

    /// Sends a request built by `build` (called per attempt with the base URL), authorised,
    /// retried on connection failures, 429 and 5xx. A 401 gets one fresh token; a second
    /// one (or a 403) is [`Client::denied`].
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let mut refreshed = false;
        loop {
            let header = self.authorization(refreshed).await?;
            let resp = self
                .retrying(
                    |c, base| {
                        let r = build(c, base);
                        match &header {
                            Some(h) => r.header(AUTHORIZATION, h),
                            None => r,
                        }
                    },
                    what,
                    true,
                )
                .await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    // A token may have expired; a registry whose `/v2/` was open may guard its
                    // repositories: take the challenge this answer gives and try once more.
                    let mut auth = self.auth.lock().await;
                    if matches!(*auth, Auth::Anonymous) {
                        *auth = self.challenge(resp.headers())?;
                    }
                    if matches!(*auth, Auth::Basic) && self.creds.is_none() {
                        return Err(self.denied());
                    }
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.denied()),
                _ => return Ok(resp),
            }
        }
    }

    /// One request with retries, no auth handling.
    async fn retrying(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
        what: &str,
        retry_status: bool,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        loop {
            let req = build(&self.http, &self.base);
            let url = req
                .try_clone()
                .and_then(|r| r.build().ok())
                .map(|r| r.url().to_string())
                .unwrap_or_else(|| self.base.clone());
            match req.send().await {
                Ok(r) if retry_status && retriable_status(r.status()) && attempt + 1 < ATTEMPTS => {
                    tracing::debug!(registry = %self.domain, status = %r.status(), what, "retrying");
                    tokio::time::sleep(backoff(attempt, Some(r.headers()))).await;
                }
                Ok(r) => return Ok(r),
                Err(e) if attempt + 1 < ATTEMPTS && !e.is_builder() => {
                    tracing::debug!(registry = %self.domain, what, "retrying after {e}");
                    tokio::time::sleep(backoff(attempt, None)).await;
                }
                Err(e) => return Err(unreachable(&self.domain, &url, &e)),
            }
            attempt += 1;
        }
    }

    /// `{base}/v2/{repo}/{rest}`.
    pub fn url(base: &str, repo: &str, rest: &str) -> String {
        format!("{base}/v2/{repo}/{rest}")
    }

    /// A status the caller did not expect, with the registry's message.
    pub async fn unexpected(&self, resp: Response, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let body = read_limited(resp, 64 << 10, "the error answer", &self.domain)
            .await
            .unwrap_or_default();
        RegistryError::Status {
            registry: self.domain.clone(),
            status,
            what: what.to_string(),
            detail: error_detail(&body),
        }
    }

    /// `HEAD` of a blob: its size when the repository has it.
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let what = format!("HEAD blob {digest}");
        let resp = self
            .send(
                |c, base| {
                    c.request(Method::HEAD, Self::url(base, repo, &format!("blobs/{digest}")))
                },
                &what,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.unexpected(resp, &what).await),
        }
    }
}

/// Reads a response body, failing once it passes `limit` bytes.
pub(crate) async fn read_limited(
    mut resp: Response,
    limit: u64,
    what: &'static str,
    reference: &str,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge { what, reference: reference.to_string(), limit });
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() as u64 + c.len() as u64 > limit {
                    return Err(RegistryError::TooLarge {
                        what,
                        reference: reference.to_string(),
                        limit,
                    });
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(unreachable(reference, resp.url().as_str(), &e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(s, "bearer");
        assert_eq!(p[0], ("realm".into(), "https://auth.docker.io/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(s, "basic");
        assert_eq!(p[0].1, "Registry Realm");
        assert_eq!(
            error_detail(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            Some("manifest unknown".into())
        );
    }
}
