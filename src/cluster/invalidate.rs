//! Listings invalidated on every instance: a write publishes the folder it changed (and waits
//! for Redis to take the message) before it is answered; each instance's subscriber drops that
//! folder from its listing cache. After a lost subscription every listing is dropped, since
//! messages sent meanwhile are gone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{lock, Cluster, Unavailable, CHECK_INTERVAL, PREFIX};

/// What another instance's write means for this one's caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The listing of folder `dir` of mount `mount` (by its name) changed.
    Folder { mount: String, dir: u64 },
    /// Messages may have been missed: every listing may be stale.
    Everything,
}

pub(super) type Handler = Arc<dyn Fn(Invalidation) + Send + Sync>;

/// One message on the channel.
#[derive(Serialize, Deserialize)]
struct Message {
    /// The publishing instance.
    from: String,
    mount: String,
    dir: u64,
}

fn channel() -> String {
    format!("{PREFIX}invalidate")
}

/// Largest message read; anything longer is not ours.
const MAX_MESSAGE: usize = 4096;

impl Cluster {
    /// Sets what this instance does with other instances' invalidations.
    pub fn on_invalidate(&self, handler: impl Fn(Invalidation) + Send + Sync + 'static) {
        *lock(&self.on_invalidate) = Some(Arc::new(handler));
    }

    /// Tells every other instance that folder `dir` of `mount` changed; returns once Redis has
    /// taken the message.
    pub async fn publish_invalidation(&self, mount: &str, dir: u64) -> Result<(), Unavailable> {
        let text = serde_json::to_string(&Message {
            from: self.instance.clone(),
            mount: mount.to_string(),
            dir,
        })
        .map_err(|e| Unavailable(e.to_string()))?;
        self.run(|mut c| async move {
            redis::cmd("PUBLISH")
                .arg(channel())
                .arg(text)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    fn deliver(&self, invalidation: Invalidation) {
        let handler = lock(&self.on_invalidate).clone();
        if let Some(handler) = handler {
            handler(invalidation);
        }
    }
}

/// Receives invalidations while the cluster lives, re-subscribing after an outage.
pub(super) fn spawn_subscriber(weak: Weak<Cluster>) {
    tokio::spawn(async move {
        let mut subscribed_before = false;
        loop {
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            let client = cluster.client.clone();
            drop(cluster);
            let pubsub = async {
                let mut p = client.get_async_pubsub().await?;
                p.subscribe(channel()).await?;
                Ok::<_, redis::RedisError>(p)
            };
            let mut pubsub = match tokio::time::timeout(super::OP_TIMEOUT, pubsub).await {
                Ok(Ok(p)) => p,
                _ => {
                    tokio::time::sleep(CHECK_INTERVAL).await;
                    continue;
                }
            };
            if subscribed_before {
                if let Some(cluster) = weak.upgrade() {
                    tracing::info!("re-subscribed to the cluster's invalidations; dropping every cached listing");
                    cluster.deliver(Invalidation::Everything);
                }
            }
            subscribed_before = true;
            let mut messages = pubsub.on_message();
            loop {
                // Woken now and then even without messages, to end with the cluster.
                let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                let msg = match next {
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(msg)) => msg,
                };
                let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                if payload.len() > MAX_MESSAGE {
                    continue;
                }
                let Ok(m) = serde_json::from_slice::<Message>(&payload) else {
                    continue;
                };
                if m.from != cluster.instance {
                    cluster.deliver(Invalidation::Folder {
                        mount: m.mount,
                        dir: m.dir,
                    });
                }
            }
            // The connection ended (Redis went away): try again after a pause.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
