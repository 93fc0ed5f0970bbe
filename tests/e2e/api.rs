//! `berth system service`: the Docker Engine API on a Unix socket, driven by the real `docker`
//! CLI (a client only: no dockerd anywhere) and by raw HTTP for bad input. Each test starts its
//! own service on a socket in its own state root and removes all it made (containers,
//! networks, the DNS server; the service is stopped by a Drop guard).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::net::NetEnv;
use crate::support::berth_bin;

/// A running `berth system service` on `<root>/api.sock`; stopped (SIGTERM, then SIGKILL) on drop.
pub(super) struct Service {
    pub(super) child: Child,
    pub(super) sock: PathBuf,
    /// An empty docker config directory, so no user's contexts or credentials are read.
    pub(super) config: tempfile::TempDir,
    /// The service's own docker config directory (empty): registry credentials reach it only
    /// through the API's `X-Registry-Auth`.
    _service_config: tempfile::TempDir,
}

impl Service {
    pub(super) fn start(root: &Path, extra: &[&str]) -> Service {
        let sock = root.join("api.sock");
        let host = format!("unix://{}", sock.display());
        let mut args = vec!["--root", root.to_str().expect("root path"), "system", "service"];
        args.extend_from_slice(&["-H", &host]);
        if !extra.contains(&"-t") {
            args.extend_from_slice(&["-t", "0"]);
        }
        args.extend_from_slice(extra);
        let service_config = tempfile::tempdir().expect("the service's docker config dir");
        let child = Command::new(berth_bin())
            .args(&args)
            .env("DOCKER_CONFIG", service_config.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth system service");
        let svc = Service {
            child,
            sock,
            config: tempfile::tempdir().expect("docker config dir"),
            _service_config: service_config,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while raw(&svc.sock, "GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the service did not answer on {}",
                svc.sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        svc
    }

    pub(super) fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// Runs `docker ARGS` against this service.
    pub(super) fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).stdin(Stdio::null()).output().expect("spawn docker")
    }

    /// Runs `docker ARGS`, asserts success, returns stdout.
    pub(super) fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill has no memory effects; the pid is our own child, not yet reaped.
        unsafe { kill(pid, 15) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Sends `req` over the socket and reads the answer until the server closes the connection.
pub(super) fn raw(sock: &Path, req: &str) -> std::io::Result<String> {
    raw_bytes(sock, req.as_bytes())
}

fn raw_bytes(sock: &Path, req: &[u8]) -> std::io::Result<String> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(req)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A request with a JSON body.
fn post_json(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(super) fn status_of(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub(super) fn json_body(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // A chunked body: take the JSON line between the chunk sizes.
    let line = body.lines().find(|l| l.trim_start().starts_with('{')).unwrap_or(body);
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {resp}"))
}

#[test]
fn docker_cli_runs_containers_through_the_socket() {
    let Some(n) = NetEnv::new() else { return };
    let env = &n.env;
    let svc = Service::start(&env.path(), &[]);

    let v = svc.ok(&["version", "--format", "{{.Server.APIVersion}} {{.Server.Platform.Name}}"]);
    assert_eq!(v.trim(), format!("{} berth", berth_api_version()));

    // docker run --rm: attach, wait(removed) and start, the exit code carried back.
    let out = svc.ok(&["run", "--rm", "bb:latest", "echo", "hello from berth"]);
    assert_eq!(out, "hello from berth\n");
    let out = svc.docker(&["run", "--rm", "bb:latest", "sh", "-c", "echo to-stderr >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "", "run --rm left a container");

    // A detached container, seen by berth's own CLI too.
    let name = berth_testsupport::unique_name("apiweb");
    let script = "trap 'exit 0' TERM; echo started; while true; do sleep 1; done";
    let id = svc.ok(&["run", "-d", "--name", &name, "bb:latest", "sh", "-c", script]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the id: {id}");
    assert!(svc.ok(&["ps", "--format", "{{.Names}}"]).lines().any(|l| l == name));
    let ls = env.ok(&["container", "ls"]);
    assert!(ls.lines().any(|l| l.split_whitespace().last() == Some(name.as_str())), "{ls}");
    assert_eq!(
        svc.ok(&["inspect", "-f", "{{.State.Running}} {{.Id}}", &name]).trim(),
        format!("true {id}")
    );
    env.wait_for("the first log line", 10, || svc.ok(&["logs", &name]).contains("started"));

    // The service runs from a read-only copy of berth (it starts execs in containers, which
    // must not reopen its executable for writing), as `berth container exec` does.
    let exe = format!("/proc/{}/exe", svc.child.id());
    let vfs = nix::sys::statvfs::statvfs(exe.as_str()).expect("statvfs of the service's exe");
    assert!(
        vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the service runs from a writable berth"
    );

    // exec: output and exit code.
    let out = svc.docker(&["exec", &name, "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in-exec\n");
    let mut c = svc.docker_cmd(&["exec", "-i", &name, "cat"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("docker exec -i");
    child.stdin.take().expect("stdin").write_all(b"through stdin\n").expect("write");
    let out = child.wait_with_output().expect("docker exec -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // exec -d: started, not waited for.
    svc.ok(&["exec", "-d", &name, "touch", "/tmp/detached"]);
    env.wait_for("the detached exec", 10, || {
        svc.docker(&["exec", &name, "test", "-f", "/tmp/detached"]).status.success()
    });

    // run -d --rm: the service removes it once it has exited.
    let gone = berth_testsupport::unique_name("apigone");
    svc.ok(&["run", "-d", "--rm", "--name", &gone, "bb:latest", "true"]);
    env.wait_for("the --rm container's removal", 20, || {
        !svc.ok(&["ps", "-a", "--format", "{{.Names}}"]).lines().any(|l| l == gone)
    });

    // docker cp both ways.
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("in.txt");
    std::fs::write(&src, "copied in\n").expect("write");
    svc.ok(&["cp", src.to_str().unwrap(), &format!("{name}:/tmp/")]);
    assert_eq!(svc.ok(&["exec", &name, "cat", "/tmp/in.txt"]), "copied in\n");
    let back = tmp.path().join("out.txt");
    svc.ok(&["cp", &format!("{name}:/tmp/in.txt"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).expect("copied out"), "copied in\n");

    let stats = svc.ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", &name]);
    assert!(stats.starts_with(&format!("{name} ")), "{stats}");
    let top = svc.ok(&["top", &name]);
    assert!(top.contains("sleep"), "{top}");

    svc.ok(&["stop", &name]);
    assert_eq!(
        svc.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &name]).trim(),
        "exited 0"
    );
    svc.ok(&["rm", &name]);
    env.assert_no_leftovers(&id);
    drop(svc);
    n.teardown_and_check();
}

fn berth_api_version() -> &'static str {
    "1.43"
}

#[test]
fn docker_cli_manages_networks_volumes_and_images() {
    let Some(n) = NetEnv::new() else { return };
    let env = &n.env;
    let svc = Service::start(&env.path(), &[]);
    let net = berth_testsupport::unique_name("apinet");
    svc.ok(&["network", "create", &net]);
    n.track(&net);
    let name = berth_testsupport::unique_name("apin");
    svc.ok(&["run", "-d", "--name", &name, "bb:latest", "sleep", "300"]);
    svc.ok(&["network", "connect", &net, &name]);
    let nets = svc.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &name,
    ]);
    assert!(nets.split_whitespace().any(|x| x == net), "{nets}");
    assert!(svc.ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == net));
    svc.ok(&["network", "disconnect", &net, &name]);

    let vol = berth_testsupport::unique_name("apivol");
    svc.ok(&["volume", "create", &vol]);
    assert!(svc.ok(&["volume", "ls", "-q"]).lines().any(|l| l == vol));
    assert_eq!(svc.ok(&["volume", "inspect", "-f", "{{.Driver}}", &vol]).trim(), "local");
    svc.ok(&["volume", "rm", &vol]);

    let images = svc.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.lines().any(|l| l == "bb:latest"), "{images}");
    // save | load round trip, under a second tag removed in between.
    svc.ok(&["tag", "bb:latest", "bbcopy:v1"]);
    let saved = svc.docker(&["save", "bbcopy:v1"]);
    assert!(saved.status.success() && saved.stdout.len() > 1024, "{:?}", saved.status);
    svc.ok(&["rmi", "bbcopy:v1"]);
    assert!(!svc.ok(&["images", "--format", "{{.Repository}}"]).contains("bbcopy"));
    let mut c = svc.docker_cmd(&["load"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("docker load");
    child.stdin.take().expect("stdin").write_all(&saved.stdout).expect("write");
    let out = child.wait_with_output().expect("docker load");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Loaded image: bbcopy:v1"), "{out:?}");
    svc.ok(&["rmi", "bbcopy:v1"]);

    // docker import: a root filesystem tar becomes an image.
    let tar = n.env.path().join("bb.tar");
    svc.ok(&["import", tar.to_str().expect("tar path"), "bbimported:v2"]);
    assert_eq!(
        svc.ok(&["run", "--rm", "--network", "none", "bbimported:v2", "echo", "imported"]),
        "imported\n"
    );
    svc.ok(&["rmi", "bbimported:v2"]);

    let df = svc.ok(&["system", "df", "--format", "{{.Type}}"]);
    assert!(df.contains("Images") && df.contains("Containers"), "{df}");
    svc.ok(&["rm", "-f", &name]);
    svc.ok(&["network", "rm", &net]);
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn docker_cli_run_and_exec_with_a_terminal() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let script_run = |args: &str| {
        let cmd = format!(
            "stty rows 30 cols 101; DOCKER_HOST=unix://{} DOCKER_CONFIG={} docker {args}",
            svc.sock.display(),
            svc.config.path().display()
        );
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn script")
    };
    let out = script_run("run --rm -it bb:latest sh -c 'tty; exit 6'");
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/"), "{out:?}");
    // The client's terminal size reaches the container's (it resizes right after the start:
    // the container polls for it, with a deadline).
    let poll = r#"for i in $(seq 100); do s=$(stty size); [ "$s" = "30 101" ] && break; sleep 0.05; done; echo size=$s"#;
    let out = script_run(&format!("run --rm -it bb:latest sh -c '{poll}'"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("size=30 101"), "{out:?}");
    let name = berth_testsupport::unique_name("apitty");
    svc.ok(&["run", "-d", "--name", &name, "bb:latest", "sleep", "300"]);
    let out = script_run(&format!("exec -it {name} sh -c '{poll}'"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("size=30 101"), "{out:?}");
    let out = script_run(&format!("exec -it {name} sh -c 'tty; exit 7'"));
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"), "{out:?}");
    svc.ok(&["rm", "-f", &name]);
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn bad_requests_get_docker_errors_and_the_service_stays_up() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let sock = svc.sock.clone();

    let r = raw(&sock, &post_json("/v1.43/containers/create", "{\"Image\": \"bb:latest\", "))
        .expect("malformed");
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(json_body(&r)["message"].as_str().unwrap_or_default().contains("invalid JSON"), "{r}");

    let r = raw(
        &sock,
        &post_json(
            "/containers/create",
            "{\"Image\":\"bb:latest\",\"HostConfig\":{\"PidMode\":\"host\"}}",
        ),
    )
    .expect("unsupported");
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(json_body(&r)["message"].as_str().unwrap_or_default().contains("PidMode"), "{r}");

    let r = raw(&sock, &post_json("/containers/create", "{\"Image\":\"nosuch:image\"}"))
        .expect("no image");
    assert_eq!(status_of(&r), 404, "{r}");

    let r = raw(&sock, "GET /v1.43/nothing/here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("404");
    assert_eq!(status_of(&r), 404, "{r}");
    assert!(json_body(&r)["message"].is_string(), "{r}");
    let r = raw(&sock, "GET /v9.99/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("too new");
    assert_eq!(status_of(&r), 400, "{r}");

    // A huge body is refused without being read whole.
    let huge = vec![b'x'; 16 << 20];
    let mut req = format!(
        "POST /containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    )
    .into_bytes();
    req.extend_from_slice(&huge);
    // The server may close before we finish writing: either way it must answer the next one.
    if let Ok(r) = raw_bytes(&sock, &req) {
        assert!(r.is_empty() || status_of(&r) == 413, "{r}");
    }

    // A client that goes away in the middle of a followed log stream.
    let name = berth_testsupport::unique_name("apibad");
    svc.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "bb:latest",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ]);
    {
        let mut s = UnixStream::connect(&sock).expect("connect");
        let req =
            format!("GET /containers/{name}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = [0u8; 256];
        let got = s.read(&mut buf).expect("read the stream's start");
        assert!(got > 0);
    }

    // A client that goes away in the middle of a hijacked attach.
    {
        let mut s = UnixStream::connect(&sock).expect("connect");
        let req = format!(
            "POST /containers/{name}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = [0u8; 512];
        let got = s.read(&mut buf).expect("read the upgrade answer");
        let head = String::from_utf8_lossy(&buf[..got]);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }

    // A container of another state root is not found here.
    let other = crate::support::ContainerEnv::new().expect("a second root");
    let other_name = berth_testsupport::unique_name("apiother");
    other.ok(&["container", "create", "--name", &other_name, "bb:latest", "true"]);
    let other_id = other.id(&other_name);
    let r = raw(
        &sock,
        &format!(
            "GET /containers/{other_id}/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ),
    )
    .expect("inspect");
    assert_eq!(status_of(&r), 404, "{r}");
    drop(other);

    // 200 requests at once.
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                raw(&sock, "GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            })
        })
        .collect();
    let mut answered = 0;
    for t in threads {
        if let Ok(Ok(r)) = t.join()
            && status_of(&r) == 200
            && r.ends_with("OK")
        {
            answered += 1;
        }
    }
    assert_eq!(answered, 200);

    let r =
        raw(&sock, "GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("ping");
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(r.to_lowercase().contains("api-version: 1.43"), "{r}");
    let head =
        raw(&sock, "HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("head");
    assert_eq!(status_of(&head), 200, "{head}");
    svc.ok(&["rm", "-f", &name]);
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn docker_events_stream_container_changes() {
    use std::io::BufRead;
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let name = berth_testsupport::unique_name("apiev");
    let mut events = svc
        .docker_cmd(&["events", "--format", "{{.Action}} {{.Actor.Attributes.name}}"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker events");
    let stdout = events.stdout.take().expect("events stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The stream is live once a marker container's creation shows up in it.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut markers = Vec::new();
    'ready: loop {
        assert!(Instant::now() < deadline, "docker events showed nothing: {lines:?}");
        let marker = format!("{name}m{}", markers.len());
        svc.ok(&["create", "--name", &marker, "bb:latest", "true"]);
        markers.push(marker.clone());
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            let hit = l == format!("create {marker}");
            lines.push(l);
            if hit {
                break 'ready;
            }
        }
    }
    svc.ok(&["run", "--rm", "--name", &name, "bb:latest", "sleep", "0.5"]);
    let want: Vec<String> =
        ["create", "start", "die", "destroy"].iter().map(|a| format!("{a} {name}")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|w| lines.contains(w)) {
        assert!(Instant::now() < deadline, "missing events {want:?} in {lines:?}");
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    for m in &markers {
        svc.ok(&["rm", m]);
    }
    drop(svc);
    n.teardown_and_check();
}

/// `docker events --since --until` replays, from the state root's journal, what berth's own CLI
/// did before the service ran, with docker's filters, and ends at `until`.
#[test]
fn docker_events_replay_what_the_berth_cli_did_before() {
    let Some(n) = NetEnv::new() else { return };
    let env = &n.env;
    let name = berth_testsupport::unique_name("apievh");
    let other = berth_testsupport::unique_name("apievo");
    let net = berth_testsupport::unique_name("apievn");
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(1);
    // Without the service: a container that exits 3, removed by --rm; a labelled one.
    let out =
        env.run(&["container", "run", "--rm", "--name", &name, "bb:latest", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    env.ok(&["container", "create", "--name", &other, "-l", "apiev.mark=yes", "bb:latest", "true"]);
    env.ok(&["network", "create", &net]);
    n.track(&net);
    env.ok(&["network", "rm", &net]);
    // A running one through its life: pause, unpause, rename, stop (kill, die, stop), rm.
    let (long, long2) = (format!("{name}l"), format!("{name}l2"));
    let script = "trap 'exit 0' TERM; sleep 3600 & wait";
    env.ok(&["container", "run", "-d", "--name", &long, "bb:latest", "sh", "-c", script]);
    for args in [
        vec!["pause", long.as_str()],
        vec!["unpause", &long],
        vec!["rename", &long, &long2],
        vec!["stop", &long2],
        vec!["rm", &long2],
    ] {
        env.ok(&[&["container"], args.as_slice()].concat());
    }
    // Volumes and images.
    let vol = format!("{name}v");
    let img = format!("{name}img:1");
    env.ok(&["volume", "create", &vol]);
    env.ok(&["volume", "rm", &vol]);
    env.ok(&["image", "tag", "bb:latest", &img]);
    env.ok(&["image", "rm", &img]);
    let t1 = chrono::Utc::now() + chrono::Duration::seconds(1);
    let svc = Service::start(&env.path(), &[]);
    let (since, until) = (t0.timestamp().to_string(), t1.timestamp().to_string());
    let format = "{{.Type}} {{.Action}} {{or .Actor.Attributes.name .Actor.ID}}\
                  {{with .Actor.Attributes.exitCode}} {{.}}{{end}}";
    // `until` has passed: the replay ends the stream and docker events exits by itself.
    let events = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["events", "--since", &since, "--until", &until, "--format", format];
        args.extend_from_slice(extra);
        let out = svc.ok(&args);
        out.lines().map(|l| l.trim_end().to_string()).collect()
    };
    let all = events(&[]);
    let want = [
        format!("container create {name}"),
        format!("container start {name}"),
        format!("container die {name} 3"),
        format!("container destroy {name}"),
        format!("container create {other}"),
        format!("network create {net}"),
        format!("network destroy {net}"),
        format!("container create {long}"),
        format!("container start {long}"),
        format!("container pause {long}"),
        format!("container unpause {long}"),
        format!("container rename {long2}"),
        format!("container kill {long2}"),
        format!("container die {long2} 0"),
        format!("container stop {long2}"),
        format!("container destroy {long2}"),
        format!("volume create {vol}"),
        format!("volume destroy {vol}"),
        format!("image tag {img}"),
        format!("image untag {img}"),
    ];
    let pos: Vec<usize> = want
        .iter()
        .map(|w| all.iter().position(|l| l == w).unwrap_or_else(|| panic!("{w:?} not in {all:?}")))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "out of order: {all:?}");
    // Filters: type, event, container (name), label.
    let nets = events(&["--filter", "type=network"]);
    assert_eq!(nets, vec![format!("network create {net}"), format!("network destroy {net}")]);
    let dies = events(&["--filter", "event=die"]);
    assert_eq!(dies, vec![format!("container die {name} 3"), format!("container die {long2} 0")]);
    // By name (dockerd matches name and id prefixes: `long2` is matched by `long` too).
    let mine = events(&["--filter", &format!("container={long2}"), "--filter", "event=stop"]);
    assert_eq!(mine, vec![format!("container stop {long2}")]);
    let id_of_other = env.id(&other);
    let by_id = events(&["--filter", &format!("container={}", &id_of_other[..12])]);
    assert_eq!(by_id, vec![format!("container create {other}")]);
    let marked = events(&["--filter", "label=apiev.mark=yes"]);
    assert_eq!(marked, vec![format!("container create {other}")]);
    // A relative `since` (the CLI sends it converted) and RFC 3339 both work; nothing before
    // `since` is replayed.
    let later = (t1 + chrono::Duration::seconds(1)).to_rfc3339();
    let out = svc.ok(&["events", "--since", "10m", "--until", &later, "--format", format]);
    assert!(out.lines().any(|l| l.trim_end() == format!("container die {name} 3")), "{out}");
    let out = svc.ok(&["events", "--since", &later, "--until", &later, "--format", format]);
    assert_eq!(out.trim(), "", "events after since only");
    // An `until` in the future: what happens meanwhile streams, then the stream ends there
    // (`since` too, so a removal made before the stream opened is replayed, not lost).
    let from = (chrono::Utc::now() - chrono::Duration::seconds(1)).timestamp().to_string();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(4)).timestamp().to_string();
    let child = svc
        .docker_cmd(&["events", "--since", &from, "--until", &soon])
        .args(["--filter", "event=destroy", "--format", format])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker events");
    env.ok(&["container", "rm", &other]);
    let out = child.wait_with_output().expect("docker events until");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("container destroy {other}")
    );
    drop(svc);
    n.teardown_and_check();
}

/// A healthcheck that changes a container's status makes docker's `health_status: …` event
/// (journaled by the container's monitor, so also without the service running).
#[test]
fn docker_events_show_health_status_changes() {
    let Some(n) = NetEnv::new() else { return };
    let env = &n.env;
    let name = berth_testsupport::unique_name("apievhc");
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(1);
    env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &name,
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "bb:latest",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 3600",
    ]);
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.inspect(&name, "{{.State.Health.Status}}") != want {
            assert!(Instant::now() < deadline, "{name} never became {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("healthy");
    env.ok(&["container", "exec", &name, "rm", "/tmp/ok"]);
    wait_for("unhealthy");
    env.ok(&["container", "rm", "-f", &name]);
    let t1 = chrono::Utc::now() + chrono::Duration::seconds(1);
    let svc = Service::start(&env.path(), &[]);
    let (since, until) = (t0.timestamp().to_string(), t1.timestamp().to_string());
    let out = svc.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let got: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(
        got,
        vec![format!("health_status: healthy {name}"), format!("health_status: unhealthy {name}")],
        "{out}"
    );
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn docker_cli_ports_filters_and_lifecycle() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let name = berth_testsupport::unique_name("apip");
    let port = crate::support::free_port();
    let publish = format!("127.0.0.1:{port}:80");
    svc.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        &publish,
        "-l",
        "tier=web",
        "bb:latest",
        "httpd",
        "-f",
        "-h",
        "/etc",
    ]);
    let id = svc.ok(&["inspect", "-f", "{{.Id}}", &name]).trim().to_string();
    assert_eq!(crate::support::http_body(port, "/hostname").trim(), &id[..12]);
    let ps = |filter: &str| svc.ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]);
    assert_eq!(ps("label=tier=web").trim(), name);
    assert_eq!(ps("label=tier=db").trim(), "");
    assert_eq!(ps("ancestor=bb:latest").trim(), name);
    assert_eq!(ps("network=bridge").trim(), name);
    assert_eq!(ps("status=running").trim(), name);
    svc.ok(&["pause", &name]);
    assert_eq!(ps("status=paused").trim(), name);
    svc.ok(&["unpause", &name]);
    let renamed = format!("{name}r");
    svc.ok(&["rename", &name, &renamed]);
    svc.ok(&["restart", "-t", "1", &renamed]);
    assert_eq!(crate::support::http_body(port, "/hostname").trim(), &id[..12]);
    svc.ok(&["kill", &renamed]);
    assert_eq!(svc.ok(&["wait", &renamed]).trim(), "137");

    // logs -f follows to the container's end; timestamps come first.
    let f = berth_testsupport::unique_name("apif");
    svc.ok(&[
        "run",
        "-d",
        "--name",
        &f,
        "bb:latest",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.2; done",
    ]);
    let logs = svc.ok(&["logs", "-f", "--timestamps", &f]);
    let texts: Vec<&str> = logs.lines().filter_map(|l| l.split_once(' ').map(|(_, t)| t)).collect();
    assert_eq!(texts, ["1", "2", "3"], "{logs}");
    assert!(logs.starts_with("20"), "{logs}");
    assert_eq!(svc.ok(&["logs", "--tail", "1", &f]), "3\n");

    // start -a: attached to the start, showing only that run's output.
    let sa = berth_testsupport::unique_name("apisa");
    svc.ok(&["create", "--name", &sa, "bb:latest", "sh", "-c", "echo run-$$-$RANDOM"]);
    let first = svc.ok(&["start", "-a", &sa]);
    let second = svc.ok(&["start", "-a", &sa]);
    assert!(
        first.starts_with("run-") && second.starts_with("run-") && first != second,
        "{first} {second}"
    );
    assert_eq!(first.lines().count() + second.lines().count(), 2, "{first}{second}");
    assert_eq!(svc.ok(&["logs", &sa]), format!("{first}{second}"));

    let pruned = svc.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains(&id), "{pruned}");
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "");
    drop(svc);
    n.teardown_and_check();
}

/// docker-py (Python's `docker` package, on this machine kind) as the client.
const DOCKER_PY: &str = r#"
import os, docker
name, net_name, vol_name = os.environ["NAME"], os.environ["NET"], os.environ["VOL"]
c = docker.from_env(version="auto")
assert c.ping()
out = c.containers.run("bb:latest", ["sh", "-c", "echo hi-py"], remove=True)
assert out == b"hi-py\n", out
ct = c.containers.run("bb:latest", ["sleep", "300"], detach=True, name=name)
assert ct.status in ("created", "running"), ct.status
r = ct.exec_run(["sh", "-c", "echo ex; exit 2"])
assert r.exit_code == 2 and r.output == b"ex\n", r
net = c.networks.get(net_name)
net.connect(ct)
ct.reload()
assert net_name in ct.attrs["NetworkSettings"]["Networks"], ct.attrs["NetworkSettings"]
net.disconnect(ct)
vol = c.volumes.create(vol_name)
assert any(v.name == vol_name for v in c.volumes.list())
vol.remove()
assert any(name == x.name for x in c.containers.list())
ct.remove(force=True)
assert not any(name == x.name for x in c.containers.list(all=True))
print("docker-py ok")
"#;

#[test]
fn docker_py_drives_containers_networks_and_volumes() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let net = berth_testsupport::unique_name("apipynet");
    svc.ok(&["network", "create", &net]);
    n.track(&net);
    let out = Command::new(crate::support::docker_py_python())
        .args(["-c", DOCKER_PY])
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("NAME", berth_testsupport::unique_name("apipy"))
        .env("NET", &net)
        .env("VOL", berth_testsupport::unique_name("apipyvol"))
        .stdin(Stdio::null())
        .output()
        .expect("spawn the docker-py venv's python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("docker-py ok"),
        "docker-py failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    svc.ok(&["network", "rm", &net]);
    drop(svc);
    n.teardown_and_check();
}

/// What docker-compose 1.x does over the API (containers with compose's labels) makes a
/// project that berth's compose commands see and take down.
#[test]
fn compose_labelled_containers_made_through_the_socket_are_a_berth_project() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let project = berth_testsupport::unique_name("apiproj");
    let cname = format!("{project}-web-1");
    let label = |k: &str, v: &str| format!("com.docker.compose.{k}={v}");
    let (p, s, c, o) = (
        label("project", &project),
        label("service", "web"),
        label("container-number", "1"),
        label("oneoff", "False"),
    );
    svc.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &cname,
        "-l",
        &p,
        "-l",
        &s,
        "-l",
        &c,
        "-l",
        &o,
        "bb:latest",
        "sleep",
        "300",
    ]);
    let ps = n.env.ok(&["-p", &project, "ps"]);
    assert!(ps.lines().any(|l| l.starts_with(&cname) && l.contains(" web ")), "{ps}");
    n.env.ok(&["-p", &project, "down", "-t", "0"]);
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "");
    drop(svc);
    n.teardown_and_check();
}

/// Debian's docker-compose 1.29 (a client of berth's socket, installed by .ci/run; berth never
/// uses it) in `dir` against `svc`.
fn docker_compose(svc: &Service, dir: &Path, project: &str, args: &[&str]) -> Output {
    Command::new("docker-compose")
        .args(["-p", project])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("DOCKER_CONFIG", svc.config.path())
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("spawn docker-compose (Debian's docker-compose package, installed by .ci/run)")
}

fn compose_ok(svc: &Service, dir: &Path, project: &str, args: &[&str]) -> String {
    let out = docker_compose(svc, dir, project, args);
    assert!(
        out.status.success(),
        "docker-compose {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A stack brought up by docker-compose 1.29 over the socket (a network, a volume, a port on
/// loopback, services reaching each other by name) is a berth project: `berth ps` lists it and
/// `berth down -v` takes it all away; docker-compose's own `ps` and `down` work too.
#[test]
fn docker_compose_1_29_stack_over_the_socket_is_a_berth_project() {
    let Some(n) = NetEnv::new() else { return };
    let env = &n.env;
    let svc = Service::start(&env.path(), &[]);
    let project = berth_testsupport::unique_name("apidc");
    let port = crate::support::free_port();
    let dir = tempfile::tempdir().expect("project dir");
    let yaml = format!(
        r#"version: "3.8"
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && echo from-web > /www/index.html && echo kept > /data/f && exec httpd -f -p 8080 -h /www"]
    networks: [front]
    volumes: ["data:/data"]
    ports: ["127.0.0.1:{port}:8080"]
  client:
    image: bb:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    networks:
      front:
        aliases: [cli-alias]
    depends_on: [web]
networks:
  front: {{}}
volumes:
  data: {{}}
"#
    );
    std::fs::write(dir.path().join("docker-compose.yml"), yaml).expect("write compose file");
    let (net, vol) = (format!("{project}_front"), format!("{project}_data"));
    compose_ok(&svc, dir.path(), &project, &["up", "-d"]);
    n.track(&net);
    // berth's compose sees docker-compose's v1 labels as the project.
    let ps =
        env.ok(&["--project-directory", dir.path().to_str().expect("dir"), "-p", &project, "ps"]);
    for s in ["web", "client"] {
        assert!(ps.lines().any(|l| l.starts_with(&format!("{project}_{s}_1"))), "{s}: {ps}");
    }
    // The port on loopback, and the services reach each other by name and alias.
    assert_eq!(crate::support::http_body(port, "/index.html").trim(), "from-web");
    let get = compose_ok(
        &svc,
        dir.path(),
        &project,
        &["exec", "-T", "client", "wget", "-qO-", "http://web:8080/index.html"],
    );
    assert_eq!(get.trim(), "from-web");
    compose_ok(&svc, dir.path(), &project, &["exec", "-T", "web", "ping", "-c1", "cli-alias"]);
    let dps = compose_ok(&svc, dir.path(), &project, &["ps"]);
    for s in ["web", "client"] {
        assert!(
            dps.lines().any(|l| l.starts_with(&format!("{project}_{s}_1")) && l.contains("Up")),
            "{dps}"
        );
    }
    // berth down -v: containers, network and volume gone.
    env.ok(&[
        "--project-directory",
        dir.path().to_str().expect("dir"),
        "-p",
        &project,
        "down",
        "-v",
        "-t",
        "1",
    ]);
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "");
    assert!(!svc.ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == net));
    assert!(!svc.ok(&["volume", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == vol));
    // Again, taken down by docker-compose itself.
    compose_ok(&svc, dir.path(), &project, &["up", "-d"]);
    n.track(&net);
    compose_ok(&svc, dir.path(), &project, &["down", "-v", "-t", "1"]);
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "");
    assert!(!svc.ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == net));
    assert!(!svc.ok(&["volume", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == vol));
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn the_service_also_listens_on_loopback_tcp() {
    let Some(n) = NetEnv::new() else { return };
    let port = crate::support::free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let svc = Service::start(&n.env.path(), &["-H", &tcp]);
    let out = svc
        .docker_cmd(&["version", "--format", "{{.Server.APIVersion}}"])
        .env("DOCKER_HOST", &tcp)
        .output()
        .expect("docker version over TCP");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.43", "{out:?}");
    let out = svc
        .docker_cmd(&["run", "--rm", "--network", "none", "bb:latest", "echo", "over-tcp"])
        .env("DOCKER_HOST", &tcp)
        .output()
        .expect("docker run over TCP");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-tcp\n", "{out:?}");
    // A non-loopback address is refused before anything listens.
    let refused = Command::new(berth_bin())
        .args([
            "--root",
            n.env.path().to_str().expect("root"),
            "system",
            "service",
            "-H",
            "tcp://0.0.0.0:2375",
        ])
        .output()
        .expect("spawn berth");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only loopback addresses"),
        "{refused:?}"
    );
    drop(svc);
    n.teardown_and_check();
}

#[test]
fn idle_service_exits_and_its_containers_keep_running() {
    let Some(n) = NetEnv::new() else { return };
    let mut svc = Service::start(&n.env.path(), &["-t", "1"]);
    let name = berth_testsupport::unique_name("apiidle");
    svc.ok(&["run", "-d", "--name", &name, "bb:latest", "sleep", "300"]);
    // A followed log whose client went away does not keep the service busy.
    {
        let mut s = UnixStream::connect(&svc.sock).expect("connect");
        let req =
            format!("GET /containers/{name}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = [0u8; 64];
        assert!(s.read(&mut buf).expect("read the answer's start") > 0);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while svc.child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the idle service did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!svc.sock.exists(), "the socket file was left");
    assert_eq!(n.env.inspect(&name, "{{.State.Running}}"), "true");
    n.env.ok(&["container", "rm", "-f", &name]);
    drop(svc);
    n.teardown_and_check();
}

/// systemd's socket activation, through `systemd-socket-activate` (Debian's systemd package),
/// which listens, waits for the first connection and execs the service with the socket as fd 3
/// and LISTEN_PID/LISTEN_FDS set: the service answers on that socket (a container runs), is
/// that very process, exits when idle and leaves the manager's socket file in place.
#[test]
fn the_service_takes_the_socket_systemd_activation_passes() {
    let Some(n) = NetEnv::new() else { return };
    let root = n.env.path();
    let sock = root.join("activated.sock");
    /// The activator (then the service it became), killed if the test fails early.
    struct Activator(Child);
    impl Drop for Activator {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut act = Activator(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg(berth_bin())
            .args(["--root", root.to_str().expect("root path"), "system", "service", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn systemd-socket-activate (Debian's systemd package)"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "systemd-socket-activate did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = tempfile::tempdir().expect("docker config dir");
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("spawn docker");
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let name = berth_testsupport::unique_name("apiact");
    let said =
        docker(&["run", "--rm", "--network", "none", "--name", &name, "bb:latest", "echo", "up"]);
    assert_eq!(said, "up\n");
    assert_eq!(docker(&["version", "-f", "{{.Server.APIVersion}}"]).trim(), berth_api_version());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", act.0.id())).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("system\0service"),
        "the activator did not exec the service: {}",
        String::from_utf8_lossy(&cmdline)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = act.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "the activated service did not exit when idle");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(sock.exists(), "the service removed the socket file the manager owns");
    assert_eq!(n.env.ok(&["container", "ls", "-aq"]), "");
    n.teardown_and_check();
}

/// bollard (the Rust client berth's Engine API was modelled on) as the client: create, start,
/// logs, wait with a non-zero exit, exec with its output and exit code, remove.
#[test]
fn bollard_drives_a_container_through_the_socket() {
    use bollard::query_parameters::{LogsOptionsBuilder, RemoveContainerOptionsBuilder};
    use futures_util::StreamExt;
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let sock = svc.sock.to_str().expect("socket path").to_string();
        let docker = bollard::Docker::connect_with_unix(&sock, 60, bollard::API_DEFAULT_VERSION)
            .expect("connect")
            .negotiate_version()
            .await
            .expect("negotiate the API version");
        let body = bollard::models::ContainerCreateBody {
            image: Some("bb:latest".into()),
            cmd: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; sleep 1; exit 5".into(),
            ]),
            ..Default::default()
        };
        let id = docker.create_container(None, body).await.expect("create").id;
        docker.start_container(&id, None).await.expect("start");

        let exec = bollard::models::ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(vec!["sh".into(), "-c".into(), "echo from-exec; exit 3".into()]),
            ..Default::default()
        };
        let exec_id = docker.create_exec(&id, exec).await.expect("create exec").id;
        let mut exec_out = String::new();
        match docker.start_exec(&exec_id, None).await.expect("start exec") {
            bollard::exec::StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    exec_out.push_str(&chunk.expect("exec output").to_string());
                }
            }
            bollard::exec::StartExecResults::Detached => panic!("the exec was not attached"),
        }
        assert_eq!(exec_out, "from-exec\n");
        let ins = docker.inspect_exec(&exec_id).await.expect("inspect exec");
        assert_eq!(ins.exit_code, Some(3));

        let waited: Vec<_> = docker.wait_container(&id, None).collect().await;
        match waited.first() {
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                assert_eq!(*code, 5)
            }
            other => panic!("wait: {other:?}"),
        }
        let opts = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut logs: Vec<String> = Vec::new();
        let mut stream = docker.logs(&id, Some(opts));
        while let Some(l) = stream.next().await {
            match l.expect("log line") {
                bollard::container::LogOutput::StdOut { message } => {
                    logs.push(format!("out:{}", String::from_utf8_lossy(&message)))
                }
                bollard::container::LogOutput::StdErr { message } => {
                    logs.push(format!("err:{}", String::from_utf8_lossy(&message)))
                }
                other => panic!("unexpected log frame {other:?}"),
            }
        }
        assert_eq!(logs, ["out:out\n", "err:err\n"]);
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        docker.remove_container(&id, Some(rm)).await.expect("remove");
        n.env.assert_no_leftovers(&id);
    });
    drop(svc);
    n.teardown_and_check();
}
