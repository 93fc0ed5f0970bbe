//! COPY and ADD: what goes where (docker's directory and trailing-slash rules, globs,
//! `.dockerignore`, `--chown`/`--chmod`), the content digest of that plan (the cache key's
//! input: contents and modes, never mtimes) and the layer tar written from it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsview::{LayerView, components};
use crate::ignore::{Ignore, glob_match};

/// What one entry of the new layer holds.
#[derive(Debug, Clone)]
pub enum Src {
    /// A directory.
    Dir,
    /// A regular file's content, read from this host path.
    File(PathBuf),
    /// A symlink to this target.
    Symlink(String),
    /// Literal content (a heredoc).
    Data(Vec<u8>),
    /// A tar archive (plain or gzip) extracted here (ADD).
    Archive(PathBuf),
}

/// One entry of the new layer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path components from the image root.
    pub dest: Vec<String>,
    /// What it is.
    pub src: Src,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds).
    pub mtime: i64,
}

/// Why a COPY source can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// Not in the context (or the stage/image).
    #[error("{0}: not found in the build context")]
    NotFound(String),
    /// In the context, but excluded by `.dockerignore`.
    #[error("{0}: excluded by .dockerignore")]
    Excluded(String),
    /// Names something outside the context.
    #[error("{0}: outside the build context")]
    Outside(String),
    /// More than one source needs a directory destination.
    #[error(
        "when using {0} with more than one source file, the destination must be a directory and end with a /"
    )]
    NeedsDirDest(String),
    /// Any other problem.
    #[error("{0}")]
    Other(String),
}

/// Ownership and mode overrides of a COPY, and its `--exclude` and `--parents`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--chown` resolved.
    pub owner: Option<(u32, u32)>,
    /// `--chmod` parsed.
    pub mode: Option<u32>,
    /// `--exclude` patterns, matched (with `.dockerignore` rules) against paths relative to
    /// each copied source directory, or against a copied file's name.
    pub exclude: Option<Ignore>,
    /// `--parents`: sources keep their path (after a `/./` pivot, if any) under the destination.
    pub parents: bool,
}

/// Where sources are read from: the context (with its ignore rules) or a materialised
/// directory of a stage or image.
pub struct SourceRoot<'a> {
    /// The directory.
    pub dir: &'a Path,
    /// `.dockerignore` (only for the context).
    pub ignore: Option<&'a Ignore>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Resolves symlinks of `comps` inside `root` (as if `root` were `/`); never leaves it.
fn resolve_scoped(root: &Path, comps: &[String], follow_last: bool) -> Vec<String> {
    crate::fsview::resolve_links(comps.to_vec(), follow_last, |done| {
        let p = done.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        fs::read_link(&p).ok().map(|t| t.to_string_lossy().into_owned())
    })
}

/// Every path under `root` (relative, slash-separated), skipping what `ignore` excludes.
fn walk_all(
    root: &Path,
    rel: &str,
    ignore: Option<&Ignore>,
    out: &mut Vec<String>,
) -> io::Result<()> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() { n } else { format!("{rel}/{n}") };
        let excluded = ignore.is_some_and(|i| i.excluded(&r));
        if !excluded {
            out.push(r.clone());
        }
        let is_dir = fs::symlink_metadata(root.join(&r)).is_ok_and(|m| m.is_dir());
        if is_dir && (!excluded || ignore.is_some_and(Ignore::has_exclusions)) {
            walk_all(root, &r, ignore, out)?;
        }
    }
    Ok(())
}

/// The sources a COPY names, each as (path relative to the root, host path).
pub fn find_sources(root: &SourceRoot<'_>, src: &str) -> Result<Vec<(String, PathBuf)>, CopyError> {
    let comps = components(src);
    let rel_raw: Vec<&str> = src.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut depth: i64 = 0;
    for c in &rel_raw {
        depth += if *c == ".." { -1 } else { 1 };
        if depth < 0 {
            return Err(CopyError::Outside(src.into()));
        }
    }
    let rel = comps.join("/");
    if has_glob(&rel) {
        let mut all = Vec::new();
        walk_all(root.dir, "", root.ignore, &mut all)
            .map_err(|e| CopyError::Other(format!("cannot read {}: {e}", root.dir.display())))?;
        let found: Vec<(String, PathBuf)> = all
            .into_iter()
            .filter(|p| glob_match(&rel, p))
            .map(|p| {
                let host = root.dir.join(&p);
                (p, host)
            })
            .collect();
        if found.is_empty() {
            return Err(CopyError::NotFound(src.into()));
        }
        return Ok(found);
    }
    let resolved = resolve_scoped(root.dir, &comps, true);
    let host = resolved.iter().fold(root.dir.to_path_buf(), |p, c| p.join(c));
    if fs::symlink_metadata(&host).is_err() {
        return Err(CopyError::NotFound(src.into()));
    }
    if !rel.is_empty()
        && root.ignore.is_some_and(|i| i.excluded(&rel) || i.excluded(&resolved.join("/")))
    {
        return Err(CopyError::Excluded(src.into()));
    }
    Ok(vec![(resolved.join("/"), host)])
}

fn meta_of(md: &fs::Metadata, o: &Overrides) -> (u32, u32, u32, i64) {
    let (uid, gid) = o.owner.unwrap_or((0, 0));
    let mode = o.mode.unwrap_or(md.mode() & 0o7777);
    (mode, uid, gid, md.mtime())
}

/// Adds a source tree (a file, a symlink or a directory's content) at `dest`.
#[allow(clippy::too_many_arguments)]
fn add_tree(
    root: &SourceRoot<'_>,
    rel: &str,
    sub: &str,
    host: &Path,
    dest: &[String],
    o: &Overrides,
    out: &mut Vec<Entry>,
) -> Result<(), CopyError> {
    let io_err = |e: io::Error| CopyError::Other(format!("cannot read {}: {e}", host.display()));
    let md = fs::symlink_metadata(host).map_err(io_err)?;
    let (mode, uid, gid, mtime) = meta_of(&md, o);
    let ft = md.file_type();
    if ft.is_symlink() {
        let t = fs::read_link(host).map_err(io_err)?.to_string_lossy().into_owned();
        out.push(Entry { dest: dest.to_vec(), src: Src::Symlink(t), mode: 0o777, uid, gid, mtime });
    } else if ft.is_file() {
        out.push(Entry {
            dest: dest.to_vec(),
            src: Src::File(host.to_path_buf()),
            mode,
            uid,
            gid,
            mtime,
        });
    } else if ft.is_dir() {
        out.push(Entry { dest: dest.to_vec(), src: Src::Dir, mode, uid, gid, mtime });
        let mut names: Vec<String> = fs::read_dir(host)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
            let sub = if sub.is_empty() { n.clone() } else { format!("{sub}/{n}") };
            let child = host.join(&n);
            if o.exclude.as_ref().is_some_and(|x| x.excluded(&sub)) {
                continue;
            }
            if root.ignore.is_some_and(|i| i.excluded(&r)) {
                // Still walk an excluded directory when a `!` line may bring something back.
                let is_dir = fs::symlink_metadata(&child).is_ok_and(|m| m.is_dir());
                if !(is_dir && root.ignore.is_some_and(Ignore::has_exclusions)) {
                    continue;
                }
                let mut inner = Vec::new();
                let mut d = dest.to_vec();
                d.push(n.clone());
                add_tree(root, &r, &sub, &child, &d, o, &mut inner)?;
                // Keep the directory only when something in it is included.
                if inner.iter().any(|e| !matches!(e.src, Src::Dir)) {
                    out.extend(inner);
                }
                continue;
            }
            let mut d = dest.to_vec();
            d.push(n);
            add_tree(root, &r, &sub, &child, &d, o, out)?;
        }
    }
    // Sockets, fifos and devices of a context are not copied (docker skips them too).
    Ok(())
}

/// Parent directories of `dest` (not the root): as the image has them, else new ones.
pub fn parent_entries(view: &LayerView, dest: &[String], o: &Overrides, out: &mut Vec<Entry>) {
    for i in 1..dest.len() {
        let comps = &dest[..i];
        match view.lookup(comps) {
            Some((md, _)) if md.is_dir() => out.push(Entry {
                dest: comps.to_vec(),
                src: Src::Dir,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
            }),
            Some(_) => {}
            None => {
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                out.push(Entry {
                    dest: comps.to_vec(),
                    src: Src::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: now(),
                });
            }
        }
    }
}

/// Now in seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Whether a file is a tar archive ADD extracts (plain tar or gzip; None: not an archive;
/// Err: a compression berth can't read yet).
pub fn archive_kind(path: &Path) -> Result<bool, CopyError> {
    let mut f = fs::File::open(path)
        .map_err(|e| CopyError::Other(format!("cannot read {}: {e}", path.display())))?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(CopyError::Other(format!("cannot read {}: {e}", path.display()))),
        }
    }
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b]) {
        return Ok(true);
    }
    if n >= 262 && &h[257..262] == b"ustar" {
        return Ok(true);
    }
    if h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
    {
        return Err(CopyError::Other(format!(
            "{}: ADD can extract plain and gzip tar archives; bzip2, xz and zstd are not supported yet",
            path.display()
        )));
    }
    Ok(false)
}

/// Plans the entries of one COPY/ADD from one source root.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    root: &SourceRoot<'_>,
    sources: &[String],
    dest: &str,
    workdir: &str,
    view: &LayerView,
    o: &Overrides,
    add: bool,
    what: &str,
) -> Result<Vec<Entry>, CopyError> {
    let dest_abs =
        if dest.starts_with('/') { dest.to_string() } else { format!("{workdir}/{dest}") };
    let ends_slash = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    // Each match with the part of its path `--parents` keeps (after a `/./` pivot).
    let mut found: Vec<(String, PathBuf, Vec<String>)> = Vec::new();
    for s in sources {
        let strip = match s.rfind("/./") {
            Some(i) if o.parents => components(&s[..i]).len(),
            _ => 0,
        };
        for (rel, host) in find_sources(root, s)? {
            let kept: Vec<String> = components(&rel).into_iter().skip(strip).collect();
            found.push((rel, host, kept));
        }
    }
    // A match excluded by its name is not copied at all.
    if let Some(x) = &o.exclude {
        found.retain(|(rel, _, _)| !x.excluded(rel.rsplit('/').next().unwrap_or(rel)));
    }
    let image_dir = view.stat(&dest_abs).is_some_and(|m| m.is_dir());
    if found.len() > 1 && !ends_slash && !image_dir && !o.parents {
        return Err(CopyError::NeedsDirDest(what.into()));
    }
    let dest_dir = ends_slash || found.len() > 1 || image_dir || o.parents;
    let base_comps = view.resolve(&dest_abs, dest_dir);
    let mut out = Vec::new();
    for (rel, host, kept) in found {
        // With --parents the source's own path goes under the destination.
        let dest_comps = if o.parents {
            let mut d = base_comps.clone();
            if host.is_dir() {
                d.extend(kept.iter().cloned());
            } else {
                d.extend(kept.iter().take(kept.len().saturating_sub(1)).cloned());
            }
            d
        } else {
            base_comps.clone()
        };
        let md = fs::metadata(&host)
            .map_err(|e| CopyError::Other(format!("cannot read {}: {e}", host.display())))?;
        if md.is_dir() {
            parent_entries(view, &dest_comps, o, &mut out);
            let mut inner = Vec::new();
            add_tree(root, &rel, "", &host, &dest_comps, o, &mut inner)?;
            // The destination directory itself keeps the image's metadata when it exists.
            if let (Some(first), Some((imd, _))) = (inner.first_mut(), view.lookup(&dest_comps))
                && imd.is_dir()
                && first.dest == dest_comps
            {
                first.mode = imd.mode() & 0o7777;
                first.uid = o.owner.map(|(u, _)| u).unwrap_or(imd.uid());
                first.gid = o.owner.map(|(_, g)| g).unwrap_or(imd.gid());
            }
            out.extend(inner);
            continue;
        }
        if add && archive_kind(&host)? {
            parent_entries(view, &dest_comps, o, &mut out);
            if view.lookup(&dest_comps).is_none() && !dest_comps.is_empty() {
                let (uid, gid) = o.owner.unwrap_or((0, 0));
                out.push(Entry {
                    dest: dest_comps.clone(),
                    src: Src::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                    mtime: now(),
                });
            }
            out.push(Entry {
                dest: dest_comps.clone(),
                src: Src::Archive(host),
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
            });
            continue;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        let mut d = dest_comps.clone();
        if dest_dir {
            d.push(name);
        }
        if d.is_empty() {
            return Err(CopyError::Other(format!("{what}: cannot copy a file onto /")));
        }
        parent_entries(view, &d, o, &mut out);
        let fmd = fs::symlink_metadata(&host)
            .map_err(|e| CopyError::Other(format!("cannot read {}: {e}", host.display())))?;
        let (mode, uid, gid, mtime) = meta_of(&fmd, o);
        out.push(Entry { dest: d, src: Src::File(host), mode, uid, gid, mtime });
    }
    Ok(out)
}

/// The digest of a plan: paths, kinds, modes, owners and contents (not times).
pub fn digest(entries: &[Entry]) -> io::Result<String> {
    let mut h = Sha256::new();
    for e in entries {
        h.update(e.dest.join("/").as_bytes());
        h.update(format!("\0{:o}\0{}\0{}\0", e.mode, e.uid, e.gid).as_bytes());
        match &e.src {
            Src::Dir => h.update(b"d"),
            Src::Symlink(t) => {
                h.update(b"l");
                h.update(t.as_bytes());
            }
            Src::Data(d) => {
                h.update(b"f");
                h.update(d);
            }
            Src::File(p) | Src::Archive(p) => {
                h.update(b"f");
                let mut f = fs::File::open(p)?;
                io::copy(&mut f, &mut h)?;
            }
        }
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

fn header(e: &Entry, typ: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(typ);
    h.set_mode(e.mode);
    h.set_uid(e.uid as u64);
    h.set_gid(e.gid as u64);
    h.set_mtime(e.mtime.max(0) as u64);
    h.set_size(size);
    h
}

/// Writes the plan as a layer tar. Later entries for the same path win (as in a tar stream).
pub fn write_tar<W: Write>(entries: &[Entry], out: W) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    for e in entries {
        let path = e.dest.join("/");
        match &e.src {
            Src::Dir => {
                let mut h = header(e, tar::EntryType::Directory, 0);
                b.append_data(&mut h, format!("{path}/"), io::empty())?;
            }
            Src::File(p) => {
                let f = fs::File::open(p)?;
                let len = f.metadata()?.len();
                let mut h = header(e, tar::EntryType::Regular, len);
                b.append_data(&mut h, &path, f.take(len))?;
            }
            Src::Data(d) => {
                let mut h = header(e, tar::EntryType::Regular, d.len() as u64);
                b.append_data(&mut h, &path, d.as_slice())?;
            }
            Src::Symlink(t) => {
                let mut h = header(e, tar::EntryType::Symlink, 0);
                b.append_link(&mut h, &path, t)?;
            }
            Src::Archive(p) => extract_into(&mut b, p, &e.dest)?,
        }
    }
    b.into_inner()
}

/// Copies the entries of a (plain or gzip) tar under `dest` into the layer being written.
fn extract_into<W: Write>(
    b: &mut tar::Builder<W>,
    archive: &Path,
    dest: &[String],
) -> io::Result<()> {
    let f = fs::File::open(archive)?;
    let mut buf = io::BufReader::new(f);
    let gz = {
        use io::BufRead;
        buf.fill_buf()?.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> =
        if gz { Box::new(flate2::read::GzDecoder::new(buf)) } else { Box::new(buf) };
    let mut ar = tar::Archive::new(reader);
    let prefix = dest.join("/");
    let join = |p: &str| -> String {
        let c = components(p).join("/");
        match (prefix.is_empty(), c.is_empty()) {
            (true, _) => c,
            (false, true) => prefix.clone(),
            (false, false) => format!("{prefix}/{c}"),
        }
    };
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = join(&raw);
        if path.is_empty() {
            continue;
        }
        let mut h = entry.header().clone();
        let typ = h.entry_type();
        if typ.is_dir() {
            b.append_data(&mut h, format!("{path}/"), io::empty())?;
        } else if typ.is_symlink() {
            let target =
                entry.link_name()?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            b.append_link(&mut h, &path, target)?;
        } else if typ.is_hard_link() {
            let target =
                entry.link_name()?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            b.append_link(&mut h, &path, join(&target))?;
        } else if typ.is_file() || matches!(typ, tar::EntryType::Continuous) {
            let size = entry.size();
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, &path, (&mut entry).take(size))?;
        } else if typ.is_pax_global_extensions()
            || typ.is_pax_local_extensions()
            || typ.is_gnu_longname()
            || typ.is_gnu_longlink()
        {
            continue;
        } else {
            b.append_data(&mut h, &path, io::empty())?;
        }
    }
    Ok(())
}

/// Copies `src` of `root` (its `.dockerignore` applied, symlinks kept as links, owner root)
/// into the fresh directory `dest`, for a RUN bind mount: nothing on the host outside the
/// context can be reached through it, and writes to it (`rw`) are thrown away with it. Returns
/// what to bind: `dest` for a directory, the copied file for a file.
pub fn materialize(root: &SourceRoot<'_>, src: &str, dest: &Path) -> Result<PathBuf, CopyError> {
    if has_glob(src) {
        return Err(CopyError::Other(format!("{src}: a mount source can't be a pattern")));
    }
    let (rel, host) = if components(src).is_empty() {
        (String::new(), root.dir.to_path_buf())
    } else {
        find_sources(root, src)?.remove(0)
    };
    let err =
        |p: &Path, e: io::Error| CopyError::Other(format!("cannot copy {}: {e}", p.display()));
    let md = fs::metadata(&host).map_err(|e| err(&host, e))?;
    if !md.is_dir() {
        let name = rel.rsplit('/').next().unwrap_or("source").to_string();
        let to = dest.join(if name.is_empty() { "source".into() } else { name });
        fs::copy(&host, &to).map_err(|e| err(&host, e))?;
        return Ok(to);
    }
    let mut entries = Vec::new();
    add_tree(root, &rel, "", &host, &[], &Overrides::default(), &mut entries)?;
    for e in &entries {
        let to = e.dest.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        match &e.src {
            Src::Dir => fs::create_dir_all(&to).map_err(|er| err(&to, er))?,
            Src::File(p) => {
                fs::copy(p, &to).map_err(|er| err(p, er))?;
            }
            Src::Symlink(t) => std::os::unix::fs::symlink(t, &to).map_err(|er| err(&to, er))?,
            Src::Data(d) => fs::write(&to, d).map_err(|er| err(&to, er))?,
            Src::Archive(_) => {}
        }
        if !matches!(e.src, Src::Symlink(_)) {
            set_mode(&to, e.mode).map_err(|er| err(&to, er))?;
        }
    }
    Ok(dest.to_path_buf())
}

/// Parses a `--chmod` value (octal).
pub fn parse_chmod(s: &str) -> Option<u32> {
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

/// Applies file metadata from an entry to a path (for tests and tools).
pub fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("src/sub")).unwrap();
        fs::write(p.join("src/a.txt"), "a").unwrap();
        fs::write(p.join("src/sub/b.txt"), "b").unwrap();
        fs::write(p.join("src/skip.log"), "x").unwrap();
        fs::write(p.join("top.txt"), "t").unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", p.join("escape")).unwrap();
        d
    }

    fn dests(v: &[Entry]) -> Vec<String> {
        v.iter().map(|e| e.dest.join("/")).collect()
    }

    #[test]
    fn docker_directory_and_slash_rules() {
        let d = ctx();
        let ig = Ignore::parse(".dockerignore", "**/*.log\n").unwrap();
        let root = SourceRoot { dir: d.path(), ignore: Some(&ig) };
        let view = LayerView::new(vec![]);
        let o = Overrides::default();
        // A directory copies its content, not itself.
        let p = plan(&root, &["src".into()], "/app", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["app", "app/a.txt", "app/sub", "app/sub/b.txt"]);
        // A file onto a name without slash is that file; with a slash it goes inside.
        let p = plan(&root, &["top.txt".into()], "/x/y", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["x", "x/y"]);
        let p = plan(&root, &["top.txt".into()], "rel/", "/srv", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["srv", "srv/rel", "srv/rel/top.txt"]);
        // Globs, and more than one source needs a directory.
        let p = plan(
            &root,
            &["src/*.txt".into(), "top.txt".into()],
            "/d/",
            "/",
            &view,
            &o,
            false,
            "COPY",
        )
        .unwrap();
        assert_eq!(dests(&p), ["d", "d/a.txt", "d", "d/top.txt"]);
        let e = plan(&root, &["src/*".into()], "/d", "/", &view, &o, false, "COPY").unwrap_err();
        assert!(matches!(e, CopyError::NeedsDirDest(_)));
        // Missing vs excluded vs outside.
        assert_eq!(find_sources(&root, "nope").unwrap_err(), CopyError::NotFound("nope".into()));
        assert_eq!(
            find_sources(&root, "src/skip.log").unwrap_err(),
            CopyError::Excluded("src/skip.log".into())
        );
        assert_eq!(find_sources(&root, "../x").unwrap_err(), CopyError::Outside("../x".into()));
        // A symlink leading out resolves inside the context: not found there.
        assert_eq!(
            find_sources(&root, "escape").unwrap_err(),
            CopyError::NotFound("escape".into())
        );
    }

    #[test]
    fn exclude_and_parents() {
        let d = ctx();
        let root = SourceRoot { dir: d.path(), ignore: None };
        let view = LayerView::new(vec![]);
        let x = Ignore::parse("--exclude", "*.log\nsub").unwrap();
        let o = Overrides { exclude: Some(x), ..Default::default() };
        let p = plan(&root, &["src".into()], "/app", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["app", "app/a.txt"]);
        let p = plan(&root, &["src/*".into()], "/app/", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["app", "app/a.txt"]);
        // --parents keeps the source's path; a `/./` pivot keeps only what follows it.
        let o = Overrides { parents: true, ..Default::default() };
        let p = plan(
            &root,
            &["src/sub/b.txt".into(), "top.txt".into()],
            "/d",
            "/",
            &view,
            &o,
            false,
            "COPY",
        )
        .unwrap();
        assert_eq!(dests(&p), ["d", "d/src", "d/src/sub", "d/src/sub/b.txt", "d", "d/top.txt"]);
        let p =
            plan(&root, &["src/./sub/b.txt".into()], "/d/", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(dests(&p), ["d", "d/sub", "d/sub/b.txt"]);
    }

    #[test]
    fn digest_follows_content_not_times() {
        let d = ctx();
        let root = SourceRoot { dir: d.path(), ignore: None };
        let view = LayerView::new(vec![]);
        let o = Overrides { owner: Some((1, 2)), mode: Some(0o600), ..Default::default() };
        let p1 = plan(&root, &["src".into()], "/app", "/", &view, &o, false, "COPY").unwrap();
        assert!(p1.iter().all(|e| e.uid == 1 && e.gid == 2));
        let d1 = digest(&p1).unwrap();
        let f = d.path().join("src/a.txt");
        let t = fs::File::options().write(true).open(&f).unwrap();
        t.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        let p2 = plan(&root, &["src".into()], "/app", "/", &view, &o, false, "COPY").unwrap();
        assert_eq!(digest(&p2).unwrap(), d1);
        fs::write(&f, "changed").unwrap();
        let p3 = plan(&root, &["src".into()], "/app", "/", &view, &o, false, "COPY").unwrap();
        assert_ne!(digest(&p3).unwrap(), d1);
        let mut tar = write_tar(&p3, Vec::new()).unwrap();
        assert!(tar.len() >= 1024);
        tar.clear();
        assert_eq!(parse_chmod("755"), Some(0o755));
        assert_eq!(parse_chmod("9"), None);
    }
}
