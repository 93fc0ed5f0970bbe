//! `builder prune`: the build cache goes (intermediate images no container uses, with the
//! layers only they held, and the cache records); `all` also empties RUN cache mounts.

use berth_image::PruneReport;
use berth_runtime::Engine;

use crate::error::BuildError;

/// Removes the build cache of `engine`'s state root.
pub async fn prune(engine: &Engine, all: bool) -> Result<PruneReport, BuildError> {
    let used = engine.container_images_in_use().await;
    let store = engine.images()?;
    let s2 = store.clone();
    let report = tokio::task::spawn_blocking(move || {
        s2.prune_build_cache(&|id| used.iter().any(|u| u == id))
    })
    .await
    .map_err(|e| BuildError::Invalid(e.to_string()))??;
    let dir = engine.root().path().join("builder");
    // Records whose image is gone can never hit again.
    if let Ok(rd) = std::fs::read_dir(dir.join("cache")) {
        for e in rd.flatten() {
            let id = std::fs::read_to_string(e.path()).unwrap_or_default();
            if !store.has_image(id.trim()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if all {
        let mounts = dir.join("cache-mounts");
        if mounts.exists() {
            std::fs::remove_dir_all(&mounts)
                .map_err(|e| BuildError::Read { path: mounts.clone(), source: e })?;
        }
    }
    Ok(report)
}
