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
use berth_runtime::container::{ContainerCreateConfig, HealthConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::copy::{self, CopyError, Entry, Overrides, SourceRoot, Src};
use crate::dockerfile::{self, Command, CopyArgs, Dockerfile, Instruction, Kind};
use crate::error::BuildError;
use crate::fsview::{LayerView, components};
use crate::ignore::{self, Ignore};
use crate::lex;
use crate::mounts::{MountType, parse_mount};

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
    /// The network of RUN steps without `--network`: `default` (the host's), `host` or `none`.
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
/// `--pull`, always). The registry work fills this in (an `image pull` on `engine`); until
/// then [`StoreOnly`] says the image must be pulled first.
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
            .prefix(&format!("{what}-"))
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
    Copy(Vec<Entry>, Value),
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

impl StageRun {
    fn err(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.ctx.file.clone(),
            line: ins.line,
            instruction: ins.text.clone(),
            message: message.into(),
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        v.extend(env_of(&self.state.config));
        v
    }

    fn word(&self, ins: &Instruction, raw: &str) -> Result<String, BuildError> {
        lex::expand_word(raw, self.ctx.df.escape, &self.vars())
            .map_err(|e| self.err(ins, e.to_string()))
    }

    fn words(&self, ins: &Instruction, raw: &str) -> Result<Vec<String>, BuildError> {
        lex::expand_words(raw, self.ctx.df.escape, &self.vars())
            .map_err(|e| self.err(ins, e.to_string()))
    }

    fn view(&self) -> Result<LayerView, BuildError> {
        Ok(LayerView::new(self.ctx.store.layer_dirs(&self.state.chains)?))
    }

    fn shell(&self) -> Vec<String> {
        self.state
            .config
            .pointer("/config/Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn command(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    fn declare_arg(
        &mut self,
        ins: &Instruction,
        name: &str,
        default: Option<&str>,
    ) -> Result<(), BuildError> {
        let ctx = self.ctx.clone();
        let v = if let Some(v) = ctx.build_args.get(name) {
            if let Ok(mut u) = ctx.used_args.lock() {
                u.insert(name.to_string());
            }
            Some(v.clone())
        } else if let Some(d) = default {
            Some(self.word(ins, d)?)
        } else {
            lex::Vars::get(ctx.global.as_slice(), name).map(str::to_string)
        };
        self.args.retain(|(k, _)| k != name);
        if let Some(v) = v {
            self.args.push((name.to_string(), v));
        }
        Ok(())
    }

    async fn step(&mut self, ins: &Instruction, i: usize, total: usize) -> Result<(), BuildError> {
        let ctx = self.ctx.clone();
        let n = ctx.step.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.progress.event(Event::Step {
            n,
            stage: format!("[{} {i}/{total}]", self.label),
            text: ins.text.clone(),
        });
        let t0 = Instant::now();
        if let Kind::Arg(pairs) = &ins.kind {
            for (name, default) in pairs {
                self.declare_arg(ins, name, default.as_deref())?;
            }
            ctx.progress.event(Event::Done { n, millis: t0.elapsed().as_millis() });
            return Ok(());
        }
        let (desc, action) = self.plan(ins).await?;
        let key = sha(&format!("{}\n{desc}", self.state.id));
        if let Some(id) = ctx.cache_get(&key) {
            self.state = ctx.store.image_state(&id)?;
            ctx.cached.fetch_add(1, Ordering::Relaxed);
            ctx.progress.event(Event::Cached { n });
            return Ok(());
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let (mut cfg, layer) = match action {
            Action::Meta(cfg) => (cfg, None),
            Action::Copy(entries, cfg) => {
                let layer = self.copy_layer(ins, entries).await?;
                (cfg, Some(layer))
            }
            Action::Run(spec) => {
                let layer = self.run(ins, n, spec).await?;
                (self.state.config.clone(), Some(layer))
            }
        };
        let mut chains = self.state.chains.clone();
        if let Some(l) = &layer {
            let ids = cfg.pointer_mut("/rootfs/diff_ids").and_then(Value::as_array_mut);
            match ids {
                Some(a) => a.push(json!(l.diff_id)),
                None => cfg["rootfs"] = json!({"type": "layers", "diff_ids": [l.diff_id]}),
            }
            chains.push(l.chain_id.clone());
        }
        let mut h = json!({
            "created": created,
            "created_by": history_text(ins, &desc),
            "comment": "buildkit.dockerfile.v0",
        });
        if layer.is_none() {
            h["empty_layer"] = json!(true);
        }
        match cfg.get_mut("history").and_then(Value::as_array_mut) {
            Some(a) => a.push(h),
            None => cfg["history"] = json!([h]),
        }
        cfg["created"] = json!(created);
        let bytes = serde_json::to_vec(&cfg).map_err(|e| self.err(ins, e.to_string()))?;
        let id = ctx.store.add_image(&bytes, &[], true)?;
        ctx.cache_put(&key, &id);
        self.state = ImageState { id, config: cfg, chains };
        ctx.steps.fetch_add(1, Ordering::Relaxed);
        ctx.progress.event(Event::Done { n, millis: t0.elapsed().as_millis() });
        Ok(())
    }

    /// The cache description of an instruction (expanded) and what carrying it out takes.
    async fn plan(&mut self, ins: &Instruction) -> Result<(String, Action), BuildError> {
        let mut cfg = self.state.config.clone();
        let kw = ins.text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let meta = |cfg: Value, desc: String| Ok((desc, Action::Meta(cfg)));
        match &ins.kind {
            Kind::Env(pairs) => {
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    kvs.push((self.word(ins, k)?, self.word(ins, v)?));
                }
                let mut env = env_of(&cfg);
                for (k, v) in &kvs {
                    env.retain(|(ek, _)| ek != k);
                    env.push((k.clone(), v.clone()));
                }
                config_obj(&mut cfg)?.insert(
                    "Env".into(),
                    json!(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()),
                );
                let d: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                meta(cfg, format!("ENV {}", d.join(" ")))
            }
            Kind::Label(pairs) => {
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    kvs.push((self.word(ins, k)?, self.word(ins, v)?));
                }
                let labels = config_obj(&mut cfg)?.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                if let Some(m) = labels.as_object_mut() {
                    for (k, v) in &kvs {
                        m.insert(k.clone(), json!(v));
                    }
                }
                let d: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                meta(cfg, format!("LABEL {}", d.join(" ")))
            }
            Kind::Workdir(raw) => {
                let w = self.word(ins, raw)?;
                let cur = str_of(&cfg, "WorkingDir");
                let abs = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if cur.is_empty() { "/" } else { &cur })
                };
                let path = format!("/{}", components(&abs).join("/"));
                config_obj(&mut cfg)?.insert("WorkingDir".into(), json!(path));
                let view = self.view()?;
                let desc = format!("WORKDIR {path}");
                if view.stat(&path).is_some() || path == "/" {
                    return meta(cfg, desc);
                }
                // As BuildKit: the directories made belong to the current USER.
                let user = str_of(&cfg, "User");
                let (uid, gid) = if user.is_empty() {
                    (0, 0)
                } else {
                    let passwd = view.read("/etc/passwd");
                    let group = view.read("/etc/group");
                    let u = berth_runtime::container::user::resolve(
                        &user,
                        &[],
                        passwd.as_deref(),
                        group.as_deref(),
                    )
                    .map_err(|e| self.err(ins, format!("USER {user}: {e}")))?;
                    (u.uid, u.gid)
                };
                let o = Overrides { owner: Some((uid, gid)), ..Default::default() };
                let mut entries = Vec::new();
                let comps = view.resolve(&path, true);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                entries.push(Entry {
                    dest: comps,
                    src: Src::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: copy::now(),
                });
                Ok((format!("{desc} owner={uid}:{gid}"), Action::Copy(entries, cfg)))
            }
            Kind::User(raw) => {
                let u = self.word(ins, raw)?;
                config_obj(&mut cfg)?.insert("User".into(), json!(u));
                meta(cfg, format!("USER {u}"))
            }
            Kind::StopSignal(raw) => {
                let s = self.word(ins, raw)?;
                config_obj(&mut cfg)?.insert("StopSignal".into(), json!(s));
                meta(cfg, format!("STOPSIGNAL {s}"))
            }
            Kind::Expose(raw) => {
                let mut ports = Vec::new();
                for p in self.words(ins, raw)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = num.split('-').all(|n| n.parse::<u16>().is_ok())
                        && ["tcp", "udp", "sctp"].contains(&proto.as_str());
                    if !ok {
                        return Err(self.err(ins, format!("invalid port {p:?}")));
                    }
                    ports.push(format!("{num}/{proto}"));
                }
                let m = config_obj(&mut cfg)?.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                if let Some(m) = m.as_object_mut() {
                    for p in &ports {
                        m.insert(p.clone(), json!({}));
                    }
                }
                meta(cfg, format!("EXPOSE {}", ports.join(" ")))
            }
            Kind::Volume(raw) => {
                let mut vols = Vec::new();
                for v in raw {
                    let v = self.word(ins, v)?;
                    if v.trim().is_empty() {
                        return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                    }
                    vols.push(v);
                }
                let m = config_obj(&mut cfg)?.entry("Volumes").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                if let Some(m) = m.as_object_mut() {
                    for v in &vols {
                        m.insert(v.clone(), json!({}));
                    }
                }
                meta(cfg, format!("VOLUME {vols:?}"))
            }
            Kind::Cmd(c) => {
                let argv = self.command(c);
                config_obj(&mut cfg)?.insert("Cmd".into(), json!(argv));
                self.cmd_set = true;
                meta(cfg, format!("CMD {}", json!(argv)))
            }
            Kind::Entrypoint(c) => {
                let argv = self.command(c);
                let o = config_obj(&mut cfg)?;
                o.insert("Entrypoint".into(), json!(argv));
                // docker: an ENTRYPOINT drops the CMD inherited from the base image.
                if !self.cmd_set {
                    o.insert("Cmd".into(), Value::Null);
                }
                meta(cfg, format!("ENTRYPOINT {}", json!(argv)))
            }
            Kind::Shell(v) => {
                config_obj(&mut cfg)?.insert("Shell".into(), json!(v));
                meta(cfg, format!("SHELL {}", json!(v)))
            }
            Kind::Maintainer(m) => {
                cfg["author"] = json!(m);
                meta(cfg, format!("MAINTAINER {m}"))
            }
            Kind::Onbuild(t) => {
                let o = config_obj(&mut cfg)?;
                let list = o.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(t));
                }
                meta(cfg, format!("ONBUILD {t}"))
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let test = match &h.cmd {
                            Some(Command::Exec(v)) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            Some(Command::Shell(s)) => vec!["CMD-SHELL".into(), s.clone()],
                            None => vec!["NONE".into()],
                        };
                        let mut o = json!({"Test": test});
                        for (k, v) in [
                            ("Interval", h.interval),
                            ("Timeout", h.timeout),
                            ("StartPeriod", h.start_period),
                            ("StartInterval", h.start_interval),
                            ("Retries", h.retries),
                        ] {
                            if let Some(v) = v {
                                o[k] = json!(v);
                            }
                        }
                        o
                    }
                };
                let d = format!("HEALTHCHECK {v}");
                config_obj(&mut cfg)?.insert("Healthcheck".into(), v);
                meta(cfg, d)
            }
            Kind::Copy(a) | Kind::Add(a) => {
                let add = matches!(ins.kind, Kind::Add(_));
                let (entries, desc) = self.plan_copy(ins, a, add, &kw).await?;
                Ok((desc, Action::Copy(entries, cfg)))
            }
            Kind::Run { cmd, mounts, network, security, heredocs } => {
                if security.as_deref().is_some_and(|s| s != "sandbox") {
                    return Err(self.err(ins, "RUN --security=insecure is not supported"));
                }
                let mut script = None;
                let argv = match (cmd, heredocs.as_slice()) {
                    (Command::Shell(s), [h])
                        if s.trim()
                            .trim_start_matches(|c: char| c.is_ascii_digit())
                            .starts_with("<<")
                            && s.split_whitespace().count() == 1 =>
                    {
                        match h.content.strip_prefix("#!") {
                            // As BuildKit: the script runs by its interpreter (one argument
                            // after it, as the kernel passes it).
                            Some(rest) => {
                                let line = rest.lines().next().unwrap_or_default().trim();
                                let mut v: Vec<String> = match line.split_once(char::is_whitespace)
                                {
                                    Some((i, a)) => vec![i.to_string(), a.trim().to_string()],
                                    None => vec![line.to_string()],
                                };
                                if v[0].is_empty() {
                                    return Err(
                                        self.err(ins, "the heredoc's #! line names no interpreter")
                                    );
                                }
                                v.push(SCRIPT_PATH.to_string());
                                script = Some(h.content.clone());
                                v
                            }
                            None => {
                                let mut v = self.shell();
                                v.push(h.content.clone());
                                v
                            }
                        }
                    }
                    (Command::Shell(s), hs) if !hs.is_empty() => {
                        // The shell reads the heredocs itself.
                        let mut text = s.clone();
                        for h in hs {
                            text.push('\n');
                            text.push_str(&h.content);
                            text.push_str(&h.name);
                        }
                        let mut v = self.shell();
                        v.push(text);
                        v
                    }
                    (c, _) => self.command(c),
                };
                let asked = match network {
                    Some(n) => Some(self.word(ins, n)?),
                    None => self.ctx.network.clone(),
                };
                let net = match asked.as_deref() {
                    None | Some("default") | Some("host") => "host".to_string(),
                    Some("none") => "none".to_string(),
                    Some(o) => {
                        return Err(self.err(
                            ins,
                            format!("RUN --network={o}: must be default, none or host"),
                        ));
                    }
                };
                let mut ms = Vec::new();
                for m in mounts {
                    let m = self.word(ins, m)?;
                    ms.push(parse_mount(&m).map_err(|e| self.err(ins, e))?);
                }
                // Build args in scope reach the command's environment (ENV wins).
                let env_keys: BTreeSet<String> =
                    env_of(&self.state.config).into_iter().map(|(k, _)| k).collect();
                let mut env: Vec<String> = self
                    .args
                    .iter()
                    .filter(|(k, _)| !env_keys.contains(k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                for p in PROXY_ARGS {
                    if let Some(v) = self.ctx.build_args.get(*p)
                        && !self.args.iter().any(|(k, _)| k == p)
                    {
                        env.push(format!("{p}={v}"));
                    }
                }
                let desc = format!(
                    "RUN {} env={} network={net} mounts={:?} script={}",
                    json!(argv),
                    json!(env),
                    mounts,
                    json!(script)
                );
                Ok((desc, Action::Run(RunSpec { argv, script, env, network: net, mounts: ms })))
            }
            Kind::Arg(_) => Ok((String::new(), Action::Meta(cfg))),
        }
    }

    async fn plan_copy(
        &mut self,
        ins: &Instruction,
        a: &CopyArgs,
        add: bool,
        kw: &str,
    ) -> Result<(Vec<Entry>, String), BuildError> {
        let mut sources = Vec::new();
        for s in &a.sources {
            sources.push(self.word(ins, s)?);
        }
        let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
        if add && sources.iter().any(|s| s.starts_with("git@") || s.ends_with(".git") && is_url(s))
        {
            return Err(self.err(ins, "ADD of a git repository is not supported yet"));
        }
        if a.checksum.is_some() && !(add && sources.iter().all(|s| is_url(s))) {
            return Err(self.err(ins, "--checksum can't be specified for non-HTTP(S) sources"));
        }
        let dest = self.word(ins, &a.dest)?;
        let view = self.view()?;
        let owner = match &a.chown {
            None => None,
            Some(c) => {
                let c = self.word(ins, c)?;
                let passwd = view.read("/etc/passwd");
                let group = view.read("/etc/group");
                let u = berth_runtime::container::user::resolve(
                    &c,
                    &[],
                    passwd.as_deref(),
                    group.as_deref(),
                )
                .map_err(|e| self.err(ins, format!("--chown={c}: {e}")))?;
                Some((u.uid, u.gid))
            }
        };
        let mode = match &a.chmod {
            None => None,
            Some(m) => {
                let m = self.word(ins, m)?;
                Some(
                    copy::parse_chmod(&m)
                        .ok_or_else(|| self.err(ins, format!("--chmod={m}: not an octal mode")))?,
                )
            }
        };
        let exclude = if a.excludes.is_empty() {
            None
        } else {
            let mut pats = Vec::new();
            for x in &a.excludes {
                pats.push(self.word(ins, x)?);
            }
            Some(
                crate::ignore::Ignore::parse("--exclude", &pats.join("\n"))
                    .map_err(|e| self.err(ins, e.to_string()))?,
            )
        };
        let o = Overrides { owner, mode, exclude, parents: a.parents };
        let workdir = match str_of(&self.state.config, "WorkingDir") {
            w if w.is_empty() => "/".to_string(),
            w => w,
        };
        let cerr = |e: CopyError| self.err(ins, e.to_string());
        let mut from_desc = String::from("context");
        let mut entries = Vec::new();
        if !a.heredocs.is_empty() {
            // Heredoc sources become files named by their delimiter.
            let dest_abs =
                if dest.starts_with('/') { dest.clone() } else { format!("{workdir}/{dest}") };
            let dir_dest = dest.ends_with('/') || a.heredocs.len() > 1;
            let vars = self.vars();
            for h in &a.heredocs {
                let content = if h.expand {
                    lex::expand_heredoc(&h.content, self.ctx.df.escape, &vars)
                        .map_err(|e| self.err(ins, e.to_string()))?
                } else {
                    h.content.clone()
                };
                let path =
                    if dir_dest { format!("{dest_abs}/{}", h.name) } else { dest_abs.clone() };
                let comps = view.resolve(&path, false);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                entries.push(Entry {
                    dest: comps,
                    src: Src::Data(content.into_bytes()),
                    mode: o.mode.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: copy::now(),
                });
            }
        }
        // ADD of URLs: downloaded (every build: the content decides the cache), mode 0600.
        let urls: Vec<&String> =
            if add { sources.iter().filter(|s| is_url(s)).collect() } else { Vec::new() };
        if !urls.is_empty() {
            if sources.len() > 1 && !dest.ends_with('/') {
                return Err(cerr(CopyError::NeedsDirDest(kw.to_string())));
            }
            let dest_abs =
                if dest.starts_with('/') { dest.clone() } else { format!("{workdir}/{dest}") };
            for u in &urls {
                let u2 = (*u).clone();
                let d = tokio::task::spawn_blocking(move || crate::fetch::get(&u2))
                    .await
                    .map_err(|e| BuildError::Invalid(e.to_string()))?
                    .map_err(|e| self.err(ins, e))?;
                if let Some(want) = &a.checksum {
                    let want = self.word(ins, want)?;
                    let Some(hex_want) = want.strip_prefix("sha256:") else {
                        return Err(self.err(
                            ins,
                            format!("--checksum={want}: only sha256:<hex> is supported"),
                        ));
                    };
                    let got = hex::encode(Sha256::digest(&d.body));
                    if got != hex_want.to_ascii_lowercase() {
                        return Err(self.err(
                            ins,
                            format!("{u}: the content has checksum sha256:{got}, not {want}"),
                        ));
                    }
                }
                let path = if dest.ends_with('/') {
                    let Some(name) = &d.name else {
                        return Err(self.err(ins, format!("{u}: cannot determine a file name from the URL; give a file destination")));
                    };
                    format!("{dest_abs}/{name}")
                } else {
                    dest_abs.clone()
                };
                let comps = view.resolve(&path, false);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                entries.push(Entry {
                    dest: comps,
                    src: Src::Data(d.body),
                    mode: o.mode.unwrap_or(0o600),
                    uid,
                    gid,
                    mtime: d.mtime.unwrap_or_else(copy::now),
                });
            }
        }
        let files: Vec<String> = sources
            .iter()
            .filter(|s| !(a.heredocs.iter().any(|h| &h.name == *s) || (add && is_url(s))))
            .cloned()
            .collect();
        let _tmp_guard;
        if !files.is_empty() {
            match &a.from {
                None => {
                    let root =
                        SourceRoot { dir: &self.ctx.context, ignore: Some(&self.ctx.ignore) };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw)
                            .map_err(cerr)?,
                    );
                }
                Some(f)
                    if matches!(
                        self.ctx.named.get(&self.word(ins, f)?),
                        Some(NamedContext::Dir(_))
                    ) =>
                {
                    let f = self.word(ins, f)?;
                    let Some(NamedContext::Dir(dir)) = self.ctx.named.get(&f) else {
                        return Err(self.err(ins, format!("--from={f}: not a directory context")));
                    };
                    from_desc = format!("--from={f}");
                    let root = SourceRoot { dir, ignore: None };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw).map_err(
                            |e| match e {
                                CopyError::NotFound(p) => {
                                    self.err(ins, format!("{p}: not found in the context {f}"))
                                }
                                e => self.err(ins, e.to_string()),
                            },
                        )?,
                    );
                }
                Some(f) => {
                    let f = self.word(ins, f)?;
                    let image_ref = match self.ctx.named.get(&f) {
                        Some(NamedContext::Image(r)) => Some(r.clone()),
                        _ => None,
                    };
                    let id = match (image_ref, self.ctx.stage_index(&f, self.j)) {
                        (Some(r), _) => {
                            self.ctx
                                .image(&r)
                                .await
                                .map_err(|e| self.err(ins, format!("--from={f}: {e}")))?
                                .id
                        }
                        (None, Some(k)) => stage_result(self.ctx.clone(), k).await?,
                        (None, None) => {
                            self.ctx
                                .image(&f)
                                .await
                                .map_err(|e| self.err(ins, format!("--from={f}: {e}")))?
                                .id
                        }
                    };
                    // The content digest below covers what is copied: another build of the
                    // source stage with the same files still hits the cache (as BuildKit).
                    from_desc = format!("--from={f}");
                    // The source image's files, materialised (only the directories named).
                    let tmp = self.ctx.tmp("from")?;
                    let mut dirs = BTreeSet::new();
                    for s in &files {
                        let comps = components(s);
                        let upto = comps
                            .iter()
                            .position(|c| c.contains(['*', '?', '[']))
                            .unwrap_or(comps.len());
                        dirs.insert(comps[..upto].join("/"));
                    }
                    let src_view = LayerView::new(
                        self.ctx.store.layer_dirs(&self.ctx.store.image_state(&id)?.chains)?,
                    );
                    for d in &dirs {
                        let comps = components(d);
                        let target = comps.iter().fold(tmp.path().to_path_buf(), |p, c| p.join(c));
                        match src_view.stat(d) {
                            Some(m) if m.is_dir() => {
                                std::fs::create_dir_all(&target).map_err(|e| BuildError::Read {
                                    path: target.clone(),
                                    source: e,
                                })?;
                                self.ctx.store.copy_path_from_image(
                                    &id,
                                    &format!("/{d}"),
                                    &target,
                                )?;
                            }
                            Some(_) => {
                                let parent = &comps[..comps.len().saturating_sub(1)];
                                let pt =
                                    parent.iter().fold(tmp.path().to_path_buf(), |p, c| p.join(c));
                                std::fs::create_dir_all(&pt).map_err(|e| BuildError::Read {
                                    path: pt.clone(),
                                    source: e,
                                })?;
                                self.ctx.store.copy_path_from_image(
                                    &id,
                                    &format!("/{}", parent.join("/")),
                                    &pt,
                                )?;
                            }
                            None => return Err(self.err(ins, format!("{d}: not found in {f}"))),
                        }
                    }
                    let root = SourceRoot { dir: tmp.path(), ignore: None };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw).map_err(
                            |e| match e {
                                CopyError::NotFound(p) => {
                                    self.err(ins, format!("{p}: not found in {f}"))
                                }
                                e => self.err(ins, e.to_string()),
                            },
                        )?,
                    );
                    let digest =
                        copy::digest(&entries).map_err(|e| self.err(ins, e.to_string()))?;
                    // The content is read while the materialised copy exists: write the tar now.
                    _tmp_guard = Some(tmp);
                    let desc = format!("{kw} from={from_desc} {sources:?} {dest} digest={digest}");
                    return Ok((self.inline_files(entries, ins)?, desc));
                }
            }
        }
        let digest = copy::digest(&entries).map_err(|e| self.err(ins, e.to_string()))?;
        let desc = format!(
            "{kw} from={from_desc} {sources:?} {dest} chown={owner:?} chmod={mode:?} digest={digest}"
        );
        Ok((entries, desc))
    }

    /// Reads the files of a plan into memory-backed entries (for sources that vanish before
    /// the layer is written: a stage's materialised files).
    fn inline_files(
        &self,
        entries: Vec<Entry>,
        ins: &Instruction,
    ) -> Result<Vec<Entry>, BuildError> {
        entries
            .into_iter()
            .map(|mut e| {
                if let Src::File(p) = &e.src {
                    let data = std::fs::read(p).map_err(|er| {
                        self.err(ins, format!("cannot read {}: {er}", p.display()))
                    })?;
                    e.src = Src::Data(data);
                }
                Ok(e)
            })
            .collect()
    }

    async fn copy_layer(
        &self,
        ins: &Instruction,
        entries: Vec<Entry>,
    ) -> Result<berth_image::NewLayer, BuildError> {
        let tmp = self.ctx.tmp("layer")?;
        let path = tmp.path().join("layer.tar");
        let store = self.ctx.store.clone();
        let parent = self.state.chains.last().cloned();
        let p2 = path.clone();
        let r = tokio::task::spawn_blocking(move || -> Result<berth_image::NewLayer, String> {
            let f = std::fs::File::create(&p2)
                .map_err(|e| format!("cannot write {}: {e}", p2.display()))?;
            let f =
                copy::write_tar(&entries, std::io::BufWriter::new(f)).map_err(|e| e.to_string())?;
            drop(f);
            let f = std::fs::File::open(&p2)
                .map_err(|e| format!("cannot read {}: {e}", p2.display()))?;
            store
                .add_layer(parent.as_deref(), std::io::BufReader::new(f))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
        drop(tmp);
        r.map_err(|m| self.err(ins, m))
    }

    async fn run(
        &self,
        ins: &Instruction,
        n: usize,
        spec: RunSpec,
    ) -> Result<berth_image::NewLayer, BuildError> {
        let ctx = self.ctx.clone();
        let view = self.view()?;
        let mut cfg = ContainerCreateConfig::default();
        cfg.config.image = self.state.id.clone();
        cfg.config.cmd = Some(spec.argv.clone());
        cfg.config.entrypoint = Some(Vec::new());
        cfg.config.env = spec.env.clone();
        cfg.config.healthcheck =
            Some(HealthConfig { test: vec!["NONE".into()], ..Default::default() });
        cfg.host_config.network_mode = spec.network.clone();
        cfg.host_config.extra_hosts = ctx.extra_hosts.clone();
        cfg.host_config.shm_size = ctx.shm_size;
        if let Some(s) = &ctx.session {
            cfg.config.labels.insert(SESSION_LABEL.into(), s.clone());
        }
        let mut targets = Vec::new();
        let mut keep = Vec::new();
        if let Some(text) = &spec.script {
            let tmp = ctx.tmp("script")?;
            let p = tmp.path().join("script");
            std::fs::write(&p, text)
                .map_err(|e| BuildError::Read { path: p.clone(), source: e })?;
            let _ = copy::set_mode(&p, 0o755);
            cfg.host_config.binds.push(format!("{}:{SCRIPT_PATH}:ro", p.display()));
            targets.push(SCRIPT_PATH.to_string());
            keep.push(tmp);
        }
        for m in &spec.mounts {
            let target = m.target.clone().unwrap_or_else(|| match m.typ {
                MountType::Secret => format!("/run/secrets/{}", m.id.clone().unwrap_or_default()),
                _ => String::new(),
            });
            let target = if target.starts_with('/') {
                target
            } else {
                format!("{}/{target}", str_of(&self.state.config, "WorkingDir"))
            };
            match m.typ {
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = ctx.dir.join("cache-mounts").join(sha(&id));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| BuildError::Read { path: dir.clone(), source: e })?;
                        let _ = copy::set_mode(&dir, m.mode.unwrap_or(0o755));
                        let _ = std::os::unix::fs::chown(
                            &dir,
                            Some(m.uid.unwrap_or(0)),
                            Some(m.gid.unwrap_or(0)),
                        );
                    }
                    let ro = if m.readonly == Some(true) { "ro" } else { "rw" };
                    cfg.host_config.binds.push(format!("{}:{target}:{ro}", dir.display()));
                }
                MountType::Tmpfs => {
                    let opts = m.size.map(|s| format!("size={s}")).unwrap_or_default();
                    cfg.host_config.tmpfs.insert(target.clone(), opts);
                }
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    match ctx.secrets.get(&id) {
                        Some(p) => cfg.host_config.binds.push(format!("{}:{target}:ro", p.display())),
                        None if m.required => return Err(self.err(ins, format!("secret {id} is required but was not given (--secret id={id},src=PATH)"))),
                        None => continue,
                    }
                }
                MountType::Bind => {
                    // Read-only unless `rw`; an `rw` mount's writes go to a copy and are lost.
                    let mode = if m.readonly == Some(false) { "rw" } else { "ro" };
                    let src = m.source.clone().unwrap_or_default();
                    match &m.from {
                        None => {
                            let tmp = ctx.tmp("mnt")?;
                            let root = SourceRoot { dir: &ctx.context, ignore: Some(&ctx.ignore) };
                            let what = copy::materialize(&root, &src, tmp.path())
                                .map_err(|e| self.err(ins, format!("--mount source {e}")))?;
                            cfg.host_config
                                .binds
                                .push(format!("{}:{target}:{mode}", what.display()));
                            keep.push(tmp);
                        }
                        Some(f) if matches!(ctx.named.get(f), Some(NamedContext::Dir(_))) => {
                            let Some(NamedContext::Dir(dir)) = ctx.named.get(f) else {
                                return Err(self.err(
                                    ins,
                                    format!("--mount from={f}: not a directory context"),
                                ));
                            };
                            let tmp = ctx.tmp("mnt")?;
                            let root = SourceRoot { dir, ignore: None };
                            let what = copy::materialize(&root, &src, tmp.path())
                                .map_err(|e| self.err(ins, format!("--mount source {e}")))?;
                            cfg.host_config
                                .binds
                                .push(format!("{}:{target}:{mode}", what.display()));
                            keep.push(tmp);
                        }
                        Some(f) => {
                            let id = match (ctx.named.get(f), ctx.stage_index(f, self.j)) {
                                (Some(NamedContext::Image(r)), _) => ctx.image(r).await?.id,
                                (_, Some(k)) => stage_result(ctx.clone(), k).await?,
                                _ => ctx.image(f).await?.id,
                            };
                            let tmp = ctx.tmp("mnt")?;
                            if !ctx.store.copy_path_from_image(
                                &id,
                                &format!("/{}", components(&src).join("/")),
                                tmp.path(),
                            )? {
                                return Err(self.err(
                                    ins,
                                    format!("--mount source {src}: not a directory in {f}"),
                                ));
                            }
                            cfg.host_config
                                .binds
                                .push(format!("{}:{target}:{mode}", tmp.path().display()));
                            keep.push(tmp);
                        }
                    }
                }
                MountType::Ssh => {
                    return Err(self.err(ins, "--mount=type=ssh is not supported yet"));
                }
            }
            targets.push(target);
        }
        let id = ctx
            .engine
            .container_create(None, cfg)
            .await
            .map_err(|e| self.err(ins, e.to_string()))?;
        let result = self.run_in(ins, n, &id, &view, &targets).await;
        let removed = ctx.engine.container_remove(&id, true, true).await;
        drop(keep);
        let layer = result?;
        removed.map_err(|e| self.err(ins, format!("cannot remove the build container: {e}")))?;
        Ok(layer)
    }

    async fn run_in(
        &self,
        ins: &Instruction,
        n: usize,
        id: &str,
        view: &LayerView,
        targets: &[String],
    ) -> Result<berth_image::NewLayer, BuildError> {
        let ctx = self.ctx.clone();
        let mut att = ctx
            .engine
            .container_start_attached(id)
            .await
            .map_err(|e| self.err(ins, e.to_string()))?;
        let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        while let Some(e) = att.output.recv().await {
            for line in e.text.lines() {
                ctx.progress.event(Event::Output { n, line: line.to_string() });
                last.push_back(line.to_string());
                if last.len() > 10 {
                    last.pop_front();
                }
            }
        }
        let code = ctx.engine.container_wait(id).await.map_err(|e| self.err(ins, e.to_string()))?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                file: ctx.file.clone(),
                line: ins.line,
                instruction: ins.text.clone(),
                code,
                output: last.into_iter().collect(),
            });
        }
        let upper =
            berth_runtime::container::record::ContainerPaths::new(ctx.engine.root(), id).upper();
        // Mount points made for RUN mounts are not part of the result.
        for t in targets {
            let comps = components(t);
            for k in (1..=comps.len()).rev() {
                if view.lookup(&comps[..k]).is_some() {
                    break;
                }
                let p = comps[..k].iter().fold(upper.clone(), |p, c| p.join(c));
                let empty = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => {
                        std::fs::read_dir(&p).map(|mut d| d.next().is_none()).unwrap_or(false)
                    }
                    Ok(m) => m.len() == 0,
                    Err(_) => false,
                };
                if !empty {
                    break;
                }
                let _ = if p.is_dir() { std::fs::remove_dir(&p) } else { std::fs::remove_file(&p) };
            }
        }
        let tmp = ctx.tmp("layer")?;
        let path = tmp.path().join("layer.tar");
        let store = ctx.store.clone();
        let parent = self.state.chains.last().cloned();
        let p2 = path.clone();
        let r = tokio::task::spawn_blocking(move || -> Result<berth_image::NewLayer, String> {
            let f = std::fs::File::create(&p2)
                .map_err(|e| format!("cannot write {}: {e}", p2.display()))?;
            let f = berth_image::write_upper_tar(&upper, std::io::BufWriter::new(f))
                .map_err(|e| format!("cannot read the changes of the step: {e}"))?;
            drop(f);
            let f = std::fs::File::open(&p2)
                .map_err(|e| format!("cannot read {}: {e}", p2.display()))?;
            store
                .add_layer(parent.as_deref(), std::io::BufReader::new(f))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
        drop(tmp);
        r.map_err(|m| self.err(ins, m))
    }
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
