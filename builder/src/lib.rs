//! berth-builder: builds images from Dockerfiles on berth's own runtime.
//!
//! - [`dockerfile`]: the parser (directives, continuations, heredocs, flags, stages).
//! - [`lex`]: words, quotes and variable substitution with BuildKit's rules.
//! - [`mounts`]: `RUN --mount` values.
//! - [`ignore`]: `.dockerignore` with docker's matching rules.
//! - [`copy`]: COPY/ADD planning, content digests, layer tars.
//! - [`fsview`]: an image's merged file system read through its layers.
//! - [`exec`]: the executor (stages, steps, cache) on the Engine.
//! - [`fetch`]: HTTP and HTTPS downloads for `ADD URL` (reqwest, the registry client's trust).
//! - [`commit`]: `container commit`.
//! - [`prune`]: `builder prune`.
//! - [`error`]: the builder's error type.

pub use error::BuildError;
pub use exec::{
    BuildOptions, BuildResult, Event, ImageSource, NamedContext, Progress, RegistrySource,
    SESSION_LABEL, StoreOnly, build, remove_session,
};

pub mod commit;
pub mod copy;
pub mod dockerfile;
pub mod error;
pub mod exec;
pub mod fetch;
pub mod fsview;
pub mod ignore;
pub mod lex;
pub mod mounts;
pub mod prune;
