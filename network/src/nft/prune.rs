//! Removing what deleted or damaged state roots left in the shared `ip berth` / `ip6 berth`
//! tables (`berth system prune`): rules tagged for a network no state root knows, `subnets`
//! elements no known network has, and a table once nothing of any network is left in it.
//!
//! The tables are shared by every state root on the machine, so nothing is removed by table:
//! only rules whose tag the caller rejects, and elements it rejects. Rules without a
//! `berth net:` tag (the table's own shared rules) stay while any network is left.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{FAMILY, FAMILY6, TABLE, apply, list_berth_tables};
use crate::error::Result;
use crate::ipam::Ipv4Net;

/// What [`prune_orphans`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PrunedRules {
    /// Per orphaned network (the id prefix of its tag): how many rules went, both families.
    pub rules: BTreeMap<String, usize>,
    /// Elements removed from `ip berth`'s `subnets` set (`10.89.0.0/24`).
    pub elements: Vec<String>,
    /// Tables dropped because no network's rule or element was left (`ip berth`, `ip6 berth`).
    pub tables: Vec<String>,
}

impl PrunedRules {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.elements.is_empty() && self.tables.is_empty()
    }
}

/// The network id prefix in a rule comment `berth net:<id12>[ port:...]`.
pub fn tag_id(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix("berth net:")?;
    let id = rest.split(' ').next().unwrap_or("");
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// One network's footprint in the tables: the bridges its rules name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaggedNetwork {
    /// Interface names its rules match on (`iifname`/`oifname`).
    pub bridges: BTreeSet<String>,
}

/// Removes every rule tagged for a network `keep(id12, its rules' bridges)` rejects and every
/// `subnets` element `keep_subnet` rejects, then each berth table left without any network's
/// rule or element. One listing and one batch; when the batch fails because the tables changed
/// meanwhile, it is planned again once from a fresh listing. The caller holds the machine lock.
pub fn prune_orphans(
    keep: &dyn Fn(&str, &TaggedNetwork) -> bool,
    keep_subnet: &dyn Fn(&Ipv4Net) -> bool,
) -> Result<PrunedRules> {
    let mut attempt = 0;
    loop {
        let (cmds, pruned) = plan(&list_berth_tables(), keep, keep_subnet);
        if cmds.is_empty() {
            return Ok(pruned);
        }
        match apply(cmds, "remove orphaned rules") {
            Ok(()) => return Ok(pruned),
            Err(_) if attempt == 0 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The bridges a rule's expressions match on.
fn rule_bridges(rule: &Value, out: &mut BTreeSet<String>) {
    for e in rule.get("expr").and_then(Value::as_array).into_iter().flatten() {
        let Some(m) = e.get("match") else { continue };
        let key = m.get("left").and_then(|l| l.get("meta")).and_then(|x| x.get("key"));
        if matches!(key.and_then(Value::as_str), Some("iifname" | "oifname"))
            && let Some(name) = m.get("right").and_then(Value::as_str)
        {
            out.insert(name.to_string());
        }
    }
}

/// `10.89.0.0/24` from a set element in nft's JSON (`{"prefix": {"addr", "len"}}`).
fn element_net(e: &Value) -> Option<Ipv4Net> {
    let p = e.get("prefix")?;
    let addr = p.get("addr")?.as_str()?.parse().ok()?;
    let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
    Ipv4Net::new(addr, len)
}

/// The deletions for the listed objects `objs` (pure: tested without nft).
fn plan(
    objs: &[Value],
    keep: &dyn Fn(&str, &TaggedNetwork) -> bool,
    keep_subnet: &dyn Fn(&Ipv4Net) -> bool,
) -> (Vec<Value>, PrunedRules) {
    let mut pruned = PrunedRules::default();
    let rules: Vec<&Value> = objs.iter().filter_map(|o| o.get("rule")).collect();
    let mut nets: BTreeMap<String, TaggedNetwork> = BTreeMap::new();
    for r in &rules {
        if let Some(id) = r.get("comment").and_then(Value::as_str).and_then(tag_id) {
            rule_bridges(r, &mut nets.entry(id.to_string()).or_default().bridges);
        }
    }
    let doomed: BTreeSet<&String> =
        nets.iter().filter(|(id, n)| !keep(id, n)).map(|(id, _)| id).collect();
    let mut cmds = Vec::new();
    // Per family: whether any network's rule or element stays.
    let mut left: BTreeMap<&str, bool> = BTreeMap::new();
    for r in &rules {
        let family = r.get("family").and_then(Value::as_str).unwrap_or("");
        let Some(id) = r.get("comment").and_then(Value::as_str).and_then(tag_id) else {
            continue;
        };
        if doomed.contains(&id.to_string()) {
            *pruned.rules.entry(id.to_string()).or_default() += 1;
            cmds.push(json!({"delete": {"rule": {"family": family, "table": TABLE,
                "chain": r.get("chain").cloned().unwrap_or(Value::Null),
                "handle": r.get("handle").cloned().unwrap_or(Value::Null)}}}));
        } else {
            left.insert(if family == FAMILY6 { FAMILY6 } else { FAMILY }, true);
        }
    }
    for s in objs.iter().filter_map(|o| o.get("set")) {
        if s.get("family").and_then(Value::as_str) != Some(FAMILY) {
            continue;
        }
        let set = s.get("name").cloned().unwrap_or(Value::Null);
        for e in s.get("elem").and_then(Value::as_array).into_iter().flatten() {
            match element_net(e) {
                Some(n) if !keep_subnet(&n) => {
                    pruned.elements.push(n.to_string());
                    cmds.push(json!({"delete": {"element": {"family": FAMILY, "table": TABLE,
                        "name": set, "elem": [e]}}}));
                }
                // Kept, or a shape berth never writes: counts as something left.
                _ => {
                    left.insert(FAMILY, true);
                }
            }
        }
    }
    let tables: Vec<&str> = objs
        .iter()
        .filter_map(|o| o.get("table"))
        .filter_map(|t| t.get("family").and_then(Value::as_str))
        .collect();
    for family in [FAMILY, FAMILY6] {
        if tables.contains(&family) && !left.get(family).copied().unwrap_or(false) {
            // Dropping the table takes its rules and set with it.
            cmds.retain(|c| {
                let inner =
                    c.get("delete").and_then(|d| d.get("rule").or_else(|| d.get("element")));
                inner.and_then(|x| x.get("family")).and_then(Value::as_str) != Some(family)
            });
            cmds.push(json!({"delete": {"table": {"family": family, "name": TABLE}}}));
            pruned.tables.push(format!("{family} {TABLE}"));
        }
    }
    (cmds, pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(family: &str, chain: &str, handle: u64, comment: Option<&str>, bridge: &str) -> Value {
        let mut r = json!({"family": family, "table": TABLE, "chain": chain, "handle": handle,
            "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": bridge}},
                     {"drop": null}]});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"rule": r})
    }

    fn tables(elems: &[(&str, u64)]) -> Vec<Value> {
        let elem: Vec<Value> =
            elems.iter().map(|(a, l)| json!({"prefix": {"addr": a, "len": l}})).collect();
        vec![
            json!({"table": {"family": "ip", "name": TABLE, "handle": 1}}),
            json!({"set": {"family": "ip", "table": TABLE, "name": "subnets", "type": "ipv4_addr",
                "handle": 2, "flags": ["interval"], "elem": elem}}),
            rule("ip", "prerouting", 3, None, "lo"),
            rule("ip", "forward", 4, Some("berth net:aaaaaaaaaaaa"), "brt-aaaaaaaaaa"),
            rule("ip", "ports", 5, Some("berth net:aaaaaaaaaaaa port:tcp:0.0.0.0:8080"), "x"),
            rule("ip", "forward", 6, Some("berth net:bbbbbbbbbbbb"), "brt-bbbbbbbbbb"),
            json!({"table": {"family": "ip6", "name": TABLE, "handle": 7}}),
            rule("ip6", "forward", 8, Some("berth net:aaaaaaaaaaaa"), "brt-aaaaaaaaaa"),
        ]
    }

    fn subnet(s: &str) -> Ipv4Net {
        s.parse().expect("subnet")
    }

    #[test]
    fn tags_parse() {
        assert_eq!(tag_id("berth net:0123456789ab"), Some("0123456789ab"));
        assert_eq!(tag_id("berth net:0123456789ab port:tcp:0.0.0.0:80"), Some("0123456789ab"));
        assert_eq!(tag_id("berth net:"), None);
        assert_eq!(tag_id("someone else"), None);
    }

    #[test]
    fn only_rejected_networks_and_elements_go() {
        let objs = tables(&[("10.89.0.0", 24), ("10.89.1.0", 24)]);
        let keep_b = |id: &str, _: &TaggedNetwork| id.starts_with('b');
        let (cmds, pruned) = plan(&objs, &keep_b, &|n| *n == subnet("10.89.1.0/24"));
        assert_eq!(pruned.rules.get("aaaaaaaaaaaa"), Some(&3));
        assert_eq!(pruned.elements, vec!["10.89.0.0/24".to_string()]);
        // ip6 berth had network a's rules only: dropped whole; ip berth keeps b.
        assert_eq!(pruned.tables, vec!["ip6 berth".to_string()]);
        let text = serde_json::to_string(&cmds).expect("json");
        assert!(text.contains(r#""handle":4"#) && text.contains(r#""handle":5"#), "{text}");
        assert!(!text.contains(r#""handle":6"#) && !text.contains(r#""handle":3"#), "{text}");
        assert!(!text.contains(r#""handle":8"#), "the table deletion covers it: {text}");
    }

    #[test]
    fn keep_sees_the_bridges_and_an_empty_result_drops_the_tables() {
        let objs = tables(&[("10.89.0.0", 24)]);
        let seen = std::cell::RefCell::new(Vec::new());
        let keep = |id: &str, n: &TaggedNetwork| {
            seen.borrow_mut().push((id.to_string(), n.bridges.clone()));
            false
        };
        let (cmds, pruned) = plan(&objs, &keep, &|_| false);
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].1.contains("brt-aaaaaaaaaa") && seen[0].1.contains("x"), "{seen:?}");
        assert_eq!(pruned.tables, vec!["ip berth".to_string(), "ip6 berth".to_string()]);
        assert_eq!(cmds.len(), 2, "only the two table deletions: {cmds:?}");
    }

    #[test]
    fn nothing_to_do_when_all_is_known() {
        let objs = tables(&[("10.89.0.0", 24)]);
        let (cmds, pruned) = plan(&objs, &|_, _| true, &|_| true);
        assert!(cmds.is_empty() && pruned.is_empty());
        let (cmds, _) = plan(&[], &|_, _| false, &|_| false);
        assert!(cmds.is_empty());
    }
}
