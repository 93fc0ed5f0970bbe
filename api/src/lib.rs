//! berth-api: the Docker Engine API served over a state root's Engine (`berth system service`),
//! so the docker CLI and other Engine API clients drive berth.
//!
//! Layout: [`server`] (listeners, connections, the idle timeout), `activation` (systemd's
//! socket activation), `http` (responses, docker's
//! error bodies, query and body parsing), `routes` (path dispatch, system, images, networks
//! and volumes), `containers` (containers and exec, with hijacked attach/exec streams),
//! `distribution` (pull and push with docker's progress stream), `build` (the classic
//! builder's `POST /build`), `jsonstream` (docker's JSON message streams),
//! `events` (container events from looking at the state root) and `stream` (docker's multiplexed stream framing, async descriptors).

mod activation;
mod activity;
mod build;
mod containers;
mod distribution;
mod events;
mod http;
mod jsonstream;
mod routes;
pub mod server;
mod state;
mod stream;

pub use server::{DEFAULT_HOST, Host, ServeError, ServeOptions, serve};

/// The highest Engine API version served (docker 24's), reported by `/_ping` and `/version`.
pub const API_VERSION: &str = "1.43";

/// The lowest Engine API version accepted in a versioned path.
pub const MIN_API_VERSION: &str = "1.24";
