//! `berth logs`: the output of the project's containers with `service-N  | ` prefixes, once or
//! followed (`-f`).

use std::process::ExitCode;

use berth_planner::observe::Observed;
use berth_runtime::Engine;
use berth_runtime::container::LogsOptions;

use super::log_stream::{self, EndOn, LogStyle, stream_logs};
use super::project::{targets, use_color};
use crate::cmd::time_args::parse_time_arg;
use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// `berth logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Index of the container if the service has multiple replicas.
    #[arg(long)]
    index: Option<u32>,
    /// Produce monochrome output.
    #[arg(long)]
    no_color: bool,
    /// Number of lines to show from the end of the logs for each container.
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Don't print prefix in logs.
    #[arg(long)]
    no_log_prefix: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes).
    #[arg(long)]
    until: Option<String>,
    /// Services whose logs to show.
    services: Vec<String>,
}

/// Runs `berth logs`.
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: LogsArgs,
) -> anyhow::Result<ExitCode> {
    let (p, mut obs) = targets(po, engine, &a.services).await?;
    if let Some(n) = a.index {
        obs.retain(|c| c.number == n);
    }
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        t => Some(t.parse::<usize>().map_err(|_| ExitWith {
            code: EXIT_USAGE,
            message: format!("invalid --tail value {t:?}: use a number or all"),
        })?),
    };
    let opts = LogsOptions {
        follow: a.follow,
        stdout: true,
        stderr: true,
        tail,
        since: a.since.as_deref().map(parse_time_arg).transpose()?,
        until: a.until.as_deref().map(parse_time_arg).transpose()?,
        timestamps: a.timestamps,
    };
    let style = LogStyle {
        prefix: !a.no_log_prefix,
        timestamps: a.timestamps,
        color: !a.no_color && use_color(&po.ansi),
    };
    if a.follow {
        // New, recreated and restarted containers of the selected services are followed too.
        let select = |c: &Observed| {
            (a.services.is_empty() || a.services.contains(&c.service))
                && a.index.is_none_or(|n| c.number == n)
        };
        log_stream::follow(engine, &p.name, &obs, &select, opts, style, EndOn::Idle).await;
    } else {
        stream_logs(engine, &obs, opts, style, false).await;
    }
    Ok(ExitCode::SUCCESS)
}
