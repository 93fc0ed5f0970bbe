//! compose-spec: reads compose files into a typed, validated `Project` model.
//!
//! Stages, one module each, in pipeline order: discovery -> yaml (positioned [`tree`]) -> merge ->
//! interpolate -> extends/include/profiles -> normalise -> validate. No I/O beyond reading files.

pub mod error;
pub mod merge;
pub mod tree;
pub mod yaml;

pub use error::{ErrorKind, LoadError};
pub use tree::{Mapping, Mark, Node, Value};
