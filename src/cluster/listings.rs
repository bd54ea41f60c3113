//! A cold listing fetched from 123 once for the whole cluster (issue 19): the instance that
//! wants a folder first takes a short lease on it and lists it; the others wait for the shared
//! copy it leaves in Redis (for the mount's `cache_ttl`) and read that instead of asking 123, so
//! a cold folder of n entries costs ceil(n/100) list calls whatever the number of instances.
//!
//! The lease is renewed while the listing runs, so a holder that dies (or hangs) lets it expire
//! within `LEASE_TTL` and a waiter lists the folder itself. Every write's invalidation bumps the
//! folder's generation and drops the copy before it is published (`forget`); a copy is stored
//! only if the generation did not change while it was listed, so no instance reads a listing
//! from before a write it was told about.
//!
//! Each listing carries the generation it is at least as new as ([`Shared::generation`]).
//! Every instance reads the folder's generation with its pending uploads before it answers
//! from a listing (`Cluster::remote_pending`, one call) and lists again when its copy is
//! older: a write shows on every instance at once, however late its invalidation arrives.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Cluster, Unavailable};
use crate::backend::{Entry, Error};

/// How long a lease lives without renewal: a dead holder keeps the others waiting this long.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the holder renews its lease while 123 is listing the folder.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often a waiter looks for the copy (or the end of the lease).
const POLL: Duration = Duration::from_millis(50);
/// The longest a waiter waits for another instance's listing before listing the folder itself
/// (the lease is renewed, so a huge folder may take long; this bounds a holder that renews
/// but never finishes).
const MAX_WAIT: Duration = Duration::from_secs(300);
/// The largest shared copy stored (bytes of its encoding, ~80 per entry: about 800,000
/// entries). Redis answers one command at a time, so one huge value delays every instance's
/// token, limiter and lock calls while it is sent, and each reader holds it whole in memory;
/// a bigger folder is listed by each instance on its own (the waiters are told so at once).
const MAX_COPY_BYTES: usize = 64 << 20;
/// Stored instead of a copy too large to share, so waiters list on their own at once.
const TOO_LARGE: &str = "-";

/// Stores the copy only if the folder's generation is still the one its listing started at.
const STORE: &str = r"
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// A write changed the folder: a new generation, and the copy is gone.
const FORGET: &str = r"
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('DEL', KEYS[2])
return 1
";

/// The folder's generation, then its copy and the copy's remaining lifetime (`''` and 0 when
/// there is none). In this order, atomically: a copy is never taken as newer than it is.
const READ: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local copy = redis.call('GET', KEYS[2])
if not copy then
  return {generation, '', 0}
end
return {generation, copy, redis.call('PTTL', KEYS[2])}
";

/// Extends a lease only if it is still ours.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

static STORE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(STORE));
static FORGET_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FORGET));
static READ_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(READ));
static RENEW_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RENEW));

/// One mount's listings as the cluster shares them.
#[derive(Debug)]
pub struct SharedListings {
    cluster: Arc<Cluster>,
    mount: String,
}

/// A listing and how old it already is (it may have been listed by another instance).
pub struct Shared {
    pub entries: Vec<Entry>,
    pub age: Duration,
    /// The folder's cluster-wide generation this listing is at least as new as (`None`:
    /// listed without the cluster, so unknown).
    pub generation: Option<u64>,
}

/// The Redis key of folder `dir`'s generation in mount `mount` (bumped by every write).
pub(super) fn generation_key(mount: &str, dir: u64) -> String {
    Cluster::key("listing-gen", &format!("{mount}:{dir}"))
}

/// The name of the lease on folder `dir` of `mount` (what `Cluster::lease` takes).
pub fn lease_name(mount: &str, dir: u64) -> String {
    format!("listing:{mount}:{dir}")
}

impl SharedListings {
    /// The listings of mount `mount` (its name) in `cluster`.
    pub fn new(cluster: Arc<Cluster>, mount: &str) -> SharedListings {
        SharedListings {
            cluster,
            mount: mount.to_string(),
        }
    }

    fn keys(&self, dir: u64) -> (String, String) {
        (
            generation_key(&self.mount, dir),
            Cluster::key("listing", &format!("{}:{dir}", self.mount)),
        )
    }

    /// Folder `dir`'s listing: the cluster's copy when there is one (unless `fresh`: a client
    /// asked for a new listing), else listed by `list` here under the cluster's lease, or by
    /// the instance holding it. Without Redis, `list` alone.
    pub async fn get<F, Fut>(
        &self,
        dir: u64,
        ttl: Duration,
        fresh: bool,
        list: F,
    ) -> Result<Shared, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Entry>, Error>>,
    {
        match self.cooperate(dir, ttl, fresh).await {
            Ok(Turn::Copy(shared)) => return Ok(shared),
            Ok(Turn::Mine(lease, generation)) => {
                let tag = generation.parse().ok();
                let entries = self.list_holding(&lease, list).await;
                if let Ok(entries) = &entries {
                    self.store(dir, ttl, generation, entries).await;
                }
                self.cluster.release(lease).await;
                return entries.map(|entries| Shared {
                    entries,
                    age: Duration::ZERO,
                    generation: tag,
                });
            }
            Ok(Turn::Alone) => {}
            Err(e) => {
                tracing::debug!(error = %e, "listing a folder without the cluster");
            }
        }
        list().await.map(|entries| Shared {
            entries,
            age: Duration::ZERO,
            generation: None,
        })
    }

    /// Whose turn it is to list `dir`: a copy to read, the lease to list under, or nobody's
    /// (list alone: the copy would be too large, or another instance took too long).
    async fn cooperate(&self, dir: u64, ttl: Duration, fresh: bool) -> Result<Turn, Unavailable> {
        let name = lease_name(&self.mount, dir);
        let started = Instant::now();
        let mut look = !fresh;
        loop {
            if look {
                match self.read(dir, ttl).await? {
                    Found::Copy(shared) => return Ok(Turn::Copy(shared)),
                    Found::TooLarge => return Ok(Turn::Alone),
                    Found::Nothing => {}
                }
            }
            look = true;
            // The generation is read before the lease is taken: a write after it makes the
            // listing this instance is about to make too old to share.
            let generation = self.generation(dir).await?;
            if let Some(lease) = self.cluster.lease(&name, LEASE_TTL).await? {
                if !fresh {
                    // Another instance may have stored it between the look and the lease.
                    if let Found::Copy(shared) = self.read(dir, ttl).await? {
                        self.cluster.release(lease).await;
                        return Ok(Turn::Copy(shared));
                    }
                }
                return Ok(Turn::Mine(lease, generation));
            }
            if started.elapsed() > MAX_WAIT {
                tracing::warn!(mount = %self.mount, dir, "another instance has been listing this folder for too long; listing it here");
                return Ok(Turn::Alone);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `list` while renewing the lease.
    async fn list_holding<F, Fut>(&self, lease: &super::Lease, list: F) -> Result<Vec<Entry>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Entry>, Error>>,
    {
        let listing = list();
        tokio::pin!(listing);
        loop {
            tokio::select! {
                result = &mut listing => return result,
                () = tokio::time::sleep(RENEW_EVERY) => {
                    let (key, holder) = lease.parts();
                    let renewed = self.cluster.run(|mut c| async move {
                        RENEW_SCRIPT
                            .key(key)
                            .arg(holder)
                            .arg(LEASE_TTL.as_millis() as u64)
                            .invoke_async::<i64>(&mut c)
                            .await
                    }).await;
                    if let Err(e) = renewed {
                        tracing::debug!(error = %e, "could not renew a listing lease");
                    }
                }
            }
        }
    }

    async fn generation(&self, dir: u64) -> Result<String, Unavailable> {
        let (gen_key, _) = self.keys(dir);
        let generation: Option<String> = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&gen_key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        Ok(generation.unwrap_or_else(|| "0".into()))
    }

    /// The copy of `dir`, with how long ago it was listed (from what is left of its `ttl`).
    async fn read(&self, dir: u64, ttl: Duration) -> Result<Found, Unavailable> {
        let (gen_key, copy_key) = self.keys(dir);
        let (generation, text, left_ms): (String, String, i64) = self
            .cluster
            .run(|mut c| async move {
                READ_SCRIPT
                    .key(&gen_key)
                    .key(&copy_key)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if text.is_empty() {
            return Ok(Found::Nothing);
        }
        if text == TOO_LARGE {
            return Ok(Found::TooLarge);
        }
        match decode(&text) {
            Some(entries) => Ok(Found::Copy(Shared {
                entries,
                age: ttl.saturating_sub(Duration::from_millis(left_ms.max(0) as u64)),
                generation: generation.parse().ok(),
            })),
            // Not ours (another version's encoding): as if there were none.
            None => Ok(Found::Nothing),
        }
    }

    /// Stores the copy (or the mark of one too large) unless a write came since `generation`.
    async fn store(&self, dir: u64, ttl: Duration, generation: String, entries: &[Entry]) {
        let mut text = encode(entries);
        if text.len() > MAX_COPY_BYTES {
            tracing::info!(mount = %self.mount, dir, entries = entries.len(), "a folder too large to share with the other instances; each lists it on its own");
            text = TOO_LARGE.to_string();
        }
        let (gen_key, copy_key) = self.keys(dir);
        let stored = self
            .cluster
            .run(|mut c| async move {
                STORE_SCRIPT
                    .key(&gen_key)
                    .key(&copy_key)
                    .arg(generation)
                    .arg(text)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Err(e) = stored {
            tracing::debug!(error = %e, "could not share a listing with the other instances");
        }
    }

    /// Drops the copy of `dir` and makes any listing of it still running too old to share:
    /// called for every write's invalidation, before the other instances are told.
    pub async fn forget(&self, dir: u64) -> Result<(), Unavailable> {
        let (gen_key, copy_key) = self.keys(dir);
        self.cluster
            .run(|mut c| async move {
                FORGET_SCRIPT
                    .key(&gen_key)
                    .key(&copy_key)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }
}

enum Turn {
    Copy(Shared),
    Mine(super::Lease, String),
    Alone,
}

enum Found {
    Copy(Shared),
    TooLarge,
    Nothing,
}

/// One entry in the copy: a JSON array, no field names (about 80 bytes for a file with an
/// MD5): id, name, folder (0/1), size, md5, version, modified and created (seconds and
/// nanoseconds since 1970, so the ETag, which may include it, is the same on every instance).
#[derive(Serialize, Deserialize)]
struct Compact(
    u64,
    String,
    u8,
    u64,
    Option<String>,
    Option<String>,
    i64,
    u32,
    i64,
    u32,
);

/// The version tag in front of every copy: a copy of another encoding is not read.
const ENCODING: &str = "v1\n";

fn encode(entries: &[Entry]) -> String {
    let compact: Vec<Compact> = entries
        .iter()
        .map(|e| {
            let (ms, mn) = split_time(e.modified);
            let (cs, cn) = split_time(e.created);
            Compact(
                e.id,
                e.name.clone(),
                u8::from(e.is_dir),
                e.size,
                e.md5.clone(),
                e.version.clone(),
                ms,
                mn,
                cs,
                cn,
            )
        })
        .collect();
    let mut text = ENCODING.to_string();
    // Serialising plain data into a String cannot fail.
    text.push_str(&serde_json::to_string(&compact).unwrap_or_default());
    text
}

fn decode(text: &str) -> Option<Vec<Entry>> {
    let compact: Vec<Compact> = serde_json::from_str(text.strip_prefix(ENCODING)?).ok()?;
    Some(
        compact
            .into_iter()
            .map(|c| Entry {
                id: c.0,
                name: c.1,
                is_dir: c.2 != 0,
                size: c.3,
                md5: c.4,
                version: c.5,
                modified: join_time(c.6, c.7),
                created: join_time(c.8, c.9),
            })
            .collect(),
    )
}

fn split_time(t: SystemTime) -> (i64, u32) {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            // Before 1970: whole seconds back, then nanoseconds forward.
            let back = e.duration();
            let secs = back.as_secs() as i64 + i64::from(back.subsec_nanos() > 0);
            let nanos = (1_000_000_000 - back.subsec_nanos()) % 1_000_000_000;
            (-secs, nanos)
        }
    }
}

fn join_time(secs: i64, nanos: u32) -> SystemTime {
    let base = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    base + Duration::from_nanos(u64::from(nanos.min(999_999_999)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, t: SystemTime) -> Entry {
        Entry {
            id,
            name: format!("naïve \"{id}\".txt"),
            is_dir: id.is_multiple_of(2),
            size: id * 7,
            md5: id
                .is_multiple_of(3)
                .then(|| "d41d8cd98f00b204e9800998ecf8427e".into()),
            version: id.is_multiple_of(5).then(|| "v-1".into()),
            modified: t,
            created: t + Duration::from_millis(1500),
        }
    }

    #[test]
    fn a_copy_reads_back_as_the_same_entries() {
        let times = [
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            SystemTime::UNIX_EPOCH - Duration::new(86_400, 5),
        ];
        let entries: Vec<Entry> = (0..30).map(|i| entry(i, times[i as usize % 3])).collect();
        let text = encode(&entries);
        assert_eq!(decode(&text), Some(entries));
        assert!(decode("v0\n[]").is_none());
        assert!(decode(TOO_LARGE).is_none());
    }

    #[test]
    fn a_thousand_entries_stay_compact() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let entries: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                id: 10_000_000 + i,
                name: format!("episode {i:04}.mkv"),
                is_dir: false,
                size: 1 << 30,
                md5: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                version: None,
                modified: t,
                created: t,
            })
            .collect();
        let len = encode(&entries).len();
        assert!(len < 120 * 1000, "{len} bytes");
    }
}
