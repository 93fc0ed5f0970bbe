//! The image store: content-addressed blobs, unpacked layers shared between images (keyed by
//! chain id, each an overlayfs-ready directory) and an index of references, all under
//! `root/images/` and changed under the root lock with atomic writes.
//!
//! Layout:
//! ```text
//! images/index.json                 {"images": {id: record}, "refs": {"docker.io/library/busybox:latest": id}}
//! images/blobs/sha256/<hex>         image configs (id = sha256 of the config); stores made before
//!                                   tar-split also hold uncompressed layer tars (by diff id)
//! images/layers/<chain hex>/diff/   the unpacked layer (overlay whiteouts, opaque xattrs)
//! images/layers/<chain hex>/tar-split  the layer's tar stream without file contents (for save)
//! images/layers/<chain hex>/layer.json
//! images/tmp/                       staging for imports and loads (same file system, so commit is a rename)
//! ```

mod archive;
mod build;
mod changes;
mod difftar;
mod history;
mod image_store;
mod locks;
mod mountpoints;
mod path_copy;
mod reference;
pub mod registry;
mod tarsplit;
mod types;
mod unpack;
mod usage;

use berth_store::StoreError;

pub use build::{ImageState, NewLayer, chain_id};
pub use changes::apply_changes;
pub use difftar::write_upper_tar;
pub use history::HistoryItem;
pub use image_store::{
    BlobSource, ImageStore, ListFilters, PruneReport, RemoveItem, ResolvedImage,
};
pub use mountpoints::mount_point_layer;
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference};
pub use types::{
    Healthcheck, ImageConfigInspect, ImageInspect, ImageSummary, LoadedImage, RootFsInspect,
};
pub use unpack::unpack_context;
pub use usage::ImageLayers;

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
    /// `images/index.json` exists but cannot be read as an index.
    #[error(
        "the image index {} is damaged ({reason}): berth will not guess which images exist; restore the file, or remove it and import or load the images again",
        path.display()
    )]
    DamagedIndex {
        /// The index file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer (or an image archive) unpacks to more bytes than the limit allows.
    #[error(
        "refusing a layer that unpacks to more than {} (the limit; set {MAX_LAYER_SIZE_ENV} to change it)",
        human_size(*limit)
    )]
    LayerTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// `BERTH_MAX_LAYER_SIZE` is not a size.
    #[error(
        "{MAX_LAYER_SIZE_ENV}={0:?} is not a size (bytes, or a number with k, m, g or t; 0: no limit)"
    )]
    BadSizeLimit(String),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// The blocking task running the operation failed.
    #[error("image task failed: {0}")]
    Task(String),
}

// Here rather than beside the Engine's async image methods: the orphan rule keeps a `From`
// between two foreign types out of berth-runtime.
impl From<tokio::task::JoinError> for ImageError {
    fn from(e: tokio::task::JoinError) -> Self {
        ImageError::Task(e.to_string())
    }
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

/// The environment variable holding the largest size a layer may unpack to.
pub const MAX_LAYER_SIZE_ENV: &str = "BERTH_MAX_LAYER_SIZE";

/// The default of [`MAX_LAYER_SIZE_ENV`]: 64 GiB, more than any real layer, and a stop for a
/// small gzip that would unpack to fill the disk.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// The largest uncompressed size of one layer (and of one image archive) `import` and `load`
/// accept: `BERTH_MAX_LAYER_SIZE` (bytes, or with a k/m/g/t suffix, powers of 1024; 0 means
/// no limit), else [`DEFAULT_MAX_LAYER_SIZE`].
pub fn max_layer_size() -> Result<Option<u64>, ImageError> {
    match std::env::var(MAX_LAYER_SIZE_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(Some(DEFAULT_MAX_LAYER_SIZE)),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(ImageError::BadSizeLimit(v.to_string_lossy().into_owned()))
        }
        Ok(v) => match parse_size(&v) {
            Some(0) => Ok(None),
            Some(n) => Ok(Some(n)),
            None => Err(ImageError::BadSizeLimit(v)),
        },
    }
}

/// `10m`, `64G`, `512kb`, `1GiB`, `4096`: bytes, suffixes in powers of 1024.
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let (num, shift) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 10),
        'm' => (&t[..t.len() - 1], 20),
        'g' => (&t[..t.len() - 1], 30),
        't' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// `64 GiB`, `10 MiB`, `1536 bytes`: whole units of 1024 where they divide evenly.
fn human_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// The 12-hex short form of an id (`sha256:` dropped).
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size(" 64g "), Some(64 << 30));
        assert_eq!(parse_size("0"), Some(0));
        for bad in ["", "m", "-1", "1.5g", "10x", "99999999999t"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(human_size(64 << 30), "64 GiB");
        assert_eq!(human_size(10 << 20), "10 MiB");
        assert_eq!(human_size(1536), "1536 bytes");
    }
}
