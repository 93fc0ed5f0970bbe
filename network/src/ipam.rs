//! IPv4 address management: subnets, the default pools, and the host's occupied ranges.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 prefix such as `172.18.0.0/16` (host bits cleared on parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// Builds a prefix, clearing host bits; None when `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        if prefix > 32 {
            return None;
        }
        Some(Ipv4Net { addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)), prefix })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// True when `ip` lies inside this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// True when the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(p) == u32::from(other.addr) & mask(p)
    }

    /// The `n`th address of the prefix (0 = network address), if inside.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr).wrapping_add(n)))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) =
            s.split_once('/').ok_or_else(|| format!("{s:?} is not in CIDR form a.b.c.d/n"))?;
        let addr: Ipv4Addr =
            a.parse().map_err(|_| format!("{s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("{s:?}: bad prefix length {p:?}"))?;
        Ipv4Net::new(addr, prefix).ok_or_else(|| format!("{s:?}: prefix length above 32"))
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// An IPv6 prefix such as `fd42:1::/64` (host bits cleared on parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) }
}

impl Ipv6Net {
    /// Builds a prefix, clearing host bits; None when `prefix > 128`.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Option<Self> {
        (prefix <= 128)
            .then(|| Ipv6Net { addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)), prefix })
    }
    /// The network address.
    pub fn network(&self) -> Ipv6Addr {
        self.addr
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// True when `ip` lies inside this prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == u128::from(self.addr)
    }
    /// True when the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u128::from(self.addr) & mask6(p) == u128::from(other.addr) & mask6(p)
    }
    /// The `n`th address of the prefix (0 = subnet-router anycast), if inside.
    pub fn nth(&self, n: u64) -> Option<Ipv6Addr> {
        let host_bits = 128 - u32::from(self.prefix);
        (host_bits >= 64 || u128::from(n) < (1u128 << host_bits))
            .then(|| Ipv6Addr::from(u128::from(self.addr).wrapping_add(u128::from(n))))
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("{s:?} is not in CIDR form x::/n"))?;
        let addr: Ipv6Addr =
            a.parse().map_err(|_| format!("{s:?}: {a:?} is not an IPv6 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("{s:?}: bad prefix length {p:?}"))?;
        Ipv6Net::new(addr, prefix).ok_or_else(|| format!("{s:?}: prefix length above 128"))
    }
}

impl TryFrom<String> for Ipv6Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv6Net> for String {
    fn from(n: Ipv6Net) -> String {
        n.to_string()
    }
}

/// The lowest free address of `subnet` from `::2` on (first 65536 tried), skipping `gateway`
/// and `taken`.
pub fn next_free6(
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    taken: &BTreeMap<Ipv6Addr, String>,
) -> Option<Ipv6Addr> {
    (2u64..65536).filter_map(|i| subnet.nth(i)).find(|ip| *ip != gateway && !taken.contains_key(ip))
}

/// Docker's default local pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20 steps.
pub fn default_pools() -> Vec<Ipv4Net> {
    let mut v: Vec<Ipv4Net> =
        (17u8..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16)).collect();
    v.extend((0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20)));
    v
}

/// The first pool that overlaps none of `taken`.
pub fn pick_pool(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().into_iter().find(|p| !taken.iter().any(|t| t.overlaps(p)))
}

/// The host's occupied IPv4 ranges: non-default routes (`/proc/net/route`), interface addresses
/// (as /32 and as their prefix) and the resolvers in `/etc/resolv.conf`, each with a description.
pub fn host_occupied() -> Vec<(Ipv4Net, String)> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/route") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let (Ok(dst), Ok(m)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
            else {
                continue;
            };
            // /proc/net/route prints addresses in host (little-endian) byte order.
            let dst = Ipv4Addr::from(u32::from_be(dst));
            let prefix = u32::from_be(m).count_ones() as u8;
            if prefix == 0 {
                continue; // a default route overlaps everything and blocks nothing
            }
            if let Some(n) = Ipv4Net::new(dst, prefix) {
                out.push((n, format!("host route {n} dev {}", f[0])));
            }
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(ip) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()).map(|s| s.ip())
            else {
                continue;
            };
            if let Some(n) = Ipv4Net::new(ip, 32) {
                out.push((n, format!("host address {ip} on {}", a.interface_name)));
            }
        }
    }
    for ns in resolv_nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()) {
        if let IpAddr::V4(v4) = ns
            && let Some(n) = Ipv4Net::new(v4, 32)
        {
            out.push((n, format!("resolver {v4} in /etc/resolv.conf")));
        }
    }
    out
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn resolv_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse().ok()))
        .collect()
}

/// The lowest free address of `range` (or `subnet`) that is not the network, broadcast or
/// gateway address and not in `taken`.
pub fn next_free(
    subnet: Ipv4Net,
    range: Option<Ipv4Net>,
    gateway: Ipv4Addr,
    taken: &BTreeMap<Ipv4Addr, String>,
) -> Option<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    let size = 1u64 << (32 - u32::from(r.prefix()));
    (0..size).filter_map(|i| r.nth(i as u32)).find(|ip| {
        subnet.contains(*ip)
            && *ip != subnet.network()
            && (subnet.prefix() >= 31 || *ip != subnet.broadcast())
            && *ip != gateway
            && !taken.contains_key(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_overlap_and_alloc() {
        let a: Ipv4Net = "172.18.5.9/16".parse().unwrap();
        assert_eq!(a.to_string(), "172.18.0.0/16");
        let b: Ipv4Net = "172.18.200.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        let c: Ipv4Net = "172.19.0.0/16".parse().unwrap();
        assert!(!a.overlaps(&c));
        assert_eq!(pick_pool(&[a, "172.17.0.1/32".parse().unwrap()]), Some(c));
        let mut taken = BTreeMap::new();
        let s: Ipv4Net = "10.9.0.0/30".parse().unwrap();
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        assert_eq!(next_free(s, None, gw, &taken), Some(Ipv4Addr::new(10, 9, 0, 2)));
        taken.insert(Ipv4Addr::new(10, 9, 0, 2), "x".into());
        assert_eq!(next_free(s, None, gw, &taken), None);
        assert!("1.2.3.4".parse::<Ipv4Net>().is_err());
        let v6: Ipv6Net = "fd42:1::77/64".parse().unwrap();
        assert_eq!(v6.to_string(), "fd42:1::/64");
        assert!(
            v6.contains("fd42:1::ffff".parse().unwrap())
                && !v6.contains("fd42:2::1".parse().unwrap())
        );
        assert!(
            v6.overlaps(&"fd42::/16".parse().unwrap())
                && !v6.overlaps(&"fd42::/32".parse().unwrap())
        );
        let gw6: Ipv6Addr = "fd42:1::1".parse().unwrap();
        assert_eq!(next_free6(v6, gw6, &BTreeMap::new()), Some("fd42:1::2".parse().unwrap()));
        // ip_range: allocation stays inside the range, never the gateway
        let s: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        let r: Ipv4Net = "10.9.0.128/25".parse().unwrap();
        let taken = BTreeMap::new();
        let gw128 = Ipv4Addr::new(10, 9, 0, 128);
        assert_eq!(next_free(s, Some(r), gw128, &taken), Some(Ipv4Addr::new(10, 9, 0, 129)));
        assert_eq!(
            resolv_nameservers("# c\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch x\n"),
            vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V6("fe80::1".parse().unwrap())]
        );
    }
}
