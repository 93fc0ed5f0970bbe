//! `berth port SERVICE PRIVATE_PORT`: where a service's container port is published.

use std::io::Write;
use std::process::ExitCode;

use berth_runtime::Engine;

use super::project::targets;
use crate::cmd::{ExitWith, ProjectOpts};

/// `berth port`.
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Index of the container if the service has multiple replicas.
    #[arg(long, default_value_t = 1)]
    index: u32,
    /// The service.
    service: String,
    /// The container port.
    private_port: u16,
}

/// `port SERVICE PRIVATE_PORT`: the host address and port of a published port, as compose
/// prints it (`127.0.0.1:49153`).
pub(super) async fn run(
    po: &ProjectOpts,
    engine: &Engine,
    a: PortArgs,
) -> anyhow::Result<ExitCode> {
    let (_, obs) = targets(po, engine, std::slice::from_ref(&a.service)).await?;
    let Some(c) = obs.iter().find(|c| c.number == a.index) else {
        return Err(ExitWith {
            code: 1,
            message: format!("service {:?} has no container with index {}", a.service, a.index),
        }
        .into());
    };
    let found =
        c.summary.ports.iter().find(|p| {
            p.private_port == a.private_port && p.typ == a.protocol && p.public_port != 0
        });
    match found {
        Some(p) => {
            // compose prints the first binding only (the IPv4 one when `[::]` is served too).
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                crate::cmd::netflags::host_port(&p.ip, p.public_port)
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Err(ExitWith {
            code: 1,
            message: format!(
                "no port {}/{} published for container {} (service {:?})",
                a.private_port, a.protocol, c.name, a.service
            ),
        }
        .into()),
    }
}
