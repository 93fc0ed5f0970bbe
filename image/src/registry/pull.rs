//! `pull`: reference -> manifest (choosing a platform in an index) -> config -> layers streamed
//! through the verifier into the safe unpacker, each committed once verified -> the image.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Credentials;
use super::client::{Client, read_limited};
use super::{
    Platform, Progress, ProgressSink, PullOptions, PullReport, RegistryError, emit, short_digest,
};
use crate::image_store::{BlobSource, ImageStore, StagedLayer, chain_ids, sha256_hex};
use crate::reference::{Reference, valid_digest};
use crate::{ImageError, locks};

/// docker's limit for a manifest or index.
pub(crate) const MANIFEST_LIMIT: u64 = 4 << 20;
/// The largest image config read.
const CONFIG_LIMIT: u64 = 16 << 20;
/// Tries of one layer's download when the connection breaks mid-stream.
const LAYER_ATTEMPTS: u32 = 3;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Layer media types berth unpacks (the decompressor is chosen by the stream's magic).
const LAYER_TYPES: &[&str] = &[
    DOCKER_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// A blob named by a manifest.
#[derive(Debug, Clone)]
pub(crate) struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

fn bad(reference: &Reference, reason: impl Into<String>) -> RegistryError {
    RegistryError::BadManifest { reference: reference.to_string(), reason: reason.into() }
}

fn desc_of(v: &Value, reference: &Reference, what: &str) -> Result<Desc, RegistryError> {
    let digest = v.get("digest").and_then(Value::as_str).unwrap_or_default();
    if !valid_digest(digest) {
        return Err(bad(reference, format!("the {what} has an unsupported digest {digest:?}")));
    }
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(reference, format!("the {what} {digest} has no size")))?;
    let media_type = v.get("mediaType").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Desc { media_type, digest: digest.to_string(), size })
}

/// A fetched manifest or index.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: String,
}

/// GETs `manifests/<what>` and checks it against `expect` (a digest and maybe a size).
async fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    what: &str,
    expect: Option<&Desc>,
) -> Result<Fetched, ImageError> {
    let repo = &reference.path;
    let accept = [
        OCI_INDEX,
        DOCKER_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        DOCKER_SCHEMA1_SIGNED,
        DOCKER_SCHEMA1,
    ]
    .join(", ");
    let label = format!("GET manifest {repo}:{what}");
    let resp = client
        .send(
            |c, base| {
                c.get(Client::url(base, repo, &format!("manifests/{what}"))).header(ACCEPT, &accept)
            },
            &label,
        )
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::ManifestUnknown { reference: reference.to_string() }.into());
    }
    if !resp.status().is_success() {
        return Err(client.unexpected(resp, &label).await.into());
    }
    let header_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_default();
    let bytes = read_limited(resp, MANIFEST_LIMIT, "the manifest", &reference.to_string()).await?;
    let digest = format!("sha256:{}", sha256_hex(&bytes));
    if let Some(d) = expect {
        if d.digest != digest {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected: d.digest.clone(),
                got: digest,
                reference: reference.to_string(),
            }
            .into());
        }
        if d.size != 0 && d.size != bytes.len() as u64 {
            return Err(RegistryError::SizeMismatch {
                what: "manifest",
                digest,
                expected: d.size,
                got: bytes.len() as u64,
                reference: reference.to_string(),
            }
            .into());
        }
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(reference, format!("the manifest is not JSON: {e}")))?;
    let body_type = v.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    let schema = v.get("schemaVersion").and_then(Value::as_u64).unwrap_or(0);
    let media_type =
        if schema == 1 || header_type == DOCKER_SCHEMA1 || header_type == DOCKER_SCHEMA1_SIGNED {
            return Err(RegistryError::Schema1 { reference: reference.to_string() }.into());
        } else if !body_type.is_empty() {
            body_type.to_string()
        } else if [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST]
            .contains(&header_type.as_str())
        {
            header_type
        } else if v.get("manifests").is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        };
    Ok(Fetched { bytes, media_type, digest })
}

/// Picks the manifest for `want` from an index; the flag says the entry named no platform (the
/// first such entry is taken when no entry names `want`; its config must then match).
fn choose(
    index: &Value,
    want: &Platform,
    reference: &Reference,
) -> Result<(Desc, bool), RegistryError> {
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(reference, "the index has no manifests"))?;
    let mut offered: Vec<String> = Vec::new();
    let mut unnamed = None;
    for e in entries {
        let p = e.get("platform");
        let get = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
        let (os, arch, variant) =
            (get("os").unwrap_or(""), get("architecture").unwrap_or(""), get("variant"));
        let mt = e.get("mediaType").and_then(Value::as_str).unwrap_or(OCI_MANIFEST);
        if mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
            continue;
        }
        if e.get("platform").is_none() {
            unnamed = unnamed.or(Some(e));
            continue;
        }
        if want.matches(os, arch, variant) {
            return Ok((desc_of(e, reference, "manifest")?, false));
        }
        if os != "unknown" && !os.is_empty() {
            let shown = match variant {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            };
            if !offered.contains(&shown) {
                offered.push(shown);
            }
        }
    }
    if let Some(e) = unnamed {
        return Ok((desc_of(e, reference, "manifest")?, true));
    }
    Err(RegistryError::NoMatchingPlatform {
        reference: reference.to_string(),
        wanted: want.to_string(),
        offered: if offered.is_empty() { "nothing".into() } else { offered.join(", ") },
    })
}

/// A manifest's config and layers.
fn parse_manifest(bytes: &[u8], reference: &Reference) -> Result<(Desc, Vec<Desc>), RegistryError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(reference, format!("the manifest is not JSON: {e}")))?;
    let config = desc_of(
        v.get("config").ok_or_else(|| bad(reference, "the manifest has no config"))?,
        reference,
        "config",
    )?;
    if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
        return Err(bad(
            reference,
            format!("this is not a container image (its config is {})", config.media_type),
        ));
    }
    let mut layers = Vec::new();
    for l in v.get("layers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let d = desc_of(l, reference, "layer")?;
        if !LAYER_TYPES.contains(&d.media_type.as_str()) {
            return Err(bad(
                reference,
                format!(
                    "layer {} has media type {:?}, which is not a container image layer",
                    d.digest, d.media_type
                ),
            ));
        }
        layers.push(d);
    }
    Ok((config, layers))
}

/// GETs a blob, failing on 404 with [`RegistryError::BlobUnknown`].
async fn get_blob(
    client: &Client,
    reference: &Reference,
    digest: &str,
) -> Result<reqwest::Response, RegistryError> {
    let repo = &reference.path;
    let label = format!("GET blob {digest}");
    let resp = client
        .send(|c, base| c.get(Client::url(base, repo, &format!("blobs/{digest}"))), &label)
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::BlobUnknown {
            digest: digest.to_string(),
            reference: reference.to_string(),
        });
    }
    if !resp.status().is_success() {
        return Err(client.unexpected(resp, &label).await);
    }
    Ok(resp)
}

async fn fetch_config(
    client: &Client,
    reference: &Reference,
    d: &Desc,
) -> Result<Vec<u8>, RegistryError> {
    if d.size > CONFIG_LIMIT {
        return Err(RegistryError::TooLarge {
            what: "the image config",
            reference: reference.to_string(),
            limit: CONFIG_LIMIT,
        });
    }
    let resp = get_blob(client, reference, &d.digest).await?;
    let bytes =
        read_limited(resp, CONFIG_LIMIT, "the image config", &reference.to_string()).await?;
    let got = format!("sha256:{}", sha256_hex(&bytes));
    if got != d.digest {
        return Err(RegistryError::DigestMismatch {
            what: "config",
            expected: d.digest.clone(),
            got,
            reference: reference.to_string(),
        });
    }
    if bytes.len() as u64 != d.size {
        return Err(RegistryError::SizeMismatch {
            what: "config",
            digest: d.digest.clone(),
            expected: d.size,
            got: bytes.len() as u64,
            reference: reference.to_string(),
        });
    }
    Ok(bytes)
}

/// The blocking side of a download: chunks from the async side as a `Read`. A channel closed
/// without the end marker is an interrupted download, never a short stream.
struct ChannelReader {
    rx: mpsc::Receiver<Option<io::Result<bytes::Bytes>>>,
    cur: bytes::Bytes,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Some(Ok(b))) => self.cur = b,
                Some(Some(Err(e))) => return Err(e),
                Some(None) => self.done = true,
                None => return Err(io::Error::other("the download was interrupted")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Hashes and counts the compressed stream, failing as soon as it passes `limit`.
struct Verifier<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
    limit: u64,
    over: bool,
}

impl<R: Read> Read for Verifier<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.over = true;
            return Err(io::Error::other("the blob is larger than its descriptor says"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Why one attempt at a layer failed: the network (worth another try) or anything else.
enum LayerFailure {
    Network(RegistryError),
    Fatal(ImageError),
}

/// Streams one layer blob into staging, verifying size, digest and diff id.
async fn fetch_layer(
    client: &Client,
    store: &ImageStore,
    reference: &Reference,
    d: &Desc,
    diff_id: &str,
    progress: &Option<ProgressSink>,
    cancel: &AtomicBool,
) -> Result<StagedLayer, LayerFailure> {
    let short = short_digest(&d.digest);
    let resp = match get_blob(client, reference, &d.digest).await {
        Ok(r) => r,
        // The request itself was already retried; only a break mid-stream is tried again.
        Err(e) => return Err(LayerFailure::Fatal(e.into())),
    };
    let size_err = |got: u64| {
        LayerFailure::Fatal(
            RegistryError::SizeMismatch {
                what: "layer",
                digest: d.digest.clone(),
                expected: d.size,
                got,
                reference: reference.to_string(),
            }
            .into(),
        )
    };
    if let Some(n) = resp.content_length()
        && n != d.size
    {
        return Err(size_err(n));
    }
    let (tx, rx) = mpsc::channel(16);
    let limit = d.size;
    let st = store.clone();
    let unpacking = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader { rx, cur: bytes::Bytes::new(), done: false };
        let mut v =
            Verifier { inner: reader, hasher: sha2::Sha256::new(), count: 0, limit, over: false };
        let staged = st.stage_layer(&mut v);
        // The rest of the blob (compression trailer, padding) counts for its digest too.
        let drained = io::copy(&mut v, &mut io::sink());
        let digest = format!("sha256:{}", hex::encode(v.hasher.finalize()));
        (staged, drained, digest, v.count, v.over)
    });
    let mut resp = resp;
    let mut current = 0u64;
    let mut net_err = None;
    let mut cancelled = false;
    loop {
        if cancel.load(Ordering::SeqCst) {
            // Dropping the sender without the end marker fails the unpacker, which removes
            // its staging directory before we return.
            cancelled = true;
            break;
        }
        match resp.chunk().await {
            Ok(Some(c)) => {
                current += c.len() as u64;
                emit(progress, Progress::Bytes { id: short.clone(), current, total: Some(d.size) });
                if tx.send(Some(Ok(c))).await.is_err() {
                    break; // the unpacker stopped; its error says why
                }
            }
            Ok(None) => {
                let _ = tx.send(None).await;
                break;
            }
            Err(e) => {
                let _ = tx.send(Some(Err(io::Error::other(e.to_string())))).await;
                net_err = Some(RegistryError::Unreachable {
                    registry: client.domain.clone(),
                    url: format!("blob {}", d.digest),
                    reason: format!("the download broke off after {current} bytes: {e}"),
                });
                break;
            }
        }
    }
    drop(tx);
    let (staged, drained, digest, count, over) =
        unpacking.await.map_err(|e| LayerFailure::Fatal(e.into()))?;
    if cancelled {
        return Err(LayerFailure::Fatal(RegistryError::Cancelled.into()));
    }
    if let Some(e) = net_err {
        return Err(LayerFailure::Network(e));
    }
    if over {
        return Err(size_err(count));
    }
    // A damaged blob usually breaks decompression too; the digest says what really happened.
    if drained.is_ok() && digest != d.digest {
        return Err(LayerFailure::Fatal(
            RegistryError::DigestMismatch {
                what: "layer",
                expected: d.digest.clone(),
                got: digest,
                reference: reference.to_string(),
            }
            .into(),
        ));
    }
    if drained.is_ok() && count != d.size {
        return Err(size_err(count));
    }
    let staged = staged.map_err(LayerFailure::Fatal)?;
    drained.map_err(|e| {
        LayerFailure::Fatal(ImageError::Unpack { path: "(layer)".into(), reason: e.to_string() })
    })?;
    if staged.diff_id != diff_id {
        return Err(LayerFailure::Fatal(
            RegistryError::DigestMismatch {
                what: "uncompressed layer",
                expected: diff_id.to_string(),
                got: staged.diff_id.clone(),
                reference: reference.to_string(),
            }
            .into(),
        ));
    }
    Ok(staged)
}

/// Makes sure the layer `chain` is in the store: already there, fetched by another pull while
/// we wait for its lock, or fetched now.
#[allow(clippy::too_many_arguments)]
async fn ensure_layer(
    client: Arc<Client>,
    store: ImageStore,
    reference: Reference,
    d: Desc,
    diff_id: String,
    chain: String,
    progress: Option<ProgressSink>,
    cancel: Arc<AtomicBool>,
) -> Result<(), ImageError> {
    if cancel.load(Ordering::SeqCst) {
        return Ok(()); // another layer failed; the pull is over
    }
    let short = short_digest(&d.digest);
    let source = BlobSource {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        repository: reference.repository(),
    };
    if store.has_layer(&chain) {
        emit(&progress, Progress::Exists(short));
        let (st, c) = (store.clone(), chain.clone());
        tokio::task::spawn_blocking(move || st.add_layer_source(&c, source)).await??;
        return Ok(());
    }
    let lock_path = store.layer_lock_path(&chain)?;
    let _lock = match locks::try_exclusive(&lock_path)? {
        Some(l) => l,
        None => {
            emit(&progress, Progress::Waiting(short.clone()));
            tokio::task::spawn_blocking(move || locks::exclusive(&lock_path)).await??
        }
    };
    if store.has_layer(&chain) {
        emit(&progress, Progress::Exists(short));
        let (st, c) = (store.clone(), chain.clone());
        tokio::task::spawn_blocking(move || st.add_layer_source(&c, source)).await??;
        return Ok(());
    }
    let mut attempt = 0;
    let staged = loop {
        match fetch_layer(&client, &store, &reference, &d, &diff_id, &progress, &cancel).await {
            Ok(s) => break s,
            Err(LayerFailure::Network(e)) if attempt + 1 < LAYER_ATTEMPTS => {
                tracing::debug!(layer = %d.digest, "retrying after {e}");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
            Err(LayerFailure::Network(e)) => {
                emit(&progress, Progress::Failed(short));
                return Err(e.into());
            }
            Err(LayerFailure::Fatal(e)) => {
                emit(&progress, Progress::Failed(short));
                return Err(e);
            }
        }
    };
    let st = store.clone();
    tokio::task::spawn_blocking(move || st.commit_layer(staged, &chain, Some(source))).await??;
    emit(&progress, Progress::Done(short));
    Ok(())
}

/// `docker pull REFERENCE`: fetches the image (for the host's platform unless
/// `opts.platform` says otherwise) into `store`, tags it (a tag reference) and records its repo
/// digest. Nothing of it is visible until every layer is verified and unpacked.
pub async fn pull(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
) -> Result<PullReport, ImageError> {
    let r = Reference::parse(reference)?;
    {
        let st = store.clone();
        tokio::task::spawn_blocking(move || st.clean_debris()).await?;
    }
    let lock_path = store.pull_lock_path();
    let _pulling = tokio::task::spawn_blocking(move || locks::shared(&lock_path)).await??;
    let scopes = vec![format!("repository:{}:pull", r.path)];
    let creds = opts.credentials.clone();
    let client =
        Arc::new(Client::for_repo(&r.domain, creds, scopes, "pull", r.familiar_name()).await?);
    let top = fetch_manifest(&client, &r, r.registry_ref(), None).await?;
    if let Some(d) = &r.digest
        && *d != top.digest
    {
        return Err(RegistryError::DigestMismatch {
            what: "manifest",
            expected: d.clone(),
            got: top.digest,
            reference: r.to_string(),
        }
        .into());
    }
    // The platform the image's config must have: an explicit one for a single-platform image,
    // the wanted one for an index entry that named none.
    let mut must_match = opts.platform.clone();
    let manifest = if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
        let index: Value = serde_json::from_slice(&top.bytes)
            .map_err(|e| bad(&r, format!("the index is not JSON: {e}")))?;
        let want = opts.platform.clone().unwrap_or_else(Platform::host);
        let (d, unnamed) = choose(&index, &want, &r)?;
        must_match = unnamed.then_some(want);
        fetch_manifest(&client, &r, &d.digest, Some(&d)).await?
    } else if top.media_type == OCI_MANIFEST || top.media_type == DOCKER_MANIFEST {
        Fetched {
            bytes: top.bytes.clone(),
            media_type: top.media_type.clone(),
            digest: top.digest.clone(),
        }
    } else {
        return Err(bad(&r, format!("unsupported manifest media type {}", top.media_type)).into());
    };
    if manifest.media_type != OCI_MANIFEST && manifest.media_type != DOCKER_MANIFEST {
        return Err(
            bad(&r, format!("unsupported manifest media type {}", manifest.media_type)).into()
        );
    }
    let (config_desc, layers) = parse_manifest(&manifest.bytes, &r)?;
    let config = fetch_config(&client, &r, &config_desc).await?;
    let cfg: Value = serde_json::from_slice(&config)
        .map_err(|e| bad(&r, format!("the image config is not JSON: {e}")))?;
    let diff_ids: Vec<String> = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if let Some(want) = &must_match {
        let get = |k: &str| cfg.get(k).and_then(Value::as_str);
        let (os, arch) = (get("os").unwrap_or_default(), get("architecture").unwrap_or_default());
        if !want.matches(os, arch, get("variant")) {
            let actual = match get("variant") {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            };
            return Err(RegistryError::PlatformMismatch {
                reference: r.to_string(),
                wanted: want.to_string(),
                actual,
            }
            .into());
        }
    }
    if diff_ids.len() != layers.len() {
        return Err(bad(
            &r,
            format!("the config lists {} layers but the manifest {}", diff_ids.len(), layers.len()),
        )
        .into());
    }
    if let Some(bad_id) = diff_ids.iter().find(|d| !valid_digest(d)) {
        return Err(bad(&r, format!("the config has an unsupported diff id {bad_id:?}")).into());
    }
    let chains = chain_ids(&diff_ids);
    emit(
        &opts.progress,
        Progress::Layers(layers.iter().map(|l| short_digest(&l.digest)).collect()),
    );
    let tag = (r.digest.is_none()).then(|| r.clone());
    let repo_digest = format!("{}@{}", r.repository(), top.digest);
    let mut wanted: Vec<usize> = (0..layers.len()).collect();
    for round in 0..3 {
        let sem = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
        let cancel = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for &i in &wanted {
            let (client, store, r2) = (client.clone(), store.clone(), r.clone());
            let (d, diff, chain) = (layers[i].clone(), diff_ids[i].clone(), chains[i].clone());
            let (sem, progress, cancel) = (sem.clone(), opts.progress.clone(), cancel.clone());
            // Permits are taken here, in layer order, so the bottom layers come first (as
            // docker's downloads do) and an interrupted pull has kept the lowest ones.
            let permit = sem.acquire_owned().await;
            set.spawn(async move {
                let _permit = permit;
                ensure_layer(client, store, r2, d, diff, chain, progress, cancel).await
            });
        }
        let mut first_err = None;
        while let Some(res) = set.join_next().await {
            let res = res.map_err(ImageError::from).and_then(|r| r);
            if let Err(e) = res
                && first_err.is_none()
            {
                // Stop the other downloads and wait for them: each removes its staging
                // directory before it returns, so nothing is left when the pull fails.
                cancel.store(true, Ordering::SeqCst);
                first_err = Some(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let st = store.clone();
        let (cfg_bytes, ch, t, rd) =
            (config.clone(), chains.clone(), tag.clone(), repo_digest.clone());
        let committed = tokio::task::spawn_blocking(move || {
            st.commit_pulled(&cfg_bytes, &ch, t.as_ref(), Some(&rd))
        })
        .await??;
        match committed {
            Ok((id, updated)) => {
                return Ok(PullReport { id, digest: top.digest, reference: r.full(), updated });
            }
            Err(missing) => {
                tracing::debug!(round, ?missing, "layers removed during the pull; fetching again");
                wanted = (0..layers.len()).filter(|i| missing.contains(&chains[*i])).collect();
            }
        }
    }
    Err(bad(
        &r,
        "its layers kept being removed while it was pulled (a concurrent image rm or prune)",
    )
    .into())
}

/// The largest tag list page read.
const TAGS_LIMIT: u64 = 8 << 20;

/// The tags of `repository` (`name` or `domain/name`, a tag or digest in it is ignored), as
/// the registry lists them (`/v2/<name>/tags/list`, following `Link` pages); `credentials`
/// (None: the docker config's for the registry) as for a pull.
pub async fn list_tags(
    repository: &str,
    credentials: Option<Credentials>,
) -> Result<Vec<String>, ImageError> {
    let r = Reference::parse(repository)?;
    let scopes = vec![format!("repository:{}:pull", r.path)];
    let client =
        Client::for_repo(&r.domain, credentials, scopes, "pull", r.familiar_name()).await?;
    let mut tags = Vec::new();
    let mut next = "tags/list?n=1000".to_string();
    // A registry that keeps sending pages is cut off, not followed for ever.
    for _ in 0..1000 {
        let label = format!("GET tags of {}", r.path);
        let rest = next.clone();
        let resp = client.send(|c, base| c.get(Client::url(base, &r.path, &rest)), &label).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown { reference: r.familiar_name() }.into());
        }
        if !resp.status().is_success() {
            return Err(client.unexpected(resp, &label).await.into());
        }
        // `Link: </v2/name/tags/list?n=1000&last=x>; rel="next"`
        let link = resp
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.split(';').next())
            .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>').to_string());
        let body = read_limited(resp, TAGS_LIMIT, "the tag list", &r.familiar_name()).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| bad(&r, format!("the tag list is not JSON: {e}")))?;
        tags.extend(
            v.get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string)),
        );
        match link.and_then(|l| l.split_once("/tags/list").map(|(_, q)| format!("tags/list{q}"))) {
            Some(n) => next = n,
            None => return Ok(tags),
        }
    }
    Ok(tags)
}
