//! What the builder and `container commit` need from the store: add one layer on top of a
//! chain, add an image whose layers are all stored, and read an image back as config + chain.

use std::io::Read;
use std::path::PathBuf;

use berth_store::read_json;
use serde_json::Value;

use super::image_store::PruneReport;
use super::image_store::RemoveItem;
use super::image_store::{ImageRecord, ImageStore, LayerRecord, chain_ids, sha256_hex};
use super::reference::Reference;
use super::{ImageError, short_id};

/// A layer now in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    /// sha256 of its uncompressed tar.
    pub diff_id: String,
    /// Its chain id (on top of the parent it was added to).
    pub chain_id: String,
    /// Unpacked size in bytes.
    pub size: u64,
}

/// An image as the builder sees it: id, raw config and layer chain ids (bottom first).
#[derive(Debug, Clone)]
pub struct ImageState {
    /// `sha256:<hex>`.
    pub id: String,
    /// The whole image configuration JSON.
    pub config: Value,
    /// Chain ids of its layers, bottom first.
    pub chains: Vec<String>,
}

/// The chain id of `diff_id` on top of `parent` (None: a bottom layer).
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => format!("sha256:{}", sha256_hex(format!("{p} {diff_id}").as_bytes())),
    }
}

impl ImageStore {
    /// Unpacks a layer tar on top of the chain `parent` and keeps it in the store (shared with
    /// any image that already has the same chain).
    pub fn add_layer(
        &self,
        parent: Option<&str>,
        reader: impl Read,
    ) -> Result<NewLayer, ImageError> {
        let staged = self.stage_layer(reader)?;
        let chain = chain_id(parent, &staged.diff_id);
        let (diff_id, size) = (staged.diff_id.clone(), staged.size);
        // Shared with the store's other writers (pulls): a layer already there wins.
        self.commit_layer(staged, &chain, None)?;
        let rec = self.layer_record(&chain)?;
        Ok(NewLayer {
            diff_id: rec.as_ref().map(|r| r.diff_id.clone()).unwrap_or(diff_id),
            chain_id: chain,
            size: rec.map(|r| r.size).unwrap_or(size),
        })
    }

    /// Adds an image whose layers (the chain ids of its config's diff ids) are all in the store
    /// and points `refs` at it. `build_cache`: a builder's intermediate image, which `image ls`
    /// leaves out while it has no reference (docker's intermediate images); adding the same
    /// image again without the flag makes it an ordinary image.
    pub fn add_image(
        &self,
        config_bytes: &[u8],
        refs: &[String],
        build_cache: bool,
    ) -> Result<String, ImageError> {
        let id = format!("sha256:{}", sha256_hex(config_bytes));
        let config: Value = serde_json::from_slice(config_bytes)
            .map_err(|e| ImageError::BadConfig { id: short_id(&id), reason: e.to_string() })?;
        if !config.is_object() {
            return Err(ImageError::BadConfig {
                id: short_id(&id),
                reason: "not a JSON object".into(),
            });
        }
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let refs: Vec<Reference> =
            refs.iter().map(|r| Reference::parse(r)).collect::<Result<_, _>>()?;
        let chains = chain_ids(&diff_ids);
        let _lock = self.state_root().lock()?;
        let mut size = 0;
        for c in &chains {
            let rec: LayerRecord = read_json(&self.layer_dir(c)?.join("layer.json"))?
                .ok_or_else(|| ImageError::InvalidArchive(format!("layer {c} is missing")))?;
            size += rec.size;
        }
        self.record_image(&id, config_bytes, &chains, size, build_cache, &refs)?;
        Ok(id)
    }

    /// An image's id, whole config and layer chain ids.
    pub fn image_state(&self, s: &str) -> Result<ImageState, ImageError> {
        let idx = self.read_index()?;
        let id = Self::find_in(&idx, s)?;
        let rec = idx.images.get(&id).ok_or_else(|| ImageError::NoSuchImage(s.to_string()))?;
        let config: Value = serde_json::from_slice(&self.config_bytes(&id)?)
            .map_err(|e| ImageError::BadConfig { id: short_id(&id), reason: e.to_string() })?;
        if !config.is_object() {
            return Err(ImageError::BadConfig {
                id: short_id(&id),
                reason: "not a JSON object".into(),
            });
        }
        Ok(ImageState { id, config, chains: rec.layers.clone() })
    }

    /// Deletes the builder's untagged intermediate images no container uses (`builder prune`),
    /// with every layer no other image needs.
    pub fn prune_build_cache(
        &self,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<PruneReport, ImageError> {
        let _lock = self.state_root().lock()?;
        let mut idx = self.read_index()?;
        let tagged: std::collections::BTreeSet<String> = idx.refs.values().cloned().collect();
        let victims: Vec<String> = idx
            .images
            .iter()
            .filter(|(id, r)| r.build_cache && !tagged.contains(*id) && !in_use(id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut report = PruneReport::default();
        let mut items: Vec<RemoveItem> = Vec::new();
        for id in victims {
            report.space_reclaimed += self.delete_image(&mut idx, &id, &mut items)?;
        }
        report.images_deleted = items;
        self.write_index(&idx)?;
        Ok(report)
    }

    /// The builder's untagged intermediate images: how many, and the bytes of the layers only
    /// they hold (`system df`'s Build Cache line).
    pub fn build_cache_usage(&self) -> Result<(usize, u64), ImageError> {
        let idx = self.read_index()?;
        let tagged: std::collections::BTreeSet<&String> = idx.refs.values().collect();
        let is_cache = |id: &String, r: &ImageRecord| r.build_cache && !tagged.contains(id);
        let kept: std::collections::BTreeSet<&String> = idx
            .images
            .iter()
            .filter(|(id, r)| !is_cache(id, r))
            .flat_map(|(_, r)| &r.layers)
            .collect();
        let mut only: std::collections::BTreeSet<&String> = std::collections::BTreeSet::new();
        let mut count = 0;
        for (id, r) in &idx.images {
            if is_cache(id, r) {
                count += 1;
                only.extend(r.layers.iter().filter(|c| !kept.contains(c)));
            }
        }
        let mut size = 0;
        for c in only {
            let rec: Option<LayerRecord> = read_json(&self.layer_dir(c)?.join("layer.json"))?;
            size += rec.map(|r| r.size).unwrap_or(0);
        }
        Ok((count, size))
    }

    /// Whether image `id` (a full id) is in the store.
    pub fn has_image(&self, id: &str) -> bool {
        self.read_index().is_ok_and(|idx| idx.images.contains_key(id))
    }

    /// The unpacked sizes of layers by chain id (0 for one whose record is gone).
    pub fn layer_sizes(&self, chains: &[String]) -> Result<Vec<u64>, ImageError> {
        let mut out = Vec::with_capacity(chains.len());
        for c in chains {
            let rec: Option<LayerRecord> = read_json(&self.layer_dir(c)?.join("layer.json"))?;
            out.push(rec.map(|r| r.size).unwrap_or(0));
        }
        Ok(out)
    }

    /// The unpacked directories of layers by chain id, topmost first (overlay `lowerdir` order).
    pub fn layer_dirs(&self, chains: &[String]) -> Result<Vec<PathBuf>, ImageError> {
        chains.iter().rev().map(|c| Ok(self.layer_dir(c)?.join("diff"))).collect()
    }
}
