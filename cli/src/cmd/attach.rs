//! Attaching to a started container (`run`, `container start -a`, compose's `run`): its output
//! printed until it stops, our stdin fed to it, the terminal in raw mode, signals forwarded.

use anyhow::Context;
use berth_runtime::Engine;
use berth_runtime::container::{Attached, ContainerError};

use super::engine_access::engine_err;

/// Writes log entries to our stdout and stderr in their order, stdout flushed once at the end
/// (and before each stderr entry, so the two streams keep their interleaving).
fn print_entries(entries: &[berth_runtime::logs::LogEntry]) {
    use std::io::Write;
    let mut out = Vec::new();
    for e in entries {
        if e.stream == "stderr" {
            if !out.is_empty() {
                let mut so = std::io::stdout().lock();
                let _ = so.write_all(&out);
                let _ = so.flush();
                out.clear();
            }
            let _ = std::io::stderr().write_all(e.text.as_bytes());
        } else {
            out.extend_from_slice(e.text.as_bytes());
        }
    }
    if !out.is_empty() {
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(&out);
        let _ = so.flush();
    }
}

/// Puts the user's terminal (stdin) in raw mode until dropped.
pub(super) struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    /// Raw mode on stdin (None when stdin is not a terminal).
    pub(super) fn enter() -> Option<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// The stdin fifo of container `id` (full id), opened for writing.
pub(super) fn open_stdin_fifo(engine: &Engine, id: &str) -> Option<std::fs::File> {
    let p = engine.container_stdin_fifo(id);
    // Read+write never blocks on a fifo; we only ever write.
    std::fs::OpenOptions::new().read(true).write(true).open(p).ok()
}

/// Prints the output of a container started with `Engine::container_start_attached` until it
/// has stopped, forwarding SIGINT and SIGTERM to it; returns its exit code once it is removed
/// too when it was created with `--rm` (as docker's `run --rm` returns).
pub async fn attach_and_wait(engine: &Engine, id: &str, attached: Attached) -> anyhow::Result<i64> {
    let Attached { output: mut rx, auto_remove } = attached;
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    loop {
        tokio::select! {
            entry = rx.recv() => {
                let Some(e) = entry else { break };
                // What is already there goes out together: one write per batch rather than
                // per line keeps up with a container that prints fast.
                let mut batch = vec![e];
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                print_entries(&batch);
            }
            _ = sigint.recv() => { let _ = engine.container_kill(id, Some("SIGINT")).await; }
            _ = sigterm.recv() => { let _ = engine.container_kill(id, Some("SIGTERM")).await; }
        }
    }
    let code = engine.container_wait(id).await.map_err(engine_err)?;
    if auto_remove {
        match engine.container_remove(id, true, true).await {
            // Removed meanwhile (its monitor does it when no client follows to the end).
            Ok(()) | Err(ContainerError::NotFound(_)) => {}
            Err(e) => return Err(engine_err(e)),
        }
    }
    Ok(code)
}
