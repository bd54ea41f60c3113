//! The HTTP client of the download path: hyper's own client (`hyper-util`'s pooled client over
//! a rustls connector), because it lets us cap what one upstream connection may buffer
//! (`http1_max_buf_size`). reqwest offers no such knob, so with it the memory of a proxied
//! stream depended on how the CDN chunked its answer and how far the client lagged behind.
//! API calls keep using reqwest (small JSON answers, one pool with the backends).
//!
//! It keeps what the reqwest client gave the download path: the connect limit
//! (`server.upstream_connect_timeout`), a stall limit in the middle of a body
//! (`server.upstream_idle_timeout`, per chunk, see [`BodyStream`]), our `User-Agent` unless the
//! request carries one, and up to [`MAX_REDIRECTS`] followed redirects. The first-byte limit
//! stays with the caller ([`super::upstream`]), which wraps [`DownloadClient::get`] in it.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backend::timeouts::UpstreamTimeouts;

/// The most bytes one upstream connection reads ahead of what the client took (hyper's read
/// buffer; it also bounds the response head). At 100 streams that is 6.4 MiB at most.
pub const MAX_READ_BUFFER: usize = 64 * 1024;
/// Redirects followed before the answer counts as a failure (what reqwest followed).
pub const MAX_REDIRECTS: usize = 10;
/// Idle pooled connections are closed before CDNs typically drop them (60 s), so a socket the
/// other side already closed is never reused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Why [`DownloadClient::get`] got no answer. Never carries the URL (a signed secret).
#[derive(Debug)]
pub enum GetError {
    /// Connecting took longer than `server.upstream_connect_timeout`.
    Timeout,
    /// Anything else: connection refused or reset, TLS, a bad redirect.
    Failed(String),
}

/// The download client. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct DownloadClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    user_agent: HeaderValue,
    idle: Duration,
}

impl fmt::Debug for DownloadClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadClient")
            .field("user_agent", &self.user_agent)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl DownloadClient {
    /// A client sending `user_agent` by default, with the connect and stall limits of
    /// `timeouts`.
    pub fn new(user_agent: &str, timeouts: UpstreamTimeouts) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeouts.connect));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(tokio_rustls::rustls::crypto::ring::default_provider())
            .map_err(|e| anyhow::anyhow!("building the download client's TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .http1_max_buf_size(MAX_READ_BUFFER)
            .build(https);
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| anyhow::anyhow!("server.user_agent is not a valid header value"))?;
        Ok(Self {
            client,
            user_agent,
            idle: timeouts.idle,
        })
    }

    /// GETs `url` with `headers` (plus our `User-Agent` and `Accept: */*` when they have none),
    /// following redirects; credentials are not carried to another origin. The body of the
    /// answer is read through [`DownloadClient::body`].
    pub async fn get(
        &self,
        url: &str,
        mut headers: HeaderMap,
    ) -> Result<Response<Incoming>, GetError> {
        if !headers.contains_key(header::USER_AGENT) {
            headers.insert(header::USER_AGENT, self.user_agent.clone());
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        let mut uri: Uri = url
            .parse()
            .map_err(|_| GetError::Failed("the download URL is not a valid URI".to_owned()))?;
        // Bounded: every turn returns or follows one of at most MAX_REDIRECTS redirects.
        for _ in 0..=MAX_REDIRECTS {
            let mut request = Request::new(Empty::new());
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            let response = self.client.request(request).await.map_err(failed)?;
            let Some(next) = redirect_target(&uri, &response) else {
                return Ok(response);
            };
            if next.scheme() != uri.scheme() || next.authority() != uri.authority() {
                for name in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    headers.remove(name);
                }
            }
            uri = next;
        }
        Err(GetError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The data of `response`'s body, chunk by chunk, each within the stall limit.
    pub fn body(&self, response: Response<Incoming>) -> BodyStream {
        BodyStream {
            body: response.into_body(),
            idle: self.idle,
            stall: Box::pin(tokio::time::sleep(self.idle)),
        }
    }
}

/// Where a redirect answer points (resolved against `from`), if it is one with a usable
/// `Location`.
fn redirect_target(from: &Uri, response: &Response<Incoming>) -> Option<Uri> {
    if !matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    let base = url::Url::parse(&from.to_string()).ok()?;
    let next = base.join(location).ok()?;
    if !matches!(next.scheme(), "http" | "https") {
        return None;
    }
    next.as_str().parse().ok()
}

/// A client error as text with its causes (none of them names the URL); a connect timeout is
/// [`GetError::Timeout`].
fn failed(e: hyper_util::client::legacy::Error) -> GetError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    let mut timed_out = false;
    while let Some(cause) = source {
        timed_out |= cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timed_out {
        GetError::Timeout
    } else {
        GetError::Failed(text)
    }
}

/// An upstream body as a stream of data chunks. A chunk that takes longer than the stall limit
/// (`server.upstream_idle_timeout`) ends it with a `TimedOut` error, as reqwest's read timeout
/// did; trailers are skipped.
pub struct BodyStream {
    body: Incoming,
    idle: Duration,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for BodyStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Bounded: every turn returns, or skips one non-data frame (trailers come once).
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.stall.as_mut().reset(deadline);
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        text.push_str(": ");
                        text.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    return Poll::Ready(Some(Err(io::Error::other(text))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    if this.stall.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "upstream body stalled longer than server.upstream_idle_timeout",
                        ))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
