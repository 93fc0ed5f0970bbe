//! Plans built against a real (empty) state root: ordering, waits, scale numbering.

use berth_planner::ops::{UpOptions, plan_up};
use berth_planner::plan::Action;
use berth_runtime::{Engine, EngineOptions};
use compose_spec::loader::LoadOptions;
use compose_spec::model::Project;

fn setup(yaml: &str) -> (tempfile::TempDir, Engine, Project) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine =
        Engine::open(EngineOptions::new(dir.path().join("root"))).expect("engine on temp root");
    let tar = dir.path().join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).expect("busybox tar");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let file = std::fs::File::open(&tar).expect("open tar");
    rt.block_on(engine.image_import(Box::new(file), Some("bb".into()), Vec::new()))
        .expect("import");
    let opts = LoadOptions {
        working_dir: dir.path().to_path_buf(),
        files: vec!["-".into()],
        stdin: Some(yaml.to_string()),
        project_name: Some("t".into()),
        ..Default::default()
    };
    let (p, _) = compose_spec::load_project(&opts).expect("load project");
    (dir, engine, p)
}

fn plan(engine: &Engine, p: &Project, opts: &UpOptions) -> Vec<Action> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let observed = rt.block_on(berth_planner::observe::for_up(engine, p)).expect("observe");
    let plan = plan_up(p, &observed, opts).expect("plan");
    plan.ordered().into_iter().cloned().collect()
}

fn names(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.summary().1.to_string()).collect()
}

#[test]
fn dependencies_first_with_wait_nodes() {
    if !berth_testsupport::require_root() {
        return;
    }
    let (_d, engine, p) = setup(
        "services:\n  web:\n    image: bb\n    depends_on:\n      api: {condition: service_healthy}\n  api:\n    image: bb\n    depends_on: [db]\n  db:\n    image: bb\n",
    );
    let order = names(&plan(&engine, &p, &UpOptions::default()));
    let pos = |n: &str| order.iter().position(|x| x == n).expect(n);
    assert!(pos("t-db-1") < pos("t-api-1"), "{order:?}");
    // The wait on api (named after the dependency) sits between api and web.
    assert!(pos("t-api-1") < pos("api") && pos("api") < pos("t-web-1"), "{order:?}");
}

#[test]
fn scale_numbers_and_no_start() {
    if !berth_testsupport::require_root() {
        return;
    }
    let (_d, engine, p) = setup("services:\n  w:\n    image: bb\n    deploy:\n      replicas: 3\n");
    let opts = UpOptions { no_start: true, ..Default::default() };
    let actions = plan(&engine, &p, &opts);
    let mut n = names(&actions);
    n.sort();
    // The default network comes first (created only because a service uses it).
    assert_eq!(n, vec!["t-w-1", "t-w-2", "t-w-3", "t_default"]);
    assert!(matches!(actions[0], Action::CreateNetwork { .. }), "{actions:?}");
    assert!(actions[1..].iter().all(|a| matches!(a, Action::Create { start: false, .. })));
    let mut scale = std::collections::HashMap::new();
    scale.insert("w".to_string(), 1);
    let one = plan(&engine, &p, &UpOptions { scale, ..Default::default() });
    assert_eq!(names(&one), vec!["t_default", "t-w-1"]);
}
