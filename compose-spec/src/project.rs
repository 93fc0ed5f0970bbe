//! The whole pipeline: load the tree, normalise it into a [`Project`], validate it.

use crate::error::LoadError;
use crate::loader::{LoadOptions, load_tree};
use crate::model::Project;
use crate::normalize::{NormalizeOptions, normalize};

/// Loads, normalises and validates a project; returns it with the warnings to print.
/// `opts.defaults` and `opts.consistency` turn compose's implicit defaults and the checks between
/// services and resources off (`--no-normalize`, `--no-consistency`).
pub fn load_project(opts: &LoadOptions) -> Result<(Project, Vec<String>), LoadError> {
    let tree = load_tree(opts)?;
    let nopts = NormalizeOptions {
        project_name: tree.project_name.clone(),
        project_dir: tree.project_dir.clone(),
        environment: tree.environment.clone(),
        resolve_paths: opts.resolve_paths,
        defaults: opts.defaults,
    };
    let (mut project, marks, mut warnings) = normalize(&tree.root, &nopts)?;
    project.config_files = tree.config_files.clone();
    project.environment = tree.environment.clone();
    project.profiles = tree.enabled_profiles.clone();
    project.disabled_services = tree.disabled_services.clone();
    let mut all = tree.warnings;
    all.append(&mut warnings);
    if opts.consistency {
        all.extend(crate::validate::validate(&project, &marks)?);
    }
    Ok((project, all))
}
