//! How a share mount calls the web API: its endpoints and its optional access token over the
//! one web-API layer (`backend::webapi`: signature, pacing, envelope, metrics), with bounded
//! retries of 429 / 5xx / transport failures (both endpoints are reads; `backend::retry`
//! decides), all within the client request's deadline (`backend::deadline`).

use serde::de::DeserializeOwned;

use crate::backend::webapi::{Retries, WebApi, MAX_429_RETRIES, MAX_TRANSIENT_RETRIES};
use crate::backend::{Error, Upstream};

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
    api: WebApi,
    access_token: Option<String>,
}

impl ShareClient {
    pub fn new(upstream: &Upstream, api_base: &str, access_token: Option<String>) -> Self {
        Self {
            api: WebApi::new(upstream, api_base),
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
        let mut retries = Retries::new(MAX_429_RETRIES, MAX_TRANSIENT_RETRIES);
        // Bounded: every turn returns or uses up one of the counted retries.
        loop {
            let paced = ep == Endpoint::ShareGet;
            let token = self.access_token.as_deref();
            let error = match self.api.attempt(ep.path(), paced, token, &build).await {
                Ok(data) => return Ok(data),
                Err(e) => e,
            };
            retries.wait(error, ep.path()).await?;
        }
    }
}
