//! Real-kernel tests: bridges, veths in namespaces made by `ip netns add`, nftables, the DNS
//! server. Run as root. Traffic goes only to loopback and to the namespaces created here.
//! Tests run one at a time (a process-wide mutex) so the "nothing of ours remains" checks see
//! only their own objects.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use berth_network::dns::{DnsConfig, serve};
use berth_network::{
    EndpointConfig, Filters, IpamRequest, Ipv4Net, NetworkCreate, NetworkError, Networks,
    PortMapping, Protocol, nft,
};
use berth_testsupport::{TempRoot, require_root, unique_name};
use hickory_proto::op::{Message, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

static SERIAL: Mutex<()> = Mutex::new(());

/// The /16 the tests' fixed subnets come from: the first candidate that no host route,
/// address or resolver touches, so test traffic only ever reaches the test's namespaces.
fn base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let taken = berth_network::ipam::host_occupied();
        ["172.30", "172.29", "10.251", "10.252", "10.253"]
            .into_iter()
            .find(|b| {
                let net = Ipv4Net::new(format!("{b}.0.0").parse().expect("ip"), 16).expect("net");
                !taken.iter().any(|(t, _)| t.overlaps(&net))
            })
            .expect("every test range collides with a host route: add a candidate")
            .to_string()
    })
}

/// `rest` ("8.0/24", "8.77") inside the tests' /16.
fn t(rest: &str) -> String {
    format!("{}.{rest}", base())
}

/// Address `c.d` inside the tests' /16.
fn tip(c: u8, d: u8) -> Ipv4Addr {
    t(&format!("{c}.{d}")).parse().expect("test address")
}

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// A network namespace made with `ip netns add`, deleted (with its /etc/netns dir) on drop.
struct Ns {
    name: String,
    children: Vec<Child>,
}

impl Ns {
    fn new() -> Ns {
        let name = unique_name("bns");
        let (ok, out) = sh("ip", &["netns", "add", &name]);
        assert!(ok, "ip netns add {name}: {out}");
        Ns { name, children: Vec::new() }
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    /// Runs a command inside and returns (success, output).
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }
    /// Starts a long-running command inside, killed on drop.
    fn spawn(&mut self, args: &[&str]) {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        let child = Command::new("ip")
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        self.children.push(child);
    }
    /// Points the namespace's /etc/resolv.conf (bind-mounted by `ip netns exec`) at `ns`.
    fn set_resolver(&self, ns: Ipv4Addr) {
        let dir = PathBuf::from(format!("/etc/netns/{}", self.name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), format!("nameserver {ns}\n")).unwrap();
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh("ip", &["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
        // Only succeeds when empty: leaves other users' entries alone.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

/// A state root whose networks are all disconnected and removed on drop.
struct Root {
    nets: Networks,
    _tmp: TempRoot,
    ids: Vec<(String, String)>, // (id, bridge)
}

impl Root {
    fn new() -> Root {
        let tmp = TempRoot::new().unwrap();
        Root { nets: Networks::open(&tmp.path()).unwrap(), _tmp: tmp, ids: Vec::new() }
    }
    fn create(&mut self, subnet: Option<&str>, internal: bool) -> berth_network::NetworkRecord {
        let rec = self
            .nets
            .create(NetworkCreate {
                name: unique_name("tnet"),
                internal,
                ipam: subnet
                    .map(|s| vec![IpamRequest { subnet: Some(s.into()), ..Default::default() }])
                    .unwrap_or_default(),
                ..Default::default()
            })
            .unwrap();
        let st = self.nets.state(&rec.id).unwrap();
        self.ids.push((rec.id.clone(), st.bridge));
        rec
    }
    fn connect(&self, net: &str, ns: &Ns, name: &str, aliases: &[&str]) -> berth_network::Endpoint {
        self.nets
            .connect(
                net,
                &ns.path(),
                EndpointConfig {
                    container_id: format!("c-{name}"),
                    name: name.into(),
                    aliases: aliases.iter().map(|s| s.to_string()).collect(),
                    interface_name: ifname_for(&ns.path()),
                    ..Default::default()
                },
            )
            .unwrap()
    }
    fn gateway(&self, net: &str) -> Ipv4Addr {
        self.nets.state(net).unwrap().gateway
    }
    fn teardown(&mut self) {
        for st in self.nets.states().unwrap_or_default() {
            for c in st.endpoints.keys() {
                let _ = self.nets.disconnect(&st.network.id, c);
            }
            let _ = self.nets.remove(&st.network.id);
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// eth0 for the first network of a namespace, eth1 for the second...
fn ifname_for(ns: &Path) -> String {
    let name = ns.file_name().unwrap().to_string_lossy().to_string();
    let (_, out) = sh("ip", &["netns", "exec", &name, "ip", "-o", "link"]);
    let n = out.lines().filter(|l| l.contains(": eth")).count();
    format!("eth{n}")
}

/// Runs the DNS server on its own thread; stopped (and joined) on drop.
struct Dns {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    fn start(root: &Root, upstreams: Vec<SocketAddr>) -> Dns {
        let mut cfg = DnsConfig::new(root.nets.dir().parent().unwrap());
        cfg.upstreams = upstreams;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                tokio::select! {
                    r = serve(cfg) => { r.unwrap(); }
                    _ = rx => {}
                }
            });
        });
        // Wait until the server is bound on every gateway of the root (it answers TCP there).
        let gateways: Vec<Ipv4Addr> =
            root.nets.states().unwrap().iter().map(|s| s.gateway).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        for gw in gateways {
            let addr = SocketAddr::from((gw, 53));
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "DNS server did not bind {addr}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Dns { stop: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fake upstream resolver on 127.0.0.1: answers every A query with 198.51.100.7
/// (documentation address, never contacted) and stops after `queries` queries or 30 s.
fn fake_upstream() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let addr = sock.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok((n, src)) = sock.recv_from(&mut buf) else { continue };
            let Ok(req) = Message::from_vec(&buf[..n]) else { continue };
            let mut resp =
                Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
            resp.metadata = Metadata::response_from_request(&req.metadata);
            resp.add_queries(req.queries.clone());
            let q = &req.queries[0];
            if q.name().to_ascii().starts_with("fwd.") {
                if q.query_type() == hickory_proto::rr::RecordType::A {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
                    ));
                }
            } else {
                resp.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = sock.send_to(&resp.to_vec().unwrap(), src);
            if q.name().to_ascii().starts_with("stop.") {
                break;
            }
        }
    });
    (addr, h)
}

/// Addresses answered by `nslookup name server` run inside `ns` (retries while the server binds).
fn lookup(ns: &Ns, name: &str, server: Ipv4Addr) -> (Vec<Ipv4Addr>, String) {
    let mut last = String::new();
    for _ in 0..10 {
        let t = Instant::now();
        let (_, out) =
            ns.run(&["timeout", "5", "busybox", "nslookup", "-type=a", name, &server.to_string()]);
        if t.elapsed() > Duration::from_secs(2) {
            eprintln!("slow lookup {name} @{server}: {:?}: {out}", t.elapsed());
        }
        let addrs: Vec<Ipv4Addr> = out
            .lines()
            .filter(|l| l.starts_with("Address:") && !l.contains(":53"))
            .filter_map(|l| l.trim_start_matches("Address:").trim().parse().ok())
            .collect();
        if !addrs.is_empty() || out.contains("NXDOMAIN") {
            return (addrs, out);
        }
        last = out;
        std::thread::sleep(Duration::from_millis(200));
    }
    (Vec::new(), last)
}

fn wget(ns: &Ns, url: &str) -> (bool, String) {
    ns.run(&["timeout", "4", "busybox", "wget", "-q", "-O", "-", url])
}

fn serve_http(ns: &mut Ns, port: u16, body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), body).unwrap();
    ns.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        &port.to_string(),
        "-h",
        dir.path().to_str().unwrap(),
    ]);
    let pid = ns.children.last().expect("httpd child").id();
    wait_listening(pid, port);
    dir
}

/// Waits until the process `pid` (inside its namespace) has a TCP socket listening on `port`:
/// `/proc/<pid>/net/tcp{,6}` list the sockets of that process's network namespace.
fn wait_listening(pid: u32, port: u16) {
    let want = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listening = ["tcp", "tcp6"].iter().any(|f| {
            std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default().lines().any(
                |l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && format!("{} ", cols[1]).ends_with(&want) && cols[3] == "0A"
                },
            )
        });
        if listening {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port} in pid {pid}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that no link, netns, nft rule or table of ours remains.
fn assert_clean(bridges: &[String], namespaces: &[String], ids: &[String]) {
    let (_, links) = sh("ip", &["-o", "link"]);
    for b in bridges {
        assert!(!links.contains(&format!(": {b}:")), "bridge {b} left behind:\n{links}");
    }
    let (_, netns) = sh("ip", &["netns", "list"]);
    for n in namespaces {
        assert!(!netns.contains(n.as_str()), "netns {n} left behind");
    }
    let comments = nft::rule_comments();
    for id in ids {
        let tag = nft::net_tag(id);
        assert!(
            !comments.iter().any(|c| c.starts_with(&tag)),
            "nft rules {tag} left: {comments:?}"
        );
    }
    // veths of ours are named veth<hash>; their peers die with the namespaces.
    let (_, links) = sh("ip", &["-o", "link", "show", "type", "veth"]);
    assert!(
        !links.lines().any(|l| bridges.iter().any(|b| l.contains(&format!("master {b} ")))),
        "veth still on our bridge:\n{links}"
    );
}

fn finish(mut root: Root, nss: Vec<Ns>) {
    let bridges: Vec<String> = root.ids.iter().map(|(_, b)| b.clone()).collect();
    let ids: Vec<String> = root.ids.iter().map(|(i, _)| i.clone()).collect();
    let names: Vec<String> = nss.iter().map(|n| n.name.clone()).collect();
    root.teardown();
    assert!(root.nets.states().unwrap().is_empty());
    drop(nss);
    drop(root);
    assert_clean(&bridges, &names, &ids);
}

#[test]
fn two_namespaces_talk_by_name_and_dns_answers() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("1.0/24").as_str()), false);
    let gw = root.gateway(&net.id);
    let mut a = Ns::new();
    let b = Ns::new();
    let ea = root.connect(&net.name, &a, "web", &["websvc", "web-1"]);
    let eb = root.connect(&net.name, &b, "client", &[]);
    assert_eq!(ea.gateway, gw);
    assert_ne!(ea.ip, eb.ip);
    let (up, up_thread) = fake_upstream();
    let _dns = Dns::start(&root, vec![up]);
    let _www = serve_http(&mut a, 8080, "hello from web\n");
    b.set_resolver(gw);
    let (ok, out) = wget(&b, "http://web:8080/");
    assert!(ok && out.contains("hello from web"), "wget by name: {out}");
    for name in ["websvc", "web-1", "WEB", "client"] {
        let (addrs, out) = lookup(&b, name, gw);
        let want = if name == "client" { eb.ip } else { ea.ip };
        assert_eq!(addrs, vec![want], "{name}: {out}");
    }
    let (addrs, out) = lookup(&b, "nosuchname", gw);
    assert!(addrs.is_empty() && out.contains("NXDOMAIN"), "{out}");
    let (addrs, out) = lookup(&b, "fwd.example.test", gw);
    assert_eq!(addrs, vec![Ipv4Addr::new(198, 51, 100, 7)], "forwarded: {out}");
    let (addrs, out) = lookup(&b, "unknown.example.test", gw);
    assert!(addrs.is_empty() && out.contains("NXDOMAIN"), "{out}");
    // AAAA for a known name: NOERROR with no answer (busybox prints no error line).
    let (_, out) =
        b.run(&["timeout", "5", "busybox", "nslookup", "-type=aaaa", "web", &gw.to_string()]);
    assert!(!out.contains("NXDOMAIN") && !out.contains("SERVFAIL"), "{out}");
    let _ = lookup(&b, "stop.example.test", gw);
    let _ = up_thread.join();
    drop(_dns);
    finish(root, vec![a, b]);
}

#[test]
fn service_replicas_appear_and_disappear() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("2.0/24").as_str()), false);
    let gw = root.gateway(&net.id);
    let reps: Vec<Ns> = (0..3).map(|_| Ns::new()).collect();
    let mut ips = Vec::new();
    for (i, ns) in reps.iter().enumerate() {
        let n = format!("proj-api-{}", i + 1);
        ips.push(root.connect(&net.name, ns, &n, &["api", &format!("api-{}", i + 1)]).ip);
    }
    let asker = Ns::new();
    root.connect(&net.name, &asker, "asker", &[]);
    let _dns = Dns::start(&root, vec![]);
    let (mut got, out) = lookup(&asker, "api", gw);
    got.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(got, want, "{out}");
    // Order rotates between queries.
    let (first, _) = lookup(&asker, "api", gw);
    let (second, _) = lookup(&asker, "api", gw);
    assert_ne!(first, second, "answers should rotate");
    // The same over TCP (2-byte length framing), asked from the host.
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("api").unwrap(),
        hickory_proto::rr::RecordType::A,
    ));
    let wire = q.to_vec().unwrap();
    let mut tcp =
        std::net::TcpStream::connect_timeout(&SocketAddr::from((gw, 53)), Duration::from_secs(3))
            .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    std::io::Write::write_all(&mut tcp, &framed).unwrap();
    let mut len = [0u8; 2];
    std::io::Read::read_exact(&mut tcp, &mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    std::io::Read::read_exact(&mut tcp, &mut body).unwrap();
    assert_eq!(Message::from_vec(&body).unwrap().answers.len(), 3, "tcp answers");
    drop(tcp);
    let (one, _) = lookup(&asker, "api-2", gw);
    assert_eq!(one, vec![ips[1]]);
    // Removing replicas removes their answers at once.
    root.nets.disconnect(&net.id, "c-proj-api-1").unwrap();
    // The bridge keeps its own fixed MAC when ports go (else the askers' ARP entry for the
    // gateway goes stale and DNS times out for ~30 s).
    let bridge = root.nets.state(&net.id).unwrap().bridge;
    let (_, link) = sh("ip", &["-o", "link", "show", &bridge]);
    let o = gw.octets();
    let mac = format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
    assert!(link.contains(&mac), "bridge MAC changed: {link}");
    let (mut got, out) = lookup(&asker, "api", gw);
    got.sort();
    let mut want: Vec<Ipv4Addr> = ips[1..].to_vec();
    want.sort();
    assert_eq!(got, want, "after disconnect: {out}\n{}", sh("ss", &["-uanp"]).1);
    root.nets.remove_records(&net.id, "c-proj-api-2").unwrap();
    root.nets.remove_records(&net.id, "c-proj-api-3").unwrap();
    let (got, out) = lookup(&asker, "api", gw);
    assert!(got.is_empty() && out.contains("NXDOMAIN"), "{out}");
    // add_records brings a name back.
    root.nets.add_records(&net.id, "c-proj-api-3", &["api".into()], ips[2]).unwrap();
    let (got, _) = lookup(&asker, "api", gw);
    assert_eq!(got, vec![ips[2]]);
    drop(_dns);
    let mut all = reps;
    all.push(asker);
    finish(root, all);
}

#[test]
fn networks_are_isolated_but_multi_homed_reaches_both() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let na = root.create(Some(t("3.0/24").as_str()), false);
    let nb = root.create(Some(t("4.0/24").as_str()), false);
    let mut a = Ns::new();
    let mut b = Ns::new();
    let c = Ns::new();
    let ea = root.connect(&na.name, &a, "a", &[]);
    let eb = root.connect(&nb.name, &b, "b", &[]);
    let ca = root.connect(&na.name, &c, "c", &[]);
    let cb = root.connect(&nb.name, &c, "c", &[]);
    assert_eq!((ca.ifname.as_str(), cb.ifname.as_str()), ("eth0", "eth1"));
    assert!(ca.default_route && !cb.default_route, "only the first network sets the default route");
    let _wa = serve_http(&mut a, 8080, "A\n");
    let _wb = serve_http(&mut b, 8080, "B\n");
    // DNS is scoped too: a sees only network A's names, c sees both.
    let _dns = Dns::start(&root, vec![]);
    let gwa = root.gateway(&na.id);
    let (got, out) = lookup(&a, "b", gwa);
    assert!(got.is_empty() && out.contains("NXDOMAIN"), "a resolved b: {out}");
    assert_eq!(lookup(&c, "a", gwa).0, vec![ea.ip]);
    assert_eq!(lookup(&c, "b", gwa).0, vec![eb.ip]);
    drop(_dns);
    let (ok, out) = wget(&a, &format!("http://{}:8080/", eb.ip));
    assert!(!ok && !out.contains("B"), "a reached b across networks: {out}");
    let (ok, out) = wget(&b, &format!("http://{}:8080/", ea.ip));
    assert!(!ok && !out.contains("A"), "b reached a across networks: {out}");
    let (ok, out) = wget(&c, &format!("http://{}:8080/", ea.ip));
    assert!(ok && out.contains("A"), "c -> a: {out}");
    let (ok, out) = wget(&c, &format!("http://{}:8080/", eb.ip));
    assert!(ok && out.contains("B"), "c -> b: {out}");
    // remove refuses while endpoints exist
    match root.nets.remove(&na.id) {
        Err(NetworkError::InUse { network, .. }) => assert_eq!(network, na.name),
        other => panic!("expected InUse, got {other:?}"),
    }
    finish(root, vec![a, b, c]);
}

#[test]
fn internal_network_has_no_default_route() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("5.0/24").as_str()), true);
    let ns = Ns::new();
    let ep = root.connect(&net.name, &ns, "lonely", &[]);
    assert!(!ep.default_route);
    let (_, routes) = ns.run(&["ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains(&t("5.0/24")), "{routes}");
    let (_, addrs) = ns.run(&["ip", "-o", "addr", "show", "lo"]);
    assert!(addrs.contains("127.0.0.1"), "lo up: {addrs}");
    let tag = nft::net_tag(&net.id);
    let rules = nft::rule_comments().into_iter().filter(|c| *c == tag).count();
    assert_eq!(rules, 4, "internal networks get only isolation and loopback guard rules");
    let err = root
        .nets
        .publish(
            &net.id,
            "c-lonely",
            ep.ip,
            PortMapping {
                host_ip: None,
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("internal"), "{err}");
    finish(root, vec![ns]);
}

#[test]
fn published_port_answers_on_localhost_and_hairpin() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("6.0/24").as_str()), false);
    let gw = root.gateway(&net.id);
    let mut srv = Ns::new();
    let peer = Ns::new();
    let ep = root.connect(&net.name, &srv, "srv", &[]);
    root.connect(&net.name, &peer, "peer", &[]);
    let _www = serve_http(&mut srv, 80, "published\n");
    let map = |host_port| PortMapping {
        host_ip: None,
        host_port,
        container_port: 80,
        protocol: Protocol::Tcp,
    };
    let p = root.nets.publish(&net.id, "c-srv", ep.ip, map(0)).unwrap();
    assert_ne!(p.host_port, 0, "a random port is reported");
    let out = Command::new("busybox")
        .args(["timeout", "4", "busybox", "wget", "-q", "-O", "-"])
        .arg(format!("http://127.0.0.1:{}/", p.host_port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "published\n", "{out:?}");
    // Hairpin: another container on the network reaches it through the host (gateway) address.
    let (ok, body) = wget(&peer, &format!("http://{gw}:{}/", p.host_port));
    assert!(ok && body.contains("published"), "hairpin: {body}");
    // The same port twice: clear error naming the port.
    let err = root.nets.publish(&net.id, "c-srv", ep.ip, map(p.host_port)).unwrap_err();
    assert!(matches!(err, NetworkError::PortInUse { port, .. } if port == p.host_port), "{err}");
    assert!(err.to_string().contains(&p.host_port.to_string()));
    // A port a host process holds.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    let err = root.nets.publish(&net.id, "c-srv", ep.ip, map(busy)).unwrap_err();
    assert!(err.to_string().contains(&busy.to_string()), "{err}");
    let tag = nft::net_tag(&net.id);
    let ports = nft::rule_comments()
        .into_iter()
        .filter(|c| c.starts_with(&tag) && c.contains("port:"))
        .count();
    assert_eq!(ports, 1, "failed publishes leave no rule");
    // unpublish removes the rule
    root.nets.unpublish(&net.id, &p).unwrap();
    let ports = nft::rule_comments()
        .into_iter()
        .filter(|c| c.contains("port:") && c.starts_with(&tag))
        .count();
    assert_eq!(ports, 0);
    // a fixed port, removed by disconnect
    let fixed = probe_free_port();
    let q = root.nets.publish(&net.id, "c-srv", ep.ip, map(fixed)).unwrap();
    assert_eq!(q.host_port, fixed);
    assert_eq!(root.nets.published_ports("c-srv").unwrap(), vec![q.clone()]);
    assert_eq!(root.nets.endpoint(&net.id, "c-srv").unwrap(), Some(ep.clone()));
    let es =
        serde_json::to_value(root.nets.endpoint_settings(&net.name, "c-srv").unwrap().unwrap())
            .unwrap();
    assert_eq!(es["IPAddress"], ep.ip.to_string());
    assert_eq!(es["Gateway"], gw.to_string());
    assert_eq!(es["IPPrefixLen"], 24);
    assert_eq!(es["NetworkID"], net.id);
    assert_eq!(es["DNSNames"], serde_json::json!(["srv"]));
    assert_eq!(root.nets.disconnect_all("c-srv").unwrap(), vec![net.name.clone()]);
    assert!(root.nets.published_ports("c-srv").unwrap().is_empty());
    assert_eq!(root.nets.endpoint(&net.id, "c-srv").unwrap(), None);
    let tag = nft::net_tag(&net.id);
    assert!(!nft::rule_comments().iter().any(|c| c.starts_with(&tag) && c.contains("port:")));
    drop(holder);
    finish(root, vec![srv, peer]);
}

fn probe_free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn static_addresses_and_their_errors() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("8.0/24").as_str()), false);
    let a = Ns::new();
    let b = Ns::new();
    let cfg = |name: &str, ip: Ipv4Addr| EndpointConfig {
        container_id: format!("c-{name}"),
        name: name.into(),
        ipv4_address: Some(ip),
        interface_name: "eth0".into(),
        ..Default::default()
    };
    let want = tip(8, 77);
    let ep = root.nets.connect(&net.id, &a.path(), cfg("a", want)).unwrap();
    assert_eq!(ep.ip, want);
    let (_, addrs) = a.run(&["ip", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains(&t("8.77/24")), "{addrs}");
    let insp = root.nets.inspect(&net.name).unwrap();
    assert_eq!(insp.containers["c-a"].ipv4_address, t("8.77/24"));
    for (ip, needle) in
        [(want, "already in use by a"), (tip(9, 5), "outside the subnet"), (tip(8, 1), "gateway")]
    {
        let err = root.nets.connect(&net.id, &b.path(), cfg("b", ip)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle) && msg.contains(&net.name) && msg.contains(&ip.to_string()),
            "{msg}"
        );
    }
    // nothing half-made: b still connects with a dynamic address
    let eb = root.nets.connect(
        &net.id,
        &b.path(),
        EndpointConfig { container_id: "c-b".into(), name: "b".into(), ..Default::default() },
    );
    assert_eq!(eb.unwrap().ip, tip(8, 2));
    finish(root, vec![a, b]);
}

#[test]
fn subnets_records_and_lifecycle() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let forward_before = sh("sysctl", &["-n", "net.ipv4.ip_forward"]).1;
    let mut root = Root::new();
    let a = root.create(Some(t("10.0/24").as_str()), false);
    let err = root
        .nets
        .create(NetworkCreate {
            name: unique_name("tnet"),
            ipam: vec![IpamRequest { subnet: Some(t("10.128/25")), ..Default::default() }],
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, NetworkError::SubnetOverlap { .. }), "{err}");
    assert!(err.to_string().contains(&a.name), "{err}");
    let dup = root.nets.create(NetworkCreate { name: a.name.clone(), ..Default::default() });
    assert!(matches!(dup, Err(NetworkError::AlreadyExists(_))));
    // A pool from the defaults, avoiding the host's routes and our own networks.
    let b = root.create(None, false);
    let b_subnet = &b.ipam.config[0].subnet;
    assert!(b_subnet.starts_with("172.") || b_subnet.starts_with("192.168."), "{b_subnet}");
    let c = root.create(None, false);
    assert_ne!(&c.ipam.config[0].subnet, b_subnet);
    // Docker-shaped JSON.
    let v = serde_json::to_value(root.nets.inspect(&a.id[..12]).unwrap()).unwrap();
    for key in [
        "Name",
        "Id",
        "Created",
        "Scope",
        "Driver",
        "EnableIPv6",
        "IPAM",
        "Internal",
        "Attachable",
        "Options",
        "Labels",
        "Containers",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["IPAM"]["Config"][0]["Subnet"], t("10.0/24"));
    assert_eq!(v["IPAM"]["Config"][0]["Gateway"], t("10.1"));
    let listed =
        root.nets.list(&Filters { name: vec![a.name.clone()], ..Default::default() }).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(sh("sysctl", &["-n", "net.ipv4.ip_forward"]).1.trim(), "1");
    let pruned = root.nets.prune(&Filters::default()).unwrap();
    assert_eq!(pruned.len(), 3);
    assert!(matches!(root.nets.inspect(&a.name), Err(NetworkError::NotFound(_))));
    finish(root, vec![]);
    if !Path::new("/run/berth-network/ip_forward.json").exists() {
        assert_eq!(
            sh("sysctl", &["-n", "net.ipv4.ip_forward"]).1,
            forward_before,
            "ip_forward restored"
        );
    }
}

#[test]
fn missing_bridge_is_recreated_on_connect_and_dns_lock() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("11.0/24").as_str()), false);
    let st = root.nets.state(&net.id).unwrap();
    let (ok, out) = sh("ip", &["link", "del", &st.bridge]);
    assert!(ok, "{out}");
    let ns = Ns::new();
    let ep = root.connect(&net.name, &ns, "phoenix", &[]);
    assert!(ep.default_route);
    let (ok, out) = ns.run(&["busybox", "ping", "-c", "1", "-W", "2", &st.gateway.to_string()]);
    assert!(ok, "gateway reachable after recreation: {out}");
    let tag = nft::net_tag(&net.id);
    assert_eq!(
        nft::rule_comments().iter().filter(|c| **c == tag).count(),
        6,
        "rules not duplicated"
    );
    // The per-root DNS server lock.
    let state_root = root.nets.dir().parent().unwrap().to_path_buf();
    assert!(!berth_network::dns::server_running(&state_root));
    let held = berth_network::dns::try_server_lock(&state_root).unwrap();
    assert!(held.is_some());
    assert!(berth_network::dns::try_server_lock(&state_root).unwrap().is_none());
    drop(held);
    finish(root, vec![ns]);
}

#[test]
fn endpoints_of_dead_namespaces_do_not_block_removal() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("12.0/24").as_str()), false);
    let ns = Ns::new();
    let ep = root.connect(&net.name, &ns, "ghost", &[]);
    let p = root
        .nets
        .publish(
            &net.id,
            "c-ghost",
            ep.ip,
            PortMapping {
                host_ip: None,
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
        )
        .unwrap();
    assert_ne!(p.host_port, 0);
    let name = ns.name.clone();
    drop(ns); // the namespace dies without a disconnect
    let deadline = Instant::now() + Duration::from_secs(5);
    while berth_network::netlink::link_exists(&ep.host_ifname).unwrap() && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    root.nets.remove(&net.id).unwrap();
    assert!(root.nets.states().unwrap().is_empty());
    let tag = nft::net_tag(&net.id);
    assert!(!nft::rule_comments().iter().any(|c| c.starts_with(&tag)));
    let bridges: Vec<String> = root.ids.iter().map(|(_, b)| b.clone()).collect();
    let ids: Vec<String> = root.ids.iter().map(|(i, _)| i.clone()).collect();
    drop(root);
    assert_clean(&bridges, &[name], &ids);
}

/// Echoes UDP datagrams inside the namespace at `netns` (a dedicated thread that setns'es and
/// stops after `n` datagrams or 10 s).
fn udp_echo(netns: PathBuf, port: u16, n: usize) -> std::thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let f = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        for _ in 0..n {
            let Ok((len, from)) = s.recv_from(&mut buf) else { return };
            let _ = s.send_to(&buf[..len], from);
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    h
}

#[test]
fn udp_and_loopback_only_ports_and_reservation() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("13.0/24").as_str()), false);
    let mut ns = Ns::new();
    let ep = root.connect(&net.name, &ns, "udpsrv", &[]);
    let echo = udp_echo(ns.path(), 7777, 1);
    let p = root
        .nets
        .publish(
            &net.id,
            "c-udpsrv",
            ep.ip,
            PortMapping {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_port: 0,
                container_port: 7777,
                protocol: Protocol::Udp,
            },
        )
        .unwrap();
    assert_eq!(p.host_ip, std::net::IpAddr::from(Ipv4Addr::LOCALHOST));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.send_to(b"ping-udp", ("127.0.0.1", p.host_port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = c.recv_from(&mut buf).expect("udp reply through the published port");
    assert_eq!(&buf[..n], b"ping-udp");
    echo.join().unwrap();
    // TCP bound to 127.0.0.1 only, plus a reservation that keeps host processes off the port.
    let _www = serve_http(&mut ns, 80, "lo-only\n");
    let t = root
        .nets
        .publish(
            &net.id,
            "c-udpsrv",
            ep.ip,
            PortMapping {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
        )
        .unwrap();
    let _res = berth_network::reserve_port(&t).unwrap();
    assert!(std::net::TcpListener::bind(("127.0.0.1", t.host_port)).is_err(), "reserved");
    let out = Command::new("busybox")
        .args(["timeout", "4", "busybox", "wget", "-q", "-O", "-"])
        .arg(format!("http://127.0.0.1:{}/", t.host_port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lo-only\n", "{out:?}");
    finish(root, vec![ns]);
}

/// An "outside" namespace joined to the host by a plain veth (`t("99.0/30")`). It has no route
/// back to berth subnets, so only masqueraded traffic from containers can get answers.
struct Uplink {
    ns: Ns,
}

impl Uplink {
    fn new() -> Uplink {
        let ns = Ns::new();
        let host_end = format!("vethu{}", std::process::id() % 100000);
        let (host_ip, ns_ip) = (t("99.1/30"), t("99.2/30"));
        for args in [
            vec![
                "link", "add", &host_end, "type", "veth", "peer", "name", "up0", "netns", &ns.name,
            ],
            vec!["addr", "add", &host_ip, "dev", &host_end],
            vec!["link", "set", &host_end, "up"],
        ] {
            let (ok, out) = sh("ip", &args);
            assert!(ok, "ip {args:?}: {out}");
        }
        for args in [
            vec!["ip", "addr", "add", &ns_ip, "dev", "up0"],
            vec!["ip", "link", "set", "up0", "up"],
        ] {
            let (ok, out) = ns.run(&args);
            assert!(ok, "{args:?}: {out}");
        }
        Uplink { ns }
    }
}

#[test]
fn egress_is_masqueraded_and_internal_has_none() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let mut up = Uplink::new();
    let _www = serve_http(&mut up.ns, 8080, "outside\n");
    let open = root.create(Some(t("14.0/24").as_str()), false);
    let closed = root.create(Some(t("15.0/24").as_str()), true);
    let a = Ns::new();
    let b = Ns::new();
    root.connect(&open.name, &a, "egress", &[]);
    root.connect(&closed.name, &b, "sealed", &[]);
    let (ok, out) = wget(&a, &format!("http://{}:8080/", t("99.2")));
    assert!(ok && out.contains("outside"), "egress through NAT: {out}");
    let (ok, out) = wget(&b, &format!("http://{}:8080/", t("99.2")));
    assert!(!ok && !out.contains("outside"), "internal network reached outside: {out}");
    // MTU option
    let m = root
        .nets
        .create(NetworkCreate {
            name: unique_name("tnet"),
            options: [(berth_network::OPT_MTU.to_string(), "1400".to_string())]
                .into_iter()
                .collect(),
            ipam: vec![IpamRequest { subnet: Some(t("16.0/24")), ..Default::default() }],
            ..Default::default()
        })
        .unwrap();
    let st = root.nets.state(&m.id).unwrap();
    root.ids.push((m.id.clone(), st.bridge.clone()));
    let (_, link) = sh("ip", &["-o", "link", "show", &st.bridge]);
    assert!(link.contains("mtu 1400"), "{link}");
    let upname = up.ns.name.clone();
    drop(up);
    finish(root, vec![a, b]);
    let (_, netns) = sh("ip", &["netns", "list"]);
    assert!(!netns.contains(&upname));
}

#[test]
fn dns_process_body_serves_and_exits_when_idle() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("17.0/24").as_str()), false);
    let gw = root.gateway(&net.id);
    let a = Ns::new();
    let ep = root.connect(&net.name, &a, "solo", &[]);
    let state_root = root.nets.dir().parent().unwrap().to_path_buf();
    let sr = state_root.clone();
    let server = std::thread::spawn(move || berth_network::dns::run_blocking(&sr));
    // Wait until it serves. (Polling `server_running` instead would race: its probe takes the
    // lock for a moment, and a server starting at that moment thinks another one runs.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = SocketAddr::from((gw, 53));
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(!server.is_finished(), "DNS server returned before serving");
        assert!(Instant::now() < deadline, "DNS server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(berth_network::dns::server_running(&state_root));
    // A second server for the same root returns at once.
    berth_network::dns::run_blocking(&state_root).unwrap();
    assert_eq!(lookup(&a, "solo", gw).0, vec![ep.ip]);
    root.teardown();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !server.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.is_finished(), "DNS server still running after the last network went away");
    server.join().unwrap().unwrap();
    assert!(!berth_network::dns::server_running(&state_root));
    finish(root, vec![a]);
}

#[test]
fn ipv6_inside_a_network_and_aaaa_answers() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let rec = root
        .nets
        .create(NetworkCreate {
            name: unique_name("tnet"),
            enable_ipv6: true,
            ipam: vec![
                IpamRequest { subnet: Some(t("18.0/24")), ..Default::default() },
                IpamRequest { subnet: Some("fd42:30:18::/64".into()), ..Default::default() },
            ],
            ..Default::default()
        })
        .unwrap();
    let st = root.nets.state(&rec.id).unwrap();
    root.ids.push((rec.id.clone(), st.bridge.clone()));
    assert_eq!(rec.ipam.config.len(), 2);
    assert_eq!(rec.ipam.config[1].gateway, "fd42:30:18::1");
    let a = Ns::new();
    let b = Ns::new();
    let ea = root.connect(&rec.name, &a, "six-a", &[]);
    let eb = root.connect(&rec.name, &b, "six-b", &[]);
    let (a6, p6) = ea.ip6.expect("an IPv6 address");
    assert_eq!((a6.to_string().as_str(), p6), ("fd42:30:18::2", 64));
    let b6 = eb.ip6.unwrap().0;
    let (ok, out) = a.run(&["busybox", "ping6", "-c", "1", "-W", "3", &b6.to_string()]);
    assert!(ok, "ping6 a -> b: {out}");
    let (_, routes) = a.run(&["ip", "-6", "route"]);
    assert!(routes.contains("default via fd42:30:18::1"), "{routes}");
    let insp = root.nets.inspect(&rec.id).unwrap();
    assert_eq!(insp.containers["c-six-a"].ipv6_address, "fd42:30:18::2/64");
    let (_, v6rules) = sh("nft", &["list", "table", "ip6", "berth"]);
    assert!(
        v6rules.contains(&format!("iifname \"{}\" oifname != \"{}\" drop", st.bridge, st.bridge)),
        "{v6rules}"
    );
    let _dns = Dns::start(&root, vec![]);
    let mut out = String::new();
    for _ in 0..10 {
        out = b
            .run(&[
                "timeout",
                "5",
                "busybox",
                "nslookup",
                "-type=aaaa",
                "six-a",
                &st.gateway.to_string(),
            ])
            .1;
        if out.contains("fd42:30:18::2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(out.contains("fd42:30:18::2"), "AAAA answer: {out}");
    drop(_dns);
    // Without an IPv6 subnet a ULA /64 is generated.
    let auto = root
        .nets
        .create(NetworkCreate {
            name: unique_name("tnet"),
            enable_ipv6: true,
            ipam: vec![IpamRequest { subnet: Some(t("19.0/24")), ..Default::default() }],
            ..Default::default()
        })
        .unwrap();
    let ast = root.nets.state(&auto.id).unwrap();
    root.ids.push((auto.id.clone(), ast.bridge.clone()));
    let s6 = ast.subnet6.unwrap();
    assert!(s6.to_string().starts_with("fd") && s6.prefix() == 64, "{s6}");
    finish(root, vec![a, b]);
    let (_, tables) = sh("nft", &["list", "tables"]);
    assert!(!tables.contains("ip6 berth"), "ip6 table left: {tables}");
}

#[test]
fn higher_priority_network_takes_the_default_route() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let low = root.create(Some(t("20.0/24").as_str()), false);
    let high = root.create(Some(t("21.0/24").as_str()), false);
    let ns = Ns::new();
    let cfg = |ifname: &str, priority: i32| EndpointConfig {
        container_id: "c-multi".into(),
        name: "multi".into(),
        interface_name: ifname.into(),
        priority,
        ..Default::default()
    };
    let e1 = root.nets.connect(&low.id, &ns.path(), cfg("eth0", 0)).unwrap();
    assert!(e1.default_route);
    let e2 = root.nets.connect(&high.id, &ns.path(), cfg("eth1", 10)).unwrap();
    assert!(e2.default_route, "higher priority takes the default route");
    let (_, routes) = ns.run(&["ip", "route", "show", "default"]);
    assert!(routes.contains(&format!("via {} dev eth1", t("21.1"))), "{routes}");
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(!root.nets.endpoint(&low.id, "c-multi").unwrap().unwrap().default_route);
    // A third, lower-priority network does not take it.
    let third = root.create(Some(t("22.0/24").as_str()), false);
    let e3 = root.nets.connect(&third.id, &ns.path(), cfg("eth2", 5)).unwrap();
    assert!(!e3.default_route);
    let (_, routes) = ns.run(&["ip", "route", "show", "default"]);
    assert!(routes.contains(&format!("via {} dev eth1", t("21.1"))), "{routes}");
    finish(root, vec![ns]);
}

#[test]
fn disconnect_returns_with_the_veth_unlisted_and_its_name_free() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("23.0/24").as_str()), false);
    let ns = Ns::new();
    // The same container on the same network reuses the same host veth name every round.
    for round in 0..3 {
        let ep = root.connect(&net.name, &ns, "again", &[]);
        assert_eq!(ep.ifname, "eth0", "round {round}: the old peer is still listed");
        root.nets.disconnect(&net.id, "c-again").unwrap();
        // No polling: the call returns only once both ends are unlisted.
        assert!(!berth_network::netlink::link_exists(&ep.host_ifname).unwrap(), "round {round}");
        let (_, links) = ns.run(&["ip", "-o", "link"]);
        assert!(!links.contains("eth0"), "round {round}: peer still listed: {links}");
    }
    // A network removal returns with its bridge unlisted, too.
    let bridge = root.nets.state(&net.id).unwrap().bridge;
    root.nets.remove(&net.id).unwrap();
    assert!(!berth_network::netlink::link_exists(&bridge).unwrap());
    finish(root, vec![ns]);
}

#[test]
fn ipv6_bindings_are_records_without_rules() {
    if !require_root() || !berth_network::ipv6_available() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("24.0/24").as_str()), false);
    let ns = Ns::new();
    let ep = root.connect(&net.name, &ns, "six", &[]);
    let map = |ip: &str, host_port| PortMapping {
        host_ip: Some(ip.parse().unwrap()),
        host_port,
        container_port: 80,
        protocol: Protocol::Tcp,
    };
    let tag = nft::net_tag(&net.id);
    let port_rules = || {
        nft::rule_comments()
            .into_iter()
            .filter(|c| c.starts_with(&tag) && c.contains("port:"))
            .count()
    };
    // The IPv4 binding on every address and its `::` companion on the same port coexist.
    let v4 = root.nets.publish(&net.id, "c-six", ep.ip, map("0.0.0.0", 0)).unwrap();
    let v6 = root.nets.publish(&net.id, "c-six", ep.ip, map("::", v4.host_port)).unwrap();
    assert_eq!(v6.host_ip, "::".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(port_rules(), 1, "only the IPv4 binding has a DNAT rule");
    // `::1` of the same port conflicts with `::` (per family), naming the address.
    let err = root.nets.publish(&net.id, "c-other", ep.ip, map("::1", v4.host_port)).unwrap_err();
    assert!(err.to_string().contains(&format!("[::1]:{}/tcp", v4.host_port)), "{err}");
    // An explicit [::1] with a random port: recorded, no rule.
    let one = root.nets.publish(&net.id, "c-six", ep.ip, map("::1", 0)).unwrap();
    assert_ne!(one.host_port, 0);
    assert_eq!(port_rules(), 1);
    assert_eq!(
        root.nets.published_ports("c-six").unwrap(),
        vec![v4.clone(), v6.clone(), one.clone()]
    );
    // An address the host lacks: its own error, nothing recorded.
    let err = root.nets.publish(&net.id, "c-six", ep.ip, map("2001:db8::1", 0)).unwrap_err();
    assert!(matches!(err, NetworkError::HostAddressUnavailable { .. }), "{err}");
    assert_eq!(root.nets.published_ports("c-six").unwrap().len(), 3);
    // unpublish of an IPv6 binding leaves the IPv4 rule; disconnect removes the rest.
    root.nets.unpublish(&net.id, &one).unwrap();
    assert_eq!(port_rules(), 1);
    root.nets.disconnect_all("c-six").unwrap();
    assert!(root.nets.published_ports("c-six").unwrap().is_empty());
    assert_eq!(port_rules(), 0);
    finish(root, vec![ns]);
}

#[test]
fn exited_containers_veths_linger_until_reused_or_their_network_goes() {
    if !require_root() {
        return;
    }
    let _s = serial();
    let mut root = Root::new();
    let net = root.create(Some(t("25.0/24").as_str()), false);
    let st = root.nets.state(&net.id).unwrap();
    let exists = |l: &str| berth_network::netlink::link_exists(l).unwrap();
    let group_of = |l: &str| {
        let (_, out) = sh("ip", &["-d", "-o", "link", "show", l]);
        out.split(" group ").nth(1).and_then(|g| g.split_whitespace().next()).map(String::from)
    };
    // The bridge and every host veth carry the network's own link group.
    assert_ne!(st.group, 0);
    assert_eq!(group_of(&st.bridge), Some(st.group.to_string()));
    let (a, b, c, b2) = (Ns::new(), Ns::new(), Ns::new(), Ns::new());
    let ea = root.connect(&net.name, &a, "a", &[]);
    let eb = root.connect(&net.name, &b, "b", &[]);
    assert_eq!(group_of(&ea.host_ifname), Some(st.group.to_string()));
    // `a` exited, but its namespace lives on here (`ip netns` holds it): its veth stays,
    // remembered as lingering, and its address is free again.
    assert_eq!(root.nets.disconnect_exited("c-a").unwrap(), vec![net.name.clone()]);
    assert!(exists(&ea.host_ifname));
    let st = root.nets.state(&net.id).unwrap();
    assert_eq!(st.lingering.len(), 1);
    assert_eq!(st.lingering[0].host_ifname, ea.host_ifname);
    assert!(!st.allocations.contains_key(&ea.ip) && !st.endpoints.contains_key("c-a"));
    // A new endpoint taking that address (and so its MAC) deletes the old veth first: the
    // bridge never has the MAC on two ports.
    let ec = root.connect(&net.name, &c, "c", &[]);
    assert_eq!((ec.ip, &ec.mac), (ea.ip, &ea.mac));
    assert!(!exists(&ea.host_ifname));
    assert!(root.nets.state(&net.id).unwrap().lingering.is_empty());
    let (_, links) = a.run(&["ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "peer left in a: {links}");
    // The same container again (same host veth name) replaces its lingering veth.
    root.nets.disconnect_exited("c-b").unwrap();
    let eb2 = root.connect(&net.name, &b2, "b", &[]);
    assert_eq!(eb2.host_ifname, eb.host_ifname);
    let (_, links) = b.run(&["ip", "-o", "link"]);
    assert!(!links.contains("eth0"), "old peer left in b: {links}");
    // A stray link with an endpoint's host name (no record of it) is replaced, too.
    let stray =
        format!("veth{:08x}", berth_network::disk::short_hash(&format!("{}/c-stray", net.id)));
    let (ok, out) = sh("ip", &["link", "add", &stray, "type", "bridge"]);
    assert!(ok, "{out}");
    let d = Ns::new();
    let ed = root.connect(&net.name, &d, "stray", &[]);
    assert_eq!(ed.host_ifname, stray);
    assert_eq!(group_of(&stray), Some(st.group.to_string()));
    // Everything exits; removing the network deletes the bridge and all the lingering veths
    // (one request for the group) and returns with them unlisted.
    for c in ["c-b", "c-c", "c-stray"] {
        root.nets.disconnect_exited(c).unwrap();
    }
    let st = root.nets.state(&net.id).unwrap();
    assert_eq!(st.lingering.len(), 3);
    root.nets.remove(&net.id).unwrap();
    for l in [&st.bridge, &eb2.host_ifname, &ec.host_ifname, &ed.host_ifname] {
        assert!(!exists(l), "{l} left");
    }
    for ns in [&b2, &c, &d] {
        let (_, links) = ns.run(&["ip", "-o", "link"]);
        assert!(!links.contains("eth"), "peer left in {}: {links}", ns.name);
    }
    finish(root, vec![a, b, c, b2, d]);
}
