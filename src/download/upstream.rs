//! Opening a file's bytes upstream: one request for exactly the wanted range, its answer
//! judged ([`super::judge`]) before anything is promised to the client, a first-byte timeout,
//! and a fresh link when the CDN refuses the one we had. [`fetch`] is the one way any part of
//! the gateway reads a file's bytes from 123 (a proxied GET, a copy between mounts).
//!
//! Before the client has seen anything, a CDN 5xx or 429 is retried with the same link (twice,
//! after a short back-off), and a refused link (401, 403, 404, 410, an error page) is replaced
//! by one fresh link; then the caller gets an error.
//!
//! Timeouts: the wait for the upstream response head is bounded by the configured first-byte
//! timeout (`server.upstream_first_byte_timeout`, default 30 s: room for a cold object at a
//! far offset, while a CDN that accepts and then says nothing cannot hold the client
//! forever), shortened to what is left of the request's deadline (`server.upstream_deadline`,
//! `backend::deadline`), which also stops the retries. The connect limit and a stall in the
//! middle of the body are the download client's business ([`super::client`]): never a total
//! timeout, which would cut every download longer than it.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::StatusCode;
use http_body_util::BodyExt;

use super::client::GetError;
use super::exact::ExactBody;
use super::judge::{judge, Verdict};
use super::range::RangeRequest;
use crate::backend::retry::Retries;
use crate::backend::{Entry, Error, Link};
use crate::response;
use crate::response::ResponseBody;

/// How many times an upstream 5xx or 429 (before any byte reached the client) is retried
/// before the client gets 502 (or, for a lasting 429, 503).
pub(super) const MAX_BUSY_RETRIES: u32 = 2;
/// `Retry-After` for a CDN that kept answering 429 without saying how long to wait.
const CDN_BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);
/// `Retry-After` for a CDN that did not answer in time (504).
const TIMEOUT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest upstream `Retry-After` passed on.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Where [`fetch`] gets the download link of one file.
#[async_trait::async_trait]
pub trait LinkSource: Send + Sync {
    /// The link to fetch. `refresh` = the previous link was refused; fetch a fresh one
    /// (bypassing any cache).
    async fn link(&self, refresh: bool) -> Result<std::sync::Arc<Link>, crate::backend::Error>;
}

/// Why [`fetch`] could not start a response. Nothing has been sent to the client yet.
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

/// Opens `want` (never `Unsatisfiable`) of the file `entry` upstream and returns a body of
/// exactly those bytes: `want.len(entry.size)` of them, or an I/O error that cuts the
/// connection. Sends the link's own headers, `Accept-Encoding: identity`, our `Range` and
/// `user_agent` unless the link sets one. An empty range costs no link and no upstream call.
///
/// `Err` means nothing was read yet. Errors are not logged here; the caller logs them once,
/// where it maps them. A failure in the middle of the body is logged by the body (with the
/// entry's id and name) when it cuts the connection.
pub async fn fetch(
    up: &crate::backend::Upstream,
    entry: &Entry,
    links: &dyn LinkSource,
    want: RangeRequest,
    user_agent: Option<&HeaderValue>,
) -> Result<ResponseBody, ProxyError> {
    if want.is_empty(entry.size) {
        // No byte to fetch, so no link to spend.
        return Ok(response::empty_body());
    }
    let mut link = links.link(false).await.map_err(ProxyError::Link)?;
    let mut refreshed = false;
    // The CDN's 5xx and 429 both say "busy, come back": one count, each honouring the
    // answer's Retry-After (docs/123.md, open §11), so both are read as a rate limit.
    let mut retries = Retries::new(MAX_BUSY_RETRIES, 0);
    // Bounded: every turn returns or uses up the one refresh or one of the counted retries.
    loop {
        let upstream = send(up, &link, want, user_agent).await?;
        let status = upstream.status();
        let server_wait = crate::backend::pacer::retry_after(upstream.headers());
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let busy = Error::RateLimited {
                retry_after: server_wait,
            };
            // Nothing was sent to the client yet: a brief outage or rate limit of the CDN is
            // retried with the same link, after a short back-off. A Retry-After longer than a
            // retry may wait is passed on to the client instead.
            if let Some(delay) = retries.next(&busy) {
                tracing::info!(
                    file_id = entry.id,
                    name = %entry.name,
                    %status,
                    attempt = retries.used(),
                    "upstream download failed; retrying"
                );
                drop(upstream);
                tokio::time::sleep(delay).await;
                continue;
            }
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
                    up.downloads.body(upstream),
                    skip,
                    want.len(entry.size),
                    entry,
                    up.metrics.clone(),
                );
                return Ok(body.boxed_unsync());
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
) -> Result<http::Response<hyper::body::Incoming>, ProxyError> {
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
    let request = up.downloads.get(link.url.as_str(), headers);
    match tokio::time::timeout(limit, request).await {
        Err(_) | Ok(Err(GetError::Timeout)) => Err(ProxyError::Timeout),
        Ok(Err(GetError::Failed(reason))) => Err(ProxyError::Upstream(reason)),
        Ok(Ok(response)) => Ok(response),
    }
}

/// A reqwest error as text, without its URL (a signed secret) and with its causes.
pub fn describe(e: reqwest::Error) -> String {
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
