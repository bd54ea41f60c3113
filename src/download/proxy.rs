//! The local proxy: one upstream request per client request, the client's range passed through
//! exactly, bytes streamed as they arrive.
//!
//! Why this shape (smooth seeking in a 20 GB film): a player seeks by sending a new `Range`;
//! anything but an exact pass-through either fetches fixed chunks one after another (stutter)
//! or opens an open-ended upstream stream that is wasted when the player seeks again. So
//! [`send_file`] asks the CDN for exactly `bytes=start-end` ([`super::upstream::fetch`]),
//! checks the answer's status and headers *before* the client sees a single header
//! ([`super::judge`]), and then forwards chunks one at a time.
//!
//! Two promises: the client gets exactly the bytes of the range it was promised, or the
//! connection is cut ([`super::exact::ExactBody`]: a short or failing upstream body becomes an
//! I/O error, an overlong one is truncated); and a CDN error page is never served as file
//! content.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::conditional::{preflight, Preflight, Validators};
use super::range::{parse_range, RangeRequest};
use super::respond;
use crate::backend::Entry;
use crate::response::ResponseBody;

pub use super::judge::{judge, Verdict};
pub use super::upstream::{fetch, LinkSource, ProxyError};

/// Answers GET or HEAD on the file `entry` by proxying its bytes from the CDN: the
/// preconditions and HEAD first ([`preflight`]), then [`send_file`]. For a caller that has
/// not answered them itself; the download policy calls [`preflight`] once and then
/// [`send_file`].
pub async fn proxy(
    up: &crate::backend::Upstream,
    method: &Method,
    headers: &HeaderMap,
    entry: &Entry,
    links: &dyn LinkSource,
) -> Result<Response<ResponseBody>, ProxyError> {
    match preflight(method, headers, entry) {
        Preflight::Answered(res) => Ok(res),
        Preflight::Send { honour_range } => {
            let v = Validators::for_entry(entry);
            send_file(up, headers, entry, &v, honour_range, links).await
        }
    }
}

/// Sends the bytes of `entry` (after [`preflight`]): the client's single `Range` when
/// `honour_range`, else the whole file.
///
/// Forwards one of the client's headers, its `User-Agent` (docs/123.md, web §7: players are
/// what 123's CDN expects to see; without one, the HTTP client's own, `server.user_agent`),
/// unless the link sets one. An unsatisfiable range is a 416 without any link or upstream call; an empty
/// file is a 200 with no body, also without one.
///
/// `Err` means nothing was sent yet: answer [`ProxyError::status`] (or map `Link` errors).
pub async fn send_file(
    up: &crate::backend::Upstream,
    headers: &HeaderMap,
    entry: &Entry,
    v: &Validators,
    honour_range: bool,
    links: &dyn LinkSource,
) -> Result<Response<ResponseBody>, ProxyError> {
    let mut ranges = headers.get_all(header::RANGE).iter();
    let want = match (ranges.next(), ranges.next()) {
        // Several Range fields are as unservable as several ranges: ignore them (a 200).
        (Some(range), None) if honour_range => parse_range(Some(range), entry.size),
        _ => RangeRequest::Full,
    };
    if want == RangeRequest::Unsatisfiable {
        return Ok(respond::range_not_satisfiable(entry.size));
    }
    let body = fetch(up, entry, links, want, headers.get(header::USER_AGENT)).await?;
    Ok(file_response(entry, v, want, body))
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

#[cfg(test)]
mod tests;
