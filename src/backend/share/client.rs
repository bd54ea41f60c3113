//! The one way every share-link web API call is made: signature, pacing, retries and error
//! classification; and the download hop (spec web §0.5).
//!
//! Retries live here and nowhere else: code 429 (or HTTP 429) backs off a bounded number of
//! times, a 5xx or a transport failure is retried a bounded number of times (both endpoints and
//! the download hop are reads; `retry_delay` decides for all three). Every other code is
//! classified once in `classify`. Listing pages are spaced by the process-wide web API limiter
//! (`pacer::web_api`), retries included. All of it meets the client request's deadline
//! (`backend::deadline`).

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, LOCATION, REFERER};
use http::StatusCode;
use serde::de::DeserializeOwned;

use super::api::{Envelope, HopReply};
use crate::backend::open::client::until_midnight_china;
use crate::backend::pacer::{self, backoff, MAX_RETRY_WAIT, WEB_LIST_INTERVAL};
use crate::backend::{deadline, web_sign, Error};

/// How many times a call backs off after code 429 before giving up with `RateLimited`.
const MAX_429_RETRIES: u32 = 4;
/// How many times a 5xx or transport failure is retried.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// The largest API answer read: a page of 100 items is a few tens of KiB.
const MAX_BODY: usize = 8 << 20;

/// The web API endpoints a share mount calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ShareGet,
    DownloadInfo,
}

impl Endpoint {
    /// The URL path, which is also what is signed.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ShareGet => "/b/api/share/get",
            Endpoint::DownloadInfo => "/b/api/share/download/info",
        }
    }
}

/// One share's connection to the web API.
pub struct ShareClient {
    http: reqwest::Client,
    metrics: crate::metrics::Metrics,
    first_byte: Duration,
    /// For the download hop, which must not follow redirects (its 302 *is* the answer).
    /// `None` when it could not be built; links then fail with a transport error.
    hop: Option<reqwest::Client>,
    api_base: String,
    /// `<scheme>://<host[:port]>` of `api_base`, sent as `Origin` and, with a `/`, `Referer`.
    origin: String,
    access_token: Option<String>,
}

impl ShareClient {
    /// `user_agent` (`server.user_agent`) is the hop's: the hop resolves a link once for every
    /// client that then plays it, so it is not any one player's.
    pub fn new(
        upstream: &crate::backend::Upstream,
        api_base: &str,
        access_token: Option<String>,
        user_agent: &str,
    ) -> Self {
        let api_base = api_base.trim_end_matches('/').to_string();
        let origin = url::Url::parse(&api_base)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| api_base.clone());
        let hop = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(upstream.timeouts.connect)
            .user_agent(user_agent)
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot build the share download-hop client"))
            .ok();
        Self {
            http: upstream.http.clone(),
            metrics: upstream.metrics.clone(),
            first_byte: upstream.timeouts.first_byte,
            hop,
            api_base,
            origin,
            access_token: access_token.filter(|t| !t.is_empty()),
        }
    }

    /// A signed GET (listing pages are spaced by the shared web API limiter).
    pub async fn get<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(ep, |http, url| http.get(url).query(query)).await
    }

    /// A signed POST with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
    ) -> Result<T, Error> {
        self.call(ep, |http, url| http.post(url).json(body)).await
    }

    async fn call<T, B>(&self, ep: Endpoint, build: B) -> Result<T, Error>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    {
        let mut rate_limited = 0u32;
        let mut transient = 0u32;
        let url = format!("{}{}", self.api_base, ep.path());
        loop {
            if ep == Endpoint::ShareGet {
                deadline::wait(pacer::web_api().space(&self.api_base, WEB_LIST_INTERVAL)).await?;
            }
            // A fresh signature per attempt: it carries the time.
            let (sign_key, sign_value) = web_sign::sign(ep.path());
            let mut request = build(&self.http, &url)
                .query(&[(sign_key.as_str(), sign_value.as_str())])
                .header("origin", self.origin.as_str())
                .header("referer", format!("{}/", self.origin))
                .header("platform", "web")
                .header("app-version", "3")
                .timeout(deadline::attempt(self.first_byte)?);
            if let Some(token) = &self.access_token {
                request = request.bearer_auth(token);
            }
            let outcome = send(request).await;
            let result = outcome_class(&outcome);
            self.metrics.upstream(ep.path(), result);
            tracing::debug!(endpoint = ep.path(), result, "123 web API call");
            let error = match outcome {
                Ok(data) => {
                    return serde_json::from_value(data).map_err(|e| Error::Upstream {
                        code: 0,
                        message: format!("unexpected answer shape from {}: {e}", ep.path()),
                        trace_id: String::new(),
                    })
                }
                Err(e) => e,
            };
            match retry_delay(&error, &mut rate_limited, &mut transient) {
                Some(delay) => {
                    if !matches!(error, Error::RateLimited { .. }) {
                        tracing::info!(endpoint = ep.path(), attempt = transient, error = %error, "retrying a failed 123 web call");
                    }
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    /// Resolves a share `DownloadURL` to the final CDN URL and the `Referer` it needs (spec web
    /// §0.5): decode `params` (standard base64) when present, GET that URL without following
    /// redirects, and take the `Location` of a 302 or the `data.redirect_url` of a 2xx JSON
    /// answer. The Referer is the origin of the *outer* URL.
    pub async fn resolve(&self, download_url: &str) -> Result<(String, HeaderValue), Error> {
        let outer = url::Url::parse(download_url)
            .map_err(|_| unparsable("123 returned a download URL that is not a URL"))?;
        let referer = HeaderValue::from_str(&format!("{}/", outer.origin().ascii_serialization()))
            .map_err(|_| unparsable("123 returned a download URL without a usable host"))?;
        let hop = decode_params(&outer).unwrap_or_else(|| outer.clone());
        let Some(client) = &self.hop else {
            return Err(Error::Transport(
                "the download-hop HTTP client could not be built".into(),
            ));
        };
        let mut rate_limited = 0u32;
        let mut transient = 0u32;
        // Bounded: every turn returns or uses up one of the counted retries.
        let response = loop {
            let outcome = client
                .get(hop.as_str())
                .header(REFERER, format!("{}/", self.origin))
                .timeout(deadline::attempt(self.first_byte)?)
                .send()
                .await;
            let error = match outcome {
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
                    retry_after: pacer::retry_after(r.headers()),
                },
                // Not the spec's "keep the decoded URL": a 5xx link would be cached and fail
                // for minutes, while an error is retried (here, and by the next request).
                Ok(r) if r.status().is_server_error() => Error::Unavailable(format!(
                    "the download hop answered HTTP {}",
                    r.status().as_u16()
                )),
                Ok(r) => break r,
                Err(e) => transport(e),
            };
            match retry_delay(&error, &mut rate_limited, &mut transient) {
                Some(delay) => {
                    tracing::info!(error = %error, "retrying the download hop");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        };
        let status = response.status();
        let target = if status == StatusCode::FOUND {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| unparsable("the download hop answered 302 without a Location"))?;
            hop.join(location)
                .map_err(|_| unparsable("the download hop answered 302 with a bad Location"))?
        } else if status.is_success() {
            let body = read_capped(response, MAX_BODY).await?;
            let reply: HopReply = serde_json::from_slice(&body)
                .map_err(|_| unparsable("the download hop answered 2xx without JSON"))?;
            let url = reply
                .data
                .and_then(|d| d.redirect_url)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| unparsable("the download hop answered without redirect_url"))?;
            url::Url::parse(&url)
                .map_err(|_| unparsable("the download hop's redirect_url is not a URL"))?
        } else {
            // Other statuses (301, 307, 4xx but 429): keep the decoded URL, as OpenList does. A 4xx
            // then shows at the CDN, where the proxy fetches one fresh link.
            hop
        };
        if !matches!(target.scheme(), "http" | "https") {
            return Err(unparsable("the final download URL is not http(s)"));
        }
        Ok((target.into(), referer))
    }
}

/// Counts one more retry of `error` and says how long to wait before it, or `None` when it is
/// not retried: rate limiting backs off up to `MAX_429_RETRIES` times (never shorter than the
/// server's `Retry-After`, and not at all when that is longer than a retry may wait), a 5xx or
/// a transport failure is retried up to `MAX_TRANSIENT_RETRIES` times, anything else is final;
/// and no retry that would start past the request's deadline.
fn retry_delay(error: &Error, rate_limited: &mut u32, transient: &mut u32) -> Option<Duration> {
    let delay = match error {
        Error::RateLimited { retry_after } if retry_after.is_some_and(|r| r > MAX_RETRY_WAIT) => {
            None
        }
        Error::RateLimited { retry_after } if *rate_limited < MAX_429_RETRIES => {
            *rate_limited += 1;
            Some(backoff(*rate_limited, *retry_after))
        }
        Error::Unavailable(_) | Error::Transport(_) if *transient < MAX_TRANSIENT_RETRIES => {
            *transient += 1;
            Some(backoff(*transient, None))
        }
        _ => None,
    };
    delay.filter(|d| deadline::allows(*d))
}

/// The URL inside `params` (standard base64 with padding), if there is one that decodes.
/// Query unescaping turns a raw `+` into a space; it is put back before decoding.
fn decode_params(outer: &url::Url) -> Option<url::Url> {
    let (_, params) = outer.query_pairs().find(|(k, _)| k == "params")?;
    let params = params.trim().replace(' ', "+");
    let bytes = STANDARD.decode(params.as_bytes()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    url::Url::parse(text.trim()).ok()
}

fn unparsable(message: &str) -> Error {
    Error::Upstream {
        code: -1,
        message: message.to_string(),
        trace_id: String::new(),
    }
}

/// Sends one request and opens the envelope strictly (spec open-api §11, "the envelope"): only
/// HTTP 200 with a JSON envelope whose `code` is 0 is success. A non-zero `code` is read
/// whatever the status (a gateway may mirror codes into statuses); rate limiting is recognised
/// in each of its reported shapes (`is_rate_limit`, and HTTP 429); a refused signature without
/// a `code` (`{"status":0,"info":"签名错误…"}`) is named as a clock problem. Anything else that
/// is not a code-0 200 is an error, never "empty" and never "done".
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<serde_json::Value, Error> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let retry_after = pacer::retry_after(response.headers());
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = read_capped(response, MAX_BODY).await?;
    let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
    let code = envelope.as_ref().and_then(|e| e.code);
    match (envelope, code) {
        (Some(e), Some(code)) if is_rate_limit(code, &e.message) => {
            Err(Error::RateLimited { retry_after })
        }
        (Some(e), Some(code)) if (500..=599).contains(&code) => Err(Error::Unavailable(format!(
            "123 answered HTTP {} code {code}: {}",
            status.as_u16(),
            e.message
        ))),
        (Some(e), Some(code)) if code != 0 => Err(classify(code, e.message)),
        (Some(e), None) if signature_refused(&e) => Err(clock_error(&e.info)),
        _ if status == StatusCode::TOO_MANY_REQUESTS => Err(Error::RateLimited { retry_after }),
        _ if status.is_server_error() => Err(Error::Unavailable(format!(
            "123 answered HTTP {}",
            status.as_u16()
        ))),
        _ if status != StatusCode::OK => Err(Error::Upstream {
            code: -1,
            message: format!(
                "HTTP {} is not a success, whatever the body says",
                status.as_u16()
            ),
            trace_id: String::new(),
        }),
        (None, _) => Err(Error::Upstream {
            code: -1,
            message: format!(
                "HTTP {} with a body that is not JSON (Content-Type {content_type:?}); not read \
                 as an empty answer",
                status.as_u16()
            ),
            trace_id: String::new(),
        }),
        (Some(_), None) => Err(Error::Upstream {
            code: -1,
            message: format!("HTTP {} with an answer that has no code", status.as_u16()),
            trace_id: String::new(),
        }),
        (Some(e), Some(_)) => Ok(e.data.unwrap_or(serde_json::Value::Null)),
    }
}

/// The metrics label of one web API attempt's outcome.
pub(crate) fn outcome_class<T>(outcome: &Result<T, Error>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(Error::RateLimited { .. }) => "code_429",
        Err(Error::Unavailable(_)) => "unavailable",
        Err(Error::Transport(_)) => "transport",
        Err(_) => "error_code",
    }
}

/// Whether a web API answer means "too many requests" (spec web §7): code 429, code 100011
/// (`rate limit type min`), or a message saying so with another code, such as code 1
/// `下载操作频繁，请稍后再试` ("download operations too frequent, try again later").
pub fn is_rate_limit(code: i64, message: &str) -> bool {
    code == 429
        || code == 100_011
        || message.contains("频繁")
        || message.to_ascii_lowercase().contains("rate limit")
}

/// A refused signature in the captured shape `{"status":0,"info":"签名错误,请检查您的本地时间是否为
/// 东八区时间-platform forbidden"}` (spec web §7): no `code`, an `info` about the signature.
fn signature_refused(e: &Envelope) -> bool {
    e.status.is_some() && e.info.contains("签名")
}

/// The error for a refused web signature: the signature carries the time, so the usual cause is
/// this machine's clock. Logged here with that advice, once per refusal.
fn clock_error(said: &str) -> Error {
    tracing::error!(
        said,
        "123 refused the web API signature; check this machine's clock (the signature carries \
         the time, and 123 accepts it only within minutes of the real time)"
    );
    Error::Upstream {
        code: -1,
        message: format!(
            "123 refused the request signature ({said}); this machine's clock is probably off: \
             check it (NTP) — the signature carries the time"
        ),
        trace_id: String::new(),
    }
}

/// Classifies a non-zero code. Messages are 123's own and reach the client (502).
fn classify(code: i64, message: String) -> Error {
    match code {
        // 文件不存在: the file is not (or no longer) in the share.
        5066 => Error::NotFound,
        // Download traffic quota used up (observed on the Android API).
        5113 | 5114 => Error::TrafficExceeded {
            message,
            retry_after: until_midnight_china(SystemTime::now()),
        },
        // 签名校验失败 / 签名错误: the signature was refused, most likely for the clock.
        _ if message.contains("签名") => clock_error(&message),
        // Everything else, e.g. code 1 分享码错误或者分享地址错误 (wrong key or password), or a
        // refused access token: the message is the explanation the user needs.
        _ => Error::Upstream {
            code,
            message,
            trace_id: String::new(),
        },
    }
}

fn transport(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Unavailable("123 did not answer in time".into())
    } else {
        Error::Transport(e.without_url().to_string())
    }
}

/// Reads a body of at most `cap` bytes; a longer one is an error, not a truncated answer.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > cap {
            return Err(unparsable("123 sent an answer larger than expected"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode() {
        let inner = "http://127.0.0.1:1/web-pro/redirect/x?a=1&auto_redirect=0";
        let encoded = STANDARD.encode(inner);
        let percent: String =
            percent_encoding::utf8_percent_encode(&encoded, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let outer = url::Url::parse(&format!(
            "https://web-pro2.123952.com/download-v2/?params={percent}&is_s3=0"
        ))
        .expect("url");
        assert_eq!(
            decode_params(&outer).map(String::from).as_deref(),
            Some(inner)
        );
        // A raw `+` read back as a space still decodes.
        let raw = url::Url::parse(&format!("https://h/d/?params={encoded}")).expect("url");
        assert_eq!(
            decode_params(&raw).map(String::from).as_deref(),
            Some(inner)
        );
        // Garbage keeps the outer URL (None here).
        let bad = url::Url::parse("https://h/d/?params=%%%").expect("url");
        assert!(decode_params(&bad).is_none());
        let none = url::Url::parse("https://h/d/?x=1").expect("url");
        assert!(decode_params(&none).is_none());
    }

    #[test]
    fn rate_limits_in_every_reported_shape() {
        assert!(is_rate_limit(429, "操作频繁，请稍后再试"));
        assert!(is_rate_limit(1, "下载操作频繁，请稍后再试"));
        assert!(is_rate_limit(100_011, ""));
        assert!(is_rate_limit(2, "Rate limit type min"));
        assert!(!is_rate_limit(1, "分享码错误或者分享地址错误"));
        assert!(!is_rate_limit(5066, "文件不存在"));
    }

    #[test]
    fn classify_table() {
        assert!(matches!(classify(5066, "x".into()), Error::NotFound));
        assert!(matches!(
            classify(5113, "x".into()),
            Error::TrafficExceeded { .. }
        ));
        match classify(
            403,
            "签名校验失败: timestamp outside the allowed clock skew".into(),
        ) {
            Error::Upstream { message, .. } => assert!(message.contains("clock"), "{message}"),
            other => panic!("{other:?}"),
        }
        match classify(1, "分享码错误或者分享地址错误".into()) {
            Error::Upstream { code, message, .. } => {
                assert_eq!(code, 1);
                assert_eq!(message, "分享码错误或者分享地址错误");
            }
            other => panic!("{other:?}"),
        }
    }
}
