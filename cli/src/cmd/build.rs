//! `berth build` / `berth image build` (docker's `build`), `berth container commit` and
//! `berth image history`, on the builder crate (berth-builder).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use berth_builder::commit::CommitOptions;
use berth_builder::{BuildError, BuildOptions, Event, Progress, StoreOnly};

use super::engine_access::{EXIT_ENGINE, engine};
use super::{EngineOpts, ExitWith, ProjectOpts};

/// `build` (docker's build flags).
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short, long = "tag")]
    tag: Vec<String>,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`).
    #[arg(short, long = "file")]
    file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set metadata for the image (`KEY=VALUE`).
    #[arg(long)]
    label: Vec<String>,
    /// Do not use the cache when building the image.
    #[arg(long)]
    no_cache: bool,
    /// Ask the image source for FROM images even when the store has them (berth has no registry
    /// client yet: nothing is pulled).
    #[arg(long)]
    pull: bool,
    /// Secret to expose to RUN --mount=type=secret (`id=ID,src=PATH`).
    #[arg(long)]
    secret: Vec<String>,
    /// Additional build contexts (`NAME=PATH` or `NAME=docker-image://REF`).
    #[arg(long = "build-context")]
    build_context: Vec<String>,
    /// Network of RUN steps: default (the host's), host or none.
    #[arg(long)]
    network: Option<String>,
    /// Add a custom host-to-IP mapping (`host:ip`) for RUN steps.
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Size of RUN steps' /dev/shm in bytes (a number with b, k, m or g).
    #[arg(long)]
    shm_size: Option<String>,
    /// Progress output: auto, plain, tty, json or quiet.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Suppress the build output and print the image id on success.
    #[arg(short, long)]
    quiet: bool,
    /// Compose: also build the services the named ones depend on.
    #[arg(long)]
    with_dependencies: bool,
    /// The build context directory (docker's `build PATH`), or compose services to build
    /// (`build [SERVICE...]`; none: every service with a `build:` section).
    #[arg(value_name = "PATH | SERVICE")]
    args: Vec<String>,
}

/// `container commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g. "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container.
    container: String,
    /// `REPOSITORY[:TAG]`.
    reference: Option<String>,
}

/// `builder`: manage the build cache.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune {
        /// Also remove the content of RUN --mount=type=cache directories.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `builder` subcommand.
pub fn builder(opts: &EngineOpts, cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    let BuilderCommand::Prune { all, force } = cmd;
    if !force
        && !super::image::confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        )
    {
        return Ok(ExitCode::SUCCESS);
    }
    let engine = engine(opts)?;
    let rt = super::engine_access::runtime()?;
    let report = rt.block_on(berth_builder::prune::prune(&engine, all)).map_err(build_err)?;
    let mut out = std::io::stdout().lock();
    let deleted = report
        .images_deleted
        .iter()
        .filter(|i| matches!(i, berth_image::RemoveItem::Deleted(_)))
        .count();
    writeln!(out, "Deleted build cache objects: {deleted}")?;
    writeln!(out, "Total:\t{}", super::system::human_size(report.space_reclaimed))?;
    Ok(ExitCode::SUCCESS)
}

/// `image history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// The image.
    image: String,
}

/// Prints docker's plain progress (`#N [stage i/n] INSTRUCTION`, `#N CACHED`, output,
/// `#N DONE 0.1s`) on stderr.
struct Plain {
    quiet: bool,
    /// One JSON object a line instead (`--progress json` / `rawjson`).
    json: bool,
    out: Mutex<std::io::Stderr>,
}

impl Progress for Plain {
    fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        let Ok(mut o) = self.out.lock() else { return };
        if self.json {
            let v = match e {
                Event::Step { n, stage, text } => {
                    serde_json::json!({"step": n, "stage": stage, "instruction": text})
                }
                Event::Cached { n } => serde_json::json!({"step": n, "cached": true}),
                Event::Output { n, line } => serde_json::json!({"step": n, "output": line}),
                Event::Done { n, millis } => {
                    serde_json::json!({"step": n, "done": true, "ms": millis as u64})
                }
                Event::Warning(w) => serde_json::json!({"warning": w}),
            };
            let _ = writeln!(o, "{v}");
            return;
        }
        let _ = match e {
            Event::Step { n, stage, text } => writeln!(o, "#{n} {stage} {text}"),
            Event::Cached { n } => writeln!(o, "#{n} CACHED"),
            Event::Output { n, line } => writeln!(o, "#{n} {line}"),
            Event::Done { n, millis } => writeln!(o, "#{n} DONE {:.1}s", millis as f64 / 1000.0),
            Event::Warning(w) => writeln!(o, "{w}"),
        };
    }
}

fn key_value(s: &str, what: &str) -> anyhow::Result<(String, Option<String>)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), Some(v.to_string()))),
        None if !s.is_empty() => Ok((s.to_string(), None)),
        _ => Err(usage(format!("invalid {what} {s:?}: use KEY=VALUE"))),
    }
}

fn usage(message: String) -> anyhow::Error {
    ExitWith { code: super::EXIT_USAGE, message: format!("berth: {message}") }.into()
}

fn build_err(e: BuildError) -> anyhow::Error {
    ExitWith { code: 1, message: format!("berth: {e}") }.into()
}

/// A name for this build's RUN containers.
fn session() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Runs a build; Ctrl-C stops it and removes the RUN containers it had running (exit 130).
async fn interruptible<T>(
    engine: &berth_runtime::Engine,
    session: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        r = fut => r,
        _ = tokio::signal::ctrl_c() => {
            berth_builder::remove_session(engine, session).await;
            Err(ExitWith { code: 130, message: "berth: build interrupted".into() }.into())
        }
    }
}

/// A multi-threaded runtime, so independent stages build side by side.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `64m`, `1g`, `4096`: bytes (powers of 1024).
fn parse_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (n, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    n.parse::<i64>().ok().filter(|n| *n >= 0)?.checked_mul(1 << shift)
}

/// Whether the compose project (if any) has a service called `name`.
fn names_service(po: &ProjectOpts, name: &str) -> bool {
    super::compose::load(po, false, &[]).is_ok_and(|p| p.services.contains_key(name))
}

/// Runs `berth build`: docker's `build PATH` when given a directory (or `-t`, `-f`, `--target`,
/// `--label`, `--secret`, `--build-context`), else compose's `build [SERVICE...]`. A directory that is also a
/// service's name is the service.
pub fn build(po: &ProjectOpts, opts: &EngineOpts, a: BuildArgs) -> anyhow::Result<ExitCode> {
    let docker = !a.tag.is_empty()
        || a.file.is_some()
        || a.target.is_some()
        || !a.label.is_empty()
        || !a.secret.is_empty()
        || !a.build_context.is_empty()
        || match a.args.as_slice() {
            [one] => std::path::Path::new(one).is_dir() && !names_service(po, one),
            _ => false,
        };
    if docker { image_build(opts, a) } else { compose_build_cmd(po, opts, a) }
}

/// Runs compose's `build [SERVICE...]`.
fn compose_build_cmd(
    po: &ProjectOpts,
    opts: &EngineOpts,
    a: BuildArgs,
) -> anyhow::Result<ExitCode> {
    let p = super::compose::load(po, false, &a.args)?;
    let services = if a.args.is_empty() {
        p.services.keys().cloned().collect()
    } else {
        berth_planner::ops::selected_services(&p, &a.args, a.with_dependencies)
            .map_err(super::compose::plan_err)?
    };
    let mut build_args = Vec::new();
    for b in &a.build_arg {
        build_args.push(key_value(b, "--build-arg")?);
    }
    if a.pull && !a.quiet {
        eprintln!("berth: --pull: berth has no registry client yet; using the images in the store");
    }
    let o = ComposeBuild {
        no_cache: a.no_cache,
        build_args,
        quiet: a.quiet || po.progress == "quiet",
        session: session(),
        json: po.progress == "json",
        pull: a.pull,
    };
    let engine = engine(opts)?;
    let rt = runtime()?;
    let built =
        rt.block_on(interruptible(&engine, &o.session, compose_build(&engine, &p, &services, &o)))?;
    if a.quiet {
        for (_, id) in built {
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs docker's `build PATH` (also `image build`).
pub fn image_build(opts: &EngineOpts, a: BuildArgs) -> anyhow::Result<ExitCode> {
    let path = match a.args.as_slice() {
        [one] => PathBuf::from(one),
        _ => {
            return Err(usage(
                "build needs exactly one argument: the build context directory".into(),
            ));
        }
    };
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty" | "quiet" | "json" | "rawjson") {
        return Err(usage(format!(
            "invalid --progress {:?}: use auto, plain, tty, json or quiet",
            a.progress
        )));
    }
    let mut build_args = Vec::new();
    for b in &a.build_arg {
        build_args.push(key_value(b, "--build-arg")?);
    }
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = key_value(l, "--label")?;
        labels.push((k, v.unwrap_or_default()));
    }
    let mut secrets = Vec::new();
    for s in &a.secret {
        let mut id = None;
        let mut src = None;
        for f in s.split(',') {
            match f.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                _ => {}
            }
        }
        match (id, src) {
            (Some(i), Some(p)) => secrets.push((i, p)),
            _ => return Err(usage(format!("invalid --secret {s:?}: use id=ID,src=PATH"))),
        }
    }
    let dockerfile =
        a.file.clone().map(|f| if f.is_absolute() || f.exists() { f } else { path.join(&f) });
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut named_contexts = Vec::new();
    for c in &a.build_context {
        let Some((name, value)) = c.split_once('=') else {
            return Err(usage(format!(
                "invalid --build-context {c:?}: use NAME=PATH or NAME=docker-image://REF"
            )));
        };
        let ctx = berth_builder::NamedContext::parse(value, &cwd)
            .map_err(|m| usage(format!("invalid --build-context {c:?}: {m}")))?;
        named_contexts.push((name.to_string(), ctx));
    }
    if let Some(n) = &a.network
        && !matches!(n.as_str(), "default" | "host" | "none")
    {
        return Err(usage(format!(
            "invalid --network {n:?}: berth builds with default, host or none"
        )));
    }
    let shm_size = match &a.shm_size {
        None => 0,
        Some(v) => parse_bytes(v).ok_or_else(|| usage(format!("invalid --shm-size {v:?}")))?,
    };
    let bo = BuildOptions {
        context: path.clone(),
        dockerfile,
        dockerfile_inline: None,
        tags: a.tag.clone(),
        target: a.target.clone(),
        build_args,
        labels,
        no_cache: a.no_cache,
        secrets,
        session: Some(session()),
        network: a.network.clone(),
        extra_hosts: a.add_host.clone(),
        shm_size,
        named_contexts,
        pull: a.pull,
    };
    let quiet = a.quiet || a.progress == "quiet";
    if a.pull && !quiet {
        eprintln!("berth: --pull: berth has no registry client yet; using the images in the store");
    }
    let engine = engine(opts)?;
    let json = matches!(a.progress.as_str(), "json" | "rawjson");
    let progress = Arc::new(Plain { quiet, json, out: Mutex::new(std::io::stderr()) });
    let t0 = Instant::now();
    let rt = runtime()?;
    let s = bo.session.clone().unwrap_or_default();
    let r = rt.block_on(interruptible(&engine, &s, async {
        berth_builder::build(&engine, bo, progress, Arc::new(StoreOnly)).await.map_err(build_err)
    }))?;
    if quiet {
        println!("{}", r.id);
    } else if json {
        let tags: Vec<String> = a
            .tag
            .iter()
            .filter_map(|t| berth_image::Reference::parse(t).ok().map(|r| r.full()))
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({"image": r.id, "steps": r.steps, "cached": r.cached, "tags": tags})
        );
    } else {
        eprintln!(
            "writing image {} done ({} steps, {} cached, {:.1}s)",
            r.id,
            r.steps,
            r.cached,
            t0.elapsed().as_secs_f64()
        );
        for t in &a.tag {
            if let Ok(r) = berth_image::Reference::parse(t) {
                eprintln!("naming to {}", r.full());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `container commit`.
pub fn commit(opts: &EngineOpts, a: CommitArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(opts)?;
    let rt = super::engine_access::runtime()?;
    let co = CommitOptions {
        reference: a.reference,
        author: a.author,
        message: a.message,
        changes: a.change,
        pause: a.pause,
    };
    let id = rt
        .block_on(berth_builder::commit::commit(&engine, &a.container, co))
        .map_err(|e| ExitWith { code: EXIT_ENGINE, message: format!("berth: {e}") })?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `5 minutes ago`-style age of an RFC 3339 time (as `image ls`).
fn age(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => super::image::human_since(t.timestamp()),
        Err(_) => "N/A".into(),
    }
}

/// Runs `image history`: newest first, one row per history entry; the top row carries the id.
pub fn history(opts: &EngineOpts, a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(opts)?;
    let store = engine.images()?;
    let st = store
        .image_state(&a.image)
        .map_err(|e| ExitWith { code: 1, message: format!("berth: {e}") })?;
    let hist = st.config.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
    let sizes = store.layer_sizes(&st.chains)?;
    let mut layer = sizes.len();
    let mut rows = Vec::new();
    for (i, h) in hist.iter().enumerate().rev() {
        let empty = h.get("empty_layer").and_then(|v| v.as_bool()).unwrap_or(false);
        let size = if empty || layer == 0 {
            0
        } else {
            layer -= 1;
            sizes[layer]
        };
        let id = if i + 1 == hist.len() {
            if a.no_trunc { st.id.clone() } else { berth_image::short_id(&st.id) }
        } else {
            "<missing>".to_string()
        };
        let s = |k: &str| h.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let mut by = s("created_by");
        if !a.no_trunc && by.chars().count() > 45 {
            by = format!("{}…", by.chars().take(44).collect::<String>());
        }
        rows.push((id, age(&s("created")), by, size, s("comment")));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r.0)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Columns as docker's tabwriter lays them out: as wide as their widest cell, 3 apart.
    let cells: Vec<[String; 5]> =
        std::iter::once(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from))
            .chain(rows.into_iter().map(|(id, created, by, size, comment)| {
                [id, created, by, super::system::human_size(size), comment]
            }))
            .collect();
    let mut widths = [0usize; 4];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in &cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i < 4 {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How compose's `build` / `up --build` build the services' images.
#[derive(Debug, Clone, Default)]
pub struct ComposeBuild {
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--build-arg` (over the file's `args`).
    pub build_args: Vec<(String, Option<String>)>,
    /// `-q`: no progress.
    pub quiet: bool,
    /// Labels the RUN containers (see [`berth_builder::SESSION_LABEL`]).
    pub session: String,
    /// JSON progress lines.
    pub json: bool,
    /// `--pull`.
    pub pull: bool,
}

/// Prefixes each step's stage with the service (`[web base 1/3]`), as compose's plain output.
struct ServiceProgress {
    service: String,
    inner: Arc<dyn Progress>,
}

impl Progress for ServiceProgress {
    fn event(&self, e: Event) {
        let e = match e {
            Event::Step { n, stage, text } => Event::Step {
                n,
                stage: format!("[{} {}", self.service, stage.trim_start_matches('[')),
                text,
            },
            e => e,
        };
        self.inner.event(e);
    }
}

/// The builder's options for a compose service's `build:` section.
fn service_options(
    p: &compose_spec::model::Project,
    svc: &str,
    b: &compose_spec::model::Build,
    o: &ComposeBuild,
) -> anyhow::Result<BuildOptions> {
    let bad = |m: String| -> anyhow::Error {
        ExitWith { code: 1, message: format!("berth: service {svc:?}: build: {m}") }.into()
    };
    let context = match &b.context {
        None => p.working_dir.clone(),
        Some(c) if c.contains("://") || c.starts_with("git@") => {
            return Err(bad(format!("context {c:?}: remote build contexts are not supported yet")));
        }
        Some(c) => p.working_dir.join(c),
    };
    let mut named_contexts = Vec::new();
    for (name, value) in &b.additional_contexts {
        let c = berth_builder::NamedContext::parse(value, &context)
            .map_err(|m| bad(format!("additional_contexts.{name}: {m}")))?;
        named_contexts.push((name.clone(), c));
    }
    // Build secrets are the project's file secrets.
    let mut secrets = Vec::new();
    for r in &b.secrets {
        let def = p
            .secrets
            .get(&r.source)
            .ok_or_else(|| bad(format!("secret {:?} is not defined", r.source)))?;
        let Some(file) = &def.file else {
            return Err(bad(format!(
                "secret {:?}: only file secrets can be used in a build",
                r.source
            )));
        };
        // The id is the secret's name; a `target` (other than the service-style default the
        // loader fills in) names it too.
        let path = p.working_dir.join(file);
        secrets.push((r.source.clone(), path.clone()));
        if let Some(t) = &r.target
            && *t != format!("/run/secrets/{}", r.source)
        {
            secrets.push((t.clone(), path));
        }
    }
    let extra_hosts = b
        .extra_hosts
        .iter()
        .flat_map(|(host, addrs)| addrs.iter().map(move |a| format!("{host}:{a}")))
        .collect();
    let dockerfile = b.dockerfile.as_ref().map(|d| context.join(d));
    let mut tags = vec![p.image_name(svc)];
    tags.extend(b.tags.iter().cloned());
    let mut build_args: Vec<(String, Option<String>)> =
        b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in &o.build_args {
        build_args.retain(|(bk, _)| bk != k);
        build_args.push((k.clone(), v.clone()));
    }
    Ok(BuildOptions {
        context,
        dockerfile,
        dockerfile_inline: b.dockerfile_inline.clone(),
        tags,
        target: b.target.clone(),
        build_args,
        labels: b.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        no_cache: b.no_cache || o.no_cache,
        secrets,
        session: Some(o.session.clone()),
        network: b.network.clone(),
        extra_hosts,
        shm_size: b.shm_size.as_ref().map(|s| s.0).unwrap_or(0),
        named_contexts,
        pull: b.pull || o.pull,
    })
}

/// Builds the images of `services` (those with a `build:` section; an image named by several
/// services is built once). Returns (service, image id) in build order.
pub async fn compose_build(
    engine: &berth_runtime::Engine,
    p: &compose_spec::model::Project,
    services: &[String],
    o: &ComposeBuild,
) -> anyhow::Result<Vec<(String, String)>> {
    let progress: Arc<dyn Progress> =
        Arc::new(Plain { quiet: o.quiet, json: o.json, out: Mutex::new(std::io::stderr()) });
    let mut done: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for svc in services {
        let Some(s) = p.services.get(svc) else { continue };
        let Some(b) = &s.build else { continue };
        let image = p.image_name(svc);
        if let Some(id) = done.get(&image) {
            out.push((svc.clone(), id.clone()));
            continue;
        }
        let bo = service_options(p, svc, b, o)?;
        let sp = Arc::new(ServiceProgress { service: svc.clone(), inner: progress.clone() });
        let r = berth_builder::build(engine, bo, sp, Arc::new(StoreOnly)).await.map_err(|e| {
            anyhow::Error::from(ExitWith {
                code: 1,
                message: format!("berth: service {svc:?} failed to build: {e}"),
            })
        })?;
        if !o.quiet {
            eprintln!("Service {svc}  Built ({image}, {})", berth_image::short_id(&r.id));
        }
        done.insert(image, r.id.clone());
        out.push((svc.clone(), r.id));
    }
    Ok(out)
}

/// Before `up`: builds the images of `services` that have a `build:` section and need it:
/// all of them with `--build`, those with `pull_policy: build`, and those whose image is
/// missing unless `--no-build` (then the planner reports the missing image).
pub async fn build_for_up(
    engine: &berth_runtime::Engine,
    p: &compose_spec::model::Project,
    services: &[String],
    build: bool,
    no_build: bool,
    progress: &str,
) -> anyhow::Result<()> {
    let mut todo = Vec::new();
    for svc in services {
        let Some(s) = p.services.get(svc) else { continue };
        if s.build.is_none() {
            continue;
        }
        let policy_build = s.pull_policy.as_deref() == Some("build");
        let needed = build
            || policy_build
            || (!no_build
                && matches!(
                    engine.image_inspect(p.image_name(svc)).await,
                    Err(berth_image::ImageError::NoSuchImage(_))
                ));
        if needed {
            todo.push(svc.clone());
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let o = ComposeBuild {
        quiet: progress == "quiet",
        json: progress == "json",
        session: session(),
        ..Default::default()
    };
    interruptible(engine, &o.session, compose_build(engine, p, &todo, &o)).await?;
    Ok(())
}
