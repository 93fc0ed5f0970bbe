//! `berth run SERVICE [COMMAND...]`: compose's one-off container. Dependencies come up first
//! (unless `--no-deps`); attached runs stream the output and exit with the container's code,
//! `-d` prints the container name.

use std::io::IsTerminal;
use std::process::ExitCode;

use berth_planner::oneoff::{self, OneOffOptions};
use berth_planner::ops::RunOptions;
use berth_planner::{PlanError, Progress};
use berth_runtime::Engine;

use super::project::{load, plan_err, warn_one};
use crate::cmd::attach::{RawTerminal, attach_and_wait, open_stdin_fifo};
use crate::cmd::engine_access::engine_err;
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run container in background and print its name.
    #[arg(short, long)]
    detach: bool,
    /// Build the image before starting the container.
    #[arg(long)]
    build: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Set environment variables (KEY=value, or KEY to copy it from this environment).
    #[arg(short, long)]
    env: Vec<String>,
    /// Run as specified username or uid.
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Override the entrypoint of the image.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Don't start linked services.
    #[arg(long)]
    no_deps: bool,
    /// Publish a container's port(s) to the host.
    #[arg(short, long)]
    publish: Vec<String>,
    /// Run command with the service's ports enabled and mapped to the host.
    #[arg(short = 'P', long)]
    service_ports: bool,
    /// Bind mount a volume.
    #[arg(short, long)]
    volume: Vec<String>,
    /// Disable pseudo-TTY allocation (default: auto-detected).
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short, long)]
    interactive: bool,
    /// Assign a name to the container.
    #[arg(long)]
    name: Option<String>,
    /// Use the service's network aliases in the network(s) the container connects to.
    #[arg(long)]
    use_aliases: bool,
    /// Add or override a label.
    #[arg(short, long)]
    label: Vec<String>,
    /// Pull without printing progress information (berth does not pull).
    #[arg(long)]
    quiet_pull: bool,
    /// The service.
    service: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn usage(message: String) -> anyhow::Error {
    ExitWith { code: EXIT_USAGE, message }.into()
}

/// Runs `berth run`.
pub async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: RunArgs,
    run: &RunOptions,
    progress: &Progress,
) -> anyhow::Result<ExitCode> {
    let p = load(po, false, std::slice::from_ref(&a.service))?;
    if !p.services.contains_key(&a.service) {
        return Err(plan_err(PlanError::NoSuchService(a.service.clone())));
    }
    let entrypoint = match &a.entrypoint {
        None => None,
        Some(e) => Some(
            compose_spec::convert::shell_words(e)
                .map_err(|m| usage(format!("invalid --entrypoint {e:?}: {m}")))?,
        ),
    };
    let mut labels = Vec::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            return Err(usage(format!("invalid --label {l:?}: use KEY=VALUE")));
        }
        labels.push((k.to_string(), v.to_string()));
    }
    let env = a
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let stdin_tty = std::io::stdin().is_terminal();
    // compose: stdin is attached by default when running attached; a terminal when ours is one.
    let interactive = a.interactive || !a.detach;
    let opts = OneOffOptions {
        service: a.service.clone(),
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        entrypoint,
        env,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        labels,
        volumes: a.volume.clone(),
        service_ports: a.service_ports,
        name: a.name.clone(),
        tty: if a.no_tty {
            Some(false)
        } else if stdin_tty && !a.detach {
            Some(true)
        } else {
            None
        },
        interactive,
        auto_remove: a.rm,
        use_aliases: a.use_aliases,
    };
    let _ = a.quiet_pull;
    if !run.dry_run {
        let names = std::slice::from_ref(&a.service);
        let selected =
            berth_planner::ops::selected_services(&p, names, !a.no_deps).map_err(plan_err)?;
        crate::cmd::build::build_for_up(engine, &p, &selected, a.build, false, &po.progress)
            .await?;
    }
    let mut one = oneoff::prepare(engine, &p, &opts).await.map_err(plan_err)?;
    for spec in &a.publish {
        let parsed = crate::cmd::netflags::parse_publish(spec)
            .map_err(|e| usage(format!("invalid --publish {spec:?}: {e:#}")))?;
        for (key, b) in parsed {
            one.config.host_config.port_bindings.entry(key).or_default().push(b);
        }
    }
    if !a.no_deps {
        oneoff::up_dependencies(engine, &p, &a.service, run, progress, &warn_one)
            .await
            .map_err(plan_err)?;
    }
    // compose shows the dependencies' progress only, not the one-off's own creation.
    let quiet = berth_planner::no_progress();
    let own = if run.dry_run { progress } else { &quiet };
    oneoff::create(engine, &p, &a.service, &one, a.no_deps, run, own).await.map_err(plan_err)?;
    crate::progress::finish();
    if run.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let name = one.name.as_str();
    let id = engine.container_inspect(name).await.map_err(engine_err)?.id;
    // Opened before the start so the container's first read waits for our input.
    let stdin_fifo = if interactive && !a.detach { open_stdin_fifo(engine, &id) } else { None };
    // Attached, the output is followed from the start on (woken by the monitor).
    let started = if a.detach {
        engine.container_start(name).await.map(|()| None)
    } else {
        engine.container_start_attached(name).await.map(Some)
    };
    let output = match started {
        Ok(output) => output,
        Err(e) => {
            let code = e.start_exit_code();
            if a.rm {
                let _ = engine.container_remove(name, true, true).await;
            }
            return Err(ExitWith { code, message: format!("service {:?}: {e}", a.service) }.into());
        }
    };
    let Some(output) = output else {
        println!("{name}");
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(mut fifo) = stdin_fifo {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut fifo);
            // Dropping the last writer gives the container end-of-file.
        });
    }
    let tty = one.config.config.tty;
    let _raw = if tty && stdin_tty { RawTerminal::enter() } else { None };
    // With --rm, this also removes it (the one-off is created with auto_remove).
    let code = attach_and_wait(engine, name, output).await;
    drop(_raw);
    let code = code?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
