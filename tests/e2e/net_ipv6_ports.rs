//! Published ports answer over IPv6 through the monitor's userland proxy: TCP and UDP ports
//! published on every address (`[::]:PORT` beside the IPv4 DNAT rule), and ports published on
//! an explicit IPv6 host address (`-p [::1]:8080:80`, compose `host_ip: "::1"`), which get the
//! IPv6 socket only. Traffic goes to loopback only.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::compose_support::Project;
use crate::net::{NetEnv, run_cmd};

/// Lines `1..=N` of the served big file (about 1 MiB): order and loss both show.
const BIG_LINES: u32 = 160_000;

fn has_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
}

/// One GET over `[::1]:port`; `half_close` shuts the write side after the request.
fn get6(port: u16, path: &str, half_close: bool) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&v6(port), Duration::from_secs(2))?;
    // A deadline, not a pace. Two CI runs saw a parallel GET never end: the relay dropped the
    // end-of-file when it was read in a wake-up's last round (proxy.rs unit test).
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    if half_close {
        s.shutdown(Shutdown::Write)?;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

fn body(resp: &[u8]) -> &[u8] {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    &resp[at + 4..]
}

fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&v6(port), Duration::from_secs(2)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// httpd serving `/www/index.html` ("hello6") and `/www/big` (`seq 1 BIG_LINES`).
fn web_script() -> String {
    format!(
        "mkdir -p /www && echo hello6 > /www/index.html && seq 1 {BIG_LINES} > /www/big && \
         exec httpd -f -p 80 -h /www"
    )
}

fn host_port(n: &NetEnv, name: &str) -> u16 {
    n.env
        .inspect(name, "{{json .NetworkSettings.Ports}}")
        .split("\"HostPort\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .expect("HostPort in inspect")
}

/// inspect's `NetworkSettings.Ports` as JSON.
fn ports_json(n: &NetEnv, name: &str) -> serde_json::Value {
    serde_json::from_str(&n.env.inspect(name, "{{json .NetworkSettings.Ports}}"))
        .expect("Ports json")
}

/// The host port of binding `i` of `key` (`80/tcp`) in inspect.
fn bound_port(n: &NetEnv, name: &str, key: &str, i: usize) -> u16 {
    let v = ports_json(n, name);
    v[key][i]["HostPort"].as_str().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{v}"))
}

/// docker's `[{"HostIp":..,"HostPort":..}, ..]` for these (ip, port) bindings.
fn bindings(list: &[(&str, u16)]) -> serde_json::Value {
    list.iter()
        .map(|(ip, port)| serde_json::json!({"HostIp": ip, "HostPort": port.to_string()}))
        .collect()
}

/// The `container ls` line of container `name`.
fn ls_line(n: &NetEnv, name: &str) -> String {
    let ls = n.env.ok(&["container", "ls", "--no-trunc"]);
    ls.lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("{name} in ls: {ls}"))
        .to_string()
}

fn tcp_refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// One GET over `[::1]:port` that may have to wait for the server to start (bounded).
fn get6_ready(port: u16) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match get6(port, "/", false) {
            Ok(r) if r.starts_with(b"HTTP/1.") && r.windows(3).any(|w| w == b"200") => return r,
            other => assert!(Instant::now() < deadline, "GET [::1]:{port}/: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

unsafe extern "C" {
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// `CLONE_NEWNET` of sched.h.
const CLONE_NEWNET: i32 = 0x4000_0000;

/// A UDP echo ("re:" + payload) inside a container's network namespace: a thread of the test
/// that joins the namespace (busybox has no UDP server applet). Stops on drop.
struct UdpEcho {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    fn start(pid: &str, port: u16) -> Self {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("container netns");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread only, with an fd we hold open.
            assert_eq!(unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) }, 0, "setns");
            let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind in the container");
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            tx.send(()).expect("ready");
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let mut out = b"re:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    let _ = s.send_to(&out, from);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("echo bound");
        UdpEcho { stop, thread: Some(thread) }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `msg` from `c` to `to` until its echo comes back (bounded: the relay answers at
/// once, but a datagram may be lost or late on a loaded machine); returns the reply. A late
/// reply to this client's earlier datagram (same first byte) is skipped; any other reply is a
/// wrongly routed one and fails.
fn udp_ask(c: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let want = [b"re:".as_slice(), msg].concat();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    loop {
        c.send_to(msg, to).expect("send");
        while let Ok((n, from)) = c.recv_from(&mut buf) {
            assert_eq!(from, to, "reply from the published address");
            if buf[..n] == want[..] {
                return want;
            }
            assert!(
                buf[..n].starts_with(&want[..4]),
                "reply to another client: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        assert!(
            Instant::now() < deadline,
            "no UDP reply from {to} to {:?}",
            String::from_utf8_lossy(msg)
        );
    }
}

/// Runs `container run -d --name NAME --network NET -p SPEC bb httpd -f`, which must fail with
/// one sentence containing every one of `needles`, leaving the container created (not started);
/// returns the sentence.
fn refused_publish(n: &NetEnv, net: &str, name: &str, spec: &str, needles: &[&str]) -> String {
    let out = n.env.run(&[
        "container",
        "run",
        "-d",
        "--name",
        name,
        "--network",
        net,
        "-p",
        spec,
        "bb",
        "httpd",
        "-f",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && needles.iter().all(|w| err.contains(w)), "{spec}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert_eq!(n.env.inspect(name, "{{.State.Status}}"), "created");
    err
}

#[test]
fn net_ipv6_published_port_relays_and_goes_with_container() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nw6", &[]);
    let web = berth_testsupport::unique_name("web6");
    let script = web_script();
    n.run_detached(&web, &net, &["-p", "0:80", "bb", "sh", "-c", &script]);
    n.note_veths();
    let port = host_port(&n, &web);
    // docker's shapes: both bindings in inspect, ls and `container port`.
    assert_eq!(ports_json(&n, &web)["80/tcp"], bindings(&[("0.0.0.0", port), ("::", port)]));
    let line = ls_line(&n, &web);
    assert!(line.contains(&format!("0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp")), "{line}");
    let lines = n.env.ok(&["container", "port", &web, "80"]);
    assert_eq!(lines.trim(), format!("0.0.0.0:{port}\n[::]:{port}"));
    let lines = n.env.ok(&["container", "port", &web]);
    assert_eq!(lines.trim(), format!("80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}"));
    let first = get6_ready(port);
    assert_eq!(body(&first), b"hello6\n");
    // IPv4 still goes through DNAT.
    assert!(crate::net::http_get(port, "/", 10).contains("hello6"));
    // A large body arrives intact, also with the client's half-close passed on, and over
    // several connections at once.
    let want: Vec<u8> = (1..=BIG_LINES).flat_map(|i| format!("{i}\n").into_bytes()).collect();
    let big = get6(port, "/big", true).expect("GET /big");
    assert!(
        body(&big) == want.as_slice(),
        "big body: {} of {} bytes",
        body(&big).len(),
        want.len()
    );
    let handles: Vec<_> =
        (0..4).map(|_| std::thread::spawn(move || get6(port, "/big", false))).collect();
    for h in handles {
        let r = h.join().expect("thread").expect("parallel GET /big");
        assert!(body(&r) == want.as_slice(), "parallel body: {} bytes", body(&r).len());
    }
    let id = n.env.id(&web);
    n.env.ok(&["container", "rm", "-f", &web]);
    assert!(refused(port), "[::]:{port} still answers after rm -f");
    n.env.assert_no_leftovers(&id);
    n.teardown_and_check();
}

#[test]
fn net_ipv6_not_for_ipv4_host_address() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nw6l", &[]);
    let web = berth_testsupport::unique_name("web6l");
    let script = web_script();
    n.run_detached(&web, &net, &["-p", "127.0.0.1:0:80", "bb", "sh", "-c", &script]);
    n.note_veths();
    let port = host_port(&n, &web);
    assert!(crate::net::http_get(port, "/", 15).contains("hello6"));
    assert!(refused(port), "[::1]:{port} answers for a 127.0.0.1 binding");
    n.teardown_and_check();
}

#[test]
fn net_ipv6_port_taken_on_ipv6_fails_clean() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nw6t", &[]);
    // A host process holds the port on [::1] only: IPv4 is free, the IPv6 listener is not.
    let holder = TcpListener::bind("[::1]:0").expect("bind [::1]");
    let port = holder.local_addr().expect("addr").port();
    let web = berth_testsupport::unique_name("web6t");
    let spec = format!("{port}:80");
    refused_publish(&n, &net, &web, &spec, &[&format!("[::]:{port}/tcp"), "in use"]);
    // Nothing half-made: no rule, no endpoint, the IPv4 port is free again.
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(!rules.contains(&format!("dport {port} ")), "{rules}");
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()).unwrap_or(0), 0, "{rec}");
    TcpListener::bind(("0.0.0.0", port)).expect("IPv4 port released");
    drop(holder);
    n.teardown_and_check();
}

#[test]
fn net_ipv6_udp_published_ports_relay_per_client() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nw6u", &[]);
    let name = berth_testsupport::unique_name("udp6");
    let idle = "trap 'exit 0' TERM; sleep 3600 & wait";
    let args = ["-p", "0:5353/udp", "-p", "[::1]::5354/udp", "bb", "sh", "-c", idle];
    n.run_detached(&name, &net, &args);
    n.note_veths();
    let pid = n.env.inspect(&name, "{{.State.Pid}}");
    let _e1 = UdpEcho::start(&pid, 5353);
    let _e2 = UdpEcho::start(&pid, 5354);
    let all = bound_port(&n, &name, "5353/udp", 0);
    let v6 = bound_port(&n, &name, "5354/udp", 0);
    let ports = ports_json(&n, &name);
    assert_eq!(ports["5353/udp"], bindings(&[("0.0.0.0", all), ("::", all)]), "{ports}");
    assert_eq!(ports["5354/udp"], bindings(&[("::1", v6)]), "{ports}");
    let line = ls_line(&n, &name);
    assert!(line.contains(&format!("0.0.0.0:{all}->5353/udp, [::]:{all}->5353/udp")), "{line}");
    assert!(line.contains(&format!("[::1]:{v6}->5354/udp")), "{line}");
    let lines = n.env.ok(&["container", "port", &name, "5353/udp"]);
    assert_eq!(lines.trim(), format!("0.0.0.0:{all}\n[::]:{all}"));

    // Two clients over [::1]: each gets its own replies (one flow each), many in a row.
    let to = v6_udp(all);
    let (a, b) = (client6(), client6());
    udp_ask(&a, to, b"a0");
    udp_ask(&b, to, b"b0");
    for i in 1..50 {
        let (ma, mb) = (format!("a{i}"), format!("b{i}"));
        udp_ask(&a, to, ma.as_bytes());
        udp_ask(&b, to, mb.as_bytes());
    }
    // A large datagram arrives whole.
    let big = [b"a".as_slice(), &[b'x'; 1400]].concat();
    assert_eq!(udp_ask(&a, to, &big).len(), 1404);
    // IPv4 still goes through DNAT.
    let c4 = UdpSocket::bind("127.0.0.1:0").expect("bind v4");
    let to4 = SocketAddr::from(([127, 0, 0, 1], all));
    udp_ask(&c4, to4, b"v4");
    // The explicit [::1] binding answers over IPv6 and has no IPv4 rule.
    let a6 = client6();
    udp_ask(&a6, v6_udp(v6), b"only6");
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(rules.contains(&format!("udp dport {all} ")), "{rules}");
    assert!(!rules.contains(&format!("dport {v6} ")), "{rules}");

    // Gone with the container: both ports can be bound again.
    let id = n.env.id(&name);
    n.env.ok(&["container", "rm", "-f", &name]);
    UdpSocket::bind(("::1", v6)).expect("[::1] UDP port released");
    UdpSocket::bind(("::", all)).expect("[::] UDP port released");
    n.env.assert_no_leftovers(&id);
    n.teardown_and_check();
}

fn v6_udp(port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
}

fn client6() -> UdpSocket {
    UdpSocket::bind("[::1]:0").expect("bind [::1]")
}

#[test]
fn net_ipv6_explicit_host_addresses_and_their_errors() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nw6x", &[]);
    let script = web_script();
    // [::1] with a random port: IPv6 only, no DNAT rule.
    let one = berth_testsupport::unique_name("web6one");
    n.run_detached(&one, &net, &["-p", "[::1]::80", "bb", "sh", "-c", &script]);
    n.note_veths();
    let p1 = bound_port(&n, &one, "80/tcp", 0);
    assert_eq!(ports_json(&n, &one)["80/tcp"], bindings(&[("::1", p1)]));
    assert!(ls_line(&n, &one).contains(&format!("[::1]:{p1}->80/tcp")));
    assert_eq!(n.env.ok(&["container", "port", &one]).trim(), format!("80/tcp -> [::1]:{p1}"));
    assert_eq!(body(&get6_ready(p1)), b"hello6\n");
    assert!(tcp_refused(SocketAddr::from(([127, 0, 0, 1], p1))), "IPv4 answers for [::1]");
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(!rules.contains(&format!("dport {p1} ")), "{rules}");

    // [::] with a fixed port: every IPv6 address, still no IPv4.
    let fixed = free_port6();
    let any = berth_testsupport::unique_name("web6any");
    let spec = format!("[::]:{fixed}:80");
    n.run_detached(&any, &net, &["-p", &spec, "bb", "sh", "-c", &script]);
    n.note_veths();
    assert_eq!(ports_json(&n, &any)["80/tcp"], bindings(&[("::", fixed)]));
    assert_eq!(body(&get6_ready(fixed)), b"hello6\n");
    assert!(tcp_refused(SocketAddr::from(([127, 0, 0, 1], fixed))), "IPv4 answers for [::]");

    // Taken in this root ([::1]:p1 is one's): one sentence naming it, nothing half-made.
    let taken = berth_testsupport::unique_name("web6dup");
    let dup = format!("[::1]:{p1}:80");
    refused_publish(&n, &net, &taken, &dup, &[&format!("[::1]:{p1}/tcp"), "in use"]);
    assert!(n.net_inspect(&net)["Containers"].get(n.env.id(&taken)).is_none());

    // Taken by a host process on [::1] only: the same sentence, nothing half-made.
    let holder = TcpListener::bind("[::1]:0").expect("bind [::1]");
    let held = holder.local_addr().expect("addr").port();
    let busy = berth_testsupport::unique_name("web6busy");
    let spec = format!("[::1]:{held}:80");
    refused_publish(&n, &net, &busy, &spec, &[&format!("[::1]:{held}/tcp"), "in use"]);
    drop(holder);

    // An address the host doesn't have (documentation prefix: binding it sends nothing).
    let foreign = berth_testsupport::unique_name("web6for");
    let spec = format!("[2001:db8::1]:{fixed}:80");
    refused_publish(&n, &net, &foreign, &spec, &["2001:db8::1", &format!("{fixed}/tcp")]);
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(2), "{rec}");

    // Bad syntax: refused before anything is created, naming the value.
    for bad in ["[::1:8080:80", "[::1]:80", "[fe80::zz]:8080:80"] {
        let out = n.env.run(&["container", "create", "--network", &net, "-p", bad, "bb", "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(bad), "{bad}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
    n.teardown_and_check();
}

/// A TCP port free on both [::] and 0.0.0.0 (IPv6 only, so both are checked).
fn free_port6() -> u16 {
    // Below the kernel's ephemeral range (32768-60999): a port berth picks for a `ports: ["80"]`
    // service of the same test comes from that range and must not be this one. Each call moves
    // on, so two calls never return the same port.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 12_000;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 12_000, "no free port below the ephemeral range");
        let port = (20_000 + (base - 20_000 + n) % 12_000) as u16;
        if TcpListener::bind(("::1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
}

#[test]
fn compose_net_ipv6_host_ip_short_and_long_syntax() {
    if !has_ipv6() {
        return;
    }
    let (short, long) = (free_port6(), free_port6());
    let compose = format!(
        "services:\n  short:\n    image: bb\n    init: true\n    command: [\"sh\", \"-c\", \"{script}\"]\n    ports: [\"[::1]:{short}:80\"]\n  long:\n    image: bb\n    init: true\n    command: [\"sh\", \"-c\", \"{script}\"]\n    ports:\n      - target: 80\n        published: \"{long}\"\n        host_ip: \"::1\"\n  all:\n    image: bb\n    init: true\n    command: [\"sh\", \"-c\", \"{script}\"]\n    ports: [\"80\"]\n",
        script = web_script()
    );
    let Some(p) = Project::new("cnet6", &compose) else { return };
    p.ok(&["up", "-d"]);
    // compose `port`: the binding as HOST:PORT, IPv6 in brackets; for a port on every address
    // the first one (compose prints the first publisher).
    let (so, _) = p.ok(&["port", "short", "80"]);
    assert_eq!(so.trim(), format!("[::1]:{short}"));
    let (so, _) = p.ok(&["port", "long", "80"]);
    assert_eq!(so.trim(), format!("[::1]:{long}"));
    let (so, _) = p.ok(&["port", "all", "80"]);
    let all: u16 =
        so.trim().strip_prefix("0.0.0.0:").and_then(|x| x.parse().ok()).expect("0.0.0.0:PORT");
    for port in [short, long, all] {
        assert_eq!(body(&get6_ready(port)), b"hello6\n", "[::1]:{port}");
    }
    assert!(tcp_refused(SocketAddr::from(([127, 0, 0, 1], short))), "IPv4 answers for [::1]");
    let (so, _) = p.ok(&["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> =
        so.lines().map(|l| serde_json::from_str(l).expect("ps json")).collect();
    let row = |svc: &str| rows.iter().find(|r| r["Service"] == svc).expect("service row").clone();
    assert_eq!(row("short")["Ports"], format!("[::1]:{short}->80/tcp").as_str());
    assert_eq!(row("long")["Publishers"][0]["URL"], "::1");
    assert_eq!(row("all")["Ports"], format!("0.0.0.0:{all}->80/tcp, [::]:{all}->80/tcp").as_str());
    let all_row = row("all");
    let urls: Vec<&str> = all_row["Publishers"]
        .as_array()
        .expect("publishers")
        .iter()
        .filter_map(|x| x["URL"].as_str())
        .collect();
    assert_eq!(urls, ["0.0.0.0", "::"]);
    let (so, _) = p.ok(&["ps"]);
    assert!(so.contains(&format!("[::1]:{long}->80/tcp")), "{so}");
    p.ok(&["down"]);
    TcpListener::bind(("::1", short)).expect("[::1] port released by down");
}

#[test]
fn net_ipv6_live_connect_makes_and_moves_the_ipv6_bindings() {
    if !has_ipv6() {
        return;
    }
    let Some(n) = NetEnv::new() else { return };
    let (a, b) = (n.network("nw6la", &[]), n.network("nw6lb", &[]));
    let c = berth_testsupport::unique_name("web6live");
    let script = "mkdir -p /www && echo hello6 > /www/index.html && httpd -p 80 -h /www && \
                  httpd -p 81 -h /www && trap 'exit 0' TERM; sleep 3600 & wait";
    let args = ["-p", "0:80", "-p", "[::1]::81", "bb", "sh", "-c", script];
    n.run_detached(&c, "none", &args);
    // Two bindings for 80 (IPv4 + [::]) and one for 81 ([::1]), once the monitor made them.
    let settled = |n: &NetEnv| {
        let v = ports_json(n, &c);
        let count = |k: &str| v[k].as_array().map(|x| x.len()).unwrap_or(0);
        (count("80/tcp") == 2 && count("81/tcp") == 1).then_some(v)
    };
    n.env.ok(&["network", "connect", &a, &c]);
    n.note_veths();
    n.env.wait_for("the IPv6 bindings after connect", 10, || settled(&n).is_some());
    let v = settled(&n).expect("bindings");
    let p = bound_port(&n, &c, "80/tcp", 0);
    let q = bound_port(&n, &c, "81/tcp", 0);
    assert_eq!(v["80/tcp"], bindings(&[("0.0.0.0", p), ("::", p)]), "{v}");
    assert_eq!(v["81/tcp"], bindings(&[("::1", q)]), "{v}");
    assert_eq!(body(&get6_ready(p)), b"hello6\n");
    assert_eq!(body(&get6_ready(q)), b"hello6\n");
    // A second network changes nothing; leaving the first moves the bindings to it.
    n.env.ok(&["network", "connect", &b, &c]);
    n.note_veths();
    n.env.ok(&["network", "disconnect", &a, &c]);
    n.env.wait_for("the bindings on the second network", 10, || {
        settled(&n).is_some() && bound_port(&n, &c, "80/tcp", 0) != p
    });
    let p2 = bound_port(&n, &c, "80/tcp", 0);
    assert_eq!(bound_port(&n, &c, "80/tcp", 1), p2);
    assert_eq!(body(&get6_ready(p2)), b"hello6\n");
    assert_eq!(body(&get6_ready(bound_port(&n, &c, "81/tcp", 0))), b"hello6\n");
    n.env.wait_for("the old [::] socket to close", 5, || refused(p));
    // Leaving the last network: no binding, nothing listens on IPv6.
    let q2 = bound_port(&n, &c, "81/tcp", 0);
    n.env.ok(&["network", "disconnect", &b, &c]);
    n.env.wait_for("the IPv6 sockets to close", 5, || refused(p2) && refused(q2));
    assert_eq!(ports_json(&n, &c)["80/tcp"], serde_json::Value::Null);
    n.teardown_and_check();
}
