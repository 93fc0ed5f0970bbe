//! Compose with images from a registry: `up` from an empty state root pulls the services'
//! images from a real registry on loopback; `pull_policy`, `up --pull`, `berth pull` and
//! `berth push` as compose has them.

use berth_testsupport::registry::{Registry, RegistryAuth};

use crate::compose_support::{LONG, Project};

/// A project whose root has `bb:latest` pushed to `reg` as `stack/web:1` and `stack/db:1`,
/// then every image removed from the root.
fn setup(prefix: &str, reg: &Registry) -> Option<Project> {
    let p = Project::new(prefix, "services: {}\n")?;
    for name in ["web", "db"] {
        let r = format!("{}/stack/{name}:1", reg.addr);
        p.env.ok(&["image", "tag", "bb:latest", &r]);
        p.env.ok(&["image", "push", "-q", &r]);
        p.env.ok(&["image", "rm", &r]);
    }
    p.env.ok(&["image", "rm", "bb:latest"]);
    p.env.ok(&["image", "prune", "-a", "--force"]);
    assert_eq!(p.env.ok(&["image", "ls", "-q"]), "");
    assert!(std::fs::read_dir(p.env.path().join("images/layers")).unwrap().next().is_none());
    Some(p)
}

#[test]
fn up_pulls_the_images_of_a_stack_from_the_registry_into_an_empty_root() {
    let reg = Registry::start(RegistryAuth::None);
    let Some(p) = setup("creg", &reg) else { return };
    p.write(&format!(
        "services:\n  web:\n    image: {0}/stack/web:1\n    command: {LONG}\n    depends_on: [db]\n  db:\n    image: {0}/stack/db:1\n    command: {LONG}\n    pull_policy: daily\n",
        reg.addr
    ));
    let (_, err) = p.ok(&["--progress", "plain", "up", "-d"]);
    assert!(err.contains(&format!("Image {}/stack/web:1  Pulled", reg.addr)), "{err}");
    assert!(err.contains(&format!("Image {}/stack/db:1  Pulled", reg.addr)), "{err}");
    assert!(err.contains("Container"), "{err}");
    assert_eq!(p.containers(), vec![p.cname("db", 1), p.cname("web", 1)]);
    assert_eq!(p.inspect(&p.cname("web", 1), "{{.State.Status}}"), "running");
    // The two images are one image under two names: one layer stored.
    assert_eq!(std::fs::read_dir(p.env.path().join("images/layers")).unwrap().count(), 1);
    let digests = p.env.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RepoDigests}}",
        &format!("{}/stack/web:1", reg.addr),
    ]);
    assert!(digests.contains(&format!("{}/stack/web@sha256:", reg.addr)), "{digests}");

    // Present: `missing` (web's default) and `daily` (db, pulled just now) pull nothing.
    let (_, err) = p.ok(&["--progress", "plain", "up", "-d"]);
    assert!(!err.contains("Pulling"), "{err}");
    // `up --pull always` pulls both again (up to date: nothing recreated).
    let (_, err) = p.ok(&["--progress", "plain", "up", "-d", "--pull", "always"]);
    assert_eq!(err.matches("  Pulled").count(), 2, "{err}");
    // `berth pull`: every service; an unknown tag fails unless failures are ignored.
    let (_, err) = p.ok(&["--progress", "plain", "pull"]);
    assert_eq!(err.matches("  Pulled").count(), 2, "{err}");
    p.write(&format!(
        "services:\n  web:\n    image: {0}/stack/web:1\n    command: {LONG}\n  gone:\n    image: {0}/stack/gone:1\n",
        reg.addr
    ));
    let out = p.run(&["pull", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "service \"gone\": pulling {0}/stack/gone:1: manifest for {0}/stack/gone:1 not found",
            reg.addr
        )),
        "{err}"
    );
    let (_, err) = p.ok(&["pull", "-q", "--ignore-pull-failures"]);
    assert!(err.contains("WARN") && err.contains("gone"), "{err}");
    let (_, err) = p.ok(&["pull", "-q", "--policy", "missing", "web"]);
    assert_eq!(err, "");
    // `berth push` of a service's image.
    p.write(&format!(
        "services:\n  web:\n    image: {0}/stack/web:1\n    command: {LONG}\n  copy:\n    image: {0}/stack/copy:2\n    command: {LONG}\n",
        reg.addr
    ));
    p.env.ok(&[
        "image",
        "tag",
        &format!("{}/stack/web:1", reg.addr),
        &format!("{}/stack/copy:2", reg.addr),
    ]);
    let (_, err) = p.ok(&["--progress", "plain", "push", "copy"]);
    assert!(err.contains(&format!("Image {}/stack/copy:2  Pushed", reg.addr)), "{err}");
    assert!(err.contains("Mounted from stack/") || err.contains("Layer already exists"), "{err}");
}

#[test]
fn pull_policy_never_with_a_missing_image_fails_before_anything_is_created() {
    let reg = Registry::start(RegistryAuth::None);
    let Some(p) = setup("cnev", &reg) else { return };
    p.write(&format!(
        "services:\n  web:\n    image: {0}/stack/web:1\n    command: {LONG}\n  local:\n    image: {0}/stack/db:1\n    pull_policy: never\n    command: {LONG}\nnetworks:\n  extra: {{}}\nvolumes:\n  data: {{}}\n",
        reg.addr
    ));
    let out = p.run(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "service \"local\": image \"{}/stack/db:1\" not found and its pull_policy is never",
            reg.addr
        )),
        "{err}"
    );
    assert!(p.containers().is_empty());
    assert!(p.networks().is_empty());
    assert_eq!(p.env.ok(&["image", "ls", "-q"]), "", "nothing pulled either");
    assert_eq!(p.env.ok(&["volume", "ls", "-q"]), "");
    // A policy that is not compose's is refused by the loader, naming the key.
    p.write(&format!(
        "services:\n  web:\n    image: {}/stack/web:1\n    pull_policy: sometimes\n",
        reg.addr
    ));
    let out = p.run(&["up", "-d"]);
    assert_eq!(out.status.code(), Some(15));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pull_policy"));
    p.write("services: {}\n");
}

#[test]
fn run_pulls_a_missing_image_first() {
    let reg = Registry::start(RegistryAuth::None);
    let Some(p) = setup("crun", &reg) else { return };
    p.write(&format!("services:\n  job:\n    image: {}/stack/web:1\n", reg.addr));
    let (out, _) = p.ok(&["run", "--rm", "--quiet-pull", "job", "echo", "pulled-and-ran"]);
    assert_eq!(out, "pulled-and-ran\n");
    let ls = p.env.ok(&["image", "ls", "--format", "json"]);
    assert!(ls.contains("stack/web"), "{ls}");
}
