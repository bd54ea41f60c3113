//! Serving bytes that are on this machine: uploads still in the spool (so a GET straight after
//! a background PUT returns the file) and client junk kept in memory.

use std::path::Path;

use bytes::Bytes;
use futures_util::stream;
use http::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::conditional::{preflight, Preflight, Validators};
use super::range::{parse_range, RangeRequest};
use super::respond::{self, content_type};
use crate::backend::Entry;
use crate::response;
use crate::response::ResponseBody;

const CHUNK: usize = 256 * 1024;

/// Where local bytes come from.
pub enum Source<'a> {
    File(&'a Path),
    Memory(Bytes),
}

/// Answers GET/HEAD for `entry` from local bytes, with the same validators, preconditions and
/// Range handling as the proxy ([`preflight`] first, then [`send`]).
pub async fn serve(
    method: &Method,
    headers: &http::HeaderMap,
    entry: &Entry,
    source: Source<'_>,
) -> Response<ResponseBody> {
    match preflight(method, headers, entry) {
        Preflight::Answered(res) => res,
        Preflight::Send { honour_range } => {
            let v = Validators::for_entry(entry);
            send(headers, entry, &v, honour_range, source).await
        }
    }
}

/// Sends the bytes of `entry` from `source` (after [`preflight`]): the client's `Range` when
/// `honour_range`, else the whole file.
pub async fn send(
    headers: &http::HeaderMap,
    entry: &Entry,
    v: &Validators,
    honour_range: bool,
    source: Source<'_>,
) -> Response<ResponseBody> {
    let size = entry.size;
    let range = if honour_range {
        parse_range(headers.get(http::header::RANGE), size)
    } else {
        RangeRequest::Full
    };
    let (status, start, len) = match range {
        RangeRequest::Unsatisfiable => return respond::range_not_satisfiable(size),
        RangeRequest::Full => (StatusCode::OK, 0, size),
        RangeRequest::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    let body = match source {
        Source::Memory(bytes) => {
            let s = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let e = usize::try_from(start + len)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            response::full_body(bytes.slice(s..e))
        }
        Source::File(path) => match file_body(path, start, len).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %entry.name, error = %e, "could not read a spooled file");
                return response::status_text(StatusCode::NOT_FOUND, "Not found", None);
            }
        },
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CONTENT_TYPE, content_type(&entry.name));
    if let Some(tag) = v
        .etag
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        h.insert(ETAG, tag);
    }
    if let Ok(lm) = HeaderValue::from_str(&httpdate::fmt_http_date(entry.modified)) {
        h.insert(LAST_MODIFIED, lm);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(cr) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
        {
            h.insert(CONTENT_RANGE, cr);
        }
    }
    res
}

/// Streams `len` bytes of `path` from `start`, one chunk at a time; a file shorter than
/// promised ends the body with an error (the connection is cut), never with padding.
async fn file_body(path: &Path, start: u64, len: u64) -> std::io::Result<ResponseBody> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(start)).await?;
    let s = stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::other("spooled file shorter than its size")),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok(http_body::Frame::data(Bytes::from(buf))),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(BodyExt::boxed_unsync(StreamBody::new(s)))
}
