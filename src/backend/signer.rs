//! One mount's `auth_key` signer for direct links (link mounts, Open mounts with
//! `direct_link`): it signs the path form the mount's `auth_key_path` names, and under `auto`
//! finds out which form the direct-link host accepts.
//!
//! docs/123.md, web §6 and §7: 123's official samples hash the path as written (percent-encoded),
//! OpenList hashes it decoded; for names with spaces or non-ASCII characters the two differ and
//! only one can be what 123 checks. Under `auto` the first link of such a name is checked with
//! one HEAD before it is handed out (so a redirect never sends a client to a refusal): the
//! decoded form first (OpenList's, which users of this gateway had until now), and on a 403 the
//! encoded form once. The form that worked is remembered for the mount's life and signed from
//! then on without any check. Names whose forms are equal are never checked.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use super::auth_key::{self, AuthKeyPath, PathForm};

/// How long one check (a HEAD of a signed link) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// `learned` values.
const UNKNOWN: u8 = 0;
const ENCODED: u8 = 1;
const DECODED: u8 = 2;

/// The form tried first under `auto` (docs/123.md, web §6: OpenList's reading, the gateway's
/// before).
const FIRST_GUESS: PathForm = PathForm::Decoded;

/// A mount's signer: key, validity, configured form, and (under `auto`) the form learned.
pub struct DirectSigner {
    http: reqwest::Client,
    key: String,
    valid: Duration,
    mode: AuthKeyPath,
    learned: AtomicU8,
    /// One check at a time, so concurrent first links cost one check, not one each.
    learning: tokio::sync::Mutex<()>,
}

// By hand: the key must never reach a log.
impl std::fmt::Debug for DirectSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectSigner")
            .field("key", &"<redacted>")
            .field("valid", &self.valid)
            .field("mode", &self.mode)
            .field("learned", &self.learned())
            .finish()
    }
}

/// What the direct-link host says to a link signed over each form (`check --probe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// Only this form.
    Only(PathForm),
    /// Both forms (the host does not check the path, or normalises it).
    Both,
    /// Neither: the key or uid is wrong.
    Neither,
    /// No answer that tells (the text says what came back).
    Unknown(String),
}

/// What one check of a signed link found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Accepted,
    Refused,
    /// Any other answer (404, 5xx, no answer): says nothing about the form.
    Other(String),
}

impl DirectSigner {
    pub fn new(http: reqwest::Client, key: String, valid: Duration, mode: AuthKeyPath) -> Self {
        Self {
            http,
            key,
            valid,
            mode,
            learned: AtomicU8::new(UNKNOWN),
            learning: tokio::sync::Mutex::new(()),
        }
    }

    /// The configured `auth_key_path`.
    pub fn mode(&self) -> AuthKeyPath {
        self.mode
    }

    /// The form learned under `auto`, if any yet.
    pub fn learned(&self) -> Option<PathForm> {
        match self.learned.load(Ordering::Relaxed) {
            ENCODED => Some(PathForm::Encoded),
            DECODED => Some(PathForm::Decoded),
            _ => None,
        }
    }

    fn learn(&self, form: PathForm) {
        let value = match form {
            PathForm::Encoded => ENCODED,
            PathForm::Decoded => DECODED,
        };
        if self.learned.swap(value, Ordering::Relaxed) != value {
            tracing::info!(
                form = form.as_str(),
                "the direct-link host accepts auth_key over this path form; this mount signs it from now on"
            );
        }
    }

    /// The form to sign without checking: the configured one, or the one learned.
    fn settled(&self) -> Option<PathForm> {
        match self.mode {
            AuthKeyPath::Fixed(form) => Some(form),
            AuthKeyPath::Auto => self.learned(),
        }
    }

    fn sign_as(&self, form: PathForm, url: &str, uid: u64, expires: SystemTime) -> Option<String> {
        auth_key::sign_url_as(
            form,
            url,
            &self.key,
            uid,
            unix(expires),
            &auth_key::random_rand(),
        )
    }

    /// `url` signed for `uid`, and when it stops working. `None` when the URL cannot be parsed.
    pub async fn sign(&self, url: &str, uid: u64) -> Option<(String, SystemTime)> {
        let expires = SystemTime::now() + self.valid;
        let signed = |form| self.sign_as(form, url, uid, expires).map(|s| (s, expires));
        if !auth_key::forms_differ(url) {
            return signed(FIRST_GUESS);
        }
        if let Some(form) = self.settled() {
            return signed(form);
        }
        let _one_at_a_time = self.learning.lock().await;
        if let Some(form) = self.learned() {
            return signed(form);
        }
        let first = signed(FIRST_GUESS)?;
        match self.check(&first.0).await {
            Check::Accepted => {
                self.learn(FIRST_GUESS);
                return Some(first);
            }
            Check::Other(what) => {
                tracing::debug!(answer = %what, "could not check the auth_key path form; signing the decoded one");
                return Some(first);
            }
            Check::Refused => {}
        }
        // docs/123.md, web §6: the refusal may be the other reading; one try with the other form.
        let second = signed(FIRST_GUESS.other())?;
        match self.check(&second.0).await {
            Check::Accepted => {
                self.learn(FIRST_GUESS.other());
                Some(second)
            }
            Check::Refused => {
                tracing::warn!(
                    "the direct-link host refused auth_key over both path forms: check \
                     direct_link_key and uid (the links handed out will be refused)"
                );
                Some(first)
            }
            Check::Other(what) => {
                tracing::debug!(answer = %what, "could not check the auth_key path form");
                Some(first)
            }
        }
    }

    /// Asks the host about both forms of `url` (`check --probe`); under `auto`, a single
    /// accepted form is learned.
    pub async fn probe(&self, url: &str, uid: u64) -> Accepts {
        let expires = SystemTime::now() + self.valid;
        let mut verdicts = Vec::with_capacity(2);
        for form in [PathForm::Decoded, PathForm::Encoded] {
            let Some(signed) = self.sign_as(form, url, uid, expires) else {
                return Accepts::Unknown("the URL cannot be parsed".into());
            };
            verdicts.push(self.check(&signed).await);
        }
        match (&verdicts[0], &verdicts[1]) {
            (Check::Accepted, Check::Accepted) => Accepts::Both,
            (Check::Refused, Check::Refused) => Accepts::Neither,
            (Check::Accepted, Check::Refused) => {
                self.learn_if_auto(PathForm::Decoded);
                Accepts::Only(PathForm::Decoded)
            }
            (Check::Refused, Check::Accepted) => {
                self.learn_if_auto(PathForm::Encoded);
                Accepts::Only(PathForm::Encoded)
            }
            (Check::Other(what), _) | (_, Check::Other(what)) => Accepts::Unknown(what.clone()),
        }
    }

    fn learn_if_auto(&self, form: PathForm) {
        if self.mode == AuthKeyPath::Auto {
            self.learn(form);
        }
    }

    /// One HEAD of a signed link: 2xx accepted, 403 refused.
    async fn check(&self, signed: &str) -> Check {
        match self.http.head(signed).timeout(CHECK_TIMEOUT).send().await {
            Ok(res) if res.status().is_success() => Check::Accepted,
            Ok(res) if res.status() == reqwest::StatusCode::FORBIDDEN => Check::Refused,
            Ok(res) => Check::Other(format!("HEAD answered {}", res.status())),
            // Without the URL: it is signed.
            Err(e) => Check::Other(e.without_url().to_string()),
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
