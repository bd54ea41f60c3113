//! HTTP Basic authentication against argon2 password hashes.
//!
//! Argon2 is slow on purpose (tens of milliseconds of CPU per check), and WebDAV clients send
//! Basic credentials on every request. Three things keep that affordable and safe:
//!
//! * A successful check is remembered for `REMEMBER_FOR`, keyed by an HMAC-SHA256 of the
//!   credentials as the client sends them (the base64 token of the header) under a random
//!   per-process key. The cache holds only that MAC, never the password, and the MAC reveals
//!   nothing without the key. A remembered check costs that one MAC (the key's HMAC state is
//!   computed once) and a lookup: the token is decoded only when it is verified. Concurrent
//!   checks of the same credentials share one verification (the others wait for it). Failures
//!   are not remembered: when one fails, a check that waited for it verifies on its own.
//!   The store is quick_cache: a lookup is a hash, a shard read lock and one atomic bit (moka
//!   recorded each read for its housekeeping, about 1.5–2k instructions a request); it has no
//!   expiry of its own, so each entry carries its deadline, checked on every read.
//! * Verifications run on the blocking pool, at most `MAX_CONCURRENT_VERIFICATIONS` at a time,
//!   so a flood of wrong passwords queues behind that cap instead of taking every core; users
//!   whose check is remembered never wait in that queue.
//! * Their working memory (`m` KiB per hash, 19 MiB by default) is allocated for the one
//!   verification and freed after it. With the server's malloc settings (`crate::malloc`: two
//!   arenas, a fixed mmap threshold far below that size) it is mapped on its own and given back
//!   to the system when freed, so a verification does not leave 19 MiB held for good (an
//!   earlier pool of reused buffers did: one per concurrent verification, for the life of the
//!   process), and a flood of wrong passwords holds at most `MAX_CONCURRENT_VERIFICATIONS`
//!   of them at once.
//! * An unknown user costs the same argon2 work as a known one (a dummy hash with the same
//!   parameters), so response times do not tell which user names exist.
//!
//! Nothing here logs a password, a hash or a MAC.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use quick_cache::sync::{EntryAction, EntryResult};
use rand::RngCore;
use sha2::Sha256;
use subtle::Choice;
use tokio::sync::Semaphore;

use crate::config::UserConfig;

/// How long a successful check is remembered.
const REMEMBER_FOR: Duration = Duration::from_secs(5 * 60);
/// Upper bound of remembered credentials; beyond it the least used are forgotten.
const REMEMBERED_MAX: usize = 10_000;
/// Argon2 runs at once. The gateway is sized for small machines (2 cores); two verifications
/// leave the rest of the work room even under a flood of bad passwords.
const MAX_CONCURRENT_VERIFICATIONS: usize = 2;

/// An authenticated user and what it may do.
#[derive(Debug)]
pub struct User {
    pub name: String,
    /// Whether the user may change files.
    pub write: bool,
    /// `None`: every mount; otherwise the mount paths ("/open") the user sees.
    mounts: Option<Vec<String>>,
}

impl User {
    /// Whether the user may see the mount at `mount_path` ("/open", or "/" for a root mount;
    /// "open" is accepted too).
    pub fn can_see(&self, mount_path: &str) -> bool {
        match &self.mounts {
            None => true,
            Some(paths) => {
                let wanted = mount_path.trim_matches('/');
                paths.iter().any(|path| path.trim_matches('/') == wanted)
            }
        }
    }

    /// The reader of a mount that allows anonymous reads: sees that mount only, never writes.
    pub fn anonymous(mount_path: &str) -> Self {
        Self {
            name: "anonymous".into(),
            write: false,
            mounts: Some(vec![mount_path.to_string()]),
        }
    }

    fn from_config(config: &UserConfig) -> Self {
        let all = config.mounts.iter().any(|m| m == "*");
        Self {
            name: config.name.clone(),
            write: config.write,
            mounts: (!all).then(|| config.mounts.clone()),
        }
    }
}

/// The result of checking an `Authorization` header.
#[derive(Debug)]
pub enum AuthOutcome {
    Ok(Arc<User>),
    /// No `Authorization` header: answer 401 with the challenge.
    Missing,
    /// Malformed header, unknown user or wrong password.
    Invalid,
}

/// Checks Basic credentials against the configured users. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Account {
    user: Arc<User>,
    password_hash: String,
}

struct Inner {
    accounts: HashMap<String, Account>,
    /// Verified for unknown users: the parameters of a real hash, an output nobody can match.
    /// `None` when there are no users at all (then there is nothing to hide).
    dummy_hash: Option<String>,
    /// The MAC that names remembered credentials, keyed (with a random key) once: each check
    /// clones this state instead of hashing the key again.
    mac: Hmac<Sha256>,
    remembered: quick_cache::sync::Cache<[u8; 32], Remembered>,
    permits: Arc<Semaphore>,
    /// Argon2 verifications run so far.
    verifications: AtomicU64,
    /// Verifications running now, and the most seen at once.
    running: AtomicUsize,
    max_running: AtomicUsize,
}

/// A successful check, remembered until `until` (`REMEMBER_FOR` after it).
#[derive(Clone)]
struct Remembered {
    user: Arc<User>,
    until: Instant,
}

impl Remembered {
    fn usable(&self) -> Option<Arc<User>> {
        (Instant::now() < self.until).then(|| Arc::clone(&self.user))
    }
}

/// Why a verification did not produce a user. Never cached.
#[derive(Debug)]
struct Rejected;

impl Authenticator {
    /// Builds the authenticator; fails when a password hash is not a usable argon2 hash (the
    /// config validation reports that earlier, with the key).
    pub fn new(users: &[UserConfig]) -> anyhow::Result<Self> {
        let mut accounts = HashMap::new();
        for config in users {
            if let Err(problem) = crate::config::check_password_hash(&config.password_hash) {
                bail!("password hash of user {:?}: {problem}", config.name);
            }
            let account = Account {
                user: Arc::new(User::from_config(config)),
                password_hash: config.password_hash.clone(),
            };
            if accounts.insert(config.name.clone(), account).is_some() {
                bail!("user {:?} is defined twice", config.name);
            }
        }
        let dummy_hash = users
            .first()
            .map(|first| dummy_like(&first.password_hash))
            .transpose()?;
        let mut mac_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut mac_key);
        let mac = Hmac::<Sha256>::new_from_slice(&mac_key).context("MAC key")?;
        Ok(Self {
            inner: Arc::new(Inner {
                accounts,
                dummy_hash,
                mac,
                remembered: quick_cache::sync::Cache::new(REMEMBERED_MAX),
                permits: Arc::new(Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)),
                verifications: AtomicU64::new(0),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
            }),
        })
    }

    /// Checks the `Authorization` header of a request.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> AuthOutcome {
        let Some(header) = authorization else {
            return AuthOutcome::Missing;
        };
        let Some(token) = basic_token(header.as_bytes()) else {
            return AuthOutcome::Invalid;
        };
        let key = self.inner.mac(token);
        // The common case (every request after a client's first): one lookup.
        if let Some(user) = self.inner.remembered.get(&key).and_then(|r| r.usable()) {
            return AuthOutcome::Ok(user);
        }
        let Some((name, password)) = decode_basic(token) else {
            return AuthOutcome::Invalid;
        };
        // Boxed: the coalescing future is large, and inline it would make every request's
        // future that size (see `Vfs::link`).
        Box::pin(self.verify_once(key, name, password)).await
    }

    /// Verifies credentials not remembered, once for concurrent checks of the same ones.
    async fn verify_once(&self, key: [u8; 32], name: String, password: String) -> AuthOutcome {
        // Waits for a verification of the same credentials already running; an expired entry
        // is replaced.
        let entry = self
            .inner
            .remembered
            .entry_async(&key, |_, remembered| match remembered.usable() {
                Some(user) => EntryAction::Retain(user),
                None => EntryAction::ReplaceWithGuard,
            })
            .await;
        let guard = match entry {
            EntryResult::Retained(user) => return AuthOutcome::Ok(user),
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => Some(guard),
            // Neither comes from this callback (no `Remove`) and `entry_async` (no timeout).
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        // On failure the guard is dropped unfilled, and a check waiting for it verifies itself.
        match Arc::clone(&self.inner).verify(name, password).await {
            Ok(user) => {
                if let Some(guard) = guard {
                    let until = Instant::now() + REMEMBER_FOR;
                    let _ = guard.insert(Remembered {
                        user: Arc::clone(&user),
                        until,
                    });
                }
                AuthOutcome::Ok(user)
            }
            Err(Rejected) => AuthOutcome::Invalid,
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge() -> HeaderValue {
        HeaderValue::from_static(r#"Basic realm="pan123-webdav", charset="UTF-8""#)
    }

    /// Argon2 verifications run so far (for metrics; a remembered check does not count).
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// HMAC-SHA256 of a Basic token (the base64 of `user:password`, which names the
    /// credentials: it decodes to one pair). The same credentials sent in another spelling
    /// (without padding) are another key: verified once more, then remembered too.
    fn mac(&self, token: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(token);
        mac.finalize().into_bytes().into()
    }

    async fn verify(
        self: Arc<Self>,
        name: String,
        password: String,
    ) -> Result<Arc<User>, Rejected> {
        // Owned, so the permit is released when the blocking work ends even if this request
        // was dropped meanwhile.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Rejected)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            self.verify_blocking(&name, &password)
        })
        .await
        .map_err(|_| Rejected)?
    }

    fn verify_blocking(&self, name: &str, password: &str) -> Result<Arc<User>, Rejected> {
        let account = self.accounts.get(name);
        let phc = match (account, &self.dummy_hash) {
            (Some(account), _) => account.password_hash.as_str(),
            (None, Some(dummy)) => dummy.as_str(),
            (None, None) => return Err(Rejected),
        };
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(running, Ordering::SeqCst);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self.matches(phc, password.as_bytes());
        self.running.fetch_sub(1, Ordering::SeqCst);
        // Both facts combined without a branch on either alone.
        let ok = Choice::from(u8::from(matched)) & Choice::from(u8::from(account.is_some()));
        match account {
            Some(account) if bool::from(ok) => Ok(Arc::clone(&account.user)),
            _ => Err(Rejected),
        }
    }

    /// Does `password` hash to `phc`? Computed as argon2's own verification does, with working
    /// memory of its own that is freed after (see the module comment); compared in constant
    /// time.
    fn matches(&self, phc: &str, password: &[u8]) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
            return false;
        };
        let version = match hash.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut blocks = vec![Block::default(); params.block_count()];
        let mut out = vec![0u8; expected.len()];
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..],
        );
        drop(blocks);
        hashed.is_ok() && Output::new(&out).is_ok_and(|out| out == expected)
    }
}

/// A hash with the algorithm, version, parameters and salt of `like`, and a random output that
/// no password produces: verifying against it costs what verifying against `like` costs.
fn dummy_like(like: &str) -> anyhow::Result<String> {
    let mut hash = PasswordHash::new(like)
        .map_err(|err| anyhow::anyhow!("{err}"))
        .context("password hash")?;
    let len = hash.hash.map_or(32, |output| output.len());
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hash.hash = Some(Output::new(&bytes).map_err(|err| anyhow::anyhow!("dummy hash: {err}"))?);
    Ok(hash.to_string())
}

/// `Basic <token>` → the token, not decoded yet. The scheme is case-insensitive; spaces around
/// the token are not part of it.
fn basic_token(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let space = header.iter().position(|&b| b == b' ')?;
    let (scheme, token) = header.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    Some(token.trim_ascii_start())
}

/// A Basic token, `base64(user:password)` → (user, password). User and password are UTF-8
/// (the challenge says charset="UTF-8"); the user name ends at the first colon.
fn decode_basic(token: &[u8]) -> Option<(String, String)> {
    let decoded = BASE64.decode(token).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    if name.is_empty() {
        return None;
    }
    Some((name.to_string(), password.to_string()))
}

/// Standard base64; some clients leave out the padding.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Params, Version};

    /// A hash with small parameters, so tests stay fast in debug builds; verification takes the
    /// parameters from the hash.
    fn cheap_hash(password: &str) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn user(name: &str, password: &str, mounts: &[&str], write: bool) -> UserConfig {
        UserConfig {
            name: name.to_string(),
            password_hash: cheap_hash(password),
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
            write,
        }
    }

    fn basic(credentials: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(credentials);
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(&[
            user("alice", "wonderland", &["*"], true),
            user("bob", "builder", &["/open"], false),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn right_password() {
        let auth = authenticator();
        let AuthOutcome::Ok(user) = auth.check(Some(&basic("alice:wonderland"))).await else {
            panic!("alice was refused");
        };
        assert_eq!(user.name, "alice");
        assert!(user.write);
        assert!(user.can_see("/open") && user.can_see("/other"));

        let AuthOutcome::Ok(user) = auth.check(Some(&basic("bob:builder"))).await else {
            panic!("bob was refused");
        };
        assert!(!user.write);
        assert!(user.can_see("/open") && user.can_see("open"));
        assert!(!user.can_see("/other") && !user.can_see("/"));
    }

    #[tokio::test]
    async fn a_password_may_contain_colons_and_unicode() {
        let auth = Authenticator::new(&[user("zoë", "a:b:ç", &["*"], false)]).unwrap();
        assert!(matches!(
            auth.check(Some(&basic("zoë:a:b:ç"))).await,
            AuthOutcome::Ok(_)
        ));
    }

    #[tokio::test]
    async fn wrong_password() {
        let auth = authenticator();
        for credentials in ["alice:wonderlanD", "alice:", "alice:builder"] {
            assert!(
                matches!(
                    auth.check(Some(&basic(credentials))).await,
                    AuthOutcome::Invalid
                ),
                "{credentials}"
            );
        }
        // Failures are not remembered: each costs a verification.
        assert_eq!(auth.verifications(), 3);
    }

    #[tokio::test]
    async fn unknown_user_costs_a_verification_too() {
        let auth = authenticator();
        assert!(matches!(
            auth.check(Some(&basic("mallory:wonderland"))).await,
            AuthOutcome::Invalid
        ));
        assert_eq!(auth.verifications(), 1);
        // The dummy shares the parameters of a real hash but matches nothing.
        let dummy = auth.inner.dummy_hash.as_deref().unwrap();
        let real = &auth.inner.accounts["alice"].password_hash;
        assert_eq!(
            dummy.rsplit_once('$').unwrap().0,
            real.rsplit_once('$').unwrap().0
        );
        assert_ne!(dummy, real);
    }

    #[tokio::test]
    async fn missing_and_malformed_headers() {
        let auth = authenticator();
        assert!(matches!(auth.check(None).await, AuthOutcome::Missing));
        let token = base64::engine::general_purpose::STANDARD.encode("no-colon");
        let bad_utf8 = base64::engine::general_purpose::STANDARD.encode(b"al\xffce:x");
        let malformed = [
            "Basic".to_string(),
            "Basic !!!!".to_string(),
            format!(
                "Bearer {}",
                base64::engine::general_purpose::STANDARD.encode("alice:wonderland")
            ),
            format!("Basic {token}"),
            format!("Basic {bad_utf8}"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(":pw")
            ),
        ];
        for value in malformed {
            let header = HeaderValue::from_str(&value).unwrap();
            assert!(
                matches!(auth.check(Some(&header)).await, AuthOutcome::Invalid),
                "{value}"
            );
        }
        let opaque = HeaderValue::from_bytes(b"Basic \xff").unwrap();
        assert!(matches!(
            auth.check(Some(&opaque)).await,
            AuthOutcome::Invalid
        ));
        assert_eq!(
            auth.verifications(),
            0,
            "malformed headers never reach argon2"
        );

        // Scheme case and missing padding are tolerated.
        let token = base64::engine::general_purpose::STANDARD_NO_PAD.encode("alice:wonderland");
        let header = HeaderValue::from_str(&format!("basic  {token}")).unwrap();
        assert!(matches!(
            auth.check(Some(&header)).await,
            AuthOutcome::Ok(_)
        ));
    }

    #[tokio::test]
    async fn a_successful_check_is_remembered() {
        let auth = authenticator();
        for _ in 0..3 {
            assert!(matches!(
                auth.check(Some(&basic("alice:wonderland"))).await,
                AuthOutcome::Ok(_)
            ));
        }
        assert_eq!(auth.verifications(), 1);
        // Another password for the same user is not the remembered one.
        assert!(matches!(
            auth.check(Some(&basic("alice:wonderlanD"))).await,
            AuthOutcome::Invalid
        ));
        assert_eq!(auth.verifications(), 2);
    }

    #[tokio::test]
    async fn a_remembered_check_expires() {
        let auth = authenticator();
        let header = basic("alice:wonderland");
        assert!(matches!(
            auth.check(Some(&header)).await,
            AuthOutcome::Ok(_)
        ));
        assert_eq!(auth.verifications(), 1);
        // Age the entry past REMEMBER_FOR: the next check verifies again, then is remembered.
        let key = auth.inner.mac(basic_token(header.as_bytes()).unwrap());
        let mut remembered = auth.inner.remembered.get(&key).unwrap();
        remembered.until = Instant::now() - Duration::from_secs(1);
        auth.inner.remembered.insert(key, remembered);
        assert!(matches!(
            auth.check(Some(&header)).await,
            AuthOutcome::Ok(_)
        ));
        assert_eq!(auth.verifications(), 2);
        assert!(matches!(
            auth.check(Some(&header)).await,
            AuthOutcome::Ok(_)
        ));
        assert_eq!(auth.verifications(), 2);
        let until = auth.inner.remembered.get(&key).unwrap().until;
        assert!(until > Instant::now() + REMEMBER_FOR - Duration::from_secs(60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_of_the_same_credentials_share_one_verification() {
        let auth = authenticator();
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.check(Some(&basic("alice:wonderland"))).await })
            })
            .collect();
        for check in checks {
            assert!(matches!(check.await.unwrap(), AuthOutcome::Ok(_)));
        }
        assert_eq!(auth.verifications(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn verifications_are_capped() {
        let auth = authenticator();
        let checks: Vec<_> = (0..12)
            .map(|i| {
                let auth = auth.clone();
                tokio::spawn(
                    async move { auth.check(Some(&basic(&format!("alice:wrong{i}")))).await },
                )
            })
            .collect();
        for check in checks {
            assert!(matches!(check.await.unwrap(), AuthOutcome::Invalid));
        }
        assert_eq!(auth.verifications(), 12);
        let max = auth.inner.max_running.load(Ordering::SeqCst);
        assert!(
            (1..=MAX_CONCURRENT_VERIFICATIONS).contains(&max),
            "{max} at once"
        );
    }

    #[tokio::test]
    async fn a_check_waits_for_a_free_slot() {
        let auth = authenticator();
        // Take every slot, as a flood of bad passwords would.
        let held = Arc::clone(&auth.inner.permits)
            .acquire_many_owned(MAX_CONCURRENT_VERIFICATIONS as u32)
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let auth = auth.clone();
            async move { auth.check(Some(&basic("alice:wonderland"))).await }
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        assert_eq!(auth.verifications(), 0);
        drop(held);
        assert!(matches!(waiting.await.unwrap(), AuthOutcome::Ok(_)));
        assert_eq!(auth.verifications(), 1);
    }

    #[test]
    fn bad_hashes_are_refused_at_construction() {
        let mut bad = user("eve", "x", &["*"], false);
        bad.password_hash = "plain".to_string();
        let err = Authenticator::new(&[bad]).err().unwrap().to_string();
        assert!(err.contains("password hash of user \"eve\""), "{err}");
        assert!(!err.contains("plain"));
    }

    #[tokio::test]
    async fn no_users_refuses_everyone() {
        let auth = Authenticator::new(&[]).unwrap();
        assert!(matches!(
            auth.check(Some(&basic("alice:wonderland"))).await,
            AuthOutcome::Invalid
        ));
    }

    #[test]
    fn challenge() {
        assert_eq!(
            Authenticator::challenge(),
            r#"Basic realm="pan123-webdav", charset="UTF-8""#
        );
    }
}
