//! Printing containers' logs with `service-N  | ` prefixes: once for each container, or followed
//! across container changes (`logs -f`, attached `up`). Following lists the project's containers
//! every 200 ms, so replicas added by `--scale`, containers recreated by another `up` and
//! containers restarted by `restart` or `start` are picked up (compose loses them). A restarted
//! container continues after the last line shown.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_planner::labels;
use berth_planner::observe::{self, Observed};
use berth_runtime::Engine;
use berth_runtime::container::LogsOptions;
use tokio::sync::mpsc;

/// How often the project's containers are listed.
const POLL: Duration = Duration::from_millis(200);

/// How long nothing may run before following ends (a `restart` stops and starts again).
const IDLE_END: Duration = Duration::from_secs(1);

/// How log lines are printed.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogStyle {
    /// `name  | ` prefixes.
    pub(super) prefix: bool,
    /// The entry's timestamp before the text.
    pub(super) timestamps: bool,
    /// Coloured prefixes.
    pub(super) color: bool,
}

/// The log prefix of a container: `service-N` for compose-named ones, else the name.
pub(super) fn prefix_of(c: &Observed) -> String {
    let project = c.summary.labels.get(labels::PROJECT).cloned().unwrap_or_default();
    c.name.strip_prefix(&format!("{project}-")).unwrap_or(&c.name).to_string()
}

/// The `name  | ` prefix of the `i`-th container followed.
pub(super) fn prefix_for(c: &Observed, i: usize, width: usize, style: LogStyle) -> String {
    match (style.prefix, style.color) {
        (false, _) => String::new(),
        (true, false) => format!("{:width$}  | ", prefix_of(c)),
        // compose cycles through bright colours per container.
        (true, true) => {
            let code = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94][i % 10];
            format!("\x1b[{code}m{:width$}  |\x1b[0m ", prefix_of(c))
        }
    }
}

/// Where a container's output was left: the last entry's time and how many entries with
/// that time were shown (several lines can share a timestamp).
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    time_ns: i128,
    count: usize,
}

/// One container being followed.
struct Followed {
    /// Colour slot.
    index: usize,
    prefix: String,
    streaming: bool,
    mark: Arc<Mutex<Option<Mark>>>,
}

/// When following ends besides "nothing runs any more".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndOn {
    /// Only when no selected container has run for `IDLE_END` and every stream ended.
    Idle,
    /// Also when the first container stops (`--abort-on-container-exit`).
    AnyExit,
    /// Also when a container stops with a non-zero code (`--abort-on-container-failure`).
    Failure,
}

/// Follows the logs of the project's containers that `select` accepts, starting with
/// `initial` (with `opts`; containers that appear later are shown from `opts.since`, or
/// whole). Returns when no selected container has run for `IDLE_END` and every stream ended,
/// or as `end_on` says, with the id of the container that stopped.
pub(super) async fn follow(
    engine: &Engine,
    project: &str,
    initial: &[Observed],
    select: &(dyn Fn(&Observed) -> bool + Sync),
    opts: LogsOptions,
    style: LogStyle,
    end_on: EndOn,
) -> Option<String> {
    let mut width = initial.iter().map(|c| prefix_of(c).len()).max().unwrap_or(0);
    let out = Arc::new(Mutex::new(()));
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<String>();
    let mut known: HashMap<String, Followed> = HashMap::new();
    let later = LogsOptions { tail: None, ..opts.clone() };
    let mut idle_since: Option<Instant> = None;
    let mut pending: Vec<Observed> = initial.to_vec();
    let mut first_round = true;
    loop {
        // Start streams for new containers and for known ones that run again.
        for c in pending.drain(..) {
            // Nothing to show before a start (a recreate's replacement is created under a
            // temporary name, renamed, then started).
            if c.state == "created" {
                continue;
            }
            width = width.max(prefix_of(&c).len());
            let (o, mark) = match known.get_mut(&c.id) {
                None => {
                    let index = known.len();
                    let prefix = prefix_for(&c, index, width, style);
                    let mark = Arc::new(Mutex::new(None));
                    known.insert(
                        c.id.clone(),
                        Followed { index, prefix, streaming: false, mark: mark.clone() },
                    );
                    (if first_round { opts.clone() } else { later.clone() }, mark)
                }
                Some(f) if f.streaming => continue,
                Some(f) => {
                    // Renamed since (a recreate's replacement): the prefix follows the name.
                    f.prefix = prefix_for(&c, f.index, width, style);
                    let last = *f.mark.lock().unwrap_or_else(|p| p.into_inner());
                    let since = last.map(|m| m.time_ns).or(later.since);
                    (LogsOptions { since, ..later.clone() }, f.mark.clone())
                }
            };
            let Ok(rx) = engine.container_logs(&c.id, o).await else { continue };
            let Some(f) = known.get_mut(&c.id) else { continue };
            f.streaming = true;
            let (prefix, out, done) = (f.prefix.clone(), out.clone(), ended_tx.clone());
            let (id, ts) = (c.id.clone(), style.timestamps);
            tokio::spawn(async move {
                pump(rx, &prefix, ts, &out, &mark).await;
                let _ = done.send(id);
            });
        }
        first_round = false;
        tokio::select! {
            Some(id) = ended_rx.recv() => {
                if let Some(f) = known.get_mut(&id) {
                    f.streaming = false;
                }
                if end_on != EndOn::Idle {
                    let state = engine.container_inspect(&id).await.map(|i| i.state);
                    let (running, code) = state
                        .map(|s| (s.running || s.restarting, s.exit_code))
                        .unwrap_or((false, 0));
                    if !running && (end_on == EndOn::AnyExit || code != 0) {
                        return Some(id);
                    }
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        // Look at the project again.
        let Ok(now) = observe::containers(engine, project).await else { continue };
        let selected: Vec<Observed> = now.into_iter().filter(|c| select(c)).collect();
        let mut any_running = false;
        for c in selected.into_iter().filter(|c| c.state != "created") {
            let running = c.is_running();
            any_running |= running;
            match known.get(&c.id) {
                None => pending.push(c),
                Some(f) if !f.streaming && running => pending.push(c),
                Some(_) => {}
            }
        }
        let streaming = known.values().any(|f| f.streaming);
        if any_running || streaming || !pending.is_empty() {
            idle_since = None;
        } else if end_on == EndOn::AnyExit {
            // Nothing left to stop first.
            return None;
        } else {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_END {
                return None;
            }
        }
    }
}

/// Prints one stream's entries with `prefix` until it ends, keeping `mark` at the last one.
async fn pump(
    mut rx: mpsc::Receiver<berth_runtime::logs::LogEntry>,
    prefix: &str,
    timestamps: bool,
    out: &Mutex<()>,
    mark: &Mutex<Option<Mark>>,
) {
    // A continuation starts at the last time shown: skip what was shown at that time.
    let mut skip = mark.lock().unwrap_or_else(|p| p.into_inner()).map(|m| (m.time_ns, m.count));
    while let Some(e) = rx.recv().await {
        if let Some((t, n)) = skip.as_mut() {
            if e.time_ns == *t && *n > 0 {
                *n -= 1;
                continue;
            }
            skip = None;
        }
        {
            let mut m = mark.lock().unwrap_or_else(|p| p.into_inner());
            *m = Some(match *m {
                Some(Mark { time_ns, count }) if time_ns == e.time_ns => {
                    Mark { time_ns, count: count + 1 }
                }
                _ => Mark { time_ns: e.time_ns, count: 1 },
            });
        }
        let text = if timestamps { format!("{} {}", e.time, e.text) } else { e.text };
        let mut line = format!("{prefix}{text}");
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let _g = out.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(line.as_bytes());
        let _ = o.flush();
    }
}

/// Streams the logs of `targets` with `name  | ` prefixes; returns when every stream ended, or
/// with `first`, when the first one ended (with that container's id).
pub(super) async fn stream_logs(
    engine: &Engine,
    targets: &[Observed],
    opts: LogsOptions,
    style: LogStyle,
    first: bool,
) -> Option<String> {
    let width = targets.iter().map(|c| prefix_of(c).len()).max().unwrap_or(0);
    let out = Arc::new(Mutex::new(()));
    let mut tasks = tokio::task::JoinSet::new();
    let timestamps = style.timestamps;
    for (i, c) in targets.iter().enumerate() {
        let Ok(mut rx) = engine.container_logs(&c.id, opts.clone()).await else { continue };
        let pfx = prefix_for(c, i, width, style);
        let out = out.clone();
        let id = c.id.clone();
        tasks.spawn(async move {
            while let Some(e) = rx.recv().await {
                let text = if timestamps { format!("{} {}", e.time, e.text) } else { e.text };
                let _g = out.lock();
                let mut line = format!("{pfx}{text}");
                if !line.ends_with('\n') {
                    line.push('\n');
                }
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(line.as_bytes());
                let _ = o.flush();
            }
            id
        });
    }
    while let Some(done) = tasks.join_next().await {
        if first {
            return done.ok();
        }
    }
    None
}
