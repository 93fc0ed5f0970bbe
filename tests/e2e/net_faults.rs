//! Network faults and attacks (issue 15): DNS answers a container's first query on a new
//! network; a container cannot reach the host's loopback services; a network whose creator was
//! killed half-way is listed, removable and completed; damaged records are reported and
//! removable without blocking anything else; a full disk leaves no temp file. Traffic only goes
//! to loopback and to the containers and bridges these tests create.

use std::time::{Duration, Instant};

use berth_testsupport::unique_name;

use super::net::{NetEnv, dns_pids};

/// A command that keeps running and stops at once on SIGTERM.
const SLEEP: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

/// Runs a container on `net` with `script` as its first and only command; asserts it exits 0.
fn first_command(n: &NetEnv, name: &str, net: &str, script: &str) {
    let out = n.env.run(&[
        "container",
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        net,
        "bb",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.status.success(),
        "{script:?} on the new network {net} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn net_dns_answers_the_first_query_on_a_new_network() {
    let Some(n) = NetEnv::new() else { return };
    let mut kept: Vec<String> = Vec::new();
    for round in 0..6 {
        if round % 2 == 0 {
            // No server runs: the container's start starts it (with the sockets bound).
            for net in kept.drain(..) {
                n.env.ok(&["network", "rm", &net]);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !dns_pids(&n.env.path()).is_empty() {
                assert!(Instant::now() < deadline, "the DNS server did not exit when idle");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // The very first container of a new network asks for its own name.
        let net = n.network("ndns", &[]);
        let me = unique_name("first");
        first_command(&n, &me, &net, &format!("nslookup {me}"));
        // Another new network: a service, then a client whose first command looks it up.
        let net2 = n.network("ndns2", &[]);
        let db = unique_name("db");
        n.run_detached(&db, &net2, &["bb", "sh", "-c", SLEEP]);
        let app = unique_name("app");
        first_command(&n, &app, &net2, &format!("nslookup {db} && nslookup {app}"));
        n.env.ok(&["container", "rm", "-f", &db]);
        kept.push(net);
        kept.push(net2);
        assert!(!dns_pids(&n.env.path()).is_empty(), "round {round}: no DNS server");
        assert_eq!(dns_pids(&n.env.path()).len(), 1, "round {round}: one server per root");
    }
    n.teardown_and_check();
}

/// Builds the attacker (tests/e2e/attack.c) statically into `dir`.
fn build_attacker(dir: &std::path::Path) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/attack.c");
    let out = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("attack"))
        .arg(&src)
        .output()
        .expect("this test needs a C compiler with static libc: apt-get install gcc libc6-dev");
    assert!(out.status.success(), "cc attack.c: {}", String::from_utf8_lossy(&out.stderr));
}

/// Accepts one connection on `l` (non-blocking) within `secs`, returning what it sent.
fn accept_within(l: &std::net::TcpListener, secs: u64) -> Option<String> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match l.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).unwrap_or(0);
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// A container (default capabilities: CAP_NET_RAW) crafts frames to the bridge's MAC: a SYN
/// to host services bound only to 127.0.0.1 and ::1, and to a closed 127.0.0.1 port (a port
/// scan), and a UDP datagram posing as 127.0.0.1. None gets through (issue 15 item 2); the same
/// frames to the gateway address do (so the attacker works), and a port published on 127.0.0.1
/// still answers from the host.
#[test]
fn net_bridge_cannot_reach_host_loopback() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
    let Some(n) = NetEnv::new() else { return };
    let bin = tempfile::tempdir().expect("temp dir");
    build_attacker(bin.path());
    let net = n.network("nlo", &["--ipv6"]);
    let rec = n.net_inspect(&net);
    let cfg = &rec["IPAM"]["Config"];
    let gw: Ipv4Addr = cfg[0]["Gateway"].as_str().and_then(|g| g.parse().ok()).expect("gateway");
    let gw6: Ipv6Addr = cfg[1]["Gateway"].as_str().and_then(|g| g.parse().ok()).expect("gw6");
    let id = rec["Id"].as_str().expect("id").to_string();
    let mac = std::fs::read_to_string(format!("/sys/class/net/brt-{}/address", &id[..10]))
        .expect("bridge MAC");
    let mac = mac.trim();
    let spare = n.addr_in(&net, 200);

    // Host services only loopback should reach, and the same on the gateway as a control.
    let listen = |ip: IpAddr| {
        let l = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    };
    let (lo, lo_port) = listen(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (lo6, lo6_port) = listen(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let (ctl, ctl_port) = listen(IpAddr::V4(gw));
    let (_ctl6, ctl6_port) = listen(IpAddr::V6(gw6));
    let closed = crate::support::free_port();
    let udp = UdpSocket::bind(SocketAddr::new(IpAddr::V4(gw), 0)).expect("udp bind");
    udp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let udp_port = udp.local_addr().expect("addr").port();

    // A port published on 127.0.0.1 answers the host.
    let web = unique_name("web");
    let httpd = ["-p", "127.0.0.1:0:80", "bb", "httpd", "-f", "-p", "80", "-h", "/etc"];
    n.run_detached(&web, &net, &httpd);
    let published = n.env.ok(&["container", "port", &web, "80"]);
    let web_port: u16 = published
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("published port: {published:?}"));
    assert!(super::net::http_get(web_port, "/passwd", 10).contains("root:"));

    let attack = |label: &str, mode: &str, src: &str, dst: &str, port: u16| {
        format!("echo {label} $(/t/attack {mode} eth0 {src} {mac} {dst} {port} 2000)")
    };
    let script = [
        attack("ctl4", "tcp4", &spare, &gw.to_string(), ctl_port),
        attack("lo4", "tcp4", &spare, "127.0.0.1", lo_port),
        attack("scan4", "tcp4", &spare, "127.0.0.1", closed),
        attack("ctl6", "tcp6", "-", &gw6.to_string(), ctl6_port),
        attack("lo6", "tcp6", "-", "::1", lo6_port),
        attack("spoof", "udp4", "127.0.0.1", &gw.to_string(), udp_port),
        attack("plain", "udp4", &spare, &gw.to_string(), udp_port),
    ]
    .join("; ");
    let vol = format!("{}:/t:ro", bin.path().display());
    let out = n.env.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        &net,
        "-v",
        &vol,
        "bb",
        "sh",
        "-c",
        &script,
    ]);
    let result = |label: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{label} ")))
            .unwrap_or_else(|| panic!("no {label} line in:\n{out}"))
            .to_string()
    };
    // The attacker works: the gateway answers it and takes its data.
    assert_eq!(result("ctl4"), "SYNACK", "{out}");
    assert_eq!(accept_within(&ctl, 10).as_deref(), Some("hello\n"), "control connection");
    assert_eq!(result("ctl6"), "SYNACK", "{out}");
    // Loopback does not: no answer (no connection, no RST to scan with).
    assert_eq!(result("lo4"), "NONE", "127.0.0.1 answered the container:\n{out}");
    assert_eq!(result("scan4"), "NONE", "a closed 127.0.0.1 port answered:\n{out}");
    assert_eq!(result("lo6"), "NONE", "::1 answered the container:\n{out}");
    assert!(accept_within(&lo, 0).is_none(), "the 127.0.0.1 service got a connection");
    assert!(accept_within(&lo6, 0).is_none(), "the ::1 service got a connection");
    // The datagram posing as 127.0.0.1 was dropped: the first to arrive is the plain one,
    // sent after it.
    assert_eq!((result("spoof"), result("plain")), ("SENT".into(), "SENT".into()), "{out}");
    let mut buf = [0u8; 64];
    let (len, from) = udp.recv_from(&mut buf).expect("the plain datagram");
    assert_eq!(from.ip().to_string(), spare, "first datagram: {:?}", &buf[..len]);
    // Published 127.0.0.1 ports still answer.
    assert!(super::net::http_get(web_port, "/group", 10).contains("root:"));
    n.teardown_and_check();
}

/// Runs `cmd` with `BERTH_TEST_PAUSE_AT=point`, waits until the process has stopped itself
/// there, and kills it (SIGKILL), as a crash at that step would.
fn kill_at(mut cmd: std::process::Command, point: &str) {
    use std::process::Stdio;
    let mut child = cmd
        .env("BERTH_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth");
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("berth exited ({status}) before reaching {point}");
        }
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            break;
        }
        assert!(Instant::now() < deadline, "berth did not reach {point}");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// `berth --root ROOT network create NAME` as a command.
fn create_cmd(n: &NetEnv, name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(crate::support::berth_bin());
    cmd.arg("--root").arg(n.env.path()).args(["network", "create", name]);
    cmd
}

/// What is left on the host of network `id` (subnet `subnet`): its bridge, its nft rules, its
/// subnet in the `subnets` set, its files in the root, its forwarding hold.
fn leftovers(n: &NetEnv, id: &str, subnet: &str) -> Vec<String> {
    let mut left = Vec::new();
    let bridge = format!("brt-{}", &id[..10]);
    // Listings drop a deleted link at once (sysfs only after an RCU grace period).
    if run_cmd("ip", &["-o", "link"]).contains(&format!(" {bridge}:")) {
        left.push(format!("bridge {bridge}"));
    }
    let table = run_cmd("nft", &["list", "table", "ip", "berth"]);
    if table.contains(&format!("net:{}", &id[..12])) {
        left.push("nft rules".into());
    }
    let set = run_cmd("nft", &["list", "set", "ip", "berth", "subnets"]);
    // Once removed, the subnet is free for any root's next network, which adds it again
    // (after making its bridge, whose route then exists): only an element without a route
    // is a leftover.
    let routed = run_cmd("ip", &["-4", "route", "show", subnet]);
    if set.contains(subnet) && routed.trim().is_empty() {
        left.push(format!("{subnet} in the subnets set"));
    }
    for e in std::fs::read_dir(n.env.path().join("networks")).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains(&id[..12]) {
            left.push(format!("file {name}"));
        }
    }
    let fwd = std::fs::read_to_string("/run/berth-network/ip_forward.json").unwrap_or_default();
    if fwd.contains(id) {
        left.push("forwarding hold".into());
    }
    if std::path::Path::new(&format!("/run/berth-network/subnets/{id}.json")).exists() {
        left.push("machine-wide subnet reservation".into());
    }
    left
}

fn run_cmd(prog: &str, args: &[&str]) -> String {
    super::net::run_cmd(prog, args)
}

/// (id, IPv4 subnet) of network `name`.
fn id_and_subnet(n: &NetEnv, name: &str) -> (String, String) {
    let rec = n.net_inspect(name);
    let id = rec["Id"].as_str().expect("id").to_string();
    let subnet = rec["IPAM"]["Config"][0]["Subnet"].as_str().expect("subnet").to_string();
    (id, subnet)
}

/// `network create` killed at each of its steps leaves a network that `network ls` shows and
/// `network rm` removes with all its kernel state (issue 15 item 4); one cut short after its
/// bridge is completed by the next container that connects.
#[test]
fn net_create_killed_at_each_step_is_listed_then_removed_or_completed() {
    let Some(n) = NetEnv::new() else { return };
    for step in ["after-record", "after-bridge", "after-rules", "after-forwarding"] {
        let name = unique_name("nkill");
        kill_at(create_cmd(&n, &name), &format!("network-create:{step}"));
        n.track(&name);
        let ls = n.env.ok(&["network", "ls"]);
        assert!(ls.contains(&name), "{step}: half-made network not listed:\n{ls}");
        let (id, subnet) = id_and_subnet(&n, &name);
        assert!(n.env.path().join(format!("networks/{id}.creating")).exists(), "{step}");
        n.env.ok(&["network", "rm", &name]);
        let left = leftovers(&n, &id, &subnet);
        assert!(left.is_empty(), "{step}: left after network rm: {left:?}");
    }
    // Completed by a connect: bridge with its address, rules, then usable.
    for step in ["after-bridge", "after-rules"] {
        let name = unique_name("ndone");
        kill_at(create_cmd(&n, &name), &format!("network-create:{step}"));
        n.track(&name);
        let (id, subnet) = id_and_subnet(&n, &name);
        let gw = n.addr_in(&name, 1);
        let me = unique_name("c");
        first_command(&n, &me, &name, &format!("ping -c 1 -W 5 {gw} && nslookup {me}"));
        assert!(!n.env.path().join(format!("networks/{id}.creating")).exists(), "{step}");
        let table = run_cmd("nft", &["list", "table", "ip", "berth"]);
        let rules = table.lines().filter(|l| l.contains(&format!("net:{}", &id[..12]))).count();
        assert_eq!(rules, 6, "{step}: rules of the completed network:\n{table}");
        n.env.ok(&["network", "rm", &name]);
        assert!(leftovers(&n, &id, &subnet).is_empty(), "{step}");
    }
    n.teardown_and_check();
}

/// A network whose create was killed before its bridge existed keeps its subnet from networks
/// that other state roots create meanwhile, and is completed on it by its first container.
#[test]
fn net_half_made_network_keeps_its_subnet_from_other_roots() {
    let Some(a) = NetEnv::new() else { return };
    let Some(b) = NetEnv::new() else { return };
    let name = unique_name("nhalf");
    kill_at(create_cmd(&a, &name), "network-create:after-record");
    a.track(&name);
    let (id, subnet) = id_and_subnet(&a, &name);
    assert!(
        std::path::Path::new(&format!("/run/berth-network/subnets/{id}.json")).exists(),
        "no machine-wide reservation for the half-made network"
    );
    // Every default pool the other root picks next avoids the reserved one.
    let other = b.network("nother", &[]);
    let (_, other_subnet) = id_and_subnet(&b, &other);
    assert_ne!(other_subnet, subnet, "another root took the half-made network's subnet");
    let explicit = unique_name("nsame");
    let out = b.env.run(&["network", "create", "--subnet", &subnet, &explicit]);
    assert!(!out.status.success(), "another root created a network on the reserved {subnet}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&name), "the refusal does not name the reserving network: {err}");
    // The half-made network is completed on its subnet by its first container.
    let gw = a.addr_in(&name, 1);
    let me = unique_name("c");
    first_command(&a, &me, &name, &format!("ping -c 1 -W 5 {gw} && nslookup {me}"));
    assert!(!a.env.path().join(format!("networks/{id}.creating")).exists());
    a.env.ok(&["network", "rm", &name]);
    assert!(leftovers(&a, &id, &subnet).is_empty());
    b.teardown_and_check();
    a.teardown_and_check();
}

/// `up -d` killed while it makes the project network: the next `up -d` completes the network
/// and starts the service, and `down` (the project guard's) leaves nothing (issue 15 item 4).
#[test]
fn net_up_killed_while_making_its_network_converges() {
    let compose = format!(
        "services:\n  app:\n    image: bb\n    command: {}\n",
        crate::compose_support::LONG
    );
    let Some(p) = crate::compose_support::Project::new("nupk", &compose) else { return };
    let mut cmd = std::process::Command::new(crate::support::berth_bin());
    cmd.current_dir(p.path()).arg("--root").arg(p.env.path()).args(["-p", &p.name, "up", "-d"]);
    kill_at(cmd, "network-create:after-bridge");
    let net = format!("{}_default", p.name);
    let ls = p.env.ok(&["network", "ls"]);
    assert!(ls.contains(&net), "the half-made project network is not listed:\n{ls}");
    p.ok(&["up", "-d"]);
    let app = p.cname("app", 1);
    assert_eq!(p.inspect(&app, "{{.State.Status}}"), "running");
    let out = p.env.ok(&["network", "inspect", &net]);
    let rec: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    let id = rec[0]["Id"].as_str().expect("id").to_string();
    assert!(!p.env.path().join(format!("networks/{id}.creating")).exists());
    let table = run_cmd("nft", &["list", "table", "ip", "berth"]);
    assert!(table.contains(&format!("net:{}", &id[..12])), "no rules:\n{table}");
}

/// Damaged network records (empty, garbage, truncated) are named in a warning, left out of
/// listings, never block other networks or projects, and `network rm <id>` removes them, with
/// the bridge, rules and subnet of a real network whose record was damaged (issue 15 item 6).
#[test]
fn net_damaged_records_are_reported_skipped_and_removable() {
    let Some(n) = NetEnv::new() else { return };
    let dir = n.env.path().join("networks");
    let good = n.network("ngood", &[]);
    let (good_id, _) = id_and_subnet(&n, &good);
    // A real network whose record is then emptied: its bridge and rules exist.
    let bad = n.network("nbad", &[]);
    let (bad_id, bad_subnet) = id_and_subnet(&n, &bad);
    std::fs::write(dir.join(format!("{bad_id}.json")), b"").expect("empty the record");
    // Records with no kernel objects: garbage, and a truncated copy of a good one.
    let garbage_id = "ab".repeat(32);
    std::fs::write(dir.join(format!("{garbage_id}.json")), b"\x00garbage{{").expect("garbage");
    let whole = std::fs::read(dir.join(format!("{good_id}.json"))).expect("good record");
    let cut_id = "cd".repeat(32);
    std::fs::write(dir.join(format!("{cut_id}.json")), &whole[..whole.len() / 2]).expect("cut");
    let damaged = [&bad_id, &garbage_id, &cut_id];

    let out = n.env.run(&["network", "ls"]);
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "network ls failed: {se}");
    assert!(so.contains(&good) && !so.contains(&bad), "ls:\n{so}");
    for id in damaged {
        let path = dir.join(format!("{id}.json"));
        assert!(se.contains(&path.display().to_string()), "no warning naming {id}:\n{se}");
    }
    // Other networks work: create, connect (with DNS), and a compose project's up and down.
    let other = n.network("nother", &[]);
    let me = unique_name("c");
    first_command(&n, &me, &other, &format!("nslookup {me}"));
    first_command(&n, &unique_name("g"), &good, "true");
    let proj = tempfile::tempdir().expect("project dir");
    let compose = format!(
        "services:\n  app:\n    image: bb\n    command: {}\n",
        crate::compose_support::LONG
    );
    std::fs::write(proj.path().join("compose.yaml"), compose).expect("compose.yaml");
    let pname = unique_name("ndmg").to_lowercase();
    let compose_cmd = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::berth_bin())
            .current_dir(proj.path())
            .arg("--root")
            .arg(n.env.path())
            .args(["-p", &pname])
            .args(args)
            .output()
            .expect("spawn berth");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed: {err}");
    };
    compose_cmd(&["up", "-d"]);
    compose_cmd(&["down"]);
    // Inspect names the file; rm removes each, with what the real one had in the kernel.
    let out = n.env.run(&["network", "inspect", &bad_id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("{bad_id}.json")), "{err}");
    assert!(!leftovers(&n, &bad_id, &bad_subnet).is_empty(), "the bridge was made");
    n.env.ok(&["network", "rm", &bad_id]);
    assert_eq!(leftovers(&n, &bad_id, &bad_subnet), Vec::<String>::new());
    n.env.ok(&["network", "rm", &garbage_id[..16]]);
    n.env.ok(&["network", "rm", &cut_id]);
    for id in damaged {
        assert!(!dir.join(format!("{id}.json")).exists(), "{id}.json left");
    }
    let out = n.env.run(&["network", "ls"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    n.teardown_and_check();
}

/// A tmpfs of a few KiB, mounted for a test and unmounted on drop.
struct SmallTmpfs(tempfile::TempDir);

impl SmallTmpfs {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let opts = format!("size={size}");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "berth-test-tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs");
        SmallTmpfs(dir)
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// `network create` on a full disk fails naming the record and leaves no temp file, no
/// creation mark and no bridge (issue 15 item 12); with space again it works.
#[test]
fn net_create_on_a_full_disk_leaves_nothing() {
    use std::io::Write;
    if !berth_testsupport::require_root() {
        return;
    }
    let fs = SmallTmpfs::new("64k");
    let root = fs.0.path().to_path_buf();
    let berth = |args: &[&str]| crate::support::berth(&root, args);
    assert!(berth(&["network", "ls"]).status.success());
    let filler = root.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    while f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all()).is_ok() {}
    drop(f);
    let name = unique_name("nfull");
    let bridge = unique_name("bf");
    let opt = format!("com.docker.network.bridge.name={bridge}");
    let out = berth(&["network", "create", "-o", &opt, &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "create on a full disk succeeded");
    assert!(err.contains("No space left") && err.contains(".json"), "{err}");
    let files: Vec<String> = std::fs::read_dir(root.join("networks"))
        .expect("networks dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && n != "generation")
        .collect();
    assert!(files.is_empty(), "left in networks/: {files:?}");
    assert!(!run_cmd("ip", &["-o", "link"]).contains(&format!(" {bridge}:")), "bridge made");
    std::fs::remove_file(&filler).expect("free the space");
    let out = berth(&["network", "create", "-o", &opt, &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = berth(&["network", "rm", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A create killed before its bridge existed reserved its subnet only among berth's networks:
/// when something else on the host has taken that subnet since (here a bridge of the test's),
/// the next connect refuses to complete the network instead of making a second bridge on it.
#[test]
fn net_half_made_network_is_not_completed_onto_a_subnet_taken_since() {
    let Some(n) = NetEnv::new() else { return };
    let name = unique_name("ntaken");
    kill_at(create_cmd(&n, &name), "network-create:after-record");
    n.track(&name);
    let (id, subnet) = id_and_subnet(&n, &name);
    let (addr, prefix) = subnet.split_once('/').expect("subnet");
    let gw = format!("{}.1", addr.rsplit_once('.').expect("v4").0);
    // The host takes the subnet: a link of this test (a bridge; no dummy driver here) with an
    // address in it.
    struct Dummy(String);
    impl Drop for Dummy {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).output();
        }
    }
    let dummy = Dummy(format!("bdt{}", std::process::id() % 1_000_000));
    assert!(run_ok("ip", &["link", "add", &dummy.0, "type", "bridge"]));
    assert!(run_ok("ip", &["addr", "add", &format!("{gw}/{prefix}"), "dev", &dummy.0]));
    let out = n.env.run(&["container", "run", "--rm", "--network", &name, "bb", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "completed onto a taken subnet");
    assert!(err.contains("overlaps") && err.contains(&subnet), "{err}");
    let bridge = format!("brt-{}", &id[..10]);
    assert!(!run_cmd("ip", &["-o", "link"]).contains(&format!(" {bridge}:")), "second bridge made");
    drop(dummy);
    n.env.ok(&["network", "rm", &name]);
    assert!(leftovers(&n, &id, &subnet).is_empty());
    n.teardown_and_check();
}

fn run_ok(prog: &str, args: &[&str]) -> bool {
    std::process::Command::new(prog).args(args).status().is_ok_and(|s| s.success())
}
