//! Credentials as docker keeps them: `config.json`'s `auths` (base64 `user:password`),
//! `credHelpers` per registry and `credsStore` for all, both run as `docker-credential-NAME
//! get|store|erase`; `login` checks them against the registry before storing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::RegistryError;
use super::config::{credentials_key, docker_config_dir, normalise_server};
use crate::ImageError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Credentials {
    /// docker's user name for an identity token (an OAuth2 refresh token in `password`).
    pub const TOKEN_USER: &str = "<token>";

    /// Whether these are an identity token rather than a user and password.
    pub fn is_identity_token(&self) -> bool {
        self.username == Self::TOKEN_USER
    }

    /// The `Authorization: Basic` value.
    pub(crate) fn basic(&self) -> String {
        format!("Basic {}", B64.encode(format!("{}:{}", self.username, self.password)))
    }
}

fn cred_err(msg: impl Into<String>) -> RegistryError {
    RegistryError::Credentials(msg.into())
}

fn config_path() -> PathBuf {
    docker_config_dir().join("config.json")
}

/// config.json as a JSON object (missing: empty), keeping every field we don't touch.
fn read_config(path: &Path) -> Result<Map<String, Value>, RegistryError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(cred_err(format!("cannot read {}: {e}", path.display()))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(cred_err(format!("{} is not a JSON object", path.display()))),
        Err(e) => Err(cred_err(format!("{} is not valid JSON: {e}", path.display()))),
    }
}

fn write_config(path: &Path, cfg: &Map<String, Value>) -> Result<(), RegistryError> {
    let fail = |e: std::io::Error| cred_err(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    let bytes = serde_json::to_vec_pretty(cfg).map_err(|e| cred_err(e.to_string()))?;
    // Written 0600 then renamed: the file holds passwords.
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    let mut file = f.write(true).create(true).truncate(true).open(&tmp).map_err(fail)?;
    file.write_all(&bytes).and_then(|_| file.write_all(b"\n")).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

/// The helper config.json names for `key`: `credHelpers[key]`, else `credsStore`.
fn helper_for(cfg: &Map<String, Value>, domain: &str) -> Option<String> {
    let key = credentials_key(domain);
    cfg.get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|h| h.get(&key).or_else(|| h.get(domain)))
        .or_else(|| cfg.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Runs `docker-credential-NAME ACTION` with `input` on stdin; its stdout.
fn run_helper(name: &str, action: &str, input: &[u8]) -> Result<(bool, Vec<u8>), RegistryError> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cred_err(format!("cannot run the credential helper {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cred_err(format!("the credential helper {program} failed: {e}")))?;
    if out.status.success() {
        return Ok((true, out.stdout));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string()
        + String::from_utf8_lossy(&out.stderr).trim();
    // docker's helpers say so on stdout; that is "no credentials", not a failure.
    if text.contains("credentials not found") {
        return Ok((false, Vec::new()));
    }
    Err(cred_err(format!("{program} {action} failed: {text}")))
}

/// The credentials docker would use for `domain`, if any.
pub(crate) fn lookup(domain: &str) -> Result<Option<Credentials>, RegistryError> {
    let path = config_path();
    let cfg = read_config(&path)?;
    if let Some(helper) = helper_for(&cfg, domain) {
        let (found, out) = run_helper(&helper, "get", credentials_key(domain).as_bytes())?;
        if found {
            let v: Value = serde_json::from_slice(&out).map_err(|e| {
                cred_err(format!("docker-credential-{helper} get printed no JSON: {e}"))
            })?;
            let get = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let (username, password) = (get("Username"), get("Secret"));
            // A `<token>` user means the secret is an identity token, as with docker.
            if !password.is_empty() {
                return Ok(Some(Credentials { username, password }));
            }
        }
    }
    let Some(auths) = cfg.get("auths").and_then(Value::as_object) else { return Ok(None) };
    for (key, entry) in auths {
        if normalise_server(key) != domain {
            continue;
        }
        // An identity token wins over `auth` (which then holds only the user name), as docker.
        if let Some(t) =
            entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty())
        {
            let token = t.to_string();
            return Ok(Some(Credentials {
                username: Credentials::TOKEN_USER.into(),
                password: token,
            }));
        }
        if let Some(a) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let decoded = B64.decode(a.trim()).map_err(|e| {
                cred_err(format!("{}: auths.{key}.auth is not base64: {e}", path.display()))
            })?;
            let text = String::from_utf8_lossy(&decoded).to_string();
            let Some((u, p)) = text.split_once(':') else {
                return Err(cred_err(format!(
                    "{}: auths.{key}.auth is not base64 of user:password",
                    path.display()
                )));
            };
            return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
        }
        let get = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        if !get("password").is_empty() {
            return Ok(Some(Credentials { username: get("username"), password: get("password") }));
        }
    }
    Ok(None)
}

/// Stores `creds` for `domain` (with the configured helper, else base64 in config.json's
/// `auths`).
pub(super) fn store(domain: &str, creds: &Credentials) -> Result<(), ImageError> {
    let path = config_path();
    let mut cfg = read_config(&path)?;
    let key = credentials_key(domain);
    if let Some(helper) = helper_for(&cfg, domain) {
        let payload =
            json!({"ServerURL": key, "Username": creds.username, "Secret": creds.password});
        run_helper(&helper, "store", payload.to_string().as_bytes())?;
        // The helper has it: no password in the file, but docker keeps an empty entry.
        let auths = cfg.entry("auths").or_insert_with(|| json!({}));
        if let Some(a) = auths.as_object_mut() {
            a.insert(key, json!({}));
        }
    } else {
        let auths = cfg.entry("auths").or_insert_with(|| json!({}));
        let Some(a) = auths.as_object_mut() else {
            return Err(cred_err(format!("{}: auths is not an object", path.display())).into());
        };
        let auth = B64.encode(format!("{}:{}", creds.username, creds.password));
        a.insert(key, json!({ "auth": auth }));
    }
    Ok(write_config(&path, &cfg)?)
}

/// `docker logout`: removes stored credentials for the registry `server` names. Returns the
/// domain and whether anything was removed.
pub fn logout(server: &str) -> Result<(String, bool), ImageError> {
    let domain = normalise_server(server);
    let path = config_path();
    let mut cfg = read_config(&path)?;
    let mut removed = false;
    if let Some(helper) = helper_for(&cfg, &domain) {
        let (found, _) = run_helper(&helper, "erase", credentials_key(&domain).as_bytes())?;
        removed |= found;
    }
    if let Some(a) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
        let keys: Vec<String> =
            a.keys().filter(|k| normalise_server(k) == domain).cloned().collect();
        for k in keys {
            removed |= a.remove(&k).is_some();
        }
    }
    if removed {
        write_config(&path, &cfg)?;
    }
    Ok((domain, removed))
}
