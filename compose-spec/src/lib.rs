//! compose-spec: reads compose files into a typed, validated `Project` model.
//!
//! Stages, one module each, in pipeline order: discovery -> yaml (positioned [`tree`]) -> merge ->
//! interpolate -> extends/include/profiles -> normalise -> validate. No I/O beyond reading files.

pub mod convert;
pub mod discovery;
pub mod dotenv;
pub mod emit;
pub mod env_file;
pub mod error;
pub mod extends;
pub mod include;
pub mod interpolate;
pub mod loader;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod paths;
pub mod profiles;
pub mod project;
pub mod tree;
pub mod validate;
pub mod yaml;

pub use emit::service_hash;
pub use error::{ErrorKind, LoadError};
pub use project::load_project;
pub use tree::{Mapping, Mark, Node, Value};
