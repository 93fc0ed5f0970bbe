//! `pull` and the image step of `up`: which services' images to fetch under compose's pull
//! policies (`always`, `missing`/`if_not_present`, `never`, `build`, `daily`, `weekly`,
//! `every_<duration>`), fetched in parallel (one pull per distinct image; layers shared between
//! them are fetched once by the image store's locks), with per-image and per-layer progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::registry::{self, Platform, Progress as PullProgress, PullOptions};
use berth_image::{ImageError, ImageStore};
use berth_runtime::Engine;
use compose_spec::model::Project;
use tokio::task::JoinSet;

use crate::{PlanError, Progress, emit};

/// A service's pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull when the image is not here (compose's default).
    Missing,
    /// Never pull; a missing image is an error.
    Never,
    /// The image is built, not pulled.
    Build,
    /// Pull when missing or last pulled longer ago than this (`daily`, `weekly`, `every_…`).
    Every(Duration),
}

impl PullPolicy {
    /// Parses compose's names: `always`, `missing`, `if_not_present`, `never`, `build`,
    /// `daily`, `weekly`, `every_12h`, `every_1h30m`, `every_2d`, `refresh` (as `always`).
    pub fn parse(s: &str) -> Result<PullPolicy, String> {
        Ok(match s {
            "always" | "refresh" => PullPolicy::Always,
            "missing" | "if_not_present" => PullPolicy::Missing,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            "daily" => PullPolicy::Every(Duration::from_secs(86_400)),
            "weekly" => PullPolicy::Every(Duration::from_secs(7 * 86_400)),
            _ => match s.strip_prefix("every_").and_then(parse_duration) {
                Some(d) => PullPolicy::Every(d),
                None => return Err(format!("\"{s}\" is not a valid pull policy")),
            },
        })
    }
}

/// `1h30m`, `12h`, `30m`, `45s`, `2d`, `1w` (units may be combined; no unit: seconds).
fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(unit)?)?;
        num.clear();
    }
    if !num.is_empty() {
        total = total.checked_add(num.parse().ok()?)?;
    }
    (total > 0).then(|| Duration::from_secs(total))
}

/// What `pull` does.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// Services named (empty: all).
    pub services: Vec<String>,
    /// Also the services they depend on (`--include-deps`; `up` always does unless `--no-deps`).
    pub include_deps: bool,
    /// A policy for every service (`pull --policy`, `up --pull`), instead of theirs.
    pub policy: Option<PullPolicy>,
    /// Failures are warnings (`--ignore-pull-failures`).
    pub ignore_failures: bool,
    /// The image step of `up`: services without a policy pull only what is missing, and ones
    /// with `build:` are left to the builder. (`berth pull` pulls every image.)
    pub for_up: bool,
}

/// Layer progress is shown at most this often per layer.
const BYTES_EVERY: Duration = Duration::from_millis(500);

/// The image-step events: `Image REF Pulling/Pulled/Error` and `Layer ID Downloading/…`.
fn layer_sink(progress: &Progress) -> registry::ProgressSink {
    let p = progress.clone();
    let last: Mutex<HashMap<String, Instant>> = Mutex::new(HashMap::new());
    Arc::new(move |e: PullProgress| match e {
        PullProgress::Layers(ids) => {
            for id in ids {
                emit(&p, "Layer", &id, "Pulling fs layer", false);
            }
        }
        PullProgress::Exists(id) => emit(&p, "Layer", &id, "Already exists", true),
        PullProgress::Waiting(id) => emit(&p, "Layer", &id, "Waiting", false),
        PullProgress::Bytes { id, current, total } => {
            let now = Instant::now();
            let mut l = last.lock().unwrap_or_else(|p| p.into_inner());
            if l.get(&id).is_some_and(|t| now.duration_since(*t) < BYTES_EVERY) {
                return;
            }
            l.insert(id.clone(), now);
            let status = match total {
                Some(t) => format!("Downloading {}/{}", mb(current), mb(t)),
                None => format!("Downloading {}", mb(current)),
            };
            emit(&p, "Layer", &id, &status, false);
        }
        PullProgress::Done(id) => emit(&p, "Layer", &id, "Pull complete", true),
        PullProgress::Mounted { id, .. } => emit(&p, "Layer", &id, "Mounted", true),
        PullProgress::Failed(id) => emit(&p, "Layer", &id, "Error", true),
    })
}

fn mb(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}MB", n as f64 / 1e6)
    } else {
        format!("{:.1}kB", n as f64 / 1e3)
    }
}

/// One image to pull and the services that use it.
struct Wanted {
    services: Vec<String>,
    platform: Option<Platform>,
}

/// Whether `svc` should pull `image` now under `policy`.
fn should_pull(
    store: &ImageStore,
    svc: &str,
    image: &str,
    policy: PullPolicy,
) -> Result<bool, PlanError> {
    let present = match store.resolve_id(image) {
        Ok(_) => true,
        Err(ImageError::NoSuchImage(_)) => false,
        // A damaged store, an ambiguous id...: said as the planner says it.
        Err(e) => {
            return Err(PlanError::Invalid {
                service: svc.to_string(),
                message: format!("image {image:?}: {e}"),
            });
        }
    };
    Ok(match policy {
        PullPolicy::Always => true,
        PullPolicy::Missing => !present,
        PullPolicy::Build => false,
        PullPolicy::Never => {
            if !present {
                return Err(PlanError::Invalid {
                    service: svc.to_string(),
                    message: format!(
                        "image {image:?} not found and its pull_policy is never: pull, import or load it first"
                    ),
                });
            }
            false
        }
        PullPolicy::Every(period) => {
            let last = store
                .last_pulled(image)
                .map_err(|e| PlanError::Image { name: image.to_string(), source: e })?;
            let stale = last.is_none_or(|t| t.elapsed().map(|age| age >= period).unwrap_or(false));
            !present || stale
        }
    })
}

/// Pulls the images of the selected services as their policies say. Returns the warnings of
/// ignored failures. Every check (`never` with a missing image, a bad policy or platform) is
/// made before the first request, so a refusal changes nothing.
pub async fn pull(
    engine: &Engine,
    p: &Project,
    req: &PullRequest,
    progress: &Progress,
) -> Result<Vec<String>, PlanError> {
    let services = super::selected_services(p, &req.services, req.include_deps)?;
    let store = engine.images().map_err(|e| PlanError::Image { name: String::new(), source: e })?;
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    let mut warnings = Vec::new();
    for svc in &services {
        let Some(s) = p.services.get(svc) else { continue };
        if s.image.is_none() && (s.build.is_some() || req.for_up) {
            continue; // only built: nothing to pull
        }
        let image = p.image_name(svc);
        let own = match &s.pull_policy {
            Some(pp) => Some(
                PullPolicy::parse(pp)
                    .map_err(|message| PlanError::Invalid { service: svc.clone(), message })?,
            ),
            None => None,
        };
        let policy = match (req.policy, own) {
            (Some(p), _) => p,
            (None, Some(o)) => o,
            (None, None) if req.for_up && s.build.is_some() => PullPolicy::Build,
            (None, None) if req.for_up => PullPolicy::Missing,
            (None, None) => PullPolicy::Always,
        };
        // `berth pull` skips what is never pulled and pulls the rest (compose does the same),
        // unless `--policy` said otherwise.
        let policy = match (req.for_up, req.policy, policy) {
            (false, None, PullPolicy::Never | PullPolicy::Build) => continue,
            (false, None, _) => PullPolicy::Always,
            (_, _, p) => p,
        };
        if !should_pull(&store, svc, &image, policy)? {
            continue;
        }
        let platform = match &s.platform {
            Some(pl) => Some(Platform::parse(pl).map_err(|e| PlanError::Invalid {
                service: svc.clone(),
                message: format!("platform: {e}"),
            })?),
            None => None,
        };
        if let Err(e) = berth_image::Reference::parse(&image) {
            return Err(PlanError::Invalid {
                service: svc.clone(),
                message: format!("image: {e}"),
            });
        }
        let w = wanted.entry(image).or_insert(Wanted { services: Vec::new(), platform: None });
        w.services.push(svc.clone());
        w.platform = w.platform.take().or(platform);
    }
    let mut set = JoinSet::new();
    for (image, w) in wanted {
        let (store, progress) = (store.clone(), progress.clone());
        set.spawn(async move {
            emit(&progress, "Image", &image, "Pulling", false);
            let opts = PullOptions {
                platform: w.platform,
                progress: Some(layer_sink(&progress)),
                ..Default::default()
            };
            let r = registry::pull(&store, &image, &opts).await;
            if r.is_ok() {
                berth_runtime::events::image_pulled(store.state_root().path(), &image);
            }
            emit(&progress, "Image", &image, if r.is_ok() { "Pulled" } else { "Error" }, true);
            (image, w.services, r)
        });
    }
    let mut first_err = None;
    while let Some(res) = set.join_next().await {
        let (image, services, r) = match res {
            Ok(v) => v,
            Err(e) => {
                first_err.get_or_insert(PlanError::Image { name: String::new(), source: e.into() });
                continue;
            }
        };
        if let Err(e) = r {
            if req.ignore_failures {
                warnings.push(format!("{}: {e}", services.join(", ")));
            } else if first_err.is_none() {
                first_err = Some(PlanError::Invalid {
                    service: services.join(", "),
                    message: format!("pulling {image}: {e}"),
                });
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(warnings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_like_compose() {
        assert_eq!(PullPolicy::parse("if_not_present"), Ok(PullPolicy::Missing));
        assert_eq!(PullPolicy::parse("daily"), Ok(PullPolicy::Every(Duration::from_secs(86_400))));
        assert_eq!(
            PullPolicy::parse("every_1h30m"),
            Ok(PullPolicy::Every(Duration::from_secs(5400)))
        );
        assert_eq!(
            PullPolicy::parse("every_2d"),
            Ok(PullPolicy::Every(Duration::from_secs(172_800)))
        );
        assert_eq!(PullPolicy::parse("every_90"), Ok(PullPolicy::Every(Duration::from_secs(90))));
        for bad in ["sometimes", "every_", "every_0s", "every_5x", "every_h"] {
            assert!(PullPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}

/// What `push` does.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// Services named (empty: all).
    pub services: Vec<String>,
    /// Also the services they depend on.
    pub include_deps: bool,
    /// Failures are warnings (`--ignore-push-failures`).
    pub ignore_failures: bool,
}

/// compose's `push`: the image of every selected service that names one (`image:`), one push
/// per distinct image. Returns the warnings of ignored failures.
pub async fn push(
    engine: &Engine,
    p: &Project,
    req: &PushRequest,
    progress: &Progress,
) -> Result<Vec<String>, PlanError> {
    let services = super::selected_services(p, &req.services, req.include_deps)?;
    let store = engine.images().map_err(|e| PlanError::Image { name: String::new(), source: e })?;
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for svc in &services {
        if let Some(image) = p.services.get(svc).and_then(|s| s.image.clone()) {
            images.entry(image).or_default().push(svc.clone());
        }
    }
    let mut warnings = Vec::new();
    // One at a time, as compose: pushes of images sharing layers then find them there.
    for (image, services) in images {
        emit(progress, "Image", &image, "Pushing", false);
        let opts = registry::PushOptions {
            progress: Some(layer_sink_push(progress)),
            ..Default::default()
        };
        let r = registry::push(&store, &image, &opts).await;
        emit(progress, "Image", &image, if r.is_ok() { "Pushed" } else { "Error" }, true);
        if let Err(e) = r {
            if req.ignore_failures {
                warnings.push(format!("{}: {e}", services.join(", ")));
            } else {
                return Err(PlanError::Invalid {
                    service: services.join(", "),
                    message: format!("pushing {image}: {e}"),
                });
            }
        }
    }
    Ok(warnings)
}

/// Layer events of a push.
fn layer_sink_push(progress: &Progress) -> registry::ProgressSink {
    let p = progress.clone();
    let started: Mutex<std::collections::HashSet<String>> = Mutex::new(Default::default());
    Arc::new(move |e: PullProgress| match e {
        PullProgress::Exists(id) => emit(&p, "Layer", &id, "Layer already exists", true),
        PullProgress::Done(id) => emit(&p, "Layer", &id, "Pushed", true),
        PullProgress::Mounted { id, from } => {
            emit(&p, "Layer", &id, &format!("Mounted from {from}"), true)
        }
        PullProgress::Failed(id) => emit(&p, "Layer", &id, "Error", true),
        PullProgress::Bytes { id, .. } => {
            if started.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone()) {
                emit(&p, "Layer", &id, "Pushing", false);
            }
        }
        PullProgress::Layers(_) | PullProgress::Waiting(_) => {}
    })
}
