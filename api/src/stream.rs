//! Streams: docker's multiplexed framing (8-byte header: stream, 0, 0, 0, big-endian length),
//! hijacked connections (HTTP upgrade to a raw stream), and pipes or terminals read and written
//! asynchronously.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use hyper::Response;
use hyper::header::HeaderValue;
use tokio::io::unix::AsyncFd;

use crate::http::{Body, full};

/// docker's stream ids in a multiplexed stream.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;

/// One frame of a multiplexed stream (raw bytes when `tty`: docker does not frame terminals).
pub fn frame(stream: u8, data: &[u8], tty: bool) -> Vec<u8> {
    if tty {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The content type of an attach/exec/logs stream.
pub fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Whether the request asks to upgrade the connection (docker's hijack: `Upgrade: tcp`).
pub fn wants_upgrade<B>(req: &hyper::Request<B>) -> bool {
    req.headers().get("upgrade").is_some()
}

/// The 101 answer to a hijack; the connection is taken over with `hyper::upgrade::on`.
pub fn switching(tty: bool) -> Response<Body> {
    let mut r = Response::new(full(bytes::Bytes::new()));
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    h.insert("upgrade", HeaderValue::from_static("tcp"));
    h.insert("content-type", HeaderValue::from_static(stream_type(tty)));
    r
}

/// A response body fed by a channel: the producer sees the client go (`Sender::is_closed`,
/// `closed()`) once the connection drops the body.
pub struct ChanBody(pub tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for ChanBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// A streaming response of `content_type` and the sender that feeds its body.
pub fn channel_body(
    content_type: &'static str,
) -> (tokio::sync::mpsc::Sender<bytes::Bytes>, Response<Body>) {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut r = Response::new(ChanBody(rx).boxed());
    r.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    (tx, r)
}

/// A pipe end or terminal master read and written without blocking a worker.
pub struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    /// Wraps `fd`, making it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let fl = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?;
        fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
        // SAFETY: the AsyncFd owns `fd` (an OwnedFd), so the descriptor stays open and the same
        // for the AsyncFd's whole life; nothing else closes it.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Fd(afd))
    }

    /// The descriptor.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.get_ref().as_fd()
    }

    /// Reads some bytes; 0 at end of stream (a terminal whose last user left reads EIO: also 0).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|i| nix::unistd::read(i.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut g = self.0.writable().await?;
            match g.try_io(|i| nix::unistd::write(i.get_ref(), data).map_err(io::Error::from)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_big_endian_length() {
        assert_eq!(frame(STDERR, b"hi", false), vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(frame(STDOUT, b"hi", true), b"hi".to_vec());
    }
}
