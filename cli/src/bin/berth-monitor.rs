//! `berth-monitor`: the per-container monitor process (see `berth_runtime::monitor`), a small
//! executable installed beside `berth`, which starts it as
//! `berth-monitor __monitor <root> <id> <berth>`. Never run by users.
//!
//! Its own executable rather than a `berth` subcommand so the process that stays resident for
//! every running container maps and relocates only the monitor's code (no argument parser,
//! compose loader or CLI): that is most of its resident memory (docs/launch.md "Monitor memory").

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Started through /proc/self/fd/N of a read-only copy of itself (sealed_exe).
    berth_runtime::sealed_exe::name_after_arg0();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [tag, root, id, berth] = args.as_slice() else {
        eprintln!("berth-monitor: usage: berth-monitor __monitor <root> <id> <berth>");
        return ExitCode::from(2);
    };
    let Some(id) = id.to_str().filter(|_| tag == "__monitor") else {
        eprintln!("berth-monitor: usage: berth-monitor __monitor <root> <id> <berth>");
        return ExitCode::from(2);
    };
    match berth_runtime::monitor::daemonize() {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => {
            let code = berth_runtime::monitor::run(&PathBuf::from(root), id, &PathBuf::from(berth));
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            ExitCode::FAILURE
        }
    }
}
