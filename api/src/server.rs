//! Listening: a Unix socket (0660, group `berth` when it exists) and optionally TCP on
//! loopback, or the sockets systemd's socket activation passes; one task per connection; an idle timeout that ends the service once no
//! connection has been open for that long (containers keep running: they have monitors).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::Engine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

use crate::activity::Activity;
use crate::state::State;

/// Where the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path/to.sock`.
    Unix(PathBuf),
    /// `tcp://127.0.0.1:PORT` (loopback addresses only).
    Tcp(SocketAddr),
}

impl std::str::FromStr for Host {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Self, ServeError> {
        let bad = |why: &str| ServeError::Host { host: s.to_string(), reason: why.to_string() };
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                return Err(bad(
                    "a unix socket path must be absolute (unix:///run/berth/berth.sock)",
                ));
            }
            return Ok(Host::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let a = a.trim_end_matches('/');
            let a = a.replacen("localhost:", "127.0.0.1:", 1);
            let addr: SocketAddr =
                a.parse().map_err(|_| bad("expected tcp://127.0.0.1:PORT or tcp://[::1]:PORT"))?;
            if !addr.ip().is_loopback() {
                return Err(bad(
                    "only loopback addresses are served over TCP (the API has no authentication)",
                ));
            }
            return Ok(Host::Tcp(addr));
        }
        Err(bad("expected unix:///PATH or tcp://127.0.0.1:PORT"))
    }
}

/// Where the service listens when neither `--host` nor socket activation says.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Listeners besides the sockets socket activation passes; with neither,
    /// [`DEFAULT_HOST`].
    pub hosts: Vec<Host>,
    /// Exit after this long without any open connection (None: run until SIGINT/SIGTERM).
    pub idle_timeout: Option<Duration>,
}

/// Errors that stop the service; each names the socket or address.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A `--host` value that can't be served.
    #[error("cannot serve on {host}: {reason}")]
    Host {
        /// The value given.
        host: String,
        /// Why not.
        reason: String,
    },
    /// Binding or preparing a listener failed.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// The socket path or address.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn listen_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.to_string();
    move |source| ServeError::Listen { what, source }
}

/// Removes the socket file when the service ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds a Unix socket at `path`: a stale socket (nothing answers) is replaced, a live one or
/// any other file is refused; mode 0660, group `berth` when that group exists.
fn bind_unix(path: &std::path::Path) -> Result<(UnixListener, SocketFile), ServeError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let what = path.display().to_string();
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(listen_err(dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError::Host {
                host: format!("unix://{what}"),
                reason: "the path exists and is not a socket".into(),
            });
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Host {
                host: format!("unix://{what}"),
                reason: "another service already answers on this socket".into(),
            });
        }
        std::fs::remove_file(path).map_err(listen_err(&what))?;
    }
    let l = UnixListener::bind(path).map_err(listen_err(&what))?;
    let guard = SocketFile(path.to_path_buf());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(listen_err(&what))?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        nix::unistd::chown(path, None, Some(g.gid))
            .map_err(|e| ServeError::Listen { what: what.clone(), source: e.into() })?;
    }
    Ok((l, guard))
}

/// Serves one accepted connection (HTTP/1.1 with upgrades for attach and exec).
fn spawn_conn<S>(state: Arc<State>, io: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let guard = state.activity.enter();
    tokio::spawn(async move {
        let st = state.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::routes::handle(st, req).await) }
        });
        if let Err(e) =
            http1::Builder::new().serve_connection(TokioIo::new(io), svc).with_upgrades().await
        {
            tracing::debug!("connection ended: {e}");
        }
        drop(guard);
    });
}

/// Serves the Engine API for `engine` on every host of `opts` until SIGINT/SIGTERM or the idle
/// timeout; the socket file is removed on the way out.
pub async fn serve(engine: Engine, opts: ServeOptions) -> Result<(), ServeError> {
    let activity = Activity::new();
    let state = Arc::new(State::new(engine, activity.clone()));
    let mut sockets = Vec::new();
    let mut unix = Vec::new();
    let mut tcp = Vec::new();
    // Activated sockets belong to the service manager: their files are not removed here.
    for a in crate::activation::take()? {
        let what = format!("{a:?}");
        match a {
            crate::activation::Activated::Unix(l) => unix.push(
                l.set_nonblocking(true)
                    .and_then(|()| UnixListener::from_std(l))
                    .map_err(listen_err(&what))?,
            ),
            crate::activation::Activated::Tcp(l) => tcp.push(
                l.set_nonblocking(true)
                    .and_then(|()| TcpListener::from_std(l))
                    .map_err(listen_err(&what))?,
            ),
        }
    }
    let default = [DEFAULT_HOST.parse::<Host>()?];
    let hosts = match (&opts.hosts[..], unix.len() + tcp.len()) {
        ([], 0) => &default[..],
        (h, _) => h,
    };
    for h in hosts {
        match h {
            Host::Unix(p) => {
                let (l, g) = bind_unix(p)?;
                unix.push(l);
                sockets.push(g);
            }
            Host::Tcp(a) => tcp.push(TcpListener::bind(a).await.map_err(listen_err(a))?),
        }
    }
    for l in unix {
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((s, _)) => spawn_conn(st.clone(), s),
                    // Out of descriptors and the like: keep serving the connections we have.
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    for l in tcp {
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        spawn_conn(st.clone(), s)
                    }
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).map_err(listen_err("SIGINT"))?;
    let mut term = signal(SignalKind::terminate()).map_err(listen_err("SIGTERM"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                if let (Some(t), Some(idle)) = (opts.idle_timeout, activity.idle_for())
                    && idle >= t
                {
                    break;
                }
            }
        }
    }
    drop(sockets);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_and_tcp_stays_on_loopback() {
        assert_eq!(
            "unix:///run/b.sock".parse::<Host>().ok(),
            Some(Host::Unix("/run/b.sock".into()))
        );
        assert!(matches!("tcp://127.0.0.1:2375".parse::<Host>(), Ok(Host::Tcp(_))));
        assert!(matches!("tcp://localhost:2375".parse::<Host>(), Ok(Host::Tcp(_))));
        assert!(matches!("tcp://[::1]:2375".parse::<Host>(), Ok(Host::Tcp(_))));
        assert!("tcp://0.0.0.0:2375".parse::<Host>().is_err());
        assert!("tcp://10.1.2.3:2375".parse::<Host>().is_err());
        assert!("unix://relative.sock".parse::<Host>().is_err());
        assert!("ssh://host".parse::<Host>().is_err());
    }
}
