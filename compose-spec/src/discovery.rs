//! Which compose files to read and what the project is called: `-f` (repeatable, `-` for
//! stdin), `COMPOSE_FILE` (split on `COMPOSE_PATH_SEPARATOR`), else the default names searched
//! upward from the working directory plus their override file; the project name from `-p`,
//! `COMPOSE_PROJECT_NAME`, top-level `name:` or the project directory's basename.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::{ErrorKind, LoadError};
use crate::paths::clean;

/// Default file names, in order of preference.
pub const DEFAULT_FILES: [&str; 4] =
    ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// Where a compose file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on disk (absolute path).
    File(PathBuf),
    /// Standard input (`-f -`).
    Stdin,
}

/// The override file matching a default file name (`compose.yaml` -> `compose.override.yaml`).
pub fn override_name(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    Some(format!("{stem}.override.{ext}"))
}

/// Finds the compose files: explicit `files`, else `COMPOSE_FILE` from `env`, else the default
/// names searched from `working_dir` upward.
pub fn find_files(
    working_dir: &Path,
    files: &[PathBuf],
    env: &IndexMap<String, String>,
) -> Result<Vec<Source>, LoadError> {
    if !files.is_empty() {
        let mut out = Vec::new();
        for f in files {
            if f.as_os_str() == "-" {
                out.push(Source::Stdin);
                continue;
            }
            let abs = clean(&working_dir.join(f));
            if !abs.is_file() {
                return Err(LoadError {
                    kind: ErrorKind::NotFound,
                    mark: None,
                    path: None,
                    message: format!("open {}: no such file or directory", abs.display()),
                });
            }
            out.push(Source::File(abs));
        }
        return Ok(out);
    }
    if let Some(list) = env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = env
            .get("COMPOSE_PATH_SEPARATOR")
            .filter(|s| !s.is_empty())
            .map(String::as_str)
            .unwrap_or(":");
        let named: Vec<PathBuf> =
            list.split(sep).filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        return find_files(working_dir, &named, &IndexMap::new());
    }
    let mut dir = Some(clean(working_dir));
    while let Some(d) = dir {
        for name in DEFAULT_FILES {
            let candidate = d.join(name);
            if candidate.is_file() {
                let mut out = vec![Source::File(candidate)];
                if let Some(ov) = override_name(name).map(|o| d.join(o))
                    && ov.is_file()
                {
                    out.push(Source::File(ov));
                }
                return Ok(out);
            }
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    Err(LoadError {
        kind: ErrorKind::NotFound,
        mark: None,
        path: None,
        message: "no configuration file provided: not found".to_string(),
    })
}

/// Compose's warnings when `dir` holds more than one default file name (the first is used).
pub fn multiple_defaults_warnings(dir: &Path) -> Vec<String> {
    let found: Vec<String> = DEFAULT_FILES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    match found.first() {
        Some(first) if found.len() > 1 => vec![
            format!("Found multiple config files with supported names: {}", found.join(", ")),
            format!("Using {first}"),
        ],
        _ => Vec::new(),
    }
}

/// Whether `name` is a valid project name (`[a-z0-9][a-z0-9_-]*`).
pub fn is_valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A directory basename made into a project name: lower-case, only `a-z0-9_-`, no leading
/// `_`/`-`.
pub fn normalize_project_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let kept: String = lower
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// The error for an invalid project name coming from `source` (`-p`, a variable, `name:`).
pub fn invalid_project_name(name: &str, kind: ErrorKind) -> LoadError {
    LoadError {
        kind,
        mark: None,
        path: None,
        message: format!(
            "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("__x-Y"), "x-y");
        assert!(is_valid_project_name("a_b-1"));
        assert!(!is_valid_project_name("-a"));
        assert!(!is_valid_project_name("Ab"));
        assert_eq!(override_name("compose.yaml").as_deref(), Some("compose.override.yaml"));
    }
}
