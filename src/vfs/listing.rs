//! The listing cache: complete folder listings, one fetch in flight per folder, served stale
//! while they refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;
use unicode_normalization::UnicodeNormalization;

use crate::backend::{Backend, Entry, Error};

/// The complete, live children of one folder.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    fetched_at: Instant,
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
        }
    }

    /// The child called `name` (compared in NFC).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let key: String = name.nfc().collect();
        self.by_name.get(&key).map(|&i| &self.entries[i])
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Listing>, Error>>>;

pub(super) struct ListingCache {
    backend: Arc<dyn Backend>,
    ttl: Duration,
    cache: moka::future::Cache<u64, Arc<Listing>>,
    inflight: Arc<Mutex<HashMap<u64, Fetch>>>,
}

impl ListingCache {
    pub(super) fn new(backend: Arc<dyn Backend>, ttl: Duration, max_entries: u64) -> Self {
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
            cache,
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub(super) async fn get(&self, dir_id: u64) -> Result<Arc<Listing>, Error> {
        if let Some(listing) = self.cache.get(&dir_id).await {
            if listing.fetched_at.elapsed() > self.ttl {
                // Stale: answer now, refresh in the background (one fetch in flight).
                drop(self.fetch(dir_id));
            }
            return Ok(listing);
        }
        self.fetch(dir_id).await
    }

    pub(super) async fn invalidate(&self, dir_id: u64) {
        self.cache.invalidate(&dir_id).await;
    }

    /// Joins the fetch in flight for `dir_id`, or starts one as its own task so it finishes
    /// (and fills the cache) even if every waiter goes away.
    fn fetch(&self, dir_id: u64) -> Fetch {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.get(&dir_id) {
            return f.clone();
        }
        let backend = self.backend.clone();
        let cache = self.cache.clone();
        let registry = self.inflight.clone();
        let task = tokio::spawn(async move {
            let result = backend
                .list(dir_id)
                .await
                .map(|entries| Arc::new(Listing::new(client_view(entries))));
            if let Ok(listing) = &result {
                cache.insert(dir_id, listing.clone()).await;
            }
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&dir_id);
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
        inflight.insert(dir_id, fut.clone());
        fut
    }
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
