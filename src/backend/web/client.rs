//! The one way every personal-account web API call is made: the session token, the signature
//! (`web_sign`, shared with share mounts), the headers of spec web §1.2, pacing of listing pages
//! on the process-wide web limiter (`pacer::web_api`, shared with share mounts), one re-login
//! and one retry on code 401, and bounded retries of 429 / 5xx / transport failures, all within
//! the client request's deadline (`backend::deadline`). The envelope is opened by the share
//! client's `send`, so both read 123's answers alike. The `User-Agent` is the shared HTTP
//! client's, `server.user_agent` (spec web §7: our own name, never another project's).

use serde::de::DeserializeOwned;

use super::session::Session;
use crate::backend::pacer::{self, backoff, MAX_RETRY_WAIT, WEB_LIST_INTERVAL};
use crate::backend::share::client::send;
use crate::backend::{deadline, web_sign, Error};

const MAX_429_RETRIES: u32 = 4;
const MAX_TRANSIENT_RETRIES: u32 = 2;

/// The personal endpoints a web mount calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    UserInfo,
    FileList,
    DownloadInfo,
    /// Makes a folder (`type: 1`) or opens a file upload (`type: 0`).
    UploadRequest,
    /// The presigned URL of a single-part upload.
    UploadObjectAuth,
    /// Presigned URLs of a batch of parts (sic: "repare").
    UploadPartsBatch,
    UploadCompleteV2,
    /// The end of the static-credential upload flow (spec web §1.4 step 5).
    UploadComplete,
    /// Move.
    ModPid,
    Rename,
    Trash,
}

impl Endpoint {
    /// The URL path, which is also what is signed.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::UserInfo => "/b/api/user/info",
            Endpoint::FileList => "/b/api/file/list/new",
            Endpoint::DownloadInfo => "/b/api/file/download_info",
            Endpoint::UploadRequest => "/b/api/file/upload_request",
            Endpoint::UploadObjectAuth => "/b/api/file/s3_upload_object/auth",
            Endpoint::UploadPartsBatch => "/b/api/file/s3_repare_upload_parts_batch",
            Endpoint::UploadCompleteV2 => "/b/api/file/upload_complete/v2",
            Endpoint::UploadComplete => "/b/api/file/upload_complete",
            Endpoint::ModPid => "/b/api/file/mod_pid",
            Endpoint::Rename => "/b/api/file/rename",
            Endpoint::Trash => "/b/api/file/trash",
        }
    }
}

pub struct WebClient {
    http: reqwest::Client,
    metrics: crate::metrics::Metrics,
    first_byte: std::time::Duration,
    api_base: String,
    origin: String,
    pub session: Session,
}

impl WebClient {
    pub fn new(upstream: &crate::backend::Upstream, api_base: &str, session: Session) -> Self {
        let api_base = api_base.trim_end_matches('/').to_string();
        Self {
            http: upstream.http.clone(),
            metrics: upstream.metrics.clone(),
            first_byte: upstream.timeouts.first_byte,
            origin: origin_of(&api_base),
            api_base,
            session,
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.call(ep, MAX_TRANSIENT_RETRIES, |http, url| {
            http.get(url).query(query)
        })
        .await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
    ) -> Result<T, Error> {
        self.call(ep, MAX_TRANSIENT_RETRIES, |http, url| {
            http.post(url).json(body)
        })
        .await
    }

    /// A POST that is not resent after a 5xx or a cut, because it may have acted before its
    /// answer was lost (making a folder, opening an upload): the caller re-checks first
    /// (`unsure::send_unsure`). A 401 or a 429 is still retried: 123 did not act on those.
    pub async fn post_unsure<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
    ) -> Result<T, Error> {
        self.call(ep, 0, |http, url| http.post(url).json(body))
            .await
    }

    async fn call<T, B>(&self, ep: Endpoint, transient_retries: u32, build: B) -> Result<T, Error>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    {
        let mut relogged = false;
        let mut rate_limited = 0u32;
        let mut transient = 0u32;
        let url = format!("{}{}", self.api_base, ep.path());
        // Bounded: every turn either returns or uses up one of the counted retries.
        loop {
            let (generation, token) = deadline::bound(self.session.token()).await?;
            if ep == Endpoint::FileList {
                deadline::wait(pacer::web_api().space(&self.api_base, WEB_LIST_INTERVAL)).await?;
            }
            // A fresh signature per attempt: it carries the time.
            let (sign_key, sign_value) = web_sign::sign(ep.path());
            let request = build(&self.http, &url)
                .query(&[(sign_key.as_str(), sign_value.as_str())])
                .header("origin", self.origin.as_str())
                .header("referer", format!("{}/", self.origin))
                .header("platform", "web")
                .header("app-version", "3")
                .bearer_auth(token)
                .timeout(deadline::attempt(self.first_byte)?);
            let outcome = send(request).await;
            let result = crate::backend::share::client::outcome_class(&outcome);
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
            match error {
                // The token is invalid or expired: log in again (once, whoever asks first)
                // and retry once, as the web client does (spec web §1.3).
                Error::Upstream { code: 401, .. } if !relogged => {
                    relogged = true;
                    deadline::bound(self.session.relogin(generation)).await?;
                }
                Error::Upstream {
                    code: 401, message, ..
                } => return Err(Error::Auth(message)),
                // Rate limiting in any of its shapes (`share::client::send`); the server's
                // Retry-After is a floor, and one longer than a retry may wait ends the loop.
                Error::RateLimited { retry_after }
                    if rate_limited < MAX_429_RETRIES
                        && retry_after.is_none_or(|r| r <= MAX_RETRY_WAIT) =>
                {
                    let delay = backoff(rate_limited + 1, retry_after);
                    if !deadline::allows(delay) {
                        return Err(Error::RateLimited { retry_after });
                    }
                    rate_limited += 1;
                    tokio::time::sleep(delay).await;
                }
                Error::Unavailable(_) | Error::Transport(_) if transient < transient_retries => {
                    let delay = backoff(transient + 1, None);
                    if !deadline::allows(delay) {
                        return Err(error);
                    }
                    transient += 1;
                    tracing::info!(endpoint = ep.path(), attempt = transient, error = %error, "retrying a failed 123 web call");
                    tokio::time::sleep(delay).await;
                }
                e => return Err(e),
            }
        }
    }
}

/// `<scheme>://<host[:port]>` of a base URL.
pub fn origin_of(base: &str) -> String {
    url::Url::parse(base)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| base.trim_end_matches('/').to_string())
}
