//! Bridge networking end to end: real containers on berth networks (names, aliases, isolation,
//! internal networks, published ports, static addresses, `container:` mode). Traffic only goes
//! to loopback and to the containers these tests create. Every test tears down through a Drop
//! guard (containers, networks, the root's DNS server) and then checks that none of its
//! bridges, veths, nft rules or DNS processes is left.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::ContainerEnv;

/// A container root plus the networks a test made; removes them all on drop.
pub(super) struct NetEnv {
    pub(super) env: ContainerEnv,
    networks: std::cell::RefCell<Vec<String>>,
    /// Kernel objects seen while the test ran: bridges, host veths, network ids.
    seen: std::cell::RefCell<Seen>,
}

#[derive(Default)]
struct Seen {
    bridges: Vec<String>,
    veths: Vec<String>,
    ids: Vec<String>,
}

impl NetEnv {
    pub(super) fn new() -> Option<Self> {
        Some(NetEnv {
            env: ContainerEnv::new()?,
            networks: Default::default(),
            seen: Default::default(),
        })
    }

    /// `container run -d --name NAME --network NET ARGS...` (ARGS: more flags, the image and its
    /// command); asserts success and returns stdout (the container id).
    pub(super) fn run_detached(&self, name: &str, network: &str, args: &[&str]) -> String {
        let mut all = vec!["container", "run", "-d", "--name", name, "--network", network];
        all.extend_from_slice(args);
        self.env.ok(&all)
    }

    /// Creates a network with a unique name; returns the name.
    pub(super) fn network(&self, prefix: &str, extra: &[&str]) -> String {
        let name = berth_testsupport::unique_name(prefix);
        let mut args = vec!["network", "create"];
        args.extend_from_slice(extra);
        args.push(&name);
        self.networks.borrow_mut().push(name.clone());
        self.env.ok(&args);
        let rec = self.net_inspect(&name);
        let id = rec["Id"].as_str().unwrap_or_default().to_string();
        let mut seen = self.seen.borrow_mut();
        seen.bridges.push(format!("brt-{}", &id[..10]));
        seen.ids.push(id);
        name
    }

    /// Tracks a network made by other means (removed on teardown, checked for leftovers).
    pub(super) fn track(&self, name: &str) {
        self.networks.borrow_mut().push(name.to_string());
        let out = self.env.run(&["network", "inspect", name]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(id) = v[0]["Id"].as_str().filter(|id| id.len() >= 12) {
            let mut seen = self.seen.borrow_mut();
            seen.bridges.push(format!("brt-{}", &id[..10]));
            seen.ids.push(id.to_string());
        }
    }

    pub(super) fn net_inspect(&self, name: &str) -> serde_json::Value {
        let out = self.env.ok(&["network", "inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("network inspect json");
        v[0].clone()
    }

    /// The network's gateway with the last octet replaced (an address inside its subnet).
    pub(super) fn addr_in(&self, name: &str, last: u8) -> String {
        let rec = self.net_inspect(name);
        let gw = rec["IPAM"]["Config"][0]["Gateway"].as_str().expect("gateway").to_string();
        let mut parts: Vec<&str> = gw.split('.').collect();
        let last = last.to_string();
        parts[3] = &last;
        parts.join(".")
    }

    /// Remembers the host veths currently recorded in the root's network states.
    pub(super) fn note_veths(&self) {
        for (_, v) in self.env.network_records() {
            if let Some(eps) = v["endpoints"].as_object() {
                for ep in eps.values() {
                    if let Some(h) = ep["endpoint"]["host_ifname"].as_str() {
                        self.seen.borrow_mut().veths.push(h.to_string());
                    }
                }
            }
        }
    }

    /// The container's `NetworkSettings.Networks.<net>` entry.
    pub(super) fn endpoint(&self, container: &str, net: &str) -> serde_json::Value {
        let j = self.env.inspect(container, "{{json .NetworkSettings.Networks}}");
        let v: serde_json::Value = serde_json::from_str(&j).expect("networks json");
        v[net].clone()
    }

    pub(super) fn ip_of(&self, container: &str, net: &str) -> String {
        self.endpoint(container, net)["IPAddress"].as_str().unwrap_or_default().to_string()
    }

    /// Removes containers, networks and the DNS server; idempotent.
    fn teardown(&self) {
        self.note_veths();
        let out = self.env.run(&["container", "ls", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.env.run(&["container", "rm", "--force", "--volumes", id]);
        }
        let mut nets = self.networks.borrow().clone();
        nets.push("bridge".into());
        for n in nets {
            let _ = self.env.run(&["network", "rm", "--force", &n]);
        }
        // The server exits by itself once no network is left; kill it if it hasn't.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dns_pids(&self.env.path()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in dns_pids(&self.env.path()) {
            // SAFETY: kill has no memory effects; the pid runs this test root's DNS server.
            unsafe { libc_kill(pid) };
        }
    }

    /// Tears down, then asserts no bridge, veth, nft rule or DNS process of this test is left.
    pub(super) fn teardown_and_check(&self) {
        self.teardown();
        let seen = self.seen.borrow();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let links = run_cmd("ip", &["-o", "link"]);
            let left: Vec<&String> = seen
                .bridges
                .iter()
                .chain(seen.veths.iter())
                .filter(|l| links.contains(&format!(" {l}:")) || links.contains(&format!(" {l}@")))
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "links left: {left:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
        for id in &seen.ids {
            assert!(!rules.contains(&format!("net:{}", &id[..12])), "nft rules left for {id}");
        }
        assert!(dns_pids(&self.env.path()).is_empty(), "DNS server left");
    }
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        self.teardown();
    }
}

// Declared here so the tests need no libc dependency of their own.
unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

unsafe fn libc_kill(pid: i32) {
    // SAFETY: forwarded from the caller; SIGKILL = 9.
    unsafe { kill(pid, 9) };
}

pub(super) fn run_cmd(prog: &str, args: &[&str]) -> String {
    std::process::Command::new(prog)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Pids of `berth --root ROOT __dns` processes of this root.
pub(super) fn dns_pids(root: &Path) -> Vec<i32> {
    let root = root.to_string_lossy().to_string();
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("__dns") && cmd.contains(&root) {
            out.push(pid);
        }
    }
    out
}

/// Shell statement that retries `cmd` every 100 ms and fails the script after ~10 s (waits
/// for a server to listen).
pub(super) fn retry(cmd: &str) -> String {
    format!(
        "i=0; until {cmd}; do i=$((i+1)); if [ $i -ge 100 ]; then echo 'gave up: {cmd}'; exit 1; fi; sleep 0.1; done"
    )
}

/// GET `path` from 127.0.0.1:`port`, retrying until `secs` pass; returns the response.
pub(super) fn http_get(port: u16, path: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let attempt = || -> std::io::Result<String> {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        match attempt() {
            Ok(r) if r.contains("200") => return r,
            other => assert!(Instant::now() < deadline, "GET 127.0.0.1:{port}{path}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn net_containers_talk_by_name_alias_and_static_ip() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwa", &[]);
    let ip = n.addr_in(&net, 50);
    let web = berth_testsupport::unique_name("web");
    n.run_detached(
        &web,
        &net,
        &[
            "--network-alias",
            "webalias",
            "--ip",
            &ip,
            "bb",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ],
    );
    assert_eq!(n.ip_of(&web, &net), ip, "static --ip honoured");
    let aliases = n.endpoint(&web, &net)["Aliases"].to_string();
    assert!(aliases.contains("webalias"), "aliases: {aliases}");
    n.note_veths();
    // By container name and by alias, over TCP through berth's DNS.
    let script = format!(
        "{} && {} && grep -q nameserver /etc/resolv.conf && ip route | grep -q default",
        retry(&format!("wget -q -O - http://{web}/passwd | grep -q root:")),
        retry("wget -q -O - http://webalias/group | grep -q root:"),
    );
    let client = berth_testsupport::unique_name("cli");
    let out = n.env.run(&[
        "container",
        "run",
        "--name",
        &client,
        "--network",
        &net,
        "bb",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "client failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Compose labels give the service name and `{service}-{n}` as DNS names.
    let svc = berth_testsupport::unique_name("svc");
    n.env.ok(&[
        "container",
        "run",
        "-d",
        "--network",
        &net,
        "--label",
        &format!("com.docker.compose.service={svc}"),
        "--label",
        "com.docker.compose.container-number=2",
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let script = format!(
        "{} && {}",
        retry(&format!("wget -q -O - http://{svc}/passwd | grep -q root:")),
        retry(&format!("wget -q -O - http://{svc}-2/group | grep -q root:"))
    );
    n.env.ok(&["container", "run", "--rm", "--network", &net, "bb", "sh", "-c", &script]);
    n.note_veths();
    // A rename changes the DNS name at once.
    let renamed = format!("{web}-r");
    n.env.ok(&["container", "rename", &web, &renamed]);
    let script = format!(
        "{} && ! nslookup {web} >/dev/null 2>&1",
        retry(&format!("wget -q -O - http://{renamed}/passwd | grep -q root:"))
    );
    n.env.ok(&["container", "run", "--rm", "--network", &net, "bb", "sh", "-c", &script]);
    // The client's endpoint went away with its process.
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(2), "{rec}");
    // A taken static address is a clear error naming network and address.
    let out = n.env.run(&["container", "run", "-d", "--network", &net, "--ip", &ip, "bb", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&ip) && err.contains(&net), "{err}");
    n.teardown_and_check();
}

#[test]
fn net_isolation_multi_homed_and_connect() {
    let Some(n) = NetEnv::new() else { return };
    let a = n.network("nwia", &[]);
    let b = n.network("nwib", &[]);
    let wa = berth_testsupport::unique_name("wa");
    let wb = berth_testsupport::unique_name("wb");
    for (name, net) in [(&wa, &a), (&wb, &b)] {
        n.run_detached(name, net, &["bb", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    }
    let ip_b = n.ip_of(&wb, &b);
    // On A only: B's name doesn't resolve and its address isn't reachable.
    let script = format!(
        "{}; if nslookup {wb} >/dev/null 2>&1; then echo resolved; exit 1; fi; \
         if timeout 3 wget -q -O - http://{ip_b}/passwd; then echo reached; exit 1; fi; exit 0",
        retry(&format!("wget -q -O - http://{wa}/passwd >/dev/null"))
    );
    let out = n.env.run(&["container", "run", "--network", &a, "bb", "sh", "-c", &script]);
    assert!(
        out.status.success(),
        "isolation: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // On both (created on A, connected to B before start): reaches both by name, eth0 + eth1.
    let both = berth_testsupport::unique_name("both");
    let script = format!(
        "{} && {} && ip link show eth1 >/dev/null",
        retry(&format!("wget -q -O - http://{wa}/passwd | grep -q root:")),
        retry(&format!("wget -q -O - http://{wb}/passwd | grep -q root:")),
    );
    n.env.ok(&["container", "create", "--name", &both, "--network", &a, "bb", "sh", "-c", &script]);
    n.env.ok(&["network", "connect", &b, &both]);
    n.env.ok(&["container", "start", &both]);
    let code = n.env.ok(&["container", "wait", &both]);
    assert_eq!(code.trim(), "0", "multi-homed client: {}", n.env.ok(&["container", "logs", &both]));
    // A network with endpoints can't be removed.
    let out = n.env.run(&["network", "rm", &a]);
    assert!(!out.status.success(), "removing a network in use must fail");
    n.teardown_and_check();
}

#[test]
fn net_internal_network_has_no_default_route() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwint", &["--internal"]);
    let out = n.env.ok(&["container", "run", "--network", &net, "bb", "ip", "route"]);
    assert!(!out.contains("default"), "internal network has a default route: {out}");
    assert!(out.contains("eth0"), "no route on eth0: {out}");
    // An unknown network is one sentence naming it, and nothing is created.
    let missing = berth_testsupport::unique_name("nosuch");
    let before = n.env.ok(&["container", "ls", "-aq"]);
    let out = n.env.run(&["container", "run", "--network", &missing, "bb", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&missing) && err.contains("not found"), "{err}");
    assert_eq!(n.env.ok(&["container", "ls", "-aq"]), before);
    // Two --network flags: the first (non-internal) owns the default route, eth0 and eth1.
    let outer = n.network("nwout", &[]);
    let out = n.env.ok(&[
        "container",
        "run",
        "--network",
        &outer,
        "--network",
        &net,
        "bb",
        "ip",
        "route",
    ]);
    assert!(
        out.contains("default") && out.contains("dev eth0") && out.contains("dev eth1"),
        "{out}"
    );
    assert!(!out.lines().any(|l| l.starts_with("default") && l.contains("eth1")), "{out}");
    n.teardown_and_check();
}

#[test]
fn net_published_port_random_and_taken() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwp", &[]);
    let web = berth_testsupport::unique_name("pweb");
    n.run_detached(
        &web,
        &net,
        &["-p", "127.0.0.1:0:80", "bb", "httpd", "-f", "-p", "80", "-h", "/etc"],
    );
    n.note_veths();
    let port: u16 = n
        .env
        .inspect(&web, "{{json .NetworkSettings.Ports}}")
        .split("\"HostPort\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .expect("HostPort in inspect");
    assert_ne!(port, 0);
    let resp = http_get(port, "/passwd", 15);
    assert!(resp.contains("root:"), "{resp}");
    let ls = n.env.ok(&["container", "ls"]);
    assert!(ls.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ls}");
    // The same port again: one sentence naming the port; no rule, no veth, not running.
    let other = berth_testsupport::unique_name("ptaken");
    let spec = format!("127.0.0.1:{port}:80");
    let out = n.env.run(&[
        "container",
        "run",
        "-d",
        "--name",
        &other,
        "--network",
        &net,
        "--publish",
        &spec,
        "bb",
        "httpd",
        "-f",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&port.to_string()) && err.contains("in use"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert_eq!(n.env.inspect(&other, "{{.State.Status}}"), "created");
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert_eq!(rules.matches(&format!("dport {port} ")).count(), 1, "{rules}");
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(1), "{rec}");
    // A host range takes its first free port: here not the taken one.
    let ranged = berth_testsupport::unique_name("prange");
    let spec = format!("127.0.0.1:{port}-{}:80", port.saturating_add(20));
    n.run_detached(
        &ranged,
        &net,
        &["--publish", &spec, "bb", "httpd", "-f", "-p", "80", "-h", "/etc"],
    );
    let got = n.env.inspect(&ranged, "{{json .NetworkSettings.Ports}}");
    let p3: u16 = got
        .split("\"HostPort\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no HostPort: {got}"));
    assert!(p3 > port && p3 <= port.saturating_add(20), "{p3} from {spec}");
    assert!(http_get(p3, "/group", 15).contains("root:"));
    n.env.ok(&["container", "rm", "--force", &ranged]);
    // -P publishes exposed ports on random host ports (every address, so 127.0.0.1 too).
    let all = berth_testsupport::unique_name("pall");
    n.run_detached(
        &all,
        &net,
        &["-P", "--expose", "80", "bb", "httpd", "-f", "-p", "80", "-h", "/etc"],
    );
    let ports = n.env.inspect(&all, "{{json .NetworkSettings.Ports}}");
    let p2: u16 = ports
        .split("\"HostPort\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no HostPort for -P: {ports}"));
    assert!(ports.contains("0.0.0.0"), "{ports}");
    assert!(http_get(p2, "/group", 15).contains("root:"));
    n.env.ok(&["container", "rm", "--force", &all]);
    // Stopping removes the rule.
    n.env.ok(&["container", "rm", "--force", &web]);
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(!rules.contains(&format!("dport {port} ")), "{rules}");
    n.teardown_and_check();
}

#[test]
fn net_container_mode_shares_the_namespace() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwc", &[]);
    let web = berth_testsupport::unique_name("cweb");
    n.run_detached(&web, &net, &["bb", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let ip = n.ip_of(&web, &net);
    n.note_veths();
    let mode = format!("container:{web}");
    let script = format!(
        "{} && ip addr show eth0 | grep -q 'inet {ip}/'",
        retry("wget -q -O - http://127.0.0.1/passwd | grep -q root:")
    );
    n.env.ok(&["container", "run", "--network", &mode, "bb", "sh", "-c", &script]);
    // Joining a container that doesn't exist fails at create.
    let out = n.env.run(&["container", "create", "--network", "container:nosuchbox", "bb", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nosuchbox"), "{err}");
    // Joining a container that doesn't run is an error naming it.
    let idle = berth_testsupport::unique_name("idle");
    n.env.ok(&["container", "create", "--name", &idle, "bb", "true"]);
    let out =
        n.env.run(&["container", "run", "--network", &format!("container:{idle}"), "bb", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&idle) && err.contains("not running"), "{err}");
    n.teardown_and_check();
}

#[test]
fn net_default_bridge_and_hosts_entries() {
    let Some(n) = NetEnv::new() else { return };
    let out = n.env.ok(&[
        "container",
        "run",
        "--network",
        "bridge",
        "--hostname",
        "box",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "db:10.9.8.7",
        "--dns-search",
        "example.test",
        "bb",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    let rec = n.net_inspect("bridge");
    n.seen.borrow_mut().ids.push(rec["Id"].as_str().unwrap_or_default().to_string());
    let id = rec["Id"].as_str().unwrap_or_default();
    n.seen.borrow_mut().bridges.push(format!("brt-{}", &id[..10]));
    let gw = rec["IPAM"]["Config"][0]["Gateway"].as_str().expect("gateway");
    assert!(out.contains(&format!("{gw}\tgw")), "{out}");
    assert!(out.contains("10.9.8.7\tdb") && out.contains("\tbox"), "{out}");
    assert!(
        out.contains(&format!("nameserver {gw}")) && out.contains("search example.test"),
        "{out}"
    );
    // --mac-address is the interface's address; `network ls` lists the default network.
    let mac = n.env.ok(&[
        "container",
        "run",
        "--network",
        "bridge",
        "--mac-address",
        "02:42:0a:0b:0c:0d",
        "bb",
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    assert_eq!(mac.trim(), "02:42:0a:0b:0c:0d");
    // Docker's legacy top-level address fields are filled on the default bridge network.
    let top = berth_testsupport::unique_name("top");
    n.env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &top,
        "--network",
        "bridge",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    let ip = n.env.inspect(&top, "{{.NetworkSettings.IPAddress}}");
    assert_eq!(ip, n.ip_of(&top, "bridge"));
    assert!(!ip.is_empty());
    n.note_veths();
    // Publishing without --network implies the default bridge.
    let implied = berth_testsupport::unique_name("impl");
    n.env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &implied,
        "-p",
        "127.0.0.1:0:80",
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    assert_eq!(n.env.inspect(&implied, "{{.HostConfig.NetworkMode}}"), "bridge");
    n.note_veths();
    let ports = n.env.inspect(&implied, "{{json .NetworkSettings.Ports}}");
    let p: u16 = ports
        .split("\"HostPort\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no HostPort: {ports}"));
    assert!(http_get(p, "/group", 15).contains("root:"));
    let ls = n.env.ok(&["network", "ls"]);
    assert!(ls.lines().any(|l| l.contains(" bridge ")), "{ls}");
    // Without a network, --dns and --add-host still shape the files.
    let out = n.env.ok(&[
        "container",
        "run",
        "--network",
        "none",
        "--dns",
        "192.0.2.53",
        "--add-host",
        "db:10.9.8.7",
        "bb",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(out.contains("nameserver 192.0.2.53") && out.contains("10.9.8.7\tdb"), "{out}");
    n.teardown_and_check();
}

#[test]
fn net_restarts_reconnect_and_disconnect_detaches() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwr", &[]);
    // The restart policy reconnects every run: three runs, three addresses on eth0.
    let flappy = berth_testsupport::unique_name("flap");
    n.run_detached(
        &flappy,
        &net,
        &["--restart", "on-failure:2", "bb", "sh", "-c", "ip -o -4 addr show eth0; exit 1"],
    );
    n.env.wait_for("restarts to finish", 30, || {
        n.env.inspect(&flappy, "{{.State.Status}}") == "exited"
            && n.env.inspect(&flappy, "{{.RestartCount}}") == "2"
    });
    let logs = n.env.ok(&["container", "logs", &flappy]);
    assert_eq!(logs.matches("inet ").count(), 3, "{logs}");
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(0), "{rec}");
    // `container restart` reconnects; `network disconnect` detaches a running container.
    let web = berth_testsupport::unique_name("rweb");
    n.run_detached(
        &web,
        &net,
        &["--stop-timeout", "1", "bb", "httpd", "-f", "-p", "80", "-h", "/etc"],
    );
    n.env.ok(&["container", "restart", &web]);
    n.note_veths();
    let script = retry(&format!("wget -q -O - http://{web}/passwd | grep -q root:"));
    n.env.ok(&["container", "run", "--network", &net, "bb", "sh", "-c", &script]);
    n.env.ok(&["network", "disconnect", &net, &web]);
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(0), "{rec}");
    assert!(n.endpoint(&web, &net).is_null(), "still listed after disconnect");
    // A monitor killed with -9 can't detach: the next look at the container does, and a new
    // start connects again.
    let orphan = berth_testsupport::unique_name("orph");
    n.run_detached(
        &orphan,
        &net,
        &["--publish", "127.0.0.1:0:80", "bb", "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
    );
    n.note_veths();
    let mon = n.env.state_record(&orphan)["MonitorPid"].as_i64().unwrap_or(0) as i32;
    assert!(mon > 0);
    // SAFETY: kill has no memory effects; mon is this test's monitor process.
    unsafe { libc_kill(mon) };
    n.env.wait_for("monitor gone", 5, || {
        std::fs::read_to_string(format!("/proc/{mon}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    assert_eq!(n.env.inspect(&orphan, "{{.State.Status}}"), "exited");
    let rec = n.net_inspect(&net);
    assert_eq!(rec["Containers"].as_object().map(|m| m.len()), Some(0), "{rec}");
    let rules = run_cmd("nft", &["list", "table", "ip", "berth"]);
    let tag = format!("net:{}", &rec["Id"].as_str().unwrap_or("-")[..12]);
    assert!(!rules.lines().any(|l| l.contains("dport") && l.contains(&tag)), "{rules}");
    n.env.ok(&["container", "start", &orphan]);
    assert!(!n.ip_of(&orphan, &net).is_empty(), "no address after restart");
    n.teardown_and_check();
}

#[test]
fn net_concurrent_starts_on_one_network() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwcc", &[]);
    let names: Vec<String> =
        (0..4).map(|i| berth_testsupport::unique_name(&format!("cc{i}x"))).collect();
    let root = n.env.path();
    let handles: Vec<_> = names
        .iter()
        .map(|name| {
            let (root, name, net) = (root.clone(), name.clone(), net.clone());
            std::thread::spawn(move || {
                crate::support::berth(
                    &root,
                    &[
                        "container",
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        &net,
                        "bb",
                        "httpd",
                        "-f",
                        "-p",
                        "80",
                        "-h",
                        "/etc",
                    ],
                )
            })
        })
        .collect();
    for h in handles {
        let out = h.join().expect("thread");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    n.note_veths();
    let ips: std::collections::BTreeSet<String> = names.iter().map(|c| n.ip_of(c, &net)).collect();
    assert_eq!(ips.len(), 4, "distinct addresses: {ips:?}");
    let script = names
        .iter()
        .map(|c| retry(&format!("wget -q -O - http://{c}/passwd | grep -q root:")))
        .collect::<Vec<_>>()
        .join(" && ");
    n.env.ok(&["container", "run", "--rm", "--network", &net, "bb", "sh", "-c", &script]);
    n.teardown_and_check();
}

/// Host veths the root's network records remember as lingering (exited containers' veths
/// left to the kernel's namespace cleanup).
fn lingering(n: &NetEnv) -> Vec<String> {
    let mut out = Vec::new();
    for (_, v) in n.env.network_records() {
        for l in v["lingering"].as_array().into_iter().flatten() {
            out.extend(l["host_ifname"].as_str().map(String::from));
        }
    }
    out
}

fn link_listed(name: &str) -> bool {
    let links = run_cmd("ip", &["-o", "link"]);
    links.contains(&format!(" {name}@")) || links.contains(&format!(" {name}:"))
}

#[test]
fn net_exited_container_veth_goes_with_its_namespace_unless_a_joiner_holds_it() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nwx", &[]);
    // Exits on its own: the monitor records the veth as lingering and the kernel deletes the
    // pair with the namespace.
    let quick = berth_testsupport::unique_name("quick");
    n.run_detached(&quick, &net, &["bb", "true"]);
    n.env.wait_for("the container to exit", 10, || {
        n.env.inspect(&quick, "{{.State.Status}}") == "exited"
    });
    let left = lingering(&n);
    assert_eq!(left.len(), 1, "{left:?}");
    n.seen.borrow_mut().veths.extend(left.iter().cloned());
    n.env.wait_for("the kernel to delete the exited container's veth", 10, || {
        !link_listed(&left[0])
    });
    // It starts again on a fresh veth.
    n.env.ok(&["container", "start", &quick]);
    // A `container:` joiner keeps the namespace alive after its owner stops: then the owner's
    // veth is deleted before `stop` returns, and the joiner is off the network.
    let web = berth_testsupport::unique_name("jweb");
    n.run_detached(&web, &net, &["--stop-timeout", "1", "bb", "sleep", "3600"]);
    n.note_veths();
    let rec = n.net_inspect(&net);
    let veth = {
        let mut found = None;
        for (_, v) in n.env.network_records() {
            let id = n.env.inspect(&web, "{{.Id}}");
            if let Some(h) = v["endpoints"][&id]["endpoint"]["host_ifname"].as_str() {
                found = Some(h.to_string());
            }
        }
        found.unwrap_or_else(|| panic!("no endpoint of {web} in {rec}"))
    };
    let joiner = berth_testsupport::unique_name("joiner");
    let mode = format!("container:{web}");
    n.env.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        &joiner,
        "--network",
        &mode,
        "bb",
        "sleep",
        "3600",
    ]);
    assert!(link_listed(&veth));
    n.env.ok(&["container", "stop", &web]);
    assert!(!link_listed(&veth), "veth {veth} of {web} left while its joiner runs");
    let out = n.env.ok(&["container", "exec", &joiner, "ip", "-o", "link"]);
    assert!(!out.contains("eth0"), "{out}");
    n.teardown_and_check();
}

/// A container's run state and its network's endpoint record are rewritten in place: a
/// stop/start cycle allocates no inode for them (each new inode costs a scan of recently freed
/// ones on a journal-less ext4), and readers see every change.
#[test]
fn net_state_and_endpoint_records_are_rewritten_in_place() {
    let Some(n) = NetEnv::new() else { return };
    let net = n.network("nip", &[]);
    let c = berth_testsupport::unique_name("inplace");
    n.run_detached(&c, &net, &["--stop-timeout", "1", "bb", "sleep", "3600"]);
    n.note_veths();
    let id = n.env.id(&c);
    let net_id = n.net_inspect(&net)["Id"].as_str().unwrap().to_string();
    let state = n.env.path().join("containers").join(&id).join("state.json");
    let live = n.env.path().join("networks").join(format!("{net_id}.live"));
    let (state_ino, live_ino) = (crate::support::inode(&state), crate::support::inode(&live));
    for round in 0..2 {
        n.env.ok(&["container", "stop", &c]);
        assert_eq!(n.env.inspect(&c, "{{.State.Status}}"), "exited", "round {round}");
        assert_eq!(n.endpoint(&c, &net)["IPAddress"], "", "round {round}: endpoint kept");
        n.env.ok(&["container", "start", &c]);
        assert_eq!(n.env.inspect(&c, "{{.State.Status}}"), "running", "round {round}");
        assert_ne!(n.ip_of(&c, &net), "", "round {round}: no address after start");
        n.note_veths();
        assert_eq!(
            crate::support::inode(&state),
            state_ino,
            "round {round}: state.json was replaced"
        );
        assert_eq!(
            crate::support::inode(&live),
            live_ino,
            "round {round}: {net_id}.live was replaced"
        );
    }
    assert_eq!(n.env.state_record(&c)["State"]["Running"], true);
    let temps: Vec<_> = [state.parent().unwrap(), live.parent().unwrap()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
    n.env.ok(&["container", "rm", "-f", &c]);
    n.teardown_and_check();
}
