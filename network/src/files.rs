//! Contents of a container's `/etc/resolv.conf` and `/etc/hosts`.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{NetworkError, Result};

/// Builds `/etc/resolv.conf`: our DNS server (the first network's gateway) as the only
/// nameserver (compose `dns:` servers become its upstreams via `EndpointConfig::dns_servers`),
/// `search` from `dns_search` (else the host's), `options` from `dns_opt` (else the host's
/// plus `ndots:0`, as docker writes for its embedded server).
/// With no berth DNS (`nameserver` None, e.g. network_mode host) the `dns` list or the host's
/// servers are written instead.
pub fn resolv_conf(
    nameserver: Option<Ipv4Addr>,
    dns: &[IpAddr],
    dns_search: &[String],
    dns_opt: &[String],
    host_resolv_conf: &str,
) -> String {
    let host_words = |key: &str| -> Vec<String> {
        host_resolv_conf
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string))
            .collect()
    };
    let mut out = String::new();
    match nameserver {
        Some(ns) => out.push_str(&format!("nameserver {ns}\n")),
        None if !dns.is_empty() => {
            dns.iter().for_each(|d| out.push_str(&format!("nameserver {d}\n")))
        }
        None => crate::ipam::resolv_nameservers(host_resolv_conf)
            .iter()
            .for_each(|d| out.push_str(&format!("nameserver {d}\n"))),
    }
    let search = if dns_search.is_empty() { host_words("search") } else { dns_search.to_vec() };
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let mut opts = if dns_opt.is_empty() { host_words("options") } else { dns_opt.to_vec() };
    // Like docker with its embedded server: try names as given first, so `web` is asked as
    // `web` before any search domain is appended.
    if nameserver.is_some() && dns_opt.is_empty() && !opts.iter().any(|o| o.starts_with("ndots:")) {
        opts.push("ndots:0".into());
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// Builds `/etc/hosts`: localhost lines, the container's own address and hostname, and
/// `extra_hosts` (`name:ip` or `name=ip`; `host-gateway` maps to `gateway`).
pub fn hosts(
    hostname: &str,
    own_ip: Option<Ipv4Addr>,
    extra_hosts: &[String],
    gateway: Option<Ipv4Addr>,
) -> Result<String> {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for e in extra_hosts {
        // name:ip, but an IPv6 address has colons itself: split at the first separator.
        let (name, addr) = e
            .split_once('=')
            .or_else(|| e.split_once(':'))
            .ok_or_else(|| bad_extra(e, "is not name:address"))?;
        let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = if addr == "host-gateway" {
            IpAddr::V4(gateway.ok_or_else(|| {
                bad_extra(e, "uses host-gateway but the container has no network gateway")
            })?)
        } else {
            addr.parse().map_err(|_| bad_extra(e, "has no valid IP address"))?
        };
        out.push_str(&format!("{ip}\t{}\n", name.trim()));
    }
    if let Some(ip) = own_ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    Ok(out)
}

fn bad_extra(entry: &str, why: &str) -> NetworkError {
    NetworkError::Invalid {
        network: "extra_hosts".into(),
        message: format!("entry {entry:?} {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_and_hosts() {
        let host = "nameserver 10.0.0.53\nsearch corp.example\noptions edns0\n";
        let r =
            resolv_conf(Some(Ipv4Addr::new(172, 18, 0, 1)), &[], &[], &["ndots:2".into()], host);
        assert_eq!(r, "nameserver 172.18.0.1\nsearch corp.example\noptions ndots:2\n");
        let r = resolv_conf(Some(Ipv4Addr::new(172, 18, 0, 1)), &[], &["a.test".into()], &[], host);
        assert_eq!(r, "nameserver 172.18.0.1\nsearch a.test\noptions edns0 ndots:0\n");
        let r = resolv_conf(None, &[], &[], &[], host);
        assert!(r.starts_with("nameserver 10.0.0.53\n"));
        let h = hosts(
            "web",
            Some(Ipv4Addr::new(172, 18, 0, 2)),
            &["db:10.1.2.3".into(), "gw:host-gateway".into(), "six:::1".into()],
            Some(Ipv4Addr::new(172, 18, 0, 1)),
        )
        .unwrap();
        assert!(h.contains("10.1.2.3\tdb\n") && h.contains("172.18.0.1\tgw\n"));
        assert!(h.contains("::1\tsix\n") && h.ends_with("172.18.0.2\tweb\n"));
        assert!(hosts("x", None, &["gw:host-gateway".into()], None).is_err());
    }
}
