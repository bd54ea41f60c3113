//! The one contract every backend implements, and the types the layers above share.
//!
//! Backends know 123, not WebDAV: they return `Error` kinds, never HTTP statuses of DAV.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use unicode_normalization::UnicodeNormalization;

pub mod link;
pub mod open;
pub mod share;
pub mod web;
pub mod webapi;

/// One file or folder as listed by a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The backend's id of the entry (123's `fileId`).
    pub id: u64,
    /// The name as shown to WebDAV clients (NFC).
    pub name: String,
    pub is_dir: bool,
    /// Bytes; 0 for folders.
    pub size: u64,
    /// Lowercase hex MD5 of the content when the backend knows it (123's `etag`). Only ever a
    /// real MD5: it is also published as the `oc:checksums` checksum.
    pub md5: Option<String>,
    /// An opaque validator for entries without an MD5 (link mounts: derived from the URL and
    /// size), stable across restarts; the ETag when `md5` is `None`. Visible ASCII, no `"`.
    pub version: Option<String>,
    pub modified: SystemTime,
    pub created: SystemTime,
}

/// How this gateway reaches 123: handed to every backend and to the download proxy when they
/// are built, so nothing below `server/` reads a process-wide value and two gateways in one
/// process stay apart.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The HTTP client every upstream call shares (one connection pool).
    pub http: reqwest::Client,
    /// The client of file downloads (the proxy, copies between mounts): its per-connection
    /// buffers are bounded, whatever the CDN's chunks (`download::client`).
    pub downloads: crate::download::client::DownloadClient,
    /// The gateway's counters (upstream calls, token refreshes, proxied bytes).
    pub metrics: crate::metrics::Metrics,
    /// `server.upstream_*`. The connect and idle limits are already built into `http`; clients
    /// that build their own (the download hop) and every attempt's first-byte limit read them.
    pub timeouts: timeouts::UpstreamTimeouts,
    /// `[cluster]`: the state shared with other instances (tokens, the rate budget); `None`
    /// when this instance runs alone.
    pub cluster: Option<std::sync::Arc<crate::cluster::Cluster>>,
}

impl Upstream {
    /// `http` with counters of its own and the default timeouts: for tools and tests that
    /// build one backend.
    pub fn new(http: reqwest::Client) -> Self {
        let timeouts = timeouts::UpstreamTimeouts::default();
        Self {
            http,
            downloads: crate::download::client::DownloadClient::new(
                crate::config::DEFAULT_USER_AGENT,
                timeouts,
            )
            .expect("the default User-Agent and ring's TLS versions are valid"),
            metrics: crate::metrics::Metrics::new(),
            timeouts,
            cluster: None,
        }
    }
}

impl Entry {
    /// A folder just made: 123 answers only its id, so the times are "now".
    pub fn new_folder(id: u64, name: &str) -> Entry {
        let now = SystemTime::now();
        Entry {
            id,
            name: name.nfc().collect(),
            is_dir: true,
            size: 0,
            md5: None,
            version: None,
            modified: now,
            created: now,
        }
    }

    /// A file just uploaded: 123 answers only its id, the rest is what was sent.
    pub fn new_file(id: u64, name: &str, size: u64, md5: &str) -> Entry {
        Entry {
            is_dir: false,
            size,
            md5: Some(md5.to_ascii_lowercase()),
            ..Entry::new_folder(id, name)
        }
    }
}

impl Error {
    /// 123 answered with success but not in the shape its API has (a missing id, say).
    pub fn unexpected(what: &str) -> Error {
        Error::Upstream {
            code: 0,
            message: format!("unexpected answer: {what}"),
            trace_id: String::new(),
        }
    }
}

/// The state of a mount's credential (Open token, web session), for `/-/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// No token yet (nothing was needed so far).
    Empty,
    Valid {
        expires_at: u64,
    },
    /// A session token whose expiry 123 does not say (web login): valid until a 401.
    LoggedIn,
    /// The last refresh failed; the message says why.
    Failing {
        message: String,
    },
}

/// Where the bytes of one file can be fetched, and under which conditions.
#[derive(Clone, Debug)]
pub struct Link {
    /// The upstream URL. It is a secret of sorts (signed): never log it.
    pub url: String,
    /// Headers the upstream requires (for example a Referer on share links).
    pub headers: HeaderMap,
    /// When the link stops working, if known.
    pub expires_at: Option<SystemTime>,
    /// True when the URL works from any address with no extra headers, so a 302 is safe.
    pub portable: bool,
    /// `url` as a redirect's `Location`, made on first use: a cached link answers many
    /// redirects, and each would otherwise check and copy the whole URL again.
    location: std::sync::OnceLock<Option<http::HeaderValue>>,
}

impl Link {
    /// A link to `url` that needs no headers of its own.
    pub fn new(url: String, expires_at: Option<SystemTime>, portable: bool) -> Self {
        Self {
            url,
            headers: HeaderMap::new(),
            expires_at,
            portable,
            location: std::sync::OnceLock::new(),
        }
    }

    /// The same link, sent with `headers` (a Referer the CDN requires, say).
    pub fn with_headers(self, headers: HeaderMap) -> Self {
        Self { headers, ..self }
    }

    /// `url` as the value of a redirect's `Location` (see [`crate::response::location_value`]);
    /// `None` when it cannot be one.
    pub fn location(&self) -> Option<&http::HeaderValue> {
        self.location
            .get_or_init(|| crate::response::location_value(&self.url))
            .as_ref()
    }
}

/// Errors every backend reports, by kind. Callers branch on the kind, never on text.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a folder")]
    NotADirectory,
    #[error("rate limited by 123")]
    RateLimited { retry_after: Option<Duration> },
    #[error("authentication with 123 failed: {0}")]
    Auth(String),
    /// Code 5113/5114: the account's download quota is used up until `resets_at`, read from
    /// 123's message (`traffic::quota::resets_at`).
    #[error("123 download traffic quota exceeded: {message}")]
    TrafficExceeded {
        message: String,
        resets_at: std::time::SystemTime,
    },
    #[error("123 answered code {code}: {message}")]
    Upstream {
        code: i64,
        message: String,
        trace_id: String,
    },
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("transport error talking to 123: {0}")]
    Transport(String),
    #[error("not supported by this backend")]
    Unsupported,
    /// The name cannot be stored on 123 (the text says why).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The file is bigger than 123 accepts (10 GiB through the Open API).
    #[error("file too large for 123")]
    TooLarge,
}

pub mod auth_key;
pub mod deadline;
pub mod pacer;
pub mod retry;
pub mod signer;
pub mod timeouts;
pub mod unsure;

/// What a backend can do, read by the vfs and the download policy instead of matching on
/// backend names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    /// Links work from any address with no extra headers, so `auto` may redirect to them.
    pub portable_links: bool,
    /// The backend implements the write methods.
    pub writable: bool,
    /// Links carry headers the upstream requires (share links: a `Referer`), so a client sent
    /// there by a plain redirect is refused; `download = "redirect"` draws a startup warning.
    pub links_need_headers: bool,
    /// A listed size of 0 may mean "unknown" (a link-tree file whose size could not be learned):
    /// such a file is redirected to, never proxied, because the proxy promises exactly `size`
    /// bytes and would answer an empty 200.
    pub sizes_may_be_unknown: bool,
}

/// Space used and available, for the DAV quota properties.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub used: u64,
    pub total: Option<u64>,
}

/// The contract every backend implements. Folder ids come from `root_id` and `list`.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// The id of the folder this mount shows as its root.
    fn root_id(&self) -> u64;

    /// Every live (not trashed) child of `dir_id`, all pages fetched. A missing folder is
    /// `Error::NotFound`; a failure on any page is an error, never a short list.
    async fn list(&self, dir_id: u64) -> Result<Vec<Entry>, Error>;

    /// A fresh link to the bytes of `file` (the caller caches it).
    async fn link(&self, file: &Entry) -> Result<Link, Error>;

    /// Space used and total.
    async fn quota(&self) -> Result<Quota, Error>;

    /// A start-up check run in the background once the server listens (share: does the key and
    /// password open the share; link: learn missing sizes by HEAD). An error is logged as a
    /// warning naming the mount; the mount keeps answering, with the error its requests meet.
    async fn probe(&self) -> Result<(), Error> {
        Ok(())
    }

    /// For `check --probe`: which path form the direct-link host accepts in `auth_key`, asked on a
    /// file whose two forms differ (docs/123.md, web §6), with that file's name. `None` when the
    /// mount signs no direct links or has no such file.
    async fn probe_auth_key_path(&self) -> Option<Result<(String, signer::Accepts), Error>> {
        None
    }

    /// The state of the mount's credential (Open token, web session) for `/-/readyz`; `None`
    /// for backends without one.
    fn token_state(&self) -> Option<TokenState> {
        None
    }

    // Writes. Names are 123-side names (already mapped and validated by the vfs). Backends
    // that cannot write keep the defaults.

    /// Creates folder `name` in `parent`. `AlreadyExists` when the name is taken.
    async fn mkdir(&self, _parent: u64, _name: &str) -> Result<Entry, Error> {
        Err(Error::Unsupported)
    }

    /// Renames entry `id` in place. `AlreadyExists` when the name is taken.
    async fn rename(&self, _id: u64, _name: &str) -> Result<(), Error> {
        Err(Error::Unsupported)
    }

    /// Moves entries into folder `parent`, keeping their names.
    async fn move_to(&self, _ids: &[u64], _parent: u64) -> Result<(), Error> {
        Err(Error::Unsupported)
    }

    /// Moves entries (folders as a whole) to the recycle bin, in as few calls as possible.
    async fn trash(&self, _ids: &[u64]) -> Result<(), Error> {
        Err(Error::Unsupported)
    }

    /// Deletes entries that are in the recycle bin for good (a mount's `delete = "permanent"`;
    /// 123 deletes only what is in the recycle bin already, docs/123.md, open §3).
    async fn delete_trashed(&self, _ids: &[u64]) -> Result<(), Error> {
        Err(Error::Unsupported)
    }

    /// Creates `name` in `parent` from content 123 already has (instant reuse by MD5 + size).
    /// `Ok(None)` when 123 does not have the content; then nothing was created.
    /// `AlreadyExists` when the name is taken.
    async fn copy_instant(
        &self,
        _parent: u64,
        _name: &str,
        _md5: &str,
        _size: u64,
    ) -> Result<Option<Entry>, Error> {
        Err(Error::Unsupported)
    }

    /// Uploads a spooled file as `name` in `parent` and returns the complete entry. The caller
    /// gives a name nobody else uses (the upload queue's temporary names; safe overwrite is the
    /// queue's job). Should the name be taken anyway, what holds it is never replaced: the
    /// backend answers `AlreadyExists`, or 123 keeps both (docs/123.md, open §11).
    async fn upload(
        &self,
        _parent: u64,
        _name: &str,
        _src: &UploadSource,
        _opts: &UploadOptions,
    ) -> Result<Entry, Error> {
        Err(Error::Unsupported)
    }
}

/// A file on local disk, ready to upload: 123 needs the MD5 and size before the first byte.
#[derive(Clone, Debug)]
pub struct UploadSource {
    pub path: std::path::PathBuf,
    pub size: u64,
    /// Lowercase hex MD5 of the whole file.
    pub md5: String,
}

/// Knobs of one upload.
#[derive(Clone)]
pub struct UploadOptions {
    /// Slices sent in parallel (123 accepts them in any order).
    pub parallel_slices: usize,
    /// Called with the number of bytes confirmed so far.
    pub progress: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>>,
    /// Wait between `upload_complete` polls while 123 verifies the file. 123 asks for 1 s;
    /// tests against an emulator without poll spacing use 0.
    pub complete_poll_interval: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            parallel_slices: 3,
            progress: None,
            complete_poll_interval: Duration::from_secs(1),
        }
    }
}
