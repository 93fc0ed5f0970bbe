//! `berth network ls|create|inspect|rm|prune|connect|disconnect` over berth-network (docker's
//! output shapes); connect/disconnect go through the Engine since they touch containers.

use std::process::ExitCode;

use anyhow::Context;
use berth_network::{Filters, IpamRequest, NetworkCreate, NetworkRecord, Networks};
use indexmap::IndexMap;

use super::{EXIT_USAGE, EngineOpts, ExitWith};

/// `berth network` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Filter output (name=, id=, label=); `-f` is taken by the global `--file`.
        #[arg(long = "filter")]
        filter: Vec<String>,
        /// Do not truncate the output.
        #[arg(long)]
        no_trunc: bool,
        /// Format output: `json` prints one JSON object per line.
        #[arg(long)]
        format: Option<String>,
    },
    /// Create a network.
    Create {
        /// Driver to manage the network (only `bridge`).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        /// Enable manual container attachment.
        #[arg(long)]
        attachable: bool,
        /// Enable IPv6 (addresses inside the network; no v6 egress yet).
        #[arg(long)]
        ipv6: bool,
        /// Set metadata (key=value).
        #[arg(long)]
        label: Vec<String>,
        /// Driver options (key=value).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Subnet in CIDR format (repeat for an IPv4 and an IPv6 subnet).
        #[arg(long)]
        subnet: Vec<String>,
        /// Allocate container addresses from a sub-range (of the subnet of its family).
        #[arg(long)]
        ip_range: Vec<String>,
        /// Gateway (of the subnet of its family).
        #[arg(long)]
        gateway: Vec<String>,
        /// Network name.
        name: String,
    },
    /// Display detailed information on one or more networks.
    Inspect {
        /// Networks (name or id).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm {
        /// Do not error if a network does not exist.
        #[arg(long)]
        force: bool,
        /// Networks (name or id).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// Add a network-scoped alias for the container.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// Network (name or id).
        network: String,
        /// Container (name or id).
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Ignored (always forced).
        #[arg(long)]
        force: bool,
        /// Network (name or id).
        network: String,
        /// Container (name or id).
        container: String,
    },
    /// Remove all networks without endpoints.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(long)]
        force: bool,
        /// Filter (label=, name=).
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
}

/// Journals network event `action` for the API's `events` (as the engine's own methods do).
fn journal(root: &std::path::Path, action: &str, id: &str, name: &str) {
    let attrs = [("name", name.to_string()), ("type", "bridge".to_string())];
    berth_runtime::events::object(root, "network", action, id, &attrs);
}

/// Runs a `berth network` subcommand.
pub fn run(engine: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    let nets = Networks::open(&engine.root)
        .with_context(|| format!("opening state root {}", engine.root.display()))?;
    match cmd {
        Command::Ls { quiet, filter, no_trunc, format } => {
            let recs = nets.list(&parse_filters(&filter)?)?;
            let id = |r: &NetworkRecord| {
                if no_trunc { r.id.clone() } else { r.id.get(..12).unwrap_or(&r.id).to_string() }
            };
            if quiet {
                recs.iter().for_each(|r| println!("{}", id(r)));
            } else if format.as_deref() == Some("json") {
                for r in &recs {
                    let line = serde_json::json!({"ID": id(r), "Name": r.name, "Driver": r.driver,
                        "Scope": r.scope, "Internal": r.internal.to_string(), "IPv6": r.enable_ipv6.to_string(),
                        "CreatedAt": r.created, "Labels": labels_line(&r.labels)});
                    println!("{line}");
                }
            } else {
                let w = recs.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
                let iw = if no_trunc { 64 } else { 12 };
                println!("{:<iw$}   {:<w$}   {:<8}  SCOPE", "NETWORK ID", "NAME", "DRIVER");
                for r in &recs {
                    println!("{:<iw$}   {:<w$}   {:<8}  {}", id(r), r.name, r.driver, r.scope);
                }
            }
        }
        Command::Create {
            driver,
            internal,
            attachable,
            ipv6,
            label,
            opt,
            subnet,
            ip_range,
            gateway,
            name,
        } => {
            // Each --ip-range / --gateway belongs to the --subnet of its address family.
            let v6 = |s: &String| s.contains(':');
            let mut ipam = Vec::new();
            for fam in [false, true] {
                let pick = |list: &[String], what: &str| -> anyhow::Result<Option<String>> {
                    let mut it = list.iter().filter(|x| v6(x) == fam);
                    let first = it.next().cloned();
                    if it.next().is_some() {
                        return Err(usage(&format!("one {what} per address family")));
                    }
                    Ok(first)
                };
                let subnet = pick(&subnet, "--subnet")?;
                let (ip_range, gateway) =
                    (pick(&ip_range, "--ip-range")?, pick(&gateway, "--gateway")?);
                if subnet.is_none() && (ip_range.is_some() || gateway.is_some()) {
                    return Err(usage("--ip-range and --gateway need a --subnet of their family"));
                }
                if subnet.is_some() {
                    ipam.push(IpamRequest { subnet, ip_range, gateway });
                }
            }
            let rec = nets.create(NetworkCreate {
                name,
                driver: Some(driver),
                internal,
                attachable,
                labels: key_values(&label, "--label")?,
                options: key_values(&opt, "--opt")?,
                ipam,
                enable_ipv6: ipv6,
            })?;
            journal(&engine.root, "create", &rec.id, &rec.name);
            println!("{}", rec.id);
        }
        Command::Inspect { networks } => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for n in &networks {
                match nets.inspect(n) {
                    Ok(r) => out.push(r),
                    Err(berth_network::NetworkError::NotFound(_)) => missing.push(n.clone()),
                    Err(e) => return Err(e.into()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            if !missing.is_empty() {
                return Err(ExitWith {
                    code: 1,
                    message: format!("Error: No such network: {}", missing.join(", ")),
                }
                .into());
            }
        }
        Command::Rm { force, networks } => {
            let mut failed = false;
            for n in &networks {
                let id = nets.inspect(n).map(|r| r.id).unwrap_or_default();
                match nets.remove(n) {
                    Ok(()) => {
                        journal(&engine.root, "destroy", &id, n);
                        println!("{n}");
                    }
                    Err(berth_network::NetworkError::NotFound(_)) if force => {}
                    Err(e) => {
                        eprintln!("Error response: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Err(ExitWith { code: 1, message: String::new() }.into());
            }
        }
        Command::Connect { alias, ip, network, container } => {
            let req = berth_runtime::container::EndpointRequest {
                aliases: alias,
                ipam_config: ip.map(|ip| berth_runtime::container::EndpointIpamConfig {
                    ipv4_address: ip,
                    ..Default::default()
                }),
                ..Default::default()
            };
            let engine = super::engine_access::engine(engine)?;
            super::engine_access::runtime()?
                .block_on(engine.network_connect(&network, &container, req))
                .map_err(|e| ExitWith { code: 1, message: format!("Error response: {e}") })?;
        }
        Command::Disconnect { force: _, network, container } => {
            let engine = super::engine_access::engine(engine)?;
            super::engine_access::runtime()?
                .block_on(engine.network_disconnect(&network, &container))
                .map_err(|e| ExitWith { code: 1, message: format!("Error response: {e}") })?;
        }
        Command::Prune { force: _, filter } => {
            // Without a TTY there is nobody to ask; berth never prompts (as `-f`).
            let removed = nets.prune(&parse_filters(&filter)?)?;
            for n in &removed {
                journal(&engine.root, "destroy", n, n);
            }
            if !removed.is_empty() {
                println!("Deleted Networks:");
                removed.iter().for_each(|n| println!("{n}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn usage(msg: &str) -> anyhow::Error {
    ExitWith { code: EXIT_USAGE, message: msg.to_string() }.into()
}

fn key_values(items: &[String], flag: &str) -> anyhow::Result<IndexMap<String, String>> {
    let mut m = IndexMap::new();
    for it in items {
        let (k, v) = it.split_once('=').unwrap_or((it.as_str(), ""));
        if k.is_empty() {
            return Err(usage(&format!("{flag} {it:?}: expected key=value")));
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

fn parse_filters(items: &[String]) -> anyhow::Result<Filters> {
    let mut f = Filters::default();
    for it in items {
        match it.split_once('=') {
            Some(("name", v)) => f.name.push(v.to_string()),
            Some(("id", v)) => f.id.push(v.to_string()),
            Some(("label", v)) => f.label.push(v.to_string()),
            _ => return Err(usage(&format!("invalid filter {it:?} (name=, id= or label=)"))),
        }
    }
    Ok(f)
}

fn labels_line(labels: &IndexMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}
