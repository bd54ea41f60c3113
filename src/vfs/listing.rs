//! The listing cache: complete folder listings, one fetch in flight per folder, served stale
//! while they refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use crate::metrics::Metrics;
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
        }
    }

    /// The child called `name` (compared in NFC).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let key = super::names::nfc(name);
        self.by_name.get(key.as_ref()).map(|&i| &self.entries[i])
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Listing>, Error>>>;

pub(super) struct ListingCache {
    backend: Arc<dyn Backend>,
    ttl: Duration,
    metrics: Metrics,
    cache: moka::future::Cache<u64, Arc<Listing>>,
    /// Fetches in flight, with the generation they started at.
    inflight: Arc<Mutex<HashMap<u64, (u64, Fetch)>>>,
    /// Bumped by every invalidation, synchronously: a listing (or a fetch in flight) from an
    /// older generation is never served, so a PROPFIND right after a write shows the truth
    /// even when the write raced a listing fetch.
    generations: Arc<Mutex<HashMap<u64, u64>>>,
}

impl ListingCache {
    pub(super) fn new(
        backend: Arc<dyn Backend>,
        ttl: Duration,
        max_entries: u64,
        metrics: Metrics,
    ) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .weigher(|_k: &u64, v: &Arc<Listing>| (v.entries.len() as u32).saturating_add(1))
            // Stale listings are still worth serving while a refresh runs; forget folders
            // nobody looked at for a day.
            .time_to_idle(Duration::from_secs(24 * 3600))
            .build();
        Self {
            backend,
            ttl,
            metrics,
            cache,
            inflight: Arc::new(Mutex::new(HashMap::new())),
            generations: Arc::new(Mutex::new(HashMap::new())),
        }
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
            .await
            .filter(|l| l.generation == self.generation(dir_id))
        {
            if listing.fetched_at.elapsed() > self.ttl {
                // Stale: answer now, refresh in the background (one fetch in flight).
                drop(self.fetch(dir_id));
            }
            self.metrics.cache("listing", true);
            return Ok(listing);
        }
        self.metrics.cache("listing", false);
        // The fetch runs as its own task and fills the cache even if this request stops
        // waiting for it at its deadline (the client's retry then finds the listing).
        crate::backend::deadline::bound(self.fetch(dir_id)).await
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
        self.cache.invalidate_all();
    }

    pub(super) async fn invalidate(&self, dir_id: u64) {
        self.invalidate_now(dir_id);
        self.cache.invalidate(&dir_id).await;
    }

    /// Joins the fetch in flight for `dir_id`, or starts one as its own task so it finishes
    /// (and fills the cache) even if every waiter goes away.
    fn fetch(&self, dir_id: u64) -> Fetch {
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
        let task = tokio::spawn(async move {
            let result = backend.list(dir_id).await.map(|entries| {
                let mut listing = Listing::new(client_view(entries));
                listing.generation = generation;
                Arc::new(listing)
            });
            if let Ok(listing) = &result {
                // A write during the fetch made this listing old: don't keep it.
                if generation_of(&generations, dir_id) == generation {
                    cache.insert(dir_id, listing.clone()).await;
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
