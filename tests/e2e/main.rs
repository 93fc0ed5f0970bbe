//! End-to-end tests: run the real `berth` binary against real containers (as root).
//! Each test uses its own state root and unique names, and cleans up even when it fails.

mod config;
mod container;
mod image;
mod net;
mod run;
mod support;
