//! `berth image pull|push|history`, `berth login|logout` against a real registry
//! (Debian's docker-registry) on loopback, through the real binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_testsupport::registry::{Registry, RegistryAuth, Tls};
use berth_testsupport::{TempRoot, require_root};

use super::support::berth_bin;

/// Runs berth in `root` with `DOCKER_CONFIG=cfg` and `stdin` fed in.
fn berth_in(root: &Path, cfg: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(berth_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    if let Some(mut i) = c.stdin.take() {
        std::io::Write::write_all(&mut i, stdin.as_bytes()).expect("stdin");
    }
    c.wait_with_output().expect("berth")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "failed ({:?}):\nstdout: {out}\nstderr: {err}", o.status.code());
    out
}

fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    err
}

fn import_bb(root: &Path, cfg: &Path, reference: &str) {
    let tar = root.join("bb.tar");
    berth_testsupport::busybox_rootfs_tar(&tar).expect("busybox tar");
    ok(berth_in(root, cfg, &["image", "import", tar.to_str().unwrap(), reference], ""));
    std::fs::remove_file(tar).expect("rm tar");
}

#[test]
fn login_push_pull_history_logout_through_the_cli() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::Basic { user: "ci".into(), password: "pw-ci".into() });
    let cfg = tempfile::tempdir().unwrap();
    let (a, b, c) = (TempRoot::new().unwrap(), TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/bb:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);

    let err = fails(berth_in(&a.path(), cfg.path(), &["image", "push", &r], ""));
    assert!(err.contains(&format!("push access denied for {}/team/bb", reg.addr)), "{err}");
    assert!(err.contains(&format!("berth login {}", reg.addr)), "{err}");
    let err = fails(berth_in(
        &a.path(),
        cfg.path(),
        &["login", "-u", "ci", "--password-stdin", &reg.addr],
        "wrong\n",
    ));
    assert!(err.contains("refused the credentials of \"ci\""), "{err}");
    assert!(!cfg.path().join("config.json").exists());
    let out = ok(berth_in(
        &a.path(),
        cfg.path(),
        &["login", "-u", "ci", "--password-stdin", &reg.addr],
        "pw-ci\n",
    ));
    assert_eq!(out, "Login Succeeded\n");

    let out = ok(berth_in(&a.path(), cfg.path(), &["image", "push", &r], ""));
    assert!(
        out.starts_with(&format!("The push refers to repository [{}/team/bb]\n", reg.addr)),
        "{out}"
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let digest_line = out.lines().last().unwrap().to_string();
    assert!(
        digest_line.starts_with("1: digest: sha256:") && digest_line.contains(" size: "),
        "{out}"
    );
    let digest = digest_line.split_whitespace().nth(2).unwrap().to_string();

    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "pull", &r], ""));
    assert!(out.starts_with("1: Pulling from team/bb\n"), "{out}");
    assert!(out.contains(": Pull complete\n"), "{out}");
    assert!(
        out.contains(&format!("Digest: {digest}\nStatus: Downloaded newer image for {r}\n{r}\n")),
        "{out}"
    );
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "pull", "-q", &r], ""));
    assert_eq!(out, format!("{r}\n"));
    // Every tag of the repository.
    let r2 = format!("{}/team/bb:2", reg.addr);
    ok(berth_in(&a.path(), cfg.path(), &["image", "tag", &r, &r2], ""));
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r2], ""));
    let out = ok(berth_in(
        &c.path(),
        cfg.path(),
        &["image", "pull", "-a", "-q", &format!("{}/team/bb", reg.addr)],
        "",
    ));
    assert_eq!(out, format!("{}/team/bb\n", reg.addr));
    let tags = ok(berth_in(&c.path(), cfg.path(), &["image", "ls", "--format", "json"], ""));
    assert!(tags.contains("\"Tag\":\"1\"") && tags.contains("\"Tag\":\"2\""), "{tags}");
    let err = fails(berth_in(&c.path(), cfg.path(), &["image", "pull", "-a", &r], ""));
    assert!(err.contains("tag can't be used with --all-tags/-a"), "{err}");
    ok(berth_in(&c.path(), cfg.path(), &["image", "rm", &r, &r2], ""));
    let out = ok(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "inspect", "-f", "{{json .RepoDigests}}", &r],
        "",
    ));
    assert_eq!(out.trim(), format!("[\"{}/team/bb@{digest}\"]", reg.addr));
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "ls", "--digests"], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY ") && lines[0].contains("   TAG   DIGEST "), "{out}");
    assert!(lines[1].contains(&digest), "{out}");
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "ls", "--format", "json"], ""));
    assert!(out.contains(&format!("\"Digest\":\"{digest}\"")), "{out}");
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "history", &r], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE ")
            && lines[0].contains("CREATED BY")
            && lines[0].ends_with("COMMENT"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].contains("Imported from -"), "{out}");
    let ids = ok(berth_in(&b.path(), cfg.path(), &["image", "history", "-q", &r], ""));
    let id = ok(berth_in(&b.path(), cfg.path(), &["image", "inspect", "-f", "{{.Id}}", &r], ""));
    assert_eq!(ids.trim(), &id.trim()[7..19]);
    let err = fails(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "pull", &format!("{}/team/bb:nope", reg.addr)],
        "",
    ));
    assert!(err.contains("manifest for") && err.contains("not found: manifest unknown"), "{err}");
    let err = fails(berth_in(
        &b.path(),
        cfg.path(),
        &["image", "pull", "--platform", "linux/s390x", &r],
        "",
    ));
    assert!(
        err.contains(
            "does not match the specified platform: wanted linux/s390x, actual: linux/amd64"
        ),
        "{err}"
    );

    let out = ok(berth_in(&a.path(), cfg.path(), &["logout", &reg.addr], ""));
    assert_eq!(out, format!("Removing login credentials for {}\n", reg.addr));
    let out = ok(berth_in(&a.path(), cfg.path(), &["logout", &reg.addr], ""));
    assert_eq!(out, format!("Not logged in to {}\n", reg.addr));
    let err = fails(berth_in(&c.path(), cfg.path(), &["image", "pull", &r], ""));
    assert!(err.contains("pull access denied"), "{err}");
    let out = ok(berth_in(&c.path(), cfg.path(), &["image", "ls", "-q"], ""));
    assert_eq!(out, "");
}

#[test]
fn two_processes_pulling_one_image_fetch_and_store_it_once() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/both:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));
    let spawn = || {
        Command::new(berth_bin())
            .arg("--root")
            .arg(b.path())
            .args(["image", "pull", "-q", &r])
            .env("DOCKER_CONFIG", cfg.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (p1, p2) = (spawn(), spawn());
    ok(p1.wait_with_output().unwrap());
    ok(p2.wait_with_output().unwrap());
    let layers: Vec<_> = std::fs::read_dir(b.path().join("images/layers")).unwrap().collect();
    assert_eq!(layers.len(), 1);
    let blob_gets = reg
        .log()
        .lines()
        .filter(|l| {
            l.contains("http.request.method=GET")
                && l.contains("/blobs/")
                && l.contains("response completed")
        })
        .count();
    // The config (each process reads it) and the layer (fetched once).
    assert_eq!(blob_gets, 3, "{}", reg.log());
    let out = ok(berth_in(&b.path(), cfg.path(), &["image", "ls", "-q"], ""));
    assert_eq!(out.lines().count(), 1);
}

/// A forward proxy for plain HTTP on loopback (absolute-URI requests), sending everything to
/// `upstream` whatever host the request names; CONNECT (HTTPS) is refused. Counts requests.
fn forward_proxy(upstream: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use berth_testsupport::registry::{FrontAction, front};
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    let addr = front(upstream, move |method, _| {
        if method == "CONNECT" {
            return FrontAction::Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        }
        c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        FrontAction::Forward
    });
    (addr, count)
}

#[test]
fn a_registry_named_insecure_is_reached_over_plain_http_through_the_proxy() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/px:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));
    // A name only the proxy knows (it sends everything to the registry): berth itself never
    // resolves it, so nothing leaves loopback.
    let port = reg.addr.rsplit(':').next().unwrap();
    let name = format!("registry.berth-test.invalid:{port}");
    let (proxy, count) = forward_proxy(reg.addr.clone());
    let pull = |insecure: &str| {
        Command::new(berth_bin())
            .arg("--root")
            .arg(b.path())
            .args(["image", "pull", "-q", &format!("{name}/team/px:1")])
            .env("DOCKER_CONFIG", cfg.path())
            .env("HTTP_PROXY", format!("http://{proxy}"))
            .env("HTTPS_PROXY", format!("http://{proxy}"))
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("BERTH_INSECURE_REGISTRIES", insecure)
            .output()
            .unwrap()
    };
    // Not named insecure: HTTPS only, which the proxy refuses; a clear error.
    let err = fails(pull(""));
    assert!(err.contains(&format!("cannot reach the registry {name}")), "{err}");
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) == 0);
    // Named insecure: plain HTTP, through the proxy.
    let out = ok(pull(&format!("other.example, {name}")));
    assert_eq!(out, format!("{name}/team/px:1\n"));
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[test]
fn credentials_from_a_docker_credential_helper() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::Basic { user: "hu".into(), password: "hp".into() });
    let cfg = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    // A helper speaking docker's protocol, keeping one credential in a file beside it.
    let store = bin.path().join("store.json");
    let helper = bin.path().join("docker-credential-berthtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nS={}\ncase \"$1\" in\n store) cat > \"$S\" ;;\n get) read server; if [ -f \"$S\" ]; then cat \"$S\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n erase) read server; if [ -f \"$S\" ]; then rm \"$S\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\nesac\n",
            store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(cfg.path().join("config.json"), r#"{"credsStore": "berthtest", "other": 1}"#)
        .unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let run = |root: &Path, args: &[&str], stdin: &str| {
        let mut c = Command::new(berth_bin())
            .arg("--root")
            .arg(root)
            .args(args)
            .env("DOCKER_CONFIG", cfg.path())
            .env("PATH", &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let a = TempRoot::new().unwrap();
    let r = format!("{}/team/h:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    ok(run(&a.path(), &["login", "-u", "hu", "--password-stdin", &reg.addr], "hp"));
    let stored = std::fs::read_to_string(&store).unwrap();
    assert!(stored.contains("\"Secret\":\"hp\"") && stored.contains(&reg.addr), "{stored}");
    let cfg_text = std::fs::read_to_string(cfg.path().join("config.json")).unwrap();
    assert!(!cfg_text.contains("aHU6aHA"), "no password in config.json: {cfg_text}");
    assert!(cfg_text.contains("\"other\": 1"), "other settings kept: {cfg_text}");
    ok(run(&a.path(), &["image", "push", "-q", &r], ""));
    ok(run(&a.path(), &["logout", &reg.addr], ""));
    assert!(!store.exists());
    let err = fails(run(&a.path(), &["image", "push", &r], ""));
    assert!(err.contains("push access denied"), "{err}");
}

#[test]
fn container_run_pulls_a_missing_image_like_docker() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/runme:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));
    let o = berth_in(&b.path(), cfg.path(), &["container", "run", "--rm", &r, "echo", "hi"], "");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(out, "hi\n", "the pull's lines go to stderr");
    assert!(
        err.starts_with(&format!(
            "Unable to find image '{r}' locally\n1: Pulling from team/runme\n"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("Status: Downloaded newer image for {r}")), "{err}");
    // Present now: no pull; `--pull never` of a missing one is the create's error.
    let o = berth_in(&b.path(), cfg.path(), &["container", "run", "--rm", &r, "true"], "");
    assert_eq!(text(&o).1, "");
    let o = berth_in(
        &b.path(),
        cfg.path(),
        &["container", "create", "--pull", "never", &format!("{}/team/none:1", reg.addr)],
        "",
    );
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn a_pull_killed_with_sigkill_leaves_no_image_and_the_next_pull_cleans_up_and_finishes() {
    if !require_root() {
        return;
    }
    let reg = Registry::start(RegistryAuth::None);
    let cfg = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/big:1", reg.addr);
    // A root file system with 24 MB of incompressible bytes, so the pull takes a while.
    let rootfs = tempfile::tempdir().unwrap();
    berth_testsupport::busybox_rootfs(rootfs.path()).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = Vec::with_capacity(24 << 20);
    while noise.len() < 24 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(rootfs.path().join("noise"), &noise).unwrap();
    let tar = a.path().join("big.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    ok(berth_in(&a.path(), cfg.path(), &["image", "import", tar.to_str().unwrap(), &r], ""));
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));

    let mut child = Command::new(berth_bin())
        .arg("--root")
        .arg(b.path())
        .args(["image", "pull", "-q", &r])
        .env("DOCKER_CONFIG", cfg.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed while the layer is being unpacked into staging.
    let tmp = b.path().join("images/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let staged = || std::fs::read_dir(&tmp).map(|d| d.count() > 0).unwrap_or(false);
    while !staged() {
        assert!(child.try_wait().unwrap().is_none(), "the pull ended before it was killed");
        assert!(std::time::Instant::now() < deadline, "no staging directory appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(ok(berth_in(&b.path(), cfg.path(), &["image", "ls", "-q"], "")), "");
    assert!(staged(), "the killed pull's staging is still there");
    // The next pull removes it and finishes.
    ok(berth_in(&b.path(), cfg.path(), &["image", "pull", "-q", &r], ""));
    assert!(!staged(), "{:?}", std::fs::read_dir(&tmp).unwrap().collect::<Vec<_>>());
    let size =
        ok(berth_in(&b.path(), cfg.path(), &["image", "inspect", "-f", "{{.Size}}", &r], ""));
    assert!(size.trim().parse::<u64>().unwrap() > 24 << 20, "{size}");
}

#[test]
fn https_registry_with_a_ca_from_the_certs_dir() {
    if !require_root() {
        return;
    }
    let reg = Registry::start_with(RegistryAuth::None, Tls::Server);
    let certs = reg.certs_dir.clone().unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (a, b) = (TempRoot::new().unwrap(), TempRoot::new().unwrap());
    let r = format!("{}/team/tls:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    let with_certs = |root: &Path, dir: &Path, args: &[&str]| {
        Command::new(berth_bin())
            .arg("--root")
            .arg(root)
            .args(args)
            .env("DOCKER_CONFIG", cfg.path())
            .env("BERTH_CERTS_DIR", dir)
            .output()
            .unwrap()
    };
    // Without the CA: the certificate is not trusted, and plain HTTP is no way around it.
    let err = fails(with_certs(&a.path(), empty.path(), &["image", "push", &r]));
    assert!(err.contains(&format!("cannot reach the registry {}", reg.addr)), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // With it (as docker's certs.d/<host:port>/ca.crt): HTTPS push and pull.
    ok(with_certs(&a.path(), &certs, &["image", "push", "-q", &r]));
    ok(with_certs(&b.path(), &certs, &["image", "pull", "-q", &r]));
    let id_a = ok(berth_in(&a.path(), cfg.path(), &["image", "inspect", "-f", "{{.Id}}", &r], ""));
    let id_b = ok(berth_in(&b.path(), cfg.path(), &["image", "inspect", "-f", "{{.Id}}", &r], ""));
    assert_eq!(id_a, id_b);
}

#[test]
fn an_identity_token_in_config_json_gets_tokens_by_oauth_refresh() {
    if !require_root() {
        return;
    }
    // The token server takes its password as the refresh token.
    let reg =
        Registry::start(RegistryAuth::Token { user: "idu".into(), password: "id-tok".into() });
    let cfg = tempfile::tempdir().unwrap();
    let a = TempRoot::new().unwrap();
    let r = format!("{}/team/idt:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    let write = |token: &str| {
        let v = serde_json::json!({"auths": {reg.addr.clone(): {"auth": "aWR1Og==", "identitytoken": token}}});
        std::fs::write(cfg.path().join("config.json"), v.to_string()).unwrap();
    };
    write("wrong");
    let err = fails(berth_in(&a.path(), cfg.path(), &["image", "push", &r], ""));
    assert!(err.contains(&format!("the registry {} refused the credentials", reg.addr)), "{err}");
    write("id-tok");
    ok(berth_in(&a.path(), cfg.path(), &["image", "push", "-q", &r], ""));
    let b = TempRoot::new().unwrap();
    ok(berth_in(&b.path(), cfg.path(), &["image", "pull", "-q", &r], ""));
}

#[test]
fn a_registry_asking_for_client_certificates_gets_the_certs_dir_one() {
    if !require_root() {
        return;
    }
    let reg = Registry::start_with(RegistryAuth::None, Tls::Mutual);
    let (certs, ca_only) = (reg.certs_dir.clone().unwrap(), reg.ca_only_dir.clone().unwrap());
    let cfg = tempfile::tempdir().unwrap();
    let a = TempRoot::new().unwrap();
    let r = format!("{}/team/mtls:1", reg.addr);
    import_bb(&a.path(), cfg.path(), &r);
    let push = |dir: &Path| {
        Command::new(berth_bin())
            .arg("--root")
            .arg(a.path())
            .args(["image", "push", "-q", &r])
            .env("DOCKER_CONFIG", cfg.path())
            .env("BERTH_CERTS_DIR", dir)
            .output()
            .unwrap()
    };
    // The CA alone: the registry refuses the handshake.
    let err = fails(push(&ca_only));
    assert!(err.contains(&format!("cannot reach the registry {}", reg.addr)), "{err}");
    // With client.cert + client.key beside it, as docker reads them.
    ok(push(&certs));
}
