//! `berth scale SERVICE=N...`: a detached `up` of the named services with new replica counts.

use super::up::UpArgs;

/// `berth scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Don't start linked services.
    #[arg(long)]
    no_deps: bool,
    /// SERVICE=REPLICAS pairs.
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    scale: Vec<String>,
}

impl From<ScaleArgs> for UpArgs {
    /// `scale` is a detached `up` of the named services that adds or removes replicas and
    /// leaves existing containers as they are.
    fn from(a: ScaleArgs) -> Self {
        let services = a.scale.iter().map(|s| s.split('=').next().unwrap_or(s).to_string());
        UpArgs {
            detach: true,
            no_recreate: true,
            no_deps: a.no_deps,
            services: services.collect(),
            scale: a.scale,
            ..Default::default()
        }
    }
}
