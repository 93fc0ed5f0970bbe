//! The on-disk image store: index, blobs, layers; lookup, tag, remove, prune, inspect, resolve.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_store::{StateRoot, read_json, write_atomic, write_json_atomic};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::reference::Reference;
use super::types::{Healthcheck, ImageConfigInspect, ImageInspect, ImageSummary, RootFsInspect};
use super::{ImageError, short_id};
use super::{tarsplit, unpack};

/// The references and images the store knows; `images/index.json`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Index {
    /// Image id -> record.
    pub images: BTreeMap<String, ImageRecord>,
    /// Fully qualified reference (`docker.io/library/busybox:latest`) -> image id.
    pub refs: BTreeMap<String, String>,
    /// Image id -> the registry digests it was pulled or pushed as
    /// (`docker.io/library/busybox@sha256:…`), docker's `RepoDigests`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repo_digests: BTreeMap<String, BTreeSet<String>>,
    /// Fully qualified reference -> when a pull last fetched or confirmed it (RFC 3339), for
    /// compose's `pull_policy: daily|weekly|every_…`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pulled: BTreeMap<String, String>,
}

/// What the index keeps per image besides its config blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    /// Chain ids of the layers, bottom first.
    pub layers: Vec<String>,
    /// Sum of the layers' unpacked sizes.
    pub size: u64,
    /// When this store got the image (RFC 3339).
    pub added: String,
    /// A builder's intermediate image (hidden from `image ls` while untagged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub build_cache: bool,
}

/// `layers/<chain>/layer.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// sha256 of the uncompressed layer tar.
    pub diff_id: String,
    /// The chain id (the directory's name).
    pub chain_id: String,
    /// Unpacked size of regular file contents.
    pub size: u64,
    /// Length of the uncompressed tar stream, rebuilt from `tar-split` by `save` (None: a layer
    /// stored before tar-split, whose tar is the blob named by the diff id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_size: Option<u64>,
    /// Compressed blobs of this layer known to be in registries (pulled from, pushed to), so a
    /// push can skip or mount them instead of uploading (docker's distribution metadata).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<BlobSource>,
}

/// One registry blob holding a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSource {
    /// `sha256:<hex>` of the blob as stored in the registry.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type (gzip, zstd or plain tar).
    pub media_type: String,
    /// Repository it is in, with its domain (`localhost:5000/team/app`).
    pub repository: String,
}

/// An image ready to run: what container create needs.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// The parsed image configuration.
    pub config: ImageConfiguration,
    /// The docker-only healthcheck of the config, if any.
    pub healthcheck: Option<Healthcheck>,
    /// Layer directories in overlayfs `lowerdir` order: topmost first.
    pub layers: Vec<PathBuf>,
}

/// Filters for [`ImageStore::list`] (docker's `--filter`).
#[derive(Debug, Clone, Default)]
pub struct ListFilters {
    /// `reference=PATTERN` globs on `name` or `name:tag` (any matches).
    pub reference: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE` (all must match).
    pub label: Vec<String>,
    /// `dangling=true|false`: untagged images only / tagged only.
    pub dangling: Option<bool>,
}

/// One effect of a removal, like docker's `Untagged:` / `Deleted:` lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveItem {
    /// A reference was removed (familiar form).
    Untagged(String),
    /// An image or layer was deleted (id).
    Deleted(String),
}

/// The result of a prune.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    /// What was untagged and deleted.
    pub images_deleted: Vec<RemoveItem>,
    /// Bytes freed (unpacked layer sizes).
    pub space_reclaimed: u64,
}

/// The image store under `root/images/`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: StateRoot,
    dir: PathBuf,
    /// The layer size limit when set by [`ImageStore::set_max_layer_size`] (else the environment's).
    max_layer: Option<Option<u64>>,
}

/// A layer unpacked into a staging directory, not yet in the store; removed on drop unless
/// committed.
#[derive(Debug)]
pub(crate) struct StagedLayer {
    /// Staging directory holding `diff/` and `tar-split`.
    pub dir: PathBuf,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Unpacked size.
    pub size: u64,
    /// Length of the uncompressed tar.
    pub tar_size: u64,
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        // After a commit the directory was renamed away; NotFound is the normal case.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A layer for [`ImageStore::commit_image`]: freshly staged, or expected to exist already.
#[derive(Debug)]
pub(crate) enum LayerSource {
    /// Unpacked now.
    Staged(StagedLayer),
    /// Already in the store under this chain id (skipped unpacking).
    Existing,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `sha256:<hex>` -> `<hex>`, refusing anything that is not a sha256 digest (these become paths).
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(h)
        }
        _ => Err(ImageError::InvalidArchive(format!("unsupported digest {digest}"))),
    }
}

/// Chain ids of a list of diff ids (bottom first): `chain(0) = diff(0)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = super::build::chain_id(out.last().map(String::as_str), d);
        out.push(next);
    }
    out
}

fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Matches `text` against a glob with `*` and `?`.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl ImageStore {
    /// Opens the store under `root/images`, creating its directories.
    pub fn open(root: &StateRoot) -> Result<Self, ImageError> {
        let dir = root.images_dir();
        for sub in ["blobs/sha256", "layers", "tmp", "locks"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| ImageError::io("create directory", &p, e))?;
        }
        Ok(ImageStore { root: root.clone(), dir, max_layer: None })
    }

    /// Sets the largest uncompressed size of a layer or archive this store accepts (None: no
    /// limit), instead of [`super::max_layer_size`]'s `BERTH_MAX_LAYER_SIZE` or default.
    pub fn set_max_layer_size(&mut self, limit: Option<u64>) {
        self.max_layer = Some(limit);
    }

    /// The layer size limit in force.
    pub(crate) fn layer_limit(&self) -> Result<Option<u64>, ImageError> {
        match self.max_layer {
            Some(l) => Ok(l),
            None => super::max_layer_size(),
        }
    }

    /// The state root this store lives in.
    pub fn state_root(&self) -> &StateRoot {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Path of the blob with digest `sha256:<hex>`.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// The directory of the layer with chain id `chain` (holding `diff/` and `layer.json`).
    pub(crate) fn layer_dir(&self, chain: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("layers").join(digest_hex(chain)?))
    }

    /// The index; a missing one is an empty store. One that is empty or does not parse is an
    /// error naming it: treating it as "no images" would hide every image (and let the next
    /// import overwrite what is left of their references).
    pub(crate) fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.index_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(ImageError::io("read", &path, e)),
        };
        let damaged = |reason: String| ImageError::DamagedIndex { path: path.clone(), reason };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(damaged("the file is empty".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))
    }

    pub(crate) fn write_index(&self, idx: &Index) -> Result<(), ImageError> {
        if idx.pulled.keys().any(|k| !idx.refs.contains_key(k)) {
            // A pull time belongs to a tag: an untagged reference forgets it.
            let mut idx = idx.clone();
            let refs = &idx.refs;
            let kept = idx.pulled.iter().filter(|(k, _)| refs.contains_key(*k));
            idx.pulled = kept.map(|(k, v)| (k.clone(), v.clone())).collect();
            return Ok(write_json_atomic(&self.index_path(), &idx)?);
        }
        Ok(write_json_atomic(&self.index_path(), idx)?)
    }

    /// A fresh, empty staging directory under `images/tmp`.
    pub(crate) fn staging_dir(&self, what: &str) -> Result<PathBuf, ImageError> {
        let p = self.dir.join("tmp").join(format!("{what}-{}", unique_suffix()));
        fs::create_dir(&p).map_err(|e| ImageError::io("create staging directory", &p, e))?;
        Ok(p)
    }

    /// Unpacks one layer (plain or gzip tar) into staging. Beside it goes the layer's tar stream
    /// without file contents (`tar-split`), from which `save` rebuilds the exact bytes the diff
    /// id names: no second, uncompressed copy of the layer is kept. A layer whose uncompressed
    /// tar passes [`super::max_layer_size`] is refused; the staging directory goes on any error.
    pub(crate) fn stage_layer(&self, reader: impl Read) -> Result<StagedLayer, ImageError> {
        let limit = self.layer_limit()?;
        let dir = self.staging_dir("layer")?;
        let mut staged = StagedLayer { dir, diff_id: String::new(), size: 0, tar_size: 0 };
        let diff = staged.dir.join("diff");
        fs::create_dir(&diff).map_err(|e| ImageError::io("create directory", &diff, e))?;
        let split = staged.dir.join(tarsplit::SPLIT_FILE);
        let rec = tarsplit::Recorder::create(&staged.dir, &diff, limit)
            .map_err(|e| ImageError::io("create", &split, e))?;
        let layer_err = |e: std::io::Error| ImageError::Unpack {
            path: "(layer)".into(),
            reason: e.to_string(),
        };
        let plain = unpack::maybe_gunzip(reader).map_err(layer_err)?;
        let mut reading = rec.reader(plain);
        let unpacked = unpack::unpack_recorded(&mut reading, &diff, Some(&rec));
        // What follows the end marker (padding to the record size) belongs to the diff id too.
        let tail = unpacked.and_then(|size| {
            std::io::copy(&mut reading, &mut std::io::sink()).map_err(layer_err).map(|_| size)
        });
        if let (true, Some(limit)) = (rec.exceeded(), limit) {
            return Err(ImageError::LayerTooLarge { limit });
        }
        staged.size = tail?;
        drop(reading);
        let (diff_id, total) = rec.finish().map_err(|e| ImageError::io("write", &split, e))?;
        staged.diff_id = diff_id;
        staged.tar_size = total;
        Ok(staged)
    }

    /// Whether the layer with chain id `chain` is in the store.
    pub(crate) fn has_layer(&self, chain: &str) -> bool {
        self.layer_dir(chain).map(|d| d.join("layer.json").is_file()).unwrap_or(false)
    }

    /// Adds an image: its config bytes (whose sha256 is the id), its layers (one per diff id of
    /// the config, bottom first) and references to point at it. Everything lands under the root
    /// lock; a staged layer whose chain id already exists is discarded.
    pub(crate) fn commit_image(
        &self,
        config_bytes: &[u8],
        layers: Vec<LayerSource>,
        refs: &[Reference],
    ) -> Result<String, ImageError> {
        let id = format!("sha256:{}", sha256_hex(config_bytes));
        let config: ImageConfiguration = serde_json::from_slice(config_bytes)
            .map_err(|e| ImageError::BadConfig { id: short_id(&id), reason: e.to_string() })?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != layers.len() {
            return Err(ImageError::InvalidArchive(format!(
                "the config lists {} layers but {} were given",
                diff_ids.len(),
                layers.len()
            )));
        }
        for (i, l) in layers.iter().enumerate() {
            if let LayerSource::Staged(s) = l
                && s.diff_id != diff_ids[i]
            {
                return Err(ImageError::InvalidArchive(format!(
                    "layer {} has diff id {} but the config expects {}",
                    i + 1,
                    s.diff_id,
                    diff_ids[i]
                )));
            }
        }
        let chains = chain_ids(&diff_ids);
        let _lock = self.root.lock()?;
        let mut size = 0;
        for ((layer, chain), diff_id) in layers.into_iter().zip(&chains).zip(&diff_ids) {
            let dest = self.layer_dir(chain)?;
            if let Some(rec) = read_json::<LayerRecord>(&dest.join("layer.json"))? {
                size += rec.size;
                continue; // shared with another image; a staged copy is dropped
            }
            let LayerSource::Staged(staged) = layer else {
                return Err(ImageError::InvalidArchive(format!("layer {chain} is missing")));
            };
            let rec = LayerRecord {
                diff_id: diff_id.clone(),
                chain_id: chain.clone(),
                size: staged.size,
                tar_size: Some(staged.tar_size),
                sources: Vec::new(),
            };
            write_json_atomic(&staged.dir.join("layer.json"), &rec)?;
            // A leftover directory without layer.json is debris of a crash: replace it.
            if dest.exists() {
                self.discard_dir(&dest)?;
            }
            fs::rename(&staged.dir, &dest).map_err(|e| ImageError::io("commit layer", &dest, e))?;
            size += staged.size;
        }
        self.record_image(&id, config_bytes, &chains, size, false, refs)?;
        Ok(id)
    }

    /// The last step of adding an image whose layers are stored (the root lock held): its
    /// config blob, its index record and `refs` pointing at it. `build_cache` marks a
    /// builder's intermediate image; adding it again without the flag makes it an ordinary
    /// one. An image already there under the same names (an unchanged rebuild, a second load)
    /// leaves the index untouched: no rewrite, no fsync.
    pub(crate) fn record_image(
        &self,
        id: &str,
        config_bytes: &[u8],
        chains: &[String],
        size: u64,
        build_cache: bool,
        refs: &[Reference],
    ) -> Result<(), ImageError> {
        let cfg_path = self.blob_path(id)?;
        if !cfg_path.exists() {
            write_atomic(&cfg_path, config_bytes)?;
        }
        let mut idx = self.read_index()?;
        let mut changed = !idx.images.contains_key(id);
        let rec = idx.images.entry(id.to_string()).or_insert_with(|| ImageRecord {
            layers: chains.to_vec(),
            size,
            added: now_rfc3339(),
            build_cache,
        });
        if !build_cache && rec.build_cache {
            rec.build_cache = false;
            changed = true;
        }
        for r in refs {
            changed |= idx.refs.insert(r.full(), id.to_string()).as_deref() != Some(id);
        }
        if changed {
            self.write_index(&idx)?;
        }
        Ok(())
    }

    /// Renames `dir` into tmp and deletes it there, so a half-deleted tree never sits at a key.
    fn discard_dir(&self, dir: &Path) -> Result<(), ImageError> {
        let trash = self.dir.join("tmp").join(format!("trash-{}", unique_suffix()));
        fs::rename(dir, &trash).map_err(|e| ImageError::io("remove", dir, e))?;
        fs::remove_dir_all(&trash).map_err(|e| ImageError::io("remove", &trash, e))
    }

    /// Finds the image id for a reference, a full id or an unambiguous id prefix.
    pub(crate) fn find_in(idx: &Index, s: &str) -> Result<String, ImageError> {
        let parsed = Reference::parse(s).ok();
        if let Some(r) = &parsed
            && r.digest.is_none()
            && let Some(id) = idx.refs.get(&r.full())
        {
            return Ok(id.clone());
        }
        if let Some(r) = &parsed
            && let Some(d) = &r.digest
        {
            let want = format!("{}@{d}", r.repository());
            if let Some((id, _)) = idx.repo_digests.iter().find(|(_, ds)| ds.contains(&want)) {
                return Ok(id.clone());
            }
            return Err(ImageError::NoSuchImage(r.to_string()));
        }
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let matches: Vec<&String> =
                idx.images.keys().filter(|id| id["sha256:".len()..].starts_with(&hex)).collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => return Err(ImageError::Ambiguous(s.to_string())),
            }
        }
        let shown = match &parsed {
            Some(r) if !s.starts_with("sha256:") => r.to_string(),
            _ => s.to_string(),
        };
        Err(ImageError::NoSuchImage(shown))
    }

    /// The image id for a reference, full id or unambiguous id prefix.
    pub fn resolve_id(&self, s: &str) -> Result<String, ImageError> {
        Self::find_in(&self.read_index()?, s)
    }

    /// The raw config bytes of image `id`.
    pub(crate) fn config_bytes(&self, id: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(id)?;
        fs::read(&p).map_err(|e| ImageError::io("read image config", &p, e))
    }

    fn parse_config(
        id: &str,
        bytes: &[u8],
    ) -> Result<(ImageConfiguration, serde_json::Value), ImageError> {
        let bad = |e: serde_json::Error| ImageError::BadConfig {
            id: short_id(id),
            reason: e.to_string(),
        };
        Ok((
            serde_json::from_slice(bytes).map_err(bad)?,
            serde_json::from_slice(bytes).map_err(bad)?,
        ))
    }

    /// Everything container create needs: config and layer directories (topmost first).
    pub fn resolve(&self, s: &str) -> Result<ResolvedImage, ImageError> {
        let idx = self.read_index()?;
        let id = Self::find_in(&idx, s)?;
        let rec = idx.images.get(&id).ok_or_else(|| ImageError::NoSuchImage(s.to_string()))?;
        let (config, raw) = Self::parse_config(&id, &self.config_bytes(&id)?)?;
        let healthcheck = raw
            .get("config")
            .and_then(|c| c.get("Healthcheck"))
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        let mut layers = Vec::with_capacity(rec.layers.len());
        for chain in rec.layers.iter().rev() {
            layers.push(self.layer_dir(chain)?.join("diff"));
        }
        Ok(ResolvedImage { id, config, healthcheck, layers })
    }

    fn repo_tags(idx: &Index, id: &str) -> Vec<String> {
        idx.refs
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .filter_map(|(k, _)| Reference::parse(k).ok().map(|r| r.to_string()))
            .collect()
    }

    fn inspect_in(&self, idx: &Index, id: &str) -> Result<ImageInspect, ImageError> {
        let rec = idx.images.get(id).ok_or_else(|| ImageError::NoSuchImage(id.to_string()))?;
        let (config, raw) = Self::parse_config(id, &self.config_bytes(id)?)?;
        let c = config.config().clone().unwrap_or_default();
        let as_map = |v: &Option<Vec<String>>| {
            v.as_ref().map(|v| {
                v.iter().map(|k| (k.clone(), serde_json::json!({}))).collect::<BTreeMap<_, _>>()
            })
        };
        let healthcheck = raw
            .get("config")
            .and_then(|c| c.get("Healthcheck"))
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        let comment = raw
            .get("comment")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                config.history().as_ref().and_then(|h| h.last()).and_then(|h| h.comment().clone())
            })
            .unwrap_or_default();
        Ok(ImageInspect {
            id: id.to_string(),
            repo_tags: Self::repo_tags(idx, id),
            repo_digests: idx
                .repo_digests
                .get(id)
                .map(|ds| {
                    ds.iter()
                        .filter_map(|d| Reference::parse(d).ok().map(|r| r.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            created: config.created().clone().unwrap_or_default(),
            comment,
            size: rec.size,
            architecture: config.architecture().to_string(),
            os: config.os().to_string(),
            author: config.author().clone().unwrap_or_default(),
            config: ImageConfigInspect {
                user: c.user().clone().unwrap_or_default(),
                env: c.env().clone(),
                cmd: c.cmd().clone(),
                entrypoint: c.entrypoint().clone(),
                working_dir: c.working_dir().clone().unwrap_or_default(),
                exposed_ports: as_map(c.exposed_ports()),
                volumes: as_map(c.volumes()),
                labels: c.labels().as_ref().map(|l| l.clone().into_iter().collect()),
                stop_signal: c.stop_signal().clone(),
                healthcheck,
            },
            root_fs: RootFsInspect {
                kind: config.rootfs().typ().clone(),
                layers: config.rootfs().diff_ids().clone(),
            },
        })
    }

    /// `docker image inspect`.
    pub fn inspect(&self, s: &str) -> Result<ImageInspect, ImageError> {
        let idx = self.read_index()?;
        let id = Self::find_in(&idx, s)?;
        self.inspect_in(&idx, &id)
    }

    /// `docker image ls` with filters; newest first.
    pub fn list(&self, filters: &ListFilters) -> Result<Vec<ImageSummary>, ImageError> {
        self.list_with_cache(filters, false)
    }

    /// `docker image ls [-a]`: `with_cache` also lists the builder's untagged intermediate images.
    pub fn list_with_cache(
        &self,
        filters: &ListFilters,
        with_cache: bool,
    ) -> Result<Vec<ImageSummary>, ImageError> {
        let idx = self.read_index()?;
        let mut out = Vec::new();
        for (id, rec) in &idx.images {
            let ins = self.inspect_in(&idx, id)?;
            let dangling = ins.repo_tags.is_empty();
            if dangling && rec.build_cache && !with_cache {
                continue;
            }
            if let Some(want) = filters.dangling
                && want != dangling
            {
                continue;
            }
            if !filters.reference.is_empty()
                && !filters.reference.iter().any(|pat| {
                    ins.repo_tags.iter().any(|t| {
                        let name = t.rsplit_once(':').map(|(n, _)| n).unwrap_or(t);
                        glob_match(pat, t) || glob_match(pat, name)
                    })
                })
            {
                continue;
            }
            let labels = ins.config.labels.clone().unwrap_or_default();
            let label_ok = filters.label.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(f),
            });
            if !label_ok {
                continue;
            }
            let created = chrono::DateTime::parse_from_rfc3339(&ins.created)
                .map(|t| t.timestamp())
                .unwrap_or(0);
            out.push(ImageSummary {
                id: ins.id,
                repo_tags: ins.repo_tags,
                created,
                size: ins.size,
                labels,
            });
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `docker tag SRC TARGET`: points TARGET at SRC's image.
    pub fn tag(&self, src: &str, target: &str) -> Result<(), ImageError> {
        let target = Reference::parse_tag(target)?;
        let _lock = self.root.lock()?;
        let mut idx = self.read_index()?;
        let id = Self::find_in(&idx, src)?;
        idx.refs.insert(target.full(), id.clone());
        self.write_index(&idx)?;
        self.journal("tag", &id, &target.to_string());
        Ok(())
    }

    /// Journals docker's image event `action` of `id` in the state root's event journal
    /// (`name`: the reference concerned, if any), so `events` sees what any berth process did.
    pub(crate) fn journal(&self, action: &str, id: &str, name: &str) {
        let attrs: Vec<(&str, String)> =
            if name.is_empty() { Vec::new() } else { vec![("name", name.to_string())] };
        berth_store::events::object(self.root.path(), "image", action, id, &attrs);
    }

    /// Journals what a removal or prune did (`untag`, `delete`).
    fn journal_removals(&self, items: &[RemoveItem]) {
        for it in items {
            match it {
                RemoveItem::Untagged(r) => self.journal("untag", r, r),
                RemoveItem::Deleted(id) => self.journal("delete", id, ""),
            }
        }
    }

    /// `docker image rm`: untags a reference, and deletes the image when no reference is left.
    /// `in_use(id)` says whether a container uses an image; such an image is never deleted, and
    /// removing its last reference needs `force`.
    pub fn remove(
        &self,
        s: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<RemoveItem>, ImageError> {
        let _lock = self.root.lock()?;
        let mut idx = self.read_index()?;
        let id = Self::find_in(&idx, s)?;
        let by_ref = Reference::parse(s).ok().filter(|r| idx.refs.get(&r.full()) == Some(&id));
        let tags: Vec<String> =
            idx.refs.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
        let used = in_use(&id);
        let mut out = Vec::new();
        match by_ref {
            Some(r) if tags.len() > 1 => {
                idx.refs.remove(&r.full());
                out.push(RemoveItem::Untagged(r.to_string()));
            }
            Some(r) => {
                if used && !force {
                    return Err(ImageError::InUse { reference: r.to_string(), id: short_id(&id) });
                }
                idx.refs.remove(&r.full());
                out.push(RemoveItem::Untagged(r.to_string()));
                if !used {
                    self.delete_image(&mut idx, &id, &mut out)?;
                }
            }
            None => {
                if tags.len() > 1 && !force {
                    return Err(ImageError::MultipleReferences { id: short_id(&id) });
                }
                if used && !force {
                    return Err(ImageError::InUse { reference: s.to_string(), id: short_id(&id) });
                }
                for t in &tags {
                    idx.refs.remove(t);
                    if let Ok(r) = Reference::parse(t) {
                        out.push(RemoveItem::Untagged(r.to_string()));
                    }
                }
                if !used {
                    self.delete_image(&mut idx, &id, &mut out)?;
                }
            }
        }
        self.write_index(&idx)?;
        self.journal_removals(&out);
        Ok(out)
    }

    /// Drops image `id` from the index and deletes its config and every layer no other image uses.
    /// Called with the lock held; the index is written by the caller. Returns bytes freed.
    pub(crate) fn delete_image(
        &self,
        idx: &mut Index,
        id: &str,
        out: &mut Vec<RemoveItem>,
    ) -> Result<u64, ImageError> {
        let Some(rec) = idx.images.remove(id) else { return Ok(0) };
        idx.refs.retain(|_, v| v != id);
        idx.repo_digests.remove(id);
        // Write the index first: a crash after this leaves unreferenced files, never dangling refs.
        self.write_index(idx)?;
        out.push(RemoveItem::Deleted(id.to_string()));
        let _ = fs::remove_file(self.blob_path(id)?);
        let still_used: BTreeSet<&String> = idx.images.values().flat_map(|r| &r.layers).collect();
        let mut freed = 0;
        for chain in rec.layers.iter().rev() {
            if still_used.contains(chain) {
                continue;
            }
            let dir = self.layer_dir(chain)?;
            let meta: Option<LayerRecord> = read_json(&dir.join("layer.json"))?;
            if dir.exists() {
                self.discard_dir(&dir)?;
            }
            if let Some(meta) = meta {
                freed += meta.size;
                let diff_still_used = idx.images.values().flat_map(|r| &r.layers).any(|c| {
                    self.layer_dir(c)
                        .ok()
                        .and_then(|d| {
                            read_json::<LayerRecord>(&d.join("layer.json")).ok().flatten()
                        })
                        .is_some_and(|m| m.diff_id == meta.diff_id)
                });
                if !diff_still_used {
                    let _ = fs::remove_file(self.blob_path(&meta.diff_id)?);
                }
            }
            out.push(RemoveItem::Deleted(chain.clone()));
        }
        Ok(freed)
    }

    /// `docker image prune`: deletes untagged images (`all`: every image) no container uses.
    pub fn prune(
        &self,
        all: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<PruneReport, ImageError> {
        let _lock = self.root.lock()?;
        let mut idx = self.read_index()?;
        let tagged: BTreeSet<String> = idx.refs.values().cloned().collect();
        let victims: Vec<String> = idx
            .images
            .keys()
            .filter(|id| (all || !tagged.contains(*id)) && !in_use(id))
            .cloned()
            .collect();
        let mut report = PruneReport::default();
        for id in victims {
            for (k, _) in idx.refs.iter().filter(|(_, v)| **v == id) {
                if let Ok(r) = Reference::parse(k) {
                    report.images_deleted.push(RemoveItem::Untagged(r.to_string()));
                }
            }
            report.space_reclaimed +=
                self.delete_image(&mut idx, &id, &mut report.images_deleted)?;
        }
        self.clean_stale_tmp();
        self.write_index(&idx)?;
        self.journal_removals(&report.images_deleted);
        report.space_reclaimed += self.remove_orphans(&idx)?;
        Ok(report)
    }

    /// Removes layers and blobs no image refers to: what an interrupted pull committed before
    /// its image (the next pull would have reused them). Skipped while a pull runs in this
    /// root, since its layers are orphans until it commits. Called with the root lock held.
    fn remove_orphans(&self, idx: &Index) -> Result<u64, ImageError> {
        let Some(_no_pulls) = super::locks::try_exclusive(&self.pull_lock_path())? else {
            return Ok(0);
        };
        let used_layers: BTreeSet<&str> =
            idx.images.values().flat_map(|r| r.layers.iter().map(String::as_str)).collect();
        let mut used_blobs: BTreeSet<String> = idx.images.keys().cloned().collect();
        let mut freed = 0;
        let layers = self.dir.join("layers");
        let rd = fs::read_dir(&layers).map_err(|e| ImageError::io("read", &layers, e))?;
        for e in rd.flatten() {
            let chain = format!("sha256:{}", e.file_name().to_string_lossy());
            let rec: Option<LayerRecord> = read_json(&e.path().join("layer.json")).ok().flatten();
            if used_layers.contains(chain.as_str()) {
                if let Some(rec) = rec {
                    used_blobs.insert(rec.diff_id);
                }
                continue;
            }
            freed += rec.map(|r| r.size).unwrap_or(0);
            self.discard_dir(&e.path())?;
        }
        // No pull runs (we hold its lock exclusively): the per-layer lock files can go too.
        if let Ok(rd) = fs::read_dir(self.dir.join("locks")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("layer-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let blobs = self.dir.join("blobs/sha256");
        let rd = fs::read_dir(&blobs).map_err(|e| ImageError::io("read", &blobs, e))?;
        for e in rd.flatten() {
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if !used_blobs.contains(&digest) {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(freed)
    }

    /// The lock file a pull holds shared for its whole run (prune's orphan sweep takes it
    /// exclusively, without waiting).
    pub(crate) fn pull_lock_path(&self) -> PathBuf {
        self.dir.join("locks").join("pull")
    }

    /// The lock file serialising the fetch of one layer (by chain id) between processes.
    pub(crate) fn layer_lock_path(&self, chain: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join("locks").join(format!("layer-{}", digest_hex(chain)?)))
    }

    /// Removes staging debris of dead processes (a pull killed mid-layer leaves its staging
    /// directory); cheap, so every pull starts with it.
    pub(crate) fn clean_debris(&self) {
        self.clean_stale_tmp();
    }

    /// The record of the layer with chain id `chain`, if it is in the store.
    pub(crate) fn layer_record(&self, chain: &str) -> Result<Option<LayerRecord>, ImageError> {
        Ok(read_json(&self.layer_dir(chain)?.join("layer.json"))?)
    }

    /// Moves a staged layer into the store under `chain` (a pull commits each layer as soon as
    /// it is verified, so an interrupted pull keeps it for the next). A layer already there
    /// wins; the staged copy is dropped. `source` is the registry blob it came from.
    pub(crate) fn commit_layer(
        &self,
        staged: StagedLayer,
        chain: &str,
        source: Option<BlobSource>,
    ) -> Result<(), ImageError> {
        let dest = self.layer_dir(chain)?;
        let rec = LayerRecord {
            diff_id: staged.diff_id.clone(),
            chain_id: chain.to_string(),
            size: staged.size,
            tar_size: Some(staged.tar_size),
            sources: source.into_iter().collect(),
        };
        write_json_atomic(&staged.dir.join("layer.json"), &rec)?;
        let _lock = self.root.lock()?;
        if dest.join("layer.json").is_file() {
            return Ok(());
        }
        if dest.exists() {
            self.discard_dir(&dest)?;
        }
        fs::rename(&staged.dir, &dest).map_err(|e| ImageError::io("commit layer", &dest, e))
    }

    /// Remembers that layer `chain` is in a registry as `source` (for later pushes).
    pub(crate) fn add_layer_source(
        &self,
        chain: &str,
        source: BlobSource,
    ) -> Result<(), ImageError> {
        let path = self.layer_dir(chain)?.join("layer.json");
        let _lock = self.root.lock()?;
        let Some(mut rec) = read_json::<LayerRecord>(&path)? else { return Ok(()) };
        if rec.sources.contains(&source) {
            return Ok(());
        }
        rec.sources.retain(|s| !(s.repository == source.repository && s.digest == source.digest));
        rec.sources.push(source);
        Ok(write_json_atomic(&path, &rec)?)
    }

    /// Adds a pulled image whose layers were committed one by one: its config, its tag (if
    /// any) and its repo digest. Returns the id and whether the image was new here, or
    /// `Err(missing)` with the chain ids that vanished meanwhile (removed by a concurrent
    /// `rm`): the caller fetches them again.
    pub(crate) fn commit_pulled(
        &self,
        config_bytes: &[u8],
        chains: &[String],
        tag: Option<&Reference>,
        repo_digest: Option<&str>,
    ) -> Result<Result<(String, bool), Vec<String>>, ImageError> {
        let id = format!("sha256:{}", sha256_hex(config_bytes));
        let _lock = self.root.lock()?;
        let mut size = 0;
        let mut missing = Vec::new();
        for chain in chains {
            match read_json::<LayerRecord>(&self.layer_dir(chain)?.join("layer.json"))? {
                Some(rec) => size += rec.size,
                None => missing.push(chain.clone()),
            }
        }
        if !missing.is_empty() {
            return Ok(Err(missing));
        }
        let cfg_path = self.blob_path(&id)?;
        if !cfg_path.exists() {
            write_atomic(&cfg_path, config_bytes)?;
        }
        let mut idx = self.read_index()?;
        let mut new = !idx.images.contains_key(&id);
        idx.images.entry(id.clone()).or_insert_with(|| ImageRecord {
            layers: chains.to_vec(),
            size,
            added: now_rfc3339(),
            build_cache: false,
        });
        if let Some(t) = tag {
            new |= idx.refs.insert(t.full(), id.clone()).as_ref() != Some(&id);
            idx.pulled.insert(t.full(), now_rfc3339());
        }
        if let Some(d) = repo_digest {
            idx.repo_digests.entry(id.clone()).or_default().insert(d.to_string());
        }
        self.write_index(&idx)?;
        Ok(Ok((id, new)))
    }

    /// Records `digest` (`domain/path@sha256:…`) as a repo digest of image `id` (after a push).
    pub(crate) fn add_repo_digest(&self, id: &str, digest: &str) -> Result<(), ImageError> {
        let _lock = self.root.lock()?;
        let mut idx = self.read_index()?;
        if !idx.images.contains_key(id) {
            return Ok(());
        }
        idx.repo_digests.entry(id.to_string()).or_default().insert(digest.to_string());
        self.write_index(&idx)
    }

    /// The id, config bytes and layer chain ids (bottom first) of an image.
    pub(crate) fn image_parts(
        &self,
        s: &str,
    ) -> Result<(String, Vec<u8>, Vec<String>), ImageError> {
        let idx = self.read_index()?;
        let id = Self::find_in(&idx, s)?;
        let rec = idx.images.get(&id).ok_or_else(|| ImageError::NoSuchImage(s.to_string()))?;
        let layers = rec.layers.clone();
        Ok((id.clone(), self.config_bytes(&id)?, layers))
    }

    /// When a pull last fetched or confirmed `reference` (None: never pulled here).
    pub fn last_pulled(
        &self,
        reference: &str,
    ) -> Result<Option<std::time::SystemTime>, ImageError> {
        let r = Reference::parse(reference)?;
        let idx = self.read_index()?;
        Ok(idx
            .pulled
            .get(&r.full())
            .filter(|_| idx.refs.contains_key(&r.full()))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(std::time::SystemTime::from))
    }

    /// Whether `reference` (fully qualified) is a tag in this store.
    pub(crate) fn has_tag(&self, reference: &Reference) -> Result<bool, ImageError> {
        Ok(self.read_index()?.refs.contains_key(&reference.full()))
    }

    /// Removes staging debris left by processes that died mid-import (their pid is gone).
    fn clean_stale_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.dir.join("tmp")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Ids of every image in the store.
    pub fn image_ids(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.read_index()?.images.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("*:1.?", "a:1.2"));
        assert!(!glob_match("b*x", "busyboy"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn chain_id_rule() {
        let d = vec!["sha256:aa".to_string(), "sha256:bb".to_string()];
        let c = chain_ids(&d);
        assert_eq!(c[0], "sha256:aa");
        assert_eq!(c[1], format!("sha256:{}", sha256_hex(b"sha256:aa sha256:bb")));
    }
}
