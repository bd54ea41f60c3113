//! The listing cache: complete folder listings, one fetch in flight per folder, served stale
//! while they refresh; a folder's lifetime may depend on its depth (`cache_ttl_by_depth`), and a
//! client may ask for a folder to be revalidated now (`Cache-Control: no-cache`), at most one
//! revalidation per folder at a time and per [`MIN_REVALIDATE_INTERVAL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use crate::metrics::{CacheName, Metrics};
use unicode_normalization::UnicodeNormalization;

use crate::backend::{Backend, Entry, Error};

/// The complete, live children of one folder.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    fetched_at: Instant,
    /// The folder's generation when the fetch started (see `ListingCache::generations`).
    generation: u64,
    /// `[cluster]`: the folder's cluster-wide generation this listing is at least as new as
    /// (see `cluster::listings`; `None`: unknown).
    cluster_generation: Option<u64>,
}

impl Listing {
    pub fn new(entries: Vec<Entry>) -> Self {
        let mut by_name = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            // 123 may hold two entries whose names normalise alike; the first one wins, as
            // lookups must be deterministic.
            by_name.entry(e.name.nfc().collect::<String>()).or_insert(i);
        }
        Self {
            entries,
            by_name,
            fetched_at: Instant::now(),
            generation: 0,
            cluster_generation: None,
        }
    }

    /// Whether this listing may miss a write made through another instance of the cluster:
    /// its generation differs from the folder's generation `cluster` just read there (one
    /// is only ever bumped, or gone after a day without writes).
    pub fn behind(&self, cluster: Option<u64>) -> bool {
        matches!((self.cluster_generation, cluster), (Some(mine), Some(now)) if mine != now)
    }

    /// The child called `name` (compared in NFC).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let key = super::names::nfc(name);
        self.by_name.get(key.as_ref()).map(|&i| &self.entries[i])
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Listing>, Error>>>;

/// Listings by folder id, bounded by their entries. quick_cache rather than moka: every request
/// looks up a listing per path segment, and a quick_cache read is a hash, a shard read lock and
/// one atomic bit, where moka records each read for its housekeeping (about 1.5–2k
/// instructions a lookup).
type Listings = quick_cache::sync::Cache<u64, Arc<Listing>, ByEntries>;

/// A listing weighs its entries plus one (so empty folders count too).
#[derive(Clone, Copy)]
struct ByEntries;

impl quick_cache::Weighter<u64, Arc<Listing>> for ByEntries {
    fn weight(&self, _dir_id: &u64, listing: &Arc<Listing>) -> u64 {
        (listing.entries.len() as u64).saturating_add(1)
    }
}

/// Shards of the listing cache. Each holds an equal part of the budget and a listing heavier
/// than (nearly) its part is not kept, so one: a single folder of up to `MAX_CACHED_ENTRIES`
/// entries is cached, as before (a listing is read under a shared lock, so readers do not
/// wait on each other; only a fetch's insert takes it alone).
const LISTING_SHARDS: usize = 1;

/// A stale listing fetched longer ago than this is not served while it refreshes: the request
/// waits for the new one. (moka forgot folders nobody looked at for a day; quick_cache has no
/// such idle expiry, so the age of the listing stands in for it.)
const SERVE_STALE_FOR: Duration = Duration::from_secs(24 * 3600);

/// What a cached listing of the folder's current generation is good for.
#[derive(Debug, PartialEq, Eq)]
enum Use {
    /// Within its lifetime.
    Fresh,
    /// Past its lifetime: served while a refresh runs.
    Stale,
    /// Too old to serve at all (see [`SERVE_STALE_FOR`]): a miss.
    Expired,
}

fn use_of(age: Duration, ttl: Duration) -> Use {
    if age <= ttl {
        Use::Fresh
    } else if age <= SERVE_STALE_FOR {
        Use::Stale
    } else {
        Use::Expired
    }
}

/// A revalidation of a folder started less than this long ago (or still running) is joined,
/// and its listing served, instead of starting another: however many clients send
/// `no-cache`, a folder costs 123 at most one listing per second.
pub const MIN_REVALIDATE_INTERVAL: Duration = Duration::from_secs(1);
/// Most folders whose depth is remembered for `cache_ttl_by_depth`.
const MAX_DEPTHS: u64 = 1_000_000;

/// How long listings stay fresh: `cache_ttl`, or by folder depth (`cache_ttl_by_depth`).
#[derive(Clone, Debug, Default)]
pub struct Ttls {
    pub default: Duration,
    /// (depth, ttl), sorted by depth; a folder takes the row with the greatest depth not above
    /// its own.
    pub by_depth: Vec<(u32, Duration)>,
}

impl Ttls {
    /// The lifetime of a listing at `depth` (`None`: depth unknown).
    pub fn at(&self, depth: Option<u32>) -> Duration {
        depth
            .and_then(|d| self.by_depth.iter().rev().find(|(at, _)| *at <= d))
            .map(|(_, ttl)| *ttl)
            .unwrap_or(self.default)
    }
}

pub(super) struct ListingCache {
    backend: Arc<dyn Backend>,
    ttls: Ttls,
    /// Depths of folders seen in listings (only with `cache_ttl_by_depth`); the root is 0.
    depths: Option<moka::sync::Cache<u64, u32>>,
    /// Revalidations asked for by clients, with when they started.
    revalidations: Mutex<HashMap<u64, (Instant, Fetch)>>,
    metrics: Metrics,
    cache: Arc<Listings>,
    /// Fetches in flight, with the generation they started at.
    inflight: Arc<Mutex<HashMap<u64, (u64, Fetch)>>>,
    /// Bumped by every invalidation, synchronously: a listing (or a fetch in flight) from an
    /// older generation is never served, so a PROPFIND right after a write shows the truth
    /// even when the write raced a listing fetch.
    generations: Arc<Mutex<HashMap<u64, u64>>>,
    /// `[cluster]`: cold listings fetched once for every instance (set when the mount joins).
    shared: Arc<std::sync::OnceLock<Arc<crate::cluster::SharedListings>>>,
}

impl ListingCache {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        ttls: Ttls,
        max_entries: u64,
        metrics: Metrics,
    ) -> Self {
        let cache = listings(max_entries);
        let depths = (!ttls.by_depth.is_empty()).then(|| {
            let depths = moka::sync::Cache::new(MAX_DEPTHS);
            depths.insert(backend.root_id(), 0);
            depths
        });
        Self {
            backend,
            ttls,
            depths,
            revalidations: Mutex::default(),
            metrics,
            cache: Arc::new(cache),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            generations: Arc::new(Mutex::new(HashMap::new())),
            shared: Arc::default(),
        }
    }

    /// Lists folders through the cluster from now on: fetched once for every instance.
    pub(super) fn share(&self, shared: Arc<crate::cluster::SharedListings>) {
        let _ = self.shared.set(shared);
    }

    /// The cluster's listings of this mount, if it is in one.
    pub(super) fn shared(&self) -> Option<&Arc<crate::cluster::SharedListings>> {
        self.shared.get()
    }

    fn generation(&self, dir_id: u64) -> u64 {
        generation_of(&self.generations, dir_id)
    }

    /// Marks a folder's listing out of date at once (callable from synchronous code).
    pub(super) fn invalidate_now(&self, dir_id: u64) {
        *self
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(dir_id)
            .or_insert(0) += 1;
    }

    pub(super) async fn get(&self, dir_id: u64) -> Result<Arc<Listing>, Error> {
        if let Some(listing) = self
            .cache
            .get(&dir_id)
            .filter(|l| l.generation == self.generation(dir_id))
        {
            let used = use_of(listing.fetched_at.elapsed(), self.ttl_of(dir_id));
            if used == Use::Stale {
                // Stale: answer now, refresh in the background (one fetch in flight).
                drop(self.fetch(dir_id, false));
            }
            if used != Use::Expired {
                self.metrics.cache(CacheName::Listing, true);
                return Ok(listing);
            }
        }
        self.metrics.cache(CacheName::Listing, false);
        // The fetch runs as its own task and fills the cache even if this request stops
        // waiting for it at its deadline (the client's retry then finds the listing).
        crate::backend::deadline::bound(self.fetch(dir_id, false)).await
    }

    fn ttl_of(&self, dir_id: u64) -> Duration {
        self.ttls
            .at(self.depths.as_ref().and_then(|d| d.get(&dir_id)))
    }

    /// Lists `dir_id` afresh, even within its lifetime: joins a revalidation of the folder
    /// that is running or started less than [`MIN_REVALIDATE_INTERVAL`] ago, else starts one
    /// (one paced listing). Listings of the folder older than it are served no more.
    pub(super) async fn revalidate(&self, dir_id: u64) -> Result<Arc<Listing>, Error> {
        let fetch = {
            let mut running = self.revalidations.lock().unwrap_or_else(|p| p.into_inner());
            running
                .retain(|_, (at, f)| f.peek().is_none() || at.elapsed() < MIN_REVALIDATE_INTERVAL);
            match running.get(&dir_id) {
                Some((_, f)) => f.clone(),
                None => {
                    // A new generation: the cached listing and any fetch that started before
                    // this request are not served again, and other requests join this fetch.
                    self.invalidate_now(dir_id);
                    let f = self.fetch(dir_id, true);
                    running.insert(dir_id, (Instant::now(), f.clone()));
                    f
                }
            }
        };
        self.metrics.cache(CacheName::Listing, false);
        let listing = crate::backend::deadline::bound(fetch).await?;
        if listing.generation != self.generation(dir_id) {
            // A write through the gateway since: the usual path lists it again.
            return self.get(dir_id).await;
        }
        Ok(listing)
    }

    /// Marks every listing out of date at once (after invalidations from other instances may
    /// have been missed).
    pub(super) fn invalidate_all_now(&self) {
        *self
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(EVERY_FOLDER)
            .or_insert(0) += 1;
        self.cache.clear();
    }

    pub(super) async fn invalidate(&self, dir_id: u64) {
        self.invalidate_now(dir_id);
        self.cache.remove(&dir_id);
    }

    /// Joins the fetch in flight for `dir_id`, or starts one as its own task so it finishes
    /// (and fills the cache) even if every waiter goes away. In a cluster the listing is the
    /// cluster's (one fetch from 123 for every instance) unless `fresh` asks for a new one.
    fn fetch(&self, dir_id: u64, fresh: bool) -> Fetch {
        let generation = self.generation(dir_id);
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, f)) = inflight.get(&dir_id) {
            if *g == generation {
                return f.clone();
            }
        }
        let backend = self.backend.clone();
        let cache = self.cache.clone();
        let registry = self.inflight.clone();
        let generations = self.generations.clone();
        let depths = self.depths.clone();
        let shared = self.shared.get().cloned();
        let ttl = self.ttl_of(dir_id);
        let task = tokio::spawn(async move {
            let listed = match shared {
                Some(shared) => {
                    shared
                        .get(dir_id, ttl, fresh, || backend.list(dir_id))
                        .await
                }
                None => backend
                    .list(dir_id)
                    .await
                    .map(|entries| crate::cluster::Shared {
                        entries,
                        age: Duration::ZERO,
                        generation: None,
                    }),
            };
            let result = listed.map(|listed| {
                let mut listing = Listing::new(client_view(listed.entries));
                listing.generation = generation;
                listing.cluster_generation = listed.generation;
                // Listed by another instance a while ago: it goes stale as early as there.
                if let Some(at) = listing.fetched_at.checked_sub(listed.age) {
                    listing.fetched_at = at;
                }
                Arc::new(listing)
            });
            if let (Ok(listing), Some(depths)) = (&result, &depths) {
                if let Some(depth) = depths.get(&dir_id) {
                    for child in listing.entries.iter().filter(|e| e.is_dir) {
                        depths.insert(child.id, depth.saturating_add(1));
                    }
                }
            }
            if let Ok(listing) = &result {
                // A write during the fetch made this listing old: don't keep it.
                if generation_of(&generations, dir_id) == generation {
                    cache.insert(dir_id, listing.clone());
                }
            }
            let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
            if registry.get(&dir_id).is_some_and(|(g, _)| *g == generation) {
                registry.remove(&dir_id);
            }
            result
        });
        let fut: Fetch = async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(Error::Transport(format!("listing task failed: {e}"))),
            }
        }
        .boxed()
        .shared();
        inflight.insert(dir_id, (generation, fut.clone()));
        fut
    }
}

/// The listing cache's store: at most `max_entries` entries in all, one folder's included.
fn listings(max_entries: u64) -> Listings {
    let options = quick_cache::OptionsBuilder::new()
        .weight_capacity(max_entries)
        // A guess at the number of folders (listings of ~100 entries); only a hint.
        .estimated_items_capacity((max_entries / 100).max(1) as usize)
        .shards(LISTING_SHARDS)
        .build();
    match options {
        Ok(options) => {
            Listings::with_options(options, ByEntries, Default::default(), Default::default())
        }
        // Cannot happen with the options above (both given); a plain cache of the budget.
        Err(_) => Listings::with_weighter(max_entries as usize, max_entries, ByEntries),
    }
}

/// The entry of `generations` counting invalidations of every folder at once (no 123 folder has
/// this id); it adds to each folder's own count.
const EVERY_FOLDER: u64 = u64::MAX;

fn generation_of(generations: &Mutex<HashMap<u64, u64>>, dir_id: u64) -> u64 {
    let generations = generations.lock().unwrap_or_else(|p| p.into_inner());
    let of = |id| generations.get(&id).copied().unwrap_or(0);
    of(dir_id).wrapping_add(if dir_id == EVERY_FOLDER {
        0
    } else {
        of(EVERY_FOLDER)
    })
}

/// Cloud names as clients see them, without the upload queue's temporary files.
fn client_view(entries: Vec<Entry>) -> Vec<Entry> {
    entries
        .into_iter()
        .filter(|e| !crate::upload::is_temp_name(&e.name))
        .map(|mut e| {
            e.name = super::names::from_cloud(&e.name);
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_cache::Weighter;

    #[test]
    fn the_deepest_row_not_below_a_folder_wins() {
        let ttls = Ttls {
            default: Duration::from_secs(600),
            by_depth: vec![(1, Duration::from_secs(60)), (3, Duration::from_secs(5))],
        };
        assert_eq!(ttls.at(Some(0)), Duration::from_secs(600));
        assert_eq!(ttls.at(Some(1)), Duration::from_secs(60));
        assert_eq!(ttls.at(Some(2)), Duration::from_secs(60));
        assert_eq!(ttls.at(Some(7)), Duration::from_secs(5));
        assert_eq!(ttls.at(None), Duration::from_secs(600));
    }

    #[test]
    fn a_listing_older_than_a_day_is_not_served_stale() {
        let ttl = Duration::from_secs(600);
        assert_eq!(use_of(Duration::from_secs(10), ttl), Use::Fresh);
        assert_eq!(use_of(Duration::from_secs(601), ttl), Use::Stale);
        assert_eq!(use_of(SERVE_STALE_FOR, ttl), Use::Stale);
        assert_eq!(
            use_of(SERVE_STALE_FOR + Duration::from_secs(1), ttl),
            Use::Expired
        );
        // A lifetime longer than a day keeps the listing fresh for all of it.
        let long = Duration::from_secs(48 * 3600);
        assert_eq!(
            use_of(SERVE_STALE_FOR * 2 - Duration::from_secs(1), long),
            Use::Fresh
        );
    }

    #[test]
    fn one_folder_may_fill_the_whole_budget() {
        let entries = (0..900)
            .map(|i| Entry {
                id: i,
                name: format!("f{i}"),
                is_dir: false,
                size: 0,
                md5: None,
                version: None,
                modified: std::time::SystemTime::UNIX_EPOCH,
                created: std::time::SystemTime::UNIX_EPOCH,
            })
            .collect();
        let cache = listings(1_000);
        cache.insert(7, Arc::new(Listing::new(entries)));
        assert_eq!(cache.get(&7).map(|l| l.entries.len()), Some(900));
    }

    #[test]
    fn listings_weigh_their_entries_plus_one() {
        let empty = Arc::new(Listing::new(Vec::new()));
        assert_eq!(ByEntries.weight(&1, &empty), 1);
        let cache = Listings::with_weighter(10, 10, ByEntries);
        cache.insert(1, empty);
        assert_eq!(cache.weight(), 1);
    }
}
