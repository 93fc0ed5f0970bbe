//! What a container is made from, from the stores of its state root: its image (berth-image)
//! and its named and anonymous volumes (`crate::volume`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_image::{ImageError, ImageStore};
use berth_store::StateRoot;

use super::api::HealthConfig;
use crate::volume::{VolumeError, VolumeStore};

/// What the engine needs from an image.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// `sha256:...`.
    pub id: String,
    /// The image's runtime config, if it has one.
    pub config: Option<oci_spec::image::Config>,
    /// The image's healthcheck (docker extension), if any.
    pub healthcheck: Option<HealthConfig>,
    /// Layer directories, topmost first.
    pub layers: Vec<PathBuf>,
}

/// Resolves an image reference in the local store.
pub fn resolve_image(root: &StateRoot, reference: &str) -> Result<ImageInfo, ImageError> {
    let store = ImageStore::open(root)?;
    let img = store.resolve(reference)?;
    let healthcheck = img.healthcheck.map(|h| HealthConfig {
        test: h.test.unwrap_or_default(),
        interval: h.interval.unwrap_or(0),
        timeout: h.timeout.unwrap_or(0),
        retries: h.retries.unwrap_or(0),
        start_period: h.start_period.unwrap_or(0),
        start_interval: h.start_interval.unwrap_or(0),
    });
    Ok(ImageInfo {
        id: img.id,
        config: img.config.config().clone(),
        healthcheck,
        layers: img.layers,
    })
}

/// Creates (if missing) the named volume; returns its mount source and whether it was just made.
pub fn volume_ensure(
    root: &StateRoot,
    name: &str,
    anonymous: bool,
) -> Result<(PathBuf, bool), VolumeError> {
    let vs = VolumeStore::open(root);
    let existed = vs.inspect(name).is_ok();
    let mut labels = BTreeMap::new();
    if anonymous {
        labels.insert("com.docker.volume.anonymous".to_string(), String::new());
    }
    vs.create(Some(name), if existed { BTreeMap::new() } else { labels }, BTreeMap::new())
        .or_else(|e| if existed { vs.inspect(name) } else { Err(e) })?;
    let src = vs.mount_source(name)?;
    Ok((src, !existed))
}

/// Copies image content at `path` into a volume never populated before (docker's copy-up).
pub fn volume_populate(
    root: &StateRoot,
    name: &str,
    image: &str,
    path: &str,
) -> Result<(), VolumeError> {
    let vs = VolumeStore::open(root);
    let images = ImageStore::open(root)?;
    vs.populate_from_image(name, &images, image, path).map(|_| ())
}

/// Removes a volume (anonymous volumes on `rm -v`).
pub fn volume_remove(root: &StateRoot, name: &str) -> Result<(), VolumeError> {
    VolumeStore::open(root).remove(name, true, &|_| false)
}
