//! Looking at an image's merged file system without mounting it: each path is looked up
//! through the layer directories, topmost first, honouring overlay whiteouts and opaque
//! directories; symlinks of parent directories are followed inside the image's root.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

/// The merged view of some layer directories (topmost first).
#[derive(Debug, Clone)]
pub struct LayerView {
    layers: Vec<PathBuf>,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &std::path::Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf[..]), Ok(n) if &buf[..n] == b"y")
}

/// Splits an absolute or relative in-image path into normal components (`..` resolved
/// lexically, never above the root).
pub fn components(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

impl LayerView {
    /// A view of `layers` (topmost first).
    pub fn new(layers: Vec<PathBuf>) -> Self {
        LayerView { layers }
    }

    /// The metadata of the entry at exactly these components (no symlink followed), where it
    /// lives, or None when absent.
    pub fn lookup(&self, comps: &[String]) -> Option<(fs::Metadata, PathBuf)> {
        'layers: for layer in &self.layers {
            let mut p = layer.clone();
            for (i, c) in comps.iter().enumerate() {
                p.push(c);
                match fs::symlink_metadata(&p) {
                    Err(_) => continue 'layers,
                    Ok(md) if is_whiteout(&md) => return None,
                    Ok(md) => {
                        let last = i + 1 == comps.len();
                        if last {
                            return Some((md, p));
                        }
                        if !md.is_dir() {
                            return None; // a file where a directory would be hides the rest
                        }
                        if is_opaque(&p) {
                            // Nothing below this layer shows through here: look deeper only
                            // in this layer.
                            let mut q = p.clone();
                            for c in &comps[i + 1..] {
                                q.push(c);
                            }
                            return fs::symlink_metadata(&q)
                                .ok()
                                .filter(|m| !is_whiteout(m))
                                .map(|m| (m, q));
                        }
                    }
                }
            }
            if comps.is_empty() {
                return fs::symlink_metadata(&p).ok().map(|m| (m, p));
            }
        }
        None
    }

    /// Resolves symlinks along `path` inside the image's root (the last component too when
    /// `follow_last`); at most 40 links, as Linux.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Vec<String> {
        resolve_links(components(path), follow_last, |done| {
            let (md, p) = self.lookup(done)?;
            if !md.file_type().is_symlink() {
                return None;
            }
            fs::read_link(&p).ok().map(|t| t.to_string_lossy().into_owned())
        })
    }

    /// The metadata of what `path` names, following symlinks (None: absent).
    pub fn stat(&self, path: &str) -> Option<fs::Metadata> {
        let comps = self.resolve(path, true);
        self.lookup(&comps).map(|(m, _)| m)
    }

    /// Reads a file of the image (None: absent or not a file).
    pub fn read(&self, path: &str) -> Option<String> {
        let comps = self.resolve(path, true);
        let (md, p) = self.lookup(&comps)?;
        if !md.is_file() {
            return None;
        }
        fs::read_to_string(p).ok()
    }
}

/// Resolves the symlinks along `comps` as if their root were `/` (`..` never climbs above it;
/// the last component too when `follow_last`; at most 40 links, as Linux): `read_link(prefix)`
/// is the target of the link `prefix` names, None when it is not a link.
pub(crate) fn resolve_links(
    comps: Vec<String>,
    follow_last: bool,
    read_link: impl Fn(&[String]) -> Option<String>,
) -> Vec<String> {
    let mut todo: Vec<String> = comps;
    todo.reverse();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        if todo.is_empty() && !follow_last {
            break;
        }
        if links < 40
            && let Some(t) = read_link(&done)
        {
            links += 1;
            done.pop();
            if t.starts_with('/') {
                done.clear();
            }
            todo.extend(
                t.split('/').filter(|s| !s.is_empty() && *s != ".").rev().map(str::to_string),
            );
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_honours_whiteouts_and_links() {
        let d = tempfile::tempdir().unwrap();
        let low = d.path().join("low");
        let up = d.path().join("up");
        fs::create_dir_all(low.join("usr/bin")).unwrap();
        fs::write(low.join("usr/bin/x"), "x").unwrap();
        std::os::unix::fs::symlink("usr/bin", low.join("bin")).unwrap();
        fs::create_dir_all(low.join("gone")).unwrap();
        fs::create_dir_all(&up).unwrap();
        let v = LayerView::new(vec![up.clone(), low.clone()]);
        assert_eq!(v.resolve("/bin/x", true), ["usr", "bin", "x"]);
        assert!(v.stat("/bin/x").is_some_and(|m| m.is_file()));
        assert_eq!(v.read("/bin/x").as_deref(), Some("x"));
        assert!(v.stat("/gone").is_some());
        assert_eq!(components("/a/../b/./c/"), ["b", "c"]);
    }
}
