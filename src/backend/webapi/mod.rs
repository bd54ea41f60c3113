//! The one web-API layer share mounts and personal-account (web) mounts both build on: the
//! request signature (`sign`), pacing of listing pages on the process-wide web limiter
//! (`pacer::web_api`: 123 limits the web API per address, whatever the account), one signed
//! attempt with the web client's headers and the first-byte limit, the strict envelope
//! (`send`), the classification of codes, the retry bounds (decided by `backend::retry`), the
//! listing walk (`listing`) and the download hop (`hop`). Every attempt is counted in the
//! metrics like an Open API call. The share and web clients keep only what differs: the
//! share's optional access token, the web session with its re-login on 401.

pub mod hop;
pub mod listing;
pub mod sign;
pub mod wire;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde::de::DeserializeOwned;

use self::wire::Envelope;
use crate::backend::pacer::{self, WEB_LIST_INTERVAL};
pub use crate::backend::retry::Retries;
use crate::backend::{deadline, Error, Upstream};

/// How many times a call backs off after code 429 before giving up with `RateLimited`.
pub(crate) const MAX_429_RETRIES: u32 = 4;
/// How many times a 5xx or transport failure of a read is retried.
pub(crate) const MAX_TRANSIENT_RETRIES: u32 = 2;
/// The largest API answer read: a page of 100 items is a few tens of KiB.
const MAX_BODY: usize = 8 << 20;

/// One web API host as this gateway calls it.
pub struct WebApi {
    http: reqwest::Client,
    metrics: crate::metrics::Metrics,
    /// `server.upstream_first_byte_timeout`: how long one attempt waits for an answer.
    first_byte: Duration,
    api_base: String,
    /// `<scheme>://<host[:port]>` of `api_base`, sent as `Origin` and, with a `/`, `Referer`.
    origin: String,
    /// `[cluster]`: listing pages are spaced for every instance together.
    cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
}

impl WebApi {
    /// The API at `api_base`, called with `upstream`'s client, timeouts and metrics.
    pub fn new(upstream: &Upstream, api_base: &str) -> Self {
        let api_base = api_base.trim_end_matches('/').to_string();
        Self {
            http: upstream.http.clone(),
            metrics: upstream.metrics.clone(),
            first_byte: upstream.timeouts.first_byte,
            origin: origin_of(&api_base),
            api_base,
            cluster: upstream.cluster.clone(),
        }
    }

    /// `<scheme>://<host[:port]>` of the API base.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// One attempt at `path`: spaced on the web limiter first when `paced` (listing pages),
    /// with a fresh signature (it carries the time), the headers of docs/123.md, web §1.2, `bearer`
    /// when given, and one first-byte limit within the request's deadline. Counted in the
    /// metrics. The caller decides about retries.
    pub async fn attempt<T, B>(
        &self,
        path: &'static str,
        paced: bool,
        bearer: Option<&str>,
        build: B,
    ) -> Result<T, Error>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    {
        if paced {
            match &self.cluster {
                Some(cluster) => {
                    let key = format!("web:{}", self.api_base);
                    deadline::wait(cluster.space(&key, WEB_LIST_INTERVAL)).await?
                }
                None => {
                    deadline::wait(pacer::web_api().space(&self.api_base, WEB_LIST_INTERVAL))
                        .await?
                }
            }
        }
        let url = format!("{}{}", self.api_base, path);
        let (sign_key, sign_value) = sign::sign(path);
        let mut request = build(&self.http, &url)
            .query(&[(sign_key.as_str(), sign_value.as_str())])
            .header("origin", self.origin.as_str())
            .header("referer", format!("{}/", self.origin))
            .header("platform", "web")
            .header("app-version", "3");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let request = request.timeout(deadline::attempt(self.first_byte)?);
        let outcome = send(request).await;
        let result = outcome_class(&outcome);
        self.metrics.upstream(path, result);
        tracing::debug!(endpoint = path, result, "123 web API call");
        serde_json::from_value(outcome?).map_err(|e| Error::Upstream {
            code: 0,
            message: format!("unexpected answer shape from {path}: {e}"),
            trace_id: String::new(),
        })
    }
}

/// `<scheme>://<host[:port]>` of a base URL.
pub fn origin_of(base: &str) -> String {
    url::Url::parse(base)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| base.trim_end_matches('/').to_string())
}

/// The metrics label of one web API attempt's outcome.
fn outcome_class<T>(outcome: &Result<T, Error>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(Error::RateLimited { .. }) => "code_429",
        Err(Error::Unavailable(_)) => "unavailable",
        Err(Error::Transport(_)) => "transport",
        Err(_) => "error_code",
    }
}

pub(crate) fn unparsable(message: &str) -> Error {
    Error::Upstream {
        code: -1,
        message: message.to_string(),
        trace_id: String::new(),
    }
}

/// Sends one request and opens the envelope strictly (docs/123.md, open §11, "the envelope"): only
/// HTTP 200 with a JSON envelope whose `code` is 0 is success. A non-zero `code` is read
/// whatever the status (a gateway may mirror codes into statuses); rate limiting is recognised
/// in each of its reported shapes (`is_rate_limit`, and HTTP 429); a refused signature without
/// a `code` (`{"status":0,"info":"签名错误…"}`) is named as a clock problem. Anything else that
/// is not a code-0 200 is an error, never "empty" and never "done".
async fn send(request: reqwest::RequestBuilder) -> Result<serde_json::Value, Error> {
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

/// Whether a web API answer means "too many requests" (docs/123.md, web §7): code 429, code 100011
/// (`rate limit type min`), or a message saying so with another code, such as code 1
/// `下载操作频繁，请稍后再试` ("download operations too frequent, try again later").
pub fn is_rate_limit(code: i64, message: &str) -> bool {
    code == 429
        || code == 100_011
        || message.contains("频繁")
        || message.to_ascii_lowercase().contains("rate limit")
}

/// A refused signature in the captured shape `{"status":0,"info":"签名错误,请检查您的本地时间是否为
/// 东八区时间-platform forbidden"}` (docs/123.md, web §7): no `code`, an `info` about the signature.
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
        // Download traffic quota used up (observed on the Android API); the message says until
        // when (本月: the month, 今日: the day).
        5113 | 5114 => Error::TrafficExceeded {
            resets_at: crate::traffic::quota::resets_at(&message, SystemTime::now()),
            message,
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

pub(crate) fn transport(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Unavailable("123 did not answer in time".into())
    } else {
        Error::Transport(e.without_url().to_string())
    }
}

/// Reads a body of at most `cap` bytes; a longer one is an error, not a truncated answer.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, Error> {
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
