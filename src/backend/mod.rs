//! The one contract every backend implements, and the types the layers above share.
//!
//! Backends know 123, not WebDAV: they return `Error` kinds, never HTTP statuses of DAV.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

pub mod open;

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
    /// Lowercase hex MD5 of the content when the backend knows it (123's `etag`).
    pub md5: Option<String>,
    pub modified: SystemTime,
    pub created: SystemTime,
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
    #[error("123 daily download traffic exceeded: {message}")]
    TrafficExceeded {
        message: String,
        retry_after: Duration,
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
}

pub mod auth_key;
pub mod pacer;

/// What a backend can do, read by the vfs and the download policy instead of matching on
/// backend names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capabilities {
    /// Links work from any address with no extra headers, so `auto` may redirect to them.
    pub portable_links: bool,
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
}
