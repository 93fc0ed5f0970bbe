//! The `berth` command line: parses arguments and dispatches to one module per command group.

mod cmd;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first thing in main, while the process has one thread.
    unsafe { berth_runtime::sealed_exe::take_marker() };
    berth_runtime::sealed_exe::name_after_arg0();
    cmd::main()
}
