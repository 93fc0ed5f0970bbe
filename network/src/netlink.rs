//! Kernel data path over rtnetlink: bridges, veth pairs, addresses, routes.
//!
//! Every operation runs on a short-lived thread with its own current-thread tokio runtime, so the
//! public API is synchronous (callable from sync and async code alike) and a thread may `setns`
//! into a container's network namespace without disturbing any other thread.

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressHeaderFlags;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{NetworkError, Result};

const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;

/// The errno a netlink error carries (positive), 0 when it is not a kernel NACK.
fn errno_of(e: &rtnetlink::Error) -> i32 {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.raw_code().abs(),
        _ => 0,
    }
}

fn nl(context: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let context = context.into();
    move |e| NetworkError::Netlink {
        context,
        message: match &e {
            rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
            other => other.to_string(),
        },
    }
}

/// Runs `job` on a fresh thread with a host netlink handle and, when `netns` is given, a second
/// handle whose socket lives in that namespace.
fn on_thread<T, F, Fut>(netns: Option<PathBuf>, job: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle, Option<Handle>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    spawn_worker(netns, job)?.recv().unwrap_or_else(|_| Err(worker_panicked()))
}

fn worker_panicked() -> NetworkError {
    NetworkError::Netlink { context: "netlink worker".into(), message: "panicked".into() }
}

/// Starts `job` like [`on_thread`] and returns the channel its result arrives on.
fn spawn_worker<T, F, Fut>(
    netns: Option<PathBuf>,
    job: F,
) -> Result<std::sync::mpsc::Receiver<Result<T>>>
where
    T: Send + 'static,
    F: FnOnce(Handle, Option<Handle>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    // The result comes back over a channel as soon as the job is done; tearing down the
    // runtime and the thread happens off the caller's critical path.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<T>>(1);
    std::thread::Builder::new()
        .name("berth-netlink".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(NetworkError::io("start netlink runtime", "", e)));
                    return;
                }
            };
            let r = rt.block_on(async move {
                let (conn, host, _) = rtnetlink::new_connection()
                    .map_err(|e| NetworkError::io("open netlink socket", "", e))?;
                tokio::spawn(conn);
                let inner = match netns {
                    Some(path) => {
                        enter_netns(&path)?;
                        // A netlink socket stays bound to the namespace it was created in.
                        let (conn, h, _) = rtnetlink::new_connection()
                            .map_err(|e| NetworkError::io("open netlink socket in", &path, e))?;
                        tokio::spawn(conn);
                        Some(h)
                    }
                    None => None,
                };
                job(host, inner).await
            });
            let _ = tx.send(r);
        })
        .map_err(|e| NetworkError::io("spawn netlink thread", "", e))?;
    Ok(rx)
}

/// Moves the calling thread into the network namespace at `path`. Only called on the dedicated
/// netlink worker thread, which exits right after, so no other code runs in the wrong namespace.
fn enter_netns(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| NetworkError::io("open netns", path, e))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetworkError::io("setns", path, e.into()))
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut s = h.link().get().match_name(name).execute();
    match s.try_next().await {
        Ok(Some(m)) => Ok(Some(m.header.index)),
        Ok(None) => Ok(None),
        Err(e) if errno_of(&e) == ENODEV => Ok(None),
        Err(e) => Err(nl(format!("look up link {name}"))(e)),
    }
}

/// True when a link called `name` exists in the host namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    let name = name.to_string();
    on_thread(None, move |h, _| async move { Ok(index_of(&h, &name).await?.is_some()) })
}

/// Creates bridge `name` (up, `mtu`, in link group `group` unless 0) with `gateway/prefix` on
/// it and `alias` as its `ifalias` (the owner marker `system prune` reads, see
/// [`crate::orphans::bridge_alias`]). Fails when it already exists.
pub fn create_bridge(
    name: &str,
    mtu: u32,
    gateway: Ipv4Addr,
    prefix: u8,
    v6: Option<(Ipv6Addr, u8)>,
    group: u32,
    alias: &str,
) -> Result<()> {
    let name = name.to_string();
    let alias = alias.to_string();
    on_thread(None, move |h, _| async move {
        let ctx = format!("create bridge {name}");
        // A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it
        // when ports come and go, leaving containers' ARP entries for the gateway stale for
        // ~30 s (DNS and egress time out meanwhile).
        let mut bridge = LinkBridge::new(&name).mtu(mtu).address(mac_for(gateway).to_vec());
        if group != 0 {
            bridge = bridge.link_group(group);
        }
        let bridge = bridge.build();
        h.link().add(bridge).execute().await.map_err(|e| {
            if errno_of(&e) == EEXIST {
                NetworkError::Netlink {
                    context: ctx.clone(),
                    message: "an interface with this name already exists".into(),
                }
            } else {
                nl(ctx.clone())(e)
            }
        })?;
        let idx = index_of(&h, &name).await?.ok_or_else(|| NetworkError::Netlink {
            context: ctx.clone(),
            message: "bridge vanished after creation".into(),
        })?;
        // The kernel ignores IFLA_IFALIAS in a create request: set it right after.
        let mark = LinkUnspec::new_with_index(idx)
            .append_extra_attribute(LinkAttribute::IfAlias(alias))
            .build();
        if let Err(e) = h.link().set(mark).execute().await {
            let _ = h.link().del(idx).execute().await;
            return Err(nl(format!("set the alias of bridge {name}"))(e));
        }
        let r = h.address().add(idx, IpAddr::V4(gateway), prefix).execute().await;
        if let Err(e) = r {
            let _ = h.link().del(idx).execute().await;
            return Err(nl(format!("add {gateway}/{prefix} to bridge {name}"))(e));
        }
        if let Some((g6, p6)) = v6 {
            let mut req = h.address().add(idx, IpAddr::V6(g6), p6);
            // No duplicate address detection: the subnet is ours, and DAD would hold the
            // address "tentative" (unusable) for a second or more.
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
            if let Err(e) = req.execute().await {
                let _ = h.link().del(idx).execute().await;
                return Err(nl(format!("add {g6}/{p6} to bridge {name}"))(e));
            }
        }
        Ok(())
    })
}

/// Deletes link `name` from the host namespace; a missing link is not an error.
pub fn delete_link(name: &str) -> Result<()> {
    let links = resolve(&[name.to_string()]);
    if links.is_empty() {
        return Ok(());
    }
    spawn_delete(Doomed::Links(links))?.recv().unwrap_or_else(|_| Err(worker_panicked()))
}

/// What one deletion request removes.
#[derive(Debug, Clone)]
enum Doomed {
    /// These links, by index (names only for messages), one `RTM_DELLINK` each. By index: a
    /// request still queued when its link vanished otherwise (its namespace died) must not
    /// hit a new link that took the name since.
    Links(Vec<(String, u32)>),
    /// Every link of this (non-zero) group, in one `RTM_DELLINK`.
    Group(u32),
}

/// The links of `names` that exist now, with their indexes (in the caller's namespace, the
/// host's: interface indexes are not reused while the counter has not wrapped).
fn resolve(names: &[String]) -> Vec<(String, u32)> {
    names
        .iter()
        .filter_map(|n| nix::net::if_::if_nametoindex(n.as_str()).ok().map(|i| (n.clone(), i)))
        .collect()
}

/// `RTM_DELLINK` by index; a link already gone is not an error.
async fn del_by_index(h: &Handle, name: &str, index: u32) -> Result<()> {
    match h.link().del(index).execute().await {
        Err(e) if errno_of(&e) != ENODEV => Err(nl(format!("delete link {name}"))(e)),
        _ => Ok(()),
    }
}

/// `RTM_DELLINK` by name (index 0 + `IFLA_IFNAME`): one round trip, no index lookup.
async fn del_by_name(h: &Handle, name: &str) -> Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match h.link().del_with_message(msg).execute().await {
        Err(e) if errno_of(&e) != ENODEV => Err(nl(format!("delete link {name}"))(e)),
        _ => Ok(()),
    }
}

fn spawn_delete(doomed: Doomed) -> Result<std::sync::mpsc::Receiver<Result<()>>> {
    spawn_worker(None, move |h, _| async move {
        match doomed {
            Doomed::Links(links) => {
                for (name, index) in &links {
                    del_by_index(&h, name, *index).await?;
                }
                Ok(())
            }
            Doomed::Group(group) => {
                // The kernel refuses group 0 (EPERM); callers never pass it.
                let mut msg = LinkMessage::default();
                msg.attributes.push(LinkAttribute::Group(group));
                match h.link().del_with_message(msg).execute().await {
                    // ENODEV: no link of the group is left.
                    Err(e) if errno_of(&e) != ENODEV => {
                        Err(nl(format!("delete the links of group {group}"))(e))
                    }
                    _ => Ok(()),
                }
            }
        }
    })
}

/// A deletion under way; [`PendingDelete::wait_unlisted`] or [`PendingDelete::wait_done`]
/// waits for it.
#[derive(Debug)]
pub struct PendingDelete {
    runner: Runner,
    /// The links the caller expects gone, with their indexes when they were found.
    links: Vec<(String, u32)>,
}

/// Who runs a deletion and how its result comes back.
#[derive(Debug)]
enum Runner {
    /// A detached process (see [`spawn_detached_delete`]); it writes the kernel's answer, an
    /// errno as 4 native-endian bytes (0: done), to this pipe.
    Detached(std::os::fd::OwnedFd),
    /// A netlink worker thread of this process (when no process could be started).
    Thread(std::sync::mpsc::Receiver<Result<()>>),
    /// Nothing to delete: every named link was gone already (and no group was given).
    Nothing,
}

/// Starts deleting every link of `group` (one `RTM_DELLINK` with ifindex 0 and `IFLA_GROUP`:
/// the kernel unregisters them all in one batch, so they share one set of RCU waits, where one
/// request per link waits once per link), or, for group 0 (records made before groups), the
/// links `names` one by one. `names` are the links the caller expects gone afterwards.
pub fn start_delete(group: u32, names: Vec<String>) -> Result<PendingDelete> {
    let links = resolve(&names);
    let doomed = if group != 0 {
        Doomed::Group(group)
    } else if links.is_empty() {
        return Ok(PendingDelete { runner: Runner::Nothing, links });
    } else {
        Doomed::Links(links.clone())
    };
    let runner = match spawn_detached_delete(&dellink_requests(&doomed)) {
        Ok(fd) => Runner::Detached(fd),
        Err(e) => {
            tracing::debug!("deleting links in this process: {e}");
            Runner::Thread(spawn_delete(doomed)?)
        }
    };
    Ok(PendingDelete { runner, links })
}

/// The `RTM_DELLINK` requests for `doomed`, serialised back to back (one datagram).
fn dellink_requests(doomed: &Doomed) -> Vec<u8> {
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let msgs: Vec<LinkMessage> = match doomed {
        Doomed::Group(g) => {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::Group(*g));
            vec![m]
        }
        Doomed::Links(links) => links
            .iter()
            .map(|(_, index)| {
                let mut m = LinkMessage::default();
                m.header.index = *index;
                m
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (i, m) in msgs.into_iter().enumerate() {
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::DelLink(m));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        req.header.sequence_number = i as u32 + 1;
        req.finalize();
        let at = out.len();
        out.resize(at + req.buffer_len(), 0);
        req.serialize(&mut out[at..]);
    }
    out
}

/// Sends `requests` (a datagram of `RTM_DELLINK` messages) from a detached grandchild process
/// and returns the read end of the pipe its answer comes on. The kernel runs a deletion inside
/// the sender's `send` call, grace periods included, and a process cannot exit before all its
/// threads left their system calls: from a worker thread, `down` and `network rm` waited
/// 20-40 ms after their work was done for the kernel's `rcu_barrier`. The grandchild (its own
/// session, no inherited descriptor but the pipe, reaped by init) waits instead; the caller
/// only waits until the links are unlisted.
fn spawn_detached_delete(requests: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the children run only `detached_delete`, which makes raw system calls on memory
    // prepared before the fork (no allocation, no locks) and ends in `_exit`.
    let child = unsafe { libc::fork() };
    match child {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: in the child; see above.
            unsafe {
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
                detached_delete(requests, wr.as_raw_fd())
            }
        }
        pid => {
            drop(wr);
            // The middle child exits at once. ECHILD: a `waitpid(-1)` elsewhere (the
            // monitor's) reaped it first.
            loop {
                // SAFETY: waits for our own child; a null status pointer is allowed.
                let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            Ok(rd)
        }
    }
}

/// The grandchild of [`spawn_detached_delete`]: sends `requests`, reads the acknowledgements
/// and writes the first error (or 0) to `answer`, then exits.
///
/// # Safety
/// Only to be called in a freshly forked child: it closes every other descriptor and never
/// returns.
unsafe fn detached_delete(requests: &[u8], answer: i32) -> ! {
    // SAFETY: async-signal-safe system calls on memory we own; see the function's contract.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // Keep no descriptor of the parent (pipes its caller waits on, lock files).
        if answer > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (answer - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (answer + 1) as u32, u32::MAX, 0u32);
        let mut code: i32 = 0;
        let sock = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        let sent = sock >= 0
            && libc::send(sock, requests.as_ptr().cast(), requests.len(), 0)
                == requests.len() as isize;
        if !sent {
            code = *libc::__errno_location();
        }
        // One acknowledgement per request.
        let mut expected = count_messages(requests);
        let mut buf = [0u8; 4096];
        while sent && expected > 0 && code == 0 {
            let n = libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                code = if n < 0 { *libc::__errno_location() } else { libc::EIO };
                break;
            }
            let mut at = 0usize;
            while at + 20 <= n as usize && expected > 0 {
                let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
                let typ = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                if typ == libc::NLMSG_ERROR as u16 {
                    let e = i32::from_ne_bytes([
                        buf[at + 16],
                        buf[at + 17],
                        buf[at + 18],
                        buf[at + 19],
                    ]);
                    expected -= 1;
                    // A missing link is not an error.
                    if e != 0 && -e != libc::ENODEV {
                        code = -e;
                    }
                }
                at += (len as usize).next_multiple_of(4).max(20);
            }
        }
        let bytes = code.to_ne_bytes();
        libc::write(answer, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}

/// How many netlink messages the datagram `buf` holds (their headers' lengths chain them).
fn count_messages(buf: &[u8]) -> usize {
    let (mut n, mut at) = (0, 0usize);
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < 16 {
            break;
        }
        n += 1;
        at += len.next_multiple_of(4);
    }
    n
}

impl PendingDelete {
    /// Returns as soon as the kernel has unlisted every expected link: names free, ports gone
    /// from their bridge, no listing shows them (a veth's peer goes in the same step), or
    /// when the deletion answered, whichever comes first. The rest of the kernel's work (its
    /// `rcu_barrier`, 20-40 ms here) finishes in whoever sent the request.
    pub fn wait_unlisted(self) -> Result<()> {
        self.wait(true)
    }

    /// Returns when the deletion has answered. For a group deletion whose group the caller
    /// gives to new links next: a request still queued would take those too.
    pub fn wait_done(self) -> Result<()> {
        self.wait(false)
    }

    fn wait(self, until_unlisted: bool) -> Result<()> {
        use std::os::fd::AsFd;
        // Gone: the name is free, or names another link now (ours went some other way).
        let gone = |(n, i): &(String, u32)| nix::net::if_::if_nametoindex(n.as_str()) != Ok(*i);
        let unlisted = || until_unlisted && self.links.iter().all(gone);
        let tick = std::time::Duration::from_micros(250);
        match self.runner {
            Runner::Nothing => Ok(()),
            Runner::Thread(rx) => loop {
                use std::sync::mpsc::RecvTimeoutError;
                match rx.recv_timeout(tick) {
                    Ok(r) => return r,
                    Err(RecvTimeoutError::Disconnected) => return Err(worker_panicked()),
                    // Gone from the host's list (the caller's namespace is the host's, like
                    // the worker's): done, whatever the worker still waits for.
                    Err(RecvTimeoutError::Timeout) if unlisted() => return Ok(()),
                    Err(RecvTimeoutError::Timeout) => {}
                }
            },
            Runner::Detached(fd) => loop {
                let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
                let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(0u8))
                    .map_err(|e| NetworkError::io("wait for link deletion", "", e.into()))?;
                if ready > 0 {
                    let mut b = [0u8; 4];
                    let n = nix::unistd::read(&fd, &mut b)
                        .map_err(|e| NetworkError::io("wait for link deletion", "", e.into()))?;
                    let code = if n == 4 { i32::from_ne_bytes(b) } else { libc::EIO };
                    if code == 0 {
                        return Ok(());
                    }
                    let names: Vec<&str> = self.links.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(NetworkError::Netlink {
                        context: format!("delete links {}", names.join(", ")),
                        message: std::io::Error::from_raw_os_error(code).to_string(),
                    });
                }
                if unlisted() {
                    return Ok(());
                }
                std::thread::sleep(tick);
            },
        }
    }
}

/// Deletes link `name` (a missing one is not an error) and returns as soon as the kernel has
/// unlisted it (see [`PendingDelete::wait_unlisted`]).
pub fn delete_link_unlisted(name: &str) -> Result<()> {
    start_delete(0, vec![name.to_string()])?.wait_unlisted()
}

/// A link group for a new network: derived from `seed` (random hex), never 0 (the default
/// group of every link) and not carried by any link of the host namespace now. The caller
/// holds the machine lock, so two networks cannot pick the same one.
pub fn pick_group(seed: &str) -> Result<u32> {
    let seed = seed.to_string();
    on_thread(None, move |h, _| async move {
        let mut used = std::collections::BTreeSet::new();
        let mut links = h.link().get().execute();
        while let Some(m) = links.try_next().await.map_err(nl("list links"))? {
            for a in &m.attributes {
                if let LinkAttribute::Group(g) = a {
                    used.insert(*g);
                }
            }
        }
        Ok(group_candidate(&seed, &used))
    })
}

/// The first group from `seed`'s hash upwards (in 0x4000_0000..=0x7fff_ffff, far from the
/// small numbers people assign by hand) that `used` lacks.
fn group_candidate(seed: &str, used: &std::collections::BTreeSet<u32>) -> u32 {
    const LOW: u32 = 0x4000_0000;
    // At most i32::MAX: `ip` parses and prints groups as signed numbers.
    const HIGH: u32 = 0x7fff_ffff;
    let mut g = LOW | (crate::disk::short_hash(seed) & (HIGH - LOW));
    while used.contains(&g) {
        g = if g == HIGH { LOW } else { g + 1 };
    }
    g
}

/// Everything needed to plug one container interface into a bridge.
#[derive(Debug, Clone)]
pub struct VethPlan {
    /// Bridge to enslave the host end to.
    pub bridge: String,
    /// Host-side veth name.
    pub host_ifname: String,
    /// Container network namespace (e.g. `/proc/<pid>/ns/net`).
    pub netns: PathBuf,
    /// Interface name inside the namespace.
    pub ifname: String,
    /// MAC address bytes.
    pub mac: [u8; 6],
    /// MTU for both ends.
    pub mtu: u32,
    /// Container address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Gateway for the default route, when one is wanted.
    pub default_via: Option<Ipv4Addr>,
    /// IPv6 address and prefix length, on IPv6-enabled networks.
    pub ip6: Option<(Ipv6Addr, u8)>,
    /// IPv6 gateway for the default IPv6 route, when one is wanted.
    pub default_via6: Option<Ipv6Addr>,
    /// Replace an existing default route (this network has a higher priority than its owner).
    pub replace_default: bool,
    /// Link group of the network (0: none), given to the host end.
    pub group: u32,
    /// Host links to delete first: veths of exited containers, left to die with their
    /// namespace, that carry this endpoint's MAC address (a bridge must not see it twice).
    pub stale: Vec<String>,
}

/// Why `plug_veth` failed: the bridge is missing (recoverable) or anything else.
#[derive(Debug)]
pub enum PlugError {
    /// The bridge does not exist in the host namespace.
    NoBridge,
    /// Any other failure.
    Other(NetworkError),
}

impl From<NetworkError> for PlugError {
    fn from(e: NetworkError) -> Self {
        PlugError::Other(e)
    }
}

impl From<PlugError> for NetworkError {
    fn from(e: PlugError) -> Self {
        match e {
            PlugError::NoBridge => NetworkError::Netlink {
                context: "connect".into(),
                message: "bridge does not exist".into(),
            },
            PlugError::Other(e) => e,
        }
    }
}

/// Creates the veth pair with its peer directly inside the namespace (one netlink message),
/// then addresses it, brings it and `lo` up and adds the default route. Returns whether the
/// default route was installed (false when the namespace already had one). On failure the
/// pair is removed again.
pub fn plug_veth(plan: VethPlan) -> std::result::Result<bool, PlugError> {
    let netns = plan.netns.clone();
    let missing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = missing.clone();
    let r = on_thread(Some(netns), move |h, inner| async move {
        let Some(n) = inner else {
            return Err(NetworkError::Netlink {
                context: "connect".into(),
                message: "no namespace handle".into(),
            });
        };
        let ns_file =
            File::open(&plan.netns).map_err(|e| NetworkError::io("open netns", &plan.netns, e))?;
        let Some(br) = index_of(&h, &plan.bridge).await? else {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(NetworkError::Netlink {
                context: format!("connect to bridge {}", plan.bridge),
                message: "bridge does not exist".into(),
            });
        };
        for name in &plan.stale {
            del_by_name(&h, name).await?;
        }
        let msg = || {
            let peer = LinkUnspec::new_with_name(&plan.ifname)
                .setns_by_fd(ns_file.as_raw_fd())
                .address(plan.mac.to_vec())
                .mtu(plan.mtu)
                .build();
            let mut m = LinkVeth::new(&plan.host_ifname, &plan.ifname)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .mtu(plan.mtu)
                .controller(br)
                .up();
            if plan.group != 0 {
                m = m.link_group(plan.group);
            }
            m.build()
        };
        let ctx = format!(
            "create veth {} <-> {} in {}",
            plan.host_ifname,
            plan.ifname,
            plan.netns.display()
        );
        match h.link().add(msg()).execute().await {
            Ok(()) => {}
            // The host name is this container's on this network: a link of that name is the
            // veth of its previous run, whose namespace the kernel has not cleaned up yet.
            Err(e) if errno_of(&e) == EEXIST => {
                del_by_name(&h, &plan.host_ifname).await?;
                h.link().add(msg()).execute().await.map_err(nl(ctx))?;
            }
            Err(e) => return Err(nl(ctx)(e)),
        }
        let r = configure_inside(&n, &plan).await;
        if r.is_err()
            && let Ok(Some(idx)) = index_of(&h, &plan.host_ifname).await
        {
            let _ = h.link().del(idx).execute().await;
        }
        r
    });
    match r {
        Err(_) if missing.load(std::sync::atomic::Ordering::Relaxed) => Err(PlugError::NoBridge),
        r => r.map_err(PlugError::Other),
    }
}

async fn configure_inside(n: &Handle, plan: &VethPlan) -> Result<bool> {
    let ctx = |what: &str| format!("{what} {} in {}", plan.ifname, plan.netns.display());
    let idx = index_of(n, &plan.ifname).await?.ok_or_else(|| NetworkError::Netlink {
        context: ctx("find"),
        message: "interface missing after creation".into(),
    })?;
    n.address()
        .add(idx, IpAddr::V4(plan.ip), plan.prefix)
        .execute()
        .await
        .map_err(nl(ctx(&format!("add {}/{} to", plan.ip, plan.prefix))))?;
    if let Some((a, p)) = plan.ip6 {
        let mut req = n.address().add(idx, IpAddr::V6(a), p);
        req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        req.execute().await.map_err(nl(ctx(&format!("add {a}/{p} to"))))?;
    }
    // (Creating the peer already up makes the kernel answer ENOTCONN, so bring it up here.)
    n.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl(ctx("bring up")))?;
    // `lo` is set up by name: no index lookup needed.
    n.link()
        .set(LinkUnspec::new_with_name("lo").up().build())
        .execute()
        .await
        .map_err(nl(ctx("bring up lo beside")))?;
    if let Some(gw6) = plan.default_via6 {
        let route =
            RouteMessageBuilder::<Ipv6Addr>::new().gateway(gw6).output_interface(idx).build();
        let req = n.route().add(route);
        let req = if plan.replace_default { req.replace() } else { req };
        match req.execute().await {
            Ok(()) => {}
            Err(e) if errno_of(&e) == EEXIST => {}
            Err(e) => return Err(nl(ctx(&format!("add default route via {gw6} on")))(e)),
        }
    }
    let Some(gw) = plan.default_via else { return Ok(false) };
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build();
    let req = n.route().add(route);
    let req = if plan.replace_default { req.replace() } else { req };
    match req.execute().await {
        Ok(()) => Ok(true),
        // Another (earlier, higher-priority) network already set the default route.
        Err(e) if errno_of(&e) == EEXIST => Ok(false),
        Err(e) => Err(nl(ctx(&format!("add default route via {gw} on")))(e)),
    }
}

/// Points the default route of the namespace at `netns` at `gateway` through `ifname`
/// (replacing any default route there).
pub fn replace_default_route(netns: &Path, ifname: &str, gateway: Ipv4Addr) -> Result<()> {
    let (ifname, path) = (ifname.to_string(), netns.to_path_buf());
    on_thread(Some(path.clone()), move |_, inner| async move {
        let ctx = format!("set default route via {gateway} on {ifname} in {}", path.display());
        let n = inner.ok_or_else(|| NetworkError::Netlink {
            context: ctx.clone(),
            message: "no namespace handle".into(),
        })?;
        let idx = index_of(&n, &ifname).await?.ok_or_else(|| NetworkError::Netlink {
            context: ctx.clone(),
            message: "interface not found".into(),
        })?;
        let route =
            RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(idx).build();
        n.route().add(route).replace().execute().await.map_err(nl(ctx))
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

/// Docker's address-derived MAC: `02:42:` + the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Formats MAC bytes as `aa:bb:...`.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// One link of the host namespace, as `system prune` needs to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// `ifalias`, when set.
    pub alias: Option<String>,
    /// Index of the bridge (or other controller) this link is a port of.
    pub master: Option<u32>,
    /// Whether the link is a bridge.
    pub is_bridge: bool,
}

/// Every link of the host namespace with its alias, controller and kind (one dump).
pub fn host_links() -> Result<Vec<HostLink>> {
    use rtnetlink::packet_route::link::{InfoKind, LinkInfo};
    on_thread(None, move |h, _| async move {
        let mut out = Vec::new();
        let mut links = h.link().get().execute();
        while let Some(m) = links.try_next().await.map_err(nl("list links"))? {
            let mut l = HostLink {
                name: String::new(),
                index: m.header.index,
                alias: None,
                master: None,
                is_bridge: false,
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => l.name = n.clone(),
                    LinkAttribute::IfAlias(s) => l.alias = Some(s.clone()),
                    LinkAttribute::Controller(i) => l.master = Some(*i),
                    LinkAttribute::LinkInfo(infos) => {
                        l.is_bridge |=
                            infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
                    }
                    _ => {}
                }
            }
            out.push(l);
        }
        Ok(out)
    })
}

/// The first IPv4 address of link `name` with its prefix length; None when the link or an
/// IPv4 address on it is missing (finds the subnet of a bridge whose record is damaged).
pub fn link_ipv4(name: &str) -> Result<Option<(Ipv4Addr, u8)>> {
    use rtnetlink::packet_route::AddressFamily;
    use rtnetlink::packet_route::address::AddressAttribute;
    let name = name.to_string();
    on_thread(None, move |h, _| async move {
        let Some(idx) = index_of(&h, &name).await? else { return Ok(None) };
        let mut addrs = h.address().get().set_link_index_filter(idx).execute();
        while let Some(m) =
            addrs.try_next().await.map_err(nl(format!("list the addresses of {name}")))?
        {
            if m.header.family != AddressFamily::Inet {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                    return Ok(Some((*ip, m.header.prefix_len)));
                }
            }
        }
        Ok(None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge of the test's, deleted again when the test ends, however it ends.
    struct TestLink(String);

    impl TestLink {
        fn add(name: &str) -> Self {
            let ok = std::process::Command::new("ip")
                .args(["link", "add", name, "type", "bridge"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip link add {name}");
            TestLink(name.to_string())
        }

        fn index(&self) -> Option<u32> {
            nix::net::if_::if_nametoindex(self.0.as_str()).ok()
        }
    }

    impl Drop for TestLink {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }

    /// A deletion queued for a link that vanished some other way (its namespace died) must
    /// not take the new link that took its name meanwhile.
    #[test]
    fn a_queued_deletion_spares_the_link_that_took_the_name_since() {
        if !berth_testsupport::require_root() {
            return;
        }
        let name = format!("btidx{}", std::process::id() % 100_000);
        let old = TestLink::add(&name);
        let old_index = old.index().expect("index of the first link");
        drop(old);
        let new = TestLink::add(&name);
        let new_index = new.index().expect("index of the second link");
        assert_ne!(old_index, new_index);
        let late = Doomed::Links(vec![(name.clone(), old_index)]);
        let fd = spawn_detached_delete(&dellink_requests(&late)).expect("detached delete");
        PendingDelete { runner: Runner::Detached(fd), links: vec![(name.clone(), old_index)] }
            .wait_done()
            .expect("a vanished link is not an error");
        assert_eq!(new.index(), Some(new_index), "the new link was deleted");
        // And a deletion started now takes the new one, by its index.
        start_delete(0, vec![name.clone()]).expect("start").wait_unlisted().expect("delete");
        assert_eq!(new.index(), None);
        // Nothing of that name left: nothing to do, and no error.
        start_delete(0, vec![name]).expect("start").wait_done().expect("nothing");
    }
}
