//! docker's JSON message streams (pull, push, build): one JSON object a line. The 200 header
//! is held back until the first line, as dockerd's write-flusher does, so an error that comes
//! before any progress (an unknown tag, a Dockerfile that does not parse) is answered with its
//! HTTP status and `{"message": …}`; one that comes later goes in the stream as
//! `{"errorDetail": {…}, "error": …}`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::HeaderValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::http::{ApiError, R};

/// Bytes of lines a client may leave unread before droppable lines (build output) are dropped.
const MAX_PENDING: usize = 16 << 20;

/// Why a streamed operation failed: its HTTP error, and the code docker puts in `errorDetail`
/// (a RUN step's exit code).
#[derive(Debug)]
pub struct Failure {
    /// The error (its status is used when nothing was streamed yet).
    pub error: ApiError,
    /// `errorDetail.code`.
    pub code: Option<i64>,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Failure { error, code: None }
    }
}

/// The sending side of a stream.
pub struct Lines {
    tx: mpsc::UnboundedSender<Bytes>,
    sent: AtomicBool,
    pending: Arc<AtomicUsize>,
    dropped: AtomicUsize,
}

impl Lines {
    /// Sends one JSON object as a line; false once the client is gone.
    pub fn send(&self, v: &Value) -> bool {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        self.sent.store(true, Ordering::SeqCst);
        self.pending.fetch_add(b.len(), Ordering::SeqCst);
        self.tx.send(Bytes::from(b)).is_ok()
    }

    /// Sends a line that may be dropped when the client has left too much unread (a RUN
    /// step's output): the service's memory is not the client's buffer.
    pub fn send_droppable(&self, v: &Value) -> bool {
        if self.pending.load(Ordering::SeqCst) > MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return !self.tx.is_closed();
        }
        let n = self.dropped.swap(0, Ordering::SeqCst);
        if n > 0 {
            self.send(&json!({"stream": format!("[{n} lines of output dropped: the client was not reading]\n")}));
        }
        self.send(v)
    }

    /// A bare newline (JSON readers skip whitespace between values): writing something is
    /// the only way to learn that a client left while nothing else is sent (a long RUN step).
    pub fn keepalive(&self) -> bool {
        self.sent.store(true, Ordering::SeqCst);
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.tx.send(Bytes::from_static(b"\n")).is_ok()
    }

    /// `{"status": …}`.
    pub fn status(&self, s: &str) -> bool {
        self.send(&json!({ "status": s }))
    }

    /// `{"stream": …}`.
    pub fn stream(&self, s: &str) -> bool {
        self.send(&json!({ "stream": s }))
    }

    /// Whether any line went out (the 200 header is then sent).
    pub fn sent_any(&self) -> bool {
        self.sent.load(Ordering::SeqCst)
    }

    /// Resolves when the client goes away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// docker's in-stream error.
    fn error(&self, message: &str, code: Option<i64>) {
        let detail = match code {
            Some(c) => json!({"code": c, "message": message}),
            None => json!({ "message": message }),
        };
        self.send(&json!({"errorDetail": detail, "error": message}));
    }
}

/// A response body fed by the stream's channel.
struct LinesBody {
    first: Option<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    pending: Arc<AtomicUsize>,
}

impl hyper::body::Body for LinesBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let got = match self.first.take() {
            Some(b) => Poll::Ready(Some(b)),
            None => self.rx.poll_recv(cx),
        };
        got.map(|o| {
            o.map(|b| {
                self.pending.fetch_sub(b.len(), Ordering::SeqCst);
                Ok(hyper::body::Frame::data(b))
            })
        })
    }
}

/// Runs `work` on its own task and answers with its stream: the header once it sent its first
/// line, or its error (with its status) when it failed before that. The work goes on if the
/// client leaves; it can look at [`Lines::closed`].
pub async fn respond<F, Fut>(work: F) -> R
where
    F: FnOnce(Arc<Lines>) -> Fut,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(Lines {
        tx,
        sent: AtomicBool::new(false),
        pending: pending.clone(),
        dropped: AtomicUsize::new(0),
    });
    let fut = work(lines.clone());
    let task = tokio::spawn(async move {
        match fut.await {
            Err(f) if lines.sent_any() => {
                lines.error(&f.error.message, f.code);
                Ok(())
            }
            other => other,
        }
    });
    let first = match rx.recv().await {
        Some(b) => b,
        None => {
            // Every sender is gone without a line: the work ended before its first line.
            return match task.await {
                Ok(Ok(())) => Ok(crate::http::json(hyper::StatusCode::OK, &json!({}))),
                Ok(Err(f)) => Err(f.error),
                Err(e) => Err(ApiError::internal(format!("the operation failed: {e}"))),
            };
        }
    };
    let body = LinesBody { first: Some(first), rx, pending };
    let mut r = hyper::Response::new(body.boxed());
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(r: R) -> (u16, String) {
        let r = match r {
            Ok(r) => r,
            Err(e) => e.response(),
        };
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn an_error_before_the_first_line_keeps_its_status() {
        let r = respond(|_l| async { Err(ApiError::not_found("manifest unknown").into()) }).await;
        let (status, body) = collect(r).await;
        assert_eq!(status, 404);
        assert_eq!(body.trim(), r#"{"message":"manifest unknown"}"#);
    }

    #[tokio::test]
    async fn an_error_after_a_line_goes_in_the_stream_with_its_code() {
        let r = respond(|l| async move {
            l.status("Pulling");
            Err(Failure { error: ApiError::internal("boom"), code: Some(3) })
        })
        .await;
        let (status, body) = collect(r).await;
        assert_eq!(status, 200);
        let lines: Vec<Value> =
            body.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        assert_eq!(lines[0], json!({"status": "Pulling"}));
        assert_eq!(
            lines[1],
            json!({"errorDetail": {"code": 3, "message": "boom"}, "error": "boom"})
        );
    }
}
