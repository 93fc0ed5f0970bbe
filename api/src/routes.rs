//! Request dispatch (versioned paths, docker's headers on every answer) and the system, image,
//! network and volume endpoints; containers and exec are in `containers`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;

use crate::containers;
use crate::http::{self, ApiError, MAX_JSON_BODY, Query, R, Resp, empty, full, ok};
use crate::state::State;
use crate::{API_VERSION, MIN_API_VERSION};

/// Splits `/v1.43/x/y` into the version and `/x/y`.
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let v = &rest[..end];
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return (Some(v), &rest[end..]);
        }
    }
    (None, path)
}

fn version_num(v: &str) -> (u32, u32) {
    let (a, b) = v.split_once('.').unwrap_or((v, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// Answers one request; every answer carries docker's daemon headers.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Resp {
    let mut resp = match route(state, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(
        "server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> R {
    let path = req.uri().path().to_string();
    let (version, p) = split_version(&path);
    if let Some(v) = version {
        if version_num(v) > version_num(API_VERSION) {
            return Err(ApiError::bad(format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            )));
        }
        if version_num(v) < version_num(MIN_API_VERSION) {
            return Err(ApiError::bad(format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            )));
        }
    }
    let q = Query::parse(req.uri().query());
    let segs: Vec<String> = p.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method().clone();
    let st = &state;
    match (&m, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => ping(),
        (&Method::GET, ["version"]) => version_info(st).await,
        (&Method::GET, ["info"]) => info(st).await,
        (&Method::GET, ["system", "df"]) => df(st).await,
        (&Method::GET, ["events"]) => crate::events::events(state.clone(), &q).await,
        (_, ["containers", ..]) | (_, ["exec", ..]) => {
            containers::route(state.clone(), req, &segs, q).await
        }
        (&Method::GET, ["images", "json"]) => images_list(st, &q).await,
        (&Method::POST, ["images", "create"]) if q.get("fromSrc") == Some("-") => {
            images_import(st, req, &q).await
        }
        (&Method::POST, ["images", "create"])
            if q.get("fromImage").is_some_and(|f| !f.is_empty()) =>
        {
            crate::distribution::pull(st, req.headers(), &q).await
        }
        (&Method::POST, ["images", "create"]) => Err(ApiError::bad(match q.get("fromSrc") {
            Some(src) if !src.is_empty() => format!(
                "fromSrc {src:?} is not supported: send the archive as the request body (fromSrc=-)"
            ),
            _ => "fromImage (pull) or fromSrc=- (import) is required".to_string(),
        })),
        (&Method::POST, ["build"]) => crate::build::build(state.clone(), req, q).await,
        (&Method::POST, ["images", "load"]) => images_load(st, req, &q).await,
        (&Method::GET, ["images", "get"]) => images_get(st, q.all("names")).await,
        (&Method::POST, ["images", "prune"]) => images_prune(st, &q).await,
        (&Method::GET, ["images", name @ .., "get"]) => images_get(st, vec![name.join("/")]).await,
        (&Method::GET, ["images", name @ .., "json"]) => images_inspect(st, &name.join("/")).await,
        (&Method::GET, ["images", name @ .., "history"]) => {
            images_history(st, &name.join("/")).await
        }
        (&Method::POST, ["images", name @ .., "tag"]) => images_tag(st, &name.join("/"), &q).await,
        (&Method::POST, ["images", name @ .., "push"]) => {
            crate::distribution::push(st, &name.join("/"), req.headers(), &q).await
        }
        (&Method::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            images_remove(st, &name.join("/"), &q).await
        }
        (&Method::GET, ["networks"]) => networks_list(st, &q).await,
        (&Method::POST, ["networks", "create"]) => networks_create(st, req).await,
        (&Method::POST, ["networks", "prune"]) => networks_prune(st, &q).await,
        (&Method::GET, ["networks", id]) => {
            let n = st
                .engine
                .network_inspect(id)
                .await
                .map_err(|e| ApiError::from_message(e.to_string()))?;
            ok(&n)
        }
        (&Method::DELETE, ["networks", id]) => {
            st.engine
                .network_remove(id)
                .await
                .map_err(|e| ApiError::from_message(e.to_string()))?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["networks", id, "connect"]) => networks_connect(st, id, req).await,
        (&Method::POST, ["networks", id, "disconnect"]) => networks_disconnect(st, id, req).await,
        (&Method::GET, ["volumes"]) => volumes_list(st, &q).await,
        (&Method::POST, ["volumes", "create"]) => volumes_create(st, req).await,
        (&Method::POST, ["volumes", "prune"]) => volumes_prune(st, &q).await,
        (&Method::GET, ["volumes", name]) => {
            let v = st
                .engine
                .volume_inspect(name.to_string())
                .await
                .map_err(|e| ApiError::from_message(e.to_string()))?;
            ok(&v)
        }
        (&Method::DELETE, ["volumes", name]) => {
            let in_use = st.engine.container_volumes_in_use().await;
            st.engine
                .volume_remove(name.to_string(), q.flag("force"), in_use)
                .await
                .map_err(|e| ApiError::from_message(e.to_string()))?;
            empty(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::not_found(format!("page not found: {} {p}", req.method()))),
    }
}

fn percent_decode(s: &str) -> String {
    // Path segments use the same escapes as a query (no `+` for space in practice).
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

fn ping() -> R {
    let mut r = hyper::Response::new(full("OK"));
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("cache-control", HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert("builder-version", HeaderValue::from_static("1"));
    Ok(r)
}

async fn version_info(st: &State) -> R {
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let v = env!("CARGO_PKG_VERSION");
    let _ = st;
    ok(&serde_json::json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
            "Arch": go_arch(), "KernelVersion": kernel, "Experimental": "false"}}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn info(st: &State) -> R {
    let i = st.engine.system_info().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let mut v = serde_json::to_value(&i).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.entry("OSType").or_insert("linux".into());
        o.entry("Architecture").or_insert(std::env::consts::ARCH.into());
        o.insert("DockerRootDir".into(), st.engine.root().path().display().to_string().into());
        o.entry("ID").or_insert("".into());
        o.entry("Plugins").or_insert(serde_json::json!({"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"]}));
        o.entry("SecurityOptions").or_insert(serde_json::json!(["name=seccomp,profile=builtin"]));
    }
    ok(&v)
}

async fn df(st: &State) -> R {
    let d = st.engine.system_df().await.map_err(|e| ApiError::internal(e.to_string()))?;
    let layers = d.layers_size;
    let images: Vec<_> =
        d.images.iter().map(|i| serde_json::to_value(i).unwrap_or_default()).collect();
    let containers: Vec<_> =
        d.containers.iter().map(|c| serde_json::to_value(c).unwrap_or_default()).collect();
    let volumes: Vec<_> =
        d.volumes.iter().map(|v| serde_json::to_value(v).unwrap_or_default()).collect();
    ok(&serde_json::json!({
        "LayersSize": layers,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    }))
}

fn err_msg(e: impl std::fmt::Display) -> ApiError {
    ApiError::from_message(e.to_string())
}

async fn images_list(st: &State, q: &Query) -> R {
    let f = q.filters()?;
    let filters = berth_image::ListFilters {
        reference: f.get("reference").cloned().unwrap_or_default(),
        label: f.get("label").cloned().unwrap_or_default(),
        dangling: f.get("dangling").and_then(|d| d.first()).map(|d| d == "true" || d == "1"),
    };
    let list = st.engine.image_list(filters).await.map_err(err_msg)?;
    let out: Vec<_> = list
        .iter()
        .map(|i| {
            serde_json::json!({
                "Id": i.id, "ParentId": "", "RepoTags": i.repo_tags, "RepoDigests": [],
                "Created": i.created, "Size": i.size, "SharedSize": -1, "VirtualSize": i.size,
                "Labels": i.labels, "Containers": -1,
            })
        })
        .collect();
    ok(&out)
}

async fn images_inspect(st: &State, name: &str) -> R {
    let i = st.engine.image_inspect(name.to_string()).await.map_err(image_err)?;
    let mut v = serde_json::to_value(&i).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("Parent".into(), "".into());
        o.insert("VirtualSize".into(), i.size.into());
        o.insert("GraphDriver".into(), serde_json::json!({"Name": "overlay2", "Data": {}}));
        o.insert("Metadata".into(), serde_json::json!({"LastTagTime": "0001-01-01T00:00:00Z"}));
    }
    ok(&v)
}

fn image_err(e: berth_image::ImageError) -> ApiError {
    match e {
        berth_image::ImageError::NoSuchImage(r) => {
            ApiError::not_found(format!("No such image: {r}"))
        }
        other => err_msg(other),
    }
}

async fn images_history(st: &State, name: &str) -> R {
    let i = st.engine.image_inspect(name.to_string()).await.map_err(image_err)?;
    let created =
        chrono::DateTime::parse_from_rfc3339(&i.created).map(|t| t.timestamp()).unwrap_or(0);
    // berth keeps no per-layer history: one row per layer, the newest carrying the image.
    let n = i.root_fs.layers.len().max(1);
    let rows: Vec<_> = (0..n)
        .rev()
        .map(|k| {
            let top = k == n - 1;
            serde_json::json!({
                "Id": if top { i.id.clone() } else { "<missing>".into() },
                "Created": created,
                "CreatedBy": "",
                "Tags": if top { i.repo_tags.clone() } else { Vec::new() },
                "Size": if top { i.size } else { 0 },
                "Comment": i.comment,
            })
        })
        .collect();
    ok(&rows)
}

async fn images_tag(st: &State, name: &str, q: &Query) -> R {
    let repo = q.get("repo").unwrap_or("");
    if repo.is_empty() {
        return Err(ApiError::bad("repository name (repo) must have a value"));
    }
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    st.engine.image_tag(name.to_string(), target).await.map_err(image_err)?;
    empty(StatusCode::CREATED)
}

async fn images_remove(st: &State, name: &str, q: &Query) -> R {
    let in_use = st.engine.container_images_in_use().await;
    let items = st
        .engine
        .image_remove(name.to_string(), q.flag("force"), in_use)
        .await
        .map_err(image_err)?;
    ok(&items)
}

async fn images_prune(st: &State, q: &Query) -> R {
    let f = q.filters()?;
    let all = f.get("dangling").and_then(|d| d.first()).is_some_and(|d| d == "false" || d == "0");
    let in_use = st.engine.container_images_in_use().await;
    let r = st.engine.image_prune(all, in_use).await.map_err(image_err)?;
    ok(&serde_json::json!({"ImagesDeleted": r.images_deleted, "SpaceReclaimed": r.space_reclaimed}))
}

async fn images_get(st: &State, names: Vec<String>) -> R {
    if names.is_empty() {
        return Err(ApiError::bad("no image names given (names)"));
    }
    let f = tempfile::tempfile().map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
    let w = f.try_clone().map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
    st.engine.image_save(names, Box::new(w)).await.map_err(image_err)?;
    let data = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek};
        let mut f = f;
        let mut v = Vec::new();
        f.rewind().and_then(|_| f.read_to_end(&mut v)).map(|_| v)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("reading the saved archive: {e}")))?;
    let mut r = hyper::Response::new(full(data));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

async fn images_load(st: &State, req: Request<Incoming>, q: &Query) -> R {
    let f = http::body_to_file(req.into_body()).await?;
    let loaded =
        st.engine.image_load(Box::new(f)).await.map_err(|e| ApiError::bad(e.to_string()))?;
    let mut out = Vec::new();
    // docker's `quiet` only drops the progress bar; the result lines are always sent.
    let _ = q.flag("quiet");
    {
        for l in &loaded {
            let line = if l.refs.is_empty() {
                format!("Loaded image ID: {}\n", l.id)
            } else {
                l.refs.iter().map(|r| format!("Loaded image: {r}\n")).collect()
            };
            out.extend(
                serde_json::to_vec(&serde_json::json!({ "stream": line })).unwrap_or_default(),
            );
            out.push(b'\n');
        }
    }
    let mut r = hyper::Response::new(full(out));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    Ok(r)
}

/// `docker import`: the request body is a root filesystem tar (`fromSrc=-`), tagged `repo:tag`.
async fn images_import(st: &State, req: Request<Incoming>, q: &Query) -> R {
    let f = http::body_to_file(req.into_body()).await?;
    let reference =
        match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag").filter(|t| !t.is_empty())) {
            (Some(r), Some(t)) => Some(format!("{r}:{t}")),
            (Some(r), None) => Some(r.to_string()),
            _ => None,
        };
    let id = st
        .engine
        .image_import(Box::new(f), reference, q.all("changes"))
        .await
        .map_err(image_err)?;
    let mut r = hyper::Response::new(full(format!("{}\n", serde_json::json!({ "status": id }))));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    Ok(r)
}

/// docker's `POST /networks/create` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkCreateBody {
    name: String,
    driver: String,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    labels: indexmap::IndexMap<String, String>,
    options: indexmap::IndexMap<String, String>,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamBody>,
    scope: String,
    config_only: bool,
    config_from: Option<serde_json::Value>,
    ingress: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamBody {
    driver: String,
    config: Vec<IpamPool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamPool {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

async fn networks_create(st: &State, req: Request<Incoming>) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let b: NetworkCreateBody = http::parse_json(&body)?;
    if b.name.is_empty() {
        return Err(ApiError::bad("network name (Name) must not be empty"));
    }
    if !matches!(b.driver.as_str(), "" | "bridge") {
        return Err(ApiError::bad(format!(
            "network driver {:?} is not supported (Driver): berth has bridge networks only",
            b.driver
        )));
    }
    if b.ingress
        || b.config_only
        || b.config_from.is_some()
        || !matches!(b.scope.as_str(), "" | "local")
    {
        return Err(ApiError::bad(
            "swarm network options (Ingress, ConfigOnly, ConfigFrom, Scope) are not supported",
        ));
    }
    if let Some(i) = &b.ipam
        && !matches!(i.driver.as_str(), "" | "default")
    {
        return Err(ApiError::bad(format!(
            "IPAM driver {:?} is not supported (IPAM.Driver)",
            i.driver
        )));
    }
    let req = berth_network::NetworkCreate {
        name: b.name,
        driver: opt(b.driver),
        internal: b.internal,
        attachable: b.attachable,
        labels: b.labels,
        options: b.options,
        ipam: b
            .ipam
            .map(|i| i.config)
            .unwrap_or_default()
            .into_iter()
            .map(|p| berth_network::IpamRequest {
                subnet: opt(p.subnet),
                ip_range: opt(p.ip_range),
                gateway: opt(p.gateway),
            })
            .collect(),
        enable_ipv6: b.enable_ipv6,
    };
    let rec = st.engine.network_create(req).await.map_err(err_msg)?;
    Ok(http::json(StatusCode::CREATED, &serde_json::json!({"Id": rec.id, "Warning": ""})))
}

fn net_filters(q: &Query) -> Result<berth_network::Filters, ApiError> {
    let f = q.filters()?;
    Ok(berth_network::Filters {
        name: f.get("name").cloned().unwrap_or_default(),
        id: f.get("id").cloned().unwrap_or_default(),
        label: f.get("label").cloned().unwrap_or_default(),
    })
}

async fn networks_list(st: &State, q: &Query) -> R {
    let l = st.engine.network_list(net_filters(q)?).await.map_err(err_msg)?;
    ok(&l)
}

async fn networks_prune(st: &State, q: &Query) -> R {
    let names = st.engine.network_prune(net_filters(q)?).await.map_err(err_msg)?;
    ok(&serde_json::json!({ "NetworksDeleted": names }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: berth_runtime::container::EndpointRequest,
    force: bool,
}

async fn networks_connect(st: &State, id: &str, req: Request<Incoming>) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let b: ConnectBody = http::parse_json(&body)?;
    st.engine.network_connect(id, &b.container, b.endpoint_config).await.map_err(err_msg)?;
    empty(StatusCode::OK)
}

async fn networks_disconnect(st: &State, id: &str, req: Request<Incoming>) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let b: ConnectBody = http::parse_json(&body)?;
    let _ = b.force;
    st.engine.network_disconnect(id, &b.container).await.map_err(err_msg)?;
    empty(StatusCode::OK)
}

async fn volumes_list(st: &State, q: &Query) -> R {
    let f = q.filters()?;
    let filters = berth_runtime::volume::VolumeFilters {
        name: f.get("name").cloned().unwrap_or_default(),
        label: f.get("label").cloned().unwrap_or_default(),
        dangling: f.get("dangling").and_then(|d| d.first()).map(|d| d == "true" || d == "1"),
    };
    let in_use = st.engine.container_volumes_in_use().await;
    let l = st.engine.volume_list(filters, in_use).await.map_err(err_msg)?;
    ok(&serde_json::json!({ "Volumes": l, "Warnings": [] }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeCreateBody {
    name: String,
    driver: String,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

async fn volumes_create(st: &State, req: Request<Incoming>) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let b: VolumeCreateBody = http::parse_json(&body)?;
    if !matches!(b.driver.as_str(), "" | "local") {
        return Err(ApiError::bad(format!(
            "volume driver {:?} is not supported (Driver): only local",
            b.driver
        )));
    }
    let v = st.engine.volume_create(opt(b.name), b.labels, b.driver_opts).await.map_err(err_msg)?;
    Ok(http::json(StatusCode::CREATED, &v))
}

async fn volumes_prune(st: &State, q: &Query) -> R {
    let f = q.filters()?;
    let all = f.get("all").and_then(|d| d.first()).is_some_and(|d| d == "true" || d == "1");
    let labels = f.get("label").cloned().unwrap_or_default();
    let in_use = st.engine.container_volumes_in_use().await;
    let r = st.engine.volume_prune(all, labels, in_use).await.map_err(err_msg)?;
    ok(&r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_paths_are_split() {
        assert_eq!(split_version("/v1.43/containers/json"), (Some("1.43"), "/containers/json"));
        assert_eq!(split_version("/_ping"), (None, "/_ping"));
        assert_eq!(split_version("/volumes/v1"), (None, "/volumes/v1"));
        assert!(version_num("1.9") < version_num("1.24"));
        assert!(version_num("1.50") > version_num(API_VERSION));
    }

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(percent_decode("bb%3Alatest"), "bb:latest");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
