//! One step of a stage: variables in scope, the cache key and what the step does (the
//! metadata instructions here; COPY/ADD in `copy_step`, RUN in `run`).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use berth_image::ImageState;
use serde_json::{Value, json};

use super::*;
use crate::copy::{self, Entry, Overrides, Src};
use crate::dockerfile::{Command, Instruction, Kind};
use crate::error::BuildError;
use crate::fsview::{LayerView, components};
use crate::lex;
use crate::mounts::parse_mount;

impl StageRun {
    pub(super) fn err(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.ctx.file.clone(),
            line: ins.line,
            instruction: ins.text.clone(),
            message: message.into(),
        }
    }

    pub(super) fn vars(&self) -> Vec<(String, String)> {
        let mut v = self.args.clone();
        v.extend(env_of(&self.state.config));
        v
    }

    pub(super) fn word(&self, ins: &Instruction, raw: &str) -> Result<String, BuildError> {
        lex::expand_word(raw, self.ctx.df.escape, &self.vars())
            .map_err(|e| self.err(ins, e.to_string()))
    }

    pub(super) fn words(&self, ins: &Instruction, raw: &str) -> Result<Vec<String>, BuildError> {
        lex::expand_words(raw, self.ctx.df.escape, &self.vars())
            .map_err(|e| self.err(ins, e.to_string()))
    }

    pub(super) fn view(&self) -> Result<LayerView, BuildError> {
        Ok(LayerView::new(self.ctx.store.layer_dirs(&self.state.chains)?))
    }

    pub(super) fn shell(&self) -> Vec<String> {
        self.state
            .config
            .pointer("/config/Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(super) fn command(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    pub(super) fn declare_arg(
        &mut self,
        ins: &Instruction,
        name: &str,
        default: Option<&str>,
    ) -> Result<(), BuildError> {
        let ctx = self.ctx.clone();
        let v = if let Some(v) = ctx.build_args.get(name) {
            if let Ok(mut u) = ctx.used_args.lock() {
                u.insert(name.to_string());
            }
            Some(v.clone())
        } else if let Some(d) = default {
            Some(self.word(ins, d)?)
        } else {
            lex::Vars::get(ctx.global.as_slice(), name).map(str::to_string)
        };
        self.args.retain(|(k, _)| k != name);
        if let Some(v) = v {
            self.args.push((name.to_string(), v));
        }
        Ok(())
    }

    pub(super) async fn step(
        &mut self,
        ins: &Instruction,
        i: usize,
        total: usize,
    ) -> Result<(), BuildError> {
        let ctx = self.ctx.clone();
        let n = ctx.step.fetch_add(1, Ordering::Relaxed) + 1;
        ctx.progress.event(Event::Step {
            n,
            stage: format!("[{} {i}/{total}]", self.label),
            text: ins.text.clone(),
        });
        let t0 = Instant::now();
        if let Kind::Arg(pairs) = &ins.kind {
            for (name, default) in pairs {
                self.declare_arg(ins, name, default.as_deref())?;
            }
            ctx.progress.event(Event::Done { n, millis: t0.elapsed().as_millis() });
            return Ok(());
        }
        let (desc, action) = self.plan(ins).await?;
        let key = sha(&format!("{}\n{desc}", self.state.id));
        if let Some(id) = ctx.cache_get(&key) {
            self.state = ctx.store.image_state(&id)?;
            ctx.cached.fetch_add(1, Ordering::Relaxed);
            ctx.progress.event(Event::Cached { n });
            return Ok(());
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let (mut cfg, layer) = match action {
            Action::Meta(cfg) => (cfg, None),
            Action::Copy(entries, cfg, files) => {
                let layer = self.copy_layer(ins, entries).await?;
                drop(files);
                (cfg, Some(layer))
            }
            Action::Run(spec) => {
                let layer = self.run(ins, n, spec).await?;
                (self.state.config.clone(), Some(layer))
            }
        };
        let mut chains = self.state.chains.clone();
        if let Some(l) = &layer {
            let ids = cfg.pointer_mut("/rootfs/diff_ids").and_then(Value::as_array_mut);
            match ids {
                Some(a) => a.push(json!(l.diff_id)),
                None => cfg["rootfs"] = json!({"type": "layers", "diff_ids": [l.diff_id]}),
            }
            chains.push(l.chain_id.clone());
        }
        let mut h = json!({
            "created": created,
            "created_by": history_text(ins, &desc),
            "comment": "buildkit.dockerfile.v0",
        });
        if layer.is_none() {
            h["empty_layer"] = json!(true);
        }
        match cfg.get_mut("history").and_then(Value::as_array_mut) {
            Some(a) => a.push(h),
            None => cfg["history"] = json!([h]),
        }
        cfg["created"] = json!(created);
        let bytes = serde_json::to_vec(&cfg).map_err(|e| self.err(ins, e.to_string()))?;
        let id = ctx.store.add_image(&bytes, &[], true)?;
        ctx.cache_put(&key, &id);
        self.state = ImageState { id, config: cfg, chains };
        ctx.steps.fetch_add(1, Ordering::Relaxed);
        ctx.progress.event(Event::Done { n, millis: t0.elapsed().as_millis() });
        Ok(())
    }

    /// The cache description of an instruction (expanded) and what carrying it out takes.
    pub(super) async fn plan(&mut self, ins: &Instruction) -> Result<(String, Action), BuildError> {
        let mut cfg = self.state.config.clone();
        let kw = ins.text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let meta = |cfg: Value, desc: String| Ok((desc, Action::Meta(cfg)));
        match &ins.kind {
            Kind::Env(pairs) => {
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    kvs.push((self.word(ins, k)?, self.word(ins, v)?));
                }
                let mut env = env_of(&cfg);
                for (k, v) in &kvs {
                    env.retain(|(ek, _)| ek != k);
                    env.push((k.clone(), v.clone()));
                }
                config_obj(&mut cfg)?.insert(
                    "Env".into(),
                    json!(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()),
                );
                let d: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                meta(cfg, format!("ENV {}", d.join(" ")))
            }
            Kind::Label(pairs) => {
                let mut kvs = Vec::new();
                for (k, v) in pairs {
                    kvs.push((self.word(ins, k)?, self.word(ins, v)?));
                }
                let labels = config_obj(&mut cfg)?.entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                if let Some(m) = labels.as_object_mut() {
                    for (k, v) in &kvs {
                        m.insert(k.clone(), json!(v));
                    }
                }
                let d: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                meta(cfg, format!("LABEL {}", d.join(" ")))
            }
            Kind::Workdir(raw) => {
                let w = self.word(ins, raw)?;
                let cur = str_of(&cfg, "WorkingDir");
                let abs = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if cur.is_empty() { "/" } else { &cur })
                };
                let path = format!("/{}", components(&abs).join("/"));
                config_obj(&mut cfg)?.insert("WorkingDir".into(), json!(path));
                let view = self.view()?;
                let desc = format!("WORKDIR {path}");
                if view.stat(&path).is_some() || path == "/" {
                    return meta(cfg, desc);
                }
                // As BuildKit: the directories made belong to the current USER.
                let user = str_of(&cfg, "User");
                let (uid, gid) = if user.is_empty() {
                    (0, 0)
                } else {
                    let passwd = view.read("/etc/passwd");
                    let group = view.read("/etc/group");
                    let u = berth_runtime::container::user::resolve(
                        &user,
                        &[],
                        passwd.as_deref(),
                        group.as_deref(),
                    )
                    .map_err(|e| self.err(ins, format!("USER {user}: {e}")))?;
                    (u.uid, u.gid)
                };
                let o = Overrides { owner: Some((uid, gid)), ..Default::default() };
                let mut entries = Vec::new();
                let comps = view.resolve(&path, true);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                entries.push(Entry {
                    dest: comps,
                    src: Src::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: copy::now(),
                });
                Ok((format!("{desc} owner={uid}:{gid}"), Action::Copy(entries, cfg, None)))
            }
            Kind::User(raw) => {
                let u = self.word(ins, raw)?;
                config_obj(&mut cfg)?.insert("User".into(), json!(u));
                meta(cfg, format!("USER {u}"))
            }
            Kind::StopSignal(raw) => {
                let s = self.word(ins, raw)?;
                config_obj(&mut cfg)?.insert("StopSignal".into(), json!(s));
                meta(cfg, format!("STOPSIGNAL {s}"))
            }
            Kind::Expose(raw) => {
                let mut ports = Vec::new();
                for p in self.words(ins, raw)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = num.split('-').all(|n| n.parse::<u16>().is_ok())
                        && ["tcp", "udp", "sctp"].contains(&proto.as_str());
                    if !ok {
                        return Err(self.err(ins, format!("invalid port {p:?}")));
                    }
                    ports.push(format!("{num}/{proto}"));
                }
                let m = config_obj(&mut cfg)?.entry("ExposedPorts").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                if let Some(m) = m.as_object_mut() {
                    for p in &ports {
                        m.insert(p.clone(), json!({}));
                    }
                }
                meta(cfg, format!("EXPOSE {}", ports.join(" ")))
            }
            Kind::Volume(raw) => {
                let mut vols = Vec::new();
                for v in raw {
                    let v = self.word(ins, v)?;
                    if v.trim().is_empty() {
                        return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                    }
                    vols.push(v);
                }
                let m = config_obj(&mut cfg)?.entry("Volumes").or_insert_with(|| json!({}));
                if !m.is_object() {
                    *m = json!({});
                }
                if let Some(m) = m.as_object_mut() {
                    for v in &vols {
                        m.insert(v.clone(), json!({}));
                    }
                }
                meta(cfg, format!("VOLUME {vols:?}"))
            }
            Kind::Cmd(c) => {
                let argv = self.command(c);
                config_obj(&mut cfg)?.insert("Cmd".into(), json!(argv));
                self.cmd_set = true;
                meta(cfg, format!("CMD {}", json!(argv)))
            }
            Kind::Entrypoint(c) => {
                let argv = self.command(c);
                let o = config_obj(&mut cfg)?;
                o.insert("Entrypoint".into(), json!(argv));
                // docker: an ENTRYPOINT drops the CMD inherited from the base image.
                if !self.cmd_set {
                    o.insert("Cmd".into(), Value::Null);
                }
                meta(cfg, format!("ENTRYPOINT {}", json!(argv)))
            }
            Kind::Shell(v) => {
                config_obj(&mut cfg)?.insert("Shell".into(), json!(v));
                meta(cfg, format!("SHELL {}", json!(v)))
            }
            Kind::Maintainer(m) => {
                cfg["author"] = json!(m);
                meta(cfg, format!("MAINTAINER {m}"))
            }
            Kind::Onbuild(t) => {
                let o = config_obj(&mut cfg)?;
                let list = o.entry("OnBuild").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(t));
                }
                meta(cfg, format!("ONBUILD {t}"))
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let test = match &h.cmd {
                            Some(Command::Exec(v)) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            Some(Command::Shell(s)) => vec!["CMD-SHELL".into(), s.clone()],
                            None => vec!["NONE".into()],
                        };
                        let mut o = json!({"Test": test});
                        for (k, v) in [
                            ("Interval", h.interval),
                            ("Timeout", h.timeout),
                            ("StartPeriod", h.start_period),
                            ("StartInterval", h.start_interval),
                            ("Retries", h.retries),
                        ] {
                            if let Some(v) = v {
                                o[k] = json!(v);
                            }
                        }
                        o
                    }
                };
                let d = format!("HEALTHCHECK {v}");
                config_obj(&mut cfg)?.insert("Healthcheck".into(), v);
                meta(cfg, d)
            }
            Kind::Copy(a) | Kind::Add(a) => {
                let add = matches!(ins.kind, Kind::Add(_));
                let (entries, desc, files) = self.plan_copy(ins, a, add, &kw).await?;
                Ok((desc, Action::Copy(entries, cfg, files)))
            }
            Kind::Run { cmd, mounts, network, security, heredocs } => {
                if security.as_deref().is_some_and(|s| s != "sandbox") {
                    return Err(self.err(ins, "RUN --security=insecure is not supported"));
                }
                let mut script = None;
                let argv = match (cmd, heredocs.as_slice()) {
                    (Command::Shell(s), [h])
                        if s.trim()
                            .trim_start_matches(|c: char| c.is_ascii_digit())
                            .starts_with("<<")
                            && s.split_whitespace().count() == 1 =>
                    {
                        match h.content.strip_prefix("#!") {
                            // As BuildKit: the script runs by its interpreter (one argument
                            // after it, as the kernel passes it).
                            Some(rest) => {
                                let line = rest.lines().next().unwrap_or_default().trim();
                                let mut v: Vec<String> = match line.split_once(char::is_whitespace)
                                {
                                    Some((i, a)) => vec![i.to_string(), a.trim().to_string()],
                                    None => vec![line.to_string()],
                                };
                                if v[0].is_empty() {
                                    return Err(
                                        self.err(ins, "the heredoc's #! line names no interpreter")
                                    );
                                }
                                v.push(SCRIPT_PATH.to_string());
                                script = Some(h.content.clone());
                                v
                            }
                            None => {
                                let mut v = self.shell();
                                v.push(h.content.clone());
                                v
                            }
                        }
                    }
                    (Command::Shell(s), hs) if !hs.is_empty() => {
                        // The shell reads the heredocs itself.
                        let mut text = s.clone();
                        for h in hs {
                            text.push('\n');
                            text.push_str(&h.content);
                            text.push_str(&h.name);
                        }
                        let mut v = self.shell();
                        v.push(text);
                        v
                    }
                    (c, _) => self.command(c),
                };
                let asked = match network {
                    Some(n) => Some(self.word(ins, n)?),
                    None => self.ctx.network.clone(),
                };
                // `default` is the default bridge, as docker's builders have it: a RUN step
                // reaches the outside through NAT but not the host's loopback services.
                let net = match asked.as_deref() {
                    None | Some("default") => "bridge".to_string(),
                    Some("host") => "host".to_string(),
                    Some("none") => "none".to_string(),
                    Some(o) => {
                        return Err(self.err(
                            ins,
                            format!("RUN --network={o}: must be default, none or host"),
                        ));
                    }
                };
                let mut ms = Vec::new();
                for m in mounts {
                    let m = self.word(ins, m)?;
                    ms.push(parse_mount(&m).map_err(|e| self.err(ins, e))?);
                }
                // Build args in scope reach the command's environment (ENV wins).
                let env_keys: BTreeSet<String> =
                    env_of(&self.state.config).into_iter().map(|(k, _)| k).collect();
                let mut env: Vec<String> = self
                    .args
                    .iter()
                    .filter(|(k, _)| !env_keys.contains(k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                for p in PROXY_ARGS {
                    if let Some(v) = self.ctx.build_args.get(*p)
                        && !self.args.iter().any(|(k, _)| k == p)
                    {
                        env.push(format!("{p}={v}"));
                    }
                }
                let desc = format!(
                    "RUN {} env={} network={net} mounts={:?} script={}",
                    json!(argv),
                    json!(env),
                    mounts,
                    json!(script)
                );
                Ok((desc, Action::Run(RunSpec { argv, script, env, network: net, mounts: ms })))
            }
            Kind::Arg(_) => Ok((String::new(), Action::Meta(cfg))),
        }
    }
}
