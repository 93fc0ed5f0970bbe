//! `ports`: long and short syntax, port ranges.

use super::Normalizer;
use crate::convert::*;
use crate::model::*;
use crate::tree::{Node, Value};

impl Normalizer<'_> {
    pub(super) fn ports(&mut self, n: &Node, path: &str) -> R<Vec<Port>> {
        let seq = n
            .as_seq()
            .ok_or_else(|| err(n, path, format!("must be a list, not a {}", n.type_name())))?;
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = idx(path, i);
            match &item.value {
                Value::Int(_) | Value::String(_) | Value::Float(_) => {
                    let spec = scalar(item, &ip)?;
                    let ports = parse_port_spec(&spec).ok_or_else(|| {
                        err(item, &ip, format!("\"{spec}\" is not a valid port mapping"))
                    })?;
                    out.extend(ports);
                }
                _ => {
                    let (m, ext) = object(
                        item,
                        &ip,
                        &[
                            "name",
                            "mode",
                            "host_ip",
                            "target",
                            "published",
                            "protocol",
                            "app_protocol",
                        ],
                    )?;
                    let target = match get(m, "target") {
                        Some(t) => {
                            let v = int(t, &join(&ip, "target"))?;
                            if !(1..=65535).contains(&v) {
                                return Err(err(
                                    t,
                                    &join(&ip, "target"),
                                    format!("{v} is not a valid port"),
                                ));
                            }
                            v as u32
                        }
                        None => return Err(err(item, &ip, "\"target\" is required")),
                    };
                    let published = match get(m, "published") {
                        Some(pn) => {
                            let v = scalar(pn, &join(&ip, "published"))?;
                            if parse_range(&v).is_none() {
                                return Err(err(
                                    pn,
                                    &join(&ip, "published"),
                                    format!("\"{v}\" is not a valid port or port range"),
                                ));
                            }
                            Some(v)
                        }
                        None => None,
                    };
                    let protocol = opt_string(m, "protocol", &ip)?.unwrap_or_else(|| "tcp".into());
                    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                        let pn = get(m, "protocol").unwrap_or(item);
                        return Err(err(
                            pn,
                            &join(&ip, "protocol"),
                            format!("\"{protocol}\" is not a valid protocol (tcp, udp or sctp)"),
                        ));
                    }
                    let mode = opt_string(m, "mode", &ip)?.unwrap_or_else(|| "ingress".into());
                    if !matches!(mode.as_str(), "ingress" | "host") {
                        let mn = get(m, "mode").unwrap_or(item);
                        return Err(err(
                            mn,
                            &join(&ip, "mode"),
                            format!("\"{mode}\" is not a valid port mode (ingress or host)"),
                        ));
                    }
                    out.push(Port {
                        name: opt_string(m, "name", &ip)?,
                        mode,
                        host_ip: match (opt_string(m, "host_ip", &ip)?, get(m, "host_ip")) {
                            (Some(h), Some(hn)) if h.parse::<std::net::IpAddr>().is_err() => {
                                return Err(err(
                                    hn,
                                    &join(&ip, "host_ip"),
                                    format!("invalid ip address: {h}"),
                                ));
                            }
                            (h, _) => h,
                        },
                        target,
                        published,
                        protocol,
                        app_protocol: opt_string(m, "app_protocol", &ip)?,
                        extensions: ext,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// `start[-end]` port range (0-65535).
fn parse_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u32 = a.parse().ok()?;
    let b: u32 = b.parse().ok()?;
    (a <= b && b <= 65535).then_some((a, b))
}

/// Short port syntax `[ip:][host[-range]:]container[-range][/proto]`, as docker parses it.
pub fn parse_port_spec(spec: &str) -> Option<Vec<Port>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let parts: Vec<&str> = body.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    let (ip, host) = match n {
        1 => ("".to_string(), ""),
        2 => ("".to_string(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return None;
    }
    if container.is_empty() {
        return None;
    }
    let (cs, ce) = parse_range(container)?;
    if cs == 0 {
        return None;
    }
    let host_range = if host.is_empty() { None } else { Some(parse_range(host)?) };
    if let Some((hs, he)) = host_range
        && he - hs != ce - cs
        && ce != cs
    {
        return None;
    }
    let mut ports: Vec<Port> = Vec::new();
    for i in 0..=(ce - cs) {
        let published = match host_range {
            None => None,
            Some((hs, he)) if he - hs == ce - cs => Some((hs + i).to_string()),
            Some(_) => Some(host.to_string()),
        };
        ports.push(Port {
            mode: "ingress".into(),
            host_ip: (!ip.is_empty()).then(|| ip.clone()),
            target: cs + i,
            published,
            protocol: proto.clone(),
            ..Port::default()
        });
    }
    // docker sorts the expanded ports by their "port/proto" text.
    ports.sort_by_key(|p| p.target.to_string());
    Some(ports)
}
