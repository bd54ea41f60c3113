//! Serving file bytes the way a CDN does: `Range` (200/206/416), `ETag`, an optional rate cap,
//! byte counting, and the "cut after K bytes" fault.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use http::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG,
};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::content::{range_stream, Blob};
use crate::http::{empty, Resp};

/// What a `Range` header asks for, resolved against the body size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// No (usable) range: the whole body with 200.
    Full,
    /// Bytes `[start, end)` with 206.
    Partial(u64, u64),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Resolve a `Range` header. Only single `bytes=` ranges are honoured; a malformed header or a
/// multi-range request is ignored (200 with the whole body), as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeSpec {
    let Some(h) = header else {
        return RangeSpec::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix: last N bytes
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Full;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Partial(size.saturating_sub(n), size);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Full;
    };
    let end_incl = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return RangeSpec::Full,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    let end = end_incl.map_or(size, |e| e.saturating_add(1).min(size));
    RangeSpec::Partial(start, end)
}

/// How to serve one body.
pub struct ServeOpts {
    /// `ETag` value (without quotes), normally the MD5.
    pub etag: String,
    /// Suggested file name for `Content-Disposition`.
    pub filename: Option<String>,
    /// HEAD: headers only.
    pub head: bool,
    /// Bytes per second for this response.
    pub rate: Option<u64>,
    /// Cut the connection after this many body bytes.
    pub cut_after: Option<u64>,
    /// Called with every chunk length actually sent.
    pub count: Arc<dyn Fn(u64) + Send + Sync>,
}

/// Serve `blob` (of `size` bytes) for a request with the given `Range` header.
pub fn serve(blob: Blob, size: u64, range: Option<&str>, opts: ServeOpts) -> Resp {
    let etag = HeaderValue::from_str(&format!("\"{}\"", opts.etag))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let (status, start, end) = match parse_range(range, size) {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Partial(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        RangeSpec::Unsatisfiable => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let h = r.headers_mut();
            h.insert(CONTENT_RANGE, header(&format!("bytes */{size}")));
            h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(ETAG, etag);
            return r;
        }
    };
    let body = if opts.head {
        empty()
    } else {
        let inner = range_stream(blob, start, end);
        let shaped = shape(Box::pin(inner), opts.rate, opts.cut_after, opts.count);
        BodyExt::boxed_unsync(StreamBody::new(shaped.map(|r| r.map(Frame::data))))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_LENGTH, header(&(end - start).to_string()));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(ETAG, etag);
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            CONTENT_RANGE,
            header(&format!("bytes {start}-{}/{size}", end - 1)),
        );
    }
    if let Some(name) = &opts.filename {
        let enc = crate::http::encode_query_value(name).replace('+', "%20");
        h.insert(
            CONTENT_DISPOSITION,
            header(&format!("attachment; filename*=UTF-8''{enc}")),
        );
    }
    r
}

fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Pause before a deliberate cut (see `shape`).
const CUT_FLUSH_PAUSE: Duration = Duration::from_millis(50);

type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Apply the rate cap, the cut fault and byte counting to a body stream.
fn shape(
    inner: ByteStream,
    rate: Option<u64>,
    cut_after: Option<u64>,
    count: Arc<dyn Fn(u64) + Send + Sync>,
) -> ByteStream {
    struct St {
        inner: ByteStream,
        pending: Bytes,
        sent: u64,
        started: tokio::time::Instant,
        rate: Option<u64>,
        cut_after: Option<u64>,
        count: Arc<dyn Fn(u64) + Send + Sync>,
        done: bool,
    }
    let st = St {
        inner,
        pending: Bytes::new(),
        sent: 0,
        started: tokio::time::Instant::now(),
        rate: rate.filter(|r| *r > 0),
        cut_after,
        count,
        done: false,
    };
    Box::pin(stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        if st.cut_after.is_some_and(|c| st.sent >= c) {
            st.done = true;
            // Give hyper a chance to flush the headers and the bytes already yielded: it drops
            // its write buffer when the body fails, and the client must see exactly K bytes.
            tokio::time::sleep(CUT_FLUSH_PAUSE).await;
            return Some((Err(std::io::Error::other("cut by fault injection")), st));
        }
        if st.pending.is_empty() {
            match st.inner.next().await {
                None => return None,
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                Some(Ok(b)) => st.pending = b,
            }
        }
        // Piece size: whole chunks normally; ~1/20 s worth when rate-capped so the cap is smooth.
        let mut n = st.pending.len();
        if let Some(rate) = st.rate {
            n = n.min(usize::try_from((rate / 20).max(1024)).unwrap_or(n));
        }
        if let Some(c) = st.cut_after {
            n = n.min(usize::try_from(c - st.sent).unwrap_or(n));
        }
        let piece = st.pending.split_to(n);
        if let Some(rate) = st.rate {
            let due = Duration::from_secs_f64((st.sent + n as u64) as f64 / rate as f64);
            tokio::time::sleep_until(st.started + due).await;
        }
        st.sent += n as u64;
        (st.count)(n as u64);
        Some((Ok(piece), st))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Partial(0, 1));
        assert_eq!(parse_range(Some("bytes=9-9"), 10), Partial(9, 10));
        assert_eq!(parse_range(Some("bytes=9-"), 10), Partial(9, 10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial(7, 10));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial(0, 10));
        assert_eq!(parse_range(Some("bytes=2-100"), 10), Partial(2, 10));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
    }
}
