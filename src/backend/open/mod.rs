//! The 123 Open API backend (client id + secret): listing, links, quota, and writes
//! (`write.rs`).

pub mod api;
pub mod client;
pub mod login;
pub mod oauth;
pub mod renew;
pub mod token;
mod verifying;
mod write;

pub use write::MAX_UPLOAD_SIZE;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use unicode_normalization::UnicodeNormalization;

use self::client::{Endpoint, OpenClient};
use crate::backend::signer::{Accepts, DirectSigner};
use crate::backend::{
    auth_key, Backend, Capabilities, Entry, Error, Link, Quota, UploadOptions, UploadSource,
};

/// Page size of `/api/v2/file/list`: the maximum 123 allows.
const PAGE_LIMIT: u32 = 100;

/// How an Open mount hands out file links.
#[derive(Clone, Debug)]
pub enum LinkMode {
    /// `download_info`: a CDN URL bound to the requester's location.
    DownloadInfo,
    /// `direct-link/url`: a stable URL in the account's direct-link space, signed when the
    /// mount has a key.
    Direct { signer: Option<Arc<DirectSigner>> },
}

/// Folders `check --probe` lists at most while looking for a name whose `auth_key` path forms
/// differ, and direct links it asks for.
const PROBE_FOLDERS: usize = 20;
const PROBE_LINKS: usize = 5;

/// One Open mount: a client (shared per client id), a root folder and a link mode.
pub struct OpenBackend {
    client: Arc<OpenClient>,
    root_id: u64,
    links: LinkMode,
}

impl OpenBackend {
    pub fn new(client: Arc<OpenClient>, root_id: u64, links: LinkMode) -> Self {
        Self {
            client,
            root_id,
            links,
        }
    }

    /// The shared client, for health reports.
    pub fn client(&self) -> &Arc<OpenClient> {
        &self.client
    }
}

#[async_trait]
impl Backend for OpenBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            portable_links: matches!(self.links, LinkMode::Direct { .. }),
            writable: true,
            ..Capabilities::default()
        }
    }

    fn token_state(&self) -> Option<crate::backend::TokenState> {
        Some(self.client.token_state())
    }

    fn root_id(&self) -> u64 {
        self.root_id
    }

    async fn list(&self, dir_id: u64) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        let mut last_file_id: i64 = 0;
        loop {
            let page: api::FileListPage = self
                .client
                .get(
                    Endpoint::FileList,
                    &[
                        ("parentFileId", dir_id.to_string()),
                        ("limit", PAGE_LIMIT.to_string()),
                        ("lastFileId", last_file_id.to_string()),
                    ],
                )
                .await?;
            entries.extend(
                page.file_list
                    .into_iter()
                    .filter(|f| f.trashed == 0)
                    .map(entry_from_item),
            );
            if page.last_file_id == -1 {
                break;
            }
            // A cursor that does not move would loop forever: treat it as the end, loudly.
            if page.last_file_id <= last_file_id {
                tracing::warn!(
                    dir_id,
                    cursor = page.last_file_id,
                    "123 returned a cursor that does not advance; stopping"
                );
                break;
            }
            last_file_id = page.last_file_id;
        }
        Ok(entries)
    }

    async fn link(&self, file: &Entry) -> Result<Link, Error> {
        match &self.links {
            LinkMode::DownloadInfo => {
                let query = [("fileId", file.id.to_string())];
                let info: api::DownloadInfo =
                    verifying::while_verifying(|| self.client.get(Endpoint::DownloadInfo, &query))
                        .await?;
                Ok(Link::new(info.download_url, None, false))
            }
            LinkMode::Direct { signer } => {
                let direct = self.direct_url(file.id).await?;
                let Some(signer) = signer else {
                    // Unsigned direct links do not expire.
                    return Ok(Link::new(direct, None, true));
                };
                let uid = self.client.uid().await?;
                let (url, expires_at) =
                    signer
                        .sign(&direct, uid)
                        .await
                        .ok_or_else(|| Error::Upstream {
                            code: 0,
                            message: "123 returned an unparsable direct link".into(),
                            trace_id: String::new(),
                        })?;
                Ok(Link::new(url, Some(expires_at), true))
            }
        }
    }

    /// Looks for a file whose direct link's two path forms differ, breadth first from the
    /// root, within `PROBE_FOLDERS` listings and `PROBE_LINKS` direct links.
    async fn probe_auth_key_path(&self) -> Option<Result<(String, Accepts), Error>> {
        let LinkMode::Direct {
            signer: Some(signer),
        } = &self.links
        else {
            return None;
        };
        let mut folders = std::collections::VecDeque::from([(self.root_id, String::new())]);
        let (mut listed, mut asked) = (0, 0);
        while let Some((folder, path)) = folders.pop_front() {
            if listed == PROBE_FOLDERS || asked == PROBE_LINKS {
                break;
            }
            listed += 1;
            let entries = match self.list(folder).await {
                Ok(entries) => entries,
                Err(e) => return Some(Err(e)),
            };
            for entry in entries {
                let name = format!("{path}/{}", entry.name);
                if entry.is_dir {
                    folders.push_back((entry.id, name));
                    continue;
                }
                if !needs_escape(&entry.name) || asked == PROBE_LINKS {
                    continue;
                }
                asked += 1;
                let url = match self.direct_url(entry.id).await {
                    Ok(url) => url,
                    Err(e) => return Some(Err(e)),
                };
                if auth_key::forms_differ(&url) {
                    let uid = match self.client.uid().await {
                        Ok(uid) => uid,
                        Err(e) => return Some(Err(e)),
                    };
                    return Some(Ok((name, signer.probe(&url, uid).await)));
                }
            }
        }
        None
    }

    async fn quota(&self) -> Result<Quota, Error> {
        let info: api::UserInfo = self.client.get(Endpoint::UserInfo, &[]).await?;
        let total = (info.space_permanent.max(0) + info.space_temp.max(0)) as u64;
        Ok(Quota {
            used: info.space_used.max(0) as u64,
            total: Some(total),
        })
    }

    async fn mkdir(&self, parent: u64, name: &str) -> Result<Entry, Error> {
        self.write_mkdir(parent, name).await
    }

    async fn rename(&self, id: u64, name: &str) -> Result<(), Error> {
        self.write_rename(id, name).await
    }

    async fn move_to(&self, ids: &[u64], parent: u64) -> Result<(), Error> {
        self.write_move(ids, parent).await
    }

    async fn trash(&self, ids: &[u64]) -> Result<(), Error> {
        self.write_trash(ids).await
    }

    async fn delete_trashed(&self, ids: &[u64]) -> Result<(), Error> {
        self.write_delete_trashed(ids).await
    }

    async fn copy_instant(
        &self,
        parent: u64,
        name: &str,
        md5: &str,
        size: u64,
    ) -> Result<Option<Entry>, Error> {
        self.write_copy_instant(parent, name, md5, size).await
    }

    async fn upload(
        &self,
        parent: u64,
        name: &str,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<Entry, Error> {
        self.write_upload(parent, name, src, opts).await
    }
}

impl OpenBackend {
    /// The unsigned direct link of file `id` (`direct-link/url`).
    async fn direct_url(&self, id: u64) -> Result<String, Error> {
        let query = [("fileID", id.to_string())];
        // A file just uploaded may still be verifying (20103): retried, then 503.
        let direct: api::DirectLinkUrl =
            verifying::while_verifying(|| self.client.get(Endpoint::DirectLinkUrl, &query)).await?;
        Ok(direct.url)
    }
}

/// Whether a name is percent-escaped in a URL path (anything but unreserved characters), so
/// that its `auth_key` path forms may differ.
fn needs_escape(name: &str) -> bool {
    !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn entry_from_item(item: api::FileItem) -> Entry {
    let is_dir = item.kind == 1;
    let md5 = if is_dir || item.etag.is_empty() {
        None
    } else {
        Some(item.etag.to_ascii_lowercase())
    };
    let modified = parse_china_time(&item.update_at);
    let created = if item.create_at.is_empty() {
        modified
    } else {
        parse_china_time(&item.create_at)
    };
    Entry {
        id: item.file_id.max(0) as u64,
        name: item.filename.nfc().collect(),
        is_dir,
        size: if is_dir { 0 } else { item.size.max(0) as u64 },
        md5,
        version: None,
        modified,
        created,
    }
}

/// Parses 123's `"YYYY-MM-DD HH:MM:SS"` in China time (UTC+8), whatever the host's zone.
/// Unparsable values become the Unix epoch rather than "now", so they never look fresh.
pub fn parse_china_time(s: &str) -> SystemTime {
    let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S") else {
        return SystemTime::UNIX_EPOCH;
    };
    let secs = naive.and_utc().timestamp() - 8 * 3600;
    if secs <= 0 {
        SystemTime::UNIX_EPOCH
    } else {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_time_is_utc_plus_8() {
        let t = parse_china_time("2025-03-23 15:48:37");
        // 2025-03-23T07:48:37Z
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_742_716_117)
        );
        assert_eq!(parse_china_time("garbage"), SystemTime::UNIX_EPOCH);
    }
}
