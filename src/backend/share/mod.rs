//! Share links (`backend = "share"`): a public 123 share, listed through the signed web API
//! and downloaded through the `params` hop (spec web §0, §2). Read-only by nature.
//!
//! Links need `Referer: <origin of the DownloadURL>/` at the CDN, so they are not portable:
//! `auto` proxies them (sending that Referer), and a forced `redirect` works only for clients
//! that happen to send it.

pub mod api;
pub mod client;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::header::REFERER;
use unicode_normalization::UnicodeNormalization;

use self::client::{Endpoint, ShareClient};
use crate::backend::{Backend, Capabilities, Entry, Error, Link, Quota};

/// Items per listing page: the most the web API hands out.
const PAGE_LIMIT: u32 = 100;
/// A folder of more pages than this is refused rather than walked forever (a million items,
/// about two hours of paced listing).
const MAX_PAGES: u32 = 10_000;

/// One share mount.
pub struct ShareBackend {
    client: ShareClient,
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
            client: ShareClient::new(
                upstream,
                &params.api_base,
                params.access_token,
                &params.user_agent,
            ),
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
        link_from_download_url(&self.client, &info.download_url).await
    }

    async fn quota(&self) -> Result<Quota, Error> {
        Err(Error::Unsupported)
    }

    /// Opens the share's root once, so a wrong key or password shows in the log at start-up.
    async fn probe(&self) -> Result<(), Error> {
        self.page(self.root_id, 1).await.map(|_| ())
    }
}

pub(crate) fn entry_from_item(item: api::FileItem) -> Entry {
    let is_dir = item.kind == 1;
    let md5 = item
        .etag
        .filter(|e| !is_dir && e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|e| e.to_ascii_lowercase());
    let modified = item
        .update_at
        .as_deref()
        .map_or(SystemTime::UNIX_EPOCH, parse_rfc3339);
    let created = item.create_at.as_deref().map_or(modified, parse_rfc3339);
    Entry {
        id: item.file_id.max(0) as u64,
        name: item.file_name.nfc().collect(),
        is_dir,
        size: if is_dir { 0 } else { item.size.max(0) as u64 },
        md5,
        version: None,
        modified,
        created,
    }
}

/// Parses `UpdateAt` (RFC 3339). Unparsable values become the Unix epoch rather than "now", so
/// they never look fresh.
fn parse_rfc3339(s: &str) -> SystemTime {
    match chrono::DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) if t.timestamp() > 0 => {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64)
        }
        _ => SystemTime::UNIX_EPOCH,
    }
}

/// The link behind a web-API `DownloadUrl` (share and personal alike): the `params` hop
/// resolved, and the Referer the CDN checks attached.
pub(crate) async fn link_from_download_url(
    hop: &ShareClient,
    download_url: &str,
) -> Result<Link, Error> {
    if download_url.is_empty() {
        return Err(Error::Upstream {
            code: 0,
            message: "123 returned an empty download URL".into(),
            trace_id: String::new(),
        });
    }
    let (url, referer) = hop.resolve(download_url).await?;
    let mut headers = http::HeaderMap::new();
    headers.insert(REFERER, referer);
    Ok(Link {
        url,
        headers,
        // The CDN URL's lifetime is not documented: the vfs caches it for its default.
        expires_at: None,
        portable: false,
    })
}

/// One listing page of the web API: its items, its `Next` and, where sent, its `Total`.
pub(crate) type WebPage = (Vec<api::FileItem>, String, Option<i64>);

/// Walks a web-API folder listing (share and personal alike): `Page` 1, 2, … until an empty
/// page or `Next == "-1"`, remembering each file's `S3KeyFlag` (download links need it). Any
/// failed page is an error, never a short list.
pub(crate) async fn list_pages<F, Fut>(
    dir_id: u64,
    key_flags: &Mutex<HashMap<u64, String>>,
    mut fetch: F,
) -> Result<Vec<Entry>, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<WebPage, Error>>,
{
    let mut entries = Vec::new();
    for page_no in 1..=MAX_PAGES {
        let (items, next, total) = fetch(page_no).await?;
        let last = items.is_empty() || next == "-1";
        {
            let mut flags = key_flags.lock().unwrap_or_else(|p| p.into_inner());
            for item in &items {
                if let Some(flag) = item.s3_key_flag.as_ref().filter(|f| !f.is_empty()) {
                    flags.insert(item.file_id.max(0) as u64, flag.clone());
                }
            }
        }
        entries.extend(items.into_iter().map(entry_from_item));
        if last {
            if let Some(total) = total.filter(|t| *t as usize != entries.len()) {
                tracing::warn!(
                    folder = dir_id,
                    listed = entries.len(),
                    total,
                    "123 listed a different number of entries than its Total"
                );
            }
            return Ok(entries);
        }
    }
    Err(Error::Upstream {
        code: -1,
        message: format!("the folder has more than {MAX_PAGES} pages; refusing to list it"),
        trace_id: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_entries() {
        let item: api::FileItem = serde_json::from_str(
            r#"{"FileId":5,"FileName":"cafe\u0301.txt","Type":0,"Size":10,
                "Etag":"0CC175B9C0F1B6A831C399E269772661","UpdateAt":"2024-01-02T15:04:05+08:00"}"#,
        )
        .expect("item");
        let e = entry_from_item(item);
        assert_eq!(e.name, "caf\u{e9}.txt");
        assert_eq!(e.md5.as_deref(), Some("0cc175b9c0f1b6a831c399e269772661"));
        assert_eq!(
            e.modified,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_179_045)
        );
        assert_eq!(e.created, e.modified);
        let dir: api::FileItem = serde_json::from_str(
            r#"{"FileId":6,"FileName":"d","Type":1,"Size":99,"Etag":"","UpdateAt":"garbage"}"#,
        )
        .expect("item");
        let d = entry_from_item(dir);
        assert!(d.is_dir && d.size == 0 && d.md5.is_none());
        assert_eq!(d.modified, SystemTime::UNIX_EPOCH);
    }
}
