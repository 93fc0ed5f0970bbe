//! `berth system df`: what the images, containers and volumes of one state root use on disk,
//! and how much of it a prune could give back (docker's `system df`).

use std::collections::{BTreeMap, BTreeSet};

use berth_image::ListFilters as ImageFilters;
use serde::Serialize;

use super::{SystemError, du};
use crate::Engine;
use crate::container::ListFilters;
use crate::volume::{VolumeFilters, VolumeStore};

/// One image's usage (docker's `system df -v` image row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageUsage {
    /// `sha256:<hex>`.
    pub id: String,
    /// Familiar `name:tag` references (empty: dangling).
    pub repo_tags: Vec<String>,
    /// Creation time (unix seconds).
    pub created: i64,
    /// All its layers' unpacked sizes.
    pub size: u64,
    /// The part of `size` in layers other images use too.
    pub shared_size: u64,
    /// How many containers (any state) were created from it.
    pub containers: usize,
}

/// One container's usage (docker's `system df -v` container row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUsage {
    /// Full id.
    pub id: String,
    /// Names, each with a leading slash.
    pub names: Vec<String>,
    /// The image as given.
    pub image: String,
    /// The command line.
    pub command: String,
    /// Named and anonymous volumes it mounts.
    pub local_volumes: usize,
    /// Its writable layer's size (bytes).
    pub size_rw: u64,
    /// Creation time (unix seconds).
    pub created: i64,
    /// `running`, `exited`, ...
    pub state: String,
    /// Human status (`Up 3 seconds`).
    pub status: String,
}

/// One volume's usage (docker's `system df -v` volume row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeUsage {
    /// The name.
    pub name: String,
    /// How many containers (any state) mount it.
    pub links: usize,
    /// Bytes of its files.
    pub size: u64,
}

/// Everything `system df` reports for one state root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    /// Images, newest first.
    pub images: Vec<ImageUsage>,
    /// Containers, newest first.
    pub containers: Vec<ContainerUsage>,
    /// Volumes by name.
    pub volumes: Vec<VolumeUsage>,
    /// Bytes of all image layers, each shared layer counted once.
    pub layers_size: u64,
    /// Bytes of the layers no container's image uses.
    pub layers_reclaimable: u64,
    /// The builder's untagged intermediate images.
    pub build_cache: usize,
    /// Bytes of the layers only those hold.
    pub build_cache_size: u64,
}

/// One line of docker's `system df` summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsageRow {
    /// `Images`, `Containers`, `Local Volumes`, `Build Cache`.
    pub kind: &'static str,
    /// How many there are.
    pub total: usize,
    /// How many are in use.
    pub active: usize,
    /// Bytes used.
    pub size: u64,
    /// Bytes a prune could free.
    pub reclaimable: u64,
}

impl DiskUsage {
    /// docker's four summary lines (Build Cache: the builder's intermediate images).
    pub fn summary(&self) -> Vec<DiskUsageRow> {
        let running = |c: &&ContainerUsage| matches!(c.state.as_str(), "running" | "paused");
        vec![
            DiskUsageRow {
                kind: "Images",
                total: self.images.len(),
                active: self.images.iter().filter(|i| i.containers > 0).count(),
                size: self.layers_size,
                reclaimable: self.layers_reclaimable,
            },
            DiskUsageRow {
                kind: "Containers",
                total: self.containers.len(),
                active: self.containers.iter().filter(running).count(),
                size: self.containers.iter().map(|c| c.size_rw).sum(),
                reclaimable: self
                    .containers
                    .iter()
                    .filter(|c| !running(c))
                    .map(|c| c.size_rw)
                    .sum(),
            },
            DiskUsageRow {
                kind: "Local Volumes",
                total: self.volumes.len(),
                active: self.volumes.iter().filter(|v| v.links > 0).count(),
                size: self.volumes.iter().map(|v| v.size).sum(),
                reclaimable: self.volumes.iter().filter(|v| v.links == 0).map(|v| v.size).sum(),
            },
            DiskUsageRow {
                kind: "Build Cache",
                total: self.build_cache,
                active: 0,
                size: self.build_cache_size,
                reclaimable: self.build_cache_size,
            },
        ]
    }
}

/// Image rows and layer totals from each image's layers and container count.
fn image_usage(
    images: Vec<berth_image::ImageSummary>,
    layers: &[berth_image::ImageLayers],
    used_by: &BTreeMap<String, usize>,
) -> (Vec<ImageUsage>, u64, u64) {
    let by_id: BTreeMap<&str, &Vec<(String, u64)>> =
        layers.iter().map(|l| (l.id.as_str(), &l.layers)).collect();
    // How many images each layer belongs to, and its size.
    let mut users: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for l in layers {
        let unique: BTreeSet<&(String, u64)> = l.layers.iter().collect();
        for (chain, size) in unique {
            users.entry(chain.as_str()).or_insert((0, *size)).0 += 1;
        }
    }
    let total: u64 = users.values().map(|(_, s)| s).sum();
    let mut active_layers: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for img in images {
        let own = by_id.get(img.id.as_str()).map(|v| v.as_slice()).unwrap_or_default();
        let unique: BTreeSet<&(String, u64)> = own.iter().collect();
        let size = unique.iter().map(|(_, s)| s).sum();
        let shared = unique
            .iter()
            .filter(|(c, _)| users.get(c.as_str()).is_some_and(|(n, _)| *n > 1))
            .map(|(_, s)| s)
            .sum();
        let containers = used_by.get(&img.id).copied().unwrap_or(0);
        if containers > 0 {
            active_layers.extend(own.iter().map(|(c, _)| c.as_str()));
        }
        out.push(ImageUsage {
            id: img.id,
            repo_tags: img.repo_tags,
            created: img.created,
            size,
            shared_size: shared,
            containers,
        });
    }
    let active: u64 = active_layers.iter().filter_map(|c| users.get(c)).map(|(_, s)| s).sum();
    (out, total, total - active.min(total))
}

impl Engine {
    /// `docker system df`: the usage of this state root's images, containers and volumes.
    pub async fn system_df(&self) -> Result<DiskUsage, SystemError> {
        let containers = self.container_list(true, &ListFilters::default()).await?;
        let e = self.clone();
        tokio::task::spawn_blocking(move || e.df_sync(containers))
            .await
            .map_err(|err| SystemError::Store(join_error(err)))?
    }

    fn df_sync(
        &self,
        list: Vec<crate::container::ContainerSummary>,
    ) -> Result<DiskUsage, SystemError> {
        let mut used_by: BTreeMap<String, usize> = BTreeMap::new();
        let mut vol_links: BTreeMap<String, usize> = BTreeMap::new();
        let mut containers = Vec::new();
        for c in list {
            *used_by.entry(c.image_id.clone()).or_default() += 1;
            let vols: BTreeSet<&str> =
                c.mounts.iter().filter(|m| m.typ == "volume").map(|m| m.name.as_str()).collect();
            for v in &vols {
                *vol_links.entry(v.to_string()).or_default() += 1;
            }
            let upper = self.root().containers_dir().join(&c.id).join("rootfs").join("upper");
            containers.push(ContainerUsage {
                local_volumes: vols.len(),
                size_rw: du(&upper),
                id: c.id,
                names: c.names,
                image: c.image,
                command: c.command,
                created: c.created,
                state: c.state,
                status: c.status,
            });
        }
        let store = self.images()?;
        let (images, layers_size, layers_reclaimable) =
            image_usage(store.list(&ImageFilters::default())?, &store.layer_usage()?, &used_by);
        let vstore = VolumeStore::open(self.root());
        let in_use = |n: &str| vol_links.contains_key(n);
        let mut volumes: Vec<VolumeUsage> = vstore
            .list(&VolumeFilters::default(), &in_use)?
            .into_iter()
            .map(|v| VolumeUsage {
                links: vol_links.get(&v.name).copied().unwrap_or(0),
                size: du(&v.mountpoint),
                name: v.name,
            })
            .collect();
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        let (build_cache, build_cache_size) = store.build_cache_usage()?;
        Ok(DiskUsage {
            images,
            containers,
            volumes,
            layers_size,
            layers_reclaimable,
            build_cache,
            build_cache_size,
        })
    }
}

/// A failed blocking task as a store error (it only fails when the task panicked).
fn join_error(e: tokio::task::JoinError) -> berth_store::StoreError {
    berth_store::StoreError::io("run system task", "", std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::{ImageLayers, ImageSummary};

    fn img(id: &str) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            repo_tags: vec![],
            created: 0,
            size: 0,
            labels: Default::default(),
        }
    }

    #[test]
    fn shared_layers_count_once_and_reclaimable_excludes_used_ones() {
        let layers = vec![
            ImageLayers { id: "a".into(), layers: vec![("l1".into(), 100), ("l2".into(), 10)] },
            ImageLayers { id: "b".into(), layers: vec![("l1".into(), 100), ("l3".into(), 1)] },
            ImageLayers { id: "c".into(), layers: vec![("l4".into(), 1000)] },
        ];
        let used = BTreeMap::from([("a".to_string(), 2)]);
        let (rows, total, reclaimable) =
            image_usage(vec![img("a"), img("b"), img("c")], &layers, &used);
        assert_eq!(total, 1111);
        assert_eq!(reclaimable, 1001, "l3 and l4: a's layers are in use");
        assert_eq!((rows[0].size, rows[0].shared_size, rows[0].containers), (110, 100, 2));
        assert_eq!((rows[1].size, rows[1].shared_size, rows[1].containers), (101, 100, 0));
        assert_eq!((rows[2].size, rows[2].shared_size), (1000, 0));
        let du = DiskUsage {
            images: rows,
            layers_size: total,
            layers_reclaimable: reclaimable,
            ..Default::default()
        };
        let s = du.summary();
        assert_eq!((s[0].total, s[0].active, s[0].size, s[0].reclaimable), (3, 1, 1111, 1001));
        assert_eq!(s[3].kind, "Build Cache");
    }
}
