//! End-to-end tests: run the real `berth` binary against real containers (as root).
//! Each test uses its own state root and unique names, and cleans up even when it fails.

mod api;
mod api_images;
mod build;
mod compose_cmds;
mod compose_config;
mod compose_cp;
mod compose_events;
mod compose_faults;
mod compose_logs;
mod compose_more;
mod compose_net;
mod compose_progress;
mod compose_registry;
mod compose_run;
mod compose_support;
mod compose_up;
mod compose_upflags;
mod config;
mod container;
mod damaged;
mod image;
mod inspect_format;
mod limits;
mod net;
mod net_faults;
mod net_ipv6_ports;
mod net_live;
mod registry;
mod run;
mod samples;
mod seal;
mod stats;
mod support;
mod system;
mod watch;
