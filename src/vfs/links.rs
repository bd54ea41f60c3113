//! The link cache: download links by file id, each kept until its own expiry (`link_ttl`: its
//! validity minus a margin), one backend call for concurrent misses of one file.
//!
//! quick_cache rather than moka: every warm redirect looks its link up, and a quick_cache read
//! is a hash, a shard read lock and one atomic bit, where moka records each read for its
//! housekeeping (about 1.5–2k instructions a lookup). quick_cache has no per-entry expiry, so
//! each entry carries its deadline and a read past it is a miss (the entry is replaced).

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::backend::{Error, Link};

/// Most links kept.
const MAX_LINKS: usize = 100_000;

#[derive(Clone)]
struct Cached {
    link: Arc<Link>,
    /// When it was stored: a refresh replaces only links stored before it started.
    stored: Instant,
    /// Handed out until then (`link_ttl` after `stored`).
    until: Instant,
}

impl Cached {
    fn new(link: Arc<Link>) -> Self {
        let stored = Instant::now();
        let until = stored + super::link_ttl(&link, SystemTime::now());
        Self {
            link,
            stored,
            until,
        }
    }
}

/// Links by file id, each until its own expiry.
pub(super) struct LinkCache {
    cache: Cache<u64, Cached>,
}

impl LinkCache {
    pub(super) fn new() -> Self {
        Self {
            cache: Cache::new(MAX_LINKS),
        }
    }

    /// The cached link of file `id`, if it may still be handed out (the hot path: one lookup).
    pub(super) fn get(&self, id: u64) -> Option<Arc<Link>> {
        self.cache
            .get(&id)
            .filter(|c| Instant::now() < c.until)
            .map(|c| c.link)
    }

    /// Forgets the link of file `id`.
    pub(super) fn remove(&self, id: u64) {
        self.cache.remove(&id);
    }

    /// The link of file `id`: the cached one, or the one `fetch` gets, fetched once for
    /// concurrent callers (the others wait for it and share it). An expired link is replaced.
    /// `refresh` (the last link handed out was refused) replaces a link stored before this call,
    /// but takes one stored since by a concurrent fetch.
    ///
    /// When the fetch fails its caller gets the error and the others waiting take over one by
    /// one, each calling `fetch` itself (moka shared the error instead). Every waiter stays bound
    /// by its own request's deadline: the caller wraps this in `deadline::bound`.
    pub(super) async fn get_or_fetch<F>(
        &self,
        id: u64,
        refresh: bool,
        fetch: F,
    ) -> Result<Arc<Link>, Error>
    where
        F: Future<Output = Result<Link, Error>>,
    {
        let started = Instant::now();
        let entry = self
            .cache
            .entry_async(&id, |_, cached| {
                let usable =
                    Instant::now() < cached.until && !(refresh && cached.stored <= started);
                if usable {
                    EntryAction::Retain(cached.link.clone())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await;
        let guard = match entry {
            EntryResult::Retained(link) => return Ok(link),
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => Some(guard),
            // Neither comes from this callback (no `Remove`) and `entry_async` (no timeout).
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        let link = Arc::new(fetch.await?);
        if let Some(guard) = guard {
            let _ = guard.insert(Cached::new(link.clone()));
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn link(url: &str, valid_for: Duration) -> Link {
        Link::new(url.into(), Some(SystemTime::now() + valid_for), true)
    }

    #[tokio::test]
    async fn a_cached_link_is_reused_until_it_expires_then_replaced() {
        let links = LinkCache::new();
        let fetched = links
            .get_or_fetch(7, false, async { Ok(link("a", Duration::from_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(fetched.url, "a");
        assert_eq!(links.get(7).unwrap().url, "a");
        let again = links
            .get_or_fetch(7, false, async { panic!("fetched though cached") })
            .await
            .unwrap();
        assert_eq!(again.url, "a");

        // Past its deadline: no longer handed out, and the next fetch replaces it.
        let mut expired = Cached::new(Arc::new(link("old", Duration::from_secs(3600))));
        expired.until = Instant::now() - Duration::from_secs(1);
        links.cache.insert(7, expired);
        assert!(links.get(7).is_none());
        let replaced = links
            .get_or_fetch(7, false, async {
                Ok(link("new", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(replaced.url, "new");
        assert_eq!(links.get(7).unwrap().url, "new");
    }

    #[tokio::test]
    async fn a_link_within_the_margin_is_never_handed_out_from_the_cache() {
        let links = LinkCache::new();
        // Valid for less than the margin: link_ttl is zero.
        links
            .get_or_fetch(1, false, async {
                Ok(link("short", Duration::from_secs(5)))
            })
            .await
            .unwrap();
        assert!(links.get(1).is_none());
    }

    #[tokio::test]
    async fn a_refresh_replaces_the_link_stored_before_it() {
        let links = LinkCache::new();
        links
            .get_or_fetch(3, false, async {
                Ok(link("refused", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        let fresh = links
            .get_or_fetch(3, true, async {
                Ok(link("fresh", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(fresh.url, "fresh");
        assert_eq!(links.get(3).unwrap().url, "fresh");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_share_one_fetch() {
        let links = Arc::new(LinkCache::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (links, calls) = (links.clone(), calls.clone());
                tokio::spawn(async move {
                    links
                        .get_or_fetch(9, false, async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(link("once", Duration::from_secs(3600)))
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().url, "once");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let links = LinkCache::new();
        let failed = links
            .get_or_fetch(4, false, async { Err(Error::NotFound) })
            .await;
        assert!(matches!(failed, Err(Error::NotFound)));
        assert!(links.get(4).is_none());
        let ok = links
            .get_or_fetch(4, false, async {
                Ok(link("later", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(ok.url, "later");
    }
}
