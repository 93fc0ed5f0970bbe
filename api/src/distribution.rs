//! `POST /images/create?fromImage=` (pull) and `POST /images/{name}/push`, through the same
//! registry library the CLI uses (berth-image's `registry`), with docker's progress stream and
//! the `X-Registry-Auth` credentials docker clients send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use berth_image::registry::{
    self, Credentials, Platform, Progress, PullOptions, PushOptions, RegistryError,
};
use berth_image::{ImageError, Reference};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{ApiError, Query, R};
use crate::jsonstream::{self, Lines};
use crate::state::State;

/// How often a layer's byte count is reported at most (docker's are about as frequent).
const BYTES_EVERY: Duration = Duration::from_millis(100);

/// docker's `AuthConfig` as clients encode it in `X-Registry-Auth` / `X-Registry-Config`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    auth: String,
    #[serde(rename = "serveraddress")]
    _server_address: String,
    #[serde(rename = "identitytoken")]
    identity_token: String,
    #[serde(rename = "registrytoken")]
    registry_token: String,
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let s = s.trim();
    url.decode(s).ok().or_else(|| std.decode(s).ok())
}

impl AuthConfig {
    /// The credentials it carries (None: none, so the service's own docker config is used).
    fn credentials(self, header: &str) -> Result<Option<Credentials>, ApiError> {
        if !self.identity_token.is_empty() {
            return Ok(Some(Credentials {
                username: Credentials::TOKEN_USER.to_string(),
                password: self.identity_token,
            }));
        }
        if !self.registry_token.is_empty() {
            return Err(ApiError::bad(format!(
                "{header}: registrytoken is not supported; send a username and password or an identitytoken"
            )));
        }
        if !self.username.is_empty() || !self.password.is_empty() {
            return Ok(Some(Credentials { username: self.username, password: self.password }));
        }
        if !self.auth.is_empty() {
            let raw = b64_decode(&self.auth)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad(format!("{header}: auth is not base64")))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| ApiError::bad(format!("{header}: auth is not user:password")))?;
            return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
        }
        Ok(None)
    }
}

fn header_json(headers: &HeaderMap, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(v) = headers.get(name) else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad(format!("invalid {name} header")))?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    b64_decode(s)
        .map(Some)
        .ok_or_else(|| ApiError::bad(format!("invalid {name} header: not base64url JSON")))
}

/// The credentials of `X-Registry-Auth` (base64url JSON; `{}` or nothing: none).
pub fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    let Some(bytes) = header_json(headers, "x-registry-auth")? else { return Ok(None) };
    let cfg: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("invalid X-Registry-Auth header: {e}")))?;
    cfg.credentials("X-Registry-Auth")
}

/// The credentials of `X-Registry-Config` (a build's: a map from registry to `AuthConfig`), by
/// registry domain.
pub fn registry_config(headers: &HeaderMap) -> Result<HashMap<String, Credentials>, ApiError> {
    let mut out = HashMap::new();
    let Some(bytes) = header_json(headers, "x-registry-config")? else { return Ok(out) };
    let map: HashMap<String, AuthConfig> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad(format!("invalid X-Registry-Config header: {e}")))?;
    for (server, cfg) in map {
        if let Some(c) = cfg.credentials("X-Registry-Config")? {
            out.insert(registry::normalise_server(&server), c);
        }
    }
    Ok(out)
}

/// The HTTP error for a pull or push that failed before its first progress line, with the
/// status dockerd gives.
pub fn registry_err(e: ImageError) -> ApiError {
    let status = match &e {
        ImageError::InvalidReference { .. } => StatusCode::BAD_REQUEST,
        ImageError::NoSuchImage(_) => StatusCode::NOT_FOUND,
        ImageError::Registry(r) => match r {
            RegistryError::ManifestUnknown { .. }
            | RegistryError::AccessDenied { .. }
            | RegistryError::NoMatchingPlatform { .. }
            | RegistryError::PlatformMismatch { .. } => StatusCode::NOT_FOUND,
            // Not 401: on a 401 the docker CLI starts an interactive login (and waits on a
            // stdin that is not a terminal); dockerd does not answer 401 here either.
            RegistryError::BadPlatform(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// `[=====>     ]  1.2MB/4.5MB`, the text docker sends beside `progressDetail`.
fn bar(current: u64, total: u64) -> String {
    let size = |n: u64| {
        let units = ["B", "kB", "MB", "GB", "TB"];
        let mut v = n as f64;
        let mut u = 0;
        while v >= 1000.0 && u < units.len() - 1 {
            v /= 1000.0;
            u += 1;
        }
        format!("{}{}", (v * 100.0).round() / 100.0, units[u])
    };
    if total == 0 {
        return size(current);
    }
    let width = 50u64;
    let filled = (current.min(total) * width / total) as usize;
    let mut b = "=".repeat(filled.saturating_sub(1));
    if filled > 0 {
        b.push(if (filled as u64) < width { '>' } else { '=' });
    }
    format!("[{b:<50}]  {}/{}", size(current), size(total))
}

/// Turns the registry library's progress into docker's per-layer lines.
struct LayerStream {
    lines: Arc<Lines>,
    push: bool,
    /// Sent first, once the manifest is resolved (pull: `Pulling from …`).
    header: Mutex<Option<Value>>,
    /// Per layer: when bytes were last reported; layers not seen yet get `Preparing` (push).
    seen: Mutex<HashMap<String, Option<Instant>>>,
}

impl LayerStream {
    fn line(&self, id: &str, status: &str, detail: Value, progress: Option<String>) {
        let mut v = json!({"status": status, "progressDetail": detail, "id": id});
        if let Some(p) = progress {
            v["progress"] = json!(p);
        }
        self.lines.send(&v);
    }

    fn event(&self, p: Progress) {
        if let Ok(mut h) = self.header.lock()
            && let Some(v) = h.take()
        {
            self.lines.send(&v);
        }
        let Ok(mut seen) = self.seen.lock() else { return };
        let first = |id: &str, seen: &mut HashMap<String, Option<Instant>>| {
            if !seen.contains_key(id) {
                seen.insert(id.to_string(), None);
                if self.push {
                    self.line(id, "Preparing", json!({}), None);
                }
            }
        };
        match p {
            Progress::Layers(ids) => {
                for id in ids {
                    first(&id, &mut seen);
                    if !self.push {
                        self.line(&id, "Pulling fs layer", json!({}), None);
                    }
                }
            }
            Progress::Exists(id) => {
                first(&id, &mut seen);
                let s = if self.push { "Layer already exists" } else { "Already exists" };
                self.line(&id, s, json!({}), None);
            }
            Progress::Waiting(id) => {
                first(&id, &mut seen);
                self.line(&id, "Waiting", json!({}), None);
            }
            Progress::Bytes { id, current, total } => {
                first(&id, &mut seen);
                let now = Instant::now();
                let done = total.is_some_and(|t| current >= t);
                let last = seen.get(&id).copied().flatten();
                if !done && last.is_some_and(|l| now.duration_since(l) < BYTES_EVERY) {
                    return;
                }
                seen.insert(id.clone(), Some(now));
                let verb = if self.push { "Pushing" } else { "Downloading" };
                let t = total.unwrap_or(0);
                let detail = match total {
                    Some(t) => json!({"current": current, "total": t}),
                    None => json!({ "current": current }),
                };
                self.line(&id, verb, detail, Some(bar(current, t)));
                if done && !self.push {
                    // The blob is unpacked as it streams in: once all of it came, so did the
                    // extraction's input.
                    self.line(&id, "Download complete", json!({}), None);
                    self.line(
                        &id,
                        "Extracting",
                        json!({"current": t, "total": t}),
                        Some(bar(t, t)),
                    );
                }
            }
            Progress::Done(id) => {
                first(&id, &mut seen);
                self.line(&id, if self.push { "Pushed" } else { "Pull complete" }, json!({}), None);
            }
            Progress::Mounted { id, from } => {
                first(&id, &mut seen);
                self.line(&id, &format!("Mounted from {from}"), json!({}), None);
            }
            Progress::Failed(_) => {}
        }
    }

    fn sink(self: &Arc<Self>) -> registry::ProgressSink {
        let me = self.clone();
        Arc::new(move |p| me.event(p))
    }
}

/// What `fromImage` and `tag` name, as dockerd reads them: a `tag` that is a digest replaces
/// the tag, an empty `tag` on a name without one means every tag.
fn pull_reference(from: &str, tag: &str) -> Result<(Reference, bool), ApiError> {
    // `docker pull -a` may send a trailing ':' (dockerd trims it too).
    let from = from.trim_end_matches(':');
    let bad = |e: ImageError| ApiError::bad(e.to_string());
    let r = Reference::parse(from).map_err(bad)?;
    let last = from.rsplit('/').next().unwrap_or_default();
    let named_only = r.digest.is_none() && !last.contains(':');
    if tag.is_empty() {
        return Ok((r, named_only));
    }
    let repo = r.repository();
    let r = if tag.starts_with("sha256:") || tag.contains(':') {
        Reference::parse(&format!("{repo}@{tag}")).map_err(bad)?
    } else {
        let digest = r.digest.as_deref().map(|d| format!("@{d}")).unwrap_or_default();
        Reference::parse(&format!("{repo}:{tag}{digest}")).map_err(bad)?
    };
    Ok((r, false))
}

/// `POST /images/create?fromImage=…`: a pull, streamed as docker's JSON progress.
pub async fn pull(st: &State, headers: &HeaderMap, q: &Query) -> R {
    let from = q.get("fromImage").unwrap_or_default();
    let (r, all_tags) = pull_reference(from, q.get("tag").unwrap_or_default())?;
    let platform = match q.get("platform").map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p).map_err(|e| ApiError::bad(e.to_string()))?),
        None => None,
    };
    let credentials = registry_auth(headers)?;
    let store = st.engine.images().map_err(|e| ApiError::internal(e.to_string()))?;
    jsonstream::respond(move |lines| async move {
        let refs = if all_tags {
            let tags = registry::list_tags(&r.repository(), credentials.clone())
                .await
                .map_err(registry_err)?;
            if tags.is_empty() {
                return Err(ApiError::not_found(format!(
                    "the registry lists no tags for {}",
                    r.familiar_name()
                ))
                .into());
            }
            tags.iter().map(|t| r.with_tag(t)).collect()
        } else {
            vec![r.clone()]
        };
        let mut updated = false;
        for one in &refs {
            let stream = Arc::new(LayerStream {
                lines: lines.clone(),
                push: false,
                header: Mutex::new(Some(json!({
                    "status": format!("Pulling from {}", one.path),
                    "id": one.registry_ref(),
                }))),
                seen: Mutex::new(HashMap::new()),
            });
            let opts = PullOptions {
                platform: platform.clone(),
                progress: Some(stream.sink()),
                credentials: credentials.clone(),
                ..Default::default()
            };
            let rep = registry::pull(&store, &one.full(), &opts).await.map_err(registry_err)?;
            berth_runtime::events::image_pulled(store.state_root().path(), &one.full());
            updated |= rep.updated;
            lines.status(&format!("Digest: {}", rep.digest));
        }
        let shown = if all_tags { r.familiar_name() } else { r.to_string() };
        let status = if updated { "Downloaded newer image" } else { "Image is up to date" };
        lines.status(&format!("Status: {status} for {shown}"));
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=…`: a push, streamed as docker's JSON progress. No tag at
/// all pushes every local tag of the repository (`docker push --all-tags`).
pub async fn push(st: &State, name: &str, headers: &HeaderMap, q: &Query) -> R {
    let bad = |e: ImageError| ApiError::bad(e.to_string());
    let tag = q.get("tag").unwrap_or_default();
    let last = name.rsplit('/').next().unwrap_or_default();
    let r = Reference::parse_tag(name).map_err(bad)?;
    let (r, all_tags) = if !tag.is_empty() {
        (Reference::parse_tag(&format!("{}:{tag}", r.repository())).map_err(bad)?, false)
    } else {
        (r, !last.contains(':'))
    };
    let credentials = registry_auth(headers)?;
    let store = st.engine.images().map_err(|e| ApiError::internal(e.to_string()))?;
    let local: Vec<Reference> = st
        .engine
        .image_list(Default::default())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .iter()
        .flat_map(|i| i.repo_tags.iter())
        .filter_map(|t| Reference::parse(t).ok())
        .filter(|t| if all_tags { t.repository() == r.repository() } else { t.full() == r.full() })
        .collect();
    if local.is_empty() {
        let what = if all_tags { r.familiar_name() } else { r.to_string() };
        return Err(ApiError::not_found(format!("No such image: {what}")));
    }
    jsonstream::respond(move |lines| async move {
        lines.status(&format!("The push refers to repository [{}]", r.repository()));
        for one in &local {
            let stream = Arc::new(LayerStream {
                lines: lines.clone(),
                push: true,
                header: Mutex::new(None),
                seen: Mutex::new(HashMap::new()),
            });
            let opts = PushOptions {
                progress: Some(stream.sink()),
                credentials: credentials.clone(),
                ..Default::default()
            };
            let rep = registry::push(&store, &one.full(), &opts).await.map_err(registry_err)?;
            lines.status(&format!("{}: digest: {} size: {}", rep.tag, rep.digest, rep.size));
            lines.send(&json!({
                "progressDetail": {},
                "aux": {"Tag": rep.tag, "Digest": rep.digest, "Size": rep.size},
            }));
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
        h
    }

    #[test]
    fn registry_auth_reads_what_docker_clients_send() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
        let c = registry_auth(&headers(
            "x-registry-auth",
            &enc(r#"{"username":"u","password":"p?>","serveraddress":"localhost:5000"}"#),
        ))
        .expect("auth")
        .expect("credentials");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        // docker sends `{}` without credentials; some clients send nothing or unpadded base64.
        assert!(registry_auth(&headers("x-registry-auth", "e30=")).expect("empty").is_none());
        assert!(registry_auth(&headers("x-registry-auth", "e30")).expect("unpadded").is_none());
        assert!(registry_auth(&HeaderMap::new()).expect("none").is_none());
        let t = registry_auth(&headers("x-registry-auth", &enc(r#"{"identitytoken":"tok"}"#)))
            .expect("token")
            .expect("credentials");
        assert!(t.is_identity_token());
        let a = registry_auth(&headers("x-registry-auth", &enc(r#"{"auth":"dTpw"}"#)))
            .expect("auth field")
            .expect("credentials");
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert_eq!(registry_auth(&headers("x-registry-auth", "%%%")).unwrap_err().status, 400);
        let m = registry_config(&headers(
            "x-registry-config",
            &enc(r#"{"https://index.docker.io/v1/":{"username":"a","password":"b"},"localhost:5000":{}}"#),
        ))
        .expect("config");
        assert_eq!(m.len(), 1);
        assert_eq!(m["docker.io"].username, "a");
    }

    #[test]
    fn from_image_and_tag_combine_as_in_dockerd() {
        let d = format!("sha256:{}", "a".repeat(64));
        let (r, all) = pull_reference("localhost:5000/x", "t").expect("tag");
        assert_eq!((r.full().as_str(), all), ("localhost:5000/x:t", false));
        let (r, _) = pull_reference("localhost:5000/x", &d).expect("digest in tag");
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(r.tag.is_empty());
        let (r, all) = pull_reference(&format!("localhost:5000/x@{d}"), "").expect("digest");
        assert_eq!((r.digest.as_deref(), all), (Some(d.as_str()), false));
        let (_, all) = pull_reference("busybox", "").expect("all tags");
        assert!(all);
        let (r, all) = pull_reference("busybox:1.36", "").expect("tag in name");
        assert_eq!((r.tag.as_str(), all), ("1.36", false));
        assert_eq!(pull_reference("Bad:Ref:x", "").unwrap_err().status, 400);
    }

    #[test]
    fn progress_bars_look_like_dockers() {
        assert!(bar(50, 100).starts_with(&format!("[{}>", "=".repeat(24))));
        assert!(bar(2_500_000, 5_000_000).ends_with("2.5MB/5MB"));
    }
}
