//! The loader's error type: one sentence naming file, line, column and key path.

use std::fmt;

use crate::tree::Mark;

/// What kind of failure, which decides the CLI's exit code (as docker compose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No compose file was found (exit 14).
    NotFound,
    /// A file could not be read, parsed, interpolated or validated (exit 15).
    Invalid,
    /// A command-line value (project name, profile, `-f`) is wrong (exit 16).
    Usage,
}

/// A loading error with the position and key path it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The kind (decides the exit code).
    pub kind: ErrorKind,
    /// Where in which file, when known.
    pub mark: Option<Mark>,
    /// Dotted key path, e.g. `services.web.ports[1]`, when known.
    pub path: Option<String>,
    /// What is wrong, as a sentence fragment (no trailing period).
    pub message: String,
}

impl LoadError {
    /// An `Invalid` error at `mark` for key `path`.
    pub fn invalid(
        mark: Option<Mark>,
        path: impl Into<Option<String>>,
        message: impl Into<String>,
    ) -> Self {
        LoadError { kind: ErrorKind::Invalid, mark, path: path.into(), message: message.into() }
    }

    /// The exit code docker compose uses for this kind of error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::NotFound => 14,
            ErrorKind::Invalid => 15,
            ErrorKind::Usage => 16,
        }
    }
}

impl fmt::Display for LoadError {
    /// `compose.yaml:12:7: services.web.ports[1]: "80:80:80:80" is not a valid port mapping`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = &self.mark {
            write!(f, "{}:{}:{}: ", m.file, m.line, m.column)?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}
