//! The container Engine API directly (no CLI): create rules, naming, lookup, inspect shape,
//! failed-create cleanup, and a full create/start/wait/logs/remove cycle.

use berth_runtime::container::{
    Config, ContainerCreateConfig, ContainerError, HostConfig, ListFilters, LogsOptions,
};
use berth_runtime::{Engine, EngineOptions};

fn berth_exe() -> Option<std::path::PathBuf> {
    // `berth` and the `berth-monitor` beside it, which the engine starts; cargo builds them
    // for the CLI's tests, not ours.
    let p = std::env::current_exe().ok()?.parent()?.parent()?.join("berth");
    p.exists().then_some(p)
}

/// Starts container `id`, waits for its exit (which must be 0) and returns its whole log.
async fn run_to_exit_0(engine: &Engine, id: &str) -> String {
    engine.container_start(id).await.unwrap();
    assert_eq!(engine.container_wait(id).await.unwrap(), 0);
    whole_log(engine, id).await
}

/// Container `id`'s whole log (stdout and stderr).
async fn whole_log(engine: &Engine, id: &str) -> String {
    let mut rx = engine
        .container_logs(id, LogsOptions { stdout: true, stderr: true, ..Default::default() })
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(e) = rx.recv().await {
        text.push_str(&e.text);
    }
    text
}

async fn engine_with_image(root: &std::path::Path) -> Engine {
    let engine =
        Engine::open(EngineOptions { root: root.join("state"), helper_exe: berth_exe() }).unwrap();
    let tar = root.join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).unwrap();
    let f = std::fs::File::open(&tar).unwrap();
    engine
        .image_import(
            Box::new(f),
            Some("bb:latest".into()),
            vec!["ENTRYPOINT [\"echo\", \"ep\"]".into(), "CMD [\"default\"]".into()],
        )
        .await
        .unwrap();
    engine
}

fn cfg(cmd: Option<&[&str]>) -> ContainerCreateConfig {
    ContainerCreateConfig {
        config: Config {
            image: "bb:latest".into(),
            cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn container_create_rules_and_lookup() {
    if !berth_testsupport::require_root() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    // Image entrypoint + image cmd; a request cmd replaces only the cmd.
    let a = engine.container_create(Some("a1"), cfg(None)).await.unwrap();
    let i = engine.container_inspect("a1").await.unwrap();
    assert_eq!(
        (i.path.as_str(), i.args.clone()),
        ("echo", vec!["ep".to_string(), "default".to_string()])
    );
    assert_eq!(i.name, "/a1");
    assert_eq!(i.state.status, "created");
    assert!(i.config.env.iter().any(|e| e.starts_with("PATH=")));
    let _b = engine.container_create(Some("b1"), cfg(Some(&["x"]))).await.unwrap();
    assert_eq!(engine.container_inspect("b1").await.unwrap().args, vec!["ep", "x"]);
    // An entrypoint in the request drops the image's cmd.
    let mut c = cfg(None);
    c.config.entrypoint = Some(vec!["true".into()]);
    engine.container_create(Some("c1"), c).await.unwrap();
    let i = engine.container_inspect("c1").await.unwrap();
    assert_eq!((i.path.as_str(), i.args.len()), ("true", 0));
    // Name conflicts, id prefix lookup.
    match engine.container_create(Some("a1"), cfg(None)).await {
        Err(ContainerError::NameInUse { id, .. }) => assert_eq!(id, a),
        other => panic!("expected a name conflict, got {other:?}"),
    }
    assert_eq!(engine.container_inspect(&a[..8]).await.unwrap().id, a);
    assert!(matches!(engine.container_inspect("nope").await, Err(ContainerError::NotFound(_))));
    // A failed create leaves nothing behind.
    let before = std::fs::read_dir(tmp.path().join("state/containers")).unwrap().count();
    let mut bad = cfg(None);
    bad.host_config = HostConfig { cap_add: vec!["NOT_A_CAP".into()], ..Default::default() };
    assert!(matches!(
        engine.container_create(Some("bad"), bad).await,
        Err(ContainerError::Invalid(_))
    ));
    let mut bad = cfg(None);
    bad.host_config.binds = vec!["/x:relative".into()];
    assert!(engine.container_create(Some("bad2"), bad).await.is_err());
    assert_eq!(std::fs::read_dir(tmp.path().join("state/containers")).unwrap().count(), before);
    let all = engine.container_list(true, &ListFilters::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    for n in ["a1", "b1", "c1"] {
        engine.container_remove(n, true, true).await.unwrap();
    }
}

#[tokio::test]
async fn container_run_cycle_through_the_api() {
    if !berth_testsupport::require_root() || berth_exe().is_none() {
        // The monitor binary is built by `cargo test -p berth-cli`; skip when it isn't there.
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let id = engine.container_create(None, cfg(Some(&["hello"]))).await.unwrap();
    let text = run_to_exit_0(&engine, &id).await;
    assert_eq!(text, "ep hello\n");
    let i = engine.container_inspect(&id).await.unwrap();
    assert_eq!((i.state.status.as_str(), i.state.exit_code, i.state.running), ("exited", 0, false));
    assert!(i.state.finished_at.ends_with('Z') && !i.state.finished_at.starts_with("0001"));
    engine.container_remove(&id, false, true).await.unwrap();
    assert!(!tmp.path().join("state/containers").join(&id).exists());
}

#[tokio::test]
async fn name_index_and_removal_aside() {
    if !berth_testsupport::require_root() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let containers = tmp.path().join("state/containers");
    let index = tmp.path().join("state/container-names");
    // Rename moves the name: the old one is free, the new one taken.
    let a = engine.container_create(Some("n1"), cfg(None)).await.unwrap();
    engine.container_rename("n1", "n2").await.unwrap();
    let b = engine.container_create(Some("n1"), cfg(None)).await.unwrap();
    match engine.container_create(Some("n2"), cfg(None)).await {
        Err(ContainerError::NameInUse { id, .. }) => assert_eq!(id, a),
        other => panic!("expected a name conflict, got {other:?}"),
    }
    assert_eq!(engine.container_inspect("n2").await.unwrap().id, a);
    // A state root without the index (made before it existed) gets it rebuilt from the records.
    std::fs::remove_dir_all(&index).unwrap();
    match engine.container_create(Some("n1"), cfg(None)).await {
        Err(ContainerError::NameInUse { id, .. }) => assert_eq!(id, b),
        other => panic!("expected a name conflict, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(index.join("n2")).unwrap(), a);
    // A stale entry (its container is gone) does not hold the name.
    std::fs::write(index.join("ghost"), "0".repeat(64)).unwrap();
    let g = engine.container_create(Some("ghost"), cfg(None)).await.unwrap();
    assert_eq!(engine.container_inspect("ghost").await.unwrap().id, g);
    // A new entry keeps the id in an xattr (no data block); one holding it as content still counts.
    assert_eq!(std::fs::metadata(index.join("ghost")).unwrap().len(), 0);
    match engine.container_create(Some("ghost"), cfg(None)).await {
        Err(ContainerError::NameInUse { id, .. }) => assert_eq!(id, g),
        other => panic!("expected a name conflict, got {other:?}"),
    }
    // A leftover of a crashed removal is invisible and deleted by the next listing.
    let left = containers.join(format!(".rm-{}", "f".repeat(64)));
    std::fs::create_dir_all(left.join("rootfs/upper/etc")).unwrap();
    std::fs::write(left.join("rootfs/upper/etc/x"), "x").unwrap();
    let all = engine.container_list(true, &ListFilters::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(!left.exists());
    // A `cp` overlay left mounted in the container's directory is unmounted, not deleted through.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "data").unwrap();
    let cp = containers.join(&g).join("cp");
    std::fs::create_dir_all(&cp).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    nix::mount::mount(
        Some(&outside),
        &cp,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let _unmount = Unmount(cp.clone());
    engine.container_remove("ghost", true, true).await.unwrap();
    assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "data");
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&g));
    // Removal leaves neither the directory, a `.rm-*` entry nor the index entry (only pool
    // entries: emptied directories kept for reuse).
    for n in ["n1", "n2"] {
        engine.container_remove(n, true, true).await.unwrap();
    }
    assert!(non_pool_entries(&containers).is_empty(), "{:?}", non_pool_entries(&containers));
    // Released index entries are kept in `.free/` for reuse, never as names.
    assert!(
        non_pool_entries(&index).iter().all(|n| n == ".free"),
        "{:?}",
        non_pool_entries(&index)
    );
}

#[tokio::test]
async fn killed_create_leftover_is_invisible_and_swept() {
    if !berth_testsupport::require_root() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let containers = tmp.path().join("state/containers");
    // What a create killed before publishing leaves: `.new-<id>` with some or all of its files.
    let dead = containers.join(format!(".new-{}", "a".repeat(64)));
    std::fs::create_dir_all(dead.join("rootfs/upper")).unwrap();
    std::fs::create_dir_all(dead.join("rootfs/work")).unwrap();
    std::fs::write(dead.join("hostname"), "x\n").unwrap();
    // A create in progress holds the directory's lock: its directory is left alone.
    let busy = containers.join(format!(".new-{}", "b".repeat(64)));
    std::fs::create_dir_all(&busy).unwrap();
    let lock = nix::fcntl::Flock::lock(
        std::fs::File::open(&busy).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    let id = engine.container_create(Some("kept"), cfg(None)).await.unwrap();
    let all = engine.container_list(true, &ListFilters::default()).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);
    assert!(!dead.exists(), "the killed create's directory is deleted by the listing");
    assert!(busy.exists(), "a directory whose create still runs is kept");
    assert!(engine.container_inspect(&"b".repeat(64)).await.is_err());
    drop(lock);
    engine.container_remove(&id, true, true).await.unwrap();
    // The removal sweeps the now unlocked leftover too (recycled or deleted).
    assert!(non_pool_entries(&containers).is_empty(), "{:?}", non_pool_entries(&containers));
}

#[tokio::test]
async fn mount_points_come_from_a_shared_layer_not_the_upper_dir() {
    if !berth_testsupport::require_root() || berth_exe().is_none() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let mut c = cfg(None);
    c.config.entrypoint = Some(vec!["sh".into(), "-c".into()]);
    c.config.cmd = Some(vec!["cat /etc/hostname && ls -ld /etc /proc /sys /dev".into()]);
    let id = engine.container_create(None, c).await.unwrap();
    let text = run_to_exit_0(&engine, &id).await;
    assert!(text.starts_with(&format!("{}\n", &id[..12])), "{text}");
    // Nothing was created in the container's writable layer to mount over.
    let upper = tmp.path().join("state/containers").join(&id).join("rootfs/upper");
    assert_eq!(std::fs::read_dir(&upper).unwrap().count(), 0);
    // The image's /etc keeps its mode in the merged view (the layer copies it).
    let etc_line = text.lines().find(|l| l.ends_with(" /etc")).unwrap().to_string();
    assert!(etc_line.starts_with("drwxr-xr-x"), "{etc_line}");
    engine.container_remove(&id, false, true).await.unwrap();
    assert!(non_pool_entries(&tmp.path().join("state/containers")).is_empty());
}

/// Entries of `containers/` that are not pool entries (`.free-*`).
fn non_pool_entries(containers: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(containers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".free-"))
        .collect()
}

/// Pool entries of `containers/`.
fn pool_entries(containers: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(containers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".free-"))
        .collect();
    v.sort();
    v
}

fn ino(p: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(p).unwrap())
}

/// A shell-script container of the test image (its entrypoint is `echo`).
fn sh(script: &str) -> ContainerCreateConfig {
    let mut c = cfg(Some(&[script]));
    c.config.entrypoint = Some(vec!["sh".into(), "-c".into()]);
    c
}

#[tokio::test]
async fn removed_container_directory_is_reused_clean() {
    if !berth_testsupport::require_root() || berth_exe().is_none() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let containers = tmp.path().join("state/containers");
    // The old container leaves everything odd a container can leave: files in / and /etc and
    // /tmp, a mode-000 directory, a symlink, a whiteout (an image file deleted), its `/` and
    // bind-mounted /etc files changed, rotated logs, an exit code.
    let mut old = sh("echo old-output; echo x > /tmp/x; echo x > /etc/x; mkdir -p /d/e; \
         touch /d/e/f; chmod 000 /d/e /d; ln -s /bin /s; rm /bin/ls; chmod 700 /; \
         echo evil >> /etc/hosts; chmod 4777 /etc/hosts /etc/hostname; \
         i=0; while [ $i -lt 40 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done; \
         exit 3");
    old.host_config.log_config.config.insert("max-size".into(), "1k".into());
    old.host_config.log_config.config.insert("max-file".into(), "3".into());
    old.config.open_stdin = true;
    let a = engine.container_create(Some("old"), old).await.unwrap();
    engine.container_start(&a).await.unwrap();
    assert_eq!(engine.container_wait(&a).await.unwrap(), 3);
    let a_dir = containers.join(&a);
    assert!(a_dir.join("container-json.log.1").exists(), "the old log was rotated");
    assert!(a_dir.join("stdin").exists());
    // An overlay mark on the upper directory (as overlayfs leaves them) must not survive.
    let upper = a_dir.join("rootfs/upper");
    rustix::fs::setxattr(&upper, "trusted.overlay.origin", b"x", rustix::fs::XattrFlags::empty())
        .unwrap();
    // As an ACL or xattr the container could put on its bind-mounted /etc/hosts.
    let hosts = a_dir.join("hosts");
    rustix::fs::setxattr(&hosts, "trusted.berth.test", b"x", rustix::fs::XattrFlags::empty())
        .unwrap();
    let (dir_ino, config_ino) = (ino(&a_dir), ino(&a_dir.join("config.json")));
    let index = tmp.path().join("state/container-names");
    let name_ino = ino(&index.join("old"));
    engine.container_remove(&a, false, true).await.unwrap();
    // The name is released (its index entry kept aside for reuse).
    assert!(!index.join("old").exists());
    assert!(engine.container_inspect("old").await.is_err());

    // The directory became a clean pool entry.
    let free = containers.join(format!(".free-{a}"));
    assert_eq!(pool_entries(&containers), vec![format!(".free-{a}")]);
    assert!(non_pool_entries(&containers).is_empty());
    assert_eq!(std::fs::read_dir(free.join("rootfs/upper")).unwrap().count(), 0);
    let mut buf = [0u8; 256];
    assert_eq!(rustix::fs::llistxattr(free.join("rootfs/upper"), &mut buf).unwrap(), 0);
    assert_eq!(rustix::fs::llistxattr(free.join("hosts"), &mut buf).unwrap(), 0);
    // The container's log is not kept (a follower may still read it to its end).
    assert!(!free.join("container-json.log").exists());
    // The old record (env, command) is gone too.
    assert_eq!(std::fs::read_to_string(free.join("config.json")).unwrap(), "{}\n");
    let mut left: Vec<String> = std::fs::read_dir(&free)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["config.json", "hostname", "hosts", "monitor.log", "resolv.conf", "rootfs", "state.json"]
    );
    // A listing neither shows nor deletes it.
    assert!(engine.container_list(true, &ListFilters::default()).await.unwrap().is_empty());
    assert!(free.exists());

    // The next container gets the same directory and files, and none of the old one's state.
    let new = sh("for f in /tmp/x /etc/x /d /s; do if [ -e $f ] || [ -L $f ]; then echo left $f; \
         fi; done; [ -x /bin/ls ] && echo ls-ok; cat /etc/hostname; grep -c evil /etc/hosts; \
         stat -c %a / /etc/hosts /etc/hostname");
    let b = engine.container_create(Some("new"), new).await.unwrap();
    let b_dir = containers.join(&b);
    assert_eq!((ino(&b_dir), ino(&b_dir.join("config.json"))), (dir_ino, config_ino));
    assert_eq!(ino(&index.join("new")), name_ino, "the index entry was reused");
    assert!(pool_entries(&containers).is_empty());
    let i = engine.container_inspect("new").await.unwrap();
    assert_eq!(
        (i.id.as_str(), i.state.status.as_str(), i.state.exit_code, i.state.pid),
        (b.as_str(), "created", 0, 0)
    );
    assert!(i.state.started_at.starts_with("0001"), "{}", i.state.started_at);
    assert_eq!(i.restart_count, 0);
    assert!(!b_dir.join("stdin").exists() && !b_dir.join("container-json.log.1").exists());
    assert_eq!(whole_log(&engine, &b).await, "");
    assert_eq!(std::fs::read_to_string(b_dir.join("hostname")).unwrap(), format!("{}\n", &b[..12]));
    let text = run_to_exit_0(&engine, &b).await;
    assert_eq!(text, format!("ls-ok\n{}\n0\n755\n644\n644\n", &b[..12]));
    let all = engine.container_list(true, &ListFilters::default()).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![b.as_str()]);
    engine.container_remove(&b, false, true).await.unwrap();
    assert_eq!(pool_entries(&containers), vec![format!(".free-{b}")]);
    assert!(non_pool_entries(&containers).is_empty());
    assert!(berth_testsupport::mounts_under(&tmp.path()).is_empty());
}

#[tokio::test]
async fn pool_is_capped_claimed_concurrently_and_falls_back_to_deletion() {
    if !berth_testsupport::require_root() {
        return;
    }
    let tmp = berth_testsupport::TempRoot::new().unwrap();
    let engine = engine_with_image(&tmp.path()).await;
    let containers = tmp.path().join("state/containers");

    // Concurrent creates each claim their own entry (or make a fresh directory).
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(engine.container_create(Some(&format!("p{i}")), cfg(None)).await.unwrap());
    }
    for id in &ids {
        engine.container_remove(id, false, true).await.unwrap();
    }
    assert_eq!(pool_entries(&containers).len(), 6);
    let creates = (0..8).map(|i| {
        let e = engine.clone();
        async move { e.container_create(Some(&format!("q{i}")), cfg(None)).await }
    });
    let made: Vec<String> = join_all(creates).await.into_iter().map(|r| r.unwrap()).collect();
    let mut inodes: Vec<u64> = made.iter().map(|id| ino(&containers.join(id))).collect();
    inodes.sort();
    inodes.dedup();
    assert_eq!(inodes.len(), 8, "each create has its own directory");
    assert!(pool_entries(&containers).is_empty());
    assert_eq!(engine.container_list(true, &ListFilters::default()).await.unwrap().len(), 8);
    for id in &made {
        engine.container_remove(id, false, true).await.unwrap();
    }
    assert_eq!(pool_entries(&containers).len(), 8);

    // A create failing after it claimed an entry gives it back clean, leaving nothing visible.
    let pool_before = pool_entries(&containers);
    let mut bad = cfg(None);
    bad.host_config.binds = vec!["/x:relative".into()];
    assert!(engine.container_create(Some("bad"), bad).await.is_err());
    assert!(non_pool_entries(&containers).is_empty(), "{:?}", non_pool_entries(&containers));
    let pool_after = pool_entries(&containers);
    assert_eq!(pool_after.len(), 8);
    // One entry went through the failed create (it is back under that create's id).
    assert_eq!(pool_after.iter().filter(|n| !pool_before.contains(n)).count(), 1);
    assert!(engine.container_inspect("bad").await.is_err());

    // A failure while recycling (here: the entry's name is taken) deletes the directory instead.
    let c = engine.container_create(Some("cc"), cfg(None)).await.unwrap();
    let squatter = containers.join(format!(".free-{c}"));
    std::fs::create_dir_all(squatter.join("rootfs/upper/keep")).unwrap();
    engine.container_remove(&c, false, true).await.unwrap();
    assert!(non_pool_entries(&containers).is_empty(), "{:?}", non_pool_entries(&containers));
    assert!(squatter.join("rootfs/upper/keep").is_dir(), "the existing entry is left alone");
    std::fs::remove_dir_all(&squatter).unwrap();

    // A full pool: the removed directory is deleted.
    let d = engine.container_create(Some("dd"), cfg(None)).await.unwrap();
    let have = pool_entries(&containers).len();
    for i in have..128 {
        let p = containers.join(format!(".free-{i:064x}"));
        std::fs::create_dir_all(p.join("rootfs/upper")).unwrap();
        std::fs::create_dir_all(p.join("rootfs/work")).unwrap();
    }
    engine.container_remove(&d, false, true).await.unwrap();
    assert!(non_pool_entries(&containers).is_empty());
    assert_eq!(pool_entries(&containers).len(), 128);
    assert!(!containers.join(format!(".free-{d}")).exists());
    // Listings and sweeps leave pool entries alone.
    assert!(engine.container_list(true, &ListFilters::default()).await.unwrap().is_empty());
    assert_eq!(pool_entries(&containers).len(), 128);
}

/// Awaits all of `futs` concurrently (their work runs on the engine's blocking threads).
async fn join_all<F: std::future::Future + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
