//! nftables rules for NAT, isolation and published ports, in berth's own `ip berth` table,
//! driven through `nft -j -f -` (the JSON API; see docs/network.md for why).
//!
//! Layout: set `subnets` (every berth subnet), chains `guard` (filter at raw priority: no
//! loopback addresses from a bridge), `prerouting`/`output` (nat, jump to `ports` for local
//! destinations), `ports` (one DNAT rule per published port), `postrouting` (masquerade),
//! `forward` (isolation). Every per-network rule carries the comment
//! `berth net:<id12>`, port rules add ` port:<proto>:<ip>:<port>`, so they go with the network.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::error::{NetworkError, Result};
use crate::ipam::Ipv4Net;
use crate::model::PublishedPort;

pub mod prune;

/// The table's family.
pub const FAMILY: &str = "ip";
/// The family of the IPv6 table.
pub const FAMILY6: &str = "ip6";
/// The table's name.
pub const TABLE: &str = "berth";

/// The comment tag of a network's rules.
pub fn net_tag(id: &str) -> String {
    format!("berth net:{}", &id[..id.len().min(12)])
}

/// The comment tag of one published port's rule.
fn port_tag(id: &str, p: &PublishedPort) -> String {
    format!("{} port:{}:{}:{}", net_tag(id), p.protocol.as_str(), p.host_ip, p.host_port)
}

fn run_nft(args: &[&str], input: Option<&Value>, context: &str) -> Result<String> {
    let err = |message: String| NetworkError::Nft { context: context.to_string(), message };
    let mut cmd = Command::new("nft");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().map_err(|e| err(format!("cannot run nft: {e}")))?;
    if let (Some(v), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(v.to_string().as_bytes()).map_err(|e| err(format!("write to nft: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| err(format!("wait for nft: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply(cmds: Vec<Value>, context: &str) -> Result<()> {
    run_nft(&["-j", "-f", "-"], Some(&json!({ "nftables": cmds })), context).map(|_| ())
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}
fn prefix(n: &Ipv4Net) -> Value {
    json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix()}})
}
fn ct_dnat() -> Value {
    m("in", json!({"ct": {"key": "status"}}), json!("dnat"))
}
fn rule(chain: &str, expr: Vec<Value>, comment: Option<&str>) -> Value {
    let mut r = json!({"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr});
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    json!({"add": {"rule": r}})
}
fn base_chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
        "hook": hook, "prio": prio, "policy": "accept"}}})
}

/// The table's current objects (empty when the table does not exist).
fn list_table() -> Vec<Value> {
    list_family(FAMILY)
}

/// The objects of `<family> berth` (empty when that table does not exist).
fn list_family(family: &str) -> Vec<Value> {
    match run_nft(&["-j", "list", "table", family, TABLE], None, "list table") {
        Ok(out) => serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.get("nftables").and_then(Value::as_array).cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The commands that create the table with its set, chains and shared rules; none when it
/// exists. Callers send them in the same `nft` run as their own rules (one process, ~2.5 ms,
/// fewer per network created).
fn table_commands() -> Vec<Value> {
    if !list_table().is_empty() {
        return Vec::new();
    }
    let local = m("==", json!({"fib": {"result": "type", "flags": ["daddr"]}}), json!("local"));
    let jump = json!({"jump": {"target": "ports"}});
    let cmds = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"add": {"set": {"family": FAMILY, "table": TABLE, "name": "subnets",
            "type": "ipv4_addr", "flags": ["interval"]}}}),
        json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": "ports"}}}),
        base_chain("prerouting", "nat", "prerouting", -100),
        base_chain("output", "nat", "output", -100),
        base_chain("postrouting", "nat", "postrouting", 100),
        base_chain("forward", "filter", "forward", 0),
        rule("prerouting", vec![local.clone(), jump.clone()], None),
        rule("output", vec![local, jump], None),
        // Published-port traffic (and its replies) may cross networks; isolation comes after.
        rule("forward", vec![ct_dnat(), json!({"accept": null})], None),
    ];
    cmds
}

/// The priority of the `guard` chain: netfilter's raw priority, before conntrack (-200) and
/// NAT (-100), so it sees addresses as they arrived.
const GUARD_PRIO: i32 = -300;

/// Adds a network's subnet to the set and its guard / masquerade / isolation rules.
pub fn add_network(id: &str, bridge: &str, subnet: &Ipv4Net, internal: bool) -> Result<()> {
    let tag = net_tag(id);
    let t = Some(tag.as_str());
    let mut cmds = table_commands();
    // `add chain` is a no-op for an existing chain: tables made before the guard get it here.
    cmds.push(base_chain("guard", "filter", "prerouting", GUARD_PRIO));
    cmds.push(json!({"add": {"element": {"family": FAMILY, "table": TABLE,
        "name": "subnets", "elem": [prefix(subnet)]}}}));
    let iif = |op: &str| m(op, meta("iifname"), json!(bridge));
    let oif = |op: &str| m(op, meta("oifname"), json!(bridge));
    let drop = json!({"drop": null});
    let masq = json!({"masquerade": null});
    let saddr = |v: Value| m("==", payload("ip", "saddr"), v);
    // `route_localnet` (set on the bridge so 127.0.0.1 can be DNATed to a container) also
    // makes the kernel accept 127.0.0.0/8 addresses arriving on it: a container could reach
    // services bound to the host's loopback, or pose as a loopback client. Nothing legitimate
    // carries them on the wire: the replies of a DNATed 127.0.0.1 connection arrive addressed
    // to the gateway (masquerade), and NAT puts 127.0.0.1 back only after this chain.
    let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).map(|n| prefix(&n));
    if let Some(lo) = &loopback {
        for field in ["daddr", "saddr"] {
            let addr = m("==", payload("ip", field), lo.clone());
            cmds.push(rule("guard", vec![iif("=="), addr, drop.clone()], t));
        }
    }
    if internal {
        cmds.push(rule("forward", vec![iif("=="), oif("!="), drop.clone()], t));
        cmds.push(rule("forward", vec![oif("=="), iif("!="), drop], t));
    } else {
        cmds.push(rule("postrouting", vec![saddr(prefix(subnet)), oif("!="), masq.clone()], t));
        // 127.0.0.1:port DNATed to a container needs a routable source address.
        if let Some(lo) = loopback {
            cmds.push(rule("postrouting", vec![oif("=="), ct_dnat(), saddr(lo), masq.clone()], t));
        }
        // Hairpin: a container reaching a published port of its own network via the host.
        cmds.push(rule("postrouting", vec![oif("=="), ct_dnat(), saddr(prefix(subnet)), masq], t));
        cmds.push(rule(
            "forward",
            vec![iif("=="), oif("!="), m("==", payload("ip", "daddr"), json!("@subnets")), drop],
            t,
        ));
    }
    apply(cmds, &format!("add rules of network {id}"))
}

/// Adds the DNAT rule for one published port (none for an IPv6 binding: the monitor's proxy
/// serves it).
pub fn add_port(id: &str, p: &PublishedPort) -> Result<()> {
    if p.is_ipv6() {
        return Ok(());
    }
    let tag = port_tag(id, p);
    let mut expr = Vec::new();
    if !p.host_ip.is_unspecified() {
        expr.push(m("==", payload("ip", "daddr"), json!(p.host_ip.to_string())));
    }
    expr.push(m("==", payload(p.protocol.as_str(), "dport"), json!(p.host_port)));
    expr.push(json!({"dnat": {"addr": p.container_ip.to_string(), "port": p.container_port}}));
    let mut cmds = table_commands();
    cmds.push(rule("ports", expr, Some(&tag)));
    apply(cmds, &format!("publish port {}", p.host_port))
}

/// Deletes the DNAT rule of one published port (an IPv6 binding has none).
pub fn remove_port(id: &str, p: &PublishedPort) -> Result<()> {
    remove_ports(id, std::slice::from_ref(p))
}

/// Deletes the DNAT rules of `ports` with one listing and one deletion; IPv6 bindings have
/// none (the monitor's proxy serves them), and with no IPv4 binding no `nft` runs at all.
pub fn remove_ports(id: &str, ports: &[PublishedPort]) -> Result<()> {
    let tags: Vec<String> =
        ports.iter().filter(|p| !p.is_ipv6()).map(|p| port_tag(id, p)).collect();
    remove_tags(&tags, None)
}

/// Deletes every rule whose comment starts with `tag` (and the subnet element when given) in
/// `ip berth` and `ip6 berth`; when `subnet` is given (network removal), drops a table once no
/// berth rule is left in it. One `nft` run lists both tables, one more deletes (each run costs
/// a process start, 3-10 ms here).
pub fn remove_tagged(tag: &str, subnet: Option<&Ipv4Net>) -> Result<()> {
    remove_tags(&[tag.to_string()], subnet)
}

/// [`remove_tagged`] for several tags at once (a container's published ports): still one
/// listing and one deletion.
fn remove_tags(tags: &[String], subnet: Option<&Ipv4Net>) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let objs = list_berth_tables();
    let mut cmds = removals(&objs, FAMILY, tags, subnet.map(prefix), subnet.is_some());
    cmds.extend(removals(&objs, FAMILY6, tags, None, subnet.is_some()));
    if cmds.is_empty() {
        return Ok(());
    }
    apply(cmds, &format!("remove rules {}", tags.join(", ")))
}

/// The objects of every `berth` table (both families) in one `nft list ruleset`.
fn list_berth_tables() -> Vec<Value> {
    let Ok(out) = run_nft(&["-j", "list", "ruleset"], None, "list ruleset") else {
        return Vec::new();
    };
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v.get("nftables").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|o| {
            let Some((kind, x)) = o.as_object().and_then(|m| m.iter().next()) else {
                return false;
            };
            // A table names itself in `name`; everything in a table names it in `table`.
            let table = if kind == "table" { x.get("name") } else { x.get("table") };
            table.and_then(Value::as_str) == Some(TABLE)
        })
        .collect()
}

/// The commands deleting the rules tagged with one of `tags` (and `elem` from the subnets
/// set) from `<family> berth` among `objs`; the table itself when `drop_empty` and no other
/// network's rule is left in it.
fn removals(
    objs: &[Value],
    family: &str,
    tags: &[String],
    elem: Option<Value>,
    drop_empty: bool,
) -> Vec<Value> {
    let of_family = |x: &Value| x.get("family").and_then(Value::as_str) == Some(family);
    let exists = objs.iter().any(|o| o.get("table").is_some_and(of_family));
    if !exists {
        return Vec::new();
    }
    let mut cmds = Vec::new();
    let mut others = 0;
    for r in objs.iter().filter_map(|o| o.get("rule")).filter(|r| of_family(r)) {
        let comment = r.get("comment").and_then(Value::as_str).unwrap_or("");
        let tagged = |tag: &String| {
            comment.starts_with(tag.as_str())
                && (comment.len() == tag.len() || comment[tag.len()..].starts_with(' '))
        };
        if tags.iter().any(tagged) {
            cmds.push(json!({"delete": {"rule": {"family": family, "table": TABLE,
                "chain": r.get("chain").cloned().unwrap_or(Value::Null),
                "handle": r.get("handle").cloned().unwrap_or(Value::Null)}}}));
        } else if comment.starts_with("berth net:") {
            others += 1;
        }
    }
    if let Some(e) = elem {
        let present = objs
            .iter()
            .filter_map(|o| o.get("set"))
            .filter(|s| of_family(s))
            .any(|s| s.get("elem").and_then(Value::as_array).is_some_and(|x| x.contains(&e)));
        if present {
            cmds.push(json!({"delete": {"element": {"family": family, "table": TABLE,
                "name": "subnets", "elem": [e]}}}));
        }
    }
    if others == 0 && drop_empty {
        cmds = vec![json!({"delete": {"table": {"family": family, "name": TABLE}}})];
    }
    cmds
}

/// Keeps IPv6 traffic of an IPv6-enabled network on its bridge (`ip6 berth` forward chain):
/// berth has no v6 egress, and this keeps networks apart even where v6 forwarding is on.
pub fn add_network6(id: &str, bridge: &str) -> Result<()> {
    let mut cmds = Vec::new();
    if list_family(FAMILY6).is_empty() {
        cmds.push(json!({"add": {"table": {"family": FAMILY6, "name": TABLE}}}));
        cmds.push(json!({"add": {"chain": {"family": FAMILY6, "table": TABLE, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}));
    }
    let tag = net_tag(id);
    let iif = |op: &str| m(op, meta("iifname"), json!(bridge));
    let oif = |op: &str| m(op, meta("oifname"), json!(bridge));
    for expr in [
        vec![iif("=="), oif("!="), json!({"drop": null})],
        vec![oif("=="), iif("!="), json!({"drop": null})],
    ] {
        cmds.push(json!({"add": {"rule": {"family": FAMILY6, "table": TABLE, "chain": "forward",
            "expr": expr, "comment": tag}}}));
    }
    apply(cmds, &format!("add IPv6 rules of network {id}"))
}

/// What the rules tagged `tag` (a network's, see [`net_tag`]) in `ip berth` tell about their
/// network: its bridge (from an interface match) and its subnet (from the masquerade rule's
/// source match). For removing a network whose record cannot be read.
pub fn tagged_facts(tag: &str) -> (Option<String>, Option<Ipv4Net>) {
    let (mut bridge, mut subnet) = (None, None);
    let rules = list_table();
    let tagged = rules
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r.get("comment").and_then(Value::as_str) == Some(tag));
    for r in tagged {
        let exprs = r.get("expr").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for e in exprs.iter().filter_map(|e| e.get("match")) {
            let (left, right) = (e.get("left"), e.get("right"));
            let key = left.and_then(|l| l.get("meta")).and_then(|x| x.get("key"));
            if matches!(key.and_then(Value::as_str), Some("iifname" | "oifname")) {
                if let Some(b) = right.and_then(Value::as_str) {
                    bridge.get_or_insert_with(|| b.to_string());
                }
                continue;
            }
            let field = left.and_then(|l| l.get("payload")).and_then(|p| p.get("field"));
            let p = right.and_then(|r| r.get("prefix"));
            let addr = p.and_then(|p| p.get("addr")).and_then(Value::as_str);
            let len = p.and_then(|p| p.get("len")).and_then(Value::as_u64);
            if field.and_then(Value::as_str) == Some("saddr")
                && let (Some(a), Some(l)) = (addr.and_then(|a| a.parse().ok()), len)
                && let Some(n) = u8::try_from(l).ok().and_then(|l| Ipv4Net::new(a, l))
                && !n.contains(Ipv4Addr::LOCALHOST)
            {
                subnet.get_or_insert(n);
            }
        }
    }
    (bridge, subnet)
}

/// Comments of all rules currently in `ip berth` and `ip6 berth` (tests, diagnostics).
pub fn rule_comments() -> Vec<String> {
    list_family(FAMILY)
        .into_iter()
        .chain(list_family(FAMILY6))
        .collect::<Vec<_>>()
        .iter()
        .filter_map(|o| o.get("rule")?.get("comment")?.as_str().map(str::to_string))
        .collect()
}

/// True when the `ip berth` table exists.
pub fn table_exists() -> bool {
    !list_table().is_empty()
}
