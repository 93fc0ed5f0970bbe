//! Docker-API-shaped image records (PascalCase JSON) returned by inspect, list and load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An image's healthcheck as stored in docker image configs (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between checks (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time one check may take (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Start period during which failures don't count (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Interval during the start period (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// `Config` of `docker image inspect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfigInspect {
    /// Default user.
    pub user: String,
    /// Environment `KEY=value` entries.
    pub env: Option<Vec<String>>,
    /// Default command.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Working directory.
    pub working_dir: String,
    /// Exposed ports as `{"80/tcp": {}}`.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Volumes as `{"/data": {}}`.
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// `RootFS` of `docker image inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsInspect {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Diff ids, bottom layer first.
    pub layers: Vec<String>,
}

/// `docker image inspect` output for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// Familiar `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Digested references (always empty until pull/push exist).
    pub repo_digests: Vec<String>,
    /// Creation time from the config (RFC 3339), empty when the config has none.
    pub created: String,
    /// Comment of the last history entry (e.g. `Imported from -`).
    pub comment: String,
    /// Sum of the layers' unpacked sizes in bytes.
    pub size: u64,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Author from the config.
    pub author: String,
    /// Run configuration.
    pub config: ImageConfigInspect,
    /// The layers.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsInspect,
}

/// One row of `docker image ls` (API shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// `sha256:<hex>`.
    pub id: String,
    /// Familiar `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Creation time in seconds since the epoch (0 when unknown).
    pub created: i64,
    /// Unpacked size in bytes.
    pub size: u64,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
}

/// One image a `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    /// `sha256:<hex>`.
    pub id: String,
    /// Familiar references tagged by the load (empty: loaded untagged).
    pub refs: Vec<String>,
}
