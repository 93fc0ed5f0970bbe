//! `berth exec SERVICE COMMAND...`: run a command in a running service container.

use std::process::ExitCode;

use berth_runtime::Engine;
use berth_runtime::container::ExecConfig;

use super::project::targets;
use crate::cmd::{ExitWith, ProjectOpts};

/// `berth exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short, long)]
    env: Vec<String>,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// Disable pseudo-TTY allocation.
    #[arg(short = 'T', long = "no-TTY")]
    no_tty: bool,
    /// Give extended privileges to the process.
    #[arg(long)]
    privileged: bool,
    /// Run the command as this user.
    #[arg(short, long)]
    user: Option<String>,
    /// Path to workdir directory for this command.
    #[arg(short, long)]
    workdir: Option<String>,
    /// The service.
    service: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Runs `berth exec`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: ExecArgs,
) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, std::slice::from_ref(&a.service)).await?;
    let Some(c) = obs.iter().find(|c| c.number == a.index && c.is_running()) else {
        return Err(ExitWith {
            code: 1,
            message: format!(
                "service {:?} is not running (no running container with index {}): start it with `berth up -d {}`",
                a.service, a.index, a.service
            ),
        }
        .into());
    };
    let cfg = ExecConfig {
        cmd: a.command,
        env: a.env,
        user: a.user,
        working_dir: a.workdir,
        // A terminal unless -T, and only when stdin is one (compose's default).
        tty: !a.no_tty && std::io::IsTerminal::is_terminal(&std::io::stdin()),
        // compose's exec keeps stdin open (`-i` defaults to true).
        interactive: true,
        detach: a.detach,
        privileged: a.privileged,
    };
    match engine.container_exec(&c.id, cfg).await {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        Err(e) => Err(ExitWith {
            code: if e.start_exit_code() == 127 { 127 } else { 126 },
            message: format!("service {:?}: {e}", a.service),
        }
        .into()),
    }
}
