//! A real distribution (v2) registry for tests: Debian's `docker-registry`, started on
//! 127.0.0.1 with a free port, its own config and storage directory, stopped and removed on
//! drop. Plain, with htpasswd Basic auth, or behind a small token server (the Bearer flow) that
//! runs in the test process and signs tokens with a certificate made for it by `openssl`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// How the registry checks who asks.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// No auth at all.
    None,
    /// htpasswd (bcrypt) with one user.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `auth: token:` with a token server in this process: `user`/`password` get every action
    /// they ask for, anonymous requests get nothing.
    Token {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

/// Whether the registry speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP.
    Off,
    /// HTTPS with a certificate from a CA made for the test.
    Server,
    /// HTTPS that also asks clients for a certificate of that CA.
    Mutual,
}

/// A running registry; killed and its directory removed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    token: Option<TokenServer>,
    /// With TLS: a certificates directory as berth reads it (`<dir>/<addr>/ca.crt`, and with
    /// [`Tls::Mutual`] `client.cert` + `client.key`).
    pub certs_dir: Option<PathBuf>,
    /// With [`Tls::Mutual`]: a certificates directory with the CA only.
    pub ca_only_dir: Option<PathBuf>,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free loopback port")
}

impl Registry {
    /// Starts a registry and waits until it answers `/v2/`.
    pub fn start(auth: RegistryAuth) -> Registry {
        Self::start_with(auth, Tls::Off)
    }

    /// Like [`Registry::start`], with TLS as `tls` says: a certificate for 127.0.0.1 signed by
    /// a CA made for the test (in [`Registry::certs_dir`]).
    pub fn start_with(auth: RegistryAuth, tls: Tls) -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let mut token = None;
        let auth_yaml = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", file.display())
            }
            RegistryAuth::Token { user, password } => {
                let t = TokenServer::start(dir.path(), user, password);
                let yaml = format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                    t.addr,
                    t.cert.display()
                );
                token = Some(t);
                yaml
            }
        };
        let (tls_yaml, certs_dir, ca_only_dir) = if tls != Tls::Off {
            let (cert, key, certs, ca_only) = make_tls(dir.path(), &addr, tls == Tls::Mutual);
            let mut yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            if tls == Tls::Mutual {
                yaml.push_str(&format!(
                    "    clientcas:\n      - {}\n",
                    dir.path().join("ca.crt").display()
                ));
            }
            (yaml, Some(certs), Some(ca_only))
        } else {
            (String::new(), None, None)
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: berth-test-secret\n{tls_yaml}{auth_yaml}",
            storage.display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let mut reg = Registry { child: None, dir, addr, token, certs_dir, ca_only_dir };
        reg.spawn();
        reg
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .env_remove("REGISTRY_HTTP_ADDR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("docker-registry exited ({st}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the registry (SIGKILL), as a crash or a cut network would look to a client.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The pid of the running registry process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the registry again on the same address and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many requests the log shows whose line contains `needle` (e.g. `GET /v2/a/blobs/sha256:…`).
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains(&format!("http.request.method={method}"))
                    && l.contains(path_part)
                    && l.contains("response completed")
            })
            .count()
    }

    /// Bytes the registry sent in answers to GETs whose path contains `path_part` (from the
    /// `http.response.written` of its access log).
    pub fn bytes_sent(&self, path_part: &str) -> u64 {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("http.request.method=GET")
                    && l.contains(path_part)
                    && l.contains("response completed")
            })
            .filter_map(|l| l.split("http.response.written=").nth(1))
            .filter_map(|w| w.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// The file holding blob `sha256:<hex>` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The test's private directory (for files next to the registry).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if let Some(t) = self.token.take() {
            t.stop();
        }
    }
}

/// Runs `openssl ARGS` in `dir`, quietly; panics naming the arguments when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl {args:?} failed");
}

/// A CA and a server certificate for 127.0.0.1 signed by it (`openssl`); returns the server's
/// certificate and key files, a certificates directory holding the CA as `<addr>/ca.crt` (and
/// with `client`, a client certificate of the CA as `client.cert` + `client.key`), and one with
/// the CA only. The CA itself is `dir/ca.crt`. Also for other TLS servers a test runs (the
/// builder's `ADD https://` test).
pub fn make_tls(dir: &Path, addr: &str, client: bool) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=berth-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "reg.key",
        "-out",
        "reg.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "reg.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "reg.crt",
    ]);
    let certs = dir.join("certs.d");
    let ca_only = dir.join("ca-only.d");
    for d in [&certs, &ca_only] {
        std::fs::create_dir_all(d.join(addr)).expect("certs dir");
        std::fs::copy(dir.join("ca.crt"), d.join(addr).join("ca.crt")).expect("copy ca");
    }
    if client {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=berth-test-client",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ]);
        std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").expect("write cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.cnf",
            "-out",
            "client.cert",
        ]);
        for f in ["client.cert", "client.key"] {
            std::fs::copy(dir.join(f), certs.join(addr).join(f)).expect("copy client cert");
        }
    }
    (dir.join("reg.crt"), dir.join("reg.key"), certs, ca_only)
}

/// The token endpoint of the Bearer flow: checks Basic credentials, grants the scopes asked
/// for (to the right user; nothing to anonymous or wrong users, who get 401), signs an RS256
/// JWT carrying the certificate (`x5c`) the registry trusts.
struct TokenServer {
    addr: String,
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth-test-token",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
            ],
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let x5c = STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, user, password) = (stop.clone(), user.to_string(), password.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    let _ = serve_token(s, &key, &x5c, &user, &password);
                }
            }
        });
        TokenServer { addr, cert, stop, thread: Some(thread) }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve_token(
    s: TcpStream,
    key: &Path,
    x5c: &str,
    user: &str,
    password: &str,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let method = line.split_whitespace().next().unwrap_or("GET").to_string();
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut authz = None;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authz = Some(v.trim().to_string());
            }
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len.min(1 << 20)];
    r.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();
    // GET: the query (credentials as Basic); POST: docker's OAuth2 form (a refresh token, the
    // identity token of `docker login` with some registries, which is the password here).
    let query = if method == "POST" {
        body.as_str()
    } else {
        target.split_once('?').map(|(_, q)| q).unwrap_or("")
    };
    let mut service = String::new();
    let mut scopes = Vec::new();
    let mut refresh = None;
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "service" => service = url_decode(v),
            // OAuth2 puts the scopes in one space-separated field.
            "scope" => scopes.extend(url_decode(v).split(' ').map(str::to_string)),
            "refresh_token" => refresh = Some(url_decode(v)),
            _ => {}
        }
    }
    let who = authz
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut w = s;
    let granted = match (refresh.as_deref(), who.as_deref()) {
        (Some(t), _) if t == password => true,
        (None, Some(up)) if up == format!("{user}:{password}") => true,
        (Some(_), _) | (None, Some(_)) => {
            w.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        (None, None) => false,
    };
    let access: Vec<serde_json::Value> = if granted {
        scopes
            .iter()
            .filter_map(|sc| {
                let mut p = sc.splitn(3, ':');
                let (t, n, a) = (p.next()?, p.next()?, p.next()?);
                Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
            })
            .collect()
    } else {
        Vec::new()
    };
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "berth-test-issuer",
        "sub": if granted { user } else { "" },
        "aud": service,
        "exp": now + 600,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().map(|mut i| i.write_all(signing_input.as_bytes()));
    let sig = child.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 600}).to_string();
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What [`front`] does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontAction {
    /// Pass it to the upstream and its whole answer back.
    Forward,
    /// Pass it on, then send back only the first half of the answer and close (a reset
    /// mid-body).
    ForwardHalf,
    /// Answer with these raw bytes (a whole HTTP response) without asking the upstream.
    Reply(&'static [u8]),
}

/// An HTTP/1.1 front on a free loopback port that sends every request to `upstream` (a
/// `host:port`) unless `decide(method, path)` says otherwise: a fault-making reverse proxy in
/// front of a registry, or (absolute-URI requests, made origin-form here) a forward proxy. One
/// request per connection. Returns its `127.0.0.1:PORT`.
pub fn front<F>(upstream: String, decide: F) -> String
where
    F: Fn(&str, &str) -> FrontAction + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").expect("bind the front");
    let addr = l.local_addr().expect("front address").to_string();
    let decide = Arc::new(decide);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(client) = conn else { return };
            let (up, decide) = (upstream.clone(), decide.clone());
            std::thread::spawn(move || serve_front(client, &up, &*decide));
        }
    });
    addr
}

fn serve_front(client: TcpStream, upstream: &str, decide: &dyn Fn(&str, &str) -> FrontAction) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_side) = client.try_clone() else { return };
    let mut r = BufReader::new(read_side);
    let mut w = client;
    let mut first = String::new();
    if r.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = String::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            if k.eq_ignore_ascii_case("proxy-connection") || k.eq_ignore_ascii_case("connection") {
                continue;
            }
        }
        headers.push_str(&h);
    }
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target
        .strip_prefix("http://")
        .and_then(|t| t.find('/').map(|i| t[i..].to_string()))
        .unwrap_or_else(|| target.to_string());
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let action = decide(method, &path);
    if let FrontAction::Reply(bytes) = action {
        let _ = w.write_all(bytes);
        return;
    }
    let Ok(mut u) = TcpStream::connect(upstream) else { return };
    let req = format!("{method} {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    if u.write_all(req.as_bytes()).and_then(|_| u.write_all(&body)).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = u.read_to_end(&mut resp);
    let end = if action == FrontAction::ForwardHalf { resp.len() / 2 } else { resp.len() };
    let _ = w.write_all(&resp[..end]);
}
