//! The builder's errors: each displays as one sentence naming the Dockerfile line, the stage,
//! the path or the image concerned.

use std::path::PathBuf;

use berth_image::ImageError;
use berth_runtime::container::ContainerError;

use crate::dockerfile::ParseError;
use crate::ignore::IgnoreError;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The `.dockerignore` does not parse.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// An instruction could not be carried out.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// The Dockerfile.
        file: String,
        /// Its line.
        line: usize,
        /// The instruction's text.
        instruction: String,
        /// What went wrong.
        message: String,
    },
    /// A RUN command exited with a non-zero code.
    #[error(
        "{file}:{line}: {instruction}: the command exited with code {code}{}",
        last_output(output)
    )]
    RunFailed {
        /// The Dockerfile.
        file: String,
        /// Its line.
        line: usize,
        /// The RUN instruction.
        instruction: String,
        /// Its exit code.
        code: i64,
        /// The command as it ran (the shell and its `-c` script, or the exec form's argv).
        command: Vec<String>,
        /// Its last output lines.
        output: Vec<String>,
    },
    /// A base or `--from` image is not in the local store.
    #[error("image {0} is not in the store; pull it first (or import/load it)")]
    NotInStore(String),
    /// `--target` names no stage.
    #[error("target stage \"{0}\" could not be found")]
    NoTarget(String),
    /// The context or Dockerfile can't be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Bad options (tags, build args).
    #[error("{0}")]
    Invalid(String),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The runtime failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

fn last_output(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; its last output:");
    for l in lines {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}
