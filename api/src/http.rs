//! HTTP helpers: docker's response headers and `{"message": ...}` error bodies, query and
//! `filters` parsing, bounded body reading.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Response, StatusCode};

/// A response body.
pub type Body = BoxBody<Bytes, Infallible>;
/// A response.
pub type Resp = Response<Body>;

/// The largest JSON request body accepted (docker configs are a few KiB).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// An error answered as docker does: a status and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One sentence.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    /// 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// An error of another layer, its status guessed from its sentence (not found, in use).
    pub fn from_message(message: String) -> Self {
        let m = message.to_lowercase();
        let status =
            if m.contains("no such") || m.contains("not found") || m.contains("could not find") {
                StatusCode::NOT_FOUND
            } else if m.contains("in use") || m.contains("already exists") || m.contains("conflict")
            {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
        ApiError { status, message }
    }

    /// The response.
    pub fn response(&self) -> Resp {
        json(self.status, &serde_json::json!({ "message": self.message }))
    }
}

/// Handler result.
pub type R = Result<Resp, ApiError>;

/// A body of bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A JSON response.
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Resp {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

/// 200 with JSON.
pub fn ok<T: serde::Serialize + ?Sized>(v: &T) -> R {
    Ok(json(StatusCode::OK, v))
}

/// An empty response with `status` (204, 304, ...).
pub fn empty(status: StatusCode) -> R {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    Ok(r)
}

/// A request's query string, decoded.
#[derive(Debug, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x`.
    pub fn parse(q: Option<&str>) -> Self {
        Query(form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect())
    }
    /// The first value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    /// Every value of `k`.
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(a, _)| a == k).map(|(_, v)| v.clone()).collect()
    }
    /// docker's boolean query values (`1`, `true`, `True`).
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| matches!(v, "1" | "true" | "True" | "TRUE"))
    }
    /// An integer value; 400 naming the parameter when it is not one.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// The `filters` parameter: `{"key": {"value": true}}` or `{"key": ["value"]}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let mut out = HashMap::new();
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(out);
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad(format!("invalid filters: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(ApiError::bad("invalid filters: expected a JSON object"));
        };
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Object(m) => m.keys().cloned().collect(),
                serde_json::Value::Array(a) => {
                    a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(ApiError::bad(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// Reads a request body of at most `max` bytes (413 beyond).
pub async fn read_body(body: hyper::body::Incoming, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {max} bytes"),
                ));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Copies a request body into an unnamed temporary file (archives: `load`, `cp` into a
/// container) and rewinds it.
pub async fn body_to_file(body: hyper::body::Incoming) -> Result<std::fs::File, ApiError> {
    use std::io::{Seek, Write};
    let mut f =
        tempfile::tempfile().map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            f.write_all(&data).map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
        }
    }
    f.rewind().map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
    Ok(f)
}

/// Parses a JSON body; docker answers malformed JSON with 400. Null members are dropped first,
/// so that they mean "unset" (docker's Go structs read `null` as the zero value).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut v: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    strip_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| ApiError::bad(format!("invalid request: {e}")))
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_both_of_dockers_shapes() {
        let q = Query::parse(Some(
            "filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%2C%22name%22%3A%5B%22web%22%5D%7D&all=1",
        ));
        let f = q.filters().expect("filters");
        assert_eq!(f["label"], vec!["a=b".to_string()]);
        assert_eq!(f["name"], vec!["web".to_string()]);
        assert!(q.flag("all"));
        assert!(Query::parse(Some("filters=%5B1%5D")).filters().is_err());
    }

    #[test]
    fn nulls_mean_unset_and_bad_json_is_a_400() {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct T {
            env: Vec<String>,
        }
        let t: T = parse_json(br#"{"env": null, "unknown": 1}"#).expect("nulls dropped");
        assert!(t.env.is_empty());
        let e = parse_json::<T>(b"{").err().expect("malformed");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("invalid JSON"));
    }

    #[test]
    fn other_layers_errors_get_dockers_statuses() {
        assert_eq!(
            ApiError::from_message("network x not found".into()).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from_message("volume v is in use".into()).status,
            StatusCode::CONFLICT
        );
        assert_eq!(ApiError::from_message("bad subnet".into()).status, StatusCode::BAD_REQUEST);
    }
}
