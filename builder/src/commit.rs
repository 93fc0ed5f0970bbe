//! `container commit`: a container's changes (its overlay upper directory) become a layer on
//! top of its image, with the container's config, `--change` instructions, author and message.

use berth_runtime::Engine;
use berth_runtime::container::record::ContainerPaths;
use serde_json::{Value, json};

use crate::error::BuildError;

/// `docker commit` options.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]` for the new image.
    pub reference: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-m`: the commit message.
    pub message: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// `-p`: pause the container while its files are read (docker's default).
    pub pause: bool,
}

/// Commits container `key`; returns the new image id.
pub async fn commit(engine: &Engine, key: &str, opts: CommitOptions) -> Result<String, BuildError> {
    let ins = engine.container_inspect(key).await?;
    if ins.image.is_empty() {
        return Err(BuildError::Invalid(format!(
            "container {key} runs on a plain directory (--rootfs): it has no image to commit onto"
        )));
    }
    // Check the changes and the reference before any work.
    let mut cfg_map = serde_json::Map::new();
    berth_image::apply_changes(&mut cfg_map, &opts.changes)?;
    if let Some(r) = &opts.reference {
        berth_image::Reference::parse(r)?;
    }
    let paused = opts.pause && ins.state.running && !ins.state.paused;
    if paused {
        engine.container_pause(&ins.id).await?;
    }
    let result = write(engine, &ins, opts).await;
    if paused {
        let un = engine.container_unpause(&ins.id).await;
        let id = result?;
        un?;
        return Ok(id);
    }
    result
}

async fn write(
    engine: &Engine,
    ins: &berth_runtime::container::ContainerInspect,
    opts: CommitOptions,
) -> Result<String, BuildError> {
    let store = engine.images()?;
    let base = store.image_state(&ins.image)?;
    let upper = ContainerPaths::new(engine.root(), &ins.id).upper();
    let tmp_base = engine.root().path().join("builder/tmp");
    std::fs::create_dir_all(&tmp_base)
        .map_err(|e| BuildError::Read { path: tmp_base.clone(), source: e })?;
    let tmp = tempfile::Builder::new()
        .prefix("commit-")
        .tempdir_in(&tmp_base)
        .map_err(|e| BuildError::Read { path: tmp_base.clone(), source: e })?;
    let tar = tmp.path().join("layer.tar");
    let parent = base.chains.last().cloned();
    let st = store.clone();
    let t2 = tar.clone();
    let layer =
        tokio::task::spawn_blocking(move || -> Result<berth_image::NewLayer, BuildError> {
            let f = std::fs::File::create(&t2)
                .map_err(|e| BuildError::Read { path: t2.clone(), source: e })?;
            let f = berth_image::write_upper_tar(&upper, std::io::BufWriter::new(f))
                .map_err(|e| BuildError::Read { path: upper.clone(), source: e })?;
            drop(f);
            let f = std::fs::File::open(&t2)
                .map_err(|e| BuildError::Read { path: t2.clone(), source: e })?;
            Ok(st.add_layer(parent.as_deref(), std::io::BufReader::new(f))?)
        })
        .await
        .map_err(|e| BuildError::Invalid(e.to_string()))??;
    drop(tmp);

    let c = &ins.config;
    let mut cfg = base.config.clone();
    let mut run = serde_json::Map::new();
    let set = |m: &mut serde_json::Map<String, Value>, k: &str, v: Value| {
        if !v.is_null() {
            m.insert(k.into(), v);
        }
    };
    set(&mut run, "User", json!(c.user));
    set(&mut run, "Env", json!(c.env));
    set(&mut run, "Cmd", json!(c.cmd));
    set(&mut run, "Entrypoint", json!(c.entrypoint));
    set(&mut run, "WorkingDir", json!(c.working_dir));
    if !c.labels.is_empty() {
        set(&mut run, "Labels", json!(c.labels));
    }
    if let Some(p) = &c.exposed_ports {
        set(&mut run, "ExposedPorts", json!(p));
    }
    if let Some(v) = &c.volumes {
        set(&mut run, "Volumes", json!(v));
    }
    if let Some(s) = &c.stop_signal {
        set(&mut run, "StopSignal", json!(s));
    }
    // The image's own healthcheck stays unless the container set one.
    if let Some(h) = base.config.pointer("/config/Healthcheck") {
        run.insert("Healthcheck".into(), h.clone());
    }
    if let Some(h) = &c.healthcheck {
        run.insert("Healthcheck".into(), json!(h));
    }
    berth_image::apply_changes(&mut run, &opts.changes)?;
    cfg["config"] = Value::Object(run);
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    cfg["created"] = json!(created);
    cfg["container"] = json!(ins.id);
    if let Some(a) = &opts.author {
        cfg["author"] = json!(a);
    }
    match cfg.pointer_mut("/rootfs/diff_ids").and_then(Value::as_array_mut) {
        Some(a) => a.push(json!(layer.diff_id)),
        None => cfg["rootfs"] = json!({"type": "layers", "diff_ids": [layer.diff_id]}),
    }
    let mut cmd = vec![ins.path.clone()];
    cmd.extend(ins.args.iter().cloned());
    let mut h = json!({"created": created, "created_by": cmd.join(" ")});
    if let Some(a) = &opts.author {
        h["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        h["comment"] = json!(m);
    }
    match cfg.get_mut("history").and_then(Value::as_array_mut) {
        Some(a) => a.push(h),
        None => cfg["history"] = json!([h]),
    }
    // An imported image's top-level comment would otherwise show through `image inspect`.
    if let Some(o) = cfg.as_object_mut() {
        o.remove("comment");
    }
    let bytes = serde_json::to_vec(&cfg)
        .map_err(|e| BuildError::Invalid(format!("cannot encode the image config: {e}")))?;
    let refs: Vec<String> = opts.reference.into_iter().collect();
    Ok(store.add_image(&bytes, &refs, false)?)
}
