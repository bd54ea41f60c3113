//! The response body every layer writes and the plain-text answers built from a status, in
//! one small module below `server/`, `dav/` and `download/`, so none of them reaches into
//! another for the basics of an HTTP answer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

/// The body type of every response this server writes.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty_body() -> ResponseBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of exactly these bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A redirect target as the value of a `Location` header: spaces and every non-ASCII byte
/// written as `%XX` (as UTF-8, what a browser would send for them anyway); `None` when it
/// holds control characters, which no header may carry.
pub fn location_value(target: &str) -> Option<HeaderValue> {
    if target.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
    if target.bytes().all(|b| b.is_ascii_graphic()) {
        return HeaderValue::from_str(target).ok();
    }
    let mut out = String::with_capacity(target.len() + 16);
    for c in target.chars() {
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// `status` with a plain-text body, and `Retry-After` in whole seconds (rounded up) when given.
pub fn status_text(
    status: StatusCode,
    text: &str,
    retry_after: Option<Duration>,
) -> Response<ResponseBody> {
    let mut body = String::with_capacity(text.len() + 1);
    body.push_str(text);
    body.push('\n');
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
