//! Helpers for driving the `berth` binary in end-to-end tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Path of the `berth` binary under test.
pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// Runs `berth --root ROOT ARGS...` and returns its output.
pub fn berth(root: &Path, args: &[&str]) -> Output {
    Command::new(berth_bin()).arg("--root").arg(root).args(args).output().expect("spawn berth")
}
