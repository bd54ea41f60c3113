//! The one way every Open API call is made: token, pacing, retries and error classification.
//!
//! Retries live here and nowhere else (their bounds and waits are `backend::retry`'s): a 401 refreshes the token once (if it is still the
//! current one), a 429 backs off a bounded number of times, a 5xx or a transport failure on an
//! idempotent call is retried a bounded number of times. Every other code is classified once in
//! `classify`. All of it meets the client request's deadline (`backend::deadline`): attempts
//! are shortened to it, and no retry starts that would end past it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use super::api::{self, Envelope};
use super::login::Login;
use super::token::{unix, Token, TokenManager};
use crate::backend::pacer::{self, QpsLimiter, Rate};
use crate::backend::retry::Retries;
use crate::backend::TokenState;
use crate::backend::{deadline, Error};

/// How many times a call backs off after code 429 before giving up with `RateLimited`.
const MAX_429_RETRIES: u32 = 4;
/// How many times a 5xx or transport failure is retried on an idempotent call.
const MAX_TRANSIENT_RETRIES: u32 = 2;
/// How many times a slice is retried after a 5xx or a cut: 4 attempts in all. Slices are the calls
/// that fail most often on real uploads (docs/123.md, open §8, "500" on larger files), and
/// resending one is always safe: 123 writes it at its offset.
const MAX_SLICE_RETRIES: u32 = 3;
/// Per-attempt timeout of one slice: a 16 MiB slice at a slow 100 KiB/s still fits.
const SLICE_TIMEOUT: Duration = Duration::from_secs(300);

/// The Open API endpoints the gateway uses, named by their URL path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    AccessToken,
    UserInfo,
    FileList,
    DownloadInfo,
    DirectLinkUrl,
    Mkdir,
    Move,
    Rename,
    Trash,
    /// `file/delete`: for good, only what is in the recycle bin.
    Delete,
    UploadCreate,
    /// On the upload host from `create`'s `servers`, not on the API base.
    UploadSlice,
    UploadComplete,
}

impl Endpoint {
    /// Every endpoint, for tables and tests.
    pub const ALL: [Endpoint; 13] = [
        Endpoint::AccessToken,
        Endpoint::UserInfo,
        Endpoint::FileList,
        Endpoint::DownloadInfo,
        Endpoint::DirectLinkUrl,
        Endpoint::Mkdir,
        Endpoint::Move,
        Endpoint::Rename,
        Endpoint::Trash,
        Endpoint::Delete,
        Endpoint::UploadCreate,
        Endpoint::UploadSlice,
        Endpoint::UploadComplete,
    ];

    /// The URL path, which is also how stats and faults name the endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::AccessToken => "/api/v1/access_token",
            Endpoint::UserInfo => "/api/v1/user/info",
            Endpoint::FileList => "/api/v2/file/list",
            Endpoint::DownloadInfo => "/api/v1/file/download_info",
            Endpoint::DirectLinkUrl => "/api/v1/direct-link/url",
            Endpoint::Mkdir => "/upload/v1/file/mkdir",
            Endpoint::Move => "/api/v1/file/move",
            Endpoint::Rename => "/api/v1/file/name",
            Endpoint::Trash => "/api/v1/file/trash",
            Endpoint::Delete => "/api/v1/file/delete",
            Endpoint::UploadCreate => "/upload/v2/file/create",
            Endpoint::UploadSlice => "/upload/v2/file/slice",
            Endpoint::UploadComplete => "/upload/v2/file/upload_complete",
        }
    }

    /// Calls per second allowed by 123 for a developer (free tier) credential: the table of
    /// docs/123.md, open §7, and OpenList's numbers where the docs are silent. The emulator
    /// enforces the same table, so a correct gateway never meets its 429.
    pub fn qps(self) -> u32 {
        qps_for_path(self.path())
    }
}

/// The QPS table by URL path; 0 = no published limit.
pub fn qps_for_path(path: &str) -> u32 {
    match path {
        "/api/v1/access_token" => 8,
        "/api/v1/user/info" => 10,
        "/api/v2/file/list" => 5,
        "/api/v1/file/download_info" => 5,
        "/api/v1/direct-link/url" => 5,
        "/upload/v1/file/mkdir" => 5,
        "/api/v1/file/move" => 3,
        "/api/v1/file/name" => 1,
        "/api/v1/file/trash" => 2,
        "/api/v1/file/delete" => 1,
        "/upload/v2/file/create" => 2,
        _ => 0,
    }
}

/// Whether a call may be sent again after a 5xx or a transport failure, when 123 may or may
/// not have acted on it. A 401 or 429 is always retried: 123 refused those before acting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Sending it twice has the effect of sending it once (reads, trash, move, rename,
    /// upload_complete).
    Safe,
    /// A second send could act twice (mkdir, create): the caller re-checks instead.
    Never,
}

/// How one call is retried and how long each attempt may take.
#[derive(Clone, Copy, Debug)]
struct CallOpts {
    transient_retries: u32,
    timeout: Duration,
}

impl CallOpts {
    /// An API call's options: `retry` and the client's first-byte timeout.
    fn api(retry: Retry, first_byte: Duration) -> Self {
        CallOpts {
            transient_retries: match retry {
                Retry::Safe => MAX_TRANSIENT_RETRIES,
                Retry::Never => 0,
            },
            timeout: first_byte,
        }
    }
}

/// One client id's connection to the Open API: its token and its pacing.
pub struct OpenClient {
    /// The shared HTTP client, the counters and `server.upstream_*` (an attempt's first-byte
    /// limit).
    upstream: crate::backend::Upstream,
    api_base: String,
    /// How tokens are obtained (developer keys, OAuth, a renewal service, a pasted token).
    login: Login,
    tokens: TokenManager,
    limiter: QpsLimiter,
    /// `[cluster]`: the budget is the cluster's, kept under `account`.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// This credential's name in the cluster (a digest of API base and identity).
    account: String,
    /// `server.qps_scale`: the share of 123's published limits this client uses.
    qps_scale: f64,
    uid: tokio::sync::OnceCell<u64>,
}

impl OpenClient {
    fn new(
        upstream: &crate::backend::Upstream,
        api_base: &str,
        identity: &str,
        login: Login,
        state_dir: Option<&Path>,
        qps_scale: f64,
    ) -> Self {
        let persist = state_dir.filter(|_| login.persists()).map(|d| {
            d.join("tokens")
                .join(format!("open-{}.json", token_file_key(api_base, identity)))
        });
        let account = token_file_key(api_base, identity);
        let mut tokens = TokenManager::new(persist);
        if let Some(cluster) = &upstream.cluster {
            if login.persists() {
                tokens = tokens.shared(cluster.clone(), account.clone());
            }
        }
        Self {
            upstream: upstream.clone(),
            api_base: api_base.trim_end_matches('/').to_string(),
            login,
            tokens,
            limiter: QpsLimiter::new(),
            cluster: upstream.cluster.clone(),
            account,
            qps_scale,
            uid: tokio::sync::OnceCell::new(),
        }
    }

    /// The pace of endpoint `ep`: its published limit at `server.qps_scale` (docs/123.md, open §11,
    /// "QPS").
    fn rate(&self, ep: Endpoint) -> Rate {
        Rate::scaled(ep.qps(), self.qps_scale)
    }

    /// Waits for a start slot of `ep`: this process's limiter, or the cluster's when several
    /// instances share the credential. Bounded by the request's deadline.
    async fn pace(&self, ep: Endpoint) -> Result<(), Error> {
        let rate = self.rate(ep);
        match &self.cluster {
            Some(cluster) => {
                let key = format!("{}:{}", self.account, ep.path());
                deadline::wait(cluster.acquire(&key, rate)).await
            }
            None => deadline::wait(self.limiter.acquire(ep.path(), rate)).await,
        }
    }

    /// The token's state, for readiness reports.
    pub fn token_state(&self) -> TokenState {
        self.login
            .pasted_state(SystemTime::now())
            .unwrap_or_else(|| self.tokens.state())
    }

    /// The account uid (needed for direct-link signing), fetched once.
    pub async fn uid(&self) -> Result<u64, Error> {
        self.uid
            .get_or_try_init(|| async {
                let info: api::UserInfo = self.get(Endpoint::UserInfo, &[]).await?;
                Ok(info.uid.max(0) as u64)
            })
            .await
            .copied()
    }

    /// A GET with query parameters, through the pacer.
    pub async fn get<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        let url = format!("{}{}", self.api_base, ep.path());
        self.call(
            ep,
            CallOpts::api(Retry::Safe, self.upstream.timeouts.first_byte),
            |http, token| http.get(&url).query(query).bearer_auth(token),
        )
        .await
    }

    /// A JSON POST, through the pacer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
        retry: Retry,
    ) -> Result<T, Error> {
        self.send_json(reqwest::Method::POST, ep, body, retry).await
    }

    /// A JSON PUT, through the pacer.
    pub async fn put<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
        retry: Retry,
    ) -> Result<T, Error> {
        self.send_json(reqwest::Method::PUT, ep, body, retry).await
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        ep: Endpoint,
        body: &serde_json::Value,
        retry: Retry,
    ) -> Result<T, Error> {
        let url = format!("{}{}", self.api_base, ep.path());
        let bytes = bytes::Bytes::from(
            serde_json::to_vec(body)
                .map_err(|e| Error::Transport(format!("could not encode a request body: {e}")))?,
        );
        self.call(
            ep,
            CallOpts::api(retry, self.upstream.timeouts.first_byte),
            |http, token| {
                http.request(method.clone(), &url)
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone())
            },
        )
        .await
    }

    /// Sends one upload slice (a ready multipart body) to `server`, an upload host from
    /// `create`'s `servers`. Retried on 5xx and cuts (resending a slice is harmless) and, like
    /// every call, with a fresh token after a 401.
    pub async fn post_slice<T: DeserializeOwned>(
        &self,
        server: &str,
        content_type: &str,
        body: bytes::Bytes,
    ) -> Result<T, Error> {
        let url = format!(
            "{}{}",
            server.trim_end_matches('/'),
            Endpoint::UploadSlice.path()
        );
        let opts = CallOpts {
            transient_retries: MAX_SLICE_RETRIES,
            timeout: SLICE_TIMEOUT,
        };
        self.call(Endpoint::UploadSlice, opts, |http, token| {
            http.post(&url)
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
        })
        .await
    }

    async fn call<T, B>(&self, ep: Endpoint, opts: CallOpts, build: B) -> Result<T, Error>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    {
        let mut refreshed = false;
        let mut retries = Retries::new(MAX_429_RETRIES, opts.transient_retries);
        let mut token = self.token().await?;
        // Bounded: every turn returns or uses up the one refresh or one of the counted retries.
        loop {
            self.pace(ep).await?;
            let request = build(&self.upstream.http, &token.access_token)
                .header("Platform", "open_platform")
                .timeout(deadline::attempt(opts.timeout)?);
            let outcome = send::<T>(request).await;
            let result = outcome_class(&outcome);
            self.upstream.metrics.upstream(ep.path(), result);
            tracing::debug!(endpoint = ep.path(), result, "123 API call");
            let error = match outcome {
                Ok(Reply::Data(data)) => return Ok(data),
                Ok(Reply::Code { code: 401, .. }) if !refreshed => {
                    refreshed = true;
                    tracing::info!(
                        endpoint = ep.path(),
                        "123 answered 401; refreshing the token"
                    );
                    token = deadline::bound(
                        self.tokens
                            .refresh_after_401(&token, || self.fetch_token_after_401()),
                    )
                    .await?;
                    continue;
                }
                // docs/123.md, open §11: a server's Retry-After is a floor for the wait; one
                // longer than a retry may wait ends the loop and is passed on to the client.
                Ok(Reply::Code {
                    code: 429,
                    retry_after,
                    ..
                }) => Error::RateLimited { retry_after },
                Ok(Reply::Code {
                    code,
                    message,
                    trace_id,
                    ..
                }) => return Err(classify(code, message, trace_id)),
                Err(e) => e,
            };
            retries
                .wait(error, ep.path())
                .await
                .map_err(|error| gave_up(ep, error))?;
        }
    }

    /// The token, waiting for a refresh another request runs at most until the deadline.
    async fn token(&self) -> Result<Token, Error> {
        deadline::bound(self.tokens.get(|| self.fetch_token())).await
    }

    /// A new token the way this client logs in.
    async fn fetch_token(&self) -> Result<Token, Error> {
        let token = match &self.login {
            Login::Developer {
                client_id,
                client_secret,
            } => return self.fetch_developer_token(client_id, client_secret).await,
            // A mount set up for `authorize` that has not been authorized yet.
            Login::OAuth { store, .. } if store.current().is_empty() => {
                return Err(Error::Auth(
                    "no refresh token yet: run `pan123-webdav authorize -c <config> --mount \
                     <this mount>` once, or set refresh_token"
                        .to_string(),
                ));
            }
            // A rotating refresh runs in a task of its own: once 123 has rotated the token, the
            // new one must reach the disk even if the request that asked for it goes away.
            Login::OAuth {
                client_id,
                client_secret,
                store,
            } => {
                let (upstream, base, id, secret, store) = (
                    self.upstream.clone(),
                    self.api_base.clone(),
                    client_id.clone(),
                    client_secret.clone(),
                    store.clone(),
                );
                let account = self.account.clone();
                detached(async move {
                    shared_refresh(&upstream, &account, &store, || {
                        super::oauth::refresh(&upstream, &base, &id, &secret, &store)
                    })
                    .await
                })
                .await
            }
            Login::Renew { url, store } => {
                let (upstream, url, store) = (self.upstream.clone(), url.clone(), store.clone());
                let account = self.account.clone();
                detached(async move {
                    shared_refresh(&upstream, &account, &store, || {
                        super::renew::refresh(&upstream, &url, &store)
                    })
                    .await
                })
                .await
            }
            Login::Pasted { .. } => match self.login.pasted_token() {
                Some(t) => return t,
                None => return Err(Error::Auth("no pasted token".to_string())),
            },
        };
        // A failure is logged once, by the token manager.
        if let Ok(t) = &token {
            tracing::info!(
                login = self.login.name(),
                expires_at = t.expires_at,
                "obtained a 123 access token"
            );
        }
        token
    }

    /// After a 401: a new token, except that a pasted one cannot be renewed.
    async fn fetch_token_after_401(&self) -> Result<Token, Error> {
        if matches!(self.login, Login::Pasted { .. }) {
            return Err(Error::Auth(
                "123 refused the pasted access_token (401); paste a new one, or log in with \
                 refresh_token or renew_url so that tokens are renewed"
                    .to_string(),
            ));
        }
        self.fetch_token().await
    }

    /// `POST /api/v1/access_token`; the only call without a bearer token.
    async fn fetch_developer_token(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Token, Error> {
        let url = format!("{}{}", self.api_base, Endpoint::AccessToken.path());
        let body = serde_json::json!({ "clientID": client_id, "clientSecret": client_secret });
        // Only a rate limit is retried: any other refusal is final, a 5xx or a cut is the
        // request's to report.
        let mut retries = Retries::new(MAX_429_RETRIES, 0);
        loop {
            self.pace(Endpoint::AccessToken).await?;
            let request = self
                .upstream
                .http
                .post(&url)
                .header("Platform", "open_platform")
                .json(&body)
                .timeout(deadline::attempt(self.upstream.timeouts.first_byte)?);
            let outcome = send::<api::AccessToken>(request).await;
            let result = outcome_class(&outcome);
            self.upstream
                .metrics
                .upstream(Endpoint::AccessToken.path(), result);
            self.upstream.metrics.token_refresh(result == "ok");
            tracing::debug!(
                endpoint = Endpoint::AccessToken.path(),
                result,
                "123 API call"
            );
            match outcome? {
                Reply::Data(t) => {
                    let expires_at = chrono::DateTime::parse_from_rfc3339(&t.expired_at)
                        .map(|d| d.timestamp().max(0) as u64)
                        // Lenient: the documented lifetime is 30 days.
                        .unwrap_or_else(|_| unix(SystemTime::now()) + 30 * 24 * 3600);
                    tracing::info!(client_id = %client_id, expires_at, "obtained a 123 access token");
                    return Ok(Token {
                        access_token: t.access_token,
                        expires_at,
                    });
                }
                Reply::Code {
                    code: 429,
                    retry_after,
                    message,
                    ..
                } => {
                    let limited = Error::RateLimited { retry_after };
                    if retries
                        .wait(limited, Endpoint::AccessToken.path())
                        .await
                        .is_err()
                    {
                        return Err(credentials_refused(429, &message));
                    }
                }
                Reply::Code { code, message, .. } => {
                    return Err(credentials_refused(code, &message))
                }
            }
        }
    }
}

/// How a refused `access_token` call is reported.
fn credentials_refused(code: i64, message: &str) -> Error {
    Error::Auth(format!(
        "123 refused the client credentials (code {code}): {message}"
    ))
}

/// The error a call ends with once its retries are spent: a rate limit keeps a `Retry-After`
/// (2 s when 123 gave none) for the client.
fn gave_up(ep: Endpoint, error: Error) -> Error {
    match error {
        Error::RateLimited { retry_after } => {
            tracing::warn!(endpoint = ep.path(), "123 keeps answering 429; giving up");
            Error::RateLimited {
                retry_after: Some(retry_after.unwrap_or(Duration::from_secs(2))),
            }
        }
        error => error,
    }
}

/// The kind of key rotating refresh tokens are kept under in the cluster.
const REFRESH_KIND: &str = "refresh";

/// A rotating refresh in a cluster (run under the token lease, so one instance at a time):
/// start from the refresh token another instance may have rotated to, and hand the new one
/// back to the cluster before anyone uses the access token. Alone, just `refresh`.
async fn shared_refresh<F, Fut>(
    upstream: &crate::backend::Upstream,
    account: &str,
    store: &super::oauth::RefreshStore,
    refresh: F,
) -> Result<Token, Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Token, Error>>,
{
    let Some(cluster) = &upstream.cluster else {
        return refresh().await;
    };
    if let Ok(Some(shared)) = cluster
        .get_json::<super::oauth::SharedRefresh>(REFRESH_KIND, account)
        .await
    {
        store.adopt(shared);
    }
    let result = refresh().await;
    if result.is_ok() {
        if let Err(e) = cluster
            .put_json(REFRESH_KIND, account, &store.shared(), None)
            .await
        {
            tracing::error!(error = %e, "could not share the rotated 123 refresh token with the cluster; other instances need it for their next refresh");
        }
    }
    result
}

/// Runs `f` to completion whatever happens to the caller.
async fn detached<F>(f: F) -> Result<Token, Error>
where
    F: std::future::Future<Output = Result<Token, Error>> + Send + 'static,
{
    tokio::spawn(f).await.unwrap_or_else(|e| {
        Err(Error::Unavailable(format!(
            "token refresh task failed: {e}"
        )))
    })
}

enum Reply<T> {
    Data(T),
    Code {
        code: i64,
        message: String,
        trace_id: String,
        /// The answer's `Retry-After`, if it had one.
        retry_after: Option<Duration>,
    },
}

/// Sends one request and reads the answer strictly (docs/123.md, open §11, "the envelope"): only
/// HTTP 200 with a JSON envelope whose `code` is 0 is success. A non-zero `code` is read whatever
/// the status (so a gateway that mirrors codes into statuses is read like 123); codes 500–599 are
/// outages. Without a code (missing, or the body is not JSON, or it says 0 under another status):
/// HTTP 429 is rate limiting, a 5xx an outage, any other status or a missing code an error — never
/// success, so a move or trash that did not happen is never reported as done.
async fn send<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<Reply<T>, Error> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let retry_after = pacer::retry_after(response.headers());
    let body = response.bytes().await.map_err(transport)?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let has_code = json
        .as_ref()
        .and_then(|v| v.get("code"))
        .is_some_and(|c| !c.is_null());
    let envelope = match json.filter(|_| has_code) {
        Some(v) => Some(
            serde_json::from_value::<Envelope<serde_json::Value>>(v).map_err(|e| {
                Error::Upstream {
                    code: -1,
                    message: format!("HTTP {} with an unreadable envelope: {e}", status.as_u16()),
                    trace_id: String::new(),
                }
            })?,
        ),
        None => None,
    };
    match envelope {
        Some(e) if (500..=599).contains(&e.code) => Err(Error::Unavailable(format!(
            "123 answered HTTP {} code {}: {}",
            status.as_u16(),
            e.code,
            e.message
        ))),
        Some(e) if e.code != 0 => Ok(Reply::Code {
            code: e.code,
            message: e.message,
            trace_id: e.trace_id,
            retry_after,
        }),
        _ if status == reqwest::StatusCode::TOO_MANY_REQUESTS => Ok(Reply::Code {
            code: 429,
            message: "HTTP 429".into(),
            trace_id: String::new(),
            retry_after,
        }),
        _ if status.is_server_error() => Err(Error::Unavailable(format!(
            "123 answered HTTP {}",
            status.as_u16()
        ))),
        _ if status != reqwest::StatusCode::OK => Err(Error::Upstream {
            code: -1,
            message: format!(
                "HTTP {} is not a success, whatever the body says",
                status.as_u16()
            ),
            trace_id: String::new(),
        }),
        None => Err(Error::Upstream {
            code: -1,
            message: "HTTP 200 with an answer that has no code; not read as success".into(),
            trace_id: String::new(),
        }),
        Some(e) => serde_json::from_value(e.data.unwrap_or(serde_json::Value::Null))
            .map(Reply::Data)
            .map_err(|err| Error::Upstream {
                code: 0,
                message: format!("unexpected answer shape: {err}"),
                trace_id: e.trace_id,
            }),
    }
}

/// A short, bounded class of a call's outcome for metrics and debug logs.
fn outcome_class<T>(outcome: &Result<Reply<T>, Error>) -> &'static str {
    match outcome {
        Ok(Reply::Data(_)) => "ok",
        Ok(Reply::Code { code: 401, .. }) => "code_401",
        Ok(Reply::Code { code: 429, .. }) => "code_429",
        Ok(Reply::Code { .. }) => "error_code",
        Err(Error::Unavailable(_)) => "unavailable",
        Err(Error::Transport(_)) => "transport",
        Err(_) => "bad_answer",
    }
}

fn transport(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Unavailable("123 did not answer in time".into())
    } else {
        Error::Transport(e.without_url().to_string())
    }
}

/// Classifies a non-zero code that is not retried here. Messages are 123's own.
fn classify(code: i64, message: String, trace_id: String) -> Error {
    match code {
        // 文件不存在: file does not exist.
        5066 => Error::NotFound,
        // 本月免费流量不足 (monthly) or 您今日自用下载流量已超出1GB上限 (daily): the download
        // quota is used up; the message says until when.
        5113 | 5114 => Error::TrafficExceeded {
            resets_at: crate::traffic::quota::resets_at(&message, SystemTime::now()),
            message,
        },
        // Still 401 after a refresh, or 429 past our retries: handled by the caller's loop.
        401 => Error::Auth(message),
        429 => Error::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
        },
        // 该目录下已经有同名文件夹,无法进行创建: a folder of that name exists.
        1 if message.contains("同名") => Error::AlreadyExists,
        _ => Error::Upstream {
            code,
            message,
            trace_id,
        },
    }
}

/// Code of `upload_complete` while 123 verifies the file (seen by OpenList; docs/123.md, open §1).
const CODE_VERIFYING: i64 = 20103;

/// True when an `upload_complete` error means "still verifying, poll again":
/// 文件正在校验中,请间隔1秒后再试 (the file is being verified, try again in 1 s). Its code is
/// not published, so the message counts as much as 20103.
pub fn is_verifying(e: &Error) -> bool {
    matches!(e, Error::Upstream { code, message, .. }
        if *code == CODE_VERIFYING || message.contains("校验中"))
}

/// True when an `upload_complete` error is 文件上传失败 (upload failed): the joined slices do
/// not have the announced MD5. Sending the same bytes again cannot help.
pub fn is_upload_failed(e: &Error) -> bool {
    matches!(e, Error::Upstream { message, .. } if message.contains("上传失败"))
}

/// Names a client id's token file without putting the id itself in a file name.
pub(crate) fn token_file_key(api_base: &str, client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{api_base}\n{client_id}").as_bytes());
    crate::backend::auth_key::hex(&digest[..8])
}

/// One `OpenClient` per (API base, client id), so mounts sharing a credential share its token
/// and its QPS budget.
pub struct OpenClients {
    clients: Mutex<HashMap<(String, String), Arc<OpenClient>>>,
    qps_scale: f64,
}

impl Default for OpenClients {
    fn default() -> Self {
        Self::with_qps_scale(crate::config::DEFAULT_QPS_SCALE)
    }
}

impl OpenClients {
    pub fn new() -> Self {
        Self::default()
    }

    /// Clients pacing at `qps_scale` of 123's published limits (`server.qps_scale`).
    pub fn with_qps_scale(qps_scale: f64) -> Self {
        Self {
            clients: Mutex::default(),
            qps_scale,
        }
    }

    /// The shared client for developer keys, created on first use.
    pub fn get(
        &self,
        upstream: &crate::backend::Upstream,
        api_base: &str,
        client_id: &str,
        client_secret: &str,
        state_dir: Option<&Path>,
    ) -> Arc<OpenClient> {
        let login = Login::Developer {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
        };
        self.get_with(upstream, api_base, client_id, || login, state_dir)
    }

    /// The shared client for an Open mount's login (mounts with the same login share it).
    pub fn get_for(
        &self,
        upstream: &crate::backend::Upstream,
        open: &crate::config::OpenMountConfig,
        state_dir: Option<&Path>,
    ) -> Arc<OpenClient> {
        let identity = super::login::identity(open);
        self.get_with(
            upstream,
            &open.api_base,
            &identity,
            || Login::new(open, state_dir),
            state_dir,
        )
    }

    fn get_with(
        &self,
        upstream: &crate::backend::Upstream,
        api_base: &str,
        identity: &str,
        login: impl FnOnce() -> Login,
        state_dir: Option<&Path>,
    ) -> Arc<OpenClient> {
        let key = (
            api_base.trim_end_matches('/').to_string(),
            identity.to_string(),
        );
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(key)
            .or_insert_with(|| {
                Arc::new(OpenClient::new(
                    upstream,
                    api_base,
                    identity,
                    login(),
                    state_dir,
                    self.qps_scale,
                ))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        assert!(matches!(
            classify(5066, "文件不存在".into(), String::new()),
            Error::NotFound
        ));
        assert!(matches!(
            classify(5113, "流量".into(), String::new()),
            Error::TrafficExceeded { .. }
        ));
        assert!(matches!(
            classify(
                1,
                "该目录下已经有同名文件夹,无法进行创建".into(),
                String::new()
            ),
            Error::AlreadyExists
        ));
        assert!(matches!(
            classify(1, "other".into(), String::new()),
            Error::Upstream { code: 1, .. }
        ));
        assert!(matches!(
            classify(401, "expired".into(), String::new()),
            Error::Auth(_)
        ));
    }

    #[test]
    fn qps_table_matches_the_emulator() {
        for ep in Endpoint::ALL {
            assert_eq!(
                ep.qps(),
                pan123_emulator::default_qps(ep.path()).unwrap_or(0),
                "{}",
                ep.path()
            );
        }
    }

    #[test]
    fn complete_poll_answers() {
        let up = |code, message: &str| Error::Upstream {
            code,
            message: message.into(),
            trace_id: String::new(),
        };
        assert!(is_verifying(&up(20103, "文件正在校验中,请间隔1秒后再试")));
        assert!(is_verifying(&up(1, "文件正在校验中,请间隔1秒后再试")));
        assert!(!is_verifying(&up(1, "文件上传失败")));
        assert!(is_upload_failed(&up(1, "文件上传失败")));
        assert!(!is_upload_failed(&Error::NotFound));
    }

    #[test]
    fn qps_table_matches_the_spec() {
        assert_eq!(Endpoint::FileList.qps(), 5);
        assert_eq!(Endpoint::DownloadInfo.qps(), 5);
        assert_eq!(Endpoint::UserInfo.qps(), 10);
        assert_eq!(qps_for_path("/upload/v2/file/slice"), 0);
    }
}
