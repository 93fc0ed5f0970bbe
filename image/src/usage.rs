//! What each image's layers weigh, for `berth system df`: layers are shared between images,
//! so the disk used is counted per layer, not per image.

use berth_store::read_json;

use super::ImageError;
use super::image_store::{ImageStore, LayerRecord};

/// One image's layers with their unpacked sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLayers {
    /// The image id (`sha256:<hex>`).
    pub id: String,
    /// (chain id, unpacked size in bytes) of each layer, bottom first; 0 for a layer whose
    /// record cannot be read.
    pub layers: Vec<(String, u64)>,
}

impl ImageStore {
    /// Every image with its layers' sizes.
    pub fn layer_usage(&self) -> Result<Vec<ImageLayers>, ImageError> {
        let idx = self.read_index()?;
        let mut out = Vec::new();
        for (id, rec) in &idx.images {
            let layers = rec
                .layers
                .iter()
                .map(|chain| {
                    let size = self
                        .layer_dir(chain)
                        .ok()
                        .and_then(|d| {
                            read_json::<LayerRecord>(&d.join("layer.json")).ok().flatten()
                        })
                        .map_or(0, |l| l.size);
                    (chain.clone(), size)
                })
                .collect();
            out.push(ImageLayers { id: id.clone(), layers });
        }
        Ok(out)
    }
}
