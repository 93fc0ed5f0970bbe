//! COPY and ADD steps: sources from the context, a named context, a stage or an image, heredocs
//! and URLs, planned by `crate::copy` and written as a layer.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::*;
use crate::copy::{self, CopyError, Entry, Overrides, SourceRoot, Src};
use crate::dockerfile::{CopyArgs, Instruction};
use crate::error::BuildError;
use crate::fsview::{LayerView, components};
use crate::lex;

impl StageRun {
    pub(super) async fn plan_copy(
        &mut self,
        ins: &Instruction,
        a: &CopyArgs,
        add: bool,
        kw: &str,
    ) -> Result<(Vec<Entry>, String, Option<tempfile::TempDir>), BuildError> {
        let mut sources = Vec::new();
        for s in &a.sources {
            sources.push(self.word(ins, s)?);
        }
        let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
        if add && sources.iter().any(|s| s.starts_with("git@") || s.ends_with(".git") && is_url(s))
        {
            return Err(self.err(ins, "ADD of a git repository is not supported yet"));
        }
        if a.checksum.is_some() && !(add && sources.iter().all(|s| is_url(s))) {
            return Err(self.err(ins, "--checksum can't be specified for non-HTTP(S) sources"));
        }
        let dest = self.word(ins, &a.dest)?;
        let view = self.view()?;
        let owner = match &a.chown {
            None => None,
            Some(c) => {
                let c = self.word(ins, c)?;
                let passwd = view.read("/etc/passwd");
                let group = view.read("/etc/group");
                let u = berth_runtime::container::user::resolve(
                    &c,
                    &[],
                    passwd.as_deref(),
                    group.as_deref(),
                )
                .map_err(|e| self.err(ins, format!("--chown={c}: {e}")))?;
                Some((u.uid, u.gid))
            }
        };
        let mode = match &a.chmod {
            None => None,
            Some(m) => {
                let m = self.word(ins, m)?;
                Some(
                    copy::parse_chmod(&m)
                        .ok_or_else(|| self.err(ins, format!("--chmod={m}: not an octal mode")))?,
                )
            }
        };
        let exclude = if a.excludes.is_empty() {
            None
        } else {
            let mut pats = Vec::new();
            for x in &a.excludes {
                pats.push(self.word(ins, x)?);
            }
            Some(
                crate::ignore::Ignore::parse("--exclude", &pats.join("\n"))
                    .map_err(|e| self.err(ins, e.to_string()))?,
            )
        };
        let o = Overrides { owner, mode, exclude, parents: a.parents };
        let workdir = match str_of(&self.state.config, "WorkingDir") {
            w if w.is_empty() => "/".to_string(),
            w => w,
        };
        let cerr = |e: CopyError| self.err(ins, e.to_string());
        let mut from_desc = String::from("context");
        let mut entries = Vec::new();
        if !a.heredocs.is_empty() {
            // Heredoc sources become files named by their delimiter.
            let dest_abs =
                if dest.starts_with('/') { dest.clone() } else { format!("{workdir}/{dest}") };
            let dir_dest = dest.ends_with('/') || a.heredocs.len() > 1;
            let vars = self.vars();
            for h in &a.heredocs {
                let content = if h.expand {
                    lex::expand_heredoc(&h.content, self.ctx.df.escape, &vars)
                        .map_err(|e| self.err(ins, e.to_string()))?
                } else {
                    h.content.clone()
                };
                let path =
                    if dir_dest { format!("{dest_abs}/{}", h.name) } else { dest_abs.clone() };
                let comps = view.resolve(&path, false);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                entries.push(Entry {
                    dest: comps,
                    src: Src::Data(content.into_bytes()),
                    mode: o.mode.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: copy::now(),
                });
            }
        }
        // ADD of URLs: downloaded (every build: the content decides the cache), mode 0600.
        let urls: Vec<&String> =
            if add { sources.iter().filter(|s| is_url(s)).collect() } else { Vec::new() };
        if !urls.is_empty() {
            if sources.len() > 1 && !dest.ends_with('/') {
                return Err(cerr(CopyError::NeedsDirDest(kw.to_string())));
            }
            let dest_abs =
                if dest.starts_with('/') { dest.clone() } else { format!("{workdir}/{dest}") };
            for u in &urls {
                let d = crate::fetch::get(u).await.map_err(|e| self.err(ins, e))?;
                if let Some(want) = &a.checksum {
                    let want = self.word(ins, want)?;
                    let Some(hex_want) = want.strip_prefix("sha256:") else {
                        return Err(self.err(
                            ins,
                            format!("--checksum={want}: only sha256:<hex> is supported"),
                        ));
                    };
                    let got = hex::encode(Sha256::digest(&d.body));
                    if got != hex_want.to_ascii_lowercase() {
                        return Err(self.err(
                            ins,
                            format!("{u}: the content has checksum sha256:{got}, not {want}"),
                        ));
                    }
                }
                let path = if dest.ends_with('/') {
                    let Some(name) = &d.name else {
                        return Err(self.err(ins, format!("{u}: cannot determine a file name from the URL; give a file destination")));
                    };
                    format!("{dest_abs}/{name}")
                } else {
                    dest_abs.clone()
                };
                let comps = view.resolve(&path, false);
                copy::parent_entries(&view, &comps, &o, &mut entries);
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                entries.push(Entry {
                    dest: comps,
                    src: Src::Data(d.body),
                    mode: o.mode.unwrap_or(0o600),
                    uid,
                    gid,
                    mtime: d.mtime.unwrap_or_else(copy::now),
                });
            }
        }
        let files: Vec<String> = sources
            .iter()
            .filter(|s| !(a.heredocs.iter().any(|h| &h.name == *s) || (add && is_url(s))))
            .cloned()
            .collect();
        if !files.is_empty() {
            match &a.from {
                None => {
                    let root =
                        SourceRoot { dir: &self.ctx.context, ignore: Some(&self.ctx.ignore) };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw)
                            .map_err(cerr)?,
                    );
                }
                Some(f)
                    if matches!(
                        self.ctx.named.get(&self.word(ins, f)?),
                        Some(NamedContext::Dir(_))
                    ) =>
                {
                    let f = self.word(ins, f)?;
                    let Some(NamedContext::Dir(dir)) = self.ctx.named.get(&f) else {
                        return Err(self.err(ins, format!("--from={f}: not a directory context")));
                    };
                    from_desc = format!("--from={f}");
                    let root = SourceRoot { dir, ignore: None };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw).map_err(
                            |e| match e {
                                CopyError::NotFound(p) => {
                                    self.err(ins, format!("{p}: not found in the context {f}"))
                                }
                                e => self.err(ins, e.to_string()),
                            },
                        )?,
                    );
                }
                Some(f) => {
                    let f = self.word(ins, f)?;
                    let image_ref = match self.ctx.named.get(&f) {
                        Some(NamedContext::Image(r)) => Some(r.clone()),
                        _ => None,
                    };
                    let id = match (image_ref, self.ctx.stage_index(&f, self.j)) {
                        (Some(r), _) => {
                            self.ctx
                                .image(&r)
                                .await
                                .map_err(|e| self.err(ins, format!("--from={f}: {e}")))?
                                .id
                        }
                        (None, Some(k)) => stage_result(self.ctx.clone(), k).await?,
                        (None, None) => {
                            self.ctx
                                .image(&f)
                                .await
                                .map_err(|e| self.err(ins, format!("--from={f}: {e}")))?
                                .id
                        }
                    };
                    // The content digest below covers what is copied: another build of the
                    // source stage with the same files still hits the cache (as BuildKit).
                    from_desc = format!("--from={f}");
                    // The source image's files, materialised (only the directories named).
                    let tmp = self.ctx.tmp("from")?;
                    let mut dirs = BTreeSet::new();
                    for s in &files {
                        let comps = components(s);
                        let upto = comps
                            .iter()
                            .position(|c| c.contains(['*', '?', '[']))
                            .unwrap_or(comps.len());
                        dirs.insert(comps[..upto].join("/"));
                    }
                    let src_view = LayerView::new(
                        self.ctx.store.layer_dirs(&self.ctx.store.image_state(&id)?.chains)?,
                    );
                    for d in &dirs {
                        let comps = components(d);
                        let target = comps.iter().fold(tmp.path().to_path_buf(), |p, c| p.join(c));
                        match src_view.stat(d) {
                            Some(m) if m.is_dir() => {
                                std::fs::create_dir_all(&target).map_err(|e| BuildError::Read {
                                    path: target.clone(),
                                    source: e,
                                })?;
                                self.ctx.store.copy_path_from_image(
                                    &id,
                                    &format!("/{d}"),
                                    &target,
                                )?;
                            }
                            Some(_) => {
                                // One file (a symlink's target, under the source's name):
                                // copied alone, not its whole directory.
                                let resolved = src_view.resolve(d, true);
                                let Some((_, host)) = src_view.lookup(&resolved) else {
                                    return Err(self.err(ins, format!("{d}: not found in {f}")));
                                };
                                if let Some(parent) = target.parent() {
                                    std::fs::create_dir_all(parent).map_err(|e| {
                                        BuildError::Read { path: parent.to_path_buf(), source: e }
                                    })?;
                                }
                                std::fs::copy(&host, &target).map_err(|e| BuildError::Read {
                                    path: host.clone(),
                                    source: e,
                                })?;
                                // The source's mtime, as COPY keeps it.
                                if let Ok(t) = std::fs::metadata(&host).and_then(|m| m.modified())
                                    && let Ok(f) =
                                        std::fs::File::options().write(true).open(&target)
                                {
                                    let _ = f.set_modified(t);
                                }
                            }
                            None => return Err(self.err(ins, format!("{d}: not found in {f}"))),
                        }
                    }
                    let root = SourceRoot { dir: tmp.path(), ignore: None };
                    entries.extend(
                        copy::plan(&root, &files, &dest, &workdir, &view, &o, add, kw).map_err(
                            |e| match e {
                                CopyError::NotFound(p) => {
                                    self.err(ins, format!("{p}: not found in {f}"))
                                }
                                e => self.err(ins, e.to_string()),
                            },
                        )?,
                    );
                    let digest =
                        copy::digest(&entries).map_err(|e| self.err(ins, e.to_string()))?;
                    // The entries read the materialised files: they stay until the layer is
                    // written (a cache hit drops them at once).
                    let desc = format!("{kw} from={from_desc} {sources:?} {dest} digest={digest}");
                    return Ok((entries, desc, Some(tmp)));
                }
            }
        }
        let digest = copy::digest(&entries).map_err(|e| self.err(ins, e.to_string()))?;
        let desc = format!(
            "{kw} from={from_desc} {sources:?} {dest} chown={owner:?} chmod={mode:?} digest={digest}"
        );
        Ok((entries, desc, None))
    }

    pub(super) async fn copy_layer(
        &self,
        ins: &Instruction,
        entries: Vec<Entry>,
    ) -> Result<berth_image::NewLayer, BuildError> {
        self.add_layer_written_by(ins, move |w| {
            copy::write_tar(&entries, w).map(drop).map_err(|e| e.to_string())
        })
        .await
    }

    /// Writes the step's layer tar with `write` into a scratch file, then adds it on top of
    /// the stage's chain in the store (both on a blocking thread).
    pub(super) async fn add_layer_written_by<W>(
        &self,
        ins: &Instruction,
        write: W,
    ) -> Result<berth_image::NewLayer, BuildError>
    where
        W: FnOnce(std::io::BufWriter<std::fs::File>) -> Result<(), String> + Send + 'static,
    {
        let tmp = self.ctx.tmp("layer")?;
        let path = tmp.path().join("layer.tar");
        let store = self.ctx.store.clone();
        let parent = self.state.chains.last().cloned();
        let r = tokio::task::spawn_blocking(move || -> Result<berth_image::NewLayer, String> {
            let f = std::fs::File::create(&path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            write(std::io::BufWriter::new(f))?;
            let f = std::fs::File::open(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            store
                .add_layer(parent.as_deref(), std::io::BufReader::new(f))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
        drop(tmp);
        r.map_err(|m| self.err(ins, m))
    }
}
