//! `push`: the image's blobs the registry lacks (checked with HEAD; mounted from another
//! repository of the same registry where the layer came from there; else rebuilt from the
//! unpacked layer, gzipped and uploaded), then its manifest in docker's schema 2 shape.

use std::io::{Read, Write};
use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::Client;
use super::pull::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use super::{Progress, ProgressSink, PushOptions, PushReport, RegistryError, emit, short_digest};
use crate::ImageError;
use crate::image_store::{BlobSource, ImageStore};
use crate::reference::Reference;
use crate::tarsplit::Rebuilt;

/// Bytes per PATCH of a chunked upload.
const CHUNK: usize = 16 << 20;

/// Where the upload of a blob may continue: the `Location` of a started upload.
async fn start_upload(
    client: &Client,
    repo: &str,
    mount: Option<(&str, &str)>,
) -> Result<Result<String, ()>, RegistryError> {
    let what = format!("POST upload to {repo}");
    let query: Vec<(&str, &str)> = match mount {
        Some((digest, from)) => vec![("mount", digest), ("from", from)],
        None => Vec::new(),
    };
    let resp = client
        .send(
            |c, base| {
                c.post(Client::url(base, repo, "blobs/uploads/"))
                    .query(&query)
                    .header(CONTENT_LENGTH, "0")
            },
            &what,
        )
        .await?;
    match resp.status() {
        StatusCode::CREATED => Ok(Err(())), // mounted
        StatusCode::ACCEPTED => {
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| RegistryError::Status {
                    registry: client.domain.clone(),
                    status: 202,
                    what: what.clone(),
                    detail: Some("no Location for the upload".into()),
                })?;
            Ok(Ok(loc))
        }
        _ => Err(client.unexpected(resp, &what).await),
    }
}

/// An absolute upload URL from a `Location` (which may be relative to the registry).
fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else {
        format!("{base}{}{loc}", if loc.starts_with('/') { "" } else { "/" })
    }
}

/// Appends `digest=` to an upload URL.
fn with_digest(url: &str, digest: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={}", digest.replace(':', "%3A"))
}

/// Uploads `file` (or `bytes`) as blob `digest` in chunks, then commits it.
async fn upload(
    client: &Client,
    repo: &str,
    digest: &str,
    mut data: impl Read + Send + 'static,
    size: u64,
    id: &str,
    progress: &Option<ProgressSink>,
) -> Result<(), ImageError> {
    let Ok(mut loc) = start_upload(client, repo, None).await? else {
        return Ok(());
    };
    let mut sent = 0u64;
    loop {
        let (chunk, d) = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(CHUNK.min(size as usize + 1));
            let r = (&mut data).take(CHUNK as u64).read_to_end(&mut buf);
            (r.map(|_| buf), data)
        })
        .await?;
        data = d;
        let chunk = chunk
            .map_err(|e| ImageError::Unpack { path: "(layer)".into(), reason: e.to_string() })?;
        if chunk.is_empty() {
            break;
        }
        let body = bytes::Bytes::from(chunk);
        let start = sent;
        let end = sent + body.len() as u64 - 1;
        let what = format!("PATCH blob {digest}");
        let url = loc.clone();
        let resp = client
            .send(
                |c, base| {
                    c.patch(absolute(base, &url))
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("Content-Range", format!("{start}-{end}"))
                        .body(body.clone())
                },
                &what,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::NO_CONTENT {
            return Err(client.unexpected(resp, &what).await.into());
        }
        if let Some(l) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            loc = l.to_string();
        }
        sent = end + 1;
        emit(progress, Progress::Bytes { id: id.to_string(), current: sent, total: Some(size) });
    }
    let what = format!("PUT blob {digest}");
    let url = with_digest(&loc, digest);
    let resp = client
        .send(|c, base| c.put(absolute(base, &url)).header(CONTENT_LENGTH, "0"), &what)
        .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(client.unexpected(resp, &what).await.into());
    }
    Ok(())
}

/// gzips the layer's tar (rebuilt from its directory) into a temporary file; its digest and size.
fn compress_layer(
    store: &ImageStore,
    chain: &str,
    diff_id: &str,
) -> Result<(std::fs::File, String, u64), ImageError> {
    let dir = store.layer_dir(chain)?;
    let tmp_dir = store.staging_dir("push")?;
    let path = tmp_dir.join("layer.tar.gz");
    let io_err = |e: std::io::Error| ImageError::io("compress layer", &path, e);
    let mut rebuilt = Rebuilt::open(&dir, diff_id).map_err(io_err)?;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err)?;
    // The file lives on through its descriptor; the directory goes now.
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&tmp_dir);
    struct Hashing<W> {
        inner: W,
        hasher: sha2::Sha256,
        count: u64,
    }
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hasher.update(&buf[..n]);
            self.count += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let out =
        Hashing { inner: std::io::BufWriter::new(file), hasher: sha2::Sha256::new(), count: 0 };
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut rebuilt, &mut gz).map_err(io_err)?;
    let out = gz.finish().map_err(io_err)?;
    let digest = format!("sha256:{}", hex::encode(out.hasher.finalize()));
    let count = out.count;
    let mut file = out.inner.into_inner().map_err(|e| io_err(e.into_error()))?;
    std::io::Seek::rewind(&mut file).map_err(io_err)?;
    Ok((file, digest, count))
}

/// Pushes one layer; returns its descriptor in the target registry.
async fn push_layer(
    client: Arc<Client>,
    store: ImageStore,
    target: Reference,
    chain: String,
    progress: Option<ProgressSink>,
) -> Result<BlobSource, ImageError> {
    let rec = {
        let (st, c) = (store.clone(), chain.clone());
        tokio::task::spawn_blocking(move || st.layer_record(&c)).await??
    }
    .ok_or_else(|| RegistryError::Push(format!("layer {chain} is missing from the store")))?;
    let repo = target.path.clone();
    let here = target.repository();
    // Blobs of this layer known to be in this registry: already in the repo, or mountable.
    let candidates: Vec<&BlobSource> = rec
        .sources
        .iter()
        .filter(|s| s.repository.split('/').next() == Some(target.domain.as_str()))
        .collect();
    for s in &candidates {
        let id = short_digest(&s.digest);
        if client.blob_exists(&repo, &s.digest).await?.is_some() {
            emit(&progress, Progress::Exists(id));
            return Ok(BlobSource { repository: here, ..(*s).clone() });
        }
    }
    for s in &candidates {
        let from = s.repository.split_once('/').map(|(_, p)| p).unwrap_or_default();
        if from.is_empty() || from == repo {
            continue;
        }
        if start_upload(&client, &repo, Some((&s.digest, from))).await?.is_err() {
            emit(
                &progress,
                Progress::Mounted { id: short_digest(&s.digest), from: from.to_string() },
            );
            return Ok(BlobSource { repository: here, ..(*s).clone() });
        }
    }
    let (st, c, diff) = (store.clone(), chain.clone(), rec.diff_id.clone());
    let (file, digest, size) =
        tokio::task::spawn_blocking(move || compress_layer(&st, &c, &diff)).await??;
    let id = short_digest(&digest);
    if client.blob_exists(&repo, &digest).await?.is_some() {
        emit(&progress, Progress::Exists(id));
    } else {
        upload(&client, &repo, &digest, file, size, &id, &progress).await?;
        emit(&progress, Progress::Done(id));
    }
    Ok(BlobSource { digest, size, media_type: DOCKER_LAYER_GZIP.to_string(), repository: here })
}

/// `docker push REFERENCE`: uploads what the registry lacks and writes the manifest under the
/// reference's tag. The image must carry that tag here (as docker requires).
pub async fn push(
    store: &ImageStore,
    reference: &str,
    opts: &PushOptions,
) -> Result<PushReport, ImageError> {
    let r = Reference::parse_tag(reference)?;
    if !store.has_tag(&r)? {
        return Err(RegistryError::Push(format!(
            "an image does not exist locally with the tag: {}",
            r.familiar_name()
        ))
        .into());
    }
    let (id, config, chains) = store.image_parts(&r.full())?;
    // Pull from every repository we may mount from, push to ours.
    let mut scopes = vec![format!("repository:{}:pull,push", r.path)];
    for chain in &chains {
        if let Some(rec) = store.layer_record(chain)? {
            for s in rec.sources {
                if let Some((d, p)) = s.repository.split_once('/')
                    && d == r.domain
                    && p != r.path
                {
                    let scope = format!("repository:{p}:pull");
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
            }
        }
    }
    let creds = opts.credentials.clone();
    let client =
        Arc::new(Client::for_repo(&r.domain, creds, scopes, "push", r.familiar_name()).await?);
    emit(&opts.progress, Progress::Layers(Vec::new()));
    let sem = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
    let mut set = JoinSet::new();
    for (i, chain) in chains.iter().enumerate() {
        let (client, store, target) = (client.clone(), store.clone(), r.clone());
        let (chain, sem, progress) = (chain.clone(), sem.clone(), opts.progress.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            push_layer(client, store, target, chain, progress).await.map(|d| (i, d))
        });
    }
    let mut descs: Vec<Option<BlobSource>> = vec![None; chains.len()];
    while let Some(res) = set.join_next().await {
        match res.map_err(ImageError::from).and_then(|r| r) {
            Ok((i, d)) => descs[i] = Some(d),
            Err(e) => {
                set.abort_all();
                while set.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    let descs: Vec<BlobSource> = descs.into_iter().flatten().collect();
    for (chain, d) in chains.iter().zip(&descs) {
        store.add_layer_source(chain, d.clone())?;
    }
    // The config.
    let repo = r.path.clone();
    if client.blob_exists(&repo, &id).await?.is_none() {
        let len = config.len() as u64;
        upload(
            &client,
            &repo,
            &id,
            std::io::Cursor::new(config.clone()),
            len,
            &short_digest(&id),
            &None,
        )
        .await?;
    }
    // docker writes schema 2 with gzip layers; a zstd or plain layer needs the OCI types.
    let oci =
        descs.iter().any(|d| d.media_type != DOCKER_LAYER_GZIP && d.media_type != OCI_LAYER_GZIP);
    let layer_type = |d: &BlobSource| -> String {
        if !oci {
            DOCKER_LAYER_GZIP.to_string()
        } else if d.media_type.ends_with("zstd") {
            OCI_LAYER_ZSTD.to_string()
        } else if d.media_type.ends_with("gzip") {
            OCI_LAYER_GZIP.to_string()
        } else {
            OCI_LAYER.to_string()
        }
    };
    let (manifest_type, config_type) =
        if oci { (OCI_MANIFEST, OCI_CONFIG) } else { (DOCKER_MANIFEST, DOCKER_CONFIG) };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": config.len(), "digest": id},
        "layers": descs.iter().map(|d| json!({
            "mediaType": layer_type(d), "size": d.size, "digest": d.digest,
        })).collect::<Vec<Value>>(),
    });
    // docker's distribution library indents manifests with three spaces.
    let mut bytes = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, fmt);
    serde::Serialize::serialize(&manifest, &mut ser)
        .map_err(|e| RegistryError::Push(format!("cannot write the manifest: {e}")))?;
    let digest = format!("sha256:{}", crate::image_store::sha256_hex(&bytes));
    let what = format!("PUT manifest {}:{}", r.path, r.tag);
    let body = bytes::Bytes::from(bytes);
    let size = body.len() as u64;
    let tag = r.tag.clone();
    let resp = client
        .send(
            |c, base| {
                c.put(Client::url(base, &repo, &format!("manifests/{tag}")))
                    .header(CONTENT_TYPE, manifest_type)
                    .body(body.clone())
            },
            &what,
        )
        .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(client.unexpected(resp, &what).await.into());
    }
    store.add_repo_digest(&id, &format!("{}@{digest}", r.repository()))?;
    Ok(PushReport { tag: r.tag.clone(), digest, size })
}
