//! Shared values with an expiry, and short leases: what one access token per client id for the
//! whole cluster needs (the single-flight refresh itself is in `backend/open/token.rs`).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Cluster, Unavailable};

/// Deletes a lease only if it is still ours (it may have expired and been taken by another).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A lease held by this instance until released or expired. Dropped without `release` (its
/// holder was cancelled), it is given back by a task of its own, so the other instances do not
/// wait for it to expire.
pub struct Lease {
    key: String,
    holder: String,
    cluster: Option<Arc<Cluster>>,
}

impl Lease {
    /// The lease's key and this holder's mark (to renew it while it is still ours).
    pub(super) fn parts(&self) -> (&str, &str) {
        (&self.key, &self.holder)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(cluster) = self.cluster.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (key, holder) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.holder),
        );
        runtime.spawn(async move {
            // A busy Redis (or machine) may miss one answer: a few tries before leaving the
            // lease to expire, since others wait for it meanwhile.
            for attempt in 0..3u64 {
                if cluster.give_back(&key, &holder).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        });
    }
}

impl Cluster {
    /// The shared value `name` of `kind`, if there is one that reads as `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<T>, Unavailable> {
        let key = Cluster::key(kind, name);
        let text: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Stores `value` as `name` of `kind` for `ttl` (at least a second), or for good.
    pub async fn put_json<T: Serialize>(
        &self,
        kind: &str,
        name: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Unavailable> {
        let key = Cluster::key(kind, name);
        let text = serde_json::to_string(value).map_err(|e| Unavailable(e.to_string()))?;
        self.run(|mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(text);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1000) as u64);
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Takes the lease `name` for `ttl` if nobody holds it (`SET NX PX`): `None` when another
    /// instance holds it.
    pub async fn lease(
        self: &Arc<Self>,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, Unavailable> {
        let key = Cluster::key("lease", name);
        let holder = format!("{}-{:016x}", self.instance, rand::random::<u64>());
        let (k, h) = (key.clone(), holder.clone());
        let taken: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&h)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        Ok(taken.map(|_| Lease {
            key,
            holder,
            cluster: Some(self.clone()),
        }))
    }

    /// Gives a lease back (a no-op when it already expired). Failures are only logged: the
    /// lease expires by itself.
    pub async fn release(&self, mut lease: Lease) {
        lease.cluster = None;
        self.give_back(&lease.key, &lease.holder).await;
    }

    /// Whether Redis answered (a lease no longer ours counts as given back).
    async fn give_back(&self, key: &str, holder: &str) -> bool {
        let result = self
            .run(|mut c| async move {
                redis::Script::new(RELEASE)
                    .key(key)
                    .arg(holder)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "could not release a cluster lease; it expires by itself");
        }
        result.is_ok()
    }
}
