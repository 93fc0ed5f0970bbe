//! End-to-end tests: run the real `berth` binary against real containers (as root).
//! Each test uses its own state root and unique names, and cleans up even when it fails.

mod container;
mod image;
mod run;
mod support;
