//! How a personal-account mount calls the web API: its endpoints and its session over the one
//! web-API layer (`backend::webapi`: signature, headers of docs/123.md, web §1.2, pacing of listing
//! pages, the envelope, metrics), one re-login and one retry on code 401, and bounded retries
//! of 429 / 5xx / transport failures (`backend::retry`), all within the client request's
//! deadline (`backend::deadline`). The `User-Agent` is the shared HTTP client's,
//! `server.user_agent` (docs/123.md, web §7: our own name, never another project's).

use serde::de::DeserializeOwned;

use super::session::Session;
use crate::backend::webapi::{Retries, WebApi, MAX_429_RETRIES, MAX_TRANSIENT_RETRIES};
use crate::backend::{deadline, Error, Upstream};

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
    /// The end of the static-credential upload flow (docs/123.md, web §1.4 step 5).
    UploadComplete,
    /// Move.
    ModPid,
    Rename,
    Trash,
    /// The recycle bin's "delete for good".
    Delete,
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
            Endpoint::Delete => "/b/api/file/delete",
        }
    }
}

/// One account's connection to the web API.
pub struct WebClient {
    api: WebApi,
    pub session: Session,
}

impl WebClient {
    pub fn new(upstream: &Upstream, api_base: &str, session: Session) -> Self {
        Self {
            api: WebApi::new(upstream, api_base),
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
        let mut retries = Retries::new(MAX_429_RETRIES, transient_retries);
        // Bounded: every turn either returns or uses up one of the counted retries.
        loop {
            let (generation, token) = deadline::bound(self.session.token()).await?;
            let paced = ep == Endpoint::FileList;
            let error = match self
                .api
                .attempt(ep.path(), paced, Some(&token), &build)
                .await
            {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            match error {
                // The token is invalid or expired: log in again (once, whoever asks first)
                // and retry once, as the web client does (docs/123.md, web §1.3).
                Error::Upstream { code: 401, .. } if !relogged => {
                    relogged = true;
                    deadline::bound(self.session.relogin(generation)).await?;
                }
                Error::Upstream {
                    code: 401, message, ..
                } => return Err(Error::Auth(message)),
                // Rate limiting in any of its shapes, 5xx and cuts: the one retry decision of
                // the web API.
                error => retries.wait(error, ep.path()).await?,
            }
        }
    }
}
