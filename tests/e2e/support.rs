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

/// A one-file ustar archive whose member name is written verbatim (so `../x` or `/x` are
/// possible, as in crafted archives).
pub fn raw_tar_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}
