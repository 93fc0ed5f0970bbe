//! Published TCP ports answer over IPv6 through the monitor's userland proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

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
    // The server may still be starting: retry until it answers (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        match get6(port, "/", false) {
            Ok(r) if r.starts_with(b"HTTP/1.") && r.windows(3).any(|w| w == b"200") => break r,
            other => assert!(Instant::now() < deadline, "GET [::1]:{port}/: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
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
    let out = n.env.run(&[
        "container",
        "run",
        "-d",
        "--name",
        &web,
        "--network",
        &net,
        "-p",
        &spec,
        "bb",
        "httpd",
        "-f",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!("[::]:{port}/tcp"))
            && err.contains("in use"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert_eq!(n.env.inspect(&web, "{{.State.Status}}"), "created");
    // Nothing half-made: no rule, no endpoint, the IPv4 port is free again.
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(!rules.contains(&format!("dport {port} ")), "{rules}");
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()).unwrap_or(0), 0, "{rec}");
    TcpListener::bind(("0.0.0.0", port)).expect("IPv4 port released");
    drop(holder);
    n.teardown_and_check();
}
