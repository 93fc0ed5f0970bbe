//! Merging compose files (and multi-document YAML) with the compose-spec merge rules.

use crate::error::LoadError;
use crate::tree::{Node, Value};

/// Merges `over` into `base`; `path` is the key path of both (empty at the root).
pub fn merge_nodes(base: Node, over: Node, path: &str) -> Result<Node, LoadError> {
    let _ = path;
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for (k, (km, v)) in o {
                let p = crate::yaml::join(path, &k);
                let merged = match b.shift_remove(&k) {
                    Some((_, old)) => merge_nodes(old, v, &p)?,
                    None => v,
                };
                b.insert(k, (km, merged));
            }
            Ok(Node { value: Value::Map(b), mark: base.mark, tag: base.tag })
        }
        (_, value) => Ok(Node { value, mark: over.mark, tag: over.tag }),
    }
}
