//! The loading pipeline: discovery -> `.env` -> per file (parse, interpolate, extends, include)
//! -> merge files -> paths -> `env_file` -> profiles -> project name. The result is a positioned
//! tree for the model stage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::discovery::{self, Source};
use crate::error::{ErrorKind, LoadError};
use crate::merge::{merge_nodes, strip_tags};
use crate::tree::{Mark, Node, Value};

/// What the CLI tells the loader.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the CLI runs (discovery searches upward from here).
    pub working_dir: PathBuf,
    /// `-f` files (repeatable; `-` = stdin content given in `stdin`).
    pub files: Vec<PathBuf>,
    /// The content of standard input, for `-f -`.
    pub stdin: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file` (replaces the default `.env`; `COMPOSE_ENV_FILES` is used when empty).
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// Services named on the command line (enable their profiles).
    pub services: Vec<String>,
    /// The process environment, passed in (tests inject it).
    pub environment: IndexMap<String, String>,
    /// False for `--no-interpolate`.
    pub interpolate: bool,
    /// Make relative paths absolute (default true).
    pub resolve_paths: bool,
    /// Fill in compose's implicit defaults (default true; false for `--no-normalize`).
    pub defaults: bool,
    /// Check the references between services and resources (default true; false for
    /// `--no-consistency`).
    pub consistency: bool,
}

impl Default for LoadOptions {
    /// Empty options in `.` with interpolation, path resolution, defaults and checks on.
    fn default() -> Self {
        LoadOptions {
            working_dir: PathBuf::from("."),
            files: Vec::new(),
            stdin: None,
            project_directory: None,
            project_name: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            services: Vec::new(),
            environment: IndexMap::new(),
            interpolate: true,
            resolve_paths: true,
            defaults: true,
            consistency: true,
        }
    }
}

/// The loaded, merged tree and what was learned on the way.
#[derive(Debug, Clone)]
pub struct LoadedTree {
    /// Merged, interpolated, extends/include resolved, profiles applied.
    pub root: Node,
    /// The project name.
    pub project_name: String,
    /// The project directory (absolute).
    pub project_dir: PathBuf,
    /// The compose files read, absolute (`-` for stdin).
    pub config_files: Vec<PathBuf>,
    /// The interpolation environment (process env over `.env` / `--env-file`).
    pub environment: IndexMap<String, String>,
    /// Warnings, e.g. unset variables.
    pub warnings: Vec<String>,
    /// The active profiles.
    pub enabled_profiles: Vec<String>,
    /// Services removed because none of their profiles is active (for "not enabled" messages).
    pub disabled_services: Vec<String>,
}

/// State shared by the stages while loading one project.
pub(crate) struct Ctx {
    /// The interpolation environment.
    pub env: IndexMap<String, String>,
    /// Whether to interpolate.
    pub interpolate: bool,
    /// Whether to make paths absolute.
    pub resolve_paths: bool,
    /// `$HOME`, for `~` in paths.
    pub home: Option<String>,
    /// Accumulated warnings.
    pub warnings: Vec<String>,
    /// Stdin content for `-f -`.
    pub stdin: Option<String>,
    /// The directory file names are shown relative to.
    pub working_dir: PathBuf,
}

/// Loads a project's compose files into one tree.
pub fn load_tree(opts: &LoadOptions) -> Result<LoadedTree, LoadError> {
    let cwd = absolutize(&opts.working_dir);
    let process_env = &opts.environment;
    let given_project_dir =
        opts.project_directory.as_ref().map(|p| crate::paths::clean(&cwd.join(p)));

    // Where `.env` is looked for before the files are known (COMPOSE_FILE may come from it).
    let first_file_dir = opts
        .files
        .iter()
        .find(|f| f.as_os_str() != "-")
        .and_then(|f| crate::paths::clean(&cwd.join(f)).parent().map(Path::to_path_buf));
    let pre_dir = given_project_dir.clone().or(first_file_dir).unwrap_or_else(|| cwd.clone());
    let mut dotenv = read_env_files(opts, &cwd, &pre_dir)?;
    let combined = overlay(&dotenv, process_env);

    let sources = discovery::find_files(&cwd, &opts.files, &combined)?;
    let searched =
        opts.files.is_empty() && combined.get("COMPOSE_FILE").is_none_or(|s| s.is_empty());
    let mut discovery_warnings = Vec::new();
    if searched
        && let Some(Source::File(first)) = sources.first()
        && let Some(dir) = first.parent()
    {
        discovery_warnings = discovery::multiple_defaults_warnings(dir);
    }
    let project_dir = match &given_project_dir {
        Some(d) => d.clone(),
        None => sources
            .iter()
            .find_map(|s| match s {
                Source::File(p) => p.parent().map(Path::to_path_buf),
                Source::Stdin => None,
            })
            .unwrap_or_else(|| cwd.clone()),
    };
    let explicit_env_files =
        !opts.env_files.is_empty() || opts.environment.contains_key("COMPOSE_ENV_FILES");
    if project_dir != pre_dir && !explicit_env_files {
        dotenv = read_env_files(opts, &cwd, &project_dir)?;
    }
    let mut env = overlay(&dotenv, process_env);

    if let Some(p) = &opts.project_name
        && !discovery::is_valid_project_name(p)
    {
        return Err(discovery::invalid_project_name(p, ErrorKind::Usage));
    }
    let name_from_env = env.get("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()).cloned();
    if let Some(n) = &name_from_env
        && !discovery::is_valid_project_name(n)
    {
        return Err(discovery::invalid_project_name(n, ErrorKind::Invalid));
    }
    // `-p` is visible to interpolation as `COMPOSE_PROJECT_NAME` (and wins over the variable).
    if let Some(p) = &opts.project_name {
        env.insert("COMPOSE_PROJECT_NAME".to_string(), p.clone());
    }

    let mut ctx = Ctx {
        env,
        interpolate: opts.interpolate,
        resolve_paths: opts.resolve_paths,
        home: process_env.get("HOME").cloned(),
        warnings: discovery_warnings,
        stdin: opts.stdin.clone(),
        working_dir: cwd.clone(),
    };
    let mut stack = Vec::new();
    let mut root = ctx.load_files(&sources, &project_dir, &mut stack)?;
    if opts.resolve_paths {
        crate::paths::resolve_tree(&mut root, &project_dir, ctx.home.as_deref());
    }
    crate::env_file::apply(
        &mut root,
        &project_dir,
        &ctx.env,
        ctx.home.as_deref(),
        !opts.resolve_paths,
    )?;

    let requested = if opts.profiles.is_empty() {
        ctx.env.get("COMPOSE_PROFILES").map(|s| crate::profiles::from_env(s)).unwrap_or_default()
    } else {
        opts.profiles.clone()
    };
    let (enabled_profiles, disabled_services) =
        crate::profiles::apply_reporting(&mut root, requested, &opts.services);

    // The schema's type for `name`, checked even when -p or the environment supplies the name.
    if let Some(n) = root.get("name")
        && !matches!(n.value, Value::Null | Value::String(_))
    {
        return Err(LoadError::invalid(
            Some(n.mark.clone()),
            Some("name".to_string()),
            format!("must be a string, not a {}", n.type_name()),
        ));
    }
    let project_name = match opts.project_name.clone().or(name_from_env) {
        Some(n) => n,
        None => match root.get("name") {
            Some(n) if !matches!(n.value, Value::Null) => {
                let s = scalar(n);
                if !discovery::is_valid_project_name(&s) {
                    let mut e = discovery::invalid_project_name(&s, ErrorKind::Invalid);
                    e.mark = Some(n.mark.clone());
                    e.path = Some("name".into());
                    return Err(e);
                }
                s
            }
            _ => {
                let base = project_dir
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let n = discovery::normalize_project_name(&base);
                if n.is_empty() {
                    return Err(LoadError {
                        kind: ErrorKind::Usage,
                        mark: None,
                        path: None,
                        message: format!(
                            "project name must not be empty: the directory name {base:?} has no usable characters (use -p)"
                        ),
                    });
                }
                n
            }
        },
    };
    if let Some(m) = root.as_map_mut() {
        let mark = Mark { file: Arc::from("<cli>"), line: 1, column: 1 };
        let node = Node::new(Value::String(project_name.clone()), mark.clone());
        match m.get_mut("name") {
            Some(slot) => slot.1 = Node { mark: slot.1.mark.clone(), ..node },
            None => {
                m.shift_insert(0, "name".to_string(), (mark, node));
            }
        }
    }

    let config_files = sources
        .iter()
        .map(|s| match s {
            Source::File(p) => p.clone(),
            Source::Stdin => PathBuf::from("-"),
        })
        .collect();
    Ok(LoadedTree {
        root,
        project_name,
        project_dir,
        config_files,
        environment: ctx.env,
        warnings: ctx.warnings,
        enabled_profiles,
        disabled_services,
    })
}

fn scalar(n: &Node) -> String {
    match &n.value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn absolutize(p: &Path) -> PathBuf {
    if p.is_absolute() {
        crate::paths::clean(p)
    } else {
        let cur = std::env::current_dir().unwrap_or_default();
        crate::paths::clean(&cur.join(p))
    }
}

/// `base` with `top` written over it.
fn overlay(
    base: &IndexMap<String, String>,
    top: &IndexMap<String, String>,
) -> IndexMap<String, String> {
    let mut out = base.clone();
    for (k, v) in top {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// `--env-file` files (relative to the working directory), else `dir/.env` when it exists.
fn read_env_files(
    opts: &LoadOptions,
    cwd: &Path,
    dir: &Path,
) -> Result<IndexMap<String, String>, LoadError> {
    // `--env-file`, else `COMPOSE_ENV_FILES` (comma separated), else `.env`.
    let from_var: Vec<PathBuf> = opts
        .environment
        .get("COMPOSE_ENV_FILES")
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    let named = if opts.env_files.is_empty() { &from_var } else { &opts.env_files };
    let files: Vec<PathBuf> = if named.is_empty() {
        let d = dir.join(".env");
        // Read when it exists at all: a `.env` that is not a regular file is an error, not
        // silently no variables.
        if std::fs::metadata(&d).is_ok() { vec![d] } else { Vec::new() }
    } else {
        named.iter().map(|f| crate::paths::clean(&cwd.join(f))).collect()
    };
    let mut out: IndexMap<String, String> = IndexMap::new();
    for f in files {
        if matches!(std::fs::metadata(&f), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            return Err(LoadError {
                kind: ErrorKind::Invalid,
                mark: None,
                path: None,
                message: format!("couldn't find env file: {}", f.display()),
            });
        }
        let lookup = |k: &str| opts.environment.get(k).cloned().or_else(|| out.get(k).cloned());
        let vars = crate::dotenv::read_file(&f, &lookup)?;
        out.extend(vars);
    }
    Ok(out)
}

impl Ctx {
    /// How a file is named in positions: relative to the working directory when inside it.
    fn display(&self, p: &Path) -> Arc<str> {
        let shown = p.strip_prefix(&self.working_dir).unwrap_or(p);
        Arc::from(shown.to_string_lossy().as_ref())
    }

    /// Reads, parses and interpolates one file (no extends/include).
    pub(crate) fn read_tree(&mut self, path: &Path) -> Result<Node, LoadError> {
        let src = crate::dotenv::read_regular_file(path).map_err(|e| {
            LoadError::invalid(
                None,
                None,
                format!("cannot read {}: {}", path.display(), crate::dotenv::io_msg(&e)),
            )
        })?;
        let name = self.display(path);
        self.parse_and_interpolate(&src, name)
    }

    fn parse_and_interpolate(&mut self, src: &str, name: Arc<str>) -> Result<Node, LoadError> {
        let mut root = crate::yaml::parse(src, name.clone())?;
        match root.value {
            Value::Null => root.value = Value::Map(Default::default()),
            Value::Map(_) => {}
            _ => {
                return Err(LoadError::invalid(
                    Some(root.mark.clone()),
                    None,
                    format!("top-level object must be a mapping, found {}", root.a_type_name()),
                ));
            }
        }
        if self.interpolate {
            crate::interpolate::interpolate_node(&mut root, &self.env, "", &mut self.warnings)?;
        }
        Ok(root)
    }

    /// Loads `sources` (one project) and merges them; `project_dir` anchors `include` paths.
    /// Tags are stripped from the result.
    pub(crate) fn load_files(
        &mut self,
        sources: &[Source],
        project_dir: &Path,
        stack: &mut Vec<PathBuf>,
    ) -> Result<Node, LoadError> {
        let mut acc: Option<Node> = None;
        for src in sources {
            let (mut tree, file) = match src {
                Source::File(p) => (self.read_tree(p)?, p.clone()),
                Source::Stdin => {
                    let content = self.stdin.clone().unwrap_or_default();
                    let t = self.parse_and_interpolate(&content, Arc::from("-"))?;
                    (t, project_dir.join("-"))
                }
            };
            // Includes first, so a service may extend an included one (as compose does). Their
            // relative paths are relative to the project directory, as compose-go resolves them.
            stack.push(file.clone());
            let r = crate::include::resolve(&mut tree, project_dir, self, stack);
            stack.pop();
            r?;
            crate::extends::resolve(&mut tree, &file, self)?;
            acc = Some(match acc {
                None => tree,
                Some(base) => merge_nodes(base, tree, "")?,
            });
        }
        let mut root = acc.unwrap_or_else(|| {
            Node::new(
                Value::Map(Default::default()),
                Mark { file: Arc::from("<cli>"), line: 1, column: 1 },
            )
        });
        strip_tags(&mut root);
        crate::merge::enforce_unique(&mut root);
        Ok(root)
    }
}
