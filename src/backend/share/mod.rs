//! Share links (`backend = "share"`): a public 123 share, listed through the signed web API
//! and downloaded through the `params` hop (docs/123.md, web §0, §2). Read-only by nature.
//!
//! Links need `Referer: <origin of the DownloadURL>/` at the CDN, so they are not portable:
//! `auto` proxies them (sending that Referer), and a forced `redirect` works only for clients
//! that happen to send it.

pub mod api;
pub mod client;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use self::client::{Endpoint, ShareClient};
use crate::backend::webapi::hop::Hop;
use crate::backend::webapi::listing::list_pages;
use crate::backend::{Backend, Capabilities, Entry, Error, Link, Quota};

/// Items per listing page: the most the web API hands out.
const PAGE_LIMIT: u32 = 100;
/// One share mount.
pub struct ShareBackend {
    client: ShareClient,
    hop: Hop,
    share_key: String,
    share_password: String,
    root_id: u64,
    /// `S3KeyFlag` of every file listed so far, which `download/info` wants back.
    key_flags: Mutex<HashMap<u64, String>>,
}

/// What a share mount needs from its config.
pub struct ShareParams {
    pub api_base: String,
    pub share_key: String,
    pub share_password: Option<String>,
    pub access_token: Option<String>,
    pub root_id: u64,
    /// `server.user_agent`, for the download hop's own client.
    pub user_agent: String,
}

impl ShareBackend {
    pub fn new(upstream: &crate::backend::Upstream, params: ShareParams) -> Self {
        Self {
            client: ShareClient::new(upstream, &params.api_base, params.access_token),
            hop: Hop::new(upstream, &params.api_base, &params.user_agent),
            share_key: params.share_key,
            share_password: params.share_password.unwrap_or_default(),
            root_id: params.root_id,
            key_flags: Mutex::new(HashMap::new()),
        }
    }

    /// One page of `parent`'s children.
    async fn page(&self, parent: u64, page: u32) -> Result<api::SharePage, Error> {
        self.client
            .get(
                Endpoint::ShareGet,
                &[
                    ("limit", PAGE_LIMIT.to_string()),
                    ("next", "0".to_string()),
                    ("orderBy", "file_id".to_string()),
                    ("orderDirection", "desc".to_string()),
                    ("parentFileId", parent.to_string()),
                    ("Page", page.to_string()),
                    ("shareKey", self.share_key.clone()),
                    // Sent even when empty, as the web client does.
                    ("SharePwd", self.share_password.clone()),
                ],
            )
            .await
    }
}

#[async_trait]
impl Backend for ShareBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            portable_links: false,
            links_need_headers: true,
            ..Capabilities::default()
        }
    }

    fn root_id(&self) -> u64 {
        self.root_id
    }

    async fn list(&self, dir_id: u64) -> Result<Vec<Entry>, Error> {
        list_pages(dir_id, &self.key_flags, |page_no| async move {
            let page = self.page(dir_id, page_no).await?;
            Ok((page.info_list.unwrap_or_default(), page.next, None))
        })
        .await
    }

    async fn link(&self, file: &Entry) -> Result<Link, Error> {
        let key_flag = self
            .key_flags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&file.id)
            .cloned()
            .unwrap_or_default();
        let body = serde_json::json!({
            "shareKey": self.share_key,
            "SharePwd": self.share_password,
            "etag": file.md5.clone().unwrap_or_default(),
            "fileId": file.id,
            "s3keyFlag": key_flag,
            "size": file.size,
        });
        let info: api::DownloadInfo = self.client.post(Endpoint::DownloadInfo, &body).await?;
        self.hop.link(&info.download_url).await
    }

    async fn quota(&self) -> Result<Quota, Error> {
        Err(Error::Unsupported)
    }

    /// Opens the share's root once, so a wrong key or password shows in the log at start-up.
    async fn probe(&self) -> Result<(), Error> {
        self.page(self.root_id, 1).await.map(|_| ())
    }
}
