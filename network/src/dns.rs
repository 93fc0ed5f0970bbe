//! The embedded DNS server (aardvark-style): one process per state root serves UDP and TCP on every
//! network's gateway address and scopes answers by the asker's source address.
//!
//! Records live in the network state files; the server re-reads them whenever the
//! `networks/generation` file changes (one `stat` per query), so removals take effect at once.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::error::{NetworkError, Result};
use crate::ipam::{Ipv4Net, resolv_nameservers};
use crate::model::{DnsEntry, NetworkState};

mod control;

/// File under `networks/` rewritten on every record change.
pub const GENERATION_FILE: &str = "generation";
/// TTL of our answers: short, replicas come and go.
pub const TTL: u32 = 60;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The berth state root (records in `<root>/networks`).
    pub state_root: PathBuf,
    /// Port to listen on at each gateway (53 for containers).
    pub port: u16,
    /// Where names we don't know go (default: the host's `/etc/resolv.conf` servers).
    pub upstreams: Vec<SocketAddr>,
    /// Return once no network is left (for the per-root `berth __dns` process).
    pub exit_when_idle: bool,
    /// How often to look for new or removed networks to (un)bind.
    pub rescan: Duration,
}

impl DnsConfig {
    /// Port 53, host resolvers as upstreams, runs until dropped.
    pub fn new(state_root: &Path) -> Self {
        DnsConfig {
            state_root: state_root.to_path_buf(),
            port: 53,
            upstreams: host_upstreams(),
            exit_when_idle: false,
            rescan: Duration::from_millis(100),
        }
    }
}

/// The host's resolvers from `/etc/resolv.conf`, port 53.
pub fn host_upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    resolv_nameservers(&text).into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
}

struct NetView {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// endpoint address -> container id
    endpoints: HashMap<Ipv4Addr, String>,
    records: Vec<DnsEntry>,
}

struct Snapshot {
    key: Option<(u64, i64, i64)>,
    nets: Vec<NetView>,
}

/// Reads records on demand and answers queries; shared by all listener tasks.
pub struct Resolver {
    dir: PathBuf,
    snap: RwLock<Arc<Snapshot>>,
    rr: AtomicUsize,
    upstreams: Vec<SocketAddr>,
}

/// What to do with one query.
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Forward the raw query to these servers in turn.
    Forward(Vec<SocketAddr>),
}

impl Resolver {
    /// A resolver over `<state_root>/networks` forwarding unknown names to `upstreams`.
    pub fn new(state_root: &Path, upstreams: Vec<SocketAddr>) -> Self {
        Resolver {
            dir: state_root.join("networks"),
            snap: RwLock::new(Arc::new(Snapshot { key: Some((u64::MAX, 0, 0)), nets: Vec::new() })),
            rr: AtomicUsize::new(0),
            upstreams,
        }
    }

    fn gen_key(&self) -> Option<(u64, i64, i64)> {
        std::fs::metadata(self.dir.join(GENERATION_FILE))
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
    }

    fn current(&self) -> Arc<Snapshot> {
        let key = self.gen_key();
        if let Ok(s) = self.snap.read()
            && s.key == key
        {
            return s.clone();
        }
        let nets = crate::state::load_states(&self.dir)
            .unwrap_or_else(|e| {
                tracing::warn!("dns: reading network records: {e}");
                Vec::new()
            })
            .into_iter()
            .map(view)
            .collect();
        let snap = Arc::new(Snapshot { key, nets });
        if let Ok(mut w) = self.snap.write() {
            *w = snap.clone();
        }
        snap
    }

    /// Gateway addresses of all current networks.
    pub fn gateways(&self) -> HashSet<Ipv4Addr> {
        self.current().nets.iter().map(|n| n.gateway).collect()
    }

    /// Answers (or decides to forward) the query `bytes` that `src` sent to `local`.
    pub fn handle(&self, bytes: &[u8], src: IpAddr, local: Ipv4Addr) -> Option<Action> {
        let req = Message::from_vec(bytes).ok()?;
        let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
        resp.metadata = Metadata::response_from_request(&req.metadata);
        resp.metadata.recursion_available = true;
        resp.add_queries(req.queries.clone());
        let reply = |mut resp: Message, code: ResponseCode| {
            resp.metadata.response_code = code;
            resp.to_vec().ok().map(Action::Reply)
        };
        if req.metadata.message_type != MessageType::Query || req.metadata.op_code != OpCode::Query
        {
            return reply(resp, ResponseCode::NotImp);
        }
        let [q] = req.queries.as_slice() else { return reply(resp, ResponseCode::FormErr) };
        let name = q.name().to_lowercase().to_ascii();
        let name = name.trim_end_matches('.');
        let snap = self.current();
        let src4 = match src {
            IpAddr::V4(v) => v,
            IpAddr::V6(v) => v.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        // Scope: every network the asking container is on; else the one it asked through.
        let askers: Vec<&String> =
            snap.nets.iter().filter_map(|n| n.endpoints.get(&src4)).collect();
        let scope: Vec<&NetView> = snap
            .nets
            .iter()
            .filter(|n| {
                if askers.is_empty() {
                    n.subnet.contains(src4) || n.gateway == local
                } else {
                    n.endpoints.values().any(|c| askers.contains(&c))
                }
            })
            .collect();
        // A link alias of the asking container stands for its target's name (docker's links
        // on user-defined networks are visible to the linking container only).
        let linked: Option<&str> = scope
            .iter()
            .flat_map(|n| n.records.iter())
            .filter(|r| askers.contains(&&r.container_id))
            .find_map(|r| r.links.get(name))
            .map(String::as_str);
        let mut ips: Vec<Ipv4Addr> = Vec::new();
        let mut ips6: Vec<std::net::Ipv6Addr> = Vec::new();
        let mut known = false;
        for n in &scope {
            for r in &n.records {
                if r.names.iter().any(|x| x == name || Some(x.as_str()) == linked) {
                    known = true;
                    if !ips.contains(&r.ipv4) {
                        ips.push(r.ipv4);
                    }
                    if let Some(a) = r.ipv6.filter(|a| !ips6.contains(a)) {
                        ips6.push(a);
                    }
                }
            }
        }
        if known {
            resp.metadata.authoritative = true;
            if q.query_type() == RecordType::A || q.query_type() == RecordType::ANY {
                if !ips.is_empty() {
                    let k = self.rr.fetch_add(1, Ordering::Relaxed) % ips.len();
                    ips.rotate_left(k);
                }
                // Stay under 512 bytes for plain (non-EDNS) UDP.
                for ip in ips.into_iter().take(24) {
                    resp.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                }
            }
            if q.query_type() == RecordType::AAAA || q.query_type() == RecordType::ANY {
                if !ips6.is_empty() {
                    let k = self.rr.fetch_add(1, Ordering::Relaxed) % ips6.len();
                    ips6.rotate_left(k);
                }
                for ip in ips6.into_iter().take(12) {
                    resp.add_answer(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::AAAA(AAAA(ip)),
                    ));
                }
            }
            // Known name without records of the asked type: NOERROR, no answers.
            return reply(resp, ResponseCode::NoError);
        }
        // Single-label names are container-ish: never leak them upstream.
        if !name.contains('.') {
            return reply(resp, ResponseCode::NXDomain);
        }
        let custom: Vec<SocketAddr> = scope
            .iter()
            .flat_map(|n| n.records.iter())
            .filter(|r| askers.contains(&&r.container_id))
            .flat_map(|r| r.upstreams.iter().map(|ip| SocketAddr::new(*ip, 53)))
            .collect();
        let ups = if custom.is_empty() { self.upstreams.clone() } else { custom };
        if ups.is_empty() {
            return reply(resp, ResponseCode::ServFail);
        }
        Some(Action::Forward(ups))
    }
}

fn view(st: NetworkState) -> NetView {
    NetView {
        subnet: st.subnet,
        gateway: st.gateway,
        endpoints: st.allocations.into_iter().collect(),
        records: st.dns,
    }
}

/// SERVFAIL for `query` (used when every upstream failed).
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(query).ok()?;
    let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    resp.metadata = Metadata::response_from_request(&req.metadata);
    resp.metadata.recursion_available = true;
    resp.metadata.response_code = ResponseCode::ServFail;
    resp.add_queries(req.queries);
    resp.to_vec().ok()
}

/// Sends `query` to each upstream in turn; the first answer with the same id wins.
pub async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
        let Ok(sock) = UdpSocket::bind(bind).await else { continue };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, from)) if from == *up && n >= 2 && &buf[..2] == id => return Some(n),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        })
        .await;
        if let Ok(Some(n)) = got {
            buf.truncate(n);
            return Some(buf);
        }
    }
    servfail(query)
}

async fn listen(sock: Arc<UdpSocket>, local: Ipv4Addr, resolver: Arc<Resolver>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("dns {local}: recv: {e}");
                continue;
            }
        };
        match resolver.handle(&buf[..n], src.ip(), local) {
            Some(Action::Reply(bytes)) => {
                let _ = sock.send_to(&bytes, src).await;
            }
            Some(Action::Forward(ups)) => {
                let q = buf[..n].to_vec();
                let sock = sock.clone();
                tokio::spawn(async move {
                    if let Some(bytes) = forward(&q, &ups).await {
                        let _ = sock.send_to(&bytes, src).await;
                    }
                });
            }
            None => {}
        }
    }
}

/// DNS over TCP (RFC 7766 framing: 2-byte length, message): for clients that retry over TCP
/// or prefer it. One task per connection; answers in order.
async fn listen_tcp(l: TcpListener, local: Ipv4Addr, resolver: Arc<Resolver>) {
    loop {
        let Ok((mut conn, peer)) = l.accept().await else { continue };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 2];
                // Idle connections are closed after 10 s.
                match tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut len)).await
                {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut msg).await.is_err() {
                    return;
                }
                let reply = match resolver.handle(&msg, peer.ip(), local) {
                    Some(Action::Reply(b)) => b,
                    Some(Action::Forward(ups)) => match forward(&msg, &ups).await {
                        Some(b) => b,
                        None => return,
                    },
                    None => return,
                };
                let Ok(n) = u16::try_from(reply.len()) else { return };
                let mut out = n.to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                if conn.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The two kinds of listener a gateway gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Proto {
    Udp,
    Tcp,
}

/// Listener tasks by gateway address and protocol; aborted on drop so dropping `serve` stops
/// everything.
struct Listeners(HashMap<(Ipv4Addr, Proto), JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for (_, h) in self.0.drain() {
            h.abort();
        }
    }
}

impl Listeners {
    /// Serves on the bound socket `fd` (UDP, or listening TCP) at `gw` from now on, in place
    /// of any earlier listener there.
    fn start(
        &mut self,
        gw: Ipv4Addr,
        proto: Proto,
        fd: OwnedFd,
        resolver: &Arc<Resolver>,
    ) -> std::io::Result<()> {
        let task = match proto {
            Proto::Udp => {
                let s = std::net::UdpSocket::from(fd);
                s.set_nonblocking(true)?;
                tokio::spawn(listen(Arc::new(UdpSocket::from_std(s)?), gw, resolver.clone()))
            }
            Proto::Tcp => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)?;
                tokio::spawn(listen_tcp(TcpListener::from_std(l)?, gw, resolver.clone()))
            }
        };
        if let Some(old) = self.0.insert((gw, proto), task) {
            old.abort();
        }
        Ok(())
    }

    /// True when UDP and TCP listeners on `gw` are running.
    fn serves(&self, gw: Ipv4Addr) -> bool {
        [Proto::Udp, Proto::Tcp]
            .iter()
            .all(|p| self.0.get(&(gw, *p)).is_some_and(|h| !h.is_finished()))
    }

    /// Serves on a socket a creator bound and handed over (see `control`), when it is a UDP or
    /// listening TCP socket on an IPv4 address at `port`.
    fn adopt(&mut self, fd: OwnedFd, port: u16, resolver: &Arc<Resolver>) {
        use nix::sys::socket::{SockType, SockaddrIn, getsockname, getsockopt, sockopt};
        let kind = getsockopt(&fd, sockopt::SockType).ok();
        let addr = getsockname::<SockaddrIn>(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok();
        let proto = match kind {
            Some(SockType::Datagram) => Proto::Udp,
            Some(SockType::Stream) => Proto::Tcp,
            _ => return,
        };
        let Some(addr) = addr.filter(|a| a.port() == port) else { return };
        let gw = addr.ip();
        if let Err(e) = self.start(gw, proto, fd, resolver) {
            tracing::warn!("dns: serving the socket handed over for {gw}:{port}: {e}");
        }
    }
}

/// Runs the server: binds UDP and TCP `gateway:port` for every network of the state root
/// (re-checked every `rescan`), answers from the records, forwards the rest. Returns when
/// `exit_when_idle` is set and no network is left; otherwise runs until dropped.
pub async fn serve(cfg: DnsConfig) -> Result<()> {
    serve_with(cfg, None, Vec::new()).await
}

/// [`serve`], also serving the sockets `adopted` (bound by whoever started the server) and
/// taking more over `control` (see `control`).
async fn serve_with(
    cfg: DnsConfig,
    control: Option<control::Control>,
    adopted: Vec<OwnedFd>,
) -> Result<()> {
    let resolver = Arc::new(Resolver::new(&cfg.state_root, cfg.upstreams.clone()));
    let mut listeners = Listeners(HashMap::new());
    for fd in adopted {
        listeners.adopt(fd, cfg.port, &resolver);
    }
    loop {
        let want = resolver.gateways();
        if cfg.exit_when_idle && want.is_empty() {
            // Hand-overs go to a new server from now on (once this process and its lock are
            // gone: see `control::ensure_serving`).
            drop(control);
            return Ok(());
        }
        listeners.0.retain(|(gw, _), h| {
            let keep = want.contains(gw) && !h.is_finished();
            if !keep {
                h.abort();
            }
            keep
        });
        for gw in want {
            for proto in [Proto::Udp, Proto::Tcp] {
                if listeners.0.contains_key(&(gw, proto)) {
                    continue;
                }
                let at = SocketAddr::new(IpAddr::V4(gw), cfg.port);
                let bound = match proto {
                    Proto::Udp => std::net::UdpSocket::bind(at).map(OwnedFd::from),
                    Proto::Tcp => std::net::TcpListener::bind(at).map(OwnedFd::from),
                };
                // The bridge may not carry its address yet, or a creator holds the address
                // on its way to handing it over; try again on the next pass.
                if let Err(e) = bound.and_then(|fd| listeners.start(gw, proto, fd, &resolver)) {
                    tracing::debug!("dns: bind {at} ({proto:?}): {e}");
                }
            }
        }
        match &control {
            Some(c) => tokio::select! {
                _ = tokio::time::sleep(cfg.rescan) => {}
                conn = c.accept() => {
                    if let Some(mut h) = conn {
                        for fd in std::mem::take(&mut h.sockets) {
                            listeners.adopt(fd, cfg.port, &resolver);
                        }
                        if h.query.is_empty() {
                            h.acknowledge().await;
                        } else {
                            let served = h.query.iter().all(|gw| listeners.serves(*gw));
                            h.answer(served).await;
                        }
                    }
                }
            },
            None => tokio::time::sleep(cfg.rescan).await,
        }
    }
}

/// Takes the per-root "DNS server running" lock without blocking: `Some(lock)` means no
/// server runs for this root and the caller (the `berth __dns` process) now owns the role for as
/// long as it keeps the lock; `None` means a server is already running.
pub fn try_server_lock(state_root: &Path) -> Result<Option<crate::disk::Lock>> {
    crate::disk::Lock::try_exclusive(&server_lock_path(state_root))
}

/// `<root>/networks/dns.lock`: held by the root's running DNS server.
fn server_lock_path(state_root: &Path) -> PathBuf {
    state_root.join("networks").join("dns.lock")
}

/// True when a DNS server process holds the lock of this state root.
pub fn server_running(state_root: &Path) -> bool {
    matches!(try_server_lock(state_root), Ok(None))
}

/// The body of the per-root `berth __dns` process. Started by [`ensure_serving`], it inherits
/// the server lock, its control socket and the sockets its starter bound. Started otherwise,
/// it takes the lock (returns at once when another server holds it) and binds the control
/// socket itself. Then it serves with the host's resolvers as upstreams until no network is
/// left in the root. Must not be called from inside a tokio runtime.
pub fn run_blocking(state_root: &Path) -> Result<()> {
    // Whichever way it came, the lock is held until this process exits.
    let (_inherited_lock, _taken_lock, control, sockets) = match control::take_inherited() {
        Some(i) => (Some(i.lock), None, i.control, i.sockets),
        None => {
            let Some(lock) = try_server_lock(state_root)? else { return Ok(()) };
            (None, Some(lock), control::bind(state_root)?, Vec::new())
        }
    };
    let mut cfg = DnsConfig::new(state_root);
    cfg.exit_when_idle = true;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetworkError::io("start dns runtime", state_root, e))?;
    rt.block_on(async move {
        let control = control::Control::new(control, state_root)
            .map_err(|e| NetworkError::io("serve the control socket in", state_root, e))?;
        serve_with(cfg, Some(control), sockets).await
    })
}

pub use control::ensure_serving;

/// Serves on an explicit socket (benchmarks, tests on loopback): answers as if asked at `local`.
pub async fn serve_socket(sock: UdpSocket, local: Ipv4Addr, resolver: Arc<Resolver>) -> Result<()> {
    listen(Arc::new(sock), local, resolver).await;
    Err(NetworkError::Dns("listener stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::collections::BTreeMap;

    fn state(id: &str, subnet: &str, entries: &[(&str, &[&str], [u8; 4])]) -> NetworkState {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        let gateway = subnet.nth(1).unwrap();
        let mut allocations = BTreeMap::new();
        let mut dns = Vec::new();
        for (c, names, ip) in entries {
            let ip = Ipv4Addr::from(*ip);
            allocations.insert(ip, c.to_string());
            dns.push(DnsEntry {
                container_id: c.to_string(),
                names: names.iter().map(|s| s.to_string()).collect(),
                ipv4: ip,
                ipv6: None,
                upstreams: vec![],
                links: BTreeMap::new(),
            });
        }
        NetworkState {
            network: NetworkRecord {
                name: id.into(),
                id: id.into(),
                created: String::new(),
                scope: "local".into(),
                driver: "bridge".into(),
                enable_ipv6: false,
                ipam: Ipam {
                    driver: "default".into(),
                    options: Default::default(),
                    config: vec![],
                },
                internal: false,
                attachable: false,
                options: Default::default(),
                labels: Default::default(),
                containers: BTreeMap::new(),
            },
            bridge: "x".into(),
            mtu: 1500,
            subnet,
            ip_range: None,
            gateway,
            allocations,
            endpoints: BTreeMap::new(),
            ports: vec![],
            dns,
            subnet6: None,
            gateway6: None,
            allocations6: BTreeMap::new(),
            group: 0,
            lingering: vec![],
        }
    }

    fn ask(r: &Resolver, name: &str, t: RecordType, src: [u8; 4]) -> (ResponseCode, Vec<Ipv4Addr>) {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        let bytes = q.to_vec().unwrap();
        match r.handle(&bytes, IpAddr::V4(Ipv4Addr::from(src)), Ipv4Addr::UNSPECIFIED) {
            Some(Action::Reply(b)) => {
                let m = Message::from_vec(&b).unwrap();
                let ips = m
                    .answers
                    .iter()
                    .filter_map(|a| match &a.data {
                        RData::A(A(ip)) => Some(*ip),
                        _ => None,
                    })
                    .collect();
                (m.metadata.response_code, ips)
            }
            Some(Action::Forward(_)) => (ResponseCode::Refused, vec![]), // marks "forwarded"
            None => (ResponseCode::FormErr, vec![]),
        }
    }

    #[test]
    fn scoped_answers_rotation_and_forwarding() {
        let dir = tempfile::tempdir().unwrap();
        let nd = dir.path().join("networks");
        std::fs::create_dir_all(&nd).unwrap();
        let a = state(
            "aaaa",
            "10.77.1.0/24",
            &[
                ("c1", &["web", "api"], [10, 77, 1, 2]),
                ("c2", &["api"], [10, 77, 1, 3]),
                ("both", &["both"], [10, 77, 1, 9]),
            ],
        );
        let b = state(
            "bbbb",
            "10.77.2.0/24",
            &[("c3", &["db"], [10, 77, 2, 2]), ("both", &["both"], [10, 77, 2, 9])],
        );
        crate::disk::write_json(&nd.join("aaaa.json"), &a).unwrap();
        crate::disk::write_json(&nd.join("bbbb.json"), &b).unwrap();
        crate::disk::write_atomic(&nd.join(GENERATION_FILE), b"1").unwrap();
        let up: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let r = Resolver::new(dir.path(), vec![up]);
        let from_a = [10, 77, 1, 2];
        let (code, mut ips) = ask(&r, "API.", RecordType::A, from_a);
        assert_eq!(code, ResponseCode::NoError);
        ips.sort();
        assert_eq!(ips, vec![Ipv4Addr::new(10, 77, 1, 2), Ipv4Addr::new(10, 77, 1, 3)]);
        let first = ask(&r, "api", RecordType::A, from_a).1;
        let second = ask(&r, "api", RecordType::A, from_a).1;
        assert_ne!(first, second, "rotation");
        assert_eq!(ask(&r, "web", RecordType::AAAA, from_a), (ResponseCode::NoError, vec![]));
        assert_eq!(
            ask(&r, "db", RecordType::A, from_a).0,
            ResponseCode::NXDomain,
            "other network hidden"
        );
        assert_eq!(
            ask(&r, "example.org", RecordType::A, from_a).0,
            ResponseCode::Refused,
            "forwarded"
        );
        // a container on both networks sees both, whichever address it asks from
        assert_eq!(
            ask(&r, "db", RecordType::A, [10, 77, 1, 9]).1,
            vec![Ipv4Addr::new(10, 77, 2, 2)]
        );
        assert_eq!(
            ask(&r, "web", RecordType::A, [10, 77, 2, 9]).1,
            vec![Ipv4Addr::new(10, 77, 1, 2)]
        );
        // removal is seen at once
        let a2 = state("aaaa", "10.77.1.0/24", &[("c1", &["web"], [10, 77, 1, 2])]);
        crate::disk::write_json(&nd.join("aaaa.json"), &a2).unwrap();
        crate::disk::write_atomic(&nd.join(GENERATION_FILE), b"2").unwrap();
        assert_eq!(ask(&r, "api", RecordType::A, from_a).0, ResponseCode::NXDomain);
    }
    #[test]
    fn links_answer_only_the_linking_container() {
        let dir = tempfile::tempdir().unwrap();
        let nd = dir.path().join("networks");
        std::fs::create_dir_all(&nd).unwrap();
        let mut a = state(
            "aaaa",
            "10.77.3.0/24",
            &[
                ("web", &["web"], [10, 77, 3, 2]),
                ("cli", &["cli"], [10, 77, 3, 3]),
                ("other", &["other"], [10, 77, 3, 4]),
            ],
        );
        a.dns[1].links.insert("db".into(), "web".into());
        crate::disk::write_json(&nd.join("aaaa.json"), &a).unwrap();
        crate::disk::write_atomic(&nd.join(GENERATION_FILE), b"1").unwrap();
        let r = Resolver::new(dir.path(), vec![]);
        let web = vec![Ipv4Addr::new(10, 77, 3, 2)];
        assert_eq!(ask(&r, "DB", RecordType::A, [10, 77, 3, 3]), (ResponseCode::NoError, web));
        assert_eq!(ask(&r, "db", RecordType::A, [10, 77, 3, 4]).0, ResponseCode::NXDomain);
    }
    #[test]
    fn live_part_overrides_and_a_garbled_one_means_no_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let nd = dir.path().join("networks");
        std::fs::create_dir_all(&nd).unwrap();
        let old = state("aaaa", "10.77.4.0/24", &[("c1", &["web"], [10, 77, 4, 2])]);
        crate::disk::write_json(&nd.join("aaaa.json"), &old).unwrap();
        let new = state("aaaa", "10.77.4.0/24", &[("c2", &["db"], [10, 77, 4, 3])]);
        let live = nd.join("aaaa.live");
        for _ in 0..2 {
            let bytes = serde_json::to_vec(&crate::live::LiveState::of(&new)).unwrap();
            berth_slotfile::write(&live, &bytes).unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(&nd)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp")), "temp file left: {names:?}");
        let st = crate::state::load_states(&nd).unwrap().remove(0);
        assert_eq!(st.dns, new.dns);
        assert_eq!(st.allocations, new.allocations);
        std::fs::write(&live, b"").unwrap();
        let st = crate::state::load_states(&nd).unwrap().remove(0);
        assert!(st.dns.is_empty() && st.allocations.is_empty());
    }
}
