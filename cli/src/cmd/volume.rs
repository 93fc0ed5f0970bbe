//! `berth volume`: ls, create, inspect, rm, prune (docker's output shapes).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use berth_runtime::volume::{VolumeFilters, VolumeStore};
use berth_store::StateRoot;

use super::EngineOpts;

/// `berth volume` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only display volume names.
        #[arg(short, long)]
        quiet: bool,
        /// Filter output (`name=`, `label=`, `dangling=`).
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Output format: `table` (default) or `json`.
        #[arg(long)]
        format: Option<String>,
    },
    /// Create a volume.
    Create {
        /// Volume name (default: a random 64-hex name).
        name: Option<String>,
        /// Volume driver (only `local`).
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume (`KEY=VALUE`).
        #[arg(long = "label")]
        label: Vec<String>,
        /// Set driver specific options (`type=none,o=bind,device=/path`).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
    },
    /// Display detailed information on one or more volumes.
    Inspect {
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Format output: `json` (default) or a Go template (`{{.Id}}`, `{{json .Config}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm {
        /// Do not error when a volume does not exist.
        #[arg(short = 'f', long)]
        force: bool,
        /// Volume names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused local volumes.
    Prune {
        /// Remove all unused volumes, not just anonymous ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Filter (`label=`).
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
}

/// What the containers of this state root use (so `rm`/`prune` refuse to delete it).
fn volumes_in_use(engine: &EngineOpts) -> anyhow::Result<Vec<String>> {
    let engine = berth_runtime::Engine::open(berth_runtime::EngineOptions::new(&engine.root))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(engine.container_volumes_in_use()))
}

fn key_values(raw: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|r| match r.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("invalid {what} \"{r}\": use KEY=VALUE"),
        })
        .collect()
}

/// Runs a `berth volume` subcommand.
pub fn run(engine: &EngineOpts, cmd: Command) -> anyhow::Result<ExitCode> {
    let root = StateRoot::open(&engine.root)?;
    let store = VolumeStore::open(&root);
    let used = volumes_in_use(engine)?;
    let in_use = |n: &str| used.iter().any(|u| u == n);
    let mut out = io::stdout().lock();
    match cmd {
        Command::Ls { quiet, filter, format } => {
            let mut f = VolumeFilters::default();
            for r in &filter {
                let (k, v) = r
                    .split_once('=')
                    .with_context(|| format!("bad filter \"{r}\": use KEY=VALUE"))?;
                match k {
                    "name" => f.name.push(v.to_string()),
                    "label" => f.label.push(v.to_string()),
                    "dangling" => f.dangling = Some(matches!(v, "true" | "1")),
                    "driver" if v == "local" => {}
                    _ => anyhow::bail!(
                        "invalid filter '{r}' (supported: name, label, dangling, driver)"
                    ),
                }
            }
            let vols = store.list(&f, &in_use)?;
            match format.as_deref() {
                _ if quiet => {
                    for v in vols {
                        writeln!(out, "{}", v.name)?;
                    }
                }
                Some("json") => {
                    for v in vols {
                        let labels = v
                            .labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",");
                        let row = serde_json::json!({
                            "Driver": v.driver,
                            "Labels": labels,
                            "Links": "N/A",
                            "Mountpoint": v.mountpoint,
                            "Name": v.name,
                            "Scope": v.scope,
                            "Size": "N/A",
                        });
                        writeln!(out, "{row}")?;
                    }
                }
                None | Some("table") => {
                    writeln!(out, "DRIVER    VOLUME NAME")?;
                    for v in vols {
                        writeln!(out, "{:<10}{}", v.driver, v.name)?;
                    }
                }
                Some(other) => anyhow::bail!("unsupported format \"{other}\": use table or json"),
            }
        }
        Command::Create { name, driver, label, opt } => {
            if driver != "local" {
                anyhow::bail!("volume driver {driver} is not supported (only local)");
            }
            let v = store.create(
                name.as_deref(),
                key_values(&label, "label")?,
                key_values(&opt, "option")?,
            )?;
            writeln!(out, "{}", v.name)?;
        }
        Command::Inspect { names, format } => {
            let code =
                super::inspect_each(&names, format.as_deref(), &mut out, |k| store.inspect(k))?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
        }
        Command::Rm { force, names } => {
            let mut failed = false;
            for n in &names {
                match store.remove(n, force, &in_use) {
                    Ok(()) => writeln!(out, "{n}")?,
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Prune { all, force, filter } => {
            let mut labels = Vec::new();
            for r in &filter {
                match r.split_once('=') {
                    Some(("label", v)) => labels.push(v.to_string()),
                    _ => anyhow::bail!("invalid filter '{r}' (supported: label)"),
                }
            }
            if !force {
                let what = if all { "all local volumes" } else { "all anonymous local volumes" };
                eprint!(
                    "WARNING! This will remove {what} not used by at least one container.\nAre you sure you want to continue? [y/N] "
                );
                let _ = io::stderr().flush();
                let mut line = String::new();
                let _ = io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let report = store.prune(all, &labels, &in_use)?;
            if !report.volumes_deleted.is_empty() {
                writeln!(out, "Deleted Volumes:")?;
                for n in &report.volumes_deleted {
                    writeln!(out, "{n}")?;
                }
                writeln!(out)?;
            }
            writeln!(
                out,
                "Total reclaimed space: {}",
                super::human::human_size(report.space_reclaimed)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
