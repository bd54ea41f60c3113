//! The access-token manager: one per client id, shared by every mount that uses it.
//!
//! 123 allows 3 live tokens per client id and issuing a fourth evicts the oldest, so a token is
//! reused until 5 minutes before `expiredAt`, persisted in `state_dir` so a restart does not burn
//! a slot, and refreshed only by the first caller that sees it fail. A failed refresh never
//! latches the mount dead: callers get an error for a growing back-off, then it is tried again.
//!
//! With `[cluster]` the token is also kept in Redis, one per client id for every instance: a
//! token another instance got is adopted, and a refresh is single-flight across instances (the
//! one holding a short lease asks 123, the others wait and read its token). While Redis is
//! unavailable the manager works alone, as without a cluster.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backend::{Error, TokenState};

/// Refresh this long before the token's announced expiry.
const EARLY_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Longest wait between failed refresh attempts.
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(60);
/// How long one instance may hold the cluster's refresh lease: longer than one refresh takes,
/// short enough that the others take over soon after an instance died holding it.
const REFRESH_LEASE: Duration = Duration::from_secs(20);
/// How often an instance waiting for another's refresh looks for the new token.
const LEASE_POLL: Duration = Duration::from_millis(100);
/// The kind of key tokens are kept under in the cluster.
const TOKEN_KIND: &str = "token";

/// A bearer token and when 123 says it expires. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Token {
    fn usable_at(&self, now: SystemTime) -> bool {
        let now = unix(now);
        now + EARLY_REFRESH.as_secs() < self.expires_at
    }
}

struct Failure {
    at: tokio::time::Instant,
    backoff: Duration,
    error: Error,
}

/// Holds the current token and serialises refreshes.
pub struct TokenManager {
    current: Mutex<Option<Token>>,
    failure: Mutex<Option<Failure>>,
    refresh_lock: tokio::sync::Mutex<()>,
    persist_path: Option<PathBuf>,
    /// The cluster and this token's name there (a digest of API base and client id).
    shared: Option<(Arc<crate::cluster::Cluster>, String)>,
}

impl TokenManager {
    /// `persist_path` is the file the token is kept in across restarts (created 0600).
    pub fn new(persist_path: Option<PathBuf>) -> Self {
        let current = persist_path.as_ref().and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            serde_json::from_str::<Token>(&text).ok()
        });
        Self {
            current: Mutex::new(current),
            failure: Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            persist_path,
            shared: None,
        }
    }

    /// The same manager keeping its token in the cluster under `name`, shared with every
    /// instance.
    pub fn shared(mut self, cluster: Arc<crate::cluster::Cluster>, name: String) -> Self {
        self.shared = Some((cluster, name));
        self
    }

    /// The current state, for readiness reports.
    pub fn state(&self) -> TokenState {
        if let Some(f) = lock(&self.failure).as_ref() {
            return TokenState::Failing {
                message: f.error.to_string(),
            };
        }
        match lock(&self.current).as_ref() {
            Some(t) => TokenState::Valid {
                expires_at: t.expires_at,
            },
            None => TokenState::Empty,
        }
    }

    /// A usable token: the cached one, or a fresh one from `fetch` (called by one caller at a
    /// time; the others wait and reuse its result).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, Error>>,
    {
        if let Some(t) = self.usable() {
            return Ok(t);
        }
        let _guard = self.refresh_lock.lock().await;
        if let Some(t) = self.usable() {
            return Ok(t);
        }
        self.refresh_shared(None, fetch).await
    }

    /// Called after 123 answered 401 to `failed`: refreshes only if `failed` is still the
    /// current token, so N concurrent 401s cause one refresh.
    pub async fn refresh_after_401<F, Fut>(&self, failed: &Token, fetch: F) -> Result<Token, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, Error>>,
    {
        let _guard = self.refresh_lock.lock().await;
        if let Some(t) = lock(&self.current).as_ref() {
            if t != failed && t.usable_at(SystemTime::now()) {
                return Ok(t.clone());
            }
        }
        self.refresh_shared(Some(failed), fetch).await
    }

    /// A new token, under the refresh lock: alone, `fetch`; in a cluster, the cluster's token
    /// when it is usable (and not `failed`), else one instance at a time fetches while the
    /// others wait for its token.
    async fn refresh_shared<F, Fut>(&self, failed: Option<&Token>, fetch: F) -> Result<Token, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, Error>>,
    {
        let Some((cluster, name)) = &self.shared else {
            return self.refresh_locked(fetch).await;
        };
        let fresh = |t: &Token| Some(t) != failed && t.usable_at(SystemTime::now());
        let lease = loop {
            match cluster.get_json::<Token>(TOKEN_KIND, name).await {
                Ok(Some(t)) if fresh(&t) => return Ok(self.adopt(t)),
                Ok(_) => {}
                Err(_) => break None,
            }
            match cluster
                .lease(&format!("{TOKEN_KIND}:{name}"), REFRESH_LEASE)
                .await
            {
                Ok(Some(lease)) => break Some(lease),
                // Another instance is refreshing: wait for its token (the caller's deadline
                // bounds the wait; an expired lease is taken over).
                Ok(None) => {
                    tracing::debug!("another instance is refreshing the 123 token; waiting for it");
                    tokio::time::sleep(LEASE_POLL).await
                }
                Err(_) => break None,
            }
        };
        let Some(lease) = lease else {
            // Redis is unavailable: this instance refreshes alone.
            return self.refresh_locked(fetch).await;
        };
        // The holder before us may have finished between our read and our lease.
        if let Ok(Some(t)) = cluster.get_json::<Token>(TOKEN_KIND, name).await {
            if fresh(&t) {
                cluster.release(lease).await;
                return Ok(self.adopt(t));
            }
        }
        let result = self.refresh_locked(fetch).await;
        if let Ok(t) = &result {
            let ttl = Duration::from_secs(t.expires_at.saturating_sub(unix(SystemTime::now())));
            if let Err(e) = cluster.put_json(TOKEN_KIND, name, t, Some(ttl)).await {
                tracing::warn!(error = %e, "could not share the new 123 token with the cluster");
            }
        }
        cluster.release(lease).await;
        result
    }

    /// Takes a token another instance obtained as this one's.
    fn adopt(&self, token: Token) -> Token {
        *lock(&self.failure) = None;
        let changed = lock(&self.current).as_ref() != Some(&token);
        if changed {
            *lock(&self.current) = Some(token.clone());
            self.persist(&token);
        }
        token
    }

    fn usable(&self) -> Option<Token> {
        lock(&self.current)
            .as_ref()
            .filter(|t| t.usable_at(SystemTime::now()))
            .cloned()
    }

    async fn refresh_locked<F, Fut>(&self, fetch: F) -> Result<Token, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Token, Error>>,
    {
        let previous_backoff = {
            let failure = lock(&self.failure);
            match failure.as_ref() {
                Some(f) if f.at.elapsed() < f.backoff => return Err(f.error.clone()),
                Some(f) => Some(f.backoff),
                None => None,
            }
        };
        match fetch().await {
            Ok(token) => {
                *lock(&self.failure) = None;
                *lock(&self.current) = Some(token.clone());
                self.persist(&token);
                Ok(token)
            }
            Err(error) => {
                let backoff = previous_backoff
                    .map(|b| (b * 2).min(MAX_FAILURE_BACKOFF))
                    .unwrap_or(Duration::from_secs(1));
                tracing::warn!(error = %error, retry_in_s = backoff.as_secs(), "123 token refresh failed");
                *lock(&self.failure) = Some(Failure {
                    at: tokio::time::Instant::now(),
                    backoff,
                    error: error.clone(),
                });
                Err(error)
            }
        }
    }

    fn persist(&self, token: &Token) {
        let Some(path) = &self.persist_path else {
            return;
        };
        let result = crate::state_files::write_json_atomic(path, token);
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not persist the 123 token; a restart will request a new one");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unix seconds of `t` (0 before the epoch).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
