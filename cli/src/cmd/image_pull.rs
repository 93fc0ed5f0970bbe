//! `berth image pull` and `berth image push`, with docker's output: one line per layer,
//! redrawn in place on a terminal, plain lines for each change otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::registry::{self, Platform, Progress, PullOptions, PushOptions};
use berth_image::{ImageStore, Reference};
use berth_store::StateRoot;

use super::EngineOpts;

/// `berth image pull` flags.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Image to pull (`name[:tag]`, `name@sha256:…`).
    pub image: String,
    /// Platform to pick from a multi-platform image (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Download all tagged images in the repository.
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Accepted for docker compatibility; berth does not verify signatures.
    #[arg(long, hide = true)]
    pub disable_content_trust: bool,
}

/// `berth image push` flags.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Image to push (`name[:tag]`).
    pub image: String,
    /// Suppress verbose output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Accepted for docker compatibility; berth does not sign images.
    #[arg(long, hide = true)]
    pub disable_content_trust: bool,
}

/// Per-layer lines, as `docker pull` and `docker push` print them.
pub struct LayerLines {
    tty: bool,
    push: bool,
    /// On stderr (`run`'s pull: stdout is the container's).
    stderr: bool,
    state: Mutex<LinesState>,
}

#[derive(Default)]
struct LinesState {
    order: Vec<String>,
    text: HashMap<String, String>,
    drawn: usize,
    last: Option<Instant>,
}

/// `[=====>      ]  1.2MB/4.5MB` like docker's progress bar.
fn bar(current: u64, total: Option<u64>) -> String {
    let size = super::human::human_size;
    match total {
        Some(t) if t > 0 => {
            let width = 50;
            let filled = ((current.min(t) as u128 * width as u128) / t as u128) as usize;
            let mut b = "=".repeat(filled.saturating_sub(1));
            if filled > 0 {
                b.push(if filled < width { '>' } else { '=' });
            }
            format!("[{b:<width$}]  {}/{}", size(current), size(t))
        }
        _ => size(current),
    }
}

impl LayerLines {
    /// Lines on stdout, redrawn in place when it is a terminal.
    pub fn new(push: bool) -> Arc<LayerLines> {
        Arc::new(LayerLines {
            tty: std::io::stdout().is_terminal(),
            push,
            stderr: false,
            state: Mutex::new(LinesState::default()),
        })
    }

    /// Pull lines on stderr.
    pub fn on_stderr() -> Arc<LayerLines> {
        Arc::new(LayerLines {
            tty: std::io::stderr().is_terminal(),
            push: false,
            stderr: true,
            state: Mutex::new(LinesState::default()),
        })
    }

    fn line(&self, text: &str) {
        if self.stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// The sink to hand to a pull or push.
    pub fn sink(self: &Arc<Self>) -> registry::ProgressSink {
        let me = self.clone();
        Arc::new(move |p| me.event(p))
    }

    fn event(&self, p: Progress) {
        let Ok(mut st) = self.state.lock() else { return };
        let (id, text, is_bytes) = match p {
            Progress::Layers(ids) => {
                for id in ids {
                    let first = if self.push { "Preparing" } else { "Pulling fs layer" };
                    if self.set(&mut st, &id, first.to_string()) && !self.tty {
                        self.line(&format!("{id}: {first}"));
                    }
                }
                self.draw(&mut st, true);
                return;
            }
            Progress::Exists(id) => {
                let t = if self.push { "Layer already exists" } else { "Already exists" };
                (id, t.to_string(), false)
            }
            Progress::Waiting(id) => (id, "Waiting".to_string(), false),
            Progress::Bytes { id, current, total } => {
                let verb = if self.push { "Pushing" } else { "Downloading" };
                (id, format!("{verb}  {}", bar(current, total)), true)
            }
            Progress::Done(id) => {
                (id, if self.push { "Pushed" } else { "Pull complete" }.to_string(), false)
            }
            Progress::Mounted { id, from } => (id, format!("Mounted from {from}"), false),
            Progress::Failed(id) => (id, "Failed".to_string(), false),
        };
        let changed = self.set(&mut st, &id, text.clone());
        if self.tty {
            self.draw(&mut st, !is_bytes);
        } else if changed && !is_bytes {
            self.line(&format!("{id}: {text}"));
        }
    }

    /// Sets a layer's text; whether it changed.
    fn set(&self, st: &mut LinesState, id: &str, text: String) -> bool {
        if !st.text.contains_key(id) {
            st.order.push(id.to_string());
        }
        st.text.insert(id.to_string(), text.clone()) != Some(text)
    }

    /// Redraws every line (at most every 100 ms unless `force`).
    fn draw(&self, st: &mut LinesState, force: bool) {
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if !force && st.last.is_some_and(|l| now.duration_since(l) < Duration::from_millis(100)) {
            return;
        }
        st.last = Some(now);
        let mut buf = String::new();
        if st.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for id in &st.order {
            let t = st.text.get(id).map(String::as_str).unwrap_or_default();
            buf.push_str(&format!("\x1b[2K{id}: {t}\n"));
        }
        st.drawn = st.order.len();
        if self.stderr {
            let mut out = std::io::stderr().lock();
            let _ = out.write_all(buf.as_bytes());
            let _ = out.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(buf.as_bytes());
            let _ = out.flush();
        }
    }

    /// Draws the final state.
    pub fn finish(&self) {
        if let Ok(mut st) = self.state.lock() {
            self.draw(&mut st, true);
        }
    }
}

/// A runtime for registry work: downloads run on it, unpacking on its blocking pool.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn open(engine: &EngineOpts) -> anyhow::Result<ImageStore> {
    Ok(ImageStore::open(&StateRoot::open(&engine.root)?)?)
}

/// `docker pull`.
pub fn run_pull(engine: &EngineOpts, args: PullArgs) -> anyhow::Result<ExitCode> {
    let store = open(engine)?;
    if args.all_tags {
        return pull_all_tags(&store, &args);
    }
    let lines = (!args.quiet).then(|| LayerLines::new(false));
    let full =
        runtime()?.block_on(pull_image(&store, &args.image, args.platform.as_deref(), lines))?;
    println!("{full}");
    Ok(ExitCode::SUCCESS)
}

/// `docker pull --all-tags REPOSITORY`: every tag the registry lists, one after the other.
fn pull_all_tags(store: &ImageStore, args: &PullArgs) -> anyhow::Result<ExitCode> {
    let last = args.image.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || args.image.contains('@') {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    let r = Reference::parse(&args.image)?;
    let rt = runtime()?;
    let tags = rt.block_on(registry::list_tags(&args.image, None))?;
    if tags.is_empty() {
        anyhow::bail!("the registry lists no tags for {}", r.familiar_name());
    }
    for tag in tags {
        let one = r.with_tag(&tag).to_string();
        let lines = (!args.quiet).then(|| LayerLines::new(false));
        rt.block_on(pull_image(store, &one, args.platform.as_deref(), lines))?;
    }
    println!("{}", r.repository());
    Ok(ExitCode::SUCCESS)
}

/// Pulls `image` with docker's lines on `lines` (None: silent); the fully qualified reference.
pub async fn pull_image(
    store: &ImageStore,
    image: &str,
    platform: Option<&str>,
    lines: Option<Arc<LayerLines>>,
) -> anyhow::Result<String> {
    let r = Reference::parse(image)?;
    let platform = platform.map(Platform::parse).transpose()?;
    if let Some(l) = &lines {
        let last = image.rsplit('/').next().unwrap_or_default();
        if r.digest.is_none() && !last.contains(':') {
            l.line(&format!("Using default tag: {}", berth_image::DEFAULT_TAG));
        }
        l.line(&format!("{}: Pulling from {}", r.registry_ref(), path_shown(&r)));
    }
    let opts =
        PullOptions { platform, progress: lines.as_ref().map(|l| l.sink()), ..Default::default() };
    let rep = registry::pull(store, image, &opts).await;
    if let Some(l) = &lines {
        l.finish();
    }
    let rep = rep?;
    berth_runtime::events::image_pulled(store.state_root().path(), &r.full());
    if let Some(l) = &lines {
        l.line(&format!("Digest: {}", rep.digest));
        let status = if rep.updated { "Downloaded newer image" } else { "Image is up to date" };
        l.line(&format!("Status: {status} for {r}"));
    }
    Ok(r.full())
}

/// docker shows `library/busybox` for Docker Hub and the path for other registries.
fn path_shown(r: &Reference) -> String {
    r.path.clone()
}

/// `docker push`.
pub fn run_push(engine: &EngineOpts, args: PushArgs) -> anyhow::Result<ExitCode> {
    let store = open(engine)?;
    let r = Reference::parse_tag(&args.image)?;
    let lines = LayerLines::new(true);
    if !args.quiet {
        println!("The push refers to repository [{}]", r.repository());
    }
    let opts = PushOptions { progress: (!args.quiet).then(|| lines.sink()), ..Default::default() };
    let rep = runtime()?.block_on(registry::push(&store, &args.image, &opts));
    lines.finish();
    let rep = rep?;
    if args.quiet {
        println!("{}", r.full());
    } else {
        println!("{}: digest: {} size: {}", rep.tag, rep.digest, rep.size);
    }
    Ok(ExitCode::SUCCESS)
}
