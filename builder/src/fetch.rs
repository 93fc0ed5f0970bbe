//! `ADD http://...`: a small HTTP/1.1 GET (plain HTTP only: no TLS library is in the tree yet),
//! following up to 5 redirects, with `Content-Length` or chunked bodies, and a time limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one connection may take to connect, and to send each piece.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The largest body ADD downloads.
const MAX_BODY: u64 = 4 << 30;

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// The body.
    pub body: Vec<u8>,
    /// The file name the URL's path ends with (None: it ends with `/`).
    pub name: Option<String>,
    /// `Last-Modified` as seconds since the epoch (ADD gives the file that mtime).
    pub mtime: Option<i64>,
}

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let rest = match url.split_once("://") {
        Some(("http", r)) => r,
        Some(("https", _)) => {
            return Err(format!("{url}: https is not supported yet (berth has no TLS client yet)"));
        }
        _ => return Err(format!("{url}: not an http URL")),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => (hostport, 80),
        },
        _ => (hostport, 80),
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let path = path.split('#').next().unwrap_or("/").to_string();
    Ok(Url { host: host.trim_matches(['[', ']']).to_string(), port, path })
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| format!("reading the response: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Seconds since the epoch of an HTTP date (`Tue, 15 Nov 1994 08:12:31 GMT`).
fn http_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s).ok().map(|t| t.timestamp())
}

/// GETs `url` (following redirects).
pub fn get(url: &str) -> Result<Download, String> {
    let mut url = url.to_string();
    for _ in 0..6 {
        let u = parse_url(&url)?;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve {}: {e}", u.host))?
            .next()
            .ok_or_else(|| format!("{url}: {} has no address", u.host))?;
        let mut s =
            TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
        // One write: a server may answer (and close) after the first segment it reads.
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth-builder\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            u.path, u.host
        );
        s.write_all(req.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
        let mut r = BufReader::new(s);
        let status = read_line(&mut r)?;
        let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let l = read_line(&mut r)?;
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |k: &str| headers.iter().find(|(hk, _)| hk == k).map(|(_, v)| v.clone());
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            let loc =
                header("location").ok_or_else(|| format!("{url}: redirect without a Location"))?;
            url = if loc.starts_with("http://") || loc.starts_with("https://") {
                loc
            } else if loc.starts_with('/') {
                format!("http://{}:{}{loc}", u.host, u.port)
            } else {
                let base = u.path.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
                format!("http://{}:{}{base}/{loc}", u.host, u.port)
            };
            continue;
        }
        if code != 200 {
            return Err(format!("{url}: the server answered {status:?}"));
        }
        let mut body = Vec::new();
        let chunked =
            header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = read_line(&mut r)?;
                let size =
                    u64::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| format!("{url}: bad chunk size {size_line:?}"))?;
                if size == 0 {
                    break;
                }
                if body.len() as u64 + size > MAX_BODY {
                    return Err(format!("{url}: larger than {MAX_BODY} bytes"));
                }
                let mut chunk = vec![0u8; size as usize];
                r.read_exact(&mut chunk).map_err(|e| format!("{url}: {e}"))?;
                body.extend_from_slice(&chunk);
                read_line(&mut r)?;
            }
        } else {
            let limit = match header("content-length").and_then(|l| l.parse::<u64>().ok()) {
                Some(n) if n > MAX_BODY => {
                    return Err(format!("{url}: larger than {MAX_BODY} bytes"));
                }
                Some(n) => n,
                None => MAX_BODY + 1,
            };
            r.take(limit).read_to_end(&mut body).map_err(|e| format!("{url}: {e}"))?;
            if body.len() as u64 > MAX_BODY {
                return Err(format!("{url}: larger than {MAX_BODY} bytes"));
            }
        }
        let path = u.path.split('?').next().unwrap_or("");
        let name = path.rsplit('/').next().filter(|n| !n.is_empty()).map(str::to_string);
        let mtime = header("last-modified").as_deref().and_then(http_date);
        return Ok(Download { body, name, mtime });
    }
    Err(format!("{url}: too many redirects"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(responses: Vec<String>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for resp in responses {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn gets_plain_chunked_and_redirected() {
        let port = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: /b/file.txt\r\nContent-Length: 0\r\n\r\n".into(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLast-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".into(),
        ]);
        let d = get(&format!("http://127.0.0.1:{port}/a")).unwrap();
        assert_eq!(d.body, b"abcde");
        assert_eq!(d.name.as_deref(), Some("file.txt"));
        assert_eq!(d.mtime, Some(784887151));
        let port = serve(vec!["HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()]);
        assert!(get(&format!("http://127.0.0.1:{port}/x")).unwrap_err().contains("404"));
        assert!(get("https://example.invalid/x").unwrap_err().contains("https is not supported"));
    }
}
