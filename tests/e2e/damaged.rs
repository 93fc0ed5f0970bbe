//! Damaged container records and interrupted starts (issue 15, items 3, 5, 6): a record that
//! can't be read never lets a live container's directory be recycled or deleted, is listed
//! (as `dead`) and warned about by file, refused by every operation but removal, removed by
//! `rm -f`/`down` (killing what still runs) and replaced by `up` without a duplicate; a CLI
//! killed while its monitors start containers lets no second start in until they are done.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::compose_support::{LONG, Project};
use crate::support::ContainerEnv;

// Start time of `pid`; None when it is gone or a zombie (the runtime's own reading).
use berth_runtime::process::process_start_time;

/// A process identified by pid and start time (a reused pid is not it).
#[derive(Debug, Clone, Copy)]
struct Proc(i32, Option<u64>);

impl Proc {
    fn of(pid: i32) -> Proc {
        let p = Proc(pid, process_start_time(pid));
        assert!(p.1.is_some(), "process {pid} is not running");
        p
    }
    fn alive(&self) -> bool {
        self.1.is_some() && process_start_time(self.0) == self.1
    }
}

/// The main process of a running container.
fn main_proc(env: &ContainerEnv, name: &str) -> Proc {
    Proc::of(env.inspect(name, "{{.State.Pid}}").parse().expect("pid"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `container ls -a --format json` rows as (name, state, status), and stderr.
fn ls_all(env: &ContainerEnv) -> (Vec<(String, String, String)>, String) {
    let out = env.run(&["container", "ls", "-a", "--format", "json"]);
    let (so, se) = text(&out);
    assert!(out.status.success(), "container ls: {se}");
    let rows = so
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).expect("ls json line");
            let s = |k: &str| j[k].as_str().unwrap_or_default().to_string();
            (s("Names"), s("State"), s("Status"))
        })
        .collect();
    (rows, se)
}

/// The directory of container `id` under the root.
fn cdir(env: &ContainerEnv, id: &str) -> PathBuf {
    env.path().join("containers").join(id)
}

/// Whether `exec NAME test -e PATH` finds the file.
fn exists_in(env: &ContainerEnv, name: &str, path: &str) -> bool {
    env.run(&["container", "exec", name, "test", "-e", path]).status.success()
}

#[test]
fn empty_state_never_lets_down_recycle_a_live_containers_directory() {
    // The container keeps a file of its root filesystem open (its writable layer in use).
    let compose = r#"
services:
  keep:
    image: bb
    network_mode: none
    command: ["sh", "-c", "exec 3>/held; trap 'exit 0' TERM; sleep 3600 & wait"]
"#;
    let Some(p) = Project::new("dmg-state", compose) else { return };
    p.ok(&["up", "-d"]);
    let name = p.cname("keep", 1);
    let id = p.id(&name);
    let old = main_proc(&p.env, &name);
    p.env.ok(&["container", "exec", &name, "sh", "-c", "echo old > /marker"]);
    let state = cdir(&p.env, &id).join("state.json");
    std::fs::write(&state, b"").expect("truncate state.json");

    // Listed as dead (still running), with a warning naming the file.
    let (rows, err) = ls_all(&p.env);
    let row = rows.iter().find(|r| r.0 == name).expect("the damaged container is listed");
    assert_eq!(row.1, "dead", "{rows:?}");
    assert!(row.2.contains("still running"), "{rows:?}");
    assert!(err.contains(&state.display().to_string()) && err.contains("is empty"), "{err}");
    // Every operation but removal refuses it, naming the file and the way out.
    for args in [
        &["container", "start", &name][..],
        &["container", "inspect", &name],
        &["container", "stop", &name],
    ] {
        let out = p.env.run(args);
        let (_, err) = text(&out);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            err.contains(&state.display().to_string()) && err.contains("rm -f"),
            "{args:?}: {err}"
        );
    }
    // A removal without force proves it alive (through its cgroup and monitor) and refuses.
    let out = p.env.run(&["container", "rm", &name]);
    let (_, err) = text(&out);
    assert!(!out.status.success(), "rm of a live damaged container must fail");
    assert!(err.contains(&name) && err.contains("still alive"), "{err}");
    assert!(old.alive() && cdir(&p.env, &id).is_dir(), "a refused removal changes nothing");

    // `down` kills it and removes it: its directory only goes once it is dead.
    p.ok(&["down"]);
    assert!(!old.alive(), "down left the damaged container's process running");
    p.env.assert_no_leftovers(&id);

    // The next container may get the recycled directory, never the old container's files.
    p.ok(&["up", "-d"]);
    let new_id = p.id(&name);
    assert_ne!(new_id, id);
    assert!(!exists_in(&p.env, &name, "/marker"), "the new container sees the old one's file");
}

#[test]
fn rm_force_of_a_damaged_live_container_kills_it_before_its_directory_goes() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("dmg-rmf");
    let cmd = "exec 3>/held; trap 'exit 0' TERM; sleep 3600 & wait";
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        cmd,
    ]);
    let id = env.id(&name);
    let old = main_proc(&env, &name);
    env.ok(&["container", "exec", &name, "sh", "-c", "echo old > /marker"]);
    std::fs::write(cdir(&env, &id).join("state.json"), b"\x00garbage\xff").expect("damage state");
    env.ok(&["container", "rm", "-f", &id[..12]]);
    assert!(!old.alive(), "rm -f left the damaged container's process running");
    env.assert_no_leftovers(&id);

    let other = berth_testsupport::unique_name("dmg-rmf2");
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &other,
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        cmd,
    ]);
    assert!(!exists_in(&env, &other, "/marker"), "the new container sees the old one's file");
    env.ok(&["container", "exec", &other, "sh", "-c", "echo new > /marker2"]);
    env.ok(&["container", "rm", "-f", &other]);
}

/// A process of the host kept in a container's mount namespace (not in its cgroup): killed on
/// drop.
struct Pin(Child);

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn removal_waits_until_the_root_filesystem_is_unmounted() {
    let Some(env) = ContainerEnv::new() else { return };
    let name = berth_testsupport::unique_name("dmg-pin");
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let id = env.id(&name);
    let pid = main_proc(&env, &name).0;
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("mount namespace");
    let child = Command::new("nsenter")
        .arg(format!("--mount=/proc/{pid}/ns/mnt"))
        .args(["sleep", "3600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nsenter");
    let pin = Pin(child);
    let pinned = format!("/proc/{}/ns/mnt", pin.0.id());
    env.wait_for("the pin in the container's mount namespace", 10, || {
        std::fs::read_link(&pinned).is_ok_and(|l| l == ns)
    });
    env.ok(&["container", "kill", &name]);
    env.ok(&["container", "wait", &name]);
    // Its processes and monitor are gone, but its overlay is still mounted (in the pinned
    // namespace): its upper directory must not be recycled.
    let out = env.run(&["container", "rm", &name]);
    let (_, err) = text(&out);
    assert!(!out.status.success(), "rm must refuse while the root filesystem is mounted");
    assert!(err.contains("root filesystem is still mounted") && err.contains(&name), "{err}");
    assert!(cdir(&env, &id).join("rootfs/upper").is_dir());
    drop(pin);
    // The namespace goes with its last process: then the removal goes through.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = env.run(&["container", "rm", &name]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "rm still refused: {}", text(&out).1);
        std::thread::sleep(Duration::from_millis(50));
    }
    env.assert_no_leftovers(&id);
}

/// A second compose project in the same state root, taken down on drop.
struct Other {
    root: PathBuf,
    dir: tempfile::TempDir,
    name: String,
}

impl Other {
    fn new(root: &Path, compose: &str) -> Other {
        let dir = tempfile::Builder::new().prefix("berth-proj-").tempdir().expect("dir");
        std::fs::write(dir.path().join("compose.yaml"), compose).expect("compose.yaml");
        let name = berth_testsupport::unique_name("dmg-other").to_lowercase().replace('_', "-");
        Other { root: root.to_path_buf(), dir, name }
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(crate::support::berth_bin())
            .current_dir(self.dir.path())
            .arg("--root")
            .arg(&self.root)
            .arg("-p")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("spawn berth")
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-t", "1"]);
    }
}

/// Answer addresses of a busybox `nslookup` (the server line has a tab and `:53`).
fn answers(nslookup: &str) -> Vec<String> {
    nslookup
        .lines()
        .filter_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .collect()
}

/// The damaged file of each service: (service, file, content).
const DAMAGE: [(&str, &str, &[u8]); 4] = [
    ("ce", "config.json", b""),
    ("cg", "config.json", b"\x00\x01 not json \xff"),
    ("se", "state.json", b""),
    ("sg", "state.json", b"{\"State\": garb"),
];

/// Damages the record of each service's container as `DAMAGE` says; returns (name, id,
/// main process, damaged file) of each.
fn damage_all(p: &Project) -> Vec<(String, String, Proc, PathBuf)> {
    DAMAGE
        .iter()
        .map(|(svc, file, content)| {
            let name = p.cname(svc, 1);
            let id = p.id(&name);
            let proc = main_proc(&p.env, &name);
            let path = cdir(&p.env, &id).join(file);
            std::fs::write(&path, content).expect("damage a record");
            (name, id, proc, path)
        })
        .collect()
}

#[test]
fn damaged_records_are_listed_refused_removed_and_never_duplicated() {
    let mut compose = String::from("services:\n");
    for svc in ["ce", "cg", "se", "sg", "client"] {
        compose.push_str(&format!("  {svc}:\n    image: bb\n    command: {LONG}\n"));
    }
    let Some(p) = Project::new("dmg-rec", &compose) else { return };
    p.ok(&["up", "-d"]);
    let damaged = damage_all(&p);

    // Listings: every damaged container shown dead with -a, each file named on stderr.
    let (rows, err) = ls_all(&p.env);
    for (name, _, _, file) in &damaged {
        let row = rows
            .iter()
            .find(|r| &r.0 == name)
            .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"));
        assert_eq!(row.1, "dead", "{row:?}");
        assert!(
            err.contains(&file.display().to_string()),
            "no warning for {}: {err}",
            file.display()
        );
    }
    // `ps` of the project lists them too (those that lost their labels by their names).
    let (so, _) = p.ok(&["ps", "-a", "--format", "json"]);
    for (name, ..) in &damaged {
        assert!(so.contains(&format!("\"{name}\"")), "ps -a misses {name}: {so}");
    }
    // `ps` without -a leaves dead containers out but still says which records are damaged.
    let (so, se) = p.ok(&["ps"]);
    for (name, _, _, file) in &damaged {
        assert!(!so.contains(name.as_str()), "{so}");
        assert!(se.contains(&file.display().to_string()), "{se}");
    }
    // By name and by id, every operation but removal names the file.
    for (name, id, _, file) in &damaged {
        for key in [name, id] {
            let out = p.env.run(&["container", "inspect", key]);
            let (_, err) = text(&out);
            assert!(!out.status.success() && err.contains(&file.display().to_string()), "{err}");
        }
    }
    // Another project in the root is not blocked by them.
    let other = Other::new(
        &p.env.path(),
        &format!("services:\n  x:\n    image: bb\n    command: {LONG}\n"),
    );
    for args in [&["up", "-d"][..], &["ps"], &["down", "-t", "1"]] {
        let out = other.run(args);
        assert!(out.status.success(), "other project {args:?}: {}", text(&out).1);
    }

    // `down` kills and removes them all.
    p.ok(&["down", "-t", "1"]);
    for (name, id, proc, _) in &damaged {
        assert!(!proc.alive(), "down left {name} running");
        p.env.assert_no_leftovers(id);
    }

    // Damaged again: `rm -f` by name and by id prefix, then `up` replaces those left.
    p.ok(&["up", "-d"]);
    let damaged = damage_all(&p);
    p.env.ok(&["container", "rm", "-f", &damaged[0].0]);
    p.env.ok(&["container", "rm", "-f", &damaged[1].1[..12]]);
    for (name, id, proc, _) in &damaged[..2] {
        assert!(!proc.alive(), "rm -f left {name} running");
        p.env.assert_no_leftovers(id);
    }
    p.ok(&["up", "-d"]);
    let (rows, _) = ls_all(&p.env);
    for (name, id, proc, _) in &damaged {
        assert!(!proc.alive(), "up left the damaged {name} running");
        let same: Vec<_> = rows.iter().filter(|r| &r.0 == name).collect();
        assert_eq!(same.len(), 1, "{rows:?}");
        assert_eq!(same[0].1, "running", "{rows:?}");
        assert_ne!(&p.id(name), id, "{name} was not replaced");
        let svc = name.trim_start_matches(&format!("{}-", p.name)).trim_end_matches("-1");
        let out = p.run(&["exec", "-T", "client", "nslookup", svc]);
        let (so, se) = text(&out);
        assert_eq!(answers(&so).len(), 1, "{svc} resolves to one address: {so}{se}");
    }
    assert_eq!(rows.len(), 5, "one container per service: {rows:?}");
}

/// Monitor processes of the containers under `root`: (pid, stopped).
fn monitors(root: &Path) -> Vec<(i32, bool)> {
    let root = root.to_string_lossy().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let of_root = args.get(2).is_some_and(|r| String::from_utf8_lossy(r).contains(&root));
        if args.get(1) != Some(&b"__monitor".as_slice()) || !of_root {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let state =
            stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next().map(String::from));
        out.push((pid, state.as_deref() == Some("T")));
    }
    out
}

/// Sends SIGCONT to every stopped monitor under the root on drop (a failing test must not
/// leave the project's teardown waiting on their start locks).
struct Continue(PathBuf);

impl Continue {
    fn now(&self) {
        for (pid, stopped) in monitors(&self.0) {
            if stopped {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
        }
    }
}

impl Drop for Continue {
    fn drop(&mut self) {
        self.now();
    }
}

/// Starts `berth ARGS` for the project in the background with `envs`.
fn spawn(p: &Project, args: &[&str], envs: &[(&str, &str)]) -> Child {
    p.command(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth")
}

/// Waiters blocked on a `flock` whose pid is one of `pids` (from /proc/locks).
fn blocked_on_flock(pids: &[i32]) -> usize {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks
        .lines()
        .filter(|l| l.contains("->") && l.contains("FLOCK"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse::<i32>().ok())
        .filter(|pid| pids.contains(pid))
        .count()
}

#[test]
fn up_killed_while_its_monitors_start_then_up_again_converges() {
    let services = ["a", "b", "c"];
    let mut compose = String::from("services:\n");
    for svc in services {
        compose.push_str(&format!("  {svc}:\n    image: bb\n    command: {LONG}\n"));
    }
    let Some(p) = Project::new("dmg-start", &compose) else { return };
    let cont = Continue(p.env.path());
    // The first `up`'s monitors stop themselves just before they launch: the CLI is killed
    // while every start is provably in flight.
    let mut first = spawn(&p, &["up", "-d"], &[("BERTH_TEST_MONITOR_PAUSE", "before-launch")]);
    p.wait_for("three monitors stopped before launching", 60, || {
        monitors(&p.env.path()).iter().filter(|(_, stopped)| *stopped).count() == services.len()
    });
    first.kill().expect("kill the first up");
    first.wait().expect("reap the first up");
    let stopped: Vec<i32> = monitors(&p.env.path()).iter().map(|(pid, _)| *pid).collect();

    // A second `up` starts the same containers: its monitors wait for the start lock the
    // stopped ones hold (with the CLI holding it, they would start them a second time).
    let mut second = spawn(&p, &["up", "-d"], &[]);
    p.wait_for("the second up's monitors waiting for the start locks", 60, || {
        let others: Vec<i32> = monitors(&p.env.path())
            .iter()
            .map(|(pid, _)| *pid)
            .filter(|pid| !stopped.contains(pid))
            .collect();
        blocked_on_flock(&others) == services.len() || second.try_wait().ok().flatten().is_some()
    });
    cont.now();
    let out = second.wait_with_output().expect("second up");
    let (so, se) = text(&out);
    assert!(out.status.success(), "the second up failed:\n{so}\n{se}");
    let (rows, _) = ls_all(&p.env);
    assert_eq!(rows.len(), services.len(), "one container per service: {rows:?}");
    for svc in services {
        let name = p.cname(svc, 1);
        let row = rows.iter().find(|r| r.0 == name).unwrap_or_else(|| panic!("{rows:?}"));
        assert_eq!(row.1, "running", "{rows:?}");
        // Its recorded process is the one that runs, and it answers on the network.
        let pid = main_proc(&p.env, &name);
        assert!(pid.alive());
        p.ok(&["exec", "-T", svc, "nslookup", svc]);
    }
    // Each container was started once: one monitor each, the one its record names.
    let mut recorded: Vec<i32> = services
        .iter()
        .map(|svc| p.env.state_record(&p.cname(svc, 1))["MonitorPid"].as_i64().unwrap_or(0) as i32)
        .collect();
    let mut live: Vec<i32> = monitors(&p.env.path()).iter().map(|(pid, _)| *pid).collect();
    recorded.sort();
    live.sort();
    assert_eq!(live, recorded, "monitors running vs recorded");
}

#[test]
fn a_start_killed_after_joining_its_network_is_started_again() {
    let compose = format!("services:\n  web:\n    image: bb\n    command: {LONG}\n");
    let Some(p) = Project::new("dmg-net", &compose) else { return };
    let cont = Continue(p.env.path());
    let mut first = spawn(&p, &["up", "-d"], &[("BERTH_TEST_MONITOR_PAUSE", "after-network")]);
    p.wait_for("the monitor stopped after joining the network", 60, || {
        monitors(&p.env.path()).iter().any(|(_, stopped)| *stopped)
    });
    // The CLI and the monitor die mid-start: the network keeps an endpoint nobody removes.
    first.kill().expect("kill up");
    first.wait().expect("reap up");
    for (pid, _) in monitors(&p.env.path()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    p.wait_for("the killed monitor gone", 10, || monitors(&p.env.path()).is_empty());
    cont.now();
    p.ok(&["up", "-d"]);
    let name = p.cname("web", 1);
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    let (so, _) = p.ok(&["exec", "-T", "web", "nslookup", "web"]);
    assert_eq!(answers(&so).len(), 1, "{so}");
}
