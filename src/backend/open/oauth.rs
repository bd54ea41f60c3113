//! Open mounts without developer keys (issue 21; docs/123.md, open §2.2–§2.4): the OAuth token
//! endpoint with a refresh token of the user's own app, and the rotated refresh token kept in
//! `state_dir`.
//!
//! 123's refresh tokens are single-use: each refresh returns a new one and the old one is dead.
//! Losing the new one locks the mount out until the user authorizes again, so it is written to
//! disk (atomically, fsynced, 0600) before anything uses the new access token, and it is read
//! back at start. The config's `refresh_token` is only the first seed: the file remembers which
//! seed it grew from, so pasting a new seed into the config wins over an old file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::token::{unix, Token};
use crate::backend::{deadline, Error, Upstream};

/// The OAuth token endpoint on the Open API host.
pub const TOKEN_PATH: &str = "/api/v1/oauth2/access_token";
/// The scope 123 grants (fixed, docs/123.md, open §2.2).
pub const SCOPE: &str = "user:base,file:all:read,file:all:write";
/// The documented access-token lifetime, assumed when an answer says `expires_in: 0` (a
/// downstream fork reports 0 "sometimes"; assuming less than the truth only refreshes early,
/// and a 401 refreshes anyway).
const DEFAULT_EXPIRES_IN: u64 = 2 * 3600;
/// Largest token answer read.
pub const ANSWER_LIMIT: usize = 64 * 1024;

/// What the token file holds.
#[derive(Serialize, Deserialize)]
struct Persisted {
    /// A digest of the config seed this token descends from.
    seed: String,
    refresh_token: String,
    /// Unix seconds of the rotation.
    updated_at: u64,
}

/// Where the current refresh token came from, for `check` and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshSource {
    /// The config's value (nothing rotated yet, or the config got a new seed).
    ConfigSeed,
    /// A rotated token read from, or written to, `state_dir`.
    StateDir { updated_at: u64 },
}

/// The current refresh token of one login, and the file it is kept in.
pub struct RefreshStore {
    path: Option<PathBuf>,
    seed_digest: String,
    current: Mutex<(String, RefreshSource)>,
}

impl RefreshStore {
    /// The rotated token in `path` if it grew from `seed`, else `seed` itself.
    pub fn open(path: Option<PathBuf>, seed: &str) -> Self {
        let seed_digest = digest(seed);
        let current = path
            .as_deref()
            .and_then(|p| read(p, &seed_digest))
            .unwrap_or_else(|| (seed.to_string(), RefreshSource::ConfigSeed));
        Self {
            path,
            seed_digest,
            current: Mutex::new(current),
        }
    }

    /// The refresh token to use next.
    pub fn current(&self) -> String {
        lock(&self.current).0.clone()
    }

    /// Where the current token came from.
    pub fn source(&self) -> RefreshSource {
        lock(&self.current).1
    }

    /// Keeps `token` as the next refresh token: on disk first (durably), then in memory. A
    /// failed write is logged and the token is still used: the mount keeps working until a
    /// restart, which is better than refusing a token 123 has already rotated.
    pub fn rotate(&self, token: &str) {
        if let Err(e) = self.keep(token) {
            let path = self.path.as_deref().unwrap_or(Path::new(""));
            tracing::error!(path = %path.display(), error = %e, "could not keep the rotated 123 refresh token; after a restart this mount needs a new one");
        }
    }

    /// As `rotate`, reporting a failed write: the token is used in memory either way.
    pub fn keep(&self, token: &str) -> std::io::Result<()> {
        let updated_at = unix(SystemTime::now());
        let result = match &self.path {
            Some(path) => {
                let record = Persisted {
                    seed: self.seed_digest.clone(),
                    refresh_token: token.to_string(),
                    updated_at,
                };
                crate::state_files::write_json_atomic(path, &record)
            }
            None => Ok(()),
        };
        *lock(&self.current) = (token.to_string(), RefreshSource::StateDir { updated_at });
        result
    }
}

/// A login's refresh token as the instances of a cluster share it: the same record as the file.
#[derive(Serialize, Deserialize)]
pub struct SharedRefresh {
    seed: String,
    refresh_token: String,
    updated_at: u64,
}

impl RefreshStore {
    /// The current refresh token, for the other instances of a cluster.
    pub fn shared(&self) -> SharedRefresh {
        let (token, source) = lock(&self.current).clone();
        SharedRefresh {
            seed: self.seed_digest.clone(),
            refresh_token: token,
            updated_at: match source {
                RefreshSource::StateDir { updated_at } => updated_at,
                RefreshSource::ConfigSeed => 0,
            },
        }
    }

    /// Takes the refresh token another instance rotated to, if it grew from the same seed and
    /// differs from ours (kept on disk as a rotation of our own).
    pub fn adopt(&self, shared: SharedRefresh) {
        if shared.seed == self.seed_digest
            && !shared.refresh_token.is_empty()
            && shared.refresh_token != self.current()
        {
            self.rotate(&shared.refresh_token);
        }
    }
}

/// The rotated token in the file at `path`, if it descends from the seed with `seed_digest`.
fn read(path: &Path, seed_digest: &str) -> Option<(String, RefreshSource)> {
    let text = std::fs::read(path).ok()?;
    let p: Persisted = serde_json::from_slice(&text).ok()?;
    (p.seed == seed_digest && !p.refresh_token.is_empty()).then_some((
        p.refresh_token,
        RefreshSource::StateDir {
            updated_at: p.updated_at,
        },
    ))
}

/// Where the refresh token of a login is read from at start, for `check`: the state file's
/// source if it holds a rotation of `seed`, else the seed.
pub fn source_in(path: &Path, seed: &str) -> RefreshSource {
    read(path, &digest(seed)).map_or(RefreshSource::ConfigSeed, |(_, s)| s)
}

fn digest(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::backend::auth_key::hex(&Sha256::digest(seed.as_bytes())[..16])
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token answer: the OAuth endpoint's flat JSON or the renewal service's, with every error
/// field either may use.
#[derive(Deserialize, Default)]
pub struct Answer {
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: String,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Answer {
    /// The first non-empty of the error fields, as OpenList reads them (docs/123.md, open §2.3).
    pub fn reason(&self) -> String {
        [
            &self.error_description,
            &self.text,
            &self.message,
            &self.error,
        ]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "no reason given".to_string())
    }

    /// The new token, having kept the new refresh token in `store`; `who` names the other side
    /// in errors.
    pub fn into_token(self, store: &RefreshStore, who: &str) -> Result<Token, Error> {
        if self.access_token.is_empty() || self.refresh_token.is_empty() {
            return Err(Error::Auth(format!(
                "{who} answered without a token: {}",
                self.reason()
            )));
        }
        store.rotate(&self.refresh_token);
        Ok(self.token_now())
    }

    /// The access token with its expiry counted from now (`expires_in: 0` read as the
    /// documented two hours).
    pub fn token_now(&self) -> Token {
        let expires_in = match self.expires_in {
            Some(n) if n > 0 => n as u64,
            _ => DEFAULT_EXPIRES_IN,
        };
        Token {
            access_token: self.access_token.clone(),
            expires_at: unix(SystemTime::now()) + expires_in,
        }
    }
}

/// Sends a token request and reads its answer (at most `ANSWER_LIMIT` bytes). HTTP 429 is rate
/// limiting (the endpoint allows 100 a minute per uid and blocks the IP past it), a 5xx with no
/// readable reason an outage; anything else is judged by its fields.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    first_byte: Duration,
    who: &str,
) -> Result<Answer, Error> {
    let timeout = deadline::attempt(first_byte)?;
    let mut response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| Error::Transport(format!("{who}: {e}")))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Transport(format!("{who}: {e}")))?
    {
        if body.len() + chunk.len() > ANSWER_LIMIT {
            return Err(Error::Unavailable(format!(
                "{who} sent an oversized answer"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let answer: Option<Answer> = serde_json::from_slice(&body).ok();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        });
    }
    match answer {
        Some(a) if status.is_success() => Ok(a),
        Some(a) if !a.access_token.is_empty() => Ok(a),
        Some(a) if status.is_server_error() && a.reason() == "no reason given" => Err(
            Error::Unavailable(format!("{who} answered HTTP {}", status.as_u16())),
        ),
        Some(a) => Err(Error::Auth(format!(
            "{who} refused the refresh token (HTTP {}): {}",
            status.as_u16(),
            a.reason()
        ))),
        None if status.is_server_error() => Err(Error::Unavailable(format!(
            "{who} answered HTTP {}",
            status.as_u16()
        ))),
        None => Err(Error::Auth(format!(
            "{who} answered HTTP {} without a readable token answer",
            status.as_u16()
        ))),
    }
}

/// `POST /api/v1/oauth2/access_token?grant_type=refresh_token…` (parameters in the query
/// string, as 123 documents them; the answer is flat).
pub async fn refresh(
    upstream: &Upstream,
    api_base: &str,
    client_id: &str,
    client_secret: &str,
    store: &RefreshStore,
) -> Result<Token, Error> {
    let refresh_token = store.current();
    let mut query = vec![
        ("client_id", client_id),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];
    if !client_secret.is_empty() {
        query.push(("client_secret", client_secret));
    }
    let request = upstream
        .http
        .post(format!("{api_base}{TOKEN_PATH}"))
        .header("Platform", "open_platform")
        .query(&query);
    let result = exchange(
        request,
        upstream.timeouts.first_byte,
        "123's OAuth token endpoint",
    )
    .await
    .and_then(|a| a.into_token(store, "123's OAuth token endpoint"));
    upstream.metrics.token_refresh(result.is_ok());
    result
}

/// Exchanges an authorization code for the first token pair (the `authorize` command).
pub async fn exchange_code(
    upstream: &Upstream,
    api_base: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
) -> Result<Answer, Error> {
    let request = upstream
        .http
        .post(format!("{api_base}{TOKEN_PATH}"))
        .header("Platform", "open_platform")
        .query(&[
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ]);
    let a = exchange(
        request,
        upstream.timeouts.first_byte,
        "123's OAuth token endpoint",
    )
    .await?;
    if a.access_token.is_empty() || a.refresh_token.is_empty() {
        return Err(Error::Auth(format!(
            "123 did not exchange the code: {}",
            a.reason()
        )));
    }
    Ok(a)
}

/// The expiry (Unix seconds) a JWT-shaped access token carries in its `exp` claim, if it is
/// readable. Only used to warn before a pasted token runs out; nothing is verified.
pub fn jwt_expiry(token: &str) -> Option<u64> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    if payload.len() > 8 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_prefers_a_rotation_of_the_same_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens").join("refresh-x.json");
        let s = RefreshStore::open(Some(path.clone()), "seed-1");
        assert_eq!(s.current(), "seed-1");
        assert_eq!(s.source(), RefreshSource::ConfigSeed);
        s.rotate("rt-2");
        assert_eq!(s.current(), "rt-2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = RefreshStore::open(Some(path.clone()), "seed-1");
        assert_eq!(again.current(), "rt-2");
        assert!(matches!(again.source(), RefreshSource::StateDir { .. }));
        assert!(matches!(
            source_in(&path, "seed-1"),
            RefreshSource::StateDir { .. }
        ));
        // a new seed in the config wins over the old file
        let fresh = RefreshStore::open(Some(path.clone()), "seed-9");
        assert_eq!(fresh.current(), "seed-9");
        assert_eq!(source_in(&path, "seed-9"), RefreshSource::ConfigSeed);
    }

    #[test]
    fn answers_are_read_leniently() {
        let a: Answer = serde_json::from_str(r#"{"text":"boom"}"#).unwrap();
        assert_eq!(a.reason(), "boom");
        let a: Answer =
            serde_json::from_str(r#"{"error":"invalid_grant","error_description":"gone"}"#)
                .unwrap();
        assert_eq!(a.reason(), "gone");
        let store = RefreshStore::open(None, "s");
        let a: Answer =
            serde_json::from_str(r#"{"access_token":"a","refresh_token":"r2","expires_in":0}"#)
                .unwrap();
        let t = a.into_token(&store, "x").unwrap();
        assert_eq!(store.current(), "r2");
        assert!(t.expires_at >= unix(SystemTime::now()) + DEFAULT_EXPIRES_IN - 5);
    }

    #[test]
    fn jwt_expiry_reads_exp() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1234,"iat":1}"#);
        assert_eq!(jwt_expiry(&format!("eyJh.{payload}.sig")), Some(1234));
        assert_eq!(jwt_expiry("opaque"), None);
    }
}
