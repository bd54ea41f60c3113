//! Several gateway instances serving the same 123 accounts (issue 19): what they share goes
//! through one Redis named by `[cluster] redis_url`. Without that section nothing here runs.
//!
//! The layers never see Redis: they hold an `Option<Arc<Cluster>>` (in `backend::Upstream`) and
//! call its few operations: JSON values with an expiry and a short lease (`tokens.rs`: one
//! access token per client id for the whole cluster), the shared rate budget (`limiter.rs`),
//! folder invalidations (`invalidate.rs`) and
//! cold listings fetched once for every instance (`listings.rs`), one web login session per
//! account (`sessions.rs`) the login lockout (`lockout.rs`),
//! client junk (`junk.rs`) and dead properties with client modification times (`props.rs`). Every operation is bounded in time; when Redis
//! does not answer the cluster is *unavailable*: callers fall back to what one instance can do
//! alone safely (local caches, a conservative local limiter) and writes are refused with 503
//! until Redis is back, which a background task notices within a second.

mod invalidate;
mod junk;
mod limiter;
mod listings;
mod lockout;
mod pending;
mod props;
mod sessions;
mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;

pub use invalidate::Invalidation;
pub use junk::SharedJunk;
pub use listings::{lease_name as listing_lease_name, Shared, SharedListings};
pub use lockout::LoginState;
pub use pending::{
    PendingOp, PendingRecord, RemotePending, Unsigned, REFRESH_EVERY as PENDING_REFRESH,
    SIGNATURE_HEADER,
};
pub use props::SharedProps;
pub use sessions::{Renewal, SharedSession};
pub use tokens::Lease;

use crate::backend::pacer::QpsLimiter;
use crate::config::ClusterConfig;

/// The prefix of every key and channel this gateway uses in Redis.
const PREFIX: &str = "pan123:";
/// The longest any one Redis operation may take before Redis counts as unavailable.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the connection is checked (and re-made after an outage).
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// The share of 123's budget one instance takes while Redis is unavailable and
/// `cluster.instances` is not set.
const UNKNOWN_INSTANCES: u32 = 4;
/// What a client is told to wait when a write is refused because Redis is unavailable.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a cluster operation did not happen: Redis did not answer (or answered an error). The
/// text names the cause without the URL (which may carry a password).
#[derive(Clone, Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redis is unavailable: {}", self.0)
    }
}

/// This instance's handle on the shared state.
pub struct Cluster {
    client: redis::Client,
    conn: tokio::sync::RwLock<Option<ConnectionManager>>,
    available: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// A random name of this instance, so it ignores its own invalidations.
    instance: String,
    /// `cluster.instances`: divides 123's budget while Redis is unavailable.
    instances: Option<u32>,
    /// The conservative limiter used while Redis is unavailable.
    local: QpsLimiter,
    /// What to do with another instance's invalidation (set once by the server).
    on_invalidate: Mutex<Option<invalidate::Handler>>,
    /// Pending uploads published to the others (`pending.rs`).
    pending: pending::PendingState,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("instance", &self.instance)
            .field("available", &self.available())
            .finish()
    }
}

impl Cluster {
    /// Connects to Redis (waiting at most a couple of seconds: an instance starts and serves
    /// reads while Redis is down) and starts the task that watches the connection and the one
    /// that receives other instances' invalidations.
    pub async fn start(config: &ClusterConfig) -> anyhow::Result<Arc<Cluster>> {
        let client = redis::Client::open(config.redis_url.expose())
            .map_err(|e| anyhow::anyhow!("cluster.redis_url: {:?}", e.kind()))?;
        let cluster = Arc::new(Cluster {
            client,
            conn: tokio::sync::RwLock::new(None),
            available: AtomicBool::new(false),
            last_error: Mutex::new(Some("not connected yet".into())),
            instance: format!("{:016x}", rand::random::<u64>()),
            instances: config.instances,
            local: QpsLimiter::new(),
            on_invalidate: Mutex::new(None),
            pending: pending::PendingState::default(),
        });
        cluster.check().await;
        if cluster.available() {
            tracing::info!(instance = %cluster.instance, "connected to the cluster's Redis");
        } else {
            tracing::warn!(
                error = %cluster.error().unwrap_or_default(),
                "the cluster's Redis is unavailable; serving reads alone and refusing writes until it answers"
            );
        }
        spawn_watch(Arc::downgrade(&cluster));
        invalidate::spawn_subscriber(Arc::downgrade(&cluster));
        Ok(cluster)
    }

    /// Whether Redis answered the last time it was asked.
    pub fn available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Fails at once while Redis is unavailable (the watch notices when it is back), so a
    /// request does not wait for an answer that will not come.
    fn usable(&self) -> Result<(), Unavailable> {
        if self.available() {
            return Ok(());
        }
        Err(Unavailable(self.error().unwrap_or_default()))
    }

    /// Why Redis is unavailable, if it is (for `/-/readyz`; never holds the URL).
    pub fn error(&self) -> Option<String> {
        if self.available() {
            return None;
        }
        lock(&self.last_error).clone()
    }

    /// The share of 123's budget this instance may use alone: 1 / `cluster.instances`, or a
    /// quarter when that is not set.
    pub fn local_share(&self) -> u32 {
        self.instances.unwrap_or(UNKNOWN_INSTANCES).max(1)
    }

    /// Runs one Redis operation within `OP_TIMEOUT`, noting whether Redis answered.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let Some(conn) = self.conn.read().await.clone() else {
            return Err(self.failed("not connected".into()));
        };
        match tokio::time::timeout(OP_TIMEOUT, op(conn)).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Ok(value)
            }
            Ok(Err(e)) => Err(self.failed(describe(&e))),
            Err(_) => Err(self.failed(format!("no answer within {} s", OP_TIMEOUT.as_secs()))),
        }
    }

    fn succeeded(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            tracing::info!("the cluster's Redis answers again; writes are accepted");
        }
    }

    fn failed(&self, error: String) -> Unavailable {
        if self.available.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %error, "the cluster's Redis is unavailable; writes answer 503 until it is back");
        }
        *lock(&self.last_error) = Some(error.clone());
        Unavailable(error)
    }

    /// Makes the connection if there is none, then PINGs.
    async fn check(&self) {
        if self.conn.read().await.is_none() {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_secs(1))
                .set_response_timeout(OP_TIMEOUT)
                .set_number_of_retries(1);
            let made = tokio::time::timeout(
                OP_TIMEOUT,
                self.client.get_connection_manager_with_config(config),
            )
            .await;
            match made {
                Ok(Ok(conn)) => *self.conn.write().await = Some(conn),
                Ok(Err(e)) => {
                    self.failed(describe(&e));
                    return;
                }
                Err(_) => {
                    self.failed("no connection within 2 s".into());
                    return;
                }
            }
        }
        let _ = self
            .run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await;
    }

    /// A key of this gateway's in Redis.
    fn key(kind: &str, name: &str) -> String {
        format!("{PREFIX}{kind}:{name}")
    }
}

/// Watches the connection while the cluster lives: a PING every `CHECK_INTERVAL`, which also
/// re-makes the connection after an outage.
fn spawn_watch(weak: Weak<Cluster>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECK_INTERVAL).await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            cluster.check().await;
        }
    });
}

/// A Redis error in words, without the URL.
fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".into()
    } else {
        format!("{:?}: {}", e.kind(), e.detail().unwrap_or(""))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
