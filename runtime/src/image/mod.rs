//! The image store: content-addressed blobs, unpacked layers shared between images (keyed by
//! chain id, each an overlayfs-ready directory) and an index of references, all under
//! `root/images/` and changed under the root lock with atomic writes.
//!
//! Layout:
//! ```text
//! images/index.json                 {"images": {id: record}, "refs": {"docker.io/library/busybox:latest": id}}
//! images/blobs/sha256/<hex>         image configs (id = sha256 of the config) and uncompressed layer tars (by diff id)
//! images/layers/<chain hex>/diff/   the unpacked layer (overlay whiteouts, opaque xattrs)
//! images/layers/<chain hex>/layer.json
//! images/tmp/                       staging for imports and loads (same file system, so commit is a rename)
//! ```

mod archive;
mod changes;
mod copy;
mod engine;
mod mountpoints;
mod reference;
mod store;
mod types;
mod unpack;
mod usage;

pub use changes::apply_changes;
pub use mountpoints::mount_point_layer;
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference};
pub use store::{ImageStore, ListFilters, PruneReport, RemoveItem, ResolvedImage};
pub use types::{
    Healthcheck, ImageConfigInspect, ImageInspect, ImageSummary, LoadedImage, RootFsInspect,
};
pub use usage::ImageLayers;

use crate::store::StoreError;

/// Errors from the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the reference or id.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The reference cannot be parsed.
    #[error("invalid reference format \"{reference}\": {reason}")]
    InvalidReference {
        /// What the user gave.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A layer entry was refused because it would escape or corrupt the layer directory.
    #[error("refusing unsafe layer entry {path}: {reason}")]
    UnsafeEntry {
        /// The entry's path in the tar.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A layer entry could not be unpacked.
    #[error("cannot unpack layer entry {path}: {reason}")]
    Unpack {
        /// The entry's path in the tar.
        path: String,
        /// What failed.
        reason: String,
    },
    /// An image archive (docker save or OCI layout) is malformed.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// A `--change` instruction is not understood.
    #[error("invalid change \"{0}\": {1}")]
    InvalidChange(String, String),
    /// An id prefix matches more than one image.
    #[error("ambiguous image id prefix: {0}")]
    Ambiguous(String),
    /// Removal refused because a container uses the image.
    #[error(
        "conflict: unable to remove {reference} (must force): image {id} is being used by a container"
    )]
    InUse {
        /// What the user asked to remove.
        reference: String,
        /// The image's short id.
        id: String,
    },
    /// Removal by id refused because several references name the image.
    #[error(
        "conflict: unable to delete {id} (must be forced): image is referenced in multiple repositories"
    )]
    MultipleReferences {
        /// The image's short id.
        id: String,
    },
    /// State on disk could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image configuration is not valid JSON of the expected shape.
    #[error("invalid image configuration {id}: {reason}")]
    BadConfig {
        /// The image id.
        id: String,
        /// The parse error.
        reason: String,
    },
    /// The blocking task running the operation failed.
    #[error("image task failed: {0}")]
    Task(String),
}

impl ImageError {
    /// Wraps an io::Error with the operation and path it concerns.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<std::path::PathBuf>,
        e: std::io::Error,
    ) -> Self {
        ImageError::Store(StoreError::io(op, path, e))
    }
}

/// The 12-hex short form of an id (`sha256:` dropped).
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}
