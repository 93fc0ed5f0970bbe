//! End-to-end tests: run the real `berth` binary against real containers (as root).
//! Each test uses its own state root and unique names, and cleans up even when it fails.

mod compose_cmds;
mod compose_config;
mod compose_more;
mod compose_support;
mod compose_up;
mod config;
mod container;
mod image;
mod net;
mod net_live;
mod run;
mod support;
