//! The event journal (`berth_store::events`, `{root}/events.jsonl`), which the runtime appends
//! to where it acts: container create, start, die (with `exitCode`), oom, kill, stop, restart,
//! pause, unpause, rename, destroy and exec_* (`ContainerRecord::journal`, with the container's
//! labels, `name` and `image` as docker's attributes), network create, connect, disconnect and
//! destroy (`networks.rs`), volume create and destroy (the volume store); images journal their
//! own (berth-image) and pulls go through [`image_pulled`].

use std::path::Path;

pub use berth_store::events::*;

/// Journals docker's `pull` event of `reference` (for the pulls made outside the Engine: the
/// registry client works on the image store alone).
pub fn image_pulled(root: &Path, reference: &str) {
    let name = reference.split('@').next().unwrap_or(reference);
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    object(root, "image", "pull", reference, &[("name", name.to_string())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_events_name_the_repository() {
        let root = tempfile::tempdir().expect("tempdir");
        for r in ["busybox:latest", "127.0.0.1:5000/x:1", "127.0.0.1:5000/x", "a/b@sha256:00"] {
            image_pulled(root.path(), r);
        }
        let (_, evs) = JournalReader::with_history(root.path());
        let names: Vec<&str> = evs.iter().map(|e| e.attributes["name"].as_str()).collect();
        assert_eq!(names, ["busybox", "127.0.0.1:5000/x", "127.0.0.1:5000/x", "a/b"]);
        assert!(evs.iter().all(|e| e.kind == "image" && e.action == "pull"));
    }
}
