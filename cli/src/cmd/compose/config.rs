//! `berth config`: parse, resolve and render the compose file in canonical form, with
//! docker compose v2's flags.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use compose_spec::emit::{service_hash, to_json, to_yaml};
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;
use compose_spec::{LoadError, load_project};

use crate::cmd::{EXIT_USAGE, ExitWith, ProjectOpts};

/// Arguments of `berth config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Format the output: yaml or json.
    #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
    format: String,
    /// Print the service names, one per line.
    #[arg(long = "services")]
    list_services: bool,
    /// Print the volume names, one per line.
    #[arg(long = "volumes")]
    list_volumes: bool,
    /// Print the network names, one per line.
    #[arg(long = "networks")]
    list_networks: bool,
    /// Print the profile names, one per line.
    #[arg(long = "profiles")]
    list_profiles: bool,
    /// Print the image names, one per line.
    #[arg(long = "images")]
    list_images: bool,
    /// Print the model names, one per line.
    #[arg(long = "models")]
    list_models: bool,
    /// Print the service config hash, one per line ("*" for all services, or svc1,svc2).
    #[arg(long)]
    hash: Option<String>,
    /// Only validate the configuration, don't print anything.
    #[arg(short, long)]
    quiet: bool,
    /// Don't interpolate environment variables.
    #[arg(long)]
    no_interpolate: bool,
    /// Don't normalize the compose model.
    #[arg(long)]
    no_normalize: bool,
    /// Don't check model consistency (references between services and resources).
    #[arg(long)]
    no_consistency: bool,
    /// Don't resolve file paths.
    #[arg(long)]
    no_path_resolution: bool,
    /// Pin image tags to digests.
    #[arg(long)]
    resolve_image_digests: bool,
    /// Save to file (default to stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Services to render (and their dependencies); all when empty.
    #[arg(value_name = "SERVICE")]
    service_names: Vec<String>,
}

/// Runs `berth config`.
pub fn run(project: &ProjectOpts, args: Args) -> anyhow::Result<ExitCode> {
    if args.resolve_image_digests {
        return Err(ExitWith {
            code: 1,
            message: "--resolve-image-digests is not supported yet".into(),
        }
        .into());
    }
    let mut opts = load_options(project)?;
    opts.interpolate = !args.no_interpolate;
    opts.resolve_paths = !args.no_path_resolution;
    opts.defaults = !args.no_normalize;
    opts.consistency = !args.no_consistency;
    opts.services = args.service_names.clone();
    if args.list_profiles {
        // Every declared profile is listed, so load every service.
        opts.profiles = vec!["*".into()];
    }
    if args.no_interpolate && !args.list_any() {
        return raw_model(&opts, &args);
    }
    let (mut p, warnings) = load_project(&opts).map_err(load_error)?;
    for w in &warnings {
        eprintln!("WARN[0000] {w}");
    }
    if !args.service_names.is_empty() {
        select_services(&mut p, &args.service_names)?;
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let text = render(&p, &args)?;
    write_out(&text, args.output.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

impl Args {
    /// Whether a listing flag (`--services`, `--hash`, ...) was given.
    fn list_any(&self) -> bool {
        self.list_services
            || self.list_volumes
            || self.list_networks
            || self.list_profiles
            || self.list_images
            || self.list_models
            || self.hash.is_some()
    }
}

/// `--no-interpolate`: compose prints the merged model as read, without typing it (variables
/// would make short syntax unparseable).
fn raw_model(opts: &LoadOptions, args: &Args) -> anyhow::Result<ExitCode> {
    let mut tree = compose_spec::loader::load_tree(opts).map_err(load_error)?;
    for w in &tree.warnings {
        eprintln!("WARN[0000] {w}");
    }
    // compose drops the obsolete `version` from the model, with its usual warning.
    if let Some((_, v)) = tree.root.as_map_mut().and_then(|m| m.shift_remove("version")) {
        eprintln!(
            "WARN[0000] {}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
            v.mark.file
        );
    }
    if !args.service_names.is_empty() {
        eprintln!("WARN[0000] service filtering is not applied when --no-interpolate is set");
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let text =
        compose_spec::emit::tree_to_text(&tree.root, &tree.project_name, args.format == "json");
    write_out(&text, args.output.as_ref())?;
    Ok(ExitCode::SUCCESS)
}

fn write_out(text: &str, output: Option<&PathBuf>) -> anyhow::Result<()> {
    match output {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            Ok(())
        }
    }
}

/// The loader options from the global flags and the process environment.
fn load_options(project: &ProjectOpts) -> anyhow::Result<LoadOptions> {
    let working_dir = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))?;
    let stdin = if project.files.iter().any(|f| f.as_os_str() == "-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| anyhow::anyhow!("cannot read standard input: {e}"))?;
        Some(s)
    } else {
        None
    };
    Ok(LoadOptions {
        working_dir,
        files: project.files.clone(),
        stdin,
        project_directory: project.project_directory.clone(),
        project_name: project.project_name.clone(),
        env_files: project.env_files.clone(),
        profiles: project.profiles.clone(),
        services: Vec::new(),
        environment: std::env::vars().collect(),
        interpolate: true,
        resolve_paths: true,
        defaults: true,
        consistency: true,
    })
}

fn load_error(e: LoadError) -> anyhow::Error {
    ExitWith { code: e.exit_code(), message: e.to_string() }.into()
}

/// Keeps the named services and what they depend on.
fn select_services(p: &mut Project, names: &[String]) -> anyhow::Result<()> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(n) = todo.pop() {
        let Some(s) = p.services.get(&n) else {
            return Err(
                ExitWith { code: EXIT_USAGE, message: format!("no such service: {n}") }.into()
            );
        };
        if keep.insert(n.clone()) {
            todo.extend(s.depends_on.keys().filter(|d| p.services.contains_key(*d)).cloned());
        }
    }
    p.services.retain(|k, _| keep.contains(k));
    Ok(())
}

/// The text `config` prints for the chosen flags.
fn render(p: &Project, args: &Args) -> anyhow::Result<String> {
    let lines = |items: Vec<String>| -> String { items.into_iter().map(|s| s + "\n").collect() };
    let mut names: Vec<&String> = p.services.keys().collect();
    names.sort();
    if args.list_services {
        return Ok(lines(names.into_iter().cloned().collect()));
    }
    if args.list_volumes {
        let mut v: Vec<String> = p.volumes.keys().cloned().collect();
        v.sort();
        return Ok(lines(v));
    }
    if args.list_networks {
        let mut v: Vec<String> = p.networks.keys().cloned().collect();
        v.sort();
        return Ok(lines(v));
    }
    if args.list_profiles {
        let set: BTreeSet<String> =
            p.services.values().flat_map(|s| s.profiles.iter().cloned()).collect();
        return Ok(lines(set.into_iter().collect()));
    }
    if args.list_images {
        let v = names.iter().map(|n| p.image_name(n)).collect();
        return Ok(lines(v));
    }
    if args.list_models {
        let mut v: Vec<String> = p.models.keys().cloned().collect();
        v.sort();
        return Ok(lines(v));
    }
    if let Some(h) = &args.hash {
        let wanted: Vec<String> = if h == "*" {
            names.iter().map(|n| n.to_string()).collect()
        } else {
            h.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        };
        let mut out = String::new();
        for n in wanted {
            let Some(s) = p.services.get(&n) else {
                return Err(ExitWith {
                    code: EXIT_USAGE,
                    message: format!("no such service: {n}"),
                }
                .into());
            };
            out.push_str(&format!("{n} {}\n", service_hash(s)));
        }
        return Ok(out);
    }
    Ok(if args.format == "json" { to_json(p) } else { to_yaml(p) })
}
