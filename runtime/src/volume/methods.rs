//! Async Engine methods for volumes (blocking work on tokio's blocking pool).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Volume, VolumeError, VolumeFilters, VolumePruneReport, VolumeStore};
use crate::engine::{Engine, blocking};

impl From<tokio::task::JoinError> for VolumeError {
    fn from(e: tokio::task::JoinError) -> Self {
        VolumeError::Task(e.to_string())
    }
}

impl Engine {
    /// The volume store of this engine's state root (synchronous API).
    pub fn volumes(&self) -> VolumeStore {
        VolumeStore::open(self.root())
    }

    /// `docker volume create` (None: anonymous); idempotent for an existing name.
    pub async fn volume_create(
        &self,
        name: Option<String>,
        labels: BTreeMap<String, String>,
        driver_opts: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let store = self.volumes();
        blocking(move || store.create(name.as_deref(), labels, driver_opts)).await
    }

    /// `docker volume ls`; `in_use` lists the volume names containers use.
    pub async fn volume_list(
        &self,
        filters: VolumeFilters,
        in_use: Vec<String>,
    ) -> Result<Vec<Volume>, VolumeError> {
        let store = self.volumes();
        blocking(move || store.list(&filters, &|n| in_use.iter().any(|u| u == n))).await
    }

    /// `docker volume inspect`.
    pub async fn volume_inspect(&self, name: String) -> Result<Volume, VolumeError> {
        let store = self.volumes();
        blocking(move || store.inspect(&name)).await
    }

    /// `docker volume rm`; refused when `in_use` names it.
    pub async fn volume_remove(
        &self,
        name: String,
        force: bool,
        in_use: Vec<String>,
    ) -> Result<(), VolumeError> {
        let store = self.volumes();
        blocking(move || store.remove(&name, force, &|n| in_use.iter().any(|u| u == n))).await
    }

    /// `docker volume prune` (`all`: named volumes too).
    pub async fn volume_prune(
        &self,
        all: bool,
        labels: Vec<String>,
        in_use: Vec<String>,
    ) -> Result<VolumePruneReport, VolumeError> {
        let store = self.volumes();
        blocking(move || store.prune(all, &labels, &|n| in_use.iter().any(|u| u == n))).await
    }

    /// The host directory a container mounts for volume `name`.
    pub async fn volume_mount_source(&self, name: String) -> Result<PathBuf, VolumeError> {
        let store = self.volumes();
        blocking(move || store.mount_source(&name)).await
    }

    /// Copies `path` of `image` into a new, empty volume (once).
    pub async fn volume_populate(
        &self,
        name: String,
        image: String,
        path: String,
    ) -> Result<bool, VolumeError> {
        let store = self.volumes();
        let images = self.images()?;
        blocking(move || store.populate_from_image(&name, &images, &image, &path)).await
    }
}
