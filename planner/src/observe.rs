//! Observed state: the project's containers as the Engine lists them (by the project label).

use berth_runtime::Engine;
use berth_runtime::container::{ContainerSummary, ListFilters};

use compose_spec::model::Project;

use crate::{PlanError, labels};

/// One existing container of the project.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Full id.
    pub id: String,
    /// Name (without the leading slash).
    pub name: String,
    /// Service label.
    pub service: String,
    /// Replica number label (0 when missing or unreadable).
    pub number: u32,
    /// Config hash label.
    pub hash: String,
    /// Image id label.
    pub image_id: String,
    /// Engine state (`running`, `exited`, `created`, ...).
    pub state: String,
    /// The full list row.
    pub summary: ContainerSummary,
}

impl Observed {
    /// The observed view of one list row (labels read as compose writes them).
    pub fn from_summary(c: ContainerSummary) -> Self {
        Observed {
            id: c.id.clone(),
            name: c
                .names
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default(),
            service: c.labels.get(labels::SERVICE).cloned().unwrap_or_default(),
            number: c.labels.get(labels::NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0),
            hash: c.labels.get(labels::CONFIG_HASH).cloned().unwrap_or_default(),
            image_id: c.labels.get(labels::IMAGE).cloned().unwrap_or_default(),
            state: c.state.clone(),
            summary: c,
        }
    }

    /// Whether the container's process runs (or is about to be restarted by its policy).
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting" | "paused")
    }

    /// Whether the engine lists it `dead`: a record of it can't be read, so it can only be
    /// removed (which kills what still runs of it).
    pub fn is_dead(&self) -> bool {
        self.state == "dead"
    }
}

/// The project's service containers (not `run` one-offs), sorted by service then number.
pub async fn containers(engine: &Engine, project: &str) -> Result<Vec<Observed>, PlanError> {
    let filters =
        ListFilters { label: vec![format!("{}={project}", labels::PROJECT)], ..Default::default() };
    let list = engine
        .container_list(true, &filters)
        .await
        .map_err(|source| PlanError::Container { name: format!("(project {project})"), source })?;
    let mut out: Vec<Observed> = list
        .into_iter()
        .filter(|c| c.labels.get(labels::ONEOFF).is_none_or(|v| v != "True"))
        .map(Observed::from_summary)
        .collect();
    out.sort_by(|a, b| a.service.cmp(&b.service).then(a.number.cmp(&b.number)));
    Ok(out)
}

/// The project's service containers as [`containers`] lists them, plus damaged containers
/// (listed `dead`) that lost their compose labels with their record but still hold, in the
/// engine's name index, a name this project gives a service's container:
/// `{project}-{service}-{n}` or the service's `container_name` (their service and number are
/// taken from the name). One listing.
pub async fn containers_of(engine: &Engine, p: &Project) -> Result<Vec<Observed>, PlanError> {
    let filters = ListFilters {
        label: vec![format!("{}={}", labels::PROJECT, p.name)],
        or_unlabelled_damaged: true,
        ..Default::default()
    };
    let list = engine
        .container_list(true, &filters)
        .await
        .map_err(|source| PlanError::Container { name: format!("(project {})", p.name), source })?;
    let mut out = Vec::new();
    for c in list {
        if c.labels.contains_key(labels::PROJECT) {
            if c.labels.get(labels::ONEOFF).is_none_or(|v| v != "True") {
                out.push(Observed::from_summary(c));
            }
            continue;
        }
        let mut o = Observed::from_summary(c);
        let named = p.services.iter().find_map(|(svc, s)| {
            (s.container_name.as_deref() == Some(o.name.as_str())).then(|| (svc.clone(), 1))
        });
        let numbered = || {
            p.services.keys().chain(p.disabled_services.iter()).find_map(|svc| {
                let n = o.name.strip_prefix(&format!("{}-{svc}-", p.name))?;
                n.parse::<u32>().ok().filter(|n| *n > 0).map(|n| (svc.clone(), n))
            })
        };
        if let Some((service, number)) = named.or_else(numbered) {
            o.service = service;
            o.number = number;
            out.push(o);
        }
    }
    out.sort_by(|a, b| a.service.cmp(&b.service).then(a.number.cmp(&b.number)));
    Ok(out)
}

/// Every project that has containers in this state root: name -> (states, config files).
pub async fn projects(engine: &Engine) -> Result<Vec<(String, Vec<String>, String)>, PlanError> {
    let filters = ListFilters { label: vec![labels::PROJECT.to_string()], ..Default::default() };
    let list = engine
        .container_list(true, &filters)
        .await
        .map_err(|source| PlanError::Container { name: "(all projects)".into(), source })?;
    let mut out: Vec<(String, Vec<String>, String)> = Vec::new();
    for c in list {
        let Some(p) = c.labels.get(labels::PROJECT) else { continue };
        let files = c.labels.get(labels::CONFIG_FILES).cloned().unwrap_or_default();
        match out.iter_mut().find(|(n, _, _)| n == p) {
            Some((_, states, _)) => states.push(c.state.clone()),
            None => out.push((p.clone(), vec![c.state.clone()], files)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
