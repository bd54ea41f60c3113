//! The local proxy: one upstream request per client request, the client's range passed through
//! exactly, bytes streamed as they arrive.
//!
//! Why this shape (smooth seeking in a 20 GB film): a player seeks by sending a new `Range`;
//! anything but an exact pass-through either fetches fixed chunks one after another (stutter)
//! or opens an open-ended upstream stream that is wasted when the player seeks again. So
//! [`proxy`] asks the CDN for exactly `bytes=start-end`, checks the answer's status and headers
//! *before* the client sees a single header ([`judge`]), and then forwards chunks one at a time.
//!
//! Two promises: the client gets exactly the bytes of the range it was promised, or the
//! connection is cut (`ExactBody`: a short or failing upstream body becomes an I/O error, an
//! overlong one is truncated); and a CDN error page is never served as file content.
//!
//! Before the client has seen anything, a CDN 5xx or 429 is retried with the same link (twice,
//! after 250 and 500 ms), and a refused link (401, 403, 404, 410, an error page) is replaced by
//! one fresh link; then the client gets 502.
//!
//! Timeouts: [`proxy`] bounds the wait for the upstream response head with the configured
//! first-byte timeout (`server.upstream_first_byte_timeout`, default 30 s: room for a cold
//! object at a far offset, while a CDN that accepts and then says nothing cannot hold the
//! client forever), shortened to what is left of the request's deadline
//! (`server.upstream_deadline`, `backend::deadline`), which also stops the retries. A stall in
//! the middle of the body is the `reqwest::Client`'s
//! business: build it with `connect_timeout` and `read_timeout`, never with a total `timeout`
//! (which would cut every download longer than it).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::conditional::{evaluate, Precondition, Validators};
use super::range::{parse_range, RangeRequest};
use super::respond;
use super::ResponseBody;
use crate::backend::{Entry, Link};

/// How many times an upstream 5xx or 429 (before any byte reached the client) is retried
/// before the client gets 502 (or, for a lasting 429, 503).
const MAX_BUSY_RETRIES: u32 = 2;
/// `Retry-After` for a CDN that kept answering 429 without saying how long to wait.
const CDN_BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);
/// `Retry-After` for a CDN that did not answer in time (504).
const TIMEOUT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest upstream `Retry-After` passed on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// While skipping a prefix that the CDN sent although we asked for a range, yield to the
/// runtime after this many discarded chunks so one download cannot hog a worker thread.
const SKIP_CHUNKS_PER_POLL: usize = 64;

/// Where [`proxy`] gets the download link of one file.
#[async_trait::async_trait]
pub trait LinkSource: Send + Sync {
    /// The link to fetch. `refresh` = the previous link was refused; fetch a fresh one
    /// (bypassing any cache).
    async fn link(&self, refresh: bool) -> Result<Link, crate::backend::Error>;
}

/// Why [`proxy`] could not start a response. Nothing has been sent to the client yet.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The [`LinkSource`] failed (not found, rate limited, auth, ...). The caller maps the
    /// backend error to a status exactly as it does for every other backend call.
    #[error("could not get a download link: {0}")]
    Link(crate::backend::Error),
    /// The CDN refused the link (a 4xx, or an error page instead of the file), also after one
    /// fresh link.
    #[error("upstream refused the download: {0}")]
    Refused(String),
    /// The CDN failed (5xx, connection error) or answered something that is not the promised
    /// bytes (wrong length, wrong range, compressed body).
    #[error("upstream failed: {0}")]
    Upstream(String),
    /// The CDN did not answer in time.
    #[error("upstream did not answer in time")]
    Timeout,
    /// The CDN kept answering 429 (rate limited) through the retries: try again later.
    #[error("upstream is rate limiting downloads")]
    Busy { retry_after: Duration },
}

impl ProxyError {
    /// The status to answer: 502 for `Refused` and `Upstream`, 504 for `Timeout`, 503 for
    /// `Busy` (with [`ProxyError::retry_after`]). For `Link` this is only a fallback (502);
    /// callers map the backend error themselves.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Link(_) | ProxyError::Refused(_) | ProxyError::Upstream(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `Retry-After` to send with [`ProxyError::status`], if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::Busy { retry_after } => Some(*retry_after),
            ProxyError::Timeout => Some(TIMEOUT_RETRY_AFTER),
            _ => None,
        }
    }
}

/// Answers GET on the file `entry` by proxying its bytes from the CDN.
///
/// Preconditions are evaluated here ([`evaluate`], RFC 9110 §13.2.2), so 304 and 412 come back
/// as `Ok` responses without contacting upstream, and `If-Range` decides whether `Range` is
/// honoured. A caller that already evaluated them gets the same answer again; calling this
/// without evaluating first is equally correct. HEAD is answered from `entry` alone
/// ([`respond::head`]); any other method is treated as GET (routing is the caller's business).
///
/// Forwards one of the client's headers, its `User-Agent` (spec web §7: players are what 123's
/// CDN expects to see; without one, the HTTP client's own, `server.user_agent`), unless the
/// link sets one. Otherwise upstream sees the link's own headers, `Accept-Encoding: identity`
/// and our `Range`.
/// An unsatisfiable range is a 416 without any link or upstream call; an empty file is a 200
/// with no body, also without one.
///
/// `Err` means nothing was sent yet: answer [`ProxyError::status`] (or map `Link` errors).
/// Errors are not logged here; the caller logs them once, where it maps them. A failure in the
/// middle of the body is logged by the body (with the entry's id and name) when it cuts the
/// connection.
pub async fn proxy(
    up: &crate::backend::Upstream,
    method: &Method,
    headers: &HeaderMap,
    entry: &Entry,
    links: &dyn LinkSource,
) -> Result<Response<ResponseBody>, ProxyError> {
    let v = Validators::for_entry(entry);
    let honour_range = match evaluate(method, headers, &v) {
        Precondition::Proceed { honour_range } => honour_range,
        Precondition::NotModified => return Ok(respond::not_modified(&v)),
        Precondition::Failed => return Ok(respond::precondition_failed()),
    };
    if method == Method::HEAD {
        return Ok(respond::head(entry, &v));
    }
    let mut ranges = headers.get_all(header::RANGE).iter();
    let want = match (ranges.next(), ranges.next()) {
        // Several Range fields are as unservable as several ranges: ignore them (a 200).
        (Some(range), None) if honour_range => parse_range(Some(range), entry.size),
        _ => RangeRequest::Full,
    };
    if want == RangeRequest::Unsatisfiable {
        return Ok(respond::range_not_satisfiable(entry.size));
    }
    if want.is_empty(entry.size) {
        // No byte to fetch, so no link to spend.
        return Ok(file_response(entry, &v, want, respond::empty_body()));
    }

    let user_agent = headers.get(header::USER_AGENT);
    let mut link = links.link(false).await.map_err(ProxyError::Link)?;
    let mut refreshed = false;
    let mut retried = 0u32;
    // Bounded: every turn returns or uses up the one refresh or one of the counted retries.
    loop {
        let upstream = send(up, &link, want, user_agent).await?;
        let status = upstream.status();
        // spec open-api §11: the CDN's Retry-After is a floor for the wait; one longer than a
        // retry may wait is passed on to the client instead.
        let server_wait = crate::backend::pacer::retry_after(upstream.headers());
        let delay = crate::backend::pacer::backoff(retried + 1, server_wait);
        if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
            && retried < MAX_BUSY_RETRIES
            && server_wait.is_none_or(|w| w <= crate::backend::pacer::MAX_RETRY_WAIT)
            && crate::backend::deadline::allows(delay)
        {
            // Nothing was sent to the client yet: a brief outage or rate limit of the CDN is
            // retried with the same link, after a short back-off.
            retried += 1;
            tracing::info!(
                file_id = entry.id,
                name = %entry.name,
                %status,
                attempt = retried,
                "upstream download failed; retrying"
            );
            drop(upstream);
            tokio::time::sleep(delay).await;
            continue;
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Still rate limited after the retries: the client should come back later.
            let retry_after = server_wait
                .unwrap_or(CDN_BUSY_RETRY_AFTER)
                .min(MAX_RETRY_AFTER);
            return Err(ProxyError::Busy { retry_after });
        }
        match judge(want, entry.size, upstream.status(), upstream.headers()) {
            Verdict::Accept { skip } => {
                if skip > 0 {
                    tracing::debug!(
                        file_id = entry.id,
                        name = %entry.name,
                        skip,
                        "upstream sent more than the asked range; skipping the prefix"
                    );
                }
                let body = ExactBody::new(
                    upstream.bytes_stream(),
                    skip,
                    want.len(entry.size),
                    entry,
                    up.metrics.clone(),
                );
                return Ok(file_response(entry, &v, want, body.boxed_unsync()));
            }
            Verdict::Refresh(reason) if !refreshed => {
                tracing::info!(
                    file_id = entry.id,
                    name = %entry.name,
                    %reason,
                    "download link refused; fetching a fresh one"
                );
                // Dropping the refused response before the next request frees its connection.
                drop(upstream);
                link = links.link(true).await.map_err(ProxyError::Link)?;
                refreshed = true;
            }
            Verdict::Refresh(reason) | Verdict::Refused(reason) => {
                return Err(ProxyError::Refused(reason))
            }
            Verdict::Bad(reason) => return Err(ProxyError::Upstream(reason)),
        }
    }
}

/// The one upstream request for `want`.
async fn send(
    up: &crate::backend::Upstream,
    link: &Link,
    want: RangeRequest,
    user_agent: Option<&HeaderValue>,
) -> Result<reqwest::Response, ProxyError> {
    let mut headers = link.headers.clone();
    // Whatever the link carries, the range and the encoding are ours to decide: a compressed
    // or differently ranged answer could not be checked against the file.
    headers.remove(header::RANGE);
    headers.remove(header::IF_RANGE);
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Some(user_agent) = user_agent.filter(|_| !headers.contains_key(header::USER_AGENT)) {
        headers.insert(header::USER_AGENT, user_agent.clone());
    }
    if let RangeRequest::Partial { start, end } = want {
        let value = HeaderValue::from_str(&format!("bytes={start}-{end}"))
            .map_err(|_| ProxyError::Upstream("unrepresentable range".to_owned()))?;
        headers.insert(header::RANGE, value);
    }
    let limit = crate::backend::deadline::attempt(up.timeouts.first_byte)
        .map_err(|_| ProxyError::Timeout)?;
    let request = up.http.get(link.url.as_str()).headers(headers).send();
    match tokio::time::timeout(limit, request).await {
        Err(_elapsed) => Err(ProxyError::Timeout),
        Ok(Err(e)) if e.is_timeout() => Err(ProxyError::Timeout),
        Ok(Err(e)) => Err(ProxyError::Upstream(describe(e))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// The 200/206 head for `want` (never `Unsatisfiable`) with `body`.
fn file_response(
    entry: &Entry,
    v: &Validators,
    want: RangeRequest,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    respond::file_headers(headers, &entry.name, v);
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(want.len(entry.size)),
    );
    if let RangeRequest::Partial { start, end } = want {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            respond::content_range_value(&format!("{start}-{end}/{}", entry.size)),
        );
    }
    response
}

/// A reqwest error as text, without its URL (a signed secret) and with its causes.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What to do with an upstream response head, decided before the client sees anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it: discard the first `skip` bytes of the upstream body, then stream exactly the
    /// promised length (truncating anything after it).
    Accept { skip: u64 },
    /// The link was refused (403, 410, an error page instead of the file): try one fresh link.
    Refresh(String),
    /// The link was refused in a way a fresh link will not fix (other 4xx).
    Refused(String),
    /// Not the bytes we asked for, or the CDN failed.
    Bad(String),
}

/// Judges an upstream answer to our request for `want` of a file of `size` bytes.
///
/// * 206 must carry `Content-Range: bytes a-b/size` with `a..=b` covering what we asked (exactly
///   what we asked, from a well-behaved CDN; a wider range is served by skipping and
///   truncating), and a `Content-Length` of `b-a+1` if any.
/// * 200 must carry `Content-Length: size`: for a range request the CDN ignored `Range`, and we
///   skip to `start`.
/// * 401, 403, 404 and 410 refresh the link (an expired or revoked signature; a deleted file
///   then surfaces as the link source's `NotFound`); so does a 200 whose type is JSON, HTML or
///   XML with the wrong length (123's "200 with a JSON error code" and S3-style error pages).
/// * Any other 4xx is refused, 5xx and anything else is bad, as is any `Content-Encoding`
///   other than `identity`.
pub fn judge(want: RangeRequest, size: u64, status: StatusCode, headers: &HeaderMap) -> Verdict {
    let asked = match want {
        RangeRequest::Full => None,
        RangeRequest::Partial { start, end } => Some((start, end)),
        RangeRequest::Unsatisfiable => {
            return Verdict::Bad("nothing to fetch for an unsatisfiable range".to_owned())
        }
    };
    match status {
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::GONE => return Verdict::Refresh(format!("upstream answered {status}")),
        s if s.is_client_error() => return Verdict::Refused(format!("upstream answered {s}")),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        s => return Verdict::Bad(format!("upstream answered {s}")),
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(encoding) = text(header::CONTENT_ENCODING) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Verdict::Bad(format!("upstream sent Content-Encoding {encoding}"));
        }
    } else if headers.contains_key(header::CONTENT_ENCODING) {
        return Verdict::Bad("upstream sent an unreadable Content-Encoding".to_owned());
    }
    let length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(parse_u64) {
            Some(n) => Some(n),
            None => return Verdict::Bad("upstream sent an invalid Content-Length".to_owned()),
        },
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or("");

    if status == StatusCode::OK {
        if length == Some(size) {
            return Verdict::Accept {
                skip: asked.map_or(0, |(start, _)| start),
            };
        }
        let got = length.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let reason = format!(
            "upstream answered 200 with Content-Type {content_type:?} and Content-Length {got}, \
             expected {size}"
        );
        return if looks_like_error_page(content_type) {
            Verdict::Refresh(reason)
        } else {
            Verdict::Bad(reason)
        };
    }

    // 206
    if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return Verdict::Bad("upstream answered a multipart 206 to a single range".to_owned());
    }
    let Some((a, b, total)) = text(header::CONTENT_RANGE).and_then(parse_content_range) else {
        return Verdict::Bad("upstream answered 206 without a valid Content-Range".to_owned());
    };
    if total != size {
        return Verdict::Bad(format!(
            "upstream file has {total} bytes, the listing says {size}"
        ));
    }
    if let Some(n) = length {
        if n != b - a + 1 {
            return Verdict::Bad(format!(
                "upstream Content-Length {n} does not match its Content-Range {a}-{b}"
            ));
        }
    }
    let (start, end) = asked.unwrap_or((0, size.saturating_sub(1)));
    if a <= start && end <= b {
        Verdict::Accept { skip: start - a }
    } else {
        Verdict::Bad(format!(
            "upstream sent bytes {a}-{b}, asked for {start}-{end}"
        ))
    }
}

/// `bytes a-b/total` with `a <= b < total`; `None` otherwise (including `*` totals, which
/// cannot be checked against the listing).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim_start().split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (parse_u64(a)?, parse_u64(b)?, parse_u64(total)?);
    (a <= b && b < total).then_some((a, b, total))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// JSON, HTML or XML: what CDNs and APIs answer errors with.
fn looks_like_error_page(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || essence.ends_with("+json")
        || essence == "text/html"
        || essence == "application/xhtml+xml"
        || essence == "application/xml"
        || essence == "text/xml"
}

/// A body that yields exactly `remaining` bytes of an upstream stream after discarding `skip`
/// bytes, or an I/O error (which makes hyper cut the connection) if the upstream fails or ends
/// early. One chunk at a time: memory stays bounded by the upstream's chunk size. Dropping it
/// drops the upstream stream, which cancels the upstream request.
struct ExactBody<S> {
    /// `None` once finished or failed.
    stream: Option<S>,
    skip: u64,
    remaining: u64,
    delivered: u64,
    file_id: u64,
    name: String,
    /// Counts this stream in the metrics while it lives.
    _active: crate::metrics::ActiveStream,
    metrics: crate::metrics::Metrics,
}

impl<S> ExactBody<S> {
    /// Wraps `stream` for the file `entry` (its id and name are used in the failure log line).
    fn new(
        stream: S,
        skip: u64,
        len: u64,
        entry: &Entry,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        ExactBody {
            stream: (len > 0).then_some(stream),
            skip,
            remaining: len,
            delivered: 0,
            file_id: entry.id,
            name: entry.name.clone(),
            _active: metrics.active_stream(),
            metrics,
        }
    }

    fn fail(&mut self, kind: io::ErrorKind, reason: String) -> io::Error {
        self.stream = None;
        tracing::warn!(
            file_id = self.file_id,
            name = %self.name,
            delivered = self.delivered,
            missing = self.remaining,
            %reason,
            "upstream body failed; cutting the client connection"
        );
        io::Error::new(kind, reason)
    }
}

impl<S> fmt::Debug for ExactBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactBody")
            .field("file_id", &self.file_id)
            .field("skip", &self.skip)
            .field("remaining", &self.remaining)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// Errors of the upstream stream, described without any URL.
trait UpstreamError {
    fn describe(self) -> String;
}

impl UpstreamError for reqwest::Error {
    fn describe(self) -> String {
        describe(self)
    }
}

impl UpstreamError for io::Error {
    fn describe(self) -> String {
        self.to_string()
    }
}

impl<S, E> Body for ExactBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: UpstreamError,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let mut discarded = 0usize;
        loop {
            if this.remaining == 0 {
                // Done: release the upstream connection now rather than when hyper drops us.
                this.stream = None;
                return Poll::Ready(None);
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            let mut chunk = match stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => chunk,
                Poll::Ready(Some(Err(e))) => {
                    let reason = format!("upstream body error: {}", e.describe());
                    return Poll::Ready(Some(Err(this.fail(io::ErrorKind::Other, reason))));
                }
                Poll::Ready(None) => {
                    let reason = "upstream body ended early".to_owned();
                    return Poll::Ready(Some(Err(this.fail(io::ErrorKind::UnexpectedEof, reason))));
                }
            };
            if this.skip > 0 {
                let n = usize::try_from(this.skip).map_or(chunk.len(), |s| s.min(chunk.len()));
                let _ = chunk.split_to(n);
                this.skip -= n as u64;
            }
            if chunk.is_empty() {
                discarded += 1;
                if discarded >= SKIP_CHUNKS_PER_POLL {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            if let Ok(limit) = usize::try_from(this.remaining) {
                chunk.truncate(limit);
            }
            let n = chunk.len() as u64;
            this.remaining -= n;
            this.delivered += n;
            this.metrics.proxied_bytes(n);
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};

    use futures_util::stream;
    use http::HeaderName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::backend::Error as BackendError;
    use std::time::Duration;

    const SIZE: u64 = 100;

    fn entry(size: u64) -> Entry {
        Entry {
            id: 42,
            name: "film.mkv".into(),
            is_dir: false,
            size,
            md5: Some("900150983cd24fb0d6963f7d28e17f72".into()),
            version: None,
            modified: UNIX_EPOCH + Duration::from_secs(1_704_164_645),
            created: SystemTime::UNIX_EPOCH,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn p(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial { start, end }
    }

    // ---- judge -------------------------------------------------------------------------------

    /// Expected verdict kinds in the judge table (reasons are free text).
    #[derive(Clone, Copy, Debug)]
    enum Want {
        Ok(u64),
        Refresh,
        Refused,
        Bad,
    }

    /// Parses `"name: value | name: value"` into headers.
    fn header_list(spec: &str) -> HeaderMap {
        let pairs: Vec<(&str, &str)> = spec
            .split('|')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.split_once(':').expect("name: value"))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        headers(&pairs)
    }

    #[test]
    fn judge_table() {
        use RangeRequest::Full;
        use Want::{Bad, Ok, Refresh, Refused};
        let r = p(10, 19);
        #[rustfmt::skip]
        let cases: &[(RangeRequest, u16, &str, Want)] = &[
            // The well-behaved 206.
            (r, 206, "content-range: bytes 10-19/100 | content-length: 10", Ok(0)),
            (r, 206, "content-range: bytes 10-19/100", Ok(0)),
            (r, 206, "content-range: BYTES  10-19/100", Ok(0)),
            // A wider 206 is served by skipping and truncating.
            (r, 206, "content-range: bytes 0-99/100 | content-length: 100", Ok(10)),
            (r, 206, "content-range: bytes 10-29/100", Ok(0)),
            (r, 206, "content-range: bytes 5-19/100", Ok(5)),
            // A 206 that does not cover the range, or of another file, is bad.
            (r, 206, "content-range: bytes 11-19/100", Bad),
            (r, 206, "content-range: bytes 10-18/100", Bad),
            (r, 206, "content-range: bytes 10-19/200", Bad),
            (r, 206, "content-range: bytes 10-19/99", Bad),
            (r, 206, "content-range: bytes 10-19/*", Bad),
            (r, 206, "content-range: bytes */100", Bad),
            (r, 206, "content-range: bytes 19-10/100", Bad),
            (r, 206, "content-range: bytes 10-100/100", Bad),
            (r, 206, "content-range: items 10-19/100", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-length: 11", Bad),
            (r, 206, "content-length: 10", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-type: multipart/byteranges", Bad),
            // 200 to a range request: the CDN ignored Range; skip to the start.
            (r, 200, "content-length: 100", Ok(10)),
            (r, 200, "content-length: 100 | content-type: application/json", Ok(10)),
            // 200 error pages refresh the link; other wrong lengths are bad.
            (r, 200, "content-length: 57 | content-type: application/json", Refresh),
            (r, 200, "content-length: 57 | content-type: text/html; charset=utf-8", Refresh),
            (r, 200, "content-length: 300 | content-type: application/problem+json", Refresh),
            (r, 200, "content-length: 300 | content-type: application/xml", Refresh),
            (r, 200, "content-type: application/json", Refresh),
            (r, 200, "content-length: 57 | content-type: application/octet-stream", Bad),
            (r, 200, "content-length: 10", Bad),
            (r, 200, "", Bad),
            // Full requests.
            (Full, 200, "content-length: 100", Ok(0)),
            (Full, 200, "content-length: 100 | content-encoding: identity", Ok(0)),
            (Full, 200, "content-length: 99", Bad),
            (Full, 200, "content-length: 101", Bad),
            (Full, 200, "content-length: abc", Bad),
            (Full, 200, "content-length: -100", Bad),
            (Full, 200, "content-length: 100 | content-encoding: gzip", Bad),
            (Full, 206, "content-range: bytes 0-99/100", Ok(0)),
            (Full, 206, "content-range: bytes 0-49/100", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-encoding: br", Bad),
            // Statuses.
            (r, 401, "", Refresh),
            (r, 403, "content-length: 100", Refresh),
            (r, 404, "", Refresh),
            (r, 410, "", Refresh),
            (r, 400, "", Refused),
            (r, 416, "content-range: bytes */100", Refused),
            (r, 429, "", Refused),
            (r, 500, "", Bad),
            (r, 502, "", Bad),
            (r, 503, "", Bad),
            (r, 204, "", Bad),
            (r, 302, "location: http://x/", Bad),
            (r, 304, "", Bad),
            (RangeRequest::Unsatisfiable, 200, "content-length: 100", Bad),
        ];
        for &(want, status, spec, expected) in cases {
            let status = StatusCode::from_u16(status).expect("status");
            let got = judge(want, SIZE, status, &header_list(spec));
            let same = match (&got, expected) {
                (Verdict::Accept { skip }, Ok(n)) => *skip == n,
                (Verdict::Refresh(_), Refresh)
                | (Verdict::Refused(_), Refused)
                | (Verdict::Bad(_), Bad) => true,
                _ => false,
            };
            assert!(
                same,
                "{want:?} {status} {spec:?}: got {got:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(
            parse_content_range("bytes 0-18446744073709551614/18446744073709551615"),
            Some((0, 18446744073709551614, 18446744073709551615))
        );
        for bad in [
            "bytes 0-0/0",
            "bytes 1-0/5",
            "bytes 0-5/5",
            "bytes 0-/5",
            "bytes -1/5",
            "bytes 0-1",
            "bytes=0-1/5",
            "bytes 0-1/18446744073709551616",
            "bytes +0-1/5",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(
            ProxyError::Refused(String::new()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ProxyError::Upstream(String::new()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(ProxyError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            ProxyError::Link(BackendError::NotFound).status(),
            StatusCode::BAD_GATEWAY
        );
    }

    // ---- ExactBody ---------------------------------------------------------------------------

    fn chunks(parts: &[&'static str]) -> Vec<Result<Bytes, io::Error>> {
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect()
    }

    async fn drain(
        parts: Vec<Result<Bytes, io::Error>>,
        skip: u64,
        len: u64,
    ) -> (Vec<Bytes>, Option<io::Error>) {
        let mut body = ExactBody::new(
            stream::iter(parts),
            skip,
            len,
            &entry(SIZE),
            crate::metrics::Metrics::new(),
        );
        assert_eq!(body.size_hint().exact(), Some(len));
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => frames.push(frame.into_data().expect("data frame")),
                Err(e) => {
                    assert!(body.frame().await.is_none(), "nothing after an error");
                    return (frames, Some(e));
                }
            }
        }
        assert!(body.is_end_stream());
        (frames, None)
    }

    fn joined(frames: &[Bytes]) -> Vec<u8> {
        frames.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[tokio::test]
    async fn exact_body_passes_chunks_through() {
        let (frames, err) = drain(chunks(&["abc", "def"]), 0, 6).await;
        assert!(err.is_none());
        assert_eq!(frames, vec![Bytes::from("abc"), Bytes::from("def")]);
    }

    #[tokio::test]
    async fn exact_body_skips_and_truncates() {
        let (frames, err) = drain(chunks(&["ab", "cd", "ef", "gh"]), 3, 3).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), b"def");

        // Stops without reading past the promised length: the error after it is never seen.
        let mut parts = chunks(&["abcdef"]);
        parts.push(Err(io::Error::other("never read")));
        let (frames, err) = drain(parts, 0, 3).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), b"abc");
    }

    #[tokio::test]
    async fn exact_body_ignores_empty_chunks() {
        let (frames, err) = drain(chunks(&["", "ab", "", "c"]), 0, 3).await;
        assert!(err.is_none());
        assert_eq!(frames, vec![Bytes::from("ab"), Bytes::from("c")]);
    }

    #[tokio::test]
    async fn exact_body_cuts_on_early_end() {
        let (frames, err) = drain(chunks(&["ab"]), 0, 5).await;
        assert_eq!(joined(&frames), b"ab");
        assert_eq!(err.expect("error").kind(), io::ErrorKind::UnexpectedEof);

        // Ending inside the skipped prefix is an early end too.
        let (frames, err) = drain(chunks(&["ab"]), 5, 1).await;
        assert!(frames.is_empty());
        assert_eq!(err.expect("error").kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn exact_body_cuts_on_upstream_error() {
        let mut parts = chunks(&["ab"]);
        parts.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")));
        parts.extend(chunks(&["cd"]));
        let (frames, err) = drain(parts, 0, 4).await;
        assert_eq!(joined(&frames), b"ab");
        assert!(err.expect("error").to_string().contains("reset"));
    }

    #[tokio::test]
    async fn exact_body_skips_many_chunks_cooperatively() {
        let data: Vec<Result<Bytes, io::Error>> = (0..1000u32)
            .map(|i| Ok(Bytes::from(vec![(i % 251) as u8])))
            .collect();
        let (frames, err) = drain(data, 998, 2).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), vec![(998 % 251) as u8, (999 % 251) as u8]);
    }

    #[tokio::test]
    async fn exact_body_of_nothing_is_empty() {
        let (frames, err) = drain(chunks(&["abc"]), 0, 0).await;
        assert!(err.is_none());
        assert!(frames.is_empty());
    }

    // ---- end to end over a local stub CDN ----------------------------------------------------

    /// A raw TCP server standing in for the CDN: each connection's request head is recorded and
    /// answered with `respond(index, head)`, then the connection is closed.
    struct Stub {
        base: String,
        heads: Arc<Mutex<Vec<String>>>,
    }

    impl Stub {
        async fn start<F>(respond: F) -> Stub
        where
            F: Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
        {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let heads = Arc::new(Mutex::new(Vec::new()));
            let respond = Arc::new(respond);
            let recorded = heads.clone();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let respond = respond.clone();
                    let recorded = recorded.clone();
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut byte = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut byte).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&byte[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                        let index = {
                            let mut heads = recorded.lock().expect("lock");
                            heads.push(head.clone());
                            heads.len() - 1
                        };
                        match respond(index, &head) {
                            Some(bytes) => {
                                let _ = socket.write_all(&bytes).await;
                                let _ = socket.shutdown().await;
                            }
                            // Never answer; hold the connection open.
                            None => tokio::time::sleep(Duration::from_secs(60)).await,
                        }
                    });
                }
            });
            Stub { base, heads }
        }

        fn heads(&self) -> Vec<String> {
            self.heads.lock().expect("lock").clone()
        }
    }

    fn data() -> Arc<Vec<u8>> {
        Arc::new((0..SIZE).map(|i| (i * 7 % 256) as u8).collect())
    }

    fn reply(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n").into_bytes();
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// The `Range: bytes=a-b` of a recorded head, if any.
    fn asked_range(head: &str) -> Option<(usize, usize)> {
        let line = head.lines().find_map(|l| l.strip_prefix("range: bytes="))?;
        let (a, b) = line.trim().split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// A well-behaved CDN for `data`.
    fn cdn(data: &[u8], head: &str) -> Vec<u8> {
        let total = data.len();
        match asked_range(head) {
            Some((a, b)) => reply(
                "206 Partial Content",
                &[
                    ("content-range", format!("bytes {a}-{b}/{total}")),
                    ("content-length", (b - a + 1).to_string()),
                    ("content-type", "application/octet-stream".into()),
                ],
                &data[a..=b],
            ),
            None => reply("200 OK", &[("content-length", total.to_string())], data),
        }
    }

    /// A link source counting its calls, handing out `<base>/file?sign=secret-<n>`.
    struct Links {
        base: String,
        calls: AtomicUsize,
        refreshes: AtomicUsize,
        error: Option<BackendError>,
    }

    impl Links {
        fn new(stub: &Stub) -> Links {
            Links {
                base: stub.base.clone(),
                calls: AtomicUsize::new(0),
                refreshes: AtomicUsize::new(0),
                error: None,
            }
        }
        fn calls(&self) -> (usize, usize) {
            (
                self.calls.load(Ordering::SeqCst),
                self.refreshes.load(Ordering::SeqCst),
            )
        }
    }

    #[async_trait::async_trait]
    impl LinkSource for Links {
        async fn link(&self, refresh: bool) -> Result<Link, BackendError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if refresh {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(e) = &self.error {
                return Err(e.clone());
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                header::REFERER,
                HeaderValue::from_static("https://www.123pan.com/"),
            );
            Ok(Link {
                url: format!("{}/file?sign=secret-{n}", self.base),
                headers,
                expires_at: None,
                portable: false,
            })
        }
    }

    fn client() -> crate::backend::Upstream {
        crate::backend::Upstream::new(
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        )
    }

    async fn get(
        links: &Links,
        size: u64,
        pairs: &[(&str, &str)],
    ) -> Result<Response<ResponseBody>, ProxyError> {
        proxy(
            &client(),
            &Method::GET,
            &headers(pairs),
            &entry(size),
            links,
        )
        .await
    }

    fn header_of<'a>(response: &'a Response<ResponseBody>, name: &str) -> Option<&'a str> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("text"))
    }

    async fn body_of(response: Response<ResponseBody>) -> Result<Vec<u8>, io::Error> {
        Ok(response.into_body().collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn passes_the_range_through_exactly() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
        let links = Links::new(&stub);
        let etag = Validators::for_entry(&entry(SIZE)).etag.expect("etag");
        let response = get(
            &links,
            SIZE,
            &[
                ("range", "bytes=10-19"),
                ("if-range", &etag),
                ("authorization", "Basic dXNlcjpwYXNz"),
                ("cookie", "session=1"),
                ("if-none-match", "\"other\""),
                ("user-agent", "VLC/3.0"),
            ],
        )
        .await
        .expect("proxied");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header_of(&response, "content-length"), Some("10"));
        assert_eq!(
            header_of(&response, "content-range"),
            Some("bytes 10-19/100")
        );
        assert_eq!(header_of(&response, "accept-ranges"), Some("bytes"));
        assert_eq!(header_of(&response, "etag"), Some(etag.as_str()));
        assert_eq!(
            header_of(&response, "content-type"),
            Some("video/x-matroska")
        );
        assert!(header_of(&response, "last-modified").is_some());
        assert_eq!(body_of(response).await.expect("body"), &data[10..20]);

        let heads = stub.heads();
        assert_eq!(heads.len(), 1);
        let head = &heads[0];
        assert!(
            head.starts_with("get /file?sign=secret-0 http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nrange: bytes=10-19\r\n"), "{head}");
        assert!(
            head.contains("\r\nreferer: https://www.123pan.com/\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\naccept-encoding: identity\r\n"), "{head}");
        // The player's User-Agent is what 123's CDN expects to see (spec web §7).
        assert!(head.contains("\r\nuser-agent: vlc/3.0\r\n"), "{head}");
        for leaked in ["authorization", "cookie", "if-"] {
            assert!(!head.contains(leaked), "{leaked} forwarded: {head}");
        }
        assert_eq!(links.calls(), (1, 0));
    }

    #[tokio::test]
    async fn range_forms_reach_upstream_normalised() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
        let links = Links::new(&stub);
        for (range, upstream, slice) in [
            ("bytes=-10", "bytes=90-99", 90..100),
            ("bytes=95-", "bytes=95-99", 95..100),
            ("bytes=50-1000", "bytes=50-99", 50..100),
            ("bytes=0-", "bytes=0-99", 0..100),
            ("bytes=99-99", "bytes=99-99", 99..100),
        ] {
            let response = get(&links, SIZE, &[("range", range)])
                .await
                .expect("proxied");
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            let want_cr = format!("bytes {}-{}/100", slice.start, slice.end - 1);
            assert_eq!(
                header_of(&response, "content-range"),
                Some(want_cr.as_str())
            );
            assert_eq!(
                body_of(response).await.expect("body"),
                &data[slice],
                "{range}"
            );
            let heads = stub.heads();
            let last = heads.last().expect("a request");
            assert!(
                last.contains(&format!("\r\nrange: {upstream}\r\n")),
                "{range}: {last}"
            );
        }
    }

    #[tokio::test]
    async fn full_file_without_range() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
        let links = Links::new(&stub);
        for pairs in [
            vec![],
            vec![("range", "bytes=0-1,5-6")],
            vec![("range", "lines=1-2")],
            vec![("range", "bytes=0-1"), ("range", "bytes=5-6")],
        ] {
            let response = get(&links, SIZE, &pairs).await.expect("proxied");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header_of(&response, "content-length"), Some("100"));
            assert_eq!(header_of(&response, "content-range"), None);
            assert_eq!(body_of(response).await.expect("body"), *data);
        }
        assert!(stub.heads().iter().all(|h| !h.contains("\r\nrange:")));
    }

    #[tokio::test]
    async fn a_cdn_ignoring_range_still_gives_the_exact_bytes() {
        let data = data();
        let d = data.clone();
        let stub =
            Stub::start(move |_, _| Some(reply("200 OK", &[("content-length", "100".into())], &d)))
                .await;
        let links = Links::new(&stub);
        let response = get(&links, SIZE, &[("range", "bytes=30-39")])
            .await
            .expect("proxied");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header_of(&response, "content-length"), Some("10"));
        assert_eq!(body_of(response).await.expect("body"), &data[30..40]);
    }

    #[tokio::test]
    async fn a_refused_link_is_refreshed_once() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |index, head| {
            Some(if index == 0 {
                reply(
                    "403 Forbidden",
                    &[
                        ("content-type", "text/html".into()),
                        ("content-length", "9".into()),
                    ],
                    b"forbidden",
                )
            } else {
                cdn(&d, head)
            })
        })
        .await;
        let links = Links::new(&stub);
        let response = get(&links, SIZE, &[("range", "bytes=0-9")])
            .await
            .expect("proxied");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body_of(response).await.expect("body"), &data[..10]);
        assert_eq!(links.calls(), (2, 1));
        let heads = stub.heads();
        assert_eq!(heads.len(), 2);
        assert!(
            heads[1].starts_with("get /file?sign=secret-1 "),
            "{}",
            heads[1]
        );
    }

    #[tokio::test]
    async fn a_json_error_in_a_200_is_refreshed_once() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |index, head| {
            Some(if index == 0 {
                let body = br#"{"code":1010,"message":"link expired"}"#;
                reply(
                    "200 OK",
                    &[
                        ("content-type", "application/json".into()),
                        ("content-length", body.len().to_string()),
                    ],
                    body,
                )
            } else {
                cdn(&d, head)
            })
        })
        .await;
        let links = Links::new(&stub);
        let response = get(&links, SIZE, &[]).await.expect("proxied");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await.expect("body"), *data);
        assert_eq!(links.calls(), (2, 1));
    }

    #[tokio::test]
    async fn refused_twice_is_an_error_without_a_body() {
        let stub = Stub::start(|_, _| {
            Some(reply(
                "410 Gone",
                &[("content-length", "4".into())],
                b"gone",
            ))
        })
        .await;
        let links = Links::new(&stub);
        let err = get(&links, SIZE, &[("range", "bytes=0-9")])
            .await
            .expect_err("refused");
        assert!(matches!(err, ProxyError::Refused(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(stub.heads().len(), 2);
        assert_eq!(links.calls(), (2, 1));
    }

    #[tokio::test]
    async fn upstream_failures_are_retried_twice_with_the_same_link() {
        let stub = Stub::start(|_, _| {
            Some(reply(
                "503 Service Unavailable",
                &[("content-length", "0".into())],
                b"",
            ))
        })
        .await;
        let links = Links::new(&stub);
        let err = get(&links, SIZE, &[]).await.expect_err("503");
        assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
        assert_eq!(stub.heads().len(), 1 + MAX_BUSY_RETRIES as usize);
        assert_eq!(links.calls(), (1, 0));

        // A length mismatch is not the file, and not retried either.
        let stub =
            Stub::start(|_, _| Some(reply("200 OK", &[("content-length", "3".into())], b"abc")))
                .await;
        let links = Links::new(&stub);
        let err = get(&links, SIZE, &[]).await.expect_err("mismatch");
        assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
        assert_eq!(stub.heads().len(), 1);
    }

    #[tokio::test]
    async fn a_short_upstream_body_cuts_the_response() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |_, _| {
            Some(reply(
                "206 Partial Content",
                &[
                    ("content-range", "bytes 0-49/100".into()),
                    ("content-length", "50".into()),
                ],
                &d[..20],
            ))
        })
        .await;
        let links = Links::new(&stub);
        let response = get(&links, SIZE, &[("range", "bytes=0-49")])
            .await
            .expect("headers were fine");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(header_of(&response, "content-length"), Some("50"));
        let err = body_of(response).await.expect_err("cut");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn answered_locally_without_any_link_or_upstream_call() {
        let stub = Stub::start(|_, _| None).await;
        let links = Links::new(&stub);
        let v = Validators::for_entry(&entry(SIZE));
        let etag = v.etag.clone().expect("etag");

        let r = get(&links, SIZE, &[("range", "bytes=100-")])
            .await
            .expect("416");
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header_of(&r, "content-range"), Some("bytes */100"));

        let r = get(&links, SIZE, &[("if-none-match", &etag)])
            .await
            .expect("304");
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&r, "etag"), Some(etag.as_str()));

        let r = get(&links, SIZE, &[("if-match", "\"nope\"")])
            .await
            .expect("412");
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

        let r = proxy(
            &client(),
            &Method::HEAD,
            &HeaderMap::new(),
            &entry(SIZE),
            &links,
        )
        .await
        .expect("head");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, "content-length"), Some("100"));

        let r = get(&links, 0, &[("range", "bytes=0-")])
            .await
            .expect("empty");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header_of(&r, "content-length"), Some("0"));
        assert!(body_of(r).await.expect("body").is_empty());

        assert_eq!(links.calls(), (0, 0));
        assert!(stub.heads().is_empty());
    }

    #[tokio::test]
    async fn a_stale_if_range_gets_the_whole_file() {
        let data = data();
        let d = data.clone();
        let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
        let links = Links::new(&stub);
        let response = get(
            &links,
            SIZE,
            &[("range", "bytes=10-19"), ("if-range", "\"old\"")],
        )
        .await
        .expect("proxied");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await.expect("body"), *data);
        assert!(!stub.heads()[0].contains("\r\nrange:"));
    }

    #[tokio::test]
    async fn link_errors_are_passed_to_the_caller() {
        let stub = Stub::start(|_, _| None).await;
        let mut links = Links::new(&stub);
        links.error = Some(BackendError::NotFound);
        let err = get(&links, SIZE, &[]).await.expect_err("no link");
        assert!(
            matches!(err, ProxyError::Link(BackendError::NotFound)),
            "{err:?}"
        );
        assert!(stub.heads().is_empty());
    }

    #[tokio::test]
    async fn connection_errors_and_timeouts() {
        // Nothing listens on a port we just released.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let links = Links {
            base,
            calls: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            error: None,
        };
        let err = proxy(
            &client(),
            &Method::GET,
            &HeaderMap::new(),
            &entry(SIZE),
            &links,
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");

        // A CDN that never answers; the client's own timeout maps to Timeout.
        let stub = Stub::start(|_, _| None).await;
        let links = Links::new(&stub);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(300))
            .build()
            .expect("client");
        let err = proxy(
            &crate::backend::Upstream::new(client),
            &Method::GET,
            &HeaderMap::new(),
            &entry(SIZE),
            &links,
        )
        .await
        .expect_err("timeout");
        assert!(matches!(err, ProxyError::Timeout), "{err:?}");
        assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
