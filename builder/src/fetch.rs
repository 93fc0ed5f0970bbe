//! `ADD http(s)://...`: a GET with reqwest (rustls), following up to 5 redirects, with a body
//! cap and time limits. It trusts what berth's registry client trusts (the system's roots,
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`, and the `*.crt` of `$BERTH_CERTS_DIR/<host[:port]>/`, else
//! `/etc/berth/certs.d` and `/etc/docker/certs.d`); certificates are always checked. Proxies
//! come from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), except for loopback.

use std::time::Duration;

/// How long connecting may take, and how long the server may stay silent while sending.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest body ADD downloads.
const MAX_BODY: u64 = 4 << 30;
/// Redirects followed before giving up (as docker's).
const MAX_REDIRECTS: usize = 5;

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The body.
    pub body: Vec<u8>,
    /// The file name the (final) URL's path ends with (None: it ends with `/`).
    pub name: Option<String>,
    /// `Last-Modified` as seconds since the epoch (ADD gives the file that mtime).
    pub mtime: Option<i64>,
}

/// Seconds since the epoch of an HTTP date (`Tue, 15 Nov 1994 08:12:31 GMT`).
fn http_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s).ok().map(|t| t.timestamp())
}

/// An error with its causes (reqwest's own sentence hides why a TLS handshake failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

/// GETs `url` (following redirects). Errors are one sentence starting with the URL.
pub async fn get(url: &str) -> Result<Download, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url}: not an http or https URL"));
    }
    let host = parsed.host_str().ok_or_else(|| format!("{url}: no host"))?;
    // The certificates directory is named as docker's: host, or host:port when one is given.
    let domain = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let client = berth_image::registry::trusting_client(&domain)
        .map_err(|e| format!("{url}: {e}"))?
        .user_agent(concat!("berth-builder/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .connect_timeout(TIMEOUT)
        .read_timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("{url}: cannot set up HTTP: {}", chain(&e)))?;
    let mut resp = client.get(parsed).send().await.map_err(|e| {
        if e.is_redirect() {
            format!("{url}: more than {MAX_REDIRECTS} redirects")
        } else {
            format!("{url}: {}", chain(&e.without_url()))
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url}: the server answered {status}"));
    }
    let too_big = || format!("{url}: larger than {MAX_BODY} bytes");
    if resp.content_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_big());
    }
    let name = resp
        .url()
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(http_date);
    let mut body = Vec::new();
    let read_err = |e: reqwest::Error| format!("{url}: {}", chain(&e.without_url()));
    while let Some(chunk) = resp.chunk().await.map_err(read_err)? {
        if body.len() as u64 + chunk.len() as u64 > MAX_BODY {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Download { body, name, mtime })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server on loopback answering one connection per response, in order.
    fn serve(responses: Vec<String>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for resp in responses {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(resp.as_bytes());
            }
        });
        port
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    #[test]
    fn gets_plain_chunked_and_redirected() {
        let close = "Connection: close\r\n";
        let port = serve(vec![
            format!(
                "HTTP/1.1 302 Found\r\nLocation: /b/file.txt\r\nContent-Length: 0\r\n{close}\r\n"
            ),
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLast-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n{close}\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            ),
        ]);
        let d = rt().block_on(get(&format!("http://127.0.0.1:{port}/a"))).expect("get");
        assert_eq!(d.body, b"abcde");
        assert_eq!(d.name.as_deref(), Some("file.txt"));
        assert_eq!(d.mtime, Some(784887151));
        let port =
            serve(vec![format!("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n{close}\r\n")]);
        let url = format!("http://127.0.0.1:{port}/x");
        let err = rt().block_on(get(&url)).expect_err("404");
        assert!(err.starts_with(&url) && err.contains("404"), "{err}");
        let err = rt().block_on(get("ftp://127.0.0.1/x")).expect_err("ftp");
        assert!(err.contains("not an http or https URL"), "{err}");
    }

    #[test]
    fn redirects_are_limited() {
        let close = "Connection: close\r\n";
        let hop =
            format!("HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n{close}\r\n");
        let port = serve(vec![hop; 7]);
        let url = format!("http://127.0.0.1:{port}/a");
        let err = rt().block_on(get(&url)).expect_err("redirect loop");
        assert!(err.contains("more than 5 redirects"), "{err}");
    }
}
