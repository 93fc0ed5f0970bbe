//! berth-builder: builds images from Dockerfiles on berth's own runtime.
//!
//! - [`dockerfile`]: the parser (directives, continuations, heredocs, flags, stages).
//! - [`lex`]: words, quotes and variable substitution with BuildKit's rules.
//! - [`mounts`]: `RUN --mount` values.
//! - [`ignore`]: `.dockerignore` with docker's matching rules.

pub mod dockerfile;
pub mod ignore;
pub mod lex;
pub mod mounts;
