//! Client junk (`dav/junk.rs`) seen by its writer on every instance (issue 19): each user's junk
//! of a mount is one value in Redis with a version. Before a request an instance reads the
//! version (one small GET) and, when it moved, the junk; after a request that changed the
//! user's junk here, it stores the user's junk again and bumps the version before answering.
//! The user is named by a digest. Junk is disposable: two instances changing one user's junk
//! at the same moment may lose one of the two changes, never more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{lock, Cluster, Unavailable};
use crate::dav::junk::{JunkFile, JunkStore};

/// Junk lives a day (as in one process); the copy with it.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// One file in the copy: path, bytes (base64), modified (ms since 1970).
#[derive(Serialize, Deserialize)]
struct File(String, String, u64);

/// One mount's junk as the cluster shares it.
pub struct SharedJunk {
    cluster: Arc<Cluster>,
    mount: String,
    /// Per user: the version last read or written, and this instance's change count then.
    seen: Mutex<HashMap<String, (u64, u64)>>,
}

impl SharedJunk {
    /// The junk of mount `mount` (its name) in `cluster`.
    pub fn new(cluster: Arc<Cluster>, mount: &str) -> SharedJunk {
        SharedJunk {
            cluster,
            mount: mount.to_string(),
            seen: Mutex::default(),
        }
    }

    fn keys(&self, user: &str) -> (String, String) {
        use sha2::{Digest, Sha256};
        let who = crate::backend::auth_key::hex(&Sha256::digest(user.as_bytes())[..16]);
        let name = format!("{}:{who}", self.mount);
        (
            Cluster::key("junk", &name),
            Cluster::key("junk-version", &name),
        )
    }

    /// Brings `user`'s junk in `store` up to the cluster's (before a request).
    pub async fn pull(&self, store: &JunkStore, user: &str) -> Result<(), Unavailable> {
        let (key, version_key) = self.keys(user);
        let version: Option<u64> = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&version_key)
                    .query_async::<Option<u64>>(&mut c)
                    .await
            })
            .await?;
        let version = version.unwrap_or(0);
        if lock(&self.seen).get(user).map(|s| s.0) == Some(version) {
            return Ok(());
        }
        let text: Option<String> = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await?;
        let files: Vec<File> = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let files = files
            .into_iter()
            .filter_map(|File(path, b64, ms)| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let file = JunkFile {
                    bytes: bytes.into(),
                    modified: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
                };
                Some((path, file))
            })
            .collect();
        store.replace_user(user, files);
        lock(&self.seen).insert(user.to_string(), (version, store.changes(user)));
        Ok(())
    }

    /// Stores `user`'s junk for every instance if this instance's clients changed it since it
    /// was last read or stored (after a request, before its answer).
    pub async fn push(&self, store: &JunkStore, user: &str) -> Result<(), Unavailable> {
        let changes = store.changes(user);
        if lock(&self.seen).get(user).map(|s| s.1) == Some(changes) {
            return Ok(());
        }
        let files: Vec<File> = store
            .of_user(user)
            .into_iter()
            .map(|(path, f)| {
                let ms = f
                    .modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                File(
                    path,
                    base64::engine::general_purpose::STANDARD.encode(&f.bytes),
                    ms,
                )
            })
            .collect();
        let text = serde_json::to_string(&files).map_err(|e| Unavailable(e.to_string()))?;
        let (key, version_key) = self.keys(user);
        let ttl = TTL.as_millis() as u64;
        let (version,): (u64,) = self
            .cluster
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(text)
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .cmd("INCR")
                    .arg(&version_key)
                    .cmd("PEXPIRE")
                    .arg(&version_key)
                    .arg(ttl)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        lock(&self.seen).insert(user.to_string(), (version, changes));
        Ok(())
    }
}
