//! `import` (a root file system tar), `load` (docker save archives, legacy and OCI-style, and
//! OCI image layouts) and `save` (docker save format plus an OCI layout, loadable by both).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use berth_store::read_json;
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest,
    ImageManifestBuilder, MediaType,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::changes::apply_changes;
use super::image_store::{
    ImageStore, LayerRecord, LayerSource, StagedLayer, chain_ids, digest_hex, sha256_hex,
};
use super::reference::Reference;
use super::tarsplit::{self, Rebuilt};
use super::types::LoadedImage;
use super::unpack::{self, TeeReader};
use super::{ImageError, short_id};

/// docker's annotation carrying the full reference in an OCI index.
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a reference (often just a tag).
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of docker save's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// GOARCH name of the machine we run on.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn archive_err(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

/// A reader that fails once more than `left` bytes were read (None: no bound).
struct Bounded<R> {
    inner: R,
    left: Option<u64>,
    hit: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = self.left.as_mut() {
            match left.checked_sub(n as u64) {
                Some(l) => *left = l,
                None => {
                    self.hit = true;
                    return Err(std::io::Error::other("the archive exceeds the size limit"));
                }
            }
        }
        Ok(n)
    }
}

/// Removes a staging directory on drop.
struct StagingGuard(PathBuf);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl ImageStore {
    /// `docker import`: one layer from a root file system tar (plain or gzip), a config with the
    /// `changes` applied, tagged `reference` when given. Returns the image id.
    pub fn import(
        &self,
        reader: impl Read,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<String, ImageError> {
        let refs = reference.map(Reference::parse_tag).transpose()?;
        // Validate changes before the (slow) unpack.
        let mut cfg = Map::new();
        apply_changes(&mut cfg, changes)?;
        let staged = self.stage_layer(reader)?;
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let config = json!({
            "architecture": host_arch(),
            "comment": "Imported from -",
            "config": Value::Object(cfg),
            "created": created,
            "history": [{"created": created, "comment": "Imported from -"}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [staged.diff_id]},
        });
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| ImageError::BadConfig { id: String::new(), reason: e.to_string() })?;
        let refs: Vec<Reference> = refs.into_iter().collect();
        let id = self.commit_image(&bytes, vec![LayerSource::Staged(staged)], &refs)?;
        let name = refs.first().map(|r| r.to_string()).unwrap_or_default();
        self.journal("import", &id, &name);
        Ok(id)
    }

    /// `docker load`: reads a docker save archive or an OCI image layout tar and adds its images.
    pub fn load(&self, reader: impl Read) -> Result<Vec<LoadedImage>, ImageError> {
        let limit = self.layer_limit()?;
        let dir = self.staging_dir("load")?;
        let guard = StagingGuard(dir);
        // The same safe unpacker as layers: archive members can't escape the staging dir. The
        // layer limit bounds the whole archive too: a small gzip must not fill the disk here.
        let plain = unpack::maybe_gunzip(reader)
            .map_err(|e| archive_err(format!("cannot read archive: {e}")))?;
        let mut bounded = Bounded { inner: plain, left: limit, hit: false };
        let unpacked = unpack::unpack_tar(&mut bounded, &guard.0);
        if let (true, Some(limit)) = (bounded.hit, limit) {
            return Err(ImageError::LayerTooLarge { limit });
        }
        unpacked?;
        let root = guard.0.clone();
        let loaded = if root.join("manifest.json").is_file() {
            self.load_docker(&root)?
        } else if root.join("index.json").is_file() {
            self.load_oci(&root)?
        } else {
            return Err(archive_err(
                "neither manifest.json (docker save) nor index.json (OCI layout) found",
            ));
        };
        // docker's `load` events: one per reference loaded (the id when untagged).
        for l in &loaded {
            match l.refs.as_slice() {
                [] => self.journal("load", &l.id, ""),
                refs => refs.iter().for_each(|r| self.journal("load", r, r)),
            }
        }
        Ok(loaded)
    }

    fn load_docker(&self, root: &Path) -> Result<Vec<LoadedImage>, ImageError> {
        let manifests: Vec<SaveManifest> =
            serde_json::from_slice(&read_member(root, "manifest.json")?)
                .map_err(|e| archive_err(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for m in manifests {
            let config = read_member(root, &m.config)?;
            let refs = m
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse_tag(t))
                .collect::<Result<Vec<_>, _>>()?;
            let layers =
                m.layers.iter().map(|l| member_path(root, l)).collect::<Result<Vec<_>, _>>()?;
            let id = self.add_loaded(&config, &layers, &[], &refs)?;
            out.push(LoadedImage { id, refs: refs.iter().map(|r| r.to_string()).collect() });
        }
        Ok(out)
    }

    fn load_oci(&self, root: &Path) -> Result<Vec<LoadedImage>, ImageError> {
        let index: ImageIndex = serde_json::from_slice(&read_member(root, "index.json")?)
            .map_err(|e| archive_err(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in index.manifests() {
            let Some(manifest) = self.pick_manifest(root, desc)? else { continue };
            let config_desc = manifest.config();
            let config = read_blob(root, config_desc)?;
            let mut layers = Vec::new();
            let mut digests = Vec::new();
            for l in manifest.layers() {
                let hex = digest_hex(l.digest().as_ref())?.to_string();
                layers.push(member_path(root, &format!("blobs/sha256/{hex}"))?);
                digests.push(l.digest().to_string());
            }
            let annotations = desc.annotations().clone().unwrap_or_default();
            let name = annotations
                .get(ANNOTATION_CONTAINERD_NAME)
                .or_else(|| annotations.get(ANNOTATION_REF_NAME))
                .filter(|n| n.contains(':') || n.contains('/'));
            let refs = match name {
                Some(n) => vec![Reference::parse_tag(n)?],
                None => Vec::new(),
            };
            let id = self.add_loaded(&config, &layers, &digests, &refs)?;
            out.push(LoadedImage { id, refs: refs.iter().map(|r| r.to_string()).collect() });
        }
        Ok(out)
    }

    /// Follows a descriptor to an image manifest, choosing this machine's platform in an index.
    fn pick_manifest(
        &self,
        root: &Path,
        desc: &Descriptor,
    ) -> Result<Option<ImageManifest>, ImageError> {
        let bytes = read_blob(root, desc)?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| archive_err(format!("blob {}: {e}", desc.digest())))?;
        let is_index = *desc.media_type() == MediaType::ImageIndex
            || v.get("manifests").is_some()
            || desc.media_type().to_string().contains("manifest.list");
        if !is_index {
            let m: ImageManifest = serde_json::from_value(v)
                .map_err(|e| archive_err(format!("manifest {}: {e}", desc.digest())))?;
            return Ok(Some(m));
        }
        let idx: ImageIndex = serde_json::from_value(v)
            .map_err(|e| archive_err(format!("index {}: {e}", desc.digest())))?;
        for d in idx.manifests() {
            let fits = d.platform().as_ref().is_none_or(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
            });
            if fits && let Some(m) = self.pick_manifest(root, d)? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Stages the layers the store lacks (checking blob digests when given) and commits.
    fn add_loaded(
        &self,
        config: &[u8],
        layer_files: &[PathBuf],
        blob_digests: &[String],
        refs: &[Reference],
    ) -> Result<String, ImageError> {
        let parsed: ImageConfiguration = serde_json::from_slice(config)
            .map_err(|e| archive_err(format!("image config: {e}")))?;
        let diff_ids = parsed.rootfs().diff_ids().clone();
        if diff_ids.len() != layer_files.len() {
            return Err(archive_err(format!(
                "the config lists {} layers but the manifest {}",
                diff_ids.len(),
                layer_files.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut sources = Vec::new();
        for (i, file) in layer_files.iter().enumerate() {
            if self.has_layer(&chains[i]) {
                sources.push(LayerSource::Existing);
                continue;
            }
            let f = fs::File::open(file).map_err(|e| ImageError::io("open layer", file, e))?;
            let mut tee = TeeReader::new(f, None);
            let staged: StagedLayer = self.stage_layer(&mut tee)?;
            let (digest, _) = tee.finish().map_err(|e| ImageError::io("read layer", file, e))?;
            if let Some(want) = blob_digests.get(i)
                && *want != digest
            {
                return Err(archive_err(format!("layer blob {want} has digest {digest}")));
            }
            sources.push(LayerSource::Staged(staged));
        }
        self.commit_image(config, sources, refs)
    }

    /// `docker save`: writes the images named by `refs` as a docker save archive that is also an
    /// OCI image layout (`manifest.json`, `index.json`, `oci-layout`, `blobs/sha256/`).
    pub fn save(&self, refs: &[String], writer: impl Write) -> Result<(), ImageError> {
        if refs.is_empty() {
            return Err(archive_err("nothing to save: name at least one image"));
        }
        let idx = self.read_index()?;
        // id -> tags to record, in first-seen order.
        let mut images: Vec<(String, Vec<Reference>)> = Vec::new();
        for s in refs {
            let id = ImageStore::find_in(&idx, s)?;
            let tags: Vec<Reference> = match Reference::parse(s) {
                Ok(r) if idx.refs.get(&r.full()) == Some(&id) => vec![r],
                _ => idx
                    .refs
                    .iter()
                    .filter(|(_, v)| **v == id)
                    .filter_map(|(k, _)| Reference::parse(k).ok())
                    .collect(),
            };
            match images.iter_mut().find(|(i, _)| *i == id) {
                Some((_, t)) => {
                    for r in tags {
                        if !t.contains(&r) {
                            t.push(r);
                        }
                    }
                }
                None => images.push((id, tags)),
            }
        }
        let mut tar = tar::Builder::new(writer);
        let mut written: std::collections::HashSet<String> = Default::default();
        let mut save_manifests = Vec::new();
        let mut index_descs = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let werr = |e: std::io::Error| archive_err(format!("write archive: {e}"));
        for dir in ["blobs/", "blobs/sha256/"] {
            append_dir(&mut tar, dir).map_err(werr)?;
        }
        for (id, tags) in &images {
            let config_bytes = self.config_bytes(id)?;
            let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
                .map_err(|e| ImageError::BadConfig { id: short_id(id), reason: e.to_string() })?;
            let id_hex = digest_hex(id)?.to_string();
            if written.insert(id_hex.clone()) {
                append_bytes(&mut tar, &format!("blobs/sha256/{id_hex}"), &config_bytes)
                    .map_err(werr)?;
            }
            let mut layer_paths = Vec::new();
            let mut layer_descs = Vec::new();
            let diff_ids = config.rootfs().diff_ids();
            for (diff, chain) in diff_ids.iter().zip(chain_ids(diff_ids)) {
                let hex = digest_hex(diff)?.to_string();
                let member = format!("blobs/sha256/{hex}");
                let dir = self.layer_dir(&chain)?;
                let rec: Option<LayerRecord> = read_json(&dir.join("layer.json"))?;
                let size = match rec.and_then(|r| r.tar_size) {
                    // Rebuilt from the layer directory and its tar-split.
                    Some(size) => {
                        if written.insert(hex.clone()) {
                            let rebuilt = Rebuilt::open(&dir, diff).map_err(|e| {
                                ImageError::io("open layer", dir.join(tarsplit::SPLIT_FILE), e)
                            })?;
                            let mut h = header(&member, size, tar::EntryType::Regular, 0o644);
                            tar.append_data(&mut h, &member, rebuilt).map_err(|e| {
                                archive_err(format!("layer {diff} of {}: {e}", short_id(id)))
                            })?;
                        }
                        size
                    }
                    // A layer stored before tar-split: its tar is a blob.
                    None => {
                        let blob = self.blob_path(diff)?;
                        let size = fs::metadata(&blob)
                            .map_err(|e| ImageError::io("find layer tar", &blob, e))?
                            .len();
                        if written.insert(hex.clone()) {
                            append_file(&mut tar, &member, &blob).map_err(werr)?;
                        }
                        size
                    }
                };
                layer_paths.push(format!("blobs/sha256/{hex}"));
                layer_descs.push(Descriptor::new(MediaType::ImageLayer, size, parse_digest(diff)?));
            }
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(Descriptor::new(
                    MediaType::ImageConfig,
                    config_bytes.len() as u64,
                    parse_digest(id)?,
                ))
                .layers(layer_descs)
                .build()
                .map_err(|e| archive_err(format!("build manifest: {e}")))?;
            let manifest_bytes = serde_json::to_vec(&manifest)
                .map_err(|e| archive_err(format!("serialise manifest: {e}")))?;
            let m_digest = format!("sha256:{}", sha256_hex(&manifest_bytes));
            if written.insert(digest_hex(&m_digest)?.to_string()) {
                append_bytes(
                    &mut tar,
                    &format!("blobs/sha256/{}", digest_hex(&m_digest)?),
                    &manifest_bytes,
                )
                .map_err(werr)?;
            }
            let mut descs_for = |annotations: Option<HashMap<String, String>>| {
                let mut d = Descriptor::new(
                    MediaType::ImageManifest,
                    manifest_bytes.len() as u64,
                    parse_digest(&m_digest)?,
                );
                d.set_annotations(annotations);
                index_descs.push(d);
                Ok::<(), ImageError>(())
            };
            if tags.is_empty() {
                descs_for(None)?;
            }
            for t in tags {
                let ann = HashMap::from([
                    (ANNOTATION_CONTAINERD_NAME.to_string(), t.full()),
                    (ANNOTATION_REF_NAME.to_string(), t.tag.clone()),
                ]);
                descs_for(Some(ann))?;
                repositories
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(t.tag.clone(), id_hex.clone());
            }
            save_manifests.push(SaveManifest {
                config: format!("blobs/sha256/{id_hex}"),
                repo_tags: Some(tags.iter().map(|t| t.to_string()).collect()),
                layers: layer_paths,
            });
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(index_descs)
            .build()
            .map_err(|e| archive_err(format!("build index: {e}")))?;
        append_bytes(&mut tar, "index.json", &to_json(&index)?).map_err(werr)?;
        append_bytes(&mut tar, "manifest.json", &to_json(&save_manifests)?).map_err(werr)?;
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(werr)?;
        append_bytes(&mut tar, "repositories", &to_json(&repositories)?).map_err(werr)?;
        tar.into_inner().map_err(werr)?.flush().map_err(werr)?;
        Ok(())
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, ImageError> {
    serde_json::to_vec(v).map_err(|e| archive_err(format!("serialise: {e}")))
}

fn parse_digest(d: &str) -> Result<Digest, ImageError> {
    Digest::from_str(d).map_err(|e| archive_err(format!("digest {d}: {e}")))
}

/// Resolves an archive member path inside the staging dir; symlinks (docker's legacy format
/// links duplicate layers) may be followed but must stay inside.
fn member_path(root: &Path, member: &str) -> Result<PathBuf, ImageError> {
    let comps = unpack::clean_path(Path::new(member))?;
    let joined: PathBuf =
        std::iter::once(root.as_os_str()).chain(comps.iter().map(|c| c.as_os_str())).collect();
    let real = joined
        .canonicalize()
        .map_err(|_| archive_err(format!("{member} is missing from the archive")))?;
    let real_root = root.canonicalize().map_err(|e| ImageError::io("resolve", root, e))?;
    if !real.starts_with(&real_root) || !real.is_file() {
        return Err(archive_err(format!("{member} is not a file inside the archive")));
    }
    Ok(real)
}

fn read_member(root: &Path, member: &str) -> Result<Vec<u8>, ImageError> {
    let p = member_path(root, member)?;
    fs::read(&p).map_err(|e| ImageError::io("read", &p, e))
}

/// Reads a blob named by a descriptor and checks its digest.
fn read_blob(root: &Path, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let digest = desc.digest().to_string();
    let hex = digest_hex(&digest)?;
    let bytes = read_member(root, &format!("blobs/sha256/{hex}"))?;
    if sha256_hex(&bytes) != hex {
        return Err(archive_err(format!("blob {digest} does not match its digest")));
    }
    Ok(bytes)
}

fn header(path: &str, size: u64, kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> std::io::Result<()> {
    let mut h = header(path, 0, tar::EntryType::Directory, 0o755);
    tar.append_data(&mut h, path, std::io::empty())
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = header(path, bytes.len() as u64, tar::EntryType::Regular, 0o644);
    tar.append_data(&mut h, path, bytes)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, src: &Path) -> std::io::Result<()> {
    let f = fs::File::open(src)?;
    let len = f.metadata()?.len();
    let mut h = header(path, len, tar::EntryType::Regular, 0o644);
    tar.append_data(&mut h, path, f)
}
