//! `berth create`: a detached `up` that creates the containers without starting them.

use super::up::UpArgs;

/// `berth create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Scale SERVICE to NUM instances.
    #[arg(long, value_name = "SERVICE=NUM")]
    scale: Vec<String>,
    /// Remove containers for services not defined in the compose file.
    #[arg(long)]
    remove_orphans: bool,
    /// Recreate containers even if their configuration hasn't changed.
    #[arg(long, conflicts_with = "no_recreate")]
    force_recreate: bool,
    /// If containers already exist, don't recreate them.
    #[arg(long)]
    no_recreate: bool,
    /// Services to create (and their dependencies).
    services: Vec<String>,
}

impl From<CreateArgs> for UpArgs {
    fn from(c: CreateArgs) -> Self {
        UpArgs {
            detach: true,
            scale: c.scale,
            remove_orphans: c.remove_orphans,
            force_recreate: c.force_recreate,
            no_recreate: c.no_recreate,
            no_start: true,
            services: c.services,
            ..Default::default()
        }
    }
}
