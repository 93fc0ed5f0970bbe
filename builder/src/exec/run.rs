//! RUN steps: a berth container from the previous step's image, its mounts, its output, and
//! its upper directory as the layer.

use berth_runtime::container::{ContainerCreateConfig, HealthConfig};

use super::*;
use crate::copy::{self, SourceRoot};
use crate::dockerfile::Instruction;
use crate::error::BuildError;
use crate::fsview::{LayerView, components};
use crate::mounts::MountType;

impl StageRun {
    pub(super) async fn run(
        &self,
        ins: &Instruction,
        n: usize,
        spec: RunSpec,
    ) -> Result<berth_image::NewLayer, BuildError> {
        let ctx = self.ctx.clone();
        let view = self.view()?;
        let mut cfg = ContainerCreateConfig::default();
        // As BuildKit, VOLUME has no effect on RUN: what a step writes under a volume path stays
        // in the image. The runtime would mount the image's volumes, so the step runs on the same
        // image without them.
        cfg.config.image = match self.state.config.pointer("/config/Volumes") {
            Some(v) if v.as_object().is_some_and(|m| !m.is_empty()) => {
                let mut c = self.state.config.clone();
                if let Some(o) = c.get_mut("config").and_then(serde_json::Value::as_object_mut) {
                    o.remove("Volumes");
                }
                let bytes = serde_json::to_vec(&c).map_err(|e| self.err(ins, e.to_string()))?;
                ctx.store.add_image(&bytes, &[], true)?
            }
            _ => self.state.id.clone(),
        };
        cfg.config.cmd = Some(spec.argv.clone());
        cfg.config.entrypoint = Some(Vec::new());
        cfg.config.env = spec.env.clone();
        cfg.config.healthcheck =
            Some(HealthConfig { test: vec!["NONE".into()], ..Default::default() });
        cfg.host_config.network_mode = spec.network.clone();
        cfg.host_config.extra_hosts = ctx.extra_hosts.clone();
        cfg.host_config.shm_size = ctx.shm_size;
        if let Some(s) = &ctx.session {
            cfg.config.labels.insert(SESSION_LABEL.into(), s.clone());
        }
        let mut targets = Vec::new();
        let mut keep = Vec::new();
        if let Some(text) = &spec.script {
            let tmp = ctx.tmp("script")?;
            let p = tmp.path().join("script");
            std::fs::write(&p, text)
                .map_err(|e| BuildError::Read { path: p.clone(), source: e })?;
            let _ = copy::set_mode(&p, 0o755);
            cfg.host_config.binds.push(format!("{}:{SCRIPT_PATH}:ro", p.display()));
            targets.push(SCRIPT_PATH.to_string());
            keep.push(tmp);
        }
        let mut ssh_n = 0;
        for m in &spec.mounts {
            let target = m.target.clone().unwrap_or_else(|| match m.typ {
                MountType::Secret => format!("/run/secrets/{}", m.id.clone().unwrap_or_default()),
                MountType::Ssh => {
                    ssh_n += 1;
                    format!("/run/buildkit/ssh_agent.{}", ssh_n - 1)
                }
                _ => String::new(),
            });
            let target = if target.starts_with('/') {
                target
            } else {
                format!("{}/{target}", str_of(&self.state.config, "WorkingDir"))
            };
            match m.typ {
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = ctx.dir.join("cache-mounts").join(sha(&id));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir)
                            .map_err(|e| BuildError::Read { path: dir.clone(), source: e })?;
                        let _ = copy::set_mode(&dir, m.mode.unwrap_or(0o755));
                        let _ = std::os::unix::fs::chown(
                            &dir,
                            Some(m.uid.unwrap_or(0)),
                            Some(m.gid.unwrap_or(0)),
                        );
                    }
                    let ro = if m.readonly == Some(true) { "ro" } else { "rw" };
                    cfg.host_config.binds.push(format!("{}:{target}:{ro}", dir.display()));
                }
                MountType::Tmpfs => {
                    let opts = m.size.map(|s| format!("size={s}")).unwrap_or_default();
                    cfg.host_config.tmpfs.insert(target.clone(), opts);
                }
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    match ctx.secrets.get(&id) {
                        Some(p) => cfg.host_config.binds.push(format!("{}:{target}:ro", p.display())),
                        None if m.required => return Err(self.err(ins, format!("secret {id} is required but was not given (--secret id={id},src=PATH)"))),
                        None => continue,
                    }
                }
                MountType::Bind => {
                    // Read-only unless `rw`; an `rw` mount's writes go to a copy and are lost.
                    let mode = if m.readonly == Some(false) { "rw" } else { "ro" };
                    let src = m.source.clone().unwrap_or_default();
                    // A directory (the context, a named directory context) is copied for the
                    // step; a stage or image is read through its layers.
                    enum Source<'a> {
                        Dir(SourceRoot<'a>),
                        Layers(&'a str),
                    }
                    let from = match &m.from {
                        None => {
                            Source::Dir(SourceRoot { dir: &ctx.context, ignore: Some(&ctx.ignore) })
                        }
                        Some(f) => match ctx.named.get(f) {
                            Some(NamedContext::Dir(dir)) => {
                                Source::Dir(SourceRoot { dir, ignore: None })
                            }
                            _ => Source::Layers(f),
                        },
                    };
                    match from {
                        Source::Dir(root) => {
                            let tmp = ctx.tmp("mnt")?;
                            let what = copy::materialize(&root, &src, tmp.path())
                                .map_err(|e| self.err(ins, format!("--mount source {e}")))?;
                            cfg.host_config
                                .binds
                                .push(format!("{}:{target}:{mode}", what.display()));
                            keep.push(tmp);
                        }
                        Source::Layers(f) => {
                            let id = match (ctx.named.get(f), ctx.stage_index(f, self.j)) {
                                (Some(NamedContext::Image(r)), _) => ctx.image(r).await?.id,
                                (_, Some(k)) => stage_result(ctx.clone(), k).await?,
                                _ => ctx.image(f).await?.id,
                            };
                            let tmp = ctx.tmp("mnt")?;
                            if !ctx.store.copy_path_from_image(
                                &id,
                                &format!("/{}", components(&src).join("/")),
                                tmp.path(),
                            )? {
                                return Err(self.err(
                                    ins,
                                    format!("--mount source {src}: not a directory in {f}"),
                                ));
                            }
                            cfg.host_config
                                .binds
                                .push(format!("{}:{target}:{mode}", tmp.path().display()));
                            keep.push(tmp);
                        }
                    }
                }
                MountType::Ssh => {
                    // The agent socket given with `--ssh ID=SOCKET` (`default`: $SSH_AUTH_SOCK),
                    // and SSH_AUTH_SOCK pointing at it, as BuildKit.
                    let id = m.id.clone().unwrap_or_else(|| "default".into());
                    match ctx.ssh.get(&id) {
                        Some(sock) => {
                            cfg.host_config.binds.push(format!("{}:{target}", sock.display()));
                            cfg.config.env.retain(|e| !e.starts_with("SSH_AUTH_SOCK="));
                            cfg.config.env.push(format!("SSH_AUTH_SOCK={target}"));
                        }
                        None if m.required => {
                            return Err(self.err(
                                ins,
                                format!("ssh agent {id} is required but was not given (--ssh {id}=SOCKET)"),
                            ));
                        }
                        None => continue,
                    }
                }
            }
            targets.push(target);
        }
        let id = ctx
            .engine
            .container_create(None, cfg)
            .await
            .map_err(|e| self.err(ins, e.to_string()))?;
        let result = self.run_in(ins, n, &id, &view, &targets, &spec.argv).await;
        let removed = ctx.engine.container_remove(&id, true, true).await;
        drop(keep);
        let layer = result?;
        removed.map_err(|e| self.err(ins, format!("cannot remove the build container: {e}")))?;
        Ok(layer)
    }

    pub(super) async fn run_in(
        &self,
        ins: &Instruction,
        n: usize,
        id: &str,
        view: &LayerView,
        targets: &[String],
        argv: &[String],
    ) -> Result<berth_image::NewLayer, BuildError> {
        let ctx = self.ctx.clone();
        let mut att = ctx
            .engine
            .container_start_attached(id)
            .await
            .map_err(|e| self.err(ins, e.to_string()))?;
        let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        while let Some(e) = att.output.recv().await {
            for line in e.text.lines() {
                ctx.progress.event(Event::Output { n, line: line.to_string() });
                last.push_back(line.to_string());
                if last.len() > 10 {
                    last.pop_front();
                }
            }
        }
        let code = ctx.engine.container_wait(id).await.map_err(|e| self.err(ins, e.to_string()))?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                file: ctx.file.clone(),
                line: ins.line,
                instruction: ins.text.clone(),
                code,
                command: argv.to_vec(),
                output: last.into_iter().collect(),
            });
        }
        let upper =
            berth_runtime::container::record::ContainerPaths::new(ctx.engine.root(), id).upper();
        // Mount points made for RUN mounts are not part of the result.
        for t in targets {
            let comps = components(t);
            for k in (1..=comps.len()).rev() {
                if view.lookup(&comps[..k]).is_some() {
                    break;
                }
                let p = comps[..k].iter().fold(upper.clone(), |p, c| p.join(c));
                let empty = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => {
                        std::fs::read_dir(&p).map(|mut d| d.next().is_none()).unwrap_or(false)
                    }
                    Ok(m) => m.len() == 0,
                    Err(_) => false,
                };
                if !empty {
                    break;
                }
                let _ = if p.is_dir() { std::fs::remove_dir(&p) } else { std::fs::remove_file(&p) };
            }
        }
        self.add_layer_written_by(ins, move |w| {
            berth_image::write_upper_tar(&upper, w)
                .map(drop)
                .map_err(|e| format!("cannot read the changes of the step: {e}"))
        })
        .await
    }
}
