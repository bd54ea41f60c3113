//! Link trees (`backend = "link"`): a text tree of direct links (123's paid direct-link space, or
//! any http(s) URL), optionally signed with `auth_key` (docs/123.md, web §3). No 123 API is called;
//! read-only by nature.
//!
//! Sizes: a file line without a size gets one from a HEAD request. The start-up probe sends
//! those HEADs in the background (at most [`HEAD_CONCURRENCY`] at a time); a listing of a
//! folder waits for its own files' HEADs (the probe's, already under way, or its own), so no
//! listing shows a size that is about to change. A HEAD that fails is logged and leaves the
//! size unknown: the file is listed with size 0 and `Capabilities::sizes_may_be_unknown` makes
//! the server redirect a GET of it rather than proxy it (the proxy promises exactly `size`
//! bytes, which would be an empty 200). It is not retried before a restart.
//!
//! Validators are stable across restarts: the mtime is the line's, or none (the Unix epoch);
//! the ETag is a `version` derived from the URL and the size, never a fake MD5.

pub mod tree;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::{stream, StreamExt};
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use md5::{Digest, Md5};
use tokio::sync::{OnceCell, Semaphore};

pub use self::tree::{LinkTree, ParseError};
use crate::backend::auth_key::{self, AuthKeyPath};
use crate::backend::signer::{Accepts, DirectSigner};
use crate::backend::{Backend, Capabilities, Entry, Error, Link, Quota};

/// HEAD requests in flight at once, per mount.
pub const HEAD_CONCURRENCY: usize = 8;
/// How long one size request may take.
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// `auth_key` signing of a mount's links.
#[derive(Clone)]
pub struct Signing {
    pub key: String,
    pub uid: u64,
    /// How long a signed link is valid.
    pub valid: Duration,
    /// Which path form `auth_key` hashes (docs/123.md, web §6).
    pub path: AuthKeyPath,
}

/// One link mount.
pub struct LinkBackend {
    tree: LinkTree,
    http: reqwest::Client,
    /// The signer and the uid links carry, when the mount has a key.
    signing: Option<(DirectSigner, u64)>,
    /// The size learned by HEAD of every file whose line has none (`None` inside: failed).
    learned: HashMap<u64, OnceCell<Option<u64>>>,
    heads: Semaphore,
}

impl LinkBackend {
    pub fn new(http: reqwest::Client, tree: LinkTree, signing: Option<Signing>) -> Self {
        let learned = tree
            .files()
            .filter(|id| tree.get(*id).is_some_and(|n| n.size.is_none()))
            .map(|id| (id, OnceCell::new()))
            .collect();
        let signing = signing.map(|s| {
            (
                DirectSigner::new(http.clone(), s.key, s.valid, s.path),
                s.uid,
            )
        });
        Self {
            tree,
            http,
            signing,
            learned,
            heads: Semaphore::new(HEAD_CONCURRENCY),
        }
    }

    /// The size of file `id`: from its line, else from its HEAD (sent once).
    async fn size_of(&self, id: u64) -> Option<u64> {
        if let Some(size) = self.tree.get(id).and_then(|n| n.size) {
            return Some(size);
        }
        let cell = self.learned.get(&id)?;
        *cell.get_or_init(|| self.learn_size(id)).await
    }

    /// One HEAD (or, when HEAD is refused, a one-byte GET) for the size of file `id`.
    async fn learn_size(&self, id: u64) -> Option<u64> {
        let _permit = self.heads.acquire().await.ok()?;
        let path = self.path_of(id);
        let url = match self.url_for(id).await {
            Ok((url, _)) => url,
            Err(e) => {
                tracing::warn!(file = %path, error = %e, "cannot learn the size of a link file");
                return None;
            }
        };
        let outcome = match self.head(&url).await {
            Ok(size) => Ok(size),
            // Some servers refuse HEAD: a one-byte range answers with the size too.
            Err(head_error) => self.one_byte(&url).await.map_err(|_| head_error),
        };
        match outcome {
            Ok(size) => {
                tracing::debug!(file = %path, size, "learned the size of a link file");
                Some(size)
            }
            Err(reason) => {
                tracing::warn!(file = %path, %reason, "cannot learn the size of a link file; it stays unknown (downloads of it are redirected)");
                None
            }
        }
    }

    async fn head(&self, url: &str) -> Result<u64, String> {
        let response = self
            .http
            .head(url)
            .timeout(HEAD_TIMEOUT)
            .send()
            .await
            .map_err(describe)?;
        if !response.status().is_success() {
            return Err(format!("HEAD answered {}", response.status()));
        }
        response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "HEAD answered without a Content-Length".to_string())
    }

    async fn one_byte(&self, url: &str) -> Result<u64, String> {
        let response = self
            .http
            .get(url)
            .header(RANGE, "bytes=0-0")
            .timeout(HEAD_TIMEOUT)
            .send()
            .await
            .map_err(describe)?;
        // `bytes 0-0/<size>`.
        response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| response.status() == http::StatusCode::PARTIAL_CONTENT)
            .and_then(|v| v.rsplit('/').next())
            .and_then(|total| total.trim().parse().ok())
            .ok_or_else(|| format!("a one-byte GET answered {}", response.status()))
    }

    /// The URL to fetch file `id` from, signed when the mount has a key, and its expiry.
    async fn url_for(&self, id: u64) -> Result<(String, Option<SystemTime>), Error> {
        let url = self
            .tree
            .get(id)
            .and_then(|n| n.url.as_deref())
            .ok_or(Error::NotFound)?;
        let Some((signer, uid)) = &self.signing else {
            return Ok((url.to_string(), None));
        };
        let (signed, expires_at) = signer
            .sign(url, *uid)
            .await
            .ok_or_else(|| Error::Upstream {
                code: -1,
                message: "the URL of this file cannot be parsed, so it cannot be signed".into(),
                trace_id: String::new(),
            })?;
        Ok((signed, Some(expires_at)))
    }

    /// `/a/b/c` of node `id`, for logs (names only, never URLs).
    fn path_of(&self, id: u64) -> String {
        let mut names = Vec::new();
        let mut cur = id;
        // Bounded by the tree's size: parents always have smaller ids.
        while cur != tree::ROOT {
            let Some(node) = self.tree.get(cur) else {
                break;
            };
            names.push(node.name.as_str());
            if node.parent >= cur {
                break;
            }
            cur = node.parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    fn entry(&self, id: u64, size: Option<u64>) -> Option<Entry> {
        let node = self.tree.get(id)?;
        let modified = node
            .mtime
            .filter(|t| *t > 0)
            .map_or(SystemTime::UNIX_EPOCH, |t| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(t as u64)
            });
        Some(Entry {
            id,
            name: node.name.clone(),
            is_dir: node.is_dir(),
            size: size.unwrap_or(0),
            md5: None,
            version: node.url.as_deref().map(|url| version(url, size)),
            modified,
            created: modified,
        })
    }
}

/// The ETag of a link file: a digest of its URL (as written, unsigned) and its size, so it is
/// the same at every start and changes when either does.
pub fn version(url: &str, size: Option<u64>) -> String {
    let size_text = size.map_or_else(|| "?".to_string(), |s| s.to_string());
    let digest = Md5::digest(format!("{url}\n{size_text}").as_bytes());
    let hex = auth_key::hex(&digest);
    match size {
        Some(s) => format!("{s:x}-{}", &hex[..16]),
        None => format!("u-{}", &hex[..16]),
    }
}

/// A reqwest error as text, without its URL (it may be signed).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_string()
    } else {
        e.without_url().to_string()
    }
}

#[async_trait]
impl Backend for LinkBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            portable_links: true,
            sizes_may_be_unknown: true,
            ..Capabilities::default()
        }
    }

    fn root_id(&self) -> u64 {
        tree::ROOT
    }

    async fn list(&self, dir_id: u64) -> Result<Vec<Entry>, Error> {
        let node = self.tree.get(dir_id).ok_or(Error::NotFound)?;
        if !node.is_dir() {
            return Err(Error::NotADirectory);
        }
        let sizes = futures_util::future::join_all(node.children.iter().map(|&id| async move {
            if self.tree.get(id).is_some_and(|n| n.is_dir()) {
                None
            } else {
                self.size_of(id).await
            }
        }))
        .await;
        Ok(node
            .children
            .iter()
            .zip(sizes)
            .filter_map(|(&id, size)| self.entry(id, size))
            .collect())
    }

    async fn link(&self, file: &Entry) -> Result<Link, Error> {
        let node = self.tree.get(file.id).ok_or(Error::NotFound)?;
        if node.is_dir() {
            return Err(Error::NotFound);
        }
        let (url, expires_at) = self.url_for(file.id).await?;
        // Unsigned links do not expire; signed ones are cached until shortly before.
        Ok(Link::new(url, expires_at, true))
    }

    async fn quota(&self) -> Result<Quota, Error> {
        Err(Error::Unsupported)
    }

    /// Asks about the first file whose URL's two path forms differ.
    async fn probe_auth_key_path(&self) -> Option<Result<(String, Accepts), Error>> {
        let (signer, uid) = self.signing.as_ref()?;
        let (id, url) = self.tree.files().find_map(|id| {
            let url = self.tree.get(id)?.url.as_deref()?;
            auth_key::forms_differ(url).then_some((id, url))
        })?;
        Some(Ok((self.path_of(id), signer.probe(url, *uid).await)))
    }

    /// Learns every missing size, [`HEAD_CONCURRENCY`] at a time. Failures are logged per file
    /// and never fail the probe.
    async fn probe(&self) -> Result<(), Error> {
        let ids: Vec<u64> = self.learned.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let results: Vec<Option<u64>> = stream::iter(ids)
            .map(|id| self.size_of(id))
            .buffer_unordered(HEAD_CONCURRENCY)
            .collect()
            .await;
        let unknown = results.iter().filter(|s| s.is_none()).count();
        tracing::info!(
            learned = results.len() - unknown,
            unknown,
            "sizes of link files without one in the config"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stable_and_distinct() {
        let a = version("https://h/a.bin", Some(10));
        assert_eq!(a, version("https://h/a.bin", Some(10)));
        assert!(a.starts_with("a-"), "{a}");
        assert_ne!(a, version("https://h/a.bin", Some(11)));
        assert_ne!(a, version("https://h/b.bin", Some(10)));
        let u = version("https://h/a.bin", None);
        assert!(u.starts_with("u-"), "{u}");
        assert!(u.bytes().all(|b| b.is_ascii_graphic() && b != b'"'));
    }

    #[tokio::test]
    async fn lists_and_links_without_network() {
        let tree = tree::parse("A:\n  3:1600000000:https://h/a.bin\n5:https://h/b%20c.txt\n")
            .expect("tree");
        let backend = LinkBackend::new(reqwest::Client::new(), tree, None);
        let root = backend.list(tree::ROOT).await.expect("root");
        let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["A", "b c.txt"]);
        assert!(root[0].is_dir && root[0].version.is_none());
        assert_eq!(root[1].modified, SystemTime::UNIX_EPOCH);
        let inner = backend.list(root[0].id).await.expect("A");
        assert_eq!(inner[0].size, 3);
        assert_eq!(
            inner[0].modified,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
        );
        assert!(matches!(
            backend.list(inner[0].id).await,
            Err(Error::NotADirectory)
        ));
        assert!(matches!(backend.list(99).await, Err(Error::NotFound)));
        let link = backend.link(&root[1]).await.expect("link");
        assert_eq!(link.url, "https://h/b%20c.txt");
        assert!(link.portable && link.expires_at.is_none());
        assert_eq!(backend.path_of(inner[0].id), "/A/a.bin");
    }

    #[tokio::test]
    async fn signed_links_expire() {
        let tree = tree::parse("https://vip.example/13/files/1.txt?b=2").expect("tree");
        let signing = Signing {
            key: "289ds32418bxdba".into(),
            uid: 13,
            valid: Duration::from_secs(1800),
            path: AuthKeyPath::Auto,
        };
        let backend = LinkBackend::new(reqwest::Client::new(), tree, Some(signing));
        let file = backend.entry(1, Some(1)).expect("entry");
        let before = SystemTime::now();
        let link = backend.link(&file).await.expect("link");
        let expires = link.expires_at.expect("expiry");
        assert!(expires >= before + Duration::from_secs(1800));
        assert!(link
            .url
            .starts_with("https://vip.example/13/files/1.txt?auth_key="));
        assert!(link.url.ends_with("&b=2"), "{}", link.url);
        let again = backend.link(&file).await.expect("link");
        assert_ne!(again.url, link.url, "each signature has its own rand");
    }
}
