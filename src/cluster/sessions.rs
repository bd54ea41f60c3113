//! One web login session per 123 account for the whole cluster (issue 19): a personal mount's
//! session token is kept in Redis under a digest of the login host and username (never the
//! username itself, which is a phone number or e-mail address), and a new login is made by one
//! instance at a time under a short lease; the others wait and adopt its token. A refused login
//! is shared for a short while too, so the instances do not each try the same password against
//! an account 123 is already wary of.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Cluster, Unavailable};

/// The kind of key sessions are kept under.
const KIND: &str = "web-session";
/// How long one instance may hold the login lease: longer than a login may take.
const LEASE_TTL: Duration = Duration::from_secs(40);
/// The longest a waiter waits for another instance's login before logging in itself.
const MAX_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// How long a shared refusal is answered without asking 123 (each instance then backs off on
/// its own, as one process does).
const REFUSAL_TTL: Duration = Duration::from_secs(15);
/// How long a token whose expiry is unknown is kept.
const UNKNOWN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What is stored for an account.
#[derive(Serialize, Deserialize)]
enum Stored {
    Token(String),
    Refused(String),
}

/// The outcome of [`SharedSession::renew`].
pub enum Renewal {
    /// Another instance's token (or one this instance did not know yet).
    Adopted(String),
    /// This instance logged in.
    LoggedIn(String),
    /// The login was refused (here or, a moment ago, on another instance): 123's words.
    Refused(String),
}

/// One web account's session as the cluster shares it.
pub struct SharedSession {
    cluster: Arc<Cluster>,
    name: String,
}

impl std::fmt::Debug for SharedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSession").finish_non_exhaustive()
    }
}

impl SharedSession {
    /// The session of `username` on `login_url` in `cluster`.
    pub fn new(cluster: Arc<Cluster>, login_url: &str, username: &str) -> SharedSession {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{login_url}\n{username}").as_bytes());
        SharedSession {
            cluster,
            name: crate::backend::auth_key::hex(&digest[..16]),
        }
    }

    /// A token other than `dead` (the one that drew a 401, or none): the cluster's, or got by
    /// `login` here under the cluster's lease. While Redis is unavailable, `login` alone.
    pub async fn renew<F, Fut>(&self, dead: Option<&str>, login: F) -> Renewal
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let lease = match self.wait_for_turn(dead).await {
            Ok(Turn::Done(renewal)) => return renewal,
            Ok(Turn::Mine(lease)) => Some(lease),
            Ok(Turn::Alone) => None,
            Err(e) => {
                tracing::debug!(error = %e, "logging in to 123's web API without the cluster");
                None
            }
        };
        let result = login().await;
        let (stored, ttl) = match &result {
            Ok(token) => (
                Stored::Token(token.clone()),
                token_ttl(token, std::time::SystemTime::now()),
            ),
            Err(message) => (Stored::Refused(message.clone()), REFUSAL_TTL),
        };
        if let Err(e) = self
            .cluster
            .put_json(KIND, &self.name, &stored, Some(ttl))
            .await
        {
            tracing::warn!(error = %e, "could not share the 123 web session with the cluster");
        }
        if let Some(lease) = lease {
            self.cluster.release(lease).await;
        }
        match result {
            Ok(token) => Renewal::LoggedIn(token),
            Err(message) => Renewal::Refused(message),
        }
    }

    /// What the cluster holds that answers, if anything.
    async fn look(&self, dead: Option<&str>) -> Result<Option<Renewal>, Unavailable> {
        Ok(
            match self.cluster.get_json::<Stored>(KIND, &self.name).await? {
                Some(Stored::Token(t)) if Some(t.as_str()) != dead => Some(Renewal::Adopted(t)),
                Some(Stored::Refused(m)) => Some(Renewal::Refused(m)),
                _ => None,
            },
        )
    }

    async fn wait_for_turn(&self, dead: Option<&str>) -> Result<Turn, Unavailable> {
        let started = Instant::now();
        loop {
            if let Some(renewal) = self.look(dead).await? {
                return Ok(Turn::Done(renewal));
            }
            if let Some(lease) = self.cluster.lease(&self.lease_name(), LEASE_TTL).await? {
                // Another instance may have logged in between the look and the lease.
                if let Some(renewal) = self.look(dead).await? {
                    self.cluster.release(lease).await;
                    return Ok(Turn::Done(renewal));
                }
                return Ok(Turn::Mine(lease));
            }
            if started.elapsed() > MAX_WAIT {
                return Ok(Turn::Alone);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn lease_name(&self) -> String {
        format!("{KIND}:{}", self.name)
    }
}

enum Turn {
    Done(Renewal),
    Mine(super::Lease),
    Alone,
}

/// How long a session token is kept in Redis: until its JWT `exp` when it has one.
fn token_ttl(token: &str, now: std::time::SystemTime) -> Duration {
    let now = now
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match crate::backend::open::oauth::jwt_expiry(token) {
        Some(exp) => Duration::from_secs(exp.saturating_sub(now).max(1)),
        None => UNKNOWN_TTL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_without_an_expiry_is_kept_a_week() {
        assert_eq!(
            token_ttl("not-a-jwt", std::time::SystemTime::now()),
            UNKNOWN_TTL
        );
    }
}
