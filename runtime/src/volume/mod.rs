//! Local-driver named volumes under `root/volumes/<name>/`: `_data/` holds the content,
//! `volume.json` the record. Changes happen under the root lock; a volume directory appears by
//! rename, so a half-created volume is never visible.

mod methods;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_image::{ImageError, ImageStore};
use berth_store::{LockGuard, StateRoot, StoreError, read_json, write_json_atomic};
use serde::{Deserialize, Serialize};

/// The label docker puts on anonymous volumes; `volume prune` without `--all` removes only those.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The only driver berth has.
pub const LOCAL_DRIVER: &str = "local";

/// Errors from volume operations.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume has this name.
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    /// The name is not a valid volume name.
    #[error(
        "invalid volume name \"{0}\": names are [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two characters)"
    )]
    InvalidName(String),
    /// A container uses the volume.
    #[error("remove {0}: volume is in use")]
    InUse(String),
    /// The volume exists with other driver options.
    #[error("volume {0} already exists with different driver options")]
    Conflict(String),
    /// A driver option berth's local driver does not support.
    #[error("unsupported volume driver option {0}")]
    UnsupportedOption(String),
    /// A driver other than `local`.
    #[error("volume driver {0} is not supported (only local)")]
    UnsupportedDriver(String),
    /// State on disk could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Populating from an image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The blocking task running the operation failed.
    #[error("volume task failed: {0}")]
    Task(String),
}

/// `volumes/<name>/volume.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VolumeRecord {
    name: String,
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    created_at: String,
    /// Content was copied in from an image (done once, like docker).
    populated: bool,
    /// Created without a name (64 hex) or labelled anonymous.
    anonymous: bool,
}

/// A volume as `docker volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// The name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// The `_data` directory.
    pub mountpoint: PathBuf,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Always `local`.
    pub scope: String,
    /// Driver options (None when there are none, like docker's `null`).
    pub options: Option<BTreeMap<String, String>>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// Filters for [`VolumeStore::list`] (docker's `--filter`).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilters {
    /// `name=SUBSTRING` (any matches).
    pub name: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE` (all must match).
    pub label: Vec<String>,
    /// `dangling=true|false`: unused volumes only / used only.
    pub dangling: Option<bool>,
}

/// The result of a volume prune.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneReport {
    /// Names of removed volumes.
    pub volumes_deleted: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// Whether `name` is a valid volume name (docker's rule).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn random_hex64() -> Result<String, StoreError> {
    let mut buf = [0u8; 32];
    let p = Path::new("/dev/urandom");
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StoreError::io("read", p, e))?;
    Ok(hex::encode(buf))
}

fn unique_suffix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Bytes used by regular files under `p` (not following symlinks).
fn du(p: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(p) else { return 0 };
    if md.is_dir() {
        fs::read_dir(p).map(|rd| rd.flatten().map(|e| du(&e.path())).sum()).unwrap_or(0)
    } else if md.is_file() {
        md.len()
    } else {
        0
    }
}

/// Checks driver options: only `type=none,o=bind,device=/abs/path` (a bind volume) is supported.
fn check_options(opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    if opts.is_empty() {
        return Ok(());
    }
    for k in opts.keys() {
        if !["type", "o", "device"].contains(&k.as_str()) {
            return Err(VolumeError::UnsupportedOption(k.clone()));
        }
    }
    let ty = opts.get("type").map(String::as_str).unwrap_or("");
    let bind = opts.get("o").is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
    match (ty, bind, opts.get("device")) {
        ("none" | "", true, Some(dev)) if Path::new(dev).is_absolute() => {
            if Path::new(dev).is_dir() {
                Ok(())
            } else {
                Err(VolumeError::UnsupportedOption(format!("device={dev}: no such directory")))
            }
        }
        _ => Err(VolumeError::UnsupportedOption(format!(
            "type={ty} (only type=none,o=bind,device=/absolute/path is supported)"
        ))),
    }
}

/// The volume store under `root/volumes/`.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    root: StateRoot,
    dir: PathBuf,
}

impl VolumeStore {
    /// Opens the store of `root`.
    pub fn open(root: &StateRoot) -> Self {
        VolumeStore { root: root.clone(), dir: root.volumes_dir() }
    }

    fn vol_dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        // The name becomes a path component: only valid names get here.
        if !valid_name(name) {
            return Err(VolumeError::InvalidName(name.to_string()));
        }
        Ok(self.dir.join(name))
    }

    /// The `_data` directory of volume `name` (its Mountpoint).
    pub fn mountpoint(&self, name: &str) -> Result<PathBuf, VolumeError> {
        Ok(self.vol_dir(name)?.join("_data"))
    }

    fn record(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        let p = self.vol_dir(name)?.join("volume.json");
        read_json(&p)?.ok_or_else(|| VolumeError::NoSuchVolume(name.to_string()))
    }

    fn to_volume(&self, r: &VolumeRecord) -> Volume {
        Volume {
            name: r.name.clone(),
            driver: LOCAL_DRIVER.to_string(),
            mountpoint: self.dir.join(&r.name).join("_data"),
            labels: r.labels.clone(),
            scope: "local".to_string(),
            options: if r.options.is_empty() { None } else { Some(r.options.clone()) },
            created_at: r.created_at.clone(),
        }
    }

    /// `docker volume create`: `name` None makes an anonymous (64-hex) volume. Creating an
    /// existing name returns it unchanged (docker's behaviour) unless the options differ.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        driver_opts: BTreeMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let mut labels = labels;
        let (name, anonymous) = match name {
            Some(n) => (n.to_string(), labels.contains_key(ANONYMOUS_LABEL)),
            None => {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
                (random_hex64()?, true)
            }
        };
        let dir = self.vol_dir(&name)?;
        check_options(&driver_opts)?;
        let _lock = self.root.lock()?;
        if let Some(existing) = read_json::<VolumeRecord>(&dir.join("volume.json"))? {
            if existing.options != driver_opts {
                return Err(VolumeError::Conflict(name));
            }
            return Ok(self.to_volume(&existing));
        }
        let rec = VolumeRecord {
            name: name.clone(),
            labels,
            options: driver_opts,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            populated: false,
            anonymous,
        };
        let tmp = self.dir.join(format!(".tmp-{}", unique_suffix()));
        let build = || -> Result<(), VolumeError> {
            let data = tmp.join("_data");
            fs::create_dir_all(&data).map_err(|e| StoreError::io("create", &data, e))?;
            write_json_atomic(&tmp.join("volume.json"), &rec)?;
            if dir.exists() {
                // Debris without a record (a crash mid-remove): replace it.
                fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove", &dir, e))?;
            }
            fs::rename(&tmp, &dir).map_err(|e| StoreError::io("create volume", &dir, e))?;
            Ok(())
        };
        if let Err(e) = build() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.journal("create", &name);
        Ok(self.to_volume(&rec))
    }

    /// `docker volume inspect`.
    pub fn inspect(&self, name: &str) -> Result<Volume, VolumeError> {
        Ok(self.to_volume(&self.record(name)?))
    }

    /// Where a container mounts the volume from: the bind `device` for a bind volume, else
    /// `_data`.
    pub fn mount_source(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let r = self.record(name)?;
        match r.options.get("device") {
            Some(dev) => Ok(PathBuf::from(dev)),
            None => self.mountpoint(name),
        }
    }

    /// `docker volume ls`, sorted by name. `in_use(name)` answers the `dangling` filter.
    pub fn list(
        &self,
        filters: &VolumeFilters,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Volume>, VolumeError> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.dir).map_err(|e| StoreError::io("read", &self.dir, e))?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !valid_name(&name) {
                continue; // .tmp-* staging and strays
            }
            let Some(r) = read_json::<VolumeRecord>(&e.path().join("volume.json"))? else {
                continue;
            };
            if !filters.name.is_empty() && !filters.name.iter().any(|n| r.name.contains(n.as_str()))
            {
                continue;
            }
            let label_ok = filters.label.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => r.labels.get(k).is_some_and(|x| x == v),
                None => r.labels.contains_key(f),
            });
            if !label_ok {
                continue;
            }
            if let Some(d) = filters.dangling
                && d == in_use(&r.name)
            {
                continue;
            }
            out.push(self.to_volume(&r));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `docker volume rm`: refused while a container uses it; `force` ignores a missing volume.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<(), VolumeError> {
        let _lock = self.root.lock()?;
        self.remove_locked(name, force, in_use).map(|_| ())
    }

    fn remove_locked(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<u64, VolumeError> {
        let dir = self.vol_dir(name)?;
        if !dir.join("volume.json").exists() {
            return if force { Ok(0) } else { Err(VolumeError::NoSuchVolume(name.to_string())) };
        }
        if in_use(name) {
            return Err(VolumeError::InUse(name.to_string()));
        }
        let size = du(&dir.join("_data"));
        // Rename first so a half-deleted volume never looks like a volume.
        let trash = self.dir.join(format!(".trash-{}", unique_suffix()));
        fs::rename(&dir, &trash).map_err(|e| StoreError::io("remove volume", &dir, e))?;
        self.journal("destroy", name);
        fs::remove_dir_all(&trash).map_err(|e| StoreError::io("remove", &trash, e))?;
        Ok(size)
    }

    /// Journals docker's volume event `action` (`create`, `destroy`) of volume `name`.
    fn journal(&self, action: &str, name: &str) {
        let attrs = [("driver", "local".to_string())];
        crate::events::object(self.root.path(), "volume", action, name, &attrs);
    }

    /// `docker volume prune`: removes unused anonymous volumes (`all`: named ones too).
    pub fn prune(
        &self,
        all: bool,
        label_filters: &[String],
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<VolumePruneReport, VolumeError> {
        let filters = VolumeFilters { label: label_filters.to_vec(), ..Default::default() };
        let candidates = self.list(&filters, in_use)?;
        let _lock = self.root.lock()?;
        let mut report = VolumePruneReport::default();
        for v in candidates {
            let r = self.record(&v.name)?;
            let anonymous = r.anonymous || r.labels.contains_key(ANONYMOUS_LABEL);
            if (!all && !anonymous) || in_use(&v.name) {
                continue;
            }
            report.space_reclaimed += self.remove_locked(&v.name, true, in_use)?;
            report.volumes_deleted.push(v.name);
        }
        self.clean_debris();
        Ok(report)
    }

    /// Removes `.tmp-<pid>-*` / `.trash-<pid>-*` left by processes that died mid-create/remove.
    fn clean_debris(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name.strip_prefix(".tmp-").or_else(|| name.strip_prefix(".trash-"))
            else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Copies `path` of `image` into the volume when the volume was never populated and its
    /// `_data` is empty (docker's copy-on-first-mount, with ownership and modes). Returns
    /// whether content was copied. Bind volumes are never populated.
    pub fn populate_from_image(
        &self,
        name: &str,
        images: &ImageStore,
        image: &str,
        path: &str,
    ) -> Result<bool, VolumeError> {
        let dir = self.vol_dir(name)?;
        // A per-volume lock: copying may take a while and must not block the whole root.
        let _lock = LockGuard::exclusive(&dir.join(".populate.lock"))?;
        let mut rec = self.record(name)?;
        if rec.populated || rec.options.contains_key("device") {
            return Ok(false);
        }
        let data = dir.join("_data");
        let empty =
            fs::read_dir(&data).map_err(|e| StoreError::io("read", &data, e))?.next().is_none();
        if !empty {
            return Ok(false);
        }
        let copied = images.copy_path_from_image(image, path, &data)?;
        if copied {
            rec.populated = true;
            let _root_lock = self.root.lock()?;
            write_json_atomic(&dir.join("volume.json"), &rec)?;
        }
        Ok(copied)
    }
}
