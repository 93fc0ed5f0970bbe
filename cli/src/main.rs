//! The `berth` command line: parses arguments and dispatches to one module per command group.

mod cmd;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    cmd::main()
}
