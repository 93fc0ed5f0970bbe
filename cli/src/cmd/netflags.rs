//! Networking flags of `berth run` / `container create` (`--publish`, `--network-alias`,
//! `--ip`, `--dns*`, `--add-host`, `--mac-address`) and docker's `-p` value syntax.

use berth_runtime::container::ContainerCreateConfig;
use berth_runtime::container::{EndpointIpamConfig, EndpointRequest, PortBinding};

/// Networking flags of `run` and `container create`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NetFlags {
    /// Publish a container's port(s) to the host (`[ip:][hostPort:]containerPort[/proto]`, ranges allowed; IPv6 as `[::1]:8080:80`).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports (`80`, `53/udp`).
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Add a network-scoped alias for the container.
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the network.
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Container MAC address.
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Custom DNS servers.
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (`host:ip`, ip may be `host-gateway`).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add a link to another container (`NAME[:ALIAS]`): ALIAS resolves to NAME for this
    /// container only.
    #[arg(long = "link")]
    pub link: Vec<String>,
}

impl NetFlags {
    /// Fills the create request's network settings for `--network` values `networks` (the
    /// first is the network mode; the others become further endpoints, in order).
    pub fn apply(
        &self,
        networks: &[String],
        cfg: &mut ContainerCreateConfig,
    ) -> anyhow::Result<()> {
        // Without --network, publishing a port or linking implies the default bridge (docker's
        // default mode); otherwise berth's default stays `none`.
        let bridge_implied = !self.publish.is_empty() || self.publish_all || !self.link.is_empty();
        let implied = if bridge_implied { "bridge" } else { "none" };
        let mode = networks.first().map(String::as_str).unwrap_or(implied);
        cfg.host_config.network_mode = mode.to_string();
        let bridge_like =
            !matches!(mode, "none" | "host" | "default" | "") && !mode.starts_with("container:");
        if networks.len() > 1 && !bridge_like {
            anyhow::bail!("--network {mode} cannot be combined with other networks");
        }
        for (i, n) in networks.iter().enumerate().skip(1) {
            let req = EndpointRequest {
                // Earlier networks rank higher, so they take the default route.
                gw_priority: -(i as i32),
                ..Default::default()
            };
            cfg.networking_config.endpoints_config.insert(n.clone(), req);
        }
        cfg.host_config.publish_all_ports = self.publish_all;
        for e in &self.expose {
            for (key, _) in parse_publish(e)? {
                cfg.config
                    .exposed_ports
                    .get_or_insert_with(Default::default)
                    .insert(key, Default::default());
            }
        }
        let h = &mut cfg.host_config;
        for p in &self.publish {
            for (key, b) in parse_publish(p)? {
                h.port_bindings.entry(key).or_default().push(b);
            }
        }
        h.dns = self.dns.clone();
        h.dns_search = self.dns_search.clone();
        h.dns_options = self.dns_option.clone();
        h.extra_hosts = self.add_host.clone();
        h.links = self.link.clone();
        let wants_endpoint =
            !self.network_alias.is_empty() || self.ip.is_some() || self.mac_address.is_some();
        if wants_endpoint {
            if !bridge_like {
                anyhow::bail!(
                    "--network-alias, --ip and --mac-address need a bridge network (--network NAME)"
                );
            }
            let req = EndpointRequest {
                aliases: self.network_alias.clone(),
                ipam_config: self
                    .ip
                    .clone()
                    .map(|ip| EndpointIpamConfig { ipv4_address: ip, ..Default::default() }),
                mac_address: self.mac_address.clone().unwrap_or_default(),
                gw_priority: 0,
            };
            cfg.networking_config.endpoints_config.insert(mode.to_string(), req);
        }
        Ok(())
    }
}

fn range(s: &str, what: &str, spec: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.parse::<u16>().map_err(|_| anyhow::anyhow!("invalid {what} {x:?} in --publish {spec}"))
    };
    let (a, b) = (p(a)?, p(b)?);
    if b < a {
        anyhow::bail!("invalid {what} range {s:?} in --publish {spec}");
    }
    Ok((a, b))
}

/// Splits `[ip:][hostPort:]containerPort` (no protocol) into its three parts; the address may
/// be IPv6, in brackets (`[::1]:8080:80`) or bare as docker also takes it (`::1:8080:80`).
fn split_publish<'a>(ports: &'a str, spec: &str) -> anyhow::Result<(&'a str, &'a str, &'a str)> {
    let shape =
        || anyhow::anyhow!("invalid --publish {spec}: expected [ip:][hostPort:]containerPort");
    if let Some(rest) = ports.strip_prefix('[') {
        let Some((ip, rest)) = rest.split_once(']') else {
            anyhow::bail!("invalid --publish {spec}: the IPv6 host address has no closing ']'");
        };
        let (host, ctr) =
            rest.strip_prefix(':').and_then(|r| r.split_once(':')).ok_or_else(shape)?;
        if ctr.contains(':') {
            return Err(shape());
        }
        check_host_ip(ip, spec, true)?;
        return Ok((ip, host, ctr));
    }
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [i, h, c] => (*i, *h, *c),
        [.., h, c] => (&ports[..ports.len() - h.len() - c.len() - 2], *h, *c),
        [] => return Err(shape()),
    };
    if ip.contains(']') {
        anyhow::bail!("invalid --publish {spec}: the IPv6 host address has no opening '['");
    }
    check_host_ip(ip, spec, false)?;
    Ok((ip, host, ctr))
}

fn check_host_ip(ip: &str, spec: &str, bracketed: bool) -> anyhow::Result<()> {
    match ip.parse::<std::net::IpAddr>() {
        _ if ip.is_empty() && !bracketed => Ok(()),
        Ok(std::net::IpAddr::V4(_)) if bracketed => {
            anyhow::bail!("invalid --publish {spec}: only IPv6 addresses go in brackets")
        }
        Ok(_) => Ok(()),
        Err(_) => anyhow::bail!("invalid host address {ip:?} in --publish {spec}"),
    }
}

/// Parses docker's `-p` syntax into `("80/tcp", binding)` pairs: `80`, `8080:80`,
/// `127.0.0.1:8080:80`, `127.0.0.1::80`, `[::1]:8080:80`, `8000-8001:80-81`, `53/udp`.
pub fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, PortBinding)>> {
    let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    if proto != "tcp" && proto != "udp" {
        anyhow::bail!("invalid protocol {proto:?} in --publish {spec}");
    }
    let (ip, host, ctr) = split_publish(ports, spec)?;
    let (c0, c1) = range(ctr, "container port", spec)?;
    let host_range = if host.is_empty() { None } else { Some(range(host, "host port", spec)?) };
    if let Some((h0, h1)) = host_range
        && h1 - h0 != c1 - c0
        && h0 != h1
        && c0 != c1
    {
        anyhow::bail!("invalid --publish {spec}: host and container port ranges differ in size");
    }
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let host_port = match host_range {
            None => String::new(),
            Some((h0, h1)) if h0 == h1 => h0.to_string(),
            // One container port, a host range: the first free port of the range.
            Some((h0, h1)) if c0 == c1 => format!("{h0}-{h1}"),
            Some((h0, _)) => (h0 + i as u16).to_string(),
        };
        out.push((format!("{c}/{proto}"), PortBinding { host_ip: ip.to_string(), host_port }));
    }
    Ok(out)
}

/// `host:port` as docker joins them: an IPv6 address in brackets (`[::]:8080`).
pub fn host_port(ip: &str, port: impl std::fmt::Display) -> String {
    let ip = if ip.is_empty() { "0.0.0.0" } else { ip };
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// docker's PORTS column (`docker ps`, compose `ps`): sorted by container port, then host
/// address (IPv4 before IPv6), host port and protocol; a binding whose host port equals the
/// container port joins a run of such ports on the same address (`0.0.0.0:80-81->80-81/tcp`);
/// the others follow one by one (`0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`).
pub fn ports_column(ports: &[berth_runtime::container::PortSummary]) -> String {
    let ip_of = |s: &str| s.parse::<std::net::IpAddr>().ok();
    let mut sorted: Vec<_> = ports.iter().collect();
    sorted.sort_by(|a, b| {
        (a.private_port, ip_of(&a.ip), a.public_port, &a.typ).cmp(&(
            b.private_port,
            ip_of(&b.ip),
            b.public_port,
            &b.typ,
        ))
    });
    // Runs by (address, protocol), in the order they start; a broken run is closed at once.
    let mut runs: Vec<(&str, &str, u16, u16)> = Vec::new();
    let mut out = Vec::new();
    let mut mappings = Vec::new();
    let form = |(ip, typ, first, last): (&str, &str, u16, u16)| {
        let span = if first == last { first.to_string() } else { format!("{first}-{last}") };
        if ip.is_empty() {
            format!("{span}/{typ}")
        } else {
            format!("{}->{span}/{typ}", host_port(ip, &span))
        }
    };
    for p in sorted {
        if !p.ip.is_empty() && p.public_port != p.private_port {
            let to = format!("{}/{}", p.private_port, p.typ);
            mappings.push(format!("{}->{to}", host_port(&p.ip, p.public_port)));
            continue;
        }
        let cur = p.private_port;
        match runs.iter_mut().find(|r| r.0 == p.ip && r.1 == p.typ) {
            None => runs.push((&p.ip, &p.typ, cur, cur)),
            Some(r) if r.3.checked_add(1) == Some(cur) => r.3 = cur,
            Some(r) => {
                out.push(form(*r));
                *r = (&p.ip, &p.typ, cur, cur);
            }
        }
    }
    out.extend(runs.into_iter().map(form));
    out.extend(mappings);
    out.join(", ")
}

/// `container port` output lines from inspect's `NetworkSettings.Ports`: with `private`
/// (`80` or `80/udp`) that port's `host:port` bindings, else every `80/tcp -> host:port`;
/// in docker's natural order. Err: the sentence for a port not published.
pub fn port_lines(
    ports: &std::collections::BTreeMap<String, Option<Vec<PortBinding>>>,
    private: Option<&str>,
    container: &str,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = match private {
        Some(want) => {
            let (port, proto) = want.split_once('/').unwrap_or((want, "tcp"));
            if port.parse::<u16>().is_err() {
                return Err(format!("invalid port ({port})"));
            }
            let binds =
                ports.get(&format!("{port}/{proto}")).cloned().flatten().unwrap_or_default();
            if binds.is_empty() {
                return Err(format!("No public port '{want}' published for {container}"));
            }
            binds.iter().map(|b| host_port(&b.host_ip, &b.host_port)).collect()
        }
        None => ports
            .iter()
            .flat_map(|(k, v)| {
                v.iter()
                    .flatten()
                    .map(move |b| format!("{k} -> {}", host_port(&b.host_ip, &b.host_port)))
            })
            .collect(),
    };
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

/// Compares with digit runs as numbers (`80/tcp` before `443/tcp`), like docker's sortorder.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for ((da, x), (db, y)) in ra.iter().zip(rb.iter()) {
        let o = if *da && *db {
            let (xt, yt) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            xt.len().cmp(&yt.len()).then(xt.cmp(yt))
        } else {
            x.cmp(y)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_syntax() {
        let one = |s: &str| parse_publish(s).unwrap();
        assert_eq!(one("80")[0].0, "80/tcp");
        assert_eq!(one("80")[0].1.host_port, "");
        let p = one("127.0.0.1:8080:80/udp");
        assert_eq!(p[0].0, "80/udp");
        assert_eq!((p[0].1.host_ip.as_str(), p[0].1.host_port.as_str()), ("127.0.0.1", "8080"));
        let p = one("8000-8001:80-81");
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].0.as_str(), p[1].1.host_port.as_str()), ("81/tcp", "8001"));
        assert_eq!(one("127.0.0.1::80")[0].1.host_port, "");
        assert_eq!(one("9000-9005:80")[0].1.host_port, "9000-9005");
        assert!(parse_publish("x:80").is_err());
        assert!(parse_publish("80/sctp").is_err());
        assert!(parse_publish("1:2:3:4").is_err());
        // IPv6 host addresses: bracketed, random port, bare (as docker takes it).
        let p = one("[::1]:8080:80");
        assert_eq!((p[0].1.host_ip.as_str(), p[0].1.host_port.as_str()), ("::1", "8080"));
        assert_eq!(one("[::]:8080:80/udp")[0].1.host_ip, "::");
        let p = one("[::1]::80");
        assert_eq!((p[0].1.host_ip.as_str(), p[0].1.host_port.as_str()), ("::1", ""));
        assert_eq!(one("::1:8080:80")[0].1.host_ip, "::1");
        for bad in
            ["[::1:8080:80", "[::1", "::1]:8080:80", "[::1]:80", "[127.0.0.1]:80:80", "[x]:1:2"]
        {
            let e = parse_publish(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn ports_column_and_port_lines() {
        use berth_runtime::container::PortSummary;
        let s = |ip: &str| PortSummary {
            ip: ip.into(),
            private_port: 80,
            public_port: 8080,
            typ: "tcp".into(),
        };
        assert_eq!(
            ports_column(&[s("::1"), s("::"), s("0.0.0.0")]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, [::1]:8080->80/tcp"
        );
        // docker's runs: equal host and container ports on one address join up.
        let same = |ip: &str, port: u16, typ: &str| PortSummary {
            ip: ip.into(),
            private_port: port,
            public_port: port,
            typ: typ.into(),
        };
        let mixed = [
            s("0.0.0.0"),
            same("::", 81, "tcp"),
            same("0.0.0.0", 81, "tcp"),
            same("0.0.0.0", 80, "tcp"),
            same("::", 80, "tcp"),
            same("0.0.0.0", 53, "udp"),
        ];
        assert_eq!(
            ports_column(&mixed),
            "0.0.0.0:53->53/udp, 0.0.0.0:80-81->80-81/tcp, [::]:80-81->80-81/tcp, 0.0.0.0:8080->80/tcp"
        );
        let b = |ip: &str, port: &str| PortBinding { host_ip: ip.into(), host_port: port.into() };
        let mut ports = std::collections::BTreeMap::new();
        ports.insert("80/tcp".to_string(), Some(vec![b("::", "8080"), b("0.0.0.0", "8080")]));
        ports.insert("443/tcp".to_string(), Some(vec![b("127.0.0.1", "8443")]));
        ports.insert("53/udp".to_string(), None);
        assert_eq!(port_lines(&ports, Some("80"), "c").unwrap(), ["0.0.0.0:8080", "[::]:8080"]);
        assert_eq!(
            port_lines(&ports, None, "c").unwrap(),
            ["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080", "443/tcp -> 127.0.0.1:8443"]
        );
        assert_eq!(
            port_lines(&ports, Some("53/udp"), "c").unwrap_err(),
            "No public port '53/udp' published for c"
        );
        assert!(port_lines(&ports, Some("x"), "c").is_err());
    }
}
