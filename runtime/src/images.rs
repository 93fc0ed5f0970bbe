//! Async Engine methods for images (the store itself is the crate berth-image); each runs the
//! blocking store work on tokio's blocking pool.

use std::io::{Read, Write};
use std::path::PathBuf;

use berth_image::{
    ImageError, ImageInspect, ImageStore, ImageSummary, ListFilters, LoadedImage, PruneReport,
    RemoveItem, ResolvedImage,
};

use crate::engine::{Engine, blocking};

impl Engine {
    /// The image store of this engine's state root (synchronous API).
    pub fn images(&self) -> Result<ImageStore, ImageError> {
        ImageStore::open(self.root())
    }

    /// `docker import`: a root file system tar (plain or gzip) becomes a one-layer image.
    pub async fn image_import(
        &self,
        reader: Box<dyn Read + Send>,
        reference: Option<String>,
        changes: Vec<String>,
    ) -> Result<String, ImageError> {
        let store = self.images()?;
        blocking(move || store.import(reader, reference.as_deref(), &changes)).await
    }

    /// `docker load`: a docker save archive or OCI layout tar.
    pub async fn image_load(
        &self,
        reader: Box<dyn Read + Send>,
    ) -> Result<Vec<LoadedImage>, ImageError> {
        let store = self.images()?;
        blocking(move || store.load(reader)).await
    }

    /// `docker save` of `refs` to `writer`.
    pub async fn image_save(
        &self,
        refs: Vec<String>,
        writer: Box<dyn Write + Send>,
    ) -> Result<(), ImageError> {
        let store = self.images()?;
        blocking(move || store.save(&refs, writer)).await
    }

    /// `docker image ls`.
    pub async fn image_list(&self, filters: ListFilters) -> Result<Vec<ImageSummary>, ImageError> {
        let store = self.images()?;
        blocking(move || store.list(&filters)).await
    }

    /// `docker image inspect`.
    pub async fn image_inspect(&self, reference: String) -> Result<ImageInspect, ImageError> {
        let store = self.images()?;
        blocking(move || store.inspect(&reference)).await
    }

    /// `docker tag`.
    pub async fn image_tag(&self, src: String, target: String) -> Result<(), ImageError> {
        let store = self.images()?;
        blocking(move || store.tag(&src, &target)).await
    }

    /// `docker image rm`; `in_use` lists the image ids containers use.
    pub async fn image_remove(
        &self,
        reference: String,
        force: bool,
        in_use: Vec<String>,
    ) -> Result<Vec<RemoveItem>, ImageError> {
        let store = self.images()?;
        blocking(move || store.remove(&reference, force, &|id| in_use.iter().any(|u| u == id)))
            .await
    }

    /// `docker image prune` (`all`: every unused image, else only untagged ones).
    pub async fn image_prune(
        &self,
        all: bool,
        in_use: Vec<String>,
    ) -> Result<PruneReport, ImageError> {
        let store = self.images()?;
        blocking(move || store.prune(all, &|id| in_use.iter().any(|u| u == id))).await
    }

    /// What container create needs: id, config and overlay lower dirs (topmost first).
    pub async fn image_resolve(&self, reference: String) -> Result<ResolvedImage, ImageError> {
        let store = self.images()?;
        blocking(move || store.resolve(&reference)).await
    }

    /// Copies the merged image content under `path` into `dest`; false when the image has no
    /// such directory.
    pub async fn image_copy_path(
        &self,
        image: String,
        path: String,
        dest: PathBuf,
    ) -> Result<bool, ImageError> {
        let store = self.images()?;
        blocking(move || store.copy_path_from_image(&image, &path, &dest)).await
    }
}
