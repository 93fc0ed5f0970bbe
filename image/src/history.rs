//! `docker image history`: the config's history entries, newest first, each non-empty one
//! paired with its layer's size.

use serde::{Deserialize, Serialize};

use super::ImageError;
use super::image_store::ImageStore;

/// One row of `docker image history` (the Engine API's `ImageHistoryResponseItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// The image id for the newest row, `<missing>` for the others (as docker shows layers
    /// that are not images of their own).
    pub id: String,
    /// Creation time, seconds since the epoch (0: unknown).
    pub created: i64,
    /// The instruction that made it.
    pub created_by: String,
    /// The image's tags, on the newest row.
    pub tags: Vec<String>,
    /// Bytes the step added (0 for an empty layer).
    pub size: u64,
    /// The step's comment.
    pub comment: String,
}

impl ImageStore {
    /// `docker image history IMAGE`, newest step first.
    pub fn history(&self, image: &str) -> Result<Vec<HistoryItem>, ImageError> {
        let (id, config, chains) = self.image_parts(image)?;
        let v: serde_json::Value = serde_json::from_slice(&config).map_err(|e| {
            ImageError::BadConfig { id: crate::short_id(&id), reason: e.to_string() }
        })?;
        let mut sizes = Vec::new();
        for c in &chains {
            sizes.push(self.layer_record(c)?.map(|r| r.size).unwrap_or(0));
        }
        let history = v.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
        let mut rows = Vec::new();
        let mut layer = 0;
        if history.is_empty() {
            // No history: one row per layer, as docker shows imported images.
            for s in &sizes {
                rows.push(HistoryItem {
                    id: "<missing>".into(),
                    created: 0,
                    created_by: String::new(),
                    tags: Vec::new(),
                    size: *s,
                    comment: String::new(),
                });
            }
        }
        for h in &history {
            let empty = h.get("empty_layer").and_then(|e| e.as_bool()).unwrap_or(false);
            let size = if empty {
                0
            } else {
                layer += 1;
                sizes.get(layer - 1).copied().unwrap_or(0)
            };
            let text = |k: &str| h.get(k).and_then(|s| s.as_str()).unwrap_or_default().to_string();
            let created = chrono::DateTime::parse_from_rfc3339(&text("created"))
                .map(|t| t.timestamp())
                .unwrap_or(0);
            rows.push(HistoryItem {
                id: "<missing>".into(),
                created,
                created_by: text("created_by"),
                tags: Vec::new(),
                size,
                comment: text("comment"),
            });
        }
        rows.reverse();
        if let Some(first) = rows.first_mut() {
            first.id = id.clone();
            first.tags = self.inspect(&id)?.repo_tags;
        }
        Ok(rows)
    }
}
