//! `POST /build`: docker's classic-builder endpoint on berth's builder (berth-builder). The
//! body is the context tar (plain or compressed); it is streamed into the image crate's safe
//! unpacker under the state root's `builder/tmp` (never held in memory, bounded like a layer)
//! and removed when the build ends, failed or not. The answer is the classic builder's stream:
//! `Step i/N : …`, the RUN output, `{"aux": {"ID": …}}`, `Successfully built …`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_builder::{BuildError, BuildOptions, Event, Progress};
use berth_image::Reference;
use berth_image::registry::Platform;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use serde_json::json;

use crate::distribution::registry_config;
use crate::http::{ApiError, Query, R};
use crate::jsonstream::{self, Failure, Lines};
use crate::state::State;

/// Output kept back for `q=1`, sent only if the build fails (as dockerd does).
const QUIET_KEEP: usize = 1 << 20;

/// How often a newline goes out while a build runs, so that a client that left is noticed
/// (hyper learns it only from a failed write) and its build stopped.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// The query of a build, checked before the body is read.
struct Params {
    tags: Vec<String>,
    dockerfile: PathBuf,
    build_args: Vec<(String, Option<String>)>,
    labels: Vec<(String, String)>,
    target: Option<String>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    network: Option<String>,
    extra_hosts: Vec<String>,
    shm_size: i64,
}

fn json_param<T: serde::de::DeserializeOwned + Default>(q: &Query, k: &str) -> Result<T, ApiError> {
    match q.get(k).map(str::trim) {
        None | Some("") | Some("null") => Ok(T::default()),
        Some(v) => serde_json::from_str(v).map_err(|e| ApiError::bad(format!("invalid {k}: {e}"))),
    }
}

/// docker's zero values of the options berth does not carry out (the docker CLI sends them
/// all); anything else is refused naming the option.
fn refuse_unsupported(q: &Query) -> Result<(), ApiError> {
    let unsupported =
        |k: &str, why: &str| Err(ApiError::bad(format!("{k} is not supported: {why}")));
    if q.get("version").is_some_and(|v| v == "2") {
        return unsupported(
            "version=2 (BuildKit)",
            "berth's API serves the classic builder protocol; run `DOCKER_BUILDKIT=0 docker build`, or `berth build`",
        );
    }
    if q.get("remote").is_some_and(|v| !v.is_empty()) {
        return unsupported("remote", "send the context as the request body");
    }
    for k in ["cpushares", "cpuquota", "cpuperiod", "memory"] {
        if q.int(k)?.is_some_and(|v| v != 0) {
            return unsupported(k, "berth's build steps take no resource limits");
        }
    }
    if q.int("memswap")?.is_some_and(|v| v != 0 && v != -1) {
        return unsupported("memswap", "berth's build steps take no resource limits");
    }
    for k in ["cpusetcpus", "cpusetmems", "cgroupparent"] {
        if q.get(k).is_some_and(|v| !v.is_empty()) {
            return unsupported(k, "berth's build steps take no cgroup settings");
        }
    }
    if q.all("securityopt").iter().any(|v| !v.is_empty()) {
        return unsupported("securityopt", "build steps run with berth's default profile");
    }
    if q.flag("squash") {
        return unsupported("squash", "each step is its own layer");
    }
    if q.get("isolation").is_some_and(|v| !matches!(v, "" | "default")) {
        return unsupported("isolation", "Linux containers have only the default");
    }
    let ulimits: Vec<serde_json::Value> = json_param(q, "ulimits")?;
    if !ulimits.is_empty() {
        return unsupported("ulimits", "build steps run with berth's default limits");
    }
    if q.get("outputs").is_some_and(|v| !matches!(v.trim(), "" | "null" | "[]")) {
        return unsupported("outputs", "the result is an image in the store");
    }
    Ok(())
}

fn params(q: &Query) -> Result<Params, ApiError> {
    refuse_unsupported(q)?;
    let tags: Vec<String> = q.all("t").into_iter().filter(|t| !t.is_empty()).collect();
    for t in &tags {
        Reference::parse_tag(t).map_err(|e| ApiError::bad(e.to_string()))?;
    }
    let dockerfile = q.get("dockerfile").filter(|d| !d.is_empty()).unwrap_or("Dockerfile");
    let mut rel = PathBuf::new();
    for c in Path::new(dockerfile).components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(ApiError::bad(format!(
                    "the Dockerfile (dockerfile) must be within the build context: {dockerfile}"
                )));
            }
        }
    }
    let args: BTreeMap<String, Option<String>> = json_param(q, "buildargs")?;
    // A null value is an arg named without a value: dockerd leaves it to the ARG's default.
    let build_args = args.into_iter().filter(|(_, v)| v.is_some()).collect();
    let labels: BTreeMap<String, String> = json_param(q, "labels")?;
    let network = match q.get("networkmode").unwrap_or_default() {
        // docker's default for builds is its default bridge, as berth's is.
        "" | "default" | "bridge" => None,
        n @ ("host" | "none") => Some(n.to_string()),
        n => {
            return Err(ApiError::bad(format!(
                "networkmode {n:?} is not supported: berth's build steps use default (bridge), host or none"
            )));
        }
    };
    if let Some(p) = q.get("platform").map(str::trim).filter(|p| !p.is_empty()) {
        let want = Platform::parse(p).map_err(|e| ApiError::bad(e.to_string()))?;
        let host = Platform::host();
        if want.os != host.os || want.architecture != host.architecture {
            return Err(ApiError::bad(format!(
                "platform {p} is not supported: berth builds for {host} only"
            )));
        }
    }
    let mut extra_hosts = Vec::new();
    for h in q.all("extrahosts") {
        extra_hosts.extend(h.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    }
    let shm_size = q.int("shmsize")?.unwrap_or(0);
    if shm_size < 0 {
        return Err(ApiError::bad(format!("invalid value for shmsize: {shm_size}")));
    }
    let _ = (q.flag("rm"), q.flag("forcerm"), q.get("cachefrom"));
    Ok(Params {
        tags,
        dockerfile: rel,
        build_args,
        labels: labels.into_iter().collect(),
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        no_cache: q.flag("nocache"),
        pull: q.flag("pull"),
        quiet: q.flag("q"),
        network,
        extra_hosts,
        shm_size,
    })
}

/// A blocking reader over the request body's chunks.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Streams the body into the safe unpacker in `dest`.
async fn unpack_body(body: Incoming, dest: PathBuf) -> Result<(), ApiError> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let limit = berth_image::max_layer_size().map_err(|e| ApiError::internal(e.to_string()))?;
    let unpacking = tokio::task::spawn_blocking(move || {
        let mut reader = BodyReader { rx, cur: Bytes::new() };
        let r = berth_image::unpack_context(&mut reader, &dest, limit);
        // Read what the tar's end leaves (padding), so the client is not cut off mid-send.
        let _ = io::copy(&mut reader, &mut io::sink());
        r
    });
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let item = frame
            .map_err(|e| io::Error::other(format!("reading the request body: {e}")))
            .map(|f| f.into_data().unwrap_or_default());
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let r = unpacking.await.map_err(|e| ApiError::internal(e.to_string()))?;
    r.map(|_| ()).map_err(|e| match e {
        berth_image::ImageError::LayerTooLarge { limit } => ApiError::new(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the build context unpacks to more than {limit} bytes (the layer limit, {})",
                berth_image::MAX_LAYER_SIZE_ENV
            ),
        ),
        e => ApiError::bad(format!("cannot unpack the build context: {e}")),
    })
}

/// The classic builder's stream from the builder's events.
struct ClassicProgress {
    lines: Arc<Lines>,
    total: usize,
    /// Steps shown so far: numbered in the order they start (independent stages build side by
    /// side, so the builder's own numbers may come out of order).
    shown: std::sync::atomic::AtomicUsize,
    /// `q=1`: output is kept (up to [`QUIET_KEEP`]) and sent only when the build fails.
    quiet: Option<Mutex<(Vec<String>, usize)>>,
}

impl ClassicProgress {
    fn out(&self, text: String, droppable: bool) {
        if let Some(q) = &self.quiet {
            if let Ok(mut k) = q.lock()
                && k.1 + text.len() <= QUIET_KEEP
            {
                k.1 += text.len();
                k.0.push(text);
            }
            return;
        }
        let v = json!({ "stream": text });
        if droppable {
            self.lines.send_droppable(&v);
        } else {
            self.lines.send(&v);
        }
    }

    /// The output `q=1` kept back, sent before an error.
    fn flush_quiet(&self) {
        if let Some(q) = &self.quiet
            && let Ok(mut k) = q.lock()
        {
            for t in k.0.drain(..) {
                self.lines.stream(&t);
            }
        }
    }
}

impl Progress for ClassicProgress {
    fn event(&self, e: Event) {
        match e {
            Event::Step { text, .. } => {
                let k = self.shown.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                self.out(format!("Step {k}/{} : {text}\n", self.total.max(k)), false)
            }
            Event::Cached { .. } => self.out(" ---> Using cache\n".into(), false),
            Event::Output { line, .. } => self.out(format!("{line}\n"), true),
            Event::Done { .. } => {}
            Event::Warning(w) => self.out(format!("{w}\n"), false),
        }
    }
}

/// Removes the RUN containers of a stopped build. A container caught while it is being
/// started is not listed until its state settles, so this goes on looking until none has
/// been seen for 5 s (or gives up after 30 s, saying so in the log).
async fn remove_build_containers(engine: &berth_runtime::Engine, session: &str) {
    use std::time::{Duration, Instant};
    let filters = berth_runtime::container::ListFilters {
        label: vec![format!("{}={session}", berth_builder::SESSION_LABEL)],
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut clear_since: Option<Instant> = None;
    loop {
        berth_builder::remove_session(engine, session).await;
        let left = engine.container_list(true, &filters).await.map(|l| l.len()).unwrap_or(0);
        let now = Instant::now();
        if left > 0 {
            clear_since = None;
        } else if clear_since.is_some_and(|t| now.duration_since(t) >= Duration::from_secs(5)) {
            return;
        } else if clear_since.is_none() {
            clear_since = Some(now);
        }
        if now > deadline {
            tracing::warn!(session, left, "containers of a stopped build may remain");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// docker's wording of a build failure, paths shown relative to the context.
fn failure(e: BuildError, context: &Path) -> Failure {
    let strip = |s: String| s.replace(&format!("{}/", context.display()), "");
    match e {
        BuildError::RunFailed { command, code, .. } => Failure {
            error: ApiError::internal(format!(
                "The command '{}' returned a non-zero code: {code}",
                command.join(" ")
            )),
            code: Some(code),
        },
        other => ApiError::internal(strip(other.to_string())).into(),
    }
}

/// `POST /build`.
pub async fn build(st: Arc<State>, req: Request<Incoming>, q: Query) -> R {
    let p = params(&q)?;
    let creds = registry_config(req.headers())?;
    let base = st.engine.root().path().join("builder").join("tmp");
    std::fs::create_dir_all(&base)
        .map_err(|e| ApiError::internal(format!("cannot create {}: {e}", base.display())))?;
    // Named `<what>-<pid>-<random>` like the builder's own temporary files: what a killed
    // service leaves is swept by the next build.
    let dir = tempfile::Builder::new()
        .prefix(&format!("context-{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| {
            ApiError::internal(format!("cannot create a directory in {}: {e}", base.display()))
        })?;
    let context = std::fs::canonicalize(dir.path())
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.path().display())))?;
    unpack_body(req.into_body(), context.clone()).await?;
    let df_path = context.join(&p.dockerfile);
    let shown = p.dockerfile.display().to_string();
    let located =
        std::fs::canonicalize(&df_path).ok().filter(|c| c.starts_with(&context) && c.is_file());
    let Some(df_real) = located else {
        return Err(ApiError::bad(format!("Cannot locate specified Dockerfile: {shown}")));
    };
    let text = std::fs::read_to_string(&df_real)
        .map_err(|e| ApiError::bad(format!("cannot read the Dockerfile {shown}: {e}")))?;
    let parsed = berth_builder::dockerfile::parse(&df_path, &text).map_err(|e| {
        ApiError::bad(e.to_string().replace(&format!("{}/", context.display()), ""))
    })?;
    // The classic builder's N: every instruction of the stages up to the target.
    let last = match &p.target {
        None => parsed.stages.len().saturating_sub(1),
        Some(t) => parsed
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
            .ok_or_else(|| ApiError::bad(format!("target stage \"{t}\" could not be found")))?,
    };
    let total: usize = parsed.stages.iter().take(last + 1).map(|s| s.instructions.len() + 1).sum();
    let session = format!(
        "api-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let opts = BuildOptions {
        context: context.clone(),
        dockerfile: Some(df_path),
        tags: p.tags.clone(),
        target: p.target.clone(),
        build_args: p.build_args,
        labels: p.labels,
        no_cache: p.no_cache,
        session: Some(session.clone()),
        network: p.network,
        extra_hosts: p.extra_hosts,
        shm_size: p.shm_size,
        pull: p.pull,
        ..Default::default()
    };
    let engine = st.engine.clone();
    let (tags, quiet) = (p.tags, p.quiet);
    jsonstream::respond(move |lines| async move {
        // Owned here: the context is removed when the build ends, however it ends.
        let _dir = dir;
        let progress = Arc::new(ClassicProgress {
            lines: lines.clone(),
            total,
            shown: Default::default(),
            quiet: quiet.then(|| Mutex::new((Vec::new(), 0))),
        });
        let source = Arc::new(berth_builder::RegistrySource { credentials: creds });
        let mut run = Box::pin(berth_builder::build(&engine, opts, progress.clone(), source));
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut run => break Some(r),
                _ = lines.closed() => break None,
                _ = tick.tick() => {
                    lines.keepalive();
                }
            }
        };
        let Some(result) = result else {
            // The client left (docker's Ctrl-C): stop, as dockerd cancels the build.
            tracing::info!(session, "the client left: stopping its build");
            drop(run);
            remove_build_containers(&engine, &session).await;
            return Ok(());
        };
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                progress.flush_quiet();
                return Err(failure(e, &context));
            }
        };
        lines.send(&json!({"aux": {"ID": r.id}}));
        if quiet {
            lines.stream(&format!("{}\n", r.id));
        } else {
            lines.stream(&format!("Successfully built {}\n", berth_image::short_id(&r.id)));
            for t in &tags {
                if let Ok(r) = Reference::parse(t) {
                    lines.stream(&format!("Successfully tagged {r}\n"));
                }
            }
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn what_the_docker_cli_sends_is_accepted() {
        // docker 28's legacy build query, zero values included.
        let p = params(&q(
            "buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=sub%2FDf&labels=%7B%22l%22%3A%22v%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=x%3A1&t=y&target=&ulimits=null&version=1&extrahosts=a%3A127.0.0.1",
        ))
        .expect("accepted");
        assert_eq!(p.tags, vec!["x:1".to_string(), "y".to_string()]);
        assert_eq!(p.dockerfile, PathBuf::from("sub/Df"));
        assert_eq!(p.build_args, vec![("A".to_string(), Some("1".to_string()))]);
        assert_eq!(p.labels, vec![("l".to_string(), "v".to_string())]);
        assert_eq!(p.extra_hosts, vec!["a:127.0.0.1".to_string()]);
        assert!(p.network.is_none() && p.target.is_none() && !p.quiet);
    }

    #[test]
    fn what_berth_does_not_do_is_refused_by_name() {
        for (query, word) in [
            ("version=2", "BuildKit"),
            ("memory=1000000", "memory"),
            ("cpusetcpus=0", "cpusetcpus"),
            ("squash=1", "squash"),
            ("networkmode=mynet", "networkmode"),
            ("dockerfile=..%2Fx", "within the build context"),
            ("t=Bad%3ATag%3Ax", "invalid reference"),
            ("remote=https%3A%2F%2Fexample.com%2Fx.tar", "remote"),
            ("platform=linux%2Fs390x", "platform"),
            ("buildargs=%5B1", "buildargs"),
        ] {
            let e = params(&q(query)).err().unwrap_or_else(|| panic!("{query} accepted"));
            assert_eq!(e.status, 400, "{query}");
            assert!(e.message.contains(word), "{query}: {}", e.message);
        }
    }

    #[test]
    fn a_failing_run_reads_as_dockers() {
        let f = failure(
            BuildError::RunFailed {
                file: "/x/Dockerfile".into(),
                line: 2,
                instruction: "RUN exit 3".into(),
                code: 3,
                command: vec!["/bin/sh".into(), "-c".into(), "exit 3".into()],
                output: vec![],
            },
            Path::new("/x"),
        );
        assert_eq!(f.error.message, "The command '/bin/sh -c exit 3' returned a non-zero code: 3");
        assert_eq!(f.code, Some(3));
        let f = failure(BuildError::Invalid("/x/Dockerfile: bad".into()), Path::new("/x"));
        assert_eq!(f.error.message, "Dockerfile: bad");
    }
}
