//! Path resolution and the caches in front of a backend: listings, links and quota.
//!
//! * Listings: one fetch in flight per folder, run as its own task so that a client giving up
//!   does not waste the work (a retry finds it cached); served stale while a refresh runs in
//!   the background once older than the TTL; bounded by the number of entries (a weigher).
//! * Lookups walk cached listings from the root; a listing error stays an error (never a guess
//!   by name) and a name missing from a complete listing is a definite miss.
//! * Links: cached until their validity minus a margin, one fetch in flight per file.

mod links;
mod listing;
pub mod names;
mod overlay;
mod remote;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use listing::{Listing, Ttls, MIN_REVALIDATE_INTERVAL};
pub use overlay::Local;

use crate::backend::{Backend, Entry, Error, Link, Quota};
use crate::metrics::{CacheName, Metrics};

/// Why a write on a file pending on another instance of the cluster waits.
pub const PENDING_ELSEWHERE: &str =
    "the file is still being uploaded by another gateway instance; try again once it lands";

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
    overlay: overlay::Overlay,
    listings: listing::ListingCache,
    links: links::LinkCache,
    quota: moka::future::Cache<(), Quota>,
    metrics: Metrics,
    /// What removing an entry for a client does (the mount's `delete`).
    delete: crate::config::DeleteMode,
    /// `[cluster]`: the other instances told of this mount's writes, and its name there.
    peers: std::sync::OnceLock<(Arc<crate::cluster::Cluster>, String)>,
    /// Other instances' pending uploads seen in listings.
    remote: remote::RemoteFiles,
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
    /// The vfs of one mount, its listings fresh for `ttls`; its cache lookups are counted in
    /// `metrics`; `delete` says whether a client's DELETE also empties the recycle bin.
    pub fn new(
        backend: Arc<dyn Backend>,
        ttls: Ttls,
        metrics: Metrics,
        delete: crate::config::DeleteMode,
    ) -> Self {
        Self {
            delete,
            overlay: overlay::Overlay::default(),
            listings: listing::ListingCache::new(
                backend.clone(),
                ttls,
                MAX_CACHED_ENTRIES,
                metrics.clone(),
            ),
            metrics,
            links: links::LinkCache::new(),
            quota: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(QUOTA_TTL)
                .build(),
            backend,
            peers: std::sync::OnceLock::new(),
            remote: remote::RemoteFiles::default(),
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

    /// Resolves a path given as decoded, NFC-normalised segments below the mount root. Files
    /// that exist only locally (pending uploads, placeholders) are found too.
    pub async fn resolve(&self, segments: &[String]) -> Result<Entry, Error> {
        let Some((last, folders)) = segments.split_last() else {
            return Ok(self.root());
        };
        // The folders on the way are followed by id: only the entry asked for is copied.
        let mut dir = self.backend.root_id();
        for segment in folders {
            if self.overlay.find(dir, segment).is_some() {
                // Local entries are files: nothing is below one.
                return Err(Error::NotFound);
            }
            match self.listings.get(dir).await?.find(segment) {
                Some(found) if found.is_dir => dir = found.id,
                _ => return Err(Error::NotFound),
            }
        }
        // Pending files are files: only the last segment can be one of another instance.
        self.child_of(dir, last).await
    }

    /// The child `name` of folder `parent` (local files first, as `resolve` does).
    pub async fn child(&self, parent: &Entry, name: &str) -> Result<Entry, Error> {
        if !parent.is_dir {
            return Err(Error::NotADirectory);
        }
        self.child_of(parent.id, name).await
    }

    /// The child `name` of the folder with id `dir`: a local file, another instance's pending
    /// file, or the cloud's entry.
    async fn child_of(&self, dir: u64, name: &str) -> Result<Entry, Error> {
        if let Some(local) = self.overlay.find(dir, name) {
            return Ok(local);
        }
        let remote = self.remote_list(dir).await;
        if let Some(found) = remote.find(name) {
            return Ok(found);
        }
        self.list_at_id(dir, remote.generation)
            .await?
            .find(name)
            .cloned()
            .ok_or(Error::NotFound)
    }

    /// What a client sees in folder `dir`: the cloud listing with local files laid over it.
    pub async fn list_view(&self, dir: &Entry) -> Result<Vec<Entry>, Error> {
        Ok(self.list_shared(dir).await?.iter().cloned().collect())
    }

    /// The same as [`list_view`](Self::list_view) without copying the listing: the cached
    /// listing shared, and the local files over it. A huge folder's PROPFIND reads it entry by
    /// entry as its answer is streamed.
    pub async fn list_shared(&self, dir: &Entry) -> Result<View, Error> {
        // Other instances' files first: their read says whether the cached listing is old.
        let remote = self.remote_list(dir.id).await;
        let listing = self.list_at(dir, remote.generation).await?;
        let mut local = self.overlay.list(dir.id);
        for remote in remote.entries {
            if !local.iter().any(|l| l.name == remote.name) {
                local.push(remote);
            }
        }
        Ok(View { listing, local })
    }

    /// The local bytes behind an entry that exists only here (a pending upload or a
    /// placeholder), if it is one.
    pub fn local(&self, entry: &Entry) -> Option<Local> {
        if let Some(record) = self.remote.record(entry.id) {
            return Some(Local::Remote(record));
        }
        self.overlay.local(entry.id)
    }

    /// Whether `entry` existed only here when it was read (a pending upload or a placeholder),
    /// even when `local` no longer knows it because its upload landed since: its id is not
    /// one of 123's, so 123 cannot be asked for it.
    pub fn was_local(entry: &Entry) -> bool {
        overlay::is_local_id(entry.id)
    }

    /// Other instances' pending files in folder `dir`, and the folder's cluster-wide
    /// generation (neither outside a cluster, or while Redis is unavailable).
    async fn remote_list(&self, dir: u64) -> RemoteFolder {
        let Some((cluster, name)) = self.peers.get() else {
            return RemoteFolder::default();
        };
        let read = cluster.remote_pending(name, dir).await;
        RemoteFolder {
            entries: read
                .records
                .into_iter()
                .map(|r| self.remote.entry(r))
                .collect(),
            generation: read.generation,
        }
    }

    /// Folder `dir`'s listing, listed again if it may miss a write made through another
    /// instance (`cluster`: the folder's generation just read there). This is what keeps a
    /// listing right between another instance's write and its invalidation's arrival, which
    /// pub/sub does not bound (issue 19).
    async fn list_at(&self, dir: &Entry, cluster: Option<u64>) -> Result<Arc<Listing>, Error> {
        if !dir.is_dir {
            return Err(Error::NotADirectory);
        }
        self.list_at_id(dir.id, cluster).await
    }

    /// [`Self::list_at`] of a folder known by its id.
    async fn list_at_id(&self, dir: u64, cluster: Option<u64>) -> Result<Arc<Listing>, Error> {
        let listing = self.listings.get(dir).await?;
        if !listing.behind(cluster) {
            return Ok(listing);
        }
        tracing::debug!(
            dir,
            "another instance changed this folder; listing it again"
        );
        self.listings.invalidate_now(dir);
        self.listings.get(dir).await
    }

    /// Publishes this instance's pending files of folder `dir` to the other instances (a
    /// failure is logged: they are published again every `PENDING_REFRESH`).
    pub async fn publish_pending(&self, dir: u64) {
        let Some((cluster, name)) = self.peers.get() else {
            return;
        };
        let files: Vec<(String, u64, String, SystemTime)> = self
            .overlay
            .queued(dir)
            .into_iter()
            .map(|p| (p.name, p.size, p.md5, p.modified))
            .collect();
        if let Err(e) = cluster.publish_pending(name, dir, &files).await {
            tracing::warn!(mount = %name, error = %e, "could not publish pending uploads to the other instances");
        }
    }

    /// The local-file overlay (pending uploads, placeholders).
    pub fn overlay(&self) -> &overlay::Overlay {
        &self.overlay
    }

    /// Creates folder `name` (a client-side name) in `parent`.
    pub async fn mkdir(&self, parent: &Entry, name: &str) -> Result<Entry, Error> {
        let cloud = cloud_name(name)?;
        let result = self.backend.mkdir(parent.id, &cloud).await;
        self.invalidate(parent.id).await;
        let mut entry = result?;
        entry.name = names::from_cloud(&entry.name);
        Ok(entry)
    }

    /// Renames and/or moves `entry` from folder `from` to folder `to` under `name`.
    pub async fn rename_move(
        &self,
        entry: &Entry,
        from: &Entry,
        to: &Entry,
        name: &str,
    ) -> Result<(), Error> {
        let cloud = cloud_name(name)?;
        let renamed = entry.name != name;
        // Rename first, in the source folder, so the move never meets the old name there.
        let result = async {
            if renamed {
                self.backend.rename(entry.id, &cloud).await?;
            }
            if from.id != to.id {
                self.backend.move_to(&[entry.id], to.id).await?;
            }
            Ok(())
        }
        .await;
        self.invalidate(from.id).await;
        self.invalidate(to.id).await;
        result
    }

    /// Removes `entry` (a folder as a whole) for a client: into the recycle bin, and out of it
    /// again for good when the mount's `delete` is `permanent`. A failed purge is logged and
    /// not an error: the entry is gone from the folder either way, and waits in the recycle bin.
    pub async fn trash(&self, entry: &Entry, parent: &Entry) -> Result<(), Error> {
        let result = self.backend.trash(&[entry.id]).await;
        if result.is_ok() && self.delete == crate::config::DeleteMode::Permanent {
            if let Err(e) = self.backend.delete_trashed(&[entry.id]).await {
                tracing::warn!(id = entry.id, name = %entry.name, error = %e, "moved to 123's recycle bin, but deleting it from there failed; it stays in the recycle bin");
            }
        }
        self.invalidate(parent.id).await;
        if entry.is_dir {
            self.invalidate(entry.id).await;
        }
        result
    }

    /// The cloud file `name` in `parent` after a pending upload of it landed while a DELETE or
    /// MOVE waited for it (listed afresh); `None` when there is no such cloud file (any more).
    pub async fn landed(&self, parent: &Entry, name: &str) -> Result<Option<Entry>, Error> {
        self.invalidate(parent.id).await;
        match self.child(parent, name).await {
            Ok(landed) if self.local(&landed).is_none() => Ok(Some(landed)),
            Ok(_) | Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Trashes the cloud file `name` in `parent` after a pending upload of it landed before it
    /// could be cancelled. `Ok(false)` when there is no such cloud file (any more).
    pub async fn trash_landed(&self, parent: &Entry, name: &str) -> Result<bool, Error> {
        match self.landed(parent, name).await? {
            Some(landed) => self.trash(&landed, parent).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Creates `name` in `parent` from content 123 already has; `Ok(None)` when it does not.
    pub async fn copy_instant(
        &self,
        parent: &Entry,
        name: &str,
        md5: &str,
        size: u64,
    ) -> Result<Option<Entry>, Error> {
        let cloud = cloud_name(name)?;
        let result = self
            .backend
            .copy_instant(parent.id, &cloud, md5, size)
            .await;
        self.invalidate(parent.id).await;
        result
    }

    /// A link to the bytes of `file`; `refresh` bypasses the cache (the last one was refused).
    pub async fn link(&self, file: &Entry, refresh: bool) -> Result<Arc<Link>, Error> {
        if !refresh {
            // The common case (every redirect of a warm file): one lookup, no copies made
            // for a fetch that will not run.
            if let Some(link) = self.links.get(file.id) {
                self.metrics.cache(CacheName::Link, true);
                return Ok(link);
            }
        }
        // Boxed: the fetch's future (the cache's coalescing, the backend call) is large, and
        // inline it would make every request's future that size, moved whole a few times on
        // each request, hits included.
        Box::pin(self.fetch_link(file, refresh)).await
    }

    /// [`Self::link`] on a miss (or `refresh`): asks the backend, once for concurrent callers.
    async fn fetch_link(&self, file: &Entry, refresh: bool) -> Result<Arc<Link>, Error> {
        self.metrics.cache(
            CacheName::Link,
            !refresh && self.links.get(file.id).is_some(),
        );
        // Another request's fetch of the same link is waited for only until our deadline.
        let link = crate::backend::deadline::bound(self.links.get_or_fetch(
            file.id,
            refresh,
            self.backend.link(file),
        ))
        .await?;
        if link_ttl(&link, SystemTime::now()).is_zero() {
            // Too close to expiry to hand out; fetch one that lives long enough.
            self.links.remove(file.id);
            return self.backend.link(file).await.map(Arc::new);
        }
        Ok(link)
    }

    /// Space used and total, cached for a few minutes.
    pub async fn quota(&self) -> Result<Quota, Error> {
        let backend = self.backend.clone();
        crate::backend::deadline::bound(async {
            self.quota
                .try_get_with((), async move { backend.quota().await })
                .await
                .map_err(|e: Arc<Error>| (*e).clone())
        })
        .await
    }

    /// Lists folder `dir` afresh now, even within its lifetime (a client sent
    /// `Cache-Control: no-cache`); at most one such listing per folder at a time and per
    /// [`MIN_REVALIDATE_INTERVAL`].
    pub async fn revalidate(&self, dir: &Entry) -> Result<(), Error> {
        if !dir.is_dir {
            return Err(Error::NotADirectory);
        }
        self.listings.revalidate(dir.id).await.map(|_| ())
    }

    /// Tells the other instances of a cluster about this mount's writes, as mount `name`.
    pub fn join_cluster(&self, cluster: Arc<crate::cluster::Cluster>, name: &str) {
        self.listings
            .share(Arc::new(crate::cluster::SharedListings::new(
                cluster.clone(),
                name,
            )));
        let _ = self.peers.set((cluster, name.to_string()));
    }

    /// Forgets a folder's listing (after a write through the gateway), here and, in a cluster,
    /// on every other instance before returning.
    pub async fn invalidate(&self, dir_id: u64) {
        self.listings.invalidate(dir_id).await;
        self.tell_peers(dir_id).await;
    }

    /// Publishes an invalidation to the other instances, if in a cluster, after dropping the
    /// cluster's copy of the listing. A failure is logged: writes are refused while Redis is
    /// unavailable, so only a write that raced the outage can meet it, and the other instances
    /// drop every listing when they reconnect.
    pub async fn tell_peers(&self, dir_id: u64) {
        if let Some(shared) = self.listings.shared() {
            if let Err(e) = shared.forget(dir_id).await {
                tracing::warn!(error = %e, "could not drop the cluster's copy of a changed folder");
            }
        }
        if let Some((cluster, name)) = self.peers.get() {
            // What is pending there first, so a listing the invalidation causes shows it.
            self.publish_pending(dir_id).await;
            if let Err(e) = cluster.publish_invalidation(name, dir_id).await {
                tracing::warn!(mount = %name, error = %e, "could not tell the other instances about a changed folder");
            }
        }
    }

    /// Marks every listing out of date at once (another instance's writes may have been
    /// missed).
    pub fn invalidate_all_now(&self) {
        self.listings.invalidate_all_now();
    }

    /// Marks a folder's listing out of date at once, from synchronous code (the upload queue's
    /// notifications); the stale copy is never served again.
    pub fn invalidate_now(&self, dir_id: u64) {
        self.listings.invalidate_now(dir_id);
    }
}

/// The 123-side name for a client-side name, or `InvalidName` saying why it cannot be stored.
pub fn cloud_name(name: &str) -> Result<String, Error> {
    names::to_cloud(name).map_err(|e| Error::InvalidName(e.to_string()))
}

/// Other instances' pending files in one folder, and its cluster-wide generation.
#[derive(Default)]
struct RemoteFolder {
    entries: Vec<Entry>,
    generation: Option<u64>,
}

impl RemoteFolder {
    /// The pending file `name` (client-side), if another instance holds one.
    fn find(&self, name: &str) -> Option<Entry> {
        self.entries.iter().find(|e| e.name == name).cloned()
    }
}

/// A folder as a client sees it (see [`Vfs::list_shared`]): the cached listing, shared, and the
/// local files (pending uploads, placeholders) that are shown instead of cloud entries of the
/// same name.
pub struct View {
    pub listing: Arc<Listing>,
    pub local: Vec<Entry>,
}

impl View {
    /// The entries: the cloud ones not hidden by a local file, then the local ones.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.listing
            .entries
            .iter()
            .filter(|e| !self.local.iter().any(|l| l.name == e.name))
            .chain(self.local.iter())
    }
}
