//! Personal accounts through 123's web API (`backend = "web"`): a phone number (or e-mail) and
//! password instead of Open Platform keys (docs/123.md, web §1). Unofficial: 123 applies anti-leech
//! and risk controls to it, and the Open API mount is preferred when the user has keys.
//!
//! Listing is `file/list/new` by `Page` until `Next == "-1"`, trashed items hidden, paced with
//! share mounts on the one web limiter; downloads are `download_info`, then the `params` hop of
//! share links (`webapi::hop`, one implementation), and the CDN wants
//! `Referer: <origin of the DownloadUrl>/`, so links are not portable and `auto` proxies.
//!
//! Writable (`write`): folders and uploads through `upload_request` and the presigned-part
//! flow, moves, renames and trash, behind the same trait as Open mounts, so spooling, the
//! upload queue, safe overwrite, names and cache invalidation apply unchanged.

pub mod api;
pub mod client;
mod s3_static;
mod seen;
pub mod session;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use self::client::{Endpoint, WebClient};
use self::session::Session;
use crate::backend::webapi::hop::Hop;
use crate::backend::webapi::origin_of;
use crate::backend::{
    Backend, Capabilities, Entry, Error, Link, Quota, UploadOptions, UploadSource,
};
use crate::config::Secret;

/// How long a folder's listing is trusted to tell whether an upload's name is taken.
const SEEN_NAMES_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);
/// Items per listing page: the most the web API hands out.
const PAGE_LIMIT: u32 = 100;

/// What a web mount needs from its config.
pub struct WebParams {
    pub api_base: String,
    pub login_base: String,
    pub username: String,
    pub password: Secret,
    /// A pasted browser token used instead of logging in (`token`).
    pub pasted_token: Option<Secret>,
    pub root_id: u64,
    /// Where the session token is kept across restarts (created 0600).
    pub token_file: Option<PathBuf>,
    /// The gateway's clock (times the login back-off).
    pub clock: crate::clock::Clock,
    /// `server.user_agent`, for the download hop's own client.
    pub user_agent: String,
}

/// One personal-account mount.
pub struct WebBackend {
    client: WebClient,
    /// For the presigned part uploads, which carry no session.
    http: reqwest::Client,
    /// The download hop, as share mounts resolve theirs.
    hop: Hop,
    root_id: u64,
    /// `S3KeyFlag` of every file listed so far, which `download_info` wants back.
    key_flags: Mutex<HashMap<u64, String>>,
    /// What `trash` sends back of each entry listed (or made) so far: the web client sends
    /// the whole listed object (docs/123.md, web §1.4).
    listed: Mutex<HashMap<u64, Listed>>,
    /// The folder of every entry listed, made or moved so far, so that one whose listed object is
    /// not known (just uploaded, renamed) can have its folder listed first (docs/123.md, web §7).
    parents: Mutex<HashMap<u64, u64>>,
    /// Names of recently listed folders, so most uploads need no listing to refuse a taken name.
    seen: seen::SeenNames,
}

/// The listed fields of one entry, as the trash call wants them back.
struct Listed {
    name: String,
    kind: i64,
    size: i64,
    etag: String,
    update_at: String,
    /// `S3KeyFlag` as listed; `None` for an entry this gateway made and has not listed since.
    key_flag: Option<String>,
}

impl WebBackend {
    pub fn new(upstream: &crate::backend::Upstream, params: WebParams) -> Self {
        let http = upstream.http.clone();
        let origin = origin_of(&params.api_base);
        let session = Session::new(
            http.clone(),
            &params.login_base,
            origin,
            params.username,
            match params.pasted_token {
                Some(token) => session::Credential::Token(token),
                None => session::Credential::Password(params.password),
            },
            params.token_file,
            params.clock,
        );
        let session = match &upstream.cluster {
            Some(cluster) => session.shared(cluster.clone()),
            None => session,
        };
        Self {
            client: WebClient::new(upstream, &params.api_base, session),
            hop: Hop::new(upstream, &params.api_base, &params.user_agent),
            http,
            root_id: params.root_id,
            key_flags: Mutex::new(HashMap::new()),
            listed: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
            seen: seen::SeenNames::new(SEEN_NAMES_FRESH_FOR),
        }
    }

    fn listed(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Listed>> {
        self.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn parents(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.parents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the object 123 listed for `id` is known: a folder's fields are all this gateway
    /// sends, a file also needs its `S3KeyFlag`.
    fn knows(&self, id: u64) -> bool {
        self.listed()
            .get(&id)
            .is_some_and(|l| l.kind == 1 || l.key_flag.is_some())
    }

    /// docs/123.md, web §7: `download_info` and `trash` send the object as 123 listed it (`etag`,
    /// `s3keyFlag`, the whole item), never empty fields. For entries this process has not
    /// listed (just uploaded, renamed) the folder is listed first; one whose folder is unknown
    /// too is sent as known, and 123 answers for it.
    async fn ensure_listed(&self, ids: &[u64]) -> Result<(), Error> {
        let folders: std::collections::BTreeSet<u64> = ids
            .iter()
            .filter(|id| !self.knows(**id))
            .filter_map(|id| self.parents().get(id).copied())
            .collect();
        for folder in folders {
            tracing::debug!(
                folder,
                "listing a folder first: a file in it was not listed by this process"
            );
            self.list(folder).await?;
        }
        if let Some(unknown) = ids.iter().find(|id| !self.knows(**id)) {
            tracing::warn!(
                id = unknown,
                "sending a file object this gateway has not listed (its folder is unknown)"
            );
        }
        Ok(())
    }

    /// Keeps what `trash` will need of an entry this gateway just made.
    fn remember(&self, entry: &Entry) {
        // A listing that already came back with this id (a race with the upload's end) is
        // 123's own object: keep it.
        if self
            .listed()
            .get(&entry.id)
            .is_some_and(|l| l.key_flag.is_some())
        {
            return;
        }
        let update_at = chrono::DateTime::<chrono::Utc>::from(entry.modified)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        self.listed().insert(
            entry.id,
            Listed {
                name: entry.name.clone(),
                kind: i64::from(entry.is_dir),
                size: entry.size as i64,
                etag: entry.md5.clone().unwrap_or_default(),
                update_at,
                key_flag: None,
            },
        );
    }

    /// Notes an entry this gateway made in `parent` (for trash, and for the next upload's
    /// "is the name taken" check).
    fn made(&self, parent: u64, entry: &Entry) {
        self.remember(entry);
        self.parents().insert(entry.id, parent);
        self.seen.added(parent, &entry.name);
    }

    fn forget(&self, ids: &[u64]) {
        let mut listed = self.listed();
        for id in ids {
            listed.remove(id);
        }
    }

    /// Entries moved into `parent`.
    fn moved(&self, ids: &[u64], parent: u64) {
        let mut parents = self.parents();
        for id in ids {
            parents.insert(*id, parent);
        }
    }

    /// The file object `trash` sends for `id`: as listed when known, else just the id (which
    /// is what identifies it; whether 123 needs more is not confirmed).
    fn trash_object(&self, id: u64) -> serde_json::Value {
        match self.listed().get(&id) {
            Some(l) => serde_json::json!({
                "FileId": id,
                "FileName": l.name,
                "Type": l.kind,
                "Size": l.size,
                "Etag": l.etag,
                "S3KeyFlag": l.key_flag.clone().unwrap_or_default(),
                "UpdateAt": l.update_at,
                "DownloadUrl": "",
            }),
            None => serde_json::json!({ "FileId": id }),
        }
    }

    /// One page of `parent`'s children (docs/123.md, web §1.4, every parameter as the web client
    /// sends).
    async fn page(&self, parent: u64, page: u32) -> Result<api::ListPage, Error> {
        self.client
            .get(
                Endpoint::FileList,
                &[
                    ("driveId", "0".to_string()),
                    ("limit", PAGE_LIMIT.to_string()),
                    ("next", "0".to_string()),
                    ("orderBy", "file_id".to_string()),
                    ("orderDirection", "desc".to_string()),
                    ("parentFileId", parent.to_string()),
                    ("trashed", "false".to_string()),
                    ("SearchData", String::new()),
                    ("Page", page.to_string()),
                    ("OnlyLookAbnormalFile", "0".to_string()),
                    ("event", "homeListFile".to_string()),
                    ("operateType", "4".to_string()),
                    ("inDirectSpace", "false".to_string()),
                ],
            )
            .await
    }
}

/// The token file of an account in `state_dir`: named by a hash of the login name, so the name
/// (a phone number) is not written in the file name.
pub fn token_file(state_dir: &std::path::Path, username: &str) -> PathBuf {
    use md5::{Digest, Md5};
    let digest = Md5::digest(username.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    state_dir.join("tokens").join(format!("web-{hex}.json"))
}

#[async_trait]
impl Backend for WebBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            portable_links: false,
            links_need_headers: true,
            writable: true,
            ..Capabilities::default()
        }
    }

    fn token_state(&self) -> Option<crate::backend::TokenState> {
        Some(self.client.session.state())
    }

    fn root_id(&self) -> u64 {
        self.root_id
    }

    async fn list(&self, dir_id: u64) -> Result<Vec<Entry>, Error> {
        crate::backend::webapi::listing::list_pages(dir_id, &self.key_flags, |page_no| async move {
            let page = self.page(dir_id, page_no).await?;
            let items = page.info_list.unwrap_or_default();
            let mut parents = self.parents();
            for item in &items {
                parents.insert(item.file_id.max(0) as u64, dir_id);
            }
            drop(parents);
            let mut listed = self.listed();
            for item in &items {
                listed.insert(
                    item.file_id.max(0) as u64,
                    Listed {
                        name: item.file_name.clone(),
                        kind: item.kind,
                        size: item.size,
                        etag: item.etag.clone().unwrap_or_default(),
                        update_at: item.update_at.clone().unwrap_or_default(),
                        key_flag: Some(item.s3_key_flag.clone().unwrap_or_default()),
                    },
                );
            }
            drop(listed);
            Ok((items, page.next, page.total))
        })
        .await
        .inspect(|entries| {
            self.seen
                .listed(dir_id, entries.iter().map(|e| e.name.as_str()))
        })
    }

    async fn link(&self, file: &Entry) -> Result<Link, Error> {
        self.ensure_listed(&[file.id]).await?;
        let key_flag = self
            .key_flags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&file.id)
            .cloned()
            .unwrap_or_default();
        let body = serde_json::json!({
            "driveId": 0,
            "etag": file.md5.clone().unwrap_or_default(),
            "fileId": file.id,
            "fileName": file.name,
            "s3keyFlag": key_flag,
            "size": file.size,
            "type": 0,
        });
        let info: api::DownloadInfo = self.client.post(Endpoint::DownloadInfo, &body).await?;
        self.hop.link(&info.download_url).await
    }

    async fn quota(&self) -> Result<Quota, Error> {
        let info: api::UserInfo = self.client.get(Endpoint::UserInfo, &[]).await?;
        let total = info.space_permanent.max(0) as u64 + info.space_temp.max(0) as u64;
        Ok(Quota {
            used: info.space_used.max(0) as u64,
            total: (total > 0).then_some(total),
        })
    }

    /// Logs in (through `user/info`, as the web client's `Init` does), so a refused login shows
    /// in the log and in readiness at start-up.
    async fn probe(&self) -> Result<(), Error> {
        self.client
            .get::<serde_json::Value>(Endpoint::UserInfo, &[])
            .await
            .map(|_| ())
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
