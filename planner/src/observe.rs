//! Observed state: what exists of a project, read from the Engine before anything is decided.
//! The operations observe first ([`for_up`], [`for_down`], [`for_lifecycle`]), hand the
//! [`ObservedState`] to a pure planning function, then execute the plan; so the planner's
//! decisions can be tested with literal states, without an Engine.

use std::collections::BTreeMap;

use berth_network::{Filters as NetFilters, NetworkRecord};
use berth_runtime::Engine;
use berth_runtime::container::{ContainerSummary, ListFilters};
use berth_runtime::volume::VolumeFilters;

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
    /// A `run` one-off (labelled `oneoff=True`).
    pub oneoff: bool,
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
            oneoff: c.labels.get(labels::ONEOFF).is_some_and(|v| v == "True"),
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
    let mut out = project_containers(engine, p).await?;
    out.retain(|c| !c.oneoff);
    Ok(out)
}

/// What [`containers_of`] returns, followed by the project's one-offs in listing order.
async fn project_containers(engine: &Engine, p: &Project) -> Result<Vec<Observed>, PlanError> {
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
    let mut oneoffs = Vec::new();
    for c in list {
        if c.labels.contains_key(labels::PROJECT) {
            let o = Observed::from_summary(c);
            if o.oneoff {
                oneoffs.push(o)
            } else {
                out.push(o)
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
    out.extend(oneoffs);
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

/// Everything a plan is decided from.
#[derive(Debug, Clone, Default)]
pub struct ObservedState {
    /// The project's containers: service replicas sorted by service then number (with damaged
    /// ones matched by name, as [`containers_of`]), then its one-offs.
    pub containers: Vec<Observed>,
    /// Networks (all of them for `up`, the project's for `down`).
    pub networks: Vec<ObservedNetwork>,
    /// Names of the project's volumes (observed only for `down -v`).
    pub volumes: Vec<String>,
    /// The services' images by reference (observed for `up`).
    pub images: BTreeMap<String, ObservedImage>,
}

/// One existing network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedNetwork {
    /// The engine-side name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Names of the containers attached to it.
    pub containers: Vec<String>,
}

impl ObservedNetwork {
    /// The observed view of a network record.
    pub fn from_record(r: NetworkRecord) -> Self {
        ObservedNetwork {
            name: r.name,
            labels: r.labels.into_iter().collect(),
            containers: r.containers.into_values().map(|c| c.name).collect(),
        }
    }
}

/// What the image store says about a service's image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedImage {
    /// It exists, with this id.
    Present(String),
    /// No such image.
    Missing,
    /// The store could not answer (damaged, ambiguous id...): the error's sentence.
    Unreadable(String),
}

impl ObservedState {
    /// The id of the image `svc` runs; a missing image is an error naming the service and the
    /// way to get it.
    pub fn image_id(&self, p: &Project, svc: &str) -> Result<String, PlanError> {
        let image = p.image_name(svc);
        image_id(svc, &image, self.images.get(&image))
    }
}

/// The id `found` gives `image`, the image of `svc`; a missing image is an error naming the
/// service and the way to get it.
pub fn image_id(
    svc: &str,
    image: &str,
    found: Option<&ObservedImage>,
) -> Result<String, PlanError> {
    match found {
        Some(ObservedImage::Present(id)) => Ok(id.clone()),
        Some(ObservedImage::Missing) | None => Err(PlanError::Invalid {
            service: svc.to_string(),
            message: format!(
                "image {image:?} not found (berth cannot pull yet: build it (`build:` and `berth build`, or `up` without --no-build), or load it with `berth image import` or `berth image load`)"
            ),
        }),
        // A damaged store, an ambiguous id...: not "not found".
        Some(ObservedImage::Unreadable(e)) => Err(PlanError::Invalid {
            service: svc.to_string(),
            message: format!("image {image:?}: {e}"),
        }),
    }
}

/// What the image store says about `reference`.
pub async fn image(engine: &Engine, reference: &str) -> ObservedImage {
    match engine.image_inspect(reference.to_string()).await {
        Ok(i) => ObservedImage::Present(i.id),
        Err(berth_image::ImageError::NoSuchImage(_)) => ObservedImage::Missing,
        Err(e) => ObservedImage::Unreadable(e.to_string()),
    }
}

/// Every network, when one of `services` of `p` joins one (none listed otherwise).
pub async fn networks_used_by<'a>(
    engine: &Engine,
    p: &Project,
    services: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<ObservedNetwork>, PlanError> {
    let used =
        services.into_iter().any(|s| p.services.get(s).is_some_and(|s| !s.networks.is_empty()));
    if !used {
        return Ok(Vec::new());
    }
    let list = engine.network_list(NetFilters::default()).await.map_err(|e| {
        PlanError::Network { name: String::new(), message: format!("cannot list networks: {e}") }
    })?;
    Ok(list.into_iter().map(ObservedNetwork::from_record).collect())
}

/// What `up` decides from: the project's containers (one-offs included), the networks, and
/// the image of every service.
pub async fn for_up(engine: &Engine, p: &Project) -> Result<ObservedState, PlanError> {
    let containers = project_containers(engine, p).await?;
    let networks = networks_used_by(engine, p, p.services.keys()).await?;
    let mut images = BTreeMap::new();
    for svc in p.services.keys() {
        let reference = p.image_name(svc);
        if let std::collections::btree_map::Entry::Vacant(slot) = images.entry(reference) {
            let found = image(engine, slot.key()).await;
            slot.insert(found);
        }
    }
    Ok(ObservedState { containers, networks, volumes: Vec::new(), images })
}

/// What `down` decides from: the project's containers (one-offs included), its networks, and
/// with `volumes` its volumes.
pub async fn for_down(
    engine: &Engine,
    p: &Project,
    volumes: bool,
) -> Result<ObservedState, PlanError> {
    let containers = project_containers(engine, p).await?;
    let filters =
        NetFilters { label: vec![format!("{}={}", labels::PROJECT, p.name)], ..Default::default() };
    let networks = engine.network_list(filters).await.map_err(|e| PlanError::Network {
        name: String::new(),
        message: format!("cannot list the networks of project {}: {e}", p.name),
    })?;
    let networks = networks.into_iter().map(ObservedNetwork::from_record).collect();
    let volumes = if volumes {
        let filters = VolumeFilters {
            label: vec![format!("{}={}", labels::PROJECT, p.name)],
            ..Default::default()
        };
        let vols = engine.volume_list(filters, Vec::new()).await.map_err(|source| {
            PlanError::Volume { name: format!("(project {})", p.name), source }
        })?;
        vols.into_iter().map(|v| v.name).collect()
    } else {
        Vec::new()
    };
    Ok(ObservedState { containers, networks, volumes, images: BTreeMap::new() })
}

/// What `stop`/`start`/`restart`/`kill`/`pause`/`rm` decide from: the project's service
/// containers, as [`containers`] lists them.
pub async fn for_lifecycle(engine: &Engine, p: &Project) -> Result<ObservedState, PlanError> {
    let containers = containers(engine, &p.name).await?;
    Ok(ObservedState { containers, ..Default::default() })
}
