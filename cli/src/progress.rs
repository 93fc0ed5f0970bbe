//! Progress output of the compose commands, as compose v2 prints it on stderr: `plain` lines,
//! one JSON object per event (`json`), nothing (`quiet`), or on a terminal (`tty`, or `auto`
//! when stderr is one) a block of one line per resource with its state and elapsed time,
//! redrawn in place under a `[+] Running N/M` header.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_planner::{Event, Progress};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn block (terminal).
    Tty,
    /// One line per event.
    Plain,
    /// One JSON object per event.
    Json,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// The mode for `--progress` and `--ansi` values (`auto`: tty when stderr is a terminal
    /// and colours are not turned off).
    pub fn choose(progress: &str, ansi: &str) -> Mode {
        match progress {
            "tty" => Mode::Tty,
            "plain" => Mode::Plain,
            "json" => Mode::Json,
            "quiet" => Mode::Quiet,
            _ if ansi != "never" && std::io::stderr().is_terminal() => Mode::Tty,
            _ => Mode::Plain,
        }
    }
}

/// A progress sink for `mode`.
pub fn sink(mode: Mode, dry_run: bool) -> Progress {
    let prefix = if dry_run { " DRY-RUN MODE - " } else { "" };
    match mode {
        Mode::Quiet => berth_planner::no_progress(),
        Mode::Json => Arc::new(move |e: Event| {
            let _ = writeln!(std::io::stderr().lock(), "{}", json_line(&e, dry_run));
        }),
        Mode::Plain => Arc::new(move |e: Event| {
            let _ =
                writeln!(std::io::stderr().lock(), "{prefix} {} {}  {}", e.kind, e.name, e.status);
        }),
        Mode::Tty => {
            let state = tty_state();
            Arc::new(move |e: Event| {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.block.dry_run = dry_run;
                s.block.update(e, Instant::now());
                s.redraw();
            })
        }
    }
}

/// Ends the current terminal block (final redraw; the clock stops) so other output can follow.
/// The next event starts a new block. Nothing happens in the other modes.
pub fn finish() {
    if let Some(state) = TTY.get() {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if !s.block.entries.is_empty() {
            s.redraw();
        }
        s.block = Block::default();
        s.drawn = 0;
    }
}

/// One event as compose's JSON progress line: `id`, `text` (the state word) and `dry-run`
/// only when set, as compose; plus `status` (= `text`, compose puts detail there) and `done`.
fn json_line(e: &Event, dry_run: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": format!("{} {}", e.kind, e.name),
        "text": e.status,
        "status": e.status,
        "done": e.done,
    });
    if dry_run {
        v["dry-run"] = serde_json::Value::Bool(true);
    }
    v
}

/// One resource's line.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    status: String,
    started: Instant,
    ended: Option<Instant>,
}

/// The resources of one command, in first-seen order.
#[derive(Debug, Clone, Default)]
pub struct Block {
    entries: Vec<Entry>,
    dry_run: bool,
}

/// compose's spinner frames for resources still being worked on.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Block {
    /// Records an event seen at `now`.
    pub fn update(&mut self, e: Event, now: Instant) {
        let id = format!("{} {}", e.kind, e.name);
        let entry = match self.entries.iter_mut().position(|x| x.id == id) {
            Some(i) => &mut self.entries[i],
            None => {
                self.entries.push(Entry { id, status: String::new(), started: now, ended: None });
                let last = self.entries.len() - 1;
                &mut self.entries[last]
            }
        };
        // A resource worked on again (stopped, then removed) restarts its clock.
        if entry.ended.is_some() && !e.done {
            entry.started = now;
        }
        entry.status = e.status;
        entry.ended = e.done.then_some(now);
    }

    /// Whether some resource is still being worked on.
    pub fn working(&self) -> bool {
        self.entries.iter().any(|e| e.ended.is_none())
    }

    /// The block's lines at `now` (header first), without colours.
    pub fn render(&self, now: Instant) -> Vec<String> {
        // A block of images and their layers is a pull (or push): compose counts the images.
        let images = |e: &&Entry| e.id.starts_with("Image ");
        let pulling = !self.entries.is_empty()
            && self
                .entries
                .iter()
                .all(|e| e.id.starts_with("Image ") || e.id.starts_with("Layer "));
        let (verb, counted): (&str, Vec<&Entry>) = if pulling {
            let pushing = self.entries.iter().any(|e| e.status.starts_with("Push"));
            let verb = if pushing { "Pushing" } else { "Pulling" };
            (verb, self.entries.iter().filter(images).collect())
        } else {
            ("Running", self.entries.iter().collect())
        };
        let done = counted.iter().filter(|e| e.ended.is_some()).count();
        let mut out = vec![format!("[+] {verb} {done}/{}", counted.len())];
        let id_w = self.entries.iter().map(|e| e.id.chars().count()).max().unwrap_or(0);
        let st_w = self.entries.iter().map(|e| e.status.chars().count()).max().unwrap_or(0);
        // The spinner turns every 100 ms from the block's first event.
        let epoch = self.entries.first().map(|e| e.started).unwrap_or(now);
        let frame = (now.saturating_duration_since(epoch).as_millis() / 100) as usize;
        for e in &self.entries {
            let elapsed = e.ended.unwrap_or(now).saturating_duration_since(e.started);
            let icon = match e.ended {
                Some(_) if e.status == "Error" => "✘",
                Some(_) => "✔",
                None => SPINNER[frame % SPINNER.len()],
            };
            let dry = if self.dry_run { "DRY-RUN MODE - " } else { "" };
            out.push(format!(
                " {icon} {dry}{:id_w$}  {:st_w$}  {:>5.1}s",
                e.id,
                e.status,
                elapsed.as_secs_f64()
            ));
        }
        out
    }
}

/// The terminal block and how many lines of it are on screen.
struct TtyState {
    block: Block,
    drawn: usize,
}

impl TtyState {
    /// Moves up over the lines drawn before and writes the block again.
    fn redraw(&mut self) {
        let lines = self.block.render(Instant::now());
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            buf.push_str("\x1b[2K");
            buf.push_str(l);
            buf.push('\n');
        }
        self.drawn = lines.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(buf.as_bytes());
        let _ = err.flush();
    }
}

static TTY: OnceLock<Arc<Mutex<TtyState>>> = OnceLock::new();

/// The process's terminal block, with a clock thread that redraws it every 100 ms while a
/// resource is being worked on (so elapsed times move during long waits).
fn tty_state() -> Arc<Mutex<TtyState>> {
    TTY.get_or_init(|| {
        let state = Arc::new(Mutex::new(TtyState { block: Block::default(), drawn: 0 }));
        let clock = state.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let mut s = clock.lock().unwrap_or_else(|p| p.into_inner());
                if s.block.working() {
                    s.redraw();
                }
            }
        });
        state
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, status: &str, done: bool) -> Event {
        Event { kind: "Container", name: name.into(), status: status.into(), done }
    }

    /// A recorded `up` of two services: lines keep first-seen order, finished ones get a tick
    /// and their frozen elapsed time, running ones a spinner and a moving clock.
    #[test]
    fn renders_a_recorded_up() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Block::default();
        b.update(ev("p-db-1", "Creating", false), ms(0));
        b.update(ev("p-web-1", "Creating", false), ms(10));
        b.update(ev("p-db-1", "Created", false), ms(100));
        b.update(ev("p-db-1", "Starting", false), ms(110));
        let lines = b.render(ms(200));
        assert_eq!(lines[0], "[+] Running 0/2");
        assert!(lines[1].ends_with("Container p-db-1   Starting    0.2s"), "{lines:?}");
        assert!(!lines[1].starts_with(" ✔"), "{lines:?}");
        assert!(b.working());
        b.update(ev("p-db-1", "Started", true), ms(300));
        b.update(ev("p-web-1", "Started", true), ms(510));
        let lines = b.render(ms(2000));
        assert_eq!(
            lines,
            vec![
                "[+] Running 2/2".to_string(),
                " ✔ Container p-db-1   Started    0.3s".to_string(),
                " ✔ Container p-web-1  Started    0.5s".to_string(),
            ]
        );
        assert!(!b.working());
        // Worked on again (down after up): the clock restarts.
        b.update(ev("p-web-1", "Stopping", false), ms(3000));
        let lines = b.render(ms(3100));
        assert_eq!(lines[0], "[+] Running 1/2");
        assert!(lines[2].ends_with("Container p-web-1  Stopping    0.1s"), "{lines:?}");
    }

    #[test]
    fn a_pull_block_counts_images() {
        let t0 = Instant::now();
        let mut b = Block::default();
        let e = |kind, name: &str, status: &str, done| Event {
            kind,
            name: name.into(),
            status: status.into(),
            done,
        };
        b.update(e("Image", "reg/a:1", "Pulling", false), t0);
        b.update(e("Layer", "0123456789ab", "Downloading 1.0MB/2.0MB", false), t0);
        assert_eq!(b.render(t0)[0], "[+] Pulling 0/1");
        b.update(e("Layer", "0123456789ab", "Pull complete", true), t0);
        b.update(e("Image", "reg/a:1", "Pulled", true), t0);
        assert_eq!(b.render(t0)[0], "[+] Pulling 1/1");
        b.update(e("Container", "p-a-1", "Created", true), t0);
        assert_eq!(b.render(t0)[0], "[+] Running 3/3");
    }

    #[test]
    fn json_lines_have_compose_fields() {
        let v = json_line(&ev("p-web-1", "Started", true), false);
        assert_eq!(v["id"], "Container p-web-1");
        assert_eq!(v["text"], "Started");
        assert_eq!(v["status"], "Started");
        assert_eq!(v["done"], true);
        assert!(v.get("dry-run").is_none());
        assert_eq!(json_line(&ev("p-web-1", "Started", true), true)["dry-run"], true);
    }

    #[test]
    fn explicit_modes() {
        assert_eq!(Mode::choose("json", "auto"), Mode::Json);
        assert_eq!(Mode::choose("plain", "always"), Mode::Plain);
        assert_eq!(Mode::choose("quiet", "auto"), Mode::Quiet);
        assert_eq!(Mode::choose("tty", "never"), Mode::Tty);
    }
}
