//! `berth build` / `berth image build` (docker's `build`, here) and compose's `build [SERVICE...]`
//! (`compose`), `berth container commit` (`commit`) and `berth builder prune` (`prune`), on the
//! builder crate (berth-builder).

mod commit;
mod compose;
mod prune;

pub use commit::{CommitArgs, commit};
pub use compose::build_for_up;
pub use prune::{BuilderCommand, builder};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use berth_builder::{BuildError, BuildOptions, Event, Progress};

use super::engine_access::engine;
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
    /// Always pull FROM and --from images (else only missing ones are pulled).
    #[arg(long)]
    pull: bool,
    /// Secret to expose to RUN --mount=type=secret (`id=ID,src=PATH`).
    #[arg(long)]
    secret: Vec<String>,
    /// SSH agent socket for RUN --mount=type=ssh (`default` for $SSH_AUTH_SOCK, or `ID=SOCKET`).
    #[arg(long)]
    ssh: Vec<String>,
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

/// Build steps in compose's terminal block (`crate::progress`): one line per step with its
/// state and time; a running RUN shows its latest output line as its state.
struct TtyBuild {
    sink: berth_planner::Progress,
    names: Mutex<std::collections::HashMap<usize, String>>,
}

/// `s` cut to `n` characters (an ellipsis marks the cut).
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

impl TtyBuild {
    fn emit(&self, name: Option<&String>, status: String, done: bool) {
        if let Some(name) = name {
            (self.sink)(berth_planner::Event { kind: "Step", name: name.clone(), status, done });
        }
    }
}

impl Progress for TtyBuild {
    fn event(&self, e: Event) {
        let Ok(mut names) = self.names.lock() else { return };
        match e {
            Event::Step { n, stage, text } => {
                names.insert(n, shorten(&format!("{n} {stage} {text}"), 72));
                self.emit(names.get(&n), "Running".into(), false);
            }
            Event::Cached { n } => self.emit(names.get(&n), "CACHED".into(), true),
            Event::Output { n, line } => {
                self.emit(names.get(&n), format!("> {}", shorten(line.trim(), 48)), false)
            }
            Event::Done { n, .. } => self.emit(names.get(&n), "Done".into(), true),
            Event::Warning(w) => {
                crate::progress::finish();
                eprintln!("{w}");
            }
        }
    }
}

/// The progress printer for a `--progress` value (`auto`: the terminal block when stderr is
/// a terminal and `ansi` allows it, else plain lines).
fn printer(progress: &str, ansi: &str, quiet: bool) -> Arc<dyn Progress> {
    use crate::progress::Mode;
    let mode = match progress {
        _ if quiet => Mode::Quiet,
        "rawjson" => Mode::Json,
        p => Mode::choose(p, ansi),
    };
    match mode {
        Mode::Tty => Arc::new(TtyBuild {
            sink: crate::progress::sink(Mode::Tty, false),
            names: Mutex::new(std::collections::HashMap::new()),
        }),
        m => Arc::new(Plain {
            quiet: m == Mode::Quiet,
            json: m == Mode::Json,
            out: Mutex::new(std::io::stderr()),
        }),
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
    ExitWith { code: crate::cmd::EXIT_USAGE, message: format!("berth: {message}") }.into()
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

/// `64m`, `1g`, `4096`: bytes (powers of 1024), as the builder's `--mount size=` reads them.
fn parse_bytes(s: &str) -> Option<i64> {
    berth_builder::mounts::parse_bytes(s).and_then(|n| i64::try_from(n).ok())
}

/// `--ssh` / compose `build.ssh` values: `default` (or `ID`) is $SSH_AUTH_SOCK, `ID=SOCKET` a
/// socket; only agent sockets are supported (not key files).
pub(crate) fn parse_ssh(values: &[String]) -> Result<Vec<(String, PathBuf)>, String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for v in values {
        let (id, path) = match v.split_once('=') {
            Some((id, p)) => (id.to_string(), PathBuf::from(p)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(s) => (v.clone(), PathBuf::from(s)),
                None => return Err(format!("--ssh {v}: SSH_AUTH_SOCK is not set")),
            },
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.file_type().is_socket() => out.push((id, path)),
            Ok(_) => {
                return Err(format!(
                    "--ssh {v}: {} is not an agent socket (key files are not supported)",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("--ssh {v}: {}: {e}", path.display())),
        }
    }
    Ok(out)
}

/// Whether the compose project (if any) has a service called `name`.
fn names_service(po: &ProjectOpts, name: &str) -> bool {
    crate::cmd::compose::load(po, false, &[]).is_ok_and(|p| p.services.contains_key(name))
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
    if docker { image_build(opts, a) } else { compose::compose_build_cmd(po, opts, a) }
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
        ssh: parse_ssh(&a.ssh).map_err(usage)?,
    };
    let quiet = a.quiet || a.progress == "quiet";
    let engine = engine(opts)?;
    let json = matches!(a.progress.as_str(), "json" | "rawjson");
    let progress = printer(&a.progress, "auto", quiet);
    let t0 = Instant::now();
    let rt = runtime()?;
    let s = bo.session.clone().unwrap_or_default();
    let r = rt.block_on(interruptible(&engine, &s, async {
        berth_builder::build(
            &engine,
            bo,
            progress,
            Arc::new(berth_builder::RegistrySource::default()),
        )
        .await
        .map_err(build_err)
    }));
    // The terminal block (if any) ends before the result or the error is printed.
    crate::progress::finish();
    let r = r?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// On a terminal each step is one line of compose's block: running with its latest RUN
    /// output line as its state, then CACHED or Done.
    #[test]
    fn steps_become_block_lines() {
        let seen: Arc<Mutex<Vec<berth_planner::Event>>> = Arc::default();
        let s2 = seen.clone();
        let tty = TtyBuild {
            sink: Arc::new(move |e| s2.lock().unwrap().push(e)),
            names: Mutex::new(std::collections::HashMap::new()),
        };
        tty.event(Event::Step { n: 2, stage: "[base 2/3]".into(), text: "RUN make".into() });
        tty.event(Event::Output { n: 2, line: "  compiling\n".into() });
        tty.event(Event::Done { n: 2, millis: 5 });
        tty.event(Event::Step { n: 3, stage: "[base 3/3]".into(), text: "x".repeat(100) });
        tty.event(Event::Cached { n: 3 });
        let got: Vec<(String, String, bool)> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.name.clone(), e.status.clone(), e.done))
            .collect();
        assert_eq!(got[0], ("2 [base 2/3] RUN make".into(), "Running".into(), false));
        assert_eq!(got[1].1, "> compiling");
        assert_eq!(got[2].1, "Done");
        assert!(got[2].2);
        assert_eq!(got[3].0.chars().count(), 72);
        assert!(got[3].0.ends_with('…'));
        assert_eq!((got[4].1.as_str(), got[4].2), ("CACHED", true));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("x"), None);
    }
}
