//! Path resolution and the caches in front of a backend: listings, links and quota.
//!
//! * Listings: one fetch in flight per folder, run as its own task so that a client giving up
//!   does not waste the work (a retry finds it cached); served stale while a refresh runs in
//!   the background once older than the TTL; bounded by the number of entries (a weigher).
//! * Lookups walk cached listings from the root; a listing error stays an error (never a guess
//!   by name) and a name missing from a complete listing is a definite miss.
//! * Links: cached until their validity minus a margin, one fetch in flight per file.

mod listing;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use listing::Listing;

use crate::backend::{Backend, Entry, Error, Link, Quota};

/// Links are dropped from the cache this long before they expire.
const LINK_MARGIN: Duration = Duration::from_secs(60);
/// Cache time for links whose validity the backend does not know.
const LINK_UNKNOWN_TTL: Duration = Duration::from_secs(600);
/// Quota changes slowly and costs an API call.
const QUOTA_TTL: Duration = Duration::from_secs(300);
/// At most this many listing entries are cached per mount.
const MAX_CACHED_ENTRIES: u64 = 2_000_000;

/// The cached view of one mount's backend.
pub struct Vfs {
    backend: Arc<dyn Backend>,
    listings: listing::ListingCache,
    links: moka::future::Cache<u64, Link>,
    quota: moka::future::Cache<(), Quota>,
}

struct LinkExpiry;

impl moka::Expiry<u64, Link> for LinkExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        link: &Link,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(link_ttl(link, SystemTime::now()))
    }
}

/// How long a link may be reused: its validity minus a margin, or a default when unknown.
pub fn link_ttl(link: &Link, now: SystemTime) -> Duration {
    match link.expires_at {
        Some(at) => at
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(LINK_MARGIN),
        None => LINK_UNKNOWN_TTL,
    }
}

impl Vfs {
    pub fn new(backend: Arc<dyn Backend>, listing_ttl: Duration) -> Self {
        Self {
            listings: listing::ListingCache::new(backend.clone(), listing_ttl, MAX_CACHED_ENTRIES),
            links: moka::future::Cache::builder()
                .max_capacity(100_000)
                .expire_after(LinkExpiry)
                .build(),
            quota: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(QUOTA_TTL)
                .build(),
            backend,
        }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The mount's root folder as an entry.
    pub fn root(&self) -> Entry {
        Entry {
            id: self.backend.root_id(),
            name: String::new(),
            is_dir: true,
            size: 0,
            md5: None,
            version: None,
            modified: SystemTime::UNIX_EPOCH,
            created: SystemTime::UNIX_EPOCH,
        }
    }

    /// The complete listing of a folder, from cache when possible.
    pub async fn list(&self, dir: &Entry) -> Result<Arc<Listing>, Error> {
        if !dir.is_dir {
            return Err(Error::NotADirectory);
        }
        self.listings.get(dir.id).await
    }

    /// Resolves a path given as decoded, NFC-normalised segments below the mount root.
    pub async fn resolve(&self, segments: &[String]) -> Result<Entry, Error> {
        let mut current = self.root();
        for segment in segments {
            let listing = match self.list(&current).await {
                Ok(l) => l,
                Err(Error::NotADirectory) => return Err(Error::NotFound),
                Err(e) => return Err(e),
            };
            current = listing.find(segment).cloned().ok_or(Error::NotFound)?;
        }
        Ok(current)
    }

    /// A link to the bytes of `file`; `refresh` bypasses the cache (the last one was refused).
    pub async fn link(&self, file: &Entry, refresh: bool) -> Result<Link, Error> {
        if refresh {
            self.links.invalidate(&file.id).await;
        }
        let backend = self.backend.clone();
        let entry = file.clone();
        let link = self
            .links
            .try_get_with(file.id, async move { backend.link(&entry).await })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())?;
        if link_ttl(&link, SystemTime::now()).is_zero() {
            // Too close to expiry to hand out; fetch one that lives long enough.
            self.links.invalidate(&file.id).await;
            return self.backend.link(file).await;
        }
        Ok(link)
    }

    /// Space used and total, cached for a few minutes.
    pub async fn quota(&self) -> Result<Quota, Error> {
        let backend = self.backend.clone();
        self.quota
            .try_get_with((), async move { backend.quota().await })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())
    }

    /// Forgets a folder's listing (after a write through the gateway).
    pub async fn invalidate(&self, dir_id: u64) {
        self.listings.invalidate(dir_id).await;
    }
}
