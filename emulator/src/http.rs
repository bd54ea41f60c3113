//! HTTP plumbing shared by every handler: body type, 123's JSON envelope, query and lenient
//! JSON-body access (Go-style case-insensitive keys, ids as numbers or numeric strings).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use rand::Rng;
use serde_json::{Map, Value};

/// Response body: a boxed stream of bytes; an `Err` item cuts the connection.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A response.
pub type Resp = Response<Body>;

/// Returned by a handler to make hyper drop the connection without answering (a cut upload).
#[derive(Debug, thiserror::Error)]
#[error("connection cut on purpose")]
pub struct Cut;

/// What a handler returns.
pub type HandlerResult = Result<Resp, Cut>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A JSON response with `Content-Type: application/json`.
pub fn json(status: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(full(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A plain-text response.
pub fn text(status: StatusCode, msg: &str) -> Resp {
    let mut r = Response::new(full(msg.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 404 for paths nothing serves.
pub fn not_found() -> Resp {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

/// A trace id shaped like 123's (`<uuid>_kong-db-<pod>`).
pub fn trace_id() -> String {
    let mut rng = rand::thread_rng();
    let a: u128 = rng.gen();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}_kong-db-5898fdd8c6-emu",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Open API success envelope: HTTP 200, `code 0`, `message "ok"`.
pub fn ok(data: Value) -> Resp {
    json(
        StatusCode::OK,
        &serde_json::json!({"code": 0, "message": "ok", "data": data, "x-traceID": trace_id()}),
    )
}

/// Open API error envelope: HTTP 200, non-zero `code`, `data: null`. The code rides along as
/// an `ErrorCode` extension, so the pipeline can give it a matching HTTP status under the
/// `error_status = mirror` switch.
pub fn err(code: i64, message: &str) -> Resp {
    error_code(
        json(
            StatusCode::OK,
            &serde_json::json!({"code": code, "message": message, "data": null, "x-traceID": trace_id()}),
        ),
        code,
    )
}

/// The envelope code of an error response (a response extension, never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub i64);

/// Marks `resp` as an API error of `code`.
pub fn error_code(mut resp: Resp, code: i64) -> Resp {
    resp.extensions_mut().insert(ErrorCode(code));
    resp
}

/// The HTTP status an error of envelope `code` carries under `error_status = mirror`: 429,
/// 401 and any other 4xx/5xx code as themselves, 5066 (not found) 404, 5113/5114 (traffic)
/// 403, 20103 (still verifying) 503, everything else (code 1 and the like) 400.
pub fn mirror_status(code: i64) -> StatusCode {
    let status = match code {
        5066 => 404,
        5113 | 5114 => 403,
        20103 => 503,
        c @ 400..=599 => c as u16,
        _ => 400,
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// A refusal as a code and a message, before it is put into an envelope. Logic shared by the
/// Open API and the web API (uploads, tree changes) returns this, and each API wraps it in its
/// own envelope (`open()` adds the trace id, `web()` does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Envelope `code`.
    pub code: i64,
    /// Envelope `message`.
    pub message: String,
}

impl Refused {
    /// A refusal with this code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Refused {
        Refused {
            code,
            message: message.into(),
        }
    }

    /// The Open API envelope.
    pub fn open(&self) -> Resp {
        err(self.code, &self.message)
    }

    /// The web API envelope.
    pub fn web(&self) -> Resp {
        crate::web::web_err(self.code, &self.message)
    }
}

/// Decoded query pairs in order.
pub fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// First value of an exactly-named query parameter.
pub fn query<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A query parameter as an integer; missing or empty gives `Ok(None)`, junk gives `Err`.
pub fn query_i64(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, ()> {
    match query(pairs, name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ()),
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than allowed.
    #[error("request body too large")]
    TooLarge,
    /// The connection failed while reading.
    #[error("reading the request body failed")]
    Io,
}

/// Read a whole request body of at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Io)
            }
        }
    }
}

/// A JSON object body read the way Go's `encoding/json` reads it into a struct: keys matched
/// exactly first, then case-insensitively; integers accepted as numbers or numeric strings.
#[derive(Debug, Clone, Default)]
pub struct Args(Map<String, Value>);

impl Args {
    /// An object value (e.g. an item of a JSON array); anything else is `None`.
    pub fn from_value(v: &Value) -> Option<Args> {
        v.as_object().cloned().map(Args)
    }

    /// Parse a body; anything but a JSON object is `None`.
    pub fn parse(body: &[u8]) -> Option<Args> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Some(Args(m)),
            _ => None,
        }
    }

    /// The value under `key` (exact match, else case-insensitive).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| {
                    k.eq_ignore_ascii_case(key) || k.to_lowercase() == key.to_lowercase()
                })
                .map(|(_, v)| v)
        })
    }

    /// A string value (numbers are not strings, as in Go).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// An integer given as a number or a numeric string; `Err` if present but not an integer.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ()> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => as_int(v).map(Some).ok_or(()),
        }
    }

    /// A boolean (also `"true"`/`"false"`, `0`/`1`).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64().map(|n| n != 0),
            _ => None,
        }
    }

    /// An array of integer ids; `Err` if present but malformed.
    pub fn ids(&self, key: &str) -> Result<Option<Vec<i64>>, ()> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(as_int)
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or(()),
            Some(_) => Err(()),
        }
    }
}

/// An integer from a JSON number or a numeric string.
pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Format a percent-encoded URL path from segments (`/a/b c` → `/a/b%20c`).
pub fn encode_path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
    /// Characters escaped in a path segment (as Go's `url.PathEscape` roughly does).
    const SEGMENT: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'|')
        .add(b'\\')
        .add(b'^')
        .add(b'[')
        .add(b']')
        .add(b'/')
        .add(b'+')
        .add(b'&')
        .add(b'=')
        .add(b';');
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.extend(utf8_percent_encode(s, SEGMENT));
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Percent-encode a query value (`application/x-www-form-urlencoded` rules).
pub fn encode_query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_go_lenient() {
        let a = Args::parse(
            br#"{"parentFileId":"12","FILENAME":"x","size":5,"containDir":true,"fileIDs":[1,"2"]}"#,
        )
        .unwrap();
        assert_eq!(a.int("parentFileID"), Ok(Some(12)));
        assert_eq!(a.str("filename"), Some("x"));
        assert_eq!(a.int("size"), Ok(Some(5)));
        assert_eq!(a.bool("containDir"), Some(true));
        assert_eq!(a.ids("fileIds"), Ok(Some(vec![1, 2])));
        assert_eq!(a.int("missing"), Ok(None));
        assert_eq!(a.int("filename"), Err(()));
    }

    #[test]
    fn mirrored_statuses() {
        assert_eq!(mirror_status(429), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(mirror_status(401), StatusCode::UNAUTHORIZED);
        assert_eq!(mirror_status(5066), StatusCode::NOT_FOUND);
        assert_eq!(mirror_status(1), StatusCode::BAD_REQUEST);
        assert_eq!(mirror_status(502), StatusCode::BAD_GATEWAY);
        let r = err(5066, "文件不存在");
        assert_eq!(r.extensions().get::<ErrorCode>(), Some(&ErrorCode(5066)));
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn path_encoding() {
        assert_eq!(
            encode_path(["1", "视频", "a b.mp4"]),
            "/1/%E8%A7%86%E9%A2%91/a%20b.mp4"
        );
        assert_eq!(encode_path(["a%b", "q?"]), "/a%25b/q%3F");
    }
}
