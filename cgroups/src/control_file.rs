//! Small helpers for cgroup control files: one write per value, no truncation surprises.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Writes `value` to a control file in a single write(2), as the kernel expects.
pub fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// Reads a control file and trims surrounding whitespace.
pub fn read_trimmed(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}
