//! Parent-side precomputation: everything the child needs, built before the fork so the child
//! only issues system calls on ready data.
//!
//! Files, in layers: `steps` (paths in the root, the operations, C strings) → `process` (the
//! process: argv, user, capabilities, seccomp, rlimits, stdio), `namespaces` → `devices` →
//! `filesystem` (rootfs, mounts, masked and read-only paths, hostname, sysctls).

mod devices;
mod filesystem;
mod namespaces;
mod process;
mod steps;

pub use filesystem::{FsPlan, fs_plan};
pub use namespaces::{NsPlan, namespaces};
pub use process::{ProcPlan, StdioPlan};
pub use steps::{InRoot, Op, Target};
