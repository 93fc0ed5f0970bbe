//! `container_create`: resolve the image, merge configs with docker's rules, resolve the user,
//! prepare mounts and the per-container files, and write the records. A failed create removes
//! everything it made.

use std::fs;
use std::path::{Path, PathBuf};

use berth_store::{LockGuard, StoreError};
use berth_timing::mark;
use indexmap::IndexMap;

use super::api::{Config, ContainerCreateConfig, Empty, MountPoint};
use super::error::io_err;
use super::name_index::{self, CREATING_PREFIX};
use super::record::{ContainerPaths, ContainerRecord, StateRecord};
use super::{ContainerError, spec, stores, user};
use crate::Engine;
use crate::ids;
use crate::inplace;

/// docker's default PATH.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks a container name against docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nifty",
    "proud", "quiet", "sharp", "tender", "vivid", "witty", "zen", "bold", "cool", "dreamy",
];
const NOUNS: &[&str] = &[
    "anchor", "buoy", "cove", "dock", "ferry", "harbor", "jetty", "keel", "lagoon", "marina",
    "pier", "quay", "reef", "skiff", "tide", "wharf", "mast", "hull", "bow", "stern",
];

fn generated_name(id: &str) -> String {
    let b = hex::decode(&id[..8]).unwrap_or_else(|_| vec![0; 4]);
    format!(
        "{}_{}{}",
        ADJECTIVES[b[0] as usize % ADJECTIVES.len()],
        NOUNS[b[1] as usize % NOUNS.len()],
        u16::from_be_bytes([b[2], b[3]]) % 1000
    )
}

fn env_key(e: &str) -> &str {
    e.split('=').next().unwrap_or(e)
}

/// Image env, then the request's env overriding by key, plus docker's default PATH.
fn merge_env(image: &[String], request: &[String]) -> Vec<String> {
    let mut env: Vec<String> = image.to_vec();
    for e in request {
        let k = env_key(e);
        if let Some(slot) = env.iter_mut().find(|x| env_key(x) == k) {
            *slot = e.clone();
        } else {
            env.push(e.clone());
        }
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    env
}

/// Merges the request with the image's config using docker's rules.
fn merge_config(req: &Config, img: Option<&oci_spec::image::Config>) -> Config {
    let mut c = req.clone();
    let Some(img) = img else {
        c.env = merge_env(&[], &req.env);
        return c;
    };
    // An entrypoint given in the request also drops the image's cmd (docker's rule).
    let entry_overridden = req.entrypoint.is_some();
    if !entry_overridden {
        c.entrypoint = img.entrypoint().clone();
    }
    if req.cmd.as_ref().is_none_or(|v| v.is_empty()) && !entry_overridden {
        c.cmd = img.cmd().clone();
    }
    c.env = merge_env(img.env().as_deref().unwrap_or(&[]), &req.env);
    if c.working_dir.is_empty() {
        c.working_dir = img.working_dir().clone().unwrap_or_default();
    }
    if c.user.is_empty() {
        c.user = img.user().clone().unwrap_or_default();
    }
    let mut labels: IndexMap<String, String> =
        img.labels().clone().unwrap_or_default().into_iter().collect();
    labels.extend(req.labels.clone());
    c.labels = labels;
    if c.stop_signal.is_none() {
        c.stop_signal = img.stop_signal().clone();
    }
    if let Some(vols) = img.volumes() {
        let m = c.volumes.get_or_insert_with(IndexMap::new);
        for v in vols {
            m.entry(v.clone()).or_insert(Empty {});
        }
    }
    if let Some(ports) = img.exposed_ports() {
        let m = c.exposed_ports.get_or_insert_with(IndexMap::new);
        for p in ports {
            m.entry(p.clone()).or_insert(Empty {});
        }
    }
    c
}

/// Rewrites the host's resolv.conf for a container: loopback nameservers are unreachable from
/// its network namespace, so they are dropped (falling back to public resolvers, as docker does).
pub fn container_resolv_conf(host: &str, host_network: bool) -> String {
    if host_network {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

fn hosts_file(hostname: &str, host_network: bool) -> String {
    if host_network && let Ok(h) = fs::read_to_string("/etc/hosts") {
        return h;
    }
    let _ = hostname;
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
}

/// Makes `dir` and takes its lock. A sweep of crash leftovers may claim the directory between
/// the mkdir and the lock (then it is gone once we get the lock): make it again.
fn make_locked_dir(dir: &Path) -> Result<LockGuard, ContainerError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        fs::create_dir(dir).map_err(io_err("create directory", dir))?;
        match LockGuard::exclusive_dir(dir) {
            Ok(g) if dir.is_dir() => return Ok(g),
            Ok(_) | Err(_) if attempts < 3 => continue,
            Ok(_) => {
                return Err(ContainerError::Io {
                    op: "create directory",
                    path: dir.to_path_buf(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes the identity record into a directory nobody reads yet (`.new-<id>`), over the
/// previous one's bytes when the directory is reused, and fsyncs it, unless the container is
/// removed when it stops (`--rm`): its record is not meant to outlive its run, and after a
/// power loss an unsynced one reads as a damaged record, which is listed and removed like any
/// other. (The fsync, a disk cache flush here, costs 0.2-0.5 ms quiet and far more while other
/// processes write.)
fn write_config_in_place(path: &Path, rec: &ContainerRecord) -> Result<(), ContainerError> {
    let bytes = serde_json::to_vec_pretty(rec)
        .map_err(|e| StoreError::Json { path: path.to_path_buf(), source: e })?;
    let durable = !rec.host_config.auto_remove;
    inplace::write_in_place(path, &bytes, durable).map_err(io_err("write", path))
}

/// What create made so far, undone on failure.
struct Undo<'a> {
    engine: &'a Engine,
    /// The `.new-<id>` directory (fresh or from the pool), recycled or deleted under its lock.
    dir: Option<PathBuf>,
    dir_lock: Option<LockGuard>,
    volumes: Vec<String>,
    /// The name reserved in the index, and for which id.
    name: Option<(String, String)>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            super::name_index::dispose(&d);
        }
        self.dir_lock = None;
        if let Some((name, id)) = self.name.take()
            && let Ok(_root) = self.engine.root().lock()
        {
            self.engine.release_name(&name, &id);
        }
        for v in &self.volumes {
            let _ = stores::volume_remove(self.engine.root(), v);
        }
    }
}

impl Engine {
    /// Creates a container and returns its id (docker's `POST /containers/create`).
    pub async fn container_create(
        &self,
        name: Option<&str>,
        cfg: ContainerCreateConfig,
    ) -> Result<String, ContainerError> {
        // Off the async workers: a create waiting on the root lock or an fsync must not hold one.
        let (e, name) = (self.clone(), name.map(str::to_string));
        crate::engine::blocking(move || e.create_sync(name.as_deref(), cfg)).await
    }

    pub(crate) fn create_sync(
        &self,
        name: Option<&str>,
        cfg: ContainerCreateConfig,
    ) -> Result<String, ContainerError> {
        mark("create: begin");
        if let Some(n) = name
            && !valid_name(n.strip_prefix('/').unwrap_or(n))
        {
            return Err(ContainerError::Invalid(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let hc = cfg.host_config.clone();
        spec::capabilities(&hc).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        spec::check_security_opts(&hc).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        spec::check_resources(&hc).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        match hc.restart_policy.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
            other => {
                return Err(ContainerError::Invalid(format!("invalid restart policy {other:?}")));
            }
        }
        if hc.auto_remove && !matches!(hc.restart_policy.name.as_str(), "" | "no") {
            return Err(ContainerError::Invalid(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        if !matches!(hc.log_config.typ.as_str(), "" | "json-file") {
            return Err(ContainerError::Invalid(format!(
                "logging driver {:?} is not supported (only json-file)",
                hc.log_config.typ
            )));
        }
        crate::logs::Rotation::from_options(&hc.log_config.config)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        if let Some(sig) = &cfg.config.stop_signal
            && crate::process::parse_signal(sig).is_none()
        {
            return Err(ContainerError::Invalid(format!("invalid stop signal: {sig}")));
        }

        // The image (or a plain directory) and the merged config.
        let mut image_health = None;
        let (image_id, layers, img_cfg, rootfs_dir) = match &cfg.rootfs {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(ContainerError::Invalid(format!(
                        "rootfs {} is not a directory",
                        dir.display()
                    )));
                }
                (String::new(), vec![], None, Some(dir.clone()))
            }
            None => {
                if cfg.config.image.is_empty() {
                    return Err(ContainerError::Invalid("no image given".into()));
                }
                let img = stores::resolve_image(self.root(), &cfg.config.image)
                    .map_err(ContainerError::Image)?;
                if cfg.config.healthcheck.is_none() {
                    image_health = img.healthcheck.clone();
                }
                (img.id, img.layers, img.config, None)
            }
        };
        let mut config = merge_config(&cfg.config, img_cfg.as_ref());
        if config.healthcheck.is_none() {
            config.healthcheck = image_health;
        }
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ContainerError::Invalid("No command specified".into()));
        }
        let read_layers: Vec<PathBuf> = match &rootfs_dir {
            Some(d) => vec![d.clone()],
            None => layers.clone(),
        };
        let passwd = user::read_through_layers(&read_layers, "/etc/passwd");
        let group = user::read_through_layers(&read_layers, "/etc/group");
        let who = user::resolve(&config.user, &hc.group_add, passwd.as_deref(), group.as_deref())
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;

        let id = ids::random_id().map_err(io_err("read", "/dev/urandom"))?;
        if config.hostname.is_empty() {
            config.hostname = if hc.network_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().to_string())
                    .unwrap_or_else(|_| id[..12].to_string())
            } else {
                id[..12].to_string()
            };
        }
        let name = match name {
            Some(n) => n.strip_prefix('/').unwrap_or(n).to_string(),
            None => generated_name(&id),
        };
        let paths = ContainerPaths::new(self.root(), &id);
        let mut rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: crate::time::now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc.clone(),
            image_id,
            layers,
            rootfs_dir,
            uid: who.uid,
            gid: who.gid,
            additional_gids: who.additional_gids,
            home: who.home,
            ..Default::default()
        };
        if rec.host_config.network_mode.is_empty() || rec.host_config.network_mode == "default" {
            rec.host_config.network_mode = "none".into();
        }
        rec.networking_config = cfg.networking_config.clone();
        super::net::check_create(self.root(), &rec)?;
        if let Some(target) = rec.host_config.network_mode.strip_prefix("container:") {
            self.find(target)?;
        }

        // Fail fast on a taken name; the reservation that counts is made at the end, under the
        // root lock, together with publishing the record.
        if let Some(other) = self.lookup_name(&name) {
            return Err(ContainerError::NameInUse { name, id: other.id().to_string() });
        }
        // The shared mount-point layer keeps the upper directory empty at start (no copy-up
        // of /etc, no mount-point files per container).
        if let Some(mounts) = berth_image::mount_point_layer(&rec.layers) {
            rec.layers.insert(0, mounts);
        }
        // Filled under a hidden name (`.new-<id>`, skipped by listings) while we hold its lock,
        // and renamed into place when complete: a create killed midway leaves only a hidden,
        // unlocked directory, which the next listing or removal deletes.
        let mut undo =
            Undo { engine: self, dir: None, dir_lock: None, volumes: Vec::new(), name: None };
        let staging = ContainerPaths {
            dir: self.root().containers_dir().join(format!("{CREATING_PREFIX}{id}")),
        };
        // An emptied directory from the pool when there is one (an overlay container's: a
        // `--rootfs` one has no upper/work), else a fresh one: every file below is rewritten in
        // place either way, so a reused one shows nothing of its previous container.
        let start = usize::from_str_radix(&id[..4], 16).unwrap_or(0);
        let claimed = match rec.rootfs_dir {
            None => name_index::claim_free(&staging.dir, start),
            Some(_) => None,
        };
        let reused = claimed.is_some();
        let dir_lock = match claimed {
            Some(l) => l,
            None => make_locked_dir(&staging.dir)?,
        };
        undo.dir = Some(staging.dir.clone());
        undo.dir_lock = Some(dir_lock);
        mark(if reused { "create: directory from the pool" } else { "create: directory made" });

        self.prepare_mounts(&mut rec, &mut undo)?;
        let host_net = rec.host_config.network_mode == "host";
        let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        for (p, text) in [
            (staging.hostname(), format!("{}\n", rec.config.hostname)),
            (staging.hosts(), hosts_file(&rec.config.hostname, host_net)),
            (staging.resolv_conf(), container_resolv_conf(&host_resolv, host_net)),
        ] {
            inplace::write_in_place(&p, text.as_bytes(), false).map_err(io_err("write", &p))?;
        }
        if rec.config.open_stdin {
            let p = staging.stdin_fifo();
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| io_err("create fifo", &p)(e.into()))?;
        }
        if rec.rootfs_dir.is_none() {
            // `rootfs/` is also the overlay's mount target (in the container's own mount
            // namespace), so no separate `merged/` directory. A pool entry has both already.
            for d in [staging.upper(), staging.work()] {
                fs::create_dir_all(&d).map_err(io_err("create directory", &d))?;
            }
        }
        // Check the spec builds now, so a bad option fails create rather than start.
        spec::build(&rec, &paths).map_err(|e| ContainerError::Invalid(e.to_string()))?;
        // The record is written (fsynced) inside the hidden directory, which is published with
        // the name reservation under the root lock: O(1) there (one index entry, one rename).
        // In a fresh directory no state.json: a missing one reads as a created container; a
        // reused one may hold its previous container's, reset here.
        write_config_in_place(&staging.config(), &rec)?;
        if reused && staging.state().exists() {
            staging.write_state(&StateRecord::default())?;
        }
        {
            let _root = self.root().lock()?;
            if let Some(owner) = self.reserve_name(&name, &id)? {
                return Err(ContainerError::NameInUse { name, id: owner });
            }
            undo.name = Some((name.clone(), id.clone()));
            fs::rename(&staging.dir, &paths.dir).map_err(io_err("rename", &paths.dir))?;
        }
        undo.dir = None;
        undo.dir_lock = None;
        undo.volumes.clear();
        undo.name = None;
        rec.journal(self.root().path(), "create", &[]);
        mark("create: done");
        Ok(id)
    }

    /// Binds, named/anonymous volumes and tmpfs mounts, in docker's precedence (explicit mounts
    /// first; image volumes only where nothing else is mounted).
    fn prepare_mounts(
        &self,
        rec: &mut ContainerRecord,
        undo: &mut Undo<'_>,
    ) -> Result<(), ContainerError> {
        let hc = rec.host_config.clone();
        let mut mounts: Vec<MountPoint> = Vec::new();
        let mut anon: Vec<String> = Vec::new();
        let taken =
            |mounts: &Vec<MountPoint>, dest: &str| mounts.iter().any(|m| m.destination == dest);
        let check_dest = |d: &str| -> Result<String, ContainerError> {
            if !d.starts_with('/') {
                return Err(ContainerError::Invalid(format!(
                    "invalid mount config: mount path must be absolute: {d}"
                )));
            }
            let clean = d.trim_end_matches('/');
            Ok(if clean.is_empty() { "/".into() } else { clean.into() })
        };

        for b in &hc.binds {
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dst, mode) = match parts.as_slice() {
                [d] => ("", *d, ""),
                [s, d] => (*s, *d, ""),
                [s, d, m] => (*s, *d, *m),
                _ => {
                    return Err(ContainerError::Invalid(format!(
                        "invalid volume specification: {b:?}"
                    )));
                }
            };
            let dst = check_dest(dst)?;
            if taken(&mounts, &dst) {
                return Err(ContainerError::Invalid(format!("Duplicate mount point: {dst}")));
            }
            let ro = mode.split(',').any(|m| m == "ro");
            let nocopy = mode.split(',').any(|m| m == "nocopy");
            if src.is_empty() {
                let name = ids::random_id().map_err(io_err("read", "/dev/urandom"))?;
                mounts.push(self.volume_mount(rec, &name, &dst, ro, !nocopy, true, undo)?);
                anon.push(name);
            } else if src.starts_with('/') {
                // docker creates a missing host directory for -v binds; an existing file or
                // directory (or a symlink to one) is bound as it is.
                match fs::metadata(src) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        fs::create_dir_all(src).map_err(io_err("create bind source", src))?;
                    }
                    Err(e) => return Err(io_err("read bind source", src)(e)),
                }
                mounts.push(bind(src, &dst, ro, mode));
            } else {
                mounts.push(self.volume_mount(rec, src, &dst, ro, !nocopy, false, undo)?);
            }
        }
        for m in &hc.mounts {
            let dst = check_dest(&m.target)?;
            if taken(&mounts, &dst) {
                return Err(ContainerError::Invalid(format!("Duplicate mount point: {dst}")));
            }
            match m.typ.as_str() {
                "bind" => {
                    let src = Path::new(&m.source);
                    if !src.exists() {
                        if m.bind_options.as_ref().is_some_and(|o| o.create_mountpoint) {
                            fs::create_dir_all(src).map_err(io_err("create bind source", src))?;
                        } else {
                            return Err(ContainerError::Invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                m.source
                            )));
                        }
                    }
                    mounts.push(bind(
                        &m.source,
                        &dst,
                        m.read_only,
                        if m.read_only { "ro" } else { "" },
                    ));
                }
                "volume" => {
                    let copy = !m.volume_options.as_ref().is_some_and(|o| o.no_copy);
                    if m.source.is_empty() {
                        let name = ids::random_id().map_err(io_err("read", "/dev/urandom"))?;
                        mounts.push(self.volume_mount(
                            rec,
                            &name,
                            &dst,
                            m.read_only,
                            copy,
                            true,
                            undo,
                        )?);
                        anon.push(name);
                    } else {
                        mounts.push(self.volume_mount(
                            rec,
                            &m.source,
                            &dst,
                            m.read_only,
                            copy,
                            false,
                            undo,
                        )?);
                    }
                }
                "tmpfs" => {
                    let mut opts = Vec::new();
                    if let Some(t) = &m.tmpfs_options {
                        if t.size_bytes > 0 {
                            opts.push(format!("size={}", t.size_bytes));
                        }
                        if t.mode > 0 {
                            opts.push(format!("mode={:o}", t.mode));
                        }
                    }
                    mounts.push(tmpfs(&dst, !m.read_only));
                    rec.tmpfs_options.push((dst.clone(), opts.join(",")));
                }
                other => {
                    return Err(ContainerError::Invalid(format!(
                        "mount type {other:?} is not supported"
                    )));
                }
            }
        }
        for (path, opts) in &hc.tmpfs {
            let dst = check_dest(path)?;
            if taken(&mounts, &dst) {
                return Err(ContainerError::Invalid(format!("Duplicate mount point: {dst}")));
            }
            let ro = opts.split(',').any(|o| o == "ro");
            let kept: Vec<&str> =
                opts.split(',').filter(|o| !o.is_empty() && *o != "ro" && *o != "rw").collect();
            for o in &kept {
                if let Some(v) = o.strip_prefix("size=")
                    && crate::logs::parse_size(v).is_none()
                {
                    return Err(ContainerError::Invalid(format!("invalid tmpfs size: {v}")));
                }
            }
            mounts.push(tmpfs(&dst, !ro));
            let kept: Vec<String> = kept
                .iter()
                .map(|o| match o.strip_prefix("size=") {
                    Some(v) => format!("size={}", crate::logs::parse_size(v).unwrap_or(0)),
                    None => o.to_string(),
                })
                .collect();
            rec.tmpfs_options.push((dst, kept.join(",")));
        }
        // Image and config `Volumes` nothing else covers become anonymous volumes.
        let vols: Vec<String> =
            rec.config.volumes.clone().unwrap_or_default().keys().cloned().collect();
        for v in vols {
            let dst = check_dest(&v)?;
            if taken(&mounts, &dst) {
                continue;
            }
            let name = ids::random_id().map_err(io_err("read", "/dev/urandom"))?;
            mounts.push(self.volume_mount(rec, &name, &dst, false, true, true, undo)?);
            anon.push(name);
        }
        rec.mounts = mounts;
        rec.anonymous_volumes = anon;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn volume_mount(
        &self,
        rec: &ContainerRecord,
        name: &str,
        dst: &str,
        ro: bool,
        copy: bool,
        anonymous: bool,
        undo: &mut Undo<'_>,
    ) -> Result<MountPoint, ContainerError> {
        let (path, fresh) = stores::volume_ensure(self.root(), name, anonymous)
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        if fresh {
            undo.volumes.push(name.to_string());
        }
        // Copy-up happens once per volume (the volume store records that it was populated).
        if copy && rec.rootfs_dir.is_none() {
            stores::volume_populate(self.root(), name, &rec.image_id, dst)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        }
        Ok(MountPoint {
            typ: "volume".into(),
            name: name.to_string(),
            source: path.to_string_lossy().to_string(),
            destination: dst.to_string(),
            driver: "local".into(),
            mode: if copy { "z".into() } else { "nocopy".into() },
            rw: !ro,
            propagation: String::new(),
        })
    }
}

fn bind(src: &str, dst: &str, ro: bool, mode: &str) -> MountPoint {
    MountPoint {
        typ: "bind".into(),
        name: String::new(),
        source: src.to_string(),
        destination: dst.to_string(),
        driver: String::new(),
        mode: mode.to_string(),
        rw: !ro,
        propagation: "rprivate".into(),
    }
}

fn tmpfs(dst: &str, rw: bool) -> MountPoint {
    MountPoint {
        typ: "tmpfs".into(),
        name: String::new(),
        source: String::new(),
        destination: dst.to_string(),
        driver: String::new(),
        mode: String::new(),
        rw,
        propagation: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("x"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn resolv_drops_loopback() {
        let r = container_resolv_conf("nameserver 127.0.0.53\nsearch x\n", false);
        assert!(!r.contains("127.0.0.53"));
        assert!(r.contains("nameserver 8.8.8.8"));
        let r = container_resolv_conf("nameserver 10.0.0.2\n", false);
        assert_eq!(r, "nameserver 10.0.0.2\n");
    }

    #[test]
    fn env_merge() {
        let e = merge_env(&["A=1".into(), "PATH=/x".into()], &["A=2".into(), "B=3".into()]);
        assert_eq!(e, vec!["A=2", "PATH=/x", "B=3"]);
        assert!(merge_env(&[], &[])[0].starts_with("PATH="));
    }
}
