//! The planner's decisions, tested without root, an Engine or an image: a project loaded from
//! YAML and a literal [`ObservedState`] go in, the `--dry-run` lines (` Container t-web-1
//! Started`, as the plain progress prints them, without the DRY-RUN prefix) come out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use berth_planner::observe::{Observed, ObservedImage, ObservedNetwork, ObservedState};
use berth_planner::ops::{
    DownOptions, Lifecycle, UpOptions, network_request, plan_down, plan_lifecycle, plan_up,
};
use berth_planner::plan::{Action, Plan};
use berth_planner::{Event, PlanError, Progress, labels};
use berth_runtime::container::ContainerSummary;
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;
use indexmap::IndexMap;

const IMAGE_ID: &str = "sha256:0123456789abcdef";

/// Project `t` from a compose file given inline.
fn project(yaml: &str) -> Project {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LoadOptions {
        working_dir: dir.path().to_path_buf(),
        files: vec!["-".into()],
        stdin: Some(yaml.to_string()),
        project_name: Some("t".into()),
        ..Default::default()
    };
    compose_spec::load_project(&opts).expect("load project").0
}

/// A container of service `svc`, replica `n`, labelled as `up` labels it (its config hash is
/// the service's current one unless `hash` says otherwise).
fn container(p: &Project, svc: &str, n: u32, state: &str, hash: Option<&str>) -> Observed {
    let current = p.services.get(svc).map(compose_spec::service_hash).unwrap_or_default();
    let mut l = IndexMap::new();
    l.insert(labels::PROJECT.to_string(), p.name.clone());
    l.insert(labels::SERVICE.to_string(), svc.to_string());
    l.insert(labels::NUMBER.to_string(), n.to_string());
    l.insert(labels::CONFIG_HASH.to_string(), hash.unwrap_or(&current).to_string());
    l.insert(labels::IMAGE.to_string(), IMAGE_ID.to_string());
    Observed::from_summary(ContainerSummary {
        id: format!("{svc}{n:060}"),
        names: vec![format!("/t-{svc}-{n}")],
        image: "bb".into(),
        labels: l,
        state: state.into(),
        ..Default::default()
    })
}

/// A `run` one-off of `svc`.
fn oneoff(p: &Project, svc: &str, slug: &str) -> Observed {
    let mut c = container(p, svc, 1, "running", None);
    c.summary.labels.insert(labels::ONEOFF.into(), "True".into());
    c.summary.names = vec![format!("/t-{svc}-run-{slug}")];
    Observed::from_summary(c.summary)
}

/// Network `key` of `p` as `up` created it (same config hash), with `attached` containers.
fn network(p: &Project, key: &str, attached: &[&str]) -> ObservedNetwork {
    let req = network_request(p, key, &p.networks[key]);
    ObservedNetwork {
        name: req.name,
        labels: req.labels.into_iter().collect(),
        containers: attached.iter().map(|s| s.to_string()).collect(),
    }
}

/// What exists: `containers`, `networks`, and the image `bb`.
fn state(containers: Vec<Observed>, networks: Vec<ObservedNetwork>) -> ObservedState {
    let mut images = BTreeMap::new();
    images.insert("bb".to_string(), ObservedImage::Present(IMAGE_ID.into()));
    ObservedState { containers, networks, volumes: Vec::new(), images }
}

/// The `--dry-run` lines of `plan`.
fn dry_run(plan: &Plan) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let progress: Progress = Arc::new(move |e: Event| {
        if let Ok(mut l) = sink.lock() {
            l.push(format!("{} {}  {}", e.kind, e.name, e.status));
        }
    });
    plan.dry_run(&progress);
    lines.lock().map(|l| l.clone()).unwrap_or_default()
}

/// The action `plan` holds for `name` (the first one, in execution order).
fn action<'a>(plan: &'a Plan, name: &str) -> &'a Action {
    plan.ordered().into_iter().find(|a| a.summary().1 == name).expect(name)
}

const ONE: &str = "services:\n  web:\n    image: bb\n";

#[test]
fn fresh_project_creates_network_then_container() {
    let p = project(ONE);
    let plan = plan_up(&p, &state(vec![], vec![]), &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Network t_default  Created", "Container t-web-1  Started"]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn unchanged_running_container_is_kept() {
    let p = project(ONE);
    let obs = state(
        vec![container(&p, "web", 1, "running", None)],
        vec![network(&p, "default", &["t-web-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Running"]);
    assert!(matches!(action(&plan, "t-web-1"), Action::Keep { .. }));
    // A stopped one is started, not recreated.
    let obs =
        state(vec![container(&p, "web", 1, "exited", None)], vec![network(&p, "default", &[])]);
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Started"]);
    assert!(matches!(action(&plan, "t-web-1"), Action::Start { .. }));
}

#[test]
fn changed_config_hash_recreates() {
    let p = project(ONE);
    let obs = state(
        vec![container(&p, "web", 1, "running", Some("old-hash"))],
        vec![network(&p, "default", &["t-web-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Started"]);
    assert!(matches!(action(&plan, "t-web-1"), Action::Recreate { start: true, .. }));
    // --no-recreate keeps it; --force-recreate recreates an unchanged one.
    let keep = UpOptions { no_recreate: true, ..Default::default() };
    let plan = plan_up(&p, &obs, &keep).expect("plan");
    assert!(matches!(action(&plan, "t-web-1"), Action::Keep { .. }));
    let same = state(
        vec![container(&p, "web", 1, "running", None)],
        vec![network(&p, "default", &["t-web-1"])],
    );
    let force = UpOptions { force_recreate: true, ..Default::default() };
    let plan = plan_up(&p, &same, &force).expect("plan");
    assert!(matches!(action(&plan, "t-web-1"), Action::Recreate { .. }));
}

#[test]
fn scale_up_fills_gaps_with_lowest_numbers() {
    let p = project("services:\n  w:\n    image: bb\n    deploy:\n      replicas: 3\n");
    let obs = state(
        vec![container(&p, "w", 1, "running", None), container(&p, "w", 3, "running", None)],
        vec![network(&p, "default", &["t-w-1", "t-w-3"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    let mut lines = dry_run(&plan);
    lines.sort();
    assert_eq!(
        lines,
        ["Container t-w-1  Running", "Container t-w-2  Started", "Container t-w-3  Running"]
    );
    assert!(matches!(action(&plan, "t-w-2"), Action::Create { .. }));
}

#[test]
fn scale_down_removes_highest_numbers() {
    let p = project("services:\n  w:\n    image: bb\n    deploy:\n      replicas: 3\n");
    let obs = state(
        (1..=3).map(|n| container(&p, "w", n, "running", None)).collect(),
        vec![network(&p, "default", &["t-w-1", "t-w-2", "t-w-3"])],
    );
    let mut scale = std::collections::HashMap::new();
    scale.insert("w".to_string(), 1);
    let plan = plan_up(&p, &obs, &UpOptions { scale, ..Default::default() }).expect("plan");
    let lines = dry_run(&plan);
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "Container t-w-1  Running",
            "Container t-w-2  Removed",
            "Container t-w-2  Stopped",
            "Container t-w-3  Removed",
            "Container t-w-3  Stopped",
        ]
    );
    // Each goes stopped before it is removed.
    for n in ["t-w-2", "t-w-3"] {
        let at = |s: &str| lines.iter().position(|l| l == &format!("Container {n}  {s}"));
        assert!(at("Stopped") < at("Removed"), "{lines:?}");
    }
}

#[test]
fn orphans_warned_or_removed() {
    let p = project(ONE);
    let obs = state(
        vec![container(&p, "web", 1, "running", None), container(&p, "old", 1, "running", None)],
        vec![network(&p, "default", &["t-web-1", "t-old-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Running"]);
    assert_eq!(
        plan.warnings,
        [
            "Found orphan containers ([t-old-1]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up."
        ]
    );
    let opts = UpOptions { remove_orphans: true, ..Default::default() };
    let plan = plan_up(&p, &obs, &opts).expect("plan");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert_eq!(
        dry_run(&plan),
        ["Container t-web-1  Running", "Container t-old-1  Stopped", "Container t-old-1  Removed"]
    );
}

#[test]
fn dependencies_come_first_with_a_wait_for_healthy() {
    let p = project(
        "services:\n  web:\n    image: bb\n    depends_on:\n      api: {condition: service_healthy}\n  api:\n    image: bb\n    depends_on: [db]\n  db:\n    image: bb\n",
    );
    let plan = plan_up(&p, &state(vec![], vec![]), &UpOptions::default()).expect("plan");
    assert_eq!(
        dry_run(&plan),
        [
            "Network t_default  Created",
            "Container t-db-1  Started",
            "Container t-api-1  Started",
            "Service api  Healthy",
            "Container t-web-1  Started",
        ]
    );
    // `up web --no-deps` plans web alone.
    let opts = UpOptions { services: vec!["web".into()], no_deps: true, ..Default::default() };
    let plan = plan_up(&p, &state(vec![], vec![]), &opts).expect("plan");
    assert_eq!(dry_run(&plan), ["Network t_default  Created", "Container t-web-1  Started"]);
}

#[test]
fn one_offs_are_not_replicas_nor_orphans_for_up() {
    let p = project(ONE);
    let obs = state(
        vec![container(&p, "web", 1, "running", None), oneoff(&p, "web", "0123456789ab")],
        vec![network(&p, "default", &["t-web-1", "t-web-run-0123456789ab"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Running"]);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn missing_image_is_an_error_naming_the_service() {
    let p = project(ONE);
    let obs = ObservedState::default();
    match plan_up(&p, &obs, &UpOptions::default()) {
        Err(PlanError::Invalid { service, message }) => {
            assert_eq!(service, "web");
            assert!(message.starts_with("image \"bb\" not found"), "{message}");
        }
        other => panic!("expected a missing-image error, got {other:?}"),
    }
}

#[test]
fn changed_network_is_recreated_with_its_containers() {
    let p = project(ONE);
    let mut net = network(&p, "default", &["t-web-1"]);
    net.labels.insert(labels::CONFIG_HASH.into(), "old-hash".into());
    let obs = state(vec![container(&p, "web", 1, "running", None)], vec![net]);
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(
        dry_run(&plan),
        [
            "Container t-web-1  Stopped",
            "Network t_default  Removed",
            "Network t_default  Created",
            "Container t-web-1  Started",
        ]
    );
    assert!(matches!(action(&plan, "t-web-1"), Action::Stop { .. }));
}

#[test]
fn down_stops_dependents_first_and_removes_one_offs_and_networks() {
    let p = project(
        "services:\n  web:\n    image: bb\n    depends_on: [db]\n  db:\n    image: bb\nnetworks:\n  ext:\n    external: true\n",
    );
    let mut ext = network(&p, "ext", &[]);
    ext.labels.insert(labels::PROJECT.into(), "t".into());
    let obs = state(
        vec![
            container(&p, "db", 1, "running", None),
            container(&p, "web", 1, "running", None),
            oneoff(&p, "web", "0123456789ab"),
        ],
        vec![network(&p, "default", &["t-db-1", "t-web-1"]), ext],
    );
    let plan = plan_down(&p, &obs, &DownOptions::default()).expect("plan");
    let lines = dry_run(&plan);
    let at =
        |l: &str| lines.iter().position(|x| x == l).unwrap_or_else(|| panic!("{l}: {lines:?}"));
    assert!(at("Container t-web-1  Stopped") < at("Container t-db-1  Stopped"), "{lines:?}");
    assert!(at("Container t-db-1  Stopped") < at("Container t-db-1  Removed"), "{lines:?}");
    // As today: a one-off goes with the project (compose: only with --remove-orphans).
    assert!(at("Container t-web-run-0123456789ab  Stopped") < at("Network t_default  Removed"));
    at("Container t-web-run-0123456789ab  Removed");
    // The external network stays.
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("ext")), "{lines:?}");
}

#[test]
fn down_keeps_orphans_unless_asked_and_removes_volumes_with_v() {
    let p = project("services:\n  web:\n    image: bb\nvolumes:\n  data: {}\n");
    let mut obs = state(
        vec![container(&p, "web", 1, "exited", None), container(&p, "old", 1, "exited", None)],
        vec![],
    );
    obs.volumes = vec!["t_data".into()];
    let plan = plan_down(&p, &obs, &DownOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Removed"]);
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    let opts = DownOptions { remove_orphans: true, volumes: true, ..Default::default() };
    let plan = plan_down(&p, &obs, &opts).expect("plan");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let mut lines = dry_run(&plan);
    assert_eq!(lines.pop().as_deref(), Some("Volume t_data  Removed"), "{lines:?}");
    lines.sort();
    assert_eq!(lines, ["Container t-old-1  Removed", "Container t-web-1  Removed"]);
}

#[test]
fn stop_reverses_and_start_follows_dependency_order() {
    let p =
        project("services:\n  web:\n    image: bb\n    depends_on: [db]\n  db:\n    image: bb\n");
    let obs = state(
        vec![
            container(&p, "db", 1, "running", None),
            container(&p, "web", 1, "running", None),
            oneoff(&p, "db", "0123456789ab"),
        ],
        vec![],
    );
    let plan = plan_lifecycle(&p, &[], Lifecycle::Stop(None), &obs).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Stopped", "Container t-db-1  Stopped"]);
    // Start skips what runs.
    let plan = plan_lifecycle(&p, &[], Lifecycle::Start, &obs).expect("plan");
    assert!(dry_run(&plan).is_empty());
    let stopped = state(
        vec![container(&p, "db", 1, "exited", None), container(&p, "web", 1, "exited", None)],
        vec![],
    );
    let plan = plan_lifecycle(&p, &[], Lifecycle::Start, &stopped).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-db-1  Started", "Container t-web-1  Started"]);
    // `rm` leaves running containers alone unless told to stop them.
    let rm = Lifecycle::Remove { stop: false, volumes: false };
    assert!(dry_run(&plan_lifecycle(&p, &[], rm, &obs).expect("plan")).is_empty());
    let plan = plan_lifecycle(&p, &["web".into()], Lifecycle::Kill(None), &obs).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Killed"]);
    assert!(matches!(
        plan_lifecycle(&p, &["nope".into()], Lifecycle::Start, &obs),
        Err(PlanError::NoSuchService(s)) if s == "nope"
    ));
}

#[test]
fn dependents_with_restart_true_restart_when_their_dependency_is_recreated() {
    let p = project(
        "services:\n  web:\n    image: bb\n    depends_on:\n      db: {condition: service_started, restart: true}\n  db:\n    image: bb\n",
    );
    let obs = state(
        vec![
            container(&p, "db", 1, "running", Some("old-hash")),
            container(&p, "web", 1, "running", None),
        ],
        vec![network(&p, "default", &["t-db-1", "t-web-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-db-1  Started", "Container t-web-1  Started"]);
    assert!(matches!(action(&plan, "t-db-1"), Action::Recreate { .. }));
    assert!(matches!(action(&plan, "t-web-1"), Action::Restart { .. }));
}

#[test]
fn dead_container_is_removed_and_its_replica_made_again() {
    let p = project(ONE);
    let obs = state(
        vec![container(&p, "web", 1, "dead", None)],
        vec![network(&p, "default", &["t-web-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    assert_eq!(dry_run(&plan), ["Container t-web-1  Removed", "Container t-web-1  Started"]);
    assert!(matches!(action(&plan, "t-web-1"), Action::Remove { force: true, .. }));
}

#[test]
fn interrupted_recreate_leftover_is_removed() {
    let p = project(ONE);
    let mut left = container(&p, "web", 1, "created", None);
    left.name = "0123456789ab_t-web-1".into();
    let obs = state(
        vec![container(&p, "web", 1, "running", None), left],
        vec![network(&p, "default", &["t-web-1"])],
    );
    let plan = plan_up(&p, &obs, &UpOptions::default()).expect("plan");
    let mut lines = dry_run(&plan);
    lines.sort();
    assert_eq!(lines, ["Container 0123456789ab_t-web-1  Removed", "Container t-web-1  Running"]);
}
