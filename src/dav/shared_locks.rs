//! The locks of one mount shared by every instance of a cluster (issue 19): a LOCK taken on one
//! instance conflicts on all. The locks live in Redis as one list per mount; each change is made
//! by one instance at a time (under a short lease) on a `MemoryLocks` read from it, so the
//! rules are exactly the single-process store's, and written back before it is answered.
//! Checks read the list without the lease.
//!
//! While Redis is unavailable writes and LOCK are refused before they get here (503); a check
//! that cannot read the locks fails closed (423), and a discovery shows none.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use xmltree::Element;

use super::locks::{LockStore, MemoryLocks, Refusal, StoredLock};
use crate::cluster::{Cluster, Unavailable};

/// The kind of key the lists are kept under in the cluster.
const KIND: &str = "locks";
/// How long one instance may hold a mount's lock list for a change.
const LEASE: Duration = Duration::from_secs(2);
/// How long a change waits for another instance's to finish.
const LEASE_WAIT: Duration = Duration::from_secs(3);

/// One mount's locks in the cluster. Cheap to clone.
#[derive(Clone)]
pub struct SharedLocks {
    cluster: Arc<Cluster>,
    /// The mount's name in the cluster.
    name: String,
    timeout_max: Duration,
    per_user_max: usize,
}

impl SharedLocks {
    /// The locks of mount `name`; caps as `MemoryLocks::new`.
    pub fn new(
        cluster: Arc<Cluster>,
        name: &str,
        timeout_max: Duration,
        per_user_max: usize,
    ) -> Self {
        Self {
            cluster,
            name: name.to_string(),
            timeout_max,
            per_user_max,
        }
    }

    async fn load(&self) -> Result<MemoryLocks, Unavailable> {
        let stored = self
            .cluster
            .get_json::<Vec<StoredLock>>(KIND, &self.name)
            .await?
            .unwrap_or_default();
        Ok(MemoryLocks::import(
            self.timeout_max,
            self.per_user_max,
            stored,
        ))
    }

    /// Runs `change` on the current locks under the mount's lease and stores the result when
    /// `change` says it changed something.
    async fn change<T>(
        &self,
        change: impl AsyncFnOnce(&MemoryLocks) -> (T, bool),
    ) -> Result<T, Unavailable> {
        let lease_name = format!("{KIND}:{}", self.name);
        let started = tokio::time::Instant::now();
        let lease = loop {
            if let Some(lease) = self.cluster.lease(&lease_name, LEASE).await? {
                break lease;
            }
            if started.elapsed() > LEASE_WAIT {
                return Err(Unavailable("the shared lock list stayed busy".into()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let result = async {
            let locks = self.load().await?;
            let (value, changed) = change(&locks).await;
            if changed {
                // Kept a little longer than the longest lock; refreshed by every change.
                let ttl = self.timeout_max + Duration::from_secs(60);
                self.cluster
                    .put_json(KIND, &self.name, &locks.export(), Some(ttl))
                    .await?;
            }
            Ok(value)
        }
        .await;
        self.cluster.release(lease).await;
        result
    }
}

/// A stand-in conflicting lock for a check that could not read the locks: the request is
/// refused (423) rather than let through past a lock it could not see.
fn unknown_lock(path: &DavPath) -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(path.clone()),
        principal: None,
        owner: None,
        timeout_at: Some(SystemTime::now()),
        timeout: None,
        shared: false,
        deep: true,
    }
}

impl LockStore for SharedLocks {
    /// The caps are checked when the lock is taken, under the lease (a refused lock is 423).
    fn admit(&self, _path: &DavPath, _principal: &str) -> Result<(), Refusal> {
        Ok(())
    }

    fn dav(&self) -> Box<dyn DavLockSystem> {
        Box::new(self.clone())
    }
}

impl std::fmt::Debug for SharedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLocks")
            .field("mount", &self.name)
            .finish()
    }
}

impl DavLockSystem for SharedLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, principal, owner) =
            (path.clone(), principal.map(str::to_string), owner.cloned());
        async move {
            let taken = self
                .change(async |locks: &MemoryLocks| {
                    let r = locks
                        .lock(
                            &path,
                            principal.as_deref(),
                            owner.as_ref(),
                            timeout,
                            shared,
                            deep,
                        )
                        .await;
                    let changed = r.is_ok();
                    (r, changed)
                })
                .await;
            taken.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not take a shared lock");
                Err(unknown_lock(&path))
            })
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_string());
        async move {
            self.change(async |locks: &MemoryLocks| {
                let r = locks.unlock(&path, &token).await;
                let changed = r.is_ok();
                (r, changed)
            })
            .await
            .unwrap_or(Err(()))
        }
        .boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (path.clone(), token.to_string());
        async move {
            self.change(async |locks: &MemoryLocks| {
                let r = locks.refresh(&path, &token, timeout).await;
                let changed = r.is_ok();
                (r, changed)
            })
            .await
            .unwrap_or(Err(()))
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal, tokens) = (
            path.clone(),
            principal.map(str::to_string),
            submitted_tokens.to_vec(),
        );
        async move {
            match self.load().await {
                Ok(locks) => {
                    locks
                        .check(&path, principal.as_deref(), ignore_principal, deep, &tokens)
                        .await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the shared locks; refusing");
                    Err(unknown_lock(&path))
                }
            }
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            match self.load().await {
                Ok(locks) => locks.discover(&path).await,
                Err(_) => Vec::new(),
            }
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            self.change(async |locks: &MemoryLocks| {
                // Nothing to store when there was no lock at all.
                let had = !locks.is_empty();
                let r = locks.delete(&path).await;
                (r, had)
            })
            .await
            .unwrap_or(Err(()))
        }
        .boxed()
    }
}
