//! `berth system service` with registries and the builder: `docker pull`/`push`/`build` (the
//! docker 28 CLI, a client only) and docker-py against a real registry (Debian's
//! docker-registry on loopback, one per test) and real containers, each test in its own state
//! roots.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testsupport::registry::{Registry, RegistryAuth};

use super::api::{Service, json_body, raw, status_of};
use crate::net::NetEnv;

/// Writes a docker config with `user:password` for `registry` (what `docker login` would
/// have stored), so the CLI sends them in `X-Registry-Auth`.
fn client_login(svc: &Service, registry: &str, user: &str, password: &str) {
    let auth = base64(format!("{user}:{password}").as_bytes());
    let cfg = serde_json::json!({"auths": {registry: {"auth": auth}}});
    std::fs::write(svc.config.path().join("config.json"), cfg.to_string()).expect("config.json");
}

/// Standard base64 with padding (config.json's `auth`).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// No build context is left in the root's builder/tmp.
fn no_context_left(root: &Path) {
    let tmp = root.join("builder").join("tmp");
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!left.iter().any(|n| n.starts_with("context-")), "contexts left: {left:?}");
}

/// docker push, pull (also by digest, and again: up to date), run of an image that is not
/// in the store, a bad reference, an unknown tag and an unknown image, all with credentials
/// that only the client has (`X-Registry-Auth`).
#[test]
fn docker_cli_pushes_and_pulls_through_a_registry() {
    let Some(n) = NetEnv::new() else { return };
    let reg = Registry::start(RegistryAuth::Basic { user: "ci".into(), password: "pw".into() });
    let svc = Service::start(&n.env.path(), &[]);
    let r1 = format!("{}/t/bb:1", reg.addr);

    // An image of two layers: bb's and one of its own.
    let ctx = tempfile::tempdir().expect("ctx");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM bb:latest\nRUN echo pushed > /pushed\n")
        .expect("Dockerfile");
    svc.ok(&["build", "-q", "-t", &r1, ctx.path().to_str().expect("ctx")]);

    // Without credentials the push is refused in the stream; with them it goes through.
    let out = svc.docker(&["push", &r1]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("access denied"), "{out:?}");
    client_login(&svc, &reg.addr, "ci", "pw");
    let out = svc.ok(&["push", &r1]);
    assert!(
        out.starts_with(&format!("The push refers to repository [{}/t/bb]\n", reg.addr)),
        "{out}"
    );
    assert!(out.contains(": Pushed\n"), "{out}");
    let last = out.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("1: digest: sha256:") && last.contains(" size: "), "{out}");
    let digest = last.split_whitespace().nth(2).unwrap_or_default().to_string();
    // Again: the registry has every layer.
    let out = svc.ok(&["push", &r1]);
    assert!(out.contains(": Layer already exists\n"), "{out}");
    // An image that is not here: docker's 404.
    let r = raw(
        &svc.sock,
        &format!(
            "POST /v1.43/images/{}/t/none/push?tag=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            reg.addr
        ),
    )
    .expect("push of a missing image");
    assert_eq!(status_of(&r), 404, "{r}");
    assert!(json_body(&r)["message"].as_str().unwrap_or_default().contains("No such image"), "{r}");

    // A second root and service pull it back.
    let m = NetEnv::new().expect("a second root");
    let svc2 = Service::start(&m.env.path(), &[]);
    client_login(&svc2, &reg.addr, "ci", "pw");
    let out = svc2.ok(&["pull", &r1]);
    assert!(out.starts_with("1: Pulling from t/bb\n"), "{out}");
    assert!(out.contains(": Download complete\n") && out.contains(": Pull complete\n"), "{out}");
    assert!(
        out.contains(&format!("Digest: {digest}\nStatus: Downloaded newer image for {r1}\n{r1}\n")),
        "{out}"
    );
    let out = svc2.ok(&["pull", &r1]);
    assert!(out.contains(&format!("Status: Image is up to date for {r1}\n")), "{out}");
    assert_eq!(svc2.ok(&["run", "--rm", "--network", "none", &r1, "cat", "/pushed"]), "pushed\n");
    // By digest.
    let by_digest = format!("{}/t/bb@{digest}", reg.addr);
    let out = svc2.ok(&["pull", &by_digest]);
    assert!(out.contains(&format!("Digest: {digest}\n")), "{out}");
    // `docker run` of an image that is not in the store: the CLI pulls on the 404.
    let r2 = format!("{}/t/bb:2", reg.addr);
    svc.ok(&["tag", "bb:latest", &r2]);
    svc.ok(&["push", &r2]);
    let out = svc2.docker(&["run", "--rm", "--network", "none", &r2, "echo", "pulled-and-ran"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled-and-ran\n", "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to find image"), "{out:?}");
    // Every tag (`pull -a`): the tag list is read with the client's credentials too (the
    // service's own docker config has none for this registry).
    let out = svc2.ok(&["pull", "-a", &format!("{}/t/bb", reg.addr)]);
    assert!(out.contains("1: Pulling from t/bb") && out.contains("2: Pulling from t/bb"), "{out}");

    // An unknown tag: the error comes before the stream, with its status.
    let out = svc2.docker(&["pull", &format!("{}/t/bb:nope", reg.addr)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{out:?}");
    // A bad reference: 400 and docker's message.
    let r = raw(
        &svc2.sock,
        "POST /images/create?fromImage=Bad%3ARef%3Ax HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("bad reference");
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(
        json_body(&r)["message"].as_str().unwrap_or_default().contains("invalid reference format"),
        "{r}"
    );
    // A build whose FROM image is only in the registry: pulled with the client's credentials
    // (the CLI sends them in X-Registry-Config; the service has none of its own).
    let r4 = format!("{}/t/bb:4", reg.addr);
    svc.ok(&["tag", "bb:latest", &r4]);
    svc.ok(&["push", &r4]);
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {r4}\nRUN echo four > /four\n"))
        .expect("Dockerfile");
    let out = svc2.ok(&["build", "-t", "fromreg:1", ctx.path().to_str().expect("ctx")]);
    assert!(out.contains("Successfully tagged fromreg:1\n"), "{out}");
    assert_eq!(
        svc2.ok(&["run", "--rm", "--network", "none", "fromreg:1", "cat", "/four"]),
        "four\n"
    );

    // The raw streams, as other clients read them: docker's JSON lines, the push's aux.
    let auth = base64(br#"{"username":"ci","password":"pw"}"#);
    let lines = |resp: &str| -> Vec<serde_json::Value> {
        // Chunk sizes are lines too: only the objects count.
        resp.lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect()
    };
    let r = raw(
        &svc.sock,
        &format!(
            "POST /v1.43/images/{}/t/bb/push?tag=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Registry-Auth: {auth}\r\nContent-Length: 0\r\n\r\n",
            reg.addr
        ),
    )
    .expect("raw push");
    let pushed = lines(&r);
    assert!(
        pushed.iter().any(|l| l["aux"]["Tag"] == "1"
            && l["aux"]["Digest"] == digest.as_str()
            && l["aux"]["Size"].as_u64().is_some_and(|n| n > 0)),
        "{r}"
    );
    assert!(pushed.iter().any(|l| l["status"] == "Layer already exists" && l["id"].is_string()));
    let r = raw(
        &svc2.sock,
        &format!(
            "POST /v1.43/images/create?fromImage={}%2Ft%2Fbb&tag=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Registry-Auth: {auth}\r\nContent-Length: 0\r\n\r\n",
            reg.addr
        ),
    )
    .expect("raw pull");
    let pulled = lines(&r);
    assert_eq!(pulled[0], serde_json::json!({"status": "Pulling from t/bb", "id": "1"}), "{r}");
    assert!(
        pulled.iter().any(|l| l["status"] == "Already exists" && l["progressDetail"].is_object()),
        "{r}"
    );
    assert_eq!(
        pulled.last().map(|l| l["status"].clone()),
        Some(serde_json::json!(format!("Status: Image is up to date for {r1}"))),
        "{r}"
    );

    // A layer the registry serves damaged: the failure comes in the stream, after the
    // progress began, and nothing of the image is stored.
    let blobs = |reg: &Registry| -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let base = reg.dir().join("storage/docker/registry/v2/blobs/sha256");
        for a in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            for b in std::fs::read_dir(a.path()).into_iter().flatten().flatten() {
                out.push(b.path().join("data"));
            }
        }
        out
    };
    let before = blobs(&reg);
    let r3 = format!("{}/t/bb:3", reg.addr);
    std::fs::write(ctx.path().join("Dockerfile"), "FROM bb:latest\nRUN echo three > /three\n")
        .expect("Dockerfile");
    svc.ok(&["build", "-q", "-t", &r3, ctx.path().to_str().expect("ctx")]);
    svc.ok(&["push", &r3]);
    let layer = blobs(&reg)
        .into_iter()
        .filter(|b| !before.contains(b))
        .find(|b| std::fs::read(b).is_ok_and(|d| d.starts_with(&[0x1f, 0x8b])))
        .expect("the new layer's blob");
    let mut data = std::fs::read(&layer).expect("blob");
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&layer, &data).expect("damage the blob");
    let out = svc2.docker(&["pull", &r3]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("3: Pulling from t/bb"), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("arrived with digest") && err.contains("nothing of it was stored"),
        "{err}"
    );
    assert!(!svc2.docker(&["image", "inspect", &r3]).status.success());

    // Wrong credentials: refused, and the service answers the next request.
    client_login(&svc2, &reg.addr, "ci", "wrong");
    let out = svc2.docker(&["pull", &r2]);
    assert!(!out.status.success(), "{out:?}");
    assert!(svc2.ok(&["version", "--format", "{{.Server.APIVersion}}"]).trim() == "1.43");
    assert_eq!(svc2.ok(&["ps", "-aq"]).trim(), "");
    drop(svc2);
    m.teardown_and_check();
    drop(svc);
    n.teardown_and_check();
}

/// A small multi-stage Dockerfile on a busybox-static `FROM scratch` image.
const DOCKERFILE: &str = r#"FROM scratch AS base
ADD rootfs.tar /
RUN echo built > /built.txt
FROM base
ARG GREETING=hi
COPY hello.txt /hello.txt
RUN echo "$GREETING" > /greeting
CMD ["sh", "-c", "cat /built.txt /hello.txt /greeting"]
"#;

/// Writes a context (busybox root tar, hello.txt) in `dir/ctx` and the Dockerfile beside it
/// (outside the context, as `-f` may name it: the CLI then sends it inside the tar).
fn build_context(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    berth_testsupport::busybox_rootfs_tar(&ctx.join("rootfs.tar")).expect("busybox tar");
    std::fs::write(ctx.join("hello.txt"), "hello\n").expect("hello.txt");
    let df = dir.join("Dockerfile.api");
    std::fs::write(&df, DOCKERFILE).expect("Dockerfile");
    (ctx, df)
}

/// `docker build` with the classic builder (with and without DOCKER_BUILDKIT=0: the CLI has no
/// buildx here), then `docker run`; a cached rebuild with a build arg; a failing RUN.
#[test]
fn docker_cli_builds_with_the_classic_builder() {
    let Some(n) = NetEnv::new() else { return };
    let svc = Service::start(&n.env.path(), &[]);
    let dir = tempfile::tempdir().expect("dir");
    let (ctx, df) = build_context(dir.path());
    let (ctx_s, df_s) = (ctx.to_str().expect("ctx"), df.to_str().expect("df"));

    let out = svc
        .docker_cmd(&["build", "-t", "apibuilt:1", "-f", df_s, ctx_s])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("docker build");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("Step 1/8 : "), "{stdout}");
    assert!(stdout.contains("/8 : FROM scratch AS base\n"), "{stdout}");
    assert!(stdout.contains("Step 8/8 : "), "{stdout}");
    assert!(stdout.contains("/8 : CMD [\"sh\""), "{stdout}");
    assert!(stdout.contains("Step 2/8 : ") && !stdout.contains("Step 9/8"), "{stdout}");
    assert!(stdout.contains("Successfully built "), "{stdout}");
    assert!(stdout.contains("Successfully tagged apibuilt:1\n"), "{stdout}");
    assert_eq!(svc.ok(&["run", "--rm", "--network", "none", "apibuilt:1"]), "built\nhello\nhi\n");

    // Without DOCKER_BUILDKIT: the CLI (no buildx) uses the same classic path; the cache
    // serves the unchanged steps and the build arg reruns from the step that uses it.
    let out = svc
        .docker_cmd(&["build", "-t", "apibuilt:2", "--build-arg", "GREETING=yo", "-f", df_s, ctx_s])
        .env_remove("DOCKER_BUILDKIT")
        .stdin(Stdio::null())
        .output()
        .expect("docker build");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains(" ---> Using cache\n"), "{stdout}");
    assert_eq!(svc.ok(&["run", "--rm", "--network", "none", "apibuilt:2"]), "built\nhello\nyo\n");
    // -q: only the id.
    let id = svc.ok(&["build", "-q", "-t", "apibuilt:3", "-f", df_s, ctx_s]);
    assert!(id.trim().starts_with("sha256:") && id.trim().len() == 71, "{id}");

    // A failing RUN: docker's message and the command's exit code.
    let bad = dir.path().join("Dockerfile.bad");
    std::fs::write(&bad, "FROM apibuilt:1\nRUN echo going; exit 7\n").expect("bad Dockerfile");
    let out = svc.docker(&["build", "-t", "apibad:1", "-f", bad.to_str().expect("bad"), ctx_s]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("going\n"), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("The command '/bin/sh -c echo going; exit 7' returned a non-zero code: 7"),
        "{out:?}"
    );
    assert!(!svc.docker(&["image", "inspect", "apibad:1"]).status.success());
    // A Dockerfile that does not parse: an error before the stream.
    std::fs::write(&bad, "FROM apibuilt:1\nNOPE x\n").expect("bad Dockerfile");
    let out = svc.docker(&["build", "-f", bad.to_str().expect("bad"), ctx_s]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOPE"), "{out:?}");

    // A body that is not a tar, and a Dockerfile outside the context: 400s, nothing left.
    let junk = "this is not a tar archive at all, just some text that is long enough to be read as a header block by a tar reader that expects 512 bytes; ".repeat(8);
    let r = raw(
        &svc.sock,
        &format!(
            "POST /v1.43/build?t=junk:1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n{junk}",
            junk.len()
        ),
    )
    .expect("junk context");
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(json_body(&r)["message"].as_str().unwrap_or_default().contains("build context"), "{r}");
    let r = raw(
        &svc.sock,
        "POST /build?dockerfile=..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("dockerfile outside");
    assert_eq!(status_of(&r), 400, "{r}");

    // A client that leaves mid-build: the build stops, its RUN container and context go.
    {
        use std::io::{Read, Write};
        let mut tar = tar::Builder::new(Vec::new());
        let df = b"FROM bb:latest\nRUN echo started; sleep 60\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(df.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "Dockerfile", &df[..]).expect("tar");
        let body = tar.into_inner().expect("tar");
        let mut s = std::os::unix::net::UnixStream::connect(&svc.sock).expect("connect");
        let head = format!(
            "POST /build?nocache=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(&body)).expect("send");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("started") {
            let k = s.read(&mut buf).expect("the build's output");
            assert!(k > 0, "the stream ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..k]);
        }
    }
    // The context goes last, once the build's containers are removed.
    n.env.wait_for("the left build's context to go", 45, || {
        std::fs::read_dir(n.env.path().join("builder/tmp"))
            .map(|d| !d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("context-")))
            .unwrap_or(true)
    });
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "", "build containers were left");
    no_context_left(&n.env.path());
    drop(svc);
    n.teardown_and_check();
}

/// docker-py's `images.pull` and `images.build` (Python's `docker` package, on this machine
/// kind).
const DOCKER_PY_IMAGES: &str = r#"
import os, docker
reg, ctx = os.environ["REG"], os.environ["CTX"]
c = docker.from_env(version="auto")
img = c.images.pull(reg + "/py/bb", tag="1")
assert any(t == reg + "/py/bb:1" for t in img.tags), img.tags
out = c.containers.run(reg + "/py/bb:1", ["echo", "pulled-py"], remove=True, network_mode="none")
assert out == b"pulled-py\n", out
img, logs = c.images.build(path=ctx, dockerfile="Dockerfile", tag="pybuilt:1", buildargs={"GREETING": "py"})
text = "".join(l.get("stream", "") for l in logs)
assert "Successfully built" in text, text
assert "pybuilt:1" in img.tags, img.tags
out = c.containers.run("pybuilt:1", remove=True, network_mode="none")
assert out == b"built\nhello\npy\n", out
try:
    c.images.build(path=ctx, dockerfile="Dockerfile.bad")
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    assert "returned a non-zero code: 4" in str(e), str(e)
print("docker-py images ok")
"#;

#[test]
fn docker_py_pulls_and_builds() {
    let Some(n) = NetEnv::new() else { return };
    let reg = Registry::start(RegistryAuth::None);
    let svc = Service::start(&n.env.path(), &[]);
    let r = format!("{}/py/bb:1", reg.addr);
    svc.ok(&["tag", "bb:latest", &r]);
    svc.ok(&["push", &r]);
    svc.ok(&["rmi", &r]);
    let dir = tempfile::tempdir().expect("dir");
    let (ctx, _) = build_context(dir.path());
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(ctx.join("Dockerfile.bad"), "FROM scratch\nADD rootfs.tar /\nRUN exit 4\n")
        .expect("bad Dockerfile");
    let out = Command::new(crate::support::docker_py_python())
        .args(["-c", DOCKER_PY_IMAGES])
        .env("DOCKER_HOST", format!("unix://{}", svc.sock.display()))
        .env("REG", &reg.addr)
        .env("CTX", &ctx)
        .stdin(Stdio::null())
        .output()
        .expect("spawn the docker-py venv's python");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("docker-py images ok"),
        "docker-py failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(svc.ok(&["ps", "-aq"]).trim(), "");
    no_context_left(&n.env.path());
    drop(svc);
    n.teardown_and_check();
}
