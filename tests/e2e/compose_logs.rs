//! `logs -f` keeps following containers added by `--scale`, restarted, or recreated while it
//! runs (compose loses them).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::compose_support::Project;

fn compose(v: u32) -> String {
    format!(
        r#"
services:
  w:
    image: bb
    network_mode: none
    environment:
      V: "{v}"
    command: ["sh", "-c", "echo started v=$$V; trap 'exit 0' TERM; sleep 3600 & wait"]
"#
    )
}

/// A background berth whose stdout and stderr are collected; killed on drop.
pub struct Follower {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

/// Appends everything read from `from` to `to` until end-of-file.
fn collect(mut from: impl Read + Send + 'static, to: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

impl Follower {
    /// Starts `berth --root R -p NAME ARGS...` in the project directory.
    pub fn start(p: &Project, args: &[&str]) -> Self {
        let mut child = Command::new(crate::support::berth_bin())
            .current_dir(p.path())
            .args(["--root", p.env.path().to_str().expect("root"), "-p", &p.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let (out, err) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        collect(child.stdout.take().expect("stdout"), out.clone());
        collect(child.stderr.take().expect("stderr"), err.clone());
        Follower { child, out, err }
    }

    /// Its stdout so far.
    pub fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Its stderr so far.
    pub fn errors(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// How many stdout lines equal `line`.
    pub fn count(&self, line: &str) -> usize {
        self.text().lines().filter(|l| *l == line).count()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn compose_logs_follow_sees_scale_restart_and_recreate() {
    let Some(p) = Project::new("clogs", &compose(1)) else { return };
    p.ok(&["up", "-d"]);
    let f = Follower::start(&p, &["logs", "-f"]);
    p.wait_for("w-1's first line", 10, || f.count("w-1  | started v=1") == 1);

    // A replica added by scale while following.
    p.ok(&["up", "-d", "--scale", "w=2"]);
    p.wait_for("the new replica's line", 10, || f.count("w-2  | started v=1") == 1);

    // Both restarted: their new output continues, the old lines are not shown again.
    p.ok(&["restart", "-t", "2", "w"]);
    p.wait_for("lines after the restart", 10, || {
        f.count("w-1  | started v=1") == 2 && f.count("w-2  | started v=1") == 2
    });

    // Recreated (new containers under the same names) by a changed file.
    p.write(&compose(2));
    p.ok(&["up", "-d", "--scale", "w=2"]);
    p.wait_for("the recreated containers' lines", 10, || {
        f.count("w-1  | started v=2") == 1 && f.count("w-2  | started v=2") == 1
    });
    let text = f.text();
    assert_eq!(f.count("w-1  | started v=1"), 2, "{text}");
    assert!(text.lines().all(|l| l.starts_with("w-1  | ") || l.starts_with("w-2  | ")), "{text}");
}

#[test]
fn compose_attached_up_follows_scaled_replicas() {
    let Some(p) = Project::new("clogs2", &compose(1)) else { return };
    let f = Follower::start(&p, &["up"]);
    p.wait_for("w-1's line in attached up", 15, || f.count("w-1  | started v=1") == 1);
    p.ok(&["up", "-d", "--scale", "w=2"]);
    p.wait_for("the new replica in attached up", 10, || f.count("w-2  | started v=1") == 1);
}

/// A `logs -f` running across `down` shows what the containers print while they stop, to the
/// last line, even when it reads them only after the containers were removed: removal deletes
/// a container's log instead of recycling it with the directory, so a follower still holding
/// the file reads it to its end.
#[test]
fn compose_logs_follow_keeps_the_last_lines_printed_during_down() {
    let compose = r#"
services:
  w:
    image: bb
    network_mode: none
    command: ["sh", "-c", "echo up; trap 'for i in $(seq 1 300); do echo bye $$i; done; exit 0' TERM; sleep 3600 & wait"]
"#;
    let Some(p) = Project::new("clogsdown", compose) else { return };
    p.ok(&["up", "-d", "--scale", "w=2"]);
    let mut f = Follower::start(&p, &["logs", "-f"]);
    p.wait_for("both replicas' first line", 10, || {
        f.count("w-1  | up") == 1 && f.count("w-2  | up") == 1
    });
    // Stopped while `down` runs, so it can only read the last lines after the containers (and
    // their directories) are gone.
    let pid = f.child.id().to_string();
    let signal =
        |sig: &str| assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    signal("-STOP");
    p.ok(&["down", "-t", "5"]);
    signal("-CONT");
    p.wait_for("logs -f to end after down", 10, || matches!(f.child.try_wait(), Ok(Some(_))));
    // Its output threads finish at end-of-file, just after the process.
    p.wait_for("the last lines", 5, || {
        f.count("w-1  | bye 300") == 1 && f.count("w-2  | bye 300") == 1
    });
    let text = f.text();
    for w in ["w-1", "w-2"] {
        let byes = text.lines().filter(|l| l.starts_with(&format!("{w}  | bye "))).count();
        assert_eq!(byes, 300, "{w}: {text}");
    }
}
