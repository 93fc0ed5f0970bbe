//! The build executor: stages as a DAG (only what the target needs, independent stages at the
//! same time), each instruction a step whose result is an image in the store (an intermediate
//! one, hidden from `image ls`), reused when its cache key matches: the parent image id (which
//! covers the config and every layer below), the expanded instruction, the build args in scope
//! and the content digest of what it copies.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_image::{ImageError, ImageState, ImageStore};
use berth_runtime::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::copy::Entry;
use crate::dockerfile::{self, CopyArgs, Dockerfile, Instruction, Kind};
use crate::error::BuildError;
use crate::ignore::{self, Ignore};
use crate::lex;
use crate::mounts::parse_mount;

mod copy_step;
mod run;
mod step;

/// The PATH BuildKit gives an image that has none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where a `#!` heredoc script of RUN is bound (on the container's /dev tmpfs, so nothing of it
/// reaches the layer).
const SCRIPT_PATH: &str = "/dev/.berth-heredoc";
/// Build args every Dockerfile may use without declaring them (proxies).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile (default `<context>/Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// Dockerfile text given inline (compose `dockerfile_inline`).
    pub dockerfile_inline: Option<String>,
    /// References to tag the result with.
    pub tags: Vec<String>,
    /// The stage to build (default: the last).
    pub target: Option<String>,
    /// `--build-arg KEY=VALUE` (None: the value of the environment variable KEY).
    pub build_args: Vec<(String, Option<String>)>,
    /// `--label KEY=VALUE` on the result.
    pub labels: Vec<(String, String)>,
    /// Run every step even when the cache has it.
    pub no_cache: bool,
    /// `--secret id=ID,src=PATH`.
    pub secrets: Vec<(String, PathBuf)>,
    /// Labels every RUN container with [`SESSION_LABEL`]`=session`, so a caller that stops the
    /// build midway (Ctrl-C) can remove them with [`remove_session`].
    pub session: Option<String>,
    /// The network of RUN steps without `--network`: `default` (berth's default bridge, made
    /// on first use), `host` or `none`.
    pub network: Option<String>,
    /// Extra `/etc/hosts` entries of RUN steps (`name:ip`).
    pub extra_hosts: Vec<String>,
    /// Size of RUN steps' /dev/shm in bytes (0: the runtime's default).
    pub shm_size: i64,
    /// Named contexts (`--build-context`, compose `additional_contexts`): FROM and `--from`
    /// naming one use it instead of a stage or image of that name.
    pub named_contexts: Vec<(String, NamedContext)>,
    /// `--pull`: ask the image source for FROM and `--from` images even when the store has them.
    pub pull: bool,
    /// `--ssh ID=SOCKET`: agent sockets for `RUN --mount=type=ssh`.
    pub ssh: Vec<(String, PathBuf)>,
}

/// What a named context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (COPY --from and RUN --mount from= read it; FROM can't use it).
    Dir(PathBuf),
    /// An image (`docker-image://REF`).
    Image(String),
}

impl NamedContext {
    /// Parses `docker-image://REF` or a directory path (relative to `base`).
    pub fn parse(value: &str, base: &Path) -> Result<NamedContext, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            return Ok(NamedContext::Image(r.to_string()));
        }
        if value.contains("://") || value.starts_with("service:") || value.starts_with("git@") {
            return Err(format!(
                "{value}: only directories and docker-image:// contexts are supported"
            ));
        }
        Ok(NamedContext::Dir(base.join(value)))
    }
}

/// The label naming the build a RUN container belongs to.
pub const SESSION_LABEL: &str = "berth.build.session";

/// Removes the RUN containers a build left behind when it was stopped midway.
pub async fn remove_session(engine: &Engine, session: &str) {
    let filters = berth_runtime::container::ListFilters {
        label: vec![format!("{SESSION_LABEL}={session}")],
        ..Default::default()
    };
    if let Ok(list) = engine.container_list(true, &filters).await {
        for c in list {
            let _ = engine.container_remove(&c.id, true, true).await;
        }
    }
}

/// What a build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// The image id.
    pub id: String,
    /// Steps carried out (not counting FROM).
    pub steps: usize,
    /// Steps taken from the cache.
    pub cached: usize,
}

/// Build progress, for the CLI to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step starts: its number, `stage i/n`, and the instruction.
    Step {
        /// Step number (from 1, across stages).
        n: usize,
        /// `[name i/n]`.
        stage: String,
        /// The instruction text.
        text: String,
    },
    /// The step came from the cache.
    Cached {
        /// Step number.
        n: usize,
    },
    /// A line of RUN output.
    Output {
        /// Step number.
        n: usize,
        /// The line.
        line: String,
    },
    /// The step finished.
    Done {
        /// Step number.
        n: usize,
        /// How long it took.
        millis: u128,
    },
    /// Something the user should know.
    Warning(String),
}

/// Receives build progress.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, e: Event);
}

/// A boxed future of [`ImageSource::fetch`].
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BuildError>> + Send + 'a>>;

/// Where FROM and `--from` images come from when they are not in the store (and, with
/// `--pull`, always): [`RegistrySource`] pulls them, [`StoreOnly`] says they must be pulled
/// first.
pub trait ImageSource: Send + Sync {
    /// Makes `reference` available in `engine`'s image store, or says why it can't.
    /// `present`: the store has it already (only asked with `--pull`).
    fn fetch<'a>(
        &'a self,
        engine: &'a Engine,
        reference: &'a str,
        present: bool,
    ) -> FetchFuture<'a>;
}

/// Uses only what is in the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOnly;

impl ImageSource for StoreOnly {
    fn fetch<'a>(
        &'a self,
        _engine: &'a Engine,
        reference: &'a str,
        present: bool,
    ) -> FetchFuture<'a> {
        Box::pin(async move {
            if present { Ok(()) } else { Err(BuildError::NotInStore(reference.to_string())) }
        })
    }
}

/// FROM and `--from` images from registries (berth-image's pull, its `image pull` event
/// journaled), as `docker build` pulls them: a missing image, or every one with `--pull`.
#[derive(Debug, Clone, Default)]
pub struct RegistrySource {
    /// Credentials by registry domain (a build's `X-Registry-Config` through the API); a
    /// registry without an entry gets the docker config's, as `berth image pull` does.
    pub credentials: std::collections::HashMap<String, berth_image::registry::Credentials>,
}

impl ImageSource for RegistrySource {
    fn fetch<'a>(
        &'a self,
        engine: &'a Engine,
        reference: &'a str,
        _present: bool,
    ) -> FetchFuture<'a> {
        Box::pin(async move {
            let store = engine.images()?;
            let credentials = berth_image::Reference::parse(reference)
                .ok()
                .and_then(|r| self.credentials.get(&r.domain).cloned());
            let opts = berth_image::registry::PullOptions { credentials, ..Default::default() };
            berth_image::registry::pull(&store, reference, &opts)
                .await
                .map_err(|e| BuildError::Invalid(format!("cannot pull {reference}: {e}")))?;
            berth_runtime::events::image_pulled(engine.root().path(), reference);
            Ok(())
        })
    }
}

/// GOARCH of this machine.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The predefined platform args (BuildKit's `TARGETPLATFORM`, `BUILDPLATFORM`, ...).
fn platform_args() -> Vec<(String, String)> {
    let arch = host_arch();
    let mut v = Vec::new();
    for p in ["TARGET", "BUILD"] {
        v.push((format!("{p}PLATFORM"), format!("linux/{arch}")));
        v.push((format!("{p}OS"), "linux".into()));
        v.push((format!("{p}ARCH"), arch.into()));
        v.push((format!("{p}VARIANT"), String::new()));
    }
    v
}

struct Ctx {
    engine: Engine,
    store: ImageStore,
    df: Dockerfile,
    file: String,
    context: PathBuf,
    ignore: Ignore,
    build_args: BTreeMap<String, String>,
    used_args: Mutex<BTreeSet<String>>,
    global: Vec<(String, String)>,
    no_cache: bool,
    secrets: BTreeMap<String, PathBuf>,
    progress: Arc<dyn Progress>,
    source: Arc<dyn ImageSource>,
    cells: Vec<OnceCell<Option<String>>>,
    session: Option<String>,
    network: Option<String>,
    extra_hosts: Vec<String>,
    shm_size: i64,
    named: BTreeMap<String, NamedContext>,
    pull: bool,
    ssh: BTreeMap<String, PathBuf>,
    errors: Mutex<BTreeMap<usize, BuildError>>,
    step: AtomicUsize,
    steps: AtomicUsize,
    cached: AtomicUsize,
    dir: PathBuf,
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Ctx {
    fn stage_index(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) =
            self.df.stages[..before].iter().position(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// An image by reference: from the store, else (or with `--pull`, also) from the source.
    async fn image(&self, reference: &str) -> Result<ImageState, BuildError> {
        let store = self.store.clone();
        let r = reference.to_string();
        let found = tokio::task::spawn_blocking(move || store.image_state(&r))
            .await
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        match found {
            Ok(s) if !self.pull => Ok(s),
            Ok(_) => {
                self.source.fetch(&self.engine, reference, true).await?;
                Ok(self.store.image_state(reference)?)
            }
            Err(ImageError::NoSuchImage(_)) => {
                self.source.fetch(&self.engine, reference, false).await?;
                Ok(self.store.image_state(reference)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        if self.no_cache {
            return None;
        }
        let id = std::fs::read_to_string(self.dir.join("cache").join(key)).ok()?;
        let id = id.trim().to_string();
        self.store.has_image(&id).then_some(id)
    }

    fn cache_put(&self, key: &str, id: &str) {
        let p = self.dir.join("cache").join(key);
        if let Err(e) = berth_store::write_atomic(&p, id.as_bytes()) {
            tracing::warn!("cannot write build cache record {}: {e}", p.display());
        }
    }

    fn tmp(&self, what: &str) -> Result<tempfile::TempDir, BuildError> {
        let base = self.dir.join("tmp");
        std::fs::create_dir_all(&base)
            .map_err(|e| BuildError::Read { path: base.clone(), source: e })?;
        tempfile::Builder::new()
            .prefix(&format!("{what}-{}-", std::process::id()))
            .tempdir_in(&base)
            .map_err(|e| BuildError::Read { path: base, source: e })
    }
}

type StageFuture = Pin<Box<dyn Future<Output = Result<String, BuildError>> + Send>>;

/// The image id of stage `j`, building it once however many stages ask.
fn stage_result(ctx: Arc<Ctx>, j: usize) -> StageFuture {
    Box::pin(async move {
        let c2 = ctx.clone();
        let got = ctx.cells[j]
            .get_or_init(|| async move {
                match run_stage(c2.clone(), j).await {
                    Ok(id) => Some(id),
                    Err(e) => {
                        if let Ok(mut m) = c2.errors.lock() {
                            m.insert(j, e);
                        }
                        None
                    }
                }
            })
            .await;
        got.clone().ok_or_else(|| BuildError::Invalid(format!("stage {j} failed")))
    })
}

/// Stage names and indexes `j` refers to (FROM, COPY --from, RUN --mount from=), as far as
/// global args expand them.
fn deps(ctx: &Ctx, j: usize) -> Vec<usize> {
    let st = &ctx.df.stages[j];
    let esc = ctx.df.escape;
    let exp = |s: &str| lex::expand_word(s, esc, &ctx.global).unwrap_or_else(|_| s.to_string());
    let mut refs = vec![exp(&st.base)];
    for ins in &st.instructions {
        match &ins.kind {
            Kind::Copy(CopyArgs { from: Some(f), .. }) => refs.push(exp(f)),
            Kind::Run { mounts, .. } => {
                for m in mounts {
                    if let Ok(m) = parse_mount(&exp(m))
                        && let Some(f) = m.from
                    {
                        refs.push(f);
                    }
                }
            }
            _ => {}
        }
    }
    refs.iter().filter_map(|r| ctx.stage_index(r, j)).collect()
}

/// Builds an image from a Dockerfile on `engine`.
pub async fn build(
    engine: &Engine,
    opts: BuildOptions,
    progress: Arc<dyn Progress>,
    source: Arc<dyn ImageSource>,
) -> Result<BuildResult, BuildError> {
    let context = std::fs::canonicalize(&opts.context)
        .map_err(|e| BuildError::Read { path: opts.context.clone(), source: e })?;
    if !context.is_dir() {
        return Err(BuildError::Invalid(format!(
            "the build context {} is not a directory",
            opts.context.display()
        )));
    }
    let df_path = opts.dockerfile.clone().unwrap_or_else(|| context.join("Dockerfile"));
    let text = match &opts.dockerfile_inline {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(&df_path)
            .map_err(|e| BuildError::Read { path: df_path.clone(), source: e })?,
    };
    let shown = if opts.dockerfile_inline.is_some() {
        PathBuf::from("Dockerfile (inline)")
    } else {
        df_path.clone()
    };
    let df = dockerfile::parse(&shown, &text)?;
    if let Some(s) = &df.syntax {
        tracing::info!("ignoring the syntax directive {s}: berth builds with its own frontend");
    }
    let ignore = match ignore::ignore_file(&context, &df_path) {
        Some(p) => {
            let t = std::fs::read_to_string(&p)
                .map_err(|e| BuildError::Read { path: p.clone(), source: e })?;
            Ignore::parse(&p.display().to_string(), &t)?
        }
        None => Ignore::default(),
    };
    for t in &opts.tags {
        berth_image::Reference::parse(t)?;
    }
    let mut build_args = BTreeMap::new();
    for (k, v) in &opts.build_args {
        match v {
            Some(v) => {
                build_args.insert(k.clone(), v.clone());
            }
            None => {
                if let Ok(v) = std::env::var(k) {
                    build_args.insert(k.clone(), v);
                }
            }
        }
    }
    // Global scope: the platform args, then the ARGs before the first FROM.
    let mut global = platform_args();
    let mut used = BTreeSet::new();
    for ins in &df.meta_args {
        if let Kind::Arg(pairs) = &ins.kind {
            for (name, default) in pairs {
                let v = match (build_args.get(name), default) {
                    (Some(v), _) => {
                        used.insert(name.clone());
                        Some(v.clone())
                    }
                    (None, Some(d)) => {
                        Some(lex::expand_word(d, df.escape, &global).map_err(|e| {
                            BuildError::Step {
                                file: shown.display().to_string(),
                                line: ins.line,
                                instruction: ins.text.clone(),
                                message: e.to_string(),
                            }
                        })?)
                    }
                    (None, None) => None,
                };
                if let Some(v) = v {
                    global.push((name.clone(), v));
                }
            }
        }
    }
    let target = match &opts.target {
        None => df.stages.len() - 1,
        Some(t) => df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
            .ok_or_else(|| BuildError::NoTarget(t.clone()))?,
    };
    let store = engine.images()?;
    let dir = engine.root().path().join("builder");
    for sub in ["cache", "tmp", "cache-mounts"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| BuildError::Read { path: p, source: e })?;
    }
    sweep_tmp(&dir.join("tmp"));
    let n = df.stages.len();
    let ctx = Arc::new(Ctx {
        engine: engine.clone(),
        store,
        file: shown.display().to_string(),
        df,
        context,
        ignore,
        build_args,
        used_args: Mutex::new(used),
        global,
        no_cache: opts.no_cache,
        secrets: opts.secrets.iter().cloned().collect(),
        progress,
        source,
        cells: (0..n).map(|_| OnceCell::new()).collect(),
        session: opts.session.clone(),
        network: opts.network.clone(),
        extra_hosts: opts.extra_hosts.clone(),
        shm_size: opts.shm_size,
        named: opts.named_contexts.iter().cloned().collect(),
        pull: opts.pull,
        ssh: opts.ssh.iter().cloned().collect(),
        errors: Mutex::new(BTreeMap::new()),
        step: AtomicUsize::new(0),
        steps: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
        dir,
    });
    // Every stage the target needs, each started now so independent ones run side by side.
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(j) = todo.pop() {
        if needed.insert(j) {
            todo.extend(deps(&ctx, j));
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for j in needed.iter().copied().filter(|j| *j != target) {
        set.spawn(stage_result(ctx.clone(), j));
    }
    let result = stage_result(ctx.clone(), target).await;
    while set.join_next().await.is_some() {}
    let id = match result {
        Ok(id) => id,
        Err(e) => {
            // The first stage that failed on its own says why; the others only waited on it.
            let mut errs = ctx
                .errors
                .lock()
                .map_err(|_| BuildError::Invalid("build state poisoned".into()))?;
            let first = errs.keys().next().copied();
            return Err(first.and_then(|k| errs.remove(&k)).unwrap_or(e));
        }
    };
    let mut state = ctx.store.image_state(&id)?;
    if !opts.labels.is_empty() {
        let labels = config_obj(&mut state.config)?.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Some(m) = labels.as_object_mut() {
            for (k, v) in &opts.labels {
                m.insert(k.clone(), json!(v));
            }
        }
    }
    let bytes = serde_json::to_vec(&state.config)
        .map_err(|e| BuildError::Invalid(format!("cannot encode the image config: {e}")))?;
    let id = ctx.store.add_image(&bytes, &opts.tags, false)?;
    let used = ctx.used_args.lock().map(|u| u.clone()).unwrap_or_default();
    let unused: Vec<&String> = ctx
        .build_args
        .keys()
        .filter(|k| !used.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        ctx.progress.event(Event::Warning(format!(
            "[Warning] One or more build-args [{}] were not consumed",
            names.join(" ")
        )));
    }
    Ok(BuildResult {
        id,
        steps: ctx.steps.load(Ordering::Relaxed),
        cached: ctx.cached.load(Ordering::Relaxed),
    })
}

/// Removes what builds that died (a `kill -9`) left in `builder/tmp`: every entry is named
/// `<what>-<pid>-<random>`, and one whose process is gone is debris.
pub fn sweep_tmp(tmp: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The `config` object of an image config, made when missing.
fn config_obj(cfg: &mut Value) -> Result<&mut serde_json::Map<String, Value>, BuildError> {
    let bad = || BuildError::Invalid("the image configuration is not a JSON object".into());
    let top = cfg.as_object_mut().ok_or_else(bad)?;
    let c = top.entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut().ok_or_else(bad)
}

fn env_of(cfg: &Value) -> Vec<(String, String)> {
    cfg.pointer("/config/Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_of(cfg: &Value, key: &str) -> String {
    cfg.pointer(&format!("/config/{key}")).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// One stage being built.
struct StageRun {
    ctx: Arc<Ctx>,
    j: usize,
    label: String,
    state: ImageState,
    args: Vec<(String, String)>,
    cmd_set: bool,
}

/// What a step does to the state.
enum Action {
    /// Only the config changes.
    Meta(Value),
    /// A layer from these entries, then the config.
    /// (The directory holds materialised `--from` files the entries read: kept until written.)
    Copy(Vec<Entry>, Value, Option<tempfile::TempDir>),
    /// Run a command.
    Run(RunSpec),
}

struct RunSpec {
    argv: Vec<String>,
    /// A heredoc script run by its `#!` interpreter (bound at [`SCRIPT_PATH`]).
    script: Option<String>,
    env: Vec<String>,
    network: String,
    mounts: Vec<crate::mounts::RunMount>,
}

fn run_stage(ctx: Arc<Ctx>, j: usize) -> StageFuture {
    Box::pin(async move {
        let st = &ctx.df.stages[j];
        let label = st.name.clone().unwrap_or_else(|| format!("stage-{j}"));
        let total = st.instructions.len() + 1;
        let n = ctx.step.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.progress.event(Event::Step {
            n,
            stage: format!("[{label} 1/{total}]"),
            text: st.text.clone(),
        });
        let t0 = Instant::now();
        let step_err = |message: String| BuildError::Step {
            file: ctx.file.clone(),
            line: st.line,
            instruction: st.text.clone(),
            message,
        };
        let base = lex::expand_word(&st.base, ctx.df.escape, &ctx.global)
            .map_err(|e| step_err(e.to_string()))?;
        let mut state = if base.eq_ignore_ascii_case("scratch") {
            let cfg = json!({
                "architecture": host_arch(),
                "os": "linux",
                "config": {"Env": [DEFAULT_PATH]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            });
            let bytes = serde_json::to_vec(&cfg).map_err(|e| step_err(e.to_string()))?;
            let id = ctx.store.add_image(&bytes, &[], true)?;
            ctx.store.image_state(&id)?
        } else if let Some(named) = ctx.named.get(&base) {
            match named {
                NamedContext::Image(r) => {
                    ctx.image(r).await.map_err(|e| step_err(e.to_string()))?
                }
                NamedContext::Dir(d) => {
                    return Err(step_err(format!(
                        "the named context {base} is a directory ({}): FROM needs an image",
                        d.display()
                    )));
                }
            }
        } else if let Some(k) = ctx.stage_index(&base, j) {
            let id = stage_result(ctx.clone(), k).await?;
            ctx.store.image_state(&id)?
        } else {
            ctx.image(&base).await.map_err(|e| step_err(e.to_string()))?
        };
        if let Some(p) = &st.platform {
            let p = lex::expand_word(p, ctx.df.escape, &ctx.global).unwrap_or_default();
            if !p.is_empty() && p != format!("linux/{}", host_arch()) {
                ctx.progress.event(Event::Warning(format!(
                    "{}:{}: FROM --platform={p}: berth builds for linux/{} only",
                    ctx.file,
                    st.line,
                    host_arch()
                )));
            }
        }
        // ONBUILD triggers of the base run first, and the result does not inherit them.
        let mut instructions: Vec<Instruction> = Vec::new();
        let triggers: Vec<String> = state
            .config
            .pointer("/config/OnBuild")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if !triggers.is_empty() {
            for t in &triggers {
                let mut ins = dockerfile::parse_trigger(Path::new(&ctx.file), t, ctx.df.escape)?;
                ins.line = st.line;
                instructions.push(ins);
            }
            config_obj(&mut state.config)?.remove("OnBuild");
        }
        instructions.extend(st.instructions.iter().cloned());
        ctx.progress.event(Event::Done { n, millis: t0.elapsed().as_millis() });
        let mut run =
            StageRun { ctx: ctx.clone(), j, label, state, args: Vec::new(), cmd_set: false };
        let total = instructions.len() + 1;
        for (i, ins) in instructions.iter().enumerate() {
            run.step(ins, i + 2, total).await?;
        }
        Ok(run.state.id)
    })
}

/// The history line of a step (docker's `created_by`).
fn history_text(ins: &Instruction, desc: &str) -> String {
    match &ins.kind {
        Kind::Run { .. } => {
            let argv =
                desc.strip_prefix("RUN ").and_then(|d| d.split(" env=").next()).unwrap_or_default();
            let v: Vec<String> = serde_json::from_str(argv).unwrap_or_default();
            format!("RUN {} # buildkit", v.join(" "))
        }
        Kind::Copy(_) | Kind::Add(_) => format!("{} # buildkit", ins.text),
        _ => desc.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_dead_builds_debris() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join("layer-999999999-abc");
        let mine = d.path().join(format!("layer-{}-abc", std::process::id()));
        let other = d.path().join("unrelated");
        for p in [&dead, &mine, &other] {
            std::fs::create_dir(p).unwrap();
        }
        sweep_tmp(d.path());
        assert!(!dead.exists() && mine.exists() && other.exists());
    }

    #[test]
    fn named_contexts_parse() {
        let base = Path::new("/ctx");
        assert_eq!(
            NamedContext::parse("docker-image://bb:1", base),
            Ok(NamedContext::Image("bb:1".into()))
        );
        assert_eq!(NamedContext::parse("../x", base), Ok(NamedContext::Dir("/ctx/../x".into())));
        assert!(NamedContext::parse("https://e/x.git", base).is_err());
    }
}
