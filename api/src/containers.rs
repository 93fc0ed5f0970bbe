//! Container and exec endpoints. Attach and exec start take the connection over (docker's
//! hijack: HTTP upgrade to a raw stream); logs, wait and stats stream their bodies.
//!
//! docker's `run` attaches and waits before it starts the container: those requests register
//! here (`Pending`) and the start that comes through this service feeds them from its own
//! output channel (woken by the monitor, no polling), then removes an `AutoRemove` container
//! itself once its output was read, and only then reports its exit code to the waiters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::container::{
    ContainerCreateConfig, ContainerError, ContainerInspect, CopyOptions, ExecConfig, ExecStreams,
    ListFilters, LogsOptions,
};
use berth_runtime::logs::LogEntry;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::http::{self, ApiError, MAX_JSON_BODY, Query, R, empty, ok};
use crate::state::{ExecEntry, Pending, State};
use crate::stream::{self, Fd, STDERR, STDOUT, frame};

/// How long an ended exec stays inspectable.
const EXEC_KEEP: Duration = Duration::from_secs(300);

fn cerr(e: ContainerError) -> ApiError {
    let status = match &e {
        ContainerError::NotFound(_) => StatusCode::NOT_FOUND,
        ContainerError::NameInUse { .. } => StatusCode::CONFLICT,
        ContainerError::Ambiguous(_) | ContainerError::Invalid(_) => StatusCode::BAD_REQUEST,
        ContainerError::Image(berth_image::ImageError::NoSuchImage(r)) => {
            return ApiError::not_found(format!("No such image: {r}"));
        }
        ContainerError::Image(_) => StatusCode::BAD_REQUEST,
        ContainerError::NotRunning(_)
        | ContainerError::Paused(_)
        | ContainerError::RemoveRunning(_)
        | ContainerError::Damaged { .. }
        | ContainerError::Alive { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let msg = e.to_string();
    // copy's "could not find the file ... in container" is docker's 404.
    if msg.contains("could not find the file") || msg.contains("does not exist") {
        return ApiError::not_found(msg);
    }
    ApiError::new(status, msg)
}

/// Dispatches `/containers/...` and `/exec/...`.
pub async fn route(state: Arc<State>, req: Request<Incoming>, segs: &[&str], q: Query) -> R {
    let m = req.method().clone();
    let st = &state;
    match (&m, segs) {
        (&Method::GET, ["containers", "json"]) => list(st, &q).await,
        (&Method::POST, ["containers", "create"]) => create(st, req, &q).await,
        (&Method::POST, ["containers", "prune"]) => prune(st).await,
        (&Method::GET, ["containers", id, "json"]) => ok(&inspect(st, id).await?),
        (&Method::POST, ["containers", id, "start"]) => start(state.clone(), id).await,
        (&Method::POST, ["containers", id, "stop"]) => {
            let c = inspect(st, id).await?;
            if !c.state.running {
                return empty(StatusCode::NOT_MODIFIED);
            }
            st.engine.container_stop(id, q.int("t")?).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "restart"]) => {
            st.engine.container_restart(id, q.int("t")?).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "kill"]) => {
            st.engine
                .container_kill(id, q.get("signal").filter(|s| !s.is_empty()))
                .await
                .map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "pause"]) => {
            st.engine.container_pause(id).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "unpause"]) => {
            st.engine.container_unpause(id).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "rename"]) => {
            let name = q.get("name").unwrap_or("");
            st.engine.container_rename(id, name.trim_start_matches('/')).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "resize"]) => {
            let c = inspect(st, id).await?;
            if !c.state.running {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("container {} is not running", c.id),
                ));
            }
            let h = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            let w = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
            if c.config.tty {
                resize_container_tty(c.state.pid as i32, h, w).map_err(|e| {
                    ApiError::internal(format!("resizing the terminal of {}: {e}", c.id))
                })?;
            }
            empty(StatusCode::OK)
        }
        (&Method::GET, ["containers", id, "top"]) => {
            ok(&st.engine.container_top(id).await.map_err(cerr)?)
        }
        (&Method::GET, ["containers", id, "logs"]) => logs(st, id, &q).await,
        (&Method::GET, ["containers", id, "stats"]) => stats(st, id, &q).await,
        (&Method::POST, ["containers", id, "wait"]) => wait(state.clone(), id, &q).await,
        (&Method::POST, ["containers", id, "attach"]) => attach(state.clone(), req, id, &q).await,
        (&Method::GET | &Method::HEAD, ["containers", id, "archive"]) => {
            archive_get(st, id, &q, m == Method::HEAD).await
        }
        (&Method::PUT, ["containers", id, "archive"]) => archive_put(st, req, id, &q).await,
        (&Method::DELETE, ["containers", id]) => {
            st.engine.container_remove(id, q.flag("force"), q.flag("v")).await.map_err(cerr)?;
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["containers", id, "exec"]) => exec_create(st, req, id).await,
        (&Method::POST, ["exec", id, "start"]) => exec_start(state.clone(), req, id).await,
        (&Method::POST, ["exec", id, "resize"]) => exec_resize(st, id, &q),
        (&Method::GET, ["exec", id, "json"]) => exec_inspect(st, id),
        _ => Err(ApiError::not_found(format!("page not found: {} /{}", m, segs.join("/")))),
    }
}

async fn inspect(st: &State, id: &str) -> Result<ContainerInspect, ApiError> {
    let mut c = st.engine.container_inspect(id).await.map_err(cerr)?;
    // berth's only log driver; clients (docker-py's run) read logs only when it is named.
    if c.host_config.log_config.typ.is_empty() {
        c.host_config.log_config.typ = "json-file".into();
    }
    Ok(c)
}

async fn list(st: &State, q: &Query) -> R {
    let f = q.filters()?;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    for k in f.keys() {
        if !matches!(k.as_str(), "label" | "name" | "status" | "id" | "ancestor" | "network") {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let filters = ListFilters {
        label: get("label"),
        name: get("name"),
        status: get("status"),
        id: get("id"),
        ..Default::default()
    };
    let all = q.flag("all") || !filters.status.is_empty();
    let mut rows = st.engine.container_list(all, &filters).await.map_err(cerr)?;
    let ancestors = get("ancestor");
    if !ancestors.is_empty() {
        let mut ids = Vec::new();
        for a in &ancestors {
            if let Ok(i) = st.engine.image_inspect(a.clone()).await {
                ids.push(i.id);
            }
        }
        rows.retain(|r| ancestors.contains(&r.image) || ids.contains(&r.image_id));
    }
    let nets = get("network");
    let mut out = Vec::new();
    for r in rows {
        let mut v = serde_json::to_value(&r).map_err(|e| ApiError::internal(e.to_string()))?;
        // docker's summary also carries the networks and network mode.
        if let Ok(c) = st.engine.container_inspect(&r.id).await {
            if !nets.is_empty() {
                let joined = c.network_settings.networks.iter().any(|(name, ep)| {
                    nets.iter().any(|n| {
                        n == name
                            || ep
                                .get("NetworkID")
                                .and_then(|x| x.as_str())
                                .is_some_and(|id| id.starts_with(n.as_str()))
                    })
                });
                if !joined {
                    continue;
                }
            }
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "HostConfig".into(),
                    serde_json::json!({"NetworkMode": c.host_config.network_mode}),
                );
                o.insert(
                    "NetworkSettings".into(),
                    serde_json::json!({"Networks": c.network_settings.networks}),
                );
            }
        } else if !nets.is_empty() {
            continue;
        }
        out.push(v);
    }
    ok(&out)
}

/// HostConfig members docker has and berth does not carry out: a request that sets one is
/// refused naming it, rather than run differently from what was asked.
fn unsupported(body: &serde_json::Value) -> Option<String> {
    let hc = body.get("HostConfig")?;
    let set = |k: &str| match hc.get(k) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => !s.is_empty(),
        Some(serde_json::Value::Array(a)) => !a.is_empty(),
        Some(serde_json::Value::Object(o)) => !o.is_empty(),
        Some(serde_json::Value::Number(n)) => n.as_f64() != Some(0.0),
    };
    let str_is =
        |k: &str, ok: &[&str]| hc.get(k).and_then(|v| v.as_str()).is_some_and(|s| !ok.contains(&s));
    for k in [
        "VolumesFrom",
        "CgroupParent",
        "DeviceRequests",
        "DeviceCgroupRules",
        "StorageOpt",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "CpusetMems",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "KernelMemory",
        "KernelMemoryTCP",
        "OomKillDisable",
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
        "MaskedPaths",
        "ReadonlyPaths",
    ] {
        if set(k) {
            return Some(format!("HostConfig.{k}"));
        }
    }
    if str_is("PidMode", &["", "private"]) {
        return Some("HostConfig.PidMode".into());
    }
    if str_is("IpcMode", &["", "private", "shareable", "none"]) {
        return Some("HostConfig.IpcMode".into());
    }
    if str_is("UTSMode", &[""]) || str_is("UsernsMode", &["", "private"]) {
        return Some("HostConfig.UTSMode/UsernsMode".into());
    }
    if str_is("CgroupnsMode", &["", "private", "host"]) {
        return Some("HostConfig.CgroupnsMode".into());
    }
    if str_is("Runtime", &["", "runc", "berth"]) {
        return Some("HostConfig.Runtime".into());
    }
    if str_is("Isolation", &["", "default"]) {
        return Some("HostConfig.Isolation".into());
    }
    None
}

async fn create(st: &State, req: Request<Incoming>, q: &Query) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let raw: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    if !raw.is_object() {
        return Err(ApiError::bad("invalid JSON: the container config must be an object"));
    }
    if let Some(opt) = unsupported(&raw) {
        return Err(ApiError::bad(format!("{opt} is not supported by berth")));
    }
    let mut cfg: ContainerCreateConfig = http::parse_json(&body)?;
    if cfg.rootfs.is_some() {
        // berth's own extension runs a host directory: never from a remote client.
        return Err(ApiError::bad("Rootfs is not accepted over the API"));
    }
    if cfg.config.image.is_empty() {
        return Err(ApiError::bad("config.Image must not be empty"));
    }
    // docker's "default" network mode is its default bridge network.
    if matches!(cfg.host_config.network_mode.as_str(), "" | "default") {
        cfg.host_config.network_mode = "bridge".into();
    }
    let eps = &mut cfg.networking_config.endpoints_config;
    if let Some(ep) = eps.shift_remove("default") {
        eps.entry("bridge".into()).or_insert(ep);
    }
    let name = q.get("name").filter(|n| !n.is_empty()).map(|n| n.trim_start_matches('/'));
    let id = st.engine.container_create(name, cfg).await.map_err(cerr)?;
    Ok(http::json(StatusCode::CREATED, &serde_json::json!({"Id": id, "Warnings": []})))
}

async fn prune(st: &State) -> R {
    let rows = st.engine.container_list(true, &ListFilters::default()).await.map_err(cerr)?;
    let mut deleted = Vec::new();
    for r in rows.iter().filter(|r| matches!(r.state.as_str(), "created" | "exited" | "dead")) {
        if st.engine.container_remove(&r.id, false, false).await.is_ok() {
            deleted.push(r.id.clone());
        }
    }
    ok(&serde_json::json!({"ContainersDeleted": deleted, "SpaceReclaimed": 0}))
}

fn pending_entry<'a>(map: &'a mut HashMap<String, Pending>, id: &str) -> &'a mut Pending {
    map.entry(id.to_string()).or_default()
}

/// Starts a container. With attach streams or waits registered, or `AutoRemove`, the service
/// follows the start itself (see the module doc).
async fn start(state: Arc<State>, key: &str) -> R {
    let c = inspect(&state, key).await?;
    if c.state.running {
        return empty(StatusCode::NOT_MODIFIED);
    }
    let id = c.id.clone();
    let pend = state.pending.lock().ok().and_then(|mut m| m.remove(&id));
    let auto_remove = c.host_config.auto_remove;
    if pend.is_none() && !auto_remove {
        state.engine.container_start(&id).await.map_err(cerr)?;
        return empty(StatusCode::NO_CONTENT);
    }
    let pend = pend.unwrap_or_default();
    // The attached start streams the log from its beginning: a container that ran before
    // already has output there, which docker's `start -a` does not show again.
    let since = (c.state.started_at != berth_runtime::container::ZERO_TIME)
        .then(|| chrono::Utc::now().timestamp_nanos_opt().map(i128::from).unwrap_or(0));
    let attached = match state.engine.container_start_attached(&id).await {
        Ok(a) => a,
        Err(e) => {
            // Nothing will feed them: the streams end, the waits report the failure's code.
            if let Ok(mut m) = state.pending.lock() {
                pending_entry(&mut m, &id).wait.extend(pend.wait);
            }
            return Err(cerr(e));
        }
    };
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let mut rx = attached.output;
        let mut attach = pend.attach;
        while let Some(e) = rx.recv().await {
            if since.is_some_and(|t| e.time_ns < t) {
                continue;
            }
            let mut keep = Vec::with_capacity(attach.len());
            for tx in attach.drain(..) {
                if tx.send(e.clone()).await.is_ok() {
                    keep.push(tx);
                }
            }
            attach = keep;
        }
        drop(attach);
        let code = engine.container_wait(&id).await.unwrap_or(-1);
        if attached.auto_remove {
            let _ = engine.container_remove(&id, true, true).await;
        }
        for w in pend.wait {
            let _ = w.send(code);
        }
    });
    empty(StatusCode::NO_CONTENT)
}

async fn wait(state: Arc<State>, key: &str, q: &Query) -> R {
    let cond = q.get("condition").unwrap_or("not-running").to_string();
    if !matches!(cond.as_str(), "not-running" | "next-exit" | "removed" | "") {
        return Err(ApiError::bad(format!("invalid condition: {cond:?}")));
    }
    let c = inspect(&state, key).await?;
    let id = c.id.clone();
    let (tx, resp) = stream::channel_body("application/json");
    let send = |code: i64| {
        Bytes::from(format!("{}\n", serde_json::json!({"StatusCode": code, "Error": null})))
    };
    if !c.state.running && !c.state.restarting && matches!(cond.as_str(), "not-running" | "") {
        let _ = tx.send(send(c.state.exit_code)).await;
        return Ok(resp);
    }
    if c.state.running {
        let engine = state.engine.clone();
        tokio::spawn(async move {
            let code = engine.container_wait(&id).await.unwrap_or(-1);
            if cond == "removed" {
                // The monitor (or this service's start) removes it; poll with a growing delay.
                let mut d = Duration::from_millis(5);
                while engine.container_inspect(&id).await.is_ok() && !tx.is_closed() {
                    tokio::time::sleep(d).await;
                    d = (d * 2).min(Duration::from_millis(200));
                }
            }
            let _ = tx.send(send(code)).await;
        });
        return Ok(resp);
    }
    let (wtx, wrx) = oneshot::channel();
    if let Ok(mut m) = state.pending.lock() {
        pending_entry(&mut m, &id).wait.push(wtx);
    }
    tokio::spawn(async move {
        match wrx.await {
            Ok(code) => {
                let _ = tx.send(send(code)).await;
            }
            Err(_) => {
                let body = serde_json::json!({"StatusCode": -1, "Error": {"Message": "the container failed to start"}});
                let _ = tx.send(Bytes::from(format!("{body}\n"))).await;
            }
        }
    });
    Ok(resp)
}

/// A log entry as bytes on a stream (docker's framing without a TTY), with its timestamp first
/// when asked.
fn entry_bytes(e: &LogEntry, tty: bool, timestamps: bool) -> Vec<u8> {
    let s = if e.stream == "stderr" { STDERR } else { STDOUT };
    if timestamps {
        let mut t = e.time.clone().into_bytes();
        t.push(b' ');
        t.extend_from_slice(e.text.as_bytes());
        frame(s, &t, tty)
    } else {
        frame(s, e.text.as_bytes(), tty)
    }
}

/// docker's `since`/`until`: unix seconds, maybe fractional, or RFC 3339.
fn time_ns(v: Option<&str>) -> Result<Option<i128>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty() && *v != "0") else { return Ok(None) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_nanos_opt().map(i128::from));
    }
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i128 = s.parse().map_err(|_| ApiError::bad(format!("invalid time value {v:?}")))?;
    let mut nanos = 0i128;
    if !frac.is_empty() {
        let f: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = f.parse().map_err(|_| ApiError::bad(format!("invalid time value {v:?}")))?;
    }
    Ok(Some(secs * 1_000_000_000 + nanos))
}

async fn logs(st: &State, key: &str, q: &Query) -> R {
    let c = inspect(st, key).await?;
    let tty = c.config.tty;
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad("you must choose at least one stream"));
    }
    let tail = match q.get("tail") {
        None | Some("all") | Some("") => None,
        Some(n) => {
            Some(n.parse::<usize>().map_err(|_| ApiError::bad(format!("invalid tail {n:?}")))?)
        }
    };
    let opts = LogsOptions {
        follow: q.flag("follow"),
        stdout,
        stderr,
        since: time_ns(q.get("since"))?,
        until: time_ns(q.get("until"))?,
        timestamps: q.flag("timestamps"),
        tail,
    };
    let ts = opts.timestamps;
    let mut rx = st.engine.container_logs(&c.id, opts).await.map_err(cerr)?;
    let (tx, resp) = stream::channel_body(stream::stream_type(tty));
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if tx.send(Bytes::from(entry_bytes(&e, tty, ts))).await.is_err() {
                return;
            }
        }
    });
    Ok(resp)
}

/// Total CPU time of the host in nanoseconds (`system_cpu_usage`), from /proc/stat.
fn system_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = s
        .lines()
        .next()
        .map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

fn mem_total() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn ncpu() -> u64 {
    std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1)
}

/// One sample in docker's stats shape, with the previous one as `precpu_stats`.
fn stats_json(
    s: &berth_runtime::container::ContainerStats,
    sys: u64,
    pre: Option<(&berth_runtime::container::ContainerStats, u64)>,
) -> serde_json::Value {
    let cpu = |total: u64, sys: u64| {
        serde_json::json!({
            "cpu_usage": {"total_usage": total, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": sys, "online_cpus": ncpu(),
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        })
    };
    let read = chrono::DateTime::from_timestamp_nanos(s.read_ns as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (pre_cpu, preread) = match pre {
        Some((p, psys)) => (
            cpu(p.cpu_total_ns, psys),
            chrono::DateTime::from_timestamp_nanos(p.read_ns as i64)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        ),
        None => (
            serde_json::json!({"cpu_usage": {"total_usage": 0}, "throttling_data": {}}),
            "0001-01-01T00:00:00Z".into(),
        ),
    };
    let limit = if s.memory_limit == 0 { mem_total() } else { s.memory_limit };
    serde_json::json!({
        "read": read, "preread": preread,
        "pids_stats": {"current": s.pids},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.block_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.block_write}]},
        "num_procs": 0,
        "cpu_stats": cpu(s.cpu_total_ns, sys),
        "precpu_stats": pre_cpu,
        "memory_stats": {"usage": s.memory_usage, "limit": limit,
            "stats": {"inactive_file": s.memory_inactive_file, "total_inactive_file": s.memory_inactive_file}},
        "name": format!("/{}", s.name), "id": s.id,
        "networks": {"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx, "rx_packets": 0, "tx_packets": 0,
            "rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}},
    })
}

async fn stats(st: &State, key: &str, q: &Query) -> R {
    let c = inspect(st, key).await?;
    let stream = q.get("stream").is_none_or(|v| matches!(v, "1" | "true" | "True"));
    let one_shot = q.flag("one-shot");
    let engine = st.engine.clone();
    let id = c.id.clone();
    let sample = |engine: berth_runtime::Engine, id: String| async move {
        if !engine.container_inspect(&id).await.ok()?.state.running {
            // docker reports a stopped container with zeroes.
            return Some((
                berth_runtime::container::ContainerStats { id: id.clone(), ..Default::default() },
                0,
            ));
        }
        let s = engine.container_stats(&id).await.ok()?;
        Some((s, system_cpu_ns()))
    };
    let first = sample(engine.clone(), id.clone())
        .await
        .ok_or_else(|| ApiError::internal("reading the container's statistics failed"))?;
    let (tx, resp) = stream::channel_body("application/json");
    tokio::spawn(async move {
        let line = |v: serde_json::Value| Bytes::from(format!("{v}\n"));
        if one_shot {
            let _ = tx.send(line(stats_json(&first.0, first.1, None))).await;
            return;
        }
        let mut prev = first;
        loop {
            // docker's sampling interval: the CPU share is the change over it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(cur) = sample(engine.clone(), id.clone()).await else { return };
            if tx.send(line(stats_json(&cur.0, cur.1, Some((&prev.0, prev.1))))).await.is_err()
                || !stream
            {
                return;
            }
            prev = cur;
        }
    });
    Ok(resp)
}

/// Attach: the container's output from now on (docker's `logs=1` adds what it logged
/// before), and its stdin when asked, over the hijacked connection.
async fn attach(state: Arc<State>, mut req: Request<Incoming>, key: &str, q: &Query) -> R {
    let c = inspect(&state, key).await?;
    let tty = c.config.tty;
    let id = c.id.clone();
    let (want_out, want_err) = (q.flag("stdout"), q.flag("stderr"));
    let want_in = q.flag("stdin") && c.config.open_stdin;
    let started_at = c.state.started_at.clone();
    let rx = if c.state.running {
        if q.flag("logs") {
            let opts =
                LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
            state.engine.container_logs(&id, opts).await.map_err(cerr)?
        } else {
            state.engine.container_attach(&id).await.map_err(cerr)?
        }
    } else {
        let (tx, rx) = mpsc::channel(256);
        if let Ok(mut m) = state.pending.lock() {
            pending_entry(&mut m, &id).attach.push(tx);
        }
        rx
    };
    let mut rx = rx;
    let keep = move |e: &LogEntry| if e.stream == "stderr" { want_err } else { want_out };
    if !stream::wants_upgrade(&req) {
        // An old client without the upgrade headers: output only, as a streamed body.
        let (tx, resp) = stream::channel_body(stream::stream_type(tty));
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if keep(&e) && tx.send(Bytes::from(entry_bytes(&e, tty, false))).await.is_err() {
                    return;
                }
            }
        });
        return Ok(resp);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = state.activity.enter();
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(up);
        let (mut rd, mut wr) = tokio::io::split(io);
        let fifo_path = engine.container_stdin_fifo(&id);
        let mut fifo: Option<tokio::fs::File> = None;
        let mut buf = vec![0u8; 32 * 1024];
        let mut input_open = want_in;
        loop {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => {
                        if keep(&e) && wr.write_all(&entry_bytes(&e, tty, false)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                n = rd.read(&mut buf), if input_open => match n {
                    Ok(0) | Err(_) => {
                        input_open = false;
                        // The client's end of input is the container's once our writer goes
                        // (with StdinOnce the monitor keeps none); a fifo's unread bytes are
                        // lost when its last holder closes it, so hold it until the container
                        // has started and opened its end.
                        if let Some(f) = fifo.take() {
                            tokio::spawn(release_when_started(engine.clone(), id.clone(), started_at.clone(), f));
                        }
                    }
                    Ok(n) => {
                        if fifo.is_none() {
                            // Read+write never blocks on a fifo; the monitor made it at start.
                            fifo = tokio::fs::OpenOptions::new().read(true).write(true).open(&fifo_path).await.ok();
                        }
                        if let Some(f) = fifo.as_mut() {
                            let _ = f.write_all(&buf[..n]).await;
                        }
                    }
                },
            }
        }
        let _ = wr.shutdown().await;
        drop(guard);
    });
    Ok(stream::switching(tty))
}

/// Sets the window size of a TTY container's terminal through its first process's stdin (the
/// terminal's slave side, which the monitor set up; the master stays with the monitor). The
/// process may have replaced its stdin: the file is first looked at without opening it, and
/// only a pseudo-terminal (major 136-143) or the console is opened, non-blocking.
fn resize_container_tty(pid: i32, height: u16, width: u16) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, SFlag, fstat, major};
    let link = format!("/proc/{pid}/fd/0");
    let probe = open(link.as_str(), OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())?;
    let st = fstat(&probe)?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    let maj = major(st.st_rdev);
    if !is_chr || !((136..=143).contains(&maj) || maj == 5) {
        return Err(std::io::Error::other("its stdin is not a terminal"));
    }
    // Reopening the probed file through our own descriptor: the file looked at is the one opened.
    let fd = open(
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&probe)).as_str(),
        OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    berth_runtime::container::exec::resize_tty(std::os::fd::AsFd::as_fd(&fd), height, width);
    Ok(())
}

/// Drops `fifo` once container `id` has started since `started_at` (or is gone), bounded.
async fn release_when_started(
    engine: berth_runtime::Engine,
    id: String,
    started_at: String,
    fifo: tokio::fs::File,
) {
    let mut d = Duration::from_millis(5);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        match engine.container_inspect(&id).await {
            Ok(c) if c.state.running || c.state.started_at != started_at => break,
            Ok(_) => {}
            Err(_) => break,
        }
        tokio::time::sleep(d).await;
        d = (d * 2).min(Duration::from_millis(100));
    }
    drop(fifo);
}

/// The stat docker sends in `X-Docker-Container-Path-Stat` (mode in Go's `os.FileMode` bits).
fn path_stat(p: &std::path::Path, name: &str) -> Option<String> {
    use base64::Engine as _;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).ok()?;
    let mut mode = m.mode() & 0o777;
    let ft = m.file_type();
    if ft.is_dir() {
        mode |= 1 << 31;
    } else if ft.is_symlink() {
        mode |= 1 << 27;
    }
    let link = if ft.is_symlink() {
        std::fs::read_link(p).map(|l| l.display().to_string()).unwrap_or_default()
    } else {
        String::new()
    };
    let mtime = chrono::DateTime::from_timestamp(m.mtime(), m.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let j = serde_json::json!({"name": name, "size": m.size(), "mode": mode, "mtime": mtime, "linkTarget": link});
    Some(base64::engine::general_purpose::STANDARD.encode(j.to_string()))
}

async fn archive_get(st: &State, key: &str, q: &Query, head: bool) -> R {
    let path =
        q.get("path").filter(|p| !p.is_empty()).ok_or_else(|| ApiError::bad("path is required"))?;
    let tmp =
        tempfile::tempdir().map_err(|e| ApiError::internal(format!("temporary directory: {e}")))?;
    let trimmed = path.trim_end_matches("/.").trim_end_matches('/');
    let name = std::path::Path::new(trimmed)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let local = tmp.path().join(if name == "/" { "root" } else { &name });
    st.engine
        .container_copy_out(key, path, &local, CopyOptions { archive: true })
        .await
        .map_err(cerr)?;
    let stat = path_stat(&local, &name).unwrap_or_default();
    let data = if head {
        Vec::new()
    } else {
        let (local, name) = (local.clone(), name.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut b = tar::Builder::new(Vec::new());
            b.follow_symlinks(false);
            let arc_name = if name == "/" { ".".to_string() } else { name };
            if local.is_dir() {
                b.append_dir_all(&arc_name, &local)?;
            } else {
                b.append_path_with_name(&local, &arc_name)?;
            }
            b.into_inner()
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("making the archive: {e}")))?
    };
    let mut r = hyper::Response::new(http::full(data));
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/x-tar"));
    if let Ok(v) = HeaderValue::from_str(&stat) {
        h.insert("x-docker-container-path-stat", v);
    }
    Ok(r)
}

async fn archive_put(st: &State, req: Request<Incoming>, key: &str, q: &Query) -> R {
    let dest = q
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("path is required"))?
        .to_string();
    inspect(st, key).await?;
    let file = http::body_to_file(req.into_body()).await?;
    let tmp =
        tempfile::tempdir().map_err(|e| ApiError::internal(format!("temporary directory: {e}")))?;
    let dir = tmp.path().to_path_buf();
    // The archive is unpacked into a private directory first (tar refuses `..` and absolute
    // members and writes nothing outside it), then copied in by the Engine's own no-follow copy.
    let unpack_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        let mut a = tar::Archive::new(file);
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        a.unpack(&unpack_dir)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::bad(format!("invalid archive: {e}")))?;
    let archive = q.flag("copyUIDGID");
    let entries = std::fs::read_dir(&dir).map_err(|e| ApiError::internal(e.to_string()))?;
    for e in entries.flatten() {
        st.engine
            .container_copy_in(key, &e.path(), &dest, CopyOptions { archive })
            .await
            .map_err(cerr)?;
    }
    empty(StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecCreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Vec<String>,
    cmd: Vec<String>,
    privileged: bool,
    user: String,
    working_dir: String,
    detach_keys: String,
}

async fn exec_create(st: &State, req: Request<Incoming>, key: &str) -> R {
    let body = http::read_body(req.into_body(), MAX_JSON_BODY).await?;
    let b: ExecCreateBody = http::parse_json(&body)?;
    let c = inspect(st, key).await?;
    if !c.state.running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", c.id),
        ));
    }
    if c.state.paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container {} is paused, unpause the container before exec", c.id),
        ));
    }
    if b.cmd.is_empty() {
        return Err(ApiError::bad("No exec command specified"));
    }
    let _ = (b.attach_stdout, b.attach_stderr, b.detach_keys);
    let cfg = ExecConfig {
        cmd: b.cmd,
        env: b.env,
        user: (!b.user.is_empty()).then_some(b.user),
        working_dir: (!b.working_dir.is_empty()).then_some(b.working_dir),
        tty: b.tty,
        interactive: b.attach_stdin,
        detach: false,
        privileged: b.privileged,
    };
    let id = berth_runtime::ids::random_id()
        .map_err(|e| ApiError::internal(format!("making an exec id: {e}")))?;
    let entry = ExecEntry {
        container: c.id,
        cfg,
        attach_stdin: b.attach_stdin,
        running: false,
        exit_code: None,
        pid: 0,
        tty: None,
        ended: None,
    };
    if let Ok(mut m) = st.execs.lock() {
        m.retain(|_, e| e.ended.is_none_or(|t| t.elapsed() < EXEC_KEEP));
        m.insert(id.clone(), entry);
    }
    Ok(http::json(StatusCode::CREATED, &serde_json::json!({"Id": id})))
}

fn exec_lookup<T>(
    st: &State,
    id: &str,
    f: impl FnOnce(&mut ExecEntry) -> T,
) -> Result<T, ApiError> {
    let mut m = st.execs.lock().map_err(|_| ApiError::internal("exec table poisoned"))?;
    let e =
        m.get_mut(id).ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
    Ok(f(e))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStartBody {
    detach: bool,
    tty: bool,
}

async fn exec_start(state: Arc<State>, mut req: Request<Incoming>, id: &str) -> R {
    let body = {
        let b = req.body_mut();
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            let f = f.map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
            if let Ok(d) = f.into_data() {
                if out.len() + d.len() > MAX_JSON_BODY {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
                out.extend_from_slice(&d);
            }
        }
        out
    };
    let b: ExecStartBody = http::parse_json(&body)?;
    let (container, mut cfg, started) = exec_lookup(&state, id, |e| {
        let was = e.running || e.exit_code.is_some();
        e.running = true;
        (e.container.clone(), e.cfg.clone(), was)
    })?;
    if started {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {id} has already been started"),
        ));
    }
    let _ = b.tty;
    if b.detach {
        cfg.detach = true;
        let r = state.engine.container_exec(&container, cfg).await;
        exec_lookup(&state, id, |e| {
            if r.is_err() {
                e.running = false;
            }
            // Its end is not seen (the Engine reaps it): forgotten like an ended one.
            e.ended = Some(std::time::Instant::now());
        })?;
        r.map_err(cerr)?;
        return empty(StatusCode::OK);
    }
    let spawned = state.engine.container_exec_spawn(&container, &cfg);
    let (child, streams) = match spawned {
        Ok(x) => x,
        Err(e) => {
            let _ = exec_lookup(&state, id, |x| {
                x.running = false;
                x.exit_code = Some(126);
                x.ended = Some(std::time::Instant::now());
            });
            return Err(cerr(e));
        }
    };
    let tty = matches!(streams, ExecStreams::Tty(_));
    let (out, err, input) = match streams {
        ExecStreams::Tty(m) => {
            let m = Arc::new(Fd::new(m).map_err(|e| ApiError::internal(e.to_string()))?);
            (m.clone(), None, Some(m))
        }
        ExecStreams::Pipes { stdin, stdout, stderr } => {
            let o = Arc::new(Fd::new(stdout).map_err(|e| ApiError::internal(e.to_string()))?);
            let e = Fd::new(stderr).map_err(|e| ApiError::internal(e.to_string()))?;
            let i = match stdin {
                Some(i) => {
                    Some(Arc::new(Fd::new(i).map_err(|e| ApiError::internal(e.to_string()))?))
                }
                None => None,
            };
            (o, Some(e), i)
        }
    };
    let _ = exec_lookup(&state, id, |e| {
        e.pid = child.pid;
        if tty {
            e.tty = Some(out.clone());
        }
        let _ = e.attach_stdin;
    });
    let upgrade = stream::wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = state.activity.enter();
    let st = state.clone();
    let exec_id = id.to_string();
    let (body_tx, body_resp) = stream::channel_body(stream::stream_type(tty));
    tokio::spawn(async move {
        // Where the output goes: the hijacked connection, or (old clients) the response body.
        let (mut conn_rd, mut conn_wr) = if upgrade {
            match on_upgrade.await {
                Ok(up) => {
                    let (r, w) = tokio::io::split(hyper_util::rt::TokioIo::new(up));
                    (Some(r), Some(w))
                }
                Err(_) => (None, None),
            }
        } else {
            (None, None)
        };
        let mut input = input;
        let mut out_open = true;
        let mut err_open = err.is_some();
        let (mut b1, mut b2, mut b3) =
            (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
        let mut peer_gone = false;
        while out_open || err_open {
            let in_open = input.is_some() && conn_rd.is_some();
            tokio::select! {
                n = out.read(&mut b1), if out_open => {
                    match n {
                        Ok(n) if n > 0 => {
                            let f = frame(STDOUT, &b1[..n], tty);
                            let ok = match conn_wr.as_mut() {
                                Some(w) => w.write_all(&f).await.is_ok(),
                                None => upgrade || body_tx.send(Bytes::from(f)).await.is_ok(),
                            };
                            peer_gone |= !ok;
                        }
                        _ => out_open = false,
                    }
                }
                n = async { match &err { Some(e) => e.read(&mut b2).await, None => Ok(0) } }, if err_open => {
                    match n {
                        Ok(n) if n > 0 => {
                            let f = frame(STDERR, &b2[..n], tty);
                            let ok = match conn_wr.as_mut() {
                                Some(w) => w.write_all(&f).await.is_ok(),
                                None => upgrade || body_tx.send(Bytes::from(f)).await.is_ok(),
                            };
                            peer_gone |= !ok;
                        }
                        _ => err_open = false,
                    }
                }
                n = async { match conn_rd.as_mut() { Some(r) => r.read(&mut b3).await, None => Ok(0) } }, if in_open => {
                    match n {
                        Ok(n) if n > 0 => {
                            if let Some(i) = &input && i.write_all(&b3[..n]).await.is_err() {
                                input = None;
                            }
                        }
                        // The client closed its side: the process sees end of input (pipes);
                        // a terminal stays open until the process ends.
                        _ => {
                            if !tty {
                                input = None;
                            } else {
                                conn_rd = None;
                            }
                        }
                    }
                }
            }
            if peer_gone {
                // Nobody reads any more: end the process rather than let it block on output.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                peer_gone = false;
            }
        }
        drop(input);
        let code = tokio::task::spawn_blocking(move || child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(-1);
        let _ = exec_lookup(&st, &exec_id, |e| {
            e.running = false;
            e.exit_code = Some(code);
            e.tty = None;
            e.ended = Some(std::time::Instant::now());
        });
        if let Some(mut w) = conn_wr {
            let _ = w.shutdown().await;
        }
        drop(body_tx);
        drop(guard);
    });
    if upgrade { Ok(stream::switching(tty)) } else { Ok(body_resp) }
}

fn exec_resize(st: &State, id: &str, q: &Query) -> R {
    let h = q.int("h")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let w = q.int("w")?.unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let tty = exec_lookup(st, id, |e| e.tty.clone())?;
    if let Some(m) = tty {
        berth_runtime::container::exec::resize_tty(m.fd(), h, w);
    }
    empty(StatusCode::OK)
}

fn exec_inspect(st: &State, id: &str) -> R {
    let v = exec_lookup(st, id, |e| {
        serde_json::json!({
            "ID": id, "ContainerID": e.container, "Running": e.running,
            "ExitCode": e.exit_code, "Pid": e.pid,
            "OpenStdin": e.cfg.interactive, "OpenStdout": true, "OpenStderr": true,
            "CanRemove": false, "DetachKeys": "",
            "ProcessConfig": {"tty": e.cfg.tty, "entrypoint": e.cfg.cmd.first(),
                "arguments": e.cfg.cmd.iter().skip(1).collect::<Vec<_>>(),
                "privileged": e.cfg.privileged, "user": e.cfg.user.clone().unwrap_or_default()},
        })
    })?;
    ok(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_berth_does_not_carry_out_are_named() {
        let v = serde_json::json!({"HostConfig": {"PidMode": "host"}});
        assert_eq!(unsupported(&v).as_deref(), Some("HostConfig.PidMode"));
        let v = serde_json::json!({"HostConfig": {"VolumesFrom": ["a"], "PidMode": ""}});
        assert_eq!(unsupported(&v).as_deref(), Some("HostConfig.VolumesFrom"));
        // What the docker CLI sends by default passes.
        let v = serde_json::json!({"HostConfig": {"PidMode": "", "IpcMode": "", "VolumesFrom": null,
            "OomKillDisable": false, "CgroupnsMode": "private", "Isolation": "", "DeviceRequests": null}});
        assert_eq!(unsupported(&v), None);
    }

    #[test]
    fn times_take_seconds_fractions_and_rfc3339() {
        assert_eq!(time_ns(Some("12.5")).ok(), Some(Some(12_500_000_000)));
        assert_eq!(time_ns(Some("0")).ok(), Some(None));
        assert_eq!(time_ns(Some("1970-01-01T00:00:01Z")).ok(), Some(Some(1_000_000_000)));
        assert!(time_ns(Some("soon")).is_err());
    }
}
