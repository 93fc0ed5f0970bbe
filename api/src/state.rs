//! What the handlers share: the Engine, the open connections, attaches and waits registered on
//! containers not started yet, and the execs made through the service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_runtime::Engine;
use berth_runtime::container::ExecConfig;
use berth_runtime::logs::LogEntry;
use tokio::sync::{mpsc, oneshot};

use crate::activity::Activity;
use crate::stream::Fd;

/// What the handlers share.
pub struct State {
    /// The Engine on the served state root.
    pub engine: Engine,
    /// Open connections, for the idle timeout.
    pub activity: Arc<Activity>,
    /// Attach streams and waits registered on containers not started yet, by full id: the
    /// start that comes through this service feeds them.
    pub pending: Mutex<HashMap<String, Pending>>,
    /// Execs created through this service (docker keeps them in the daemon's memory too).
    pub execs: Mutex<HashMap<String, ExecEntry>>,
}

impl State {
    /// Shared state over `engine`.
    pub fn new(engine: Engine, activity: Arc<Activity>) -> Self {
        State { engine, activity, pending: Mutex::default(), execs: Mutex::default() }
    }
}

/// Attach streams and waits registered on a container that has not started yet.
#[derive(Default)]
pub struct Pending {
    pub(crate) attach: Vec<mpsc::Sender<LogEntry>>,
    pub(crate) wait: Vec<oneshot::Sender<i64>>,
}

/// An exec created through the service.
pub struct ExecEntry {
    pub(crate) container: String,
    pub(crate) cfg: ExecConfig,
    pub(crate) attach_stdin: bool,
    pub(crate) running: bool,
    pub(crate) exit_code: Option<i64>,
    pub(crate) pid: i32,
    /// The terminal's master side while a TTY exec runs (for resize).
    pub(crate) tty: Option<Arc<Fd>>,
    /// When it ended: finished execs are forgotten after a while (`EXEC_KEEP`), as dockerd does.
    pub(crate) ended: Option<std::time::Instant>,
}
