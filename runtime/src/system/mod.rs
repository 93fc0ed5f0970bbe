//! `berth system`: disk usage of a state root (`df`), facts about the engine and the machine
//! (`info`), and the host-wide half of `system prune`: what deleted or damaged state roots left
//! on the host (`host`). The per-root half of prune (stopped containers, unused networks,
//! images, volumes) uses each store's own prune. See docs/system.md.

pub mod df;
pub mod host;
pub mod info;

use berth_image::ImageError;
use berth_store::StoreError;

pub use df::{DiskUsage, DiskUsageRow};
pub use host::{HostPruneReport, Leftover, LeftoverKind, prune_host};
pub use info::SystemInfo;

use crate::container::ContainerError;
use crate::volume::VolumeError;

/// Errors of `system df` / `system info`; each names the record or path involved.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// Reading the image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Reading the volumes failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Listing the containers failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// Reading the state root failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Bytes used by regular files under `p`, not following symlinks and not crossing into other
/// file systems (a mount inside a volume is not the volume's).
pub fn du(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    du_on(p, &md, md.dev())
}

fn du_on(p: &std::path::Path, md: &std::fs::Metadata, dev: u64) -> u64 {
    use std::os::unix::fs::MetadataExt;
    if md.dev() != dev {
        return 0;
    }
    if md.is_dir() {
        let Ok(rd) = std::fs::read_dir(p) else { return 0 };
        rd.flatten()
            .map(|e| {
                let path = e.path();
                std::fs::symlink_metadata(&path).map_or(0, |m| du_on(&path, &m, dev))
            })
            .sum()
    } else if md.is_file() {
        md.len()
    } else {
        0
    }
}
