//! The login session of a personal-account mount (docs/123.md, web §1.3): log in on the login host
//! with the phone number (or e-mail) and password, keep the Bearer token in memory and in
//! `state_dir`, and log in again when 123 answers code 401.
//!
//! Logins are serialised and counted by a generation number: every request remembers the
//! generation of the token it sent, and a 401 asks for a login *past that generation*. So when
//! many requests see 401 together, the first logs in and the others find a newer token waiting
//! (one login, not many; OpenList has no such lock, docs/123.md, web §1.3 item 3).
//!
//! A refused login (wrong password, or 123's risk control: `当前账号存在安全风险…`, `请进行验证`)
//! is remembered with a growing back-off: until it elapses every request fails at once with
//! 123's message, without calling the login host, so a blocked account is never hammered. The
//! message names which of the known reasons it was (`refusal_reason`).
//!
//! A mount with a pasted browser token (`token`, issue 21) never logs in: the token is used as
//! it is, and once 123 refuses it (or its JWT `exp` has passed) the mount is unready with a
//! message saying to paste a new one.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;

use super::api::LoginReply;
use crate::backend::Error;
use crate::config::Secret;

/// The first wait after a refused login; it doubles per refusal up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(15);
/// The longest wait between login attempts (a risk-control block lasts until the user acts).
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The e-mail rule of the web client (docs/123.md, web §1.1): such a name logs in with `mail`/`type
/// 2`, anything else (a phone number) with `passport`.
pub fn is_mail(name: &str) -> bool {
    let Some((local, domain)) = name.split_once('@') else {
        return false;
    };
    let first_ok = |s: &str| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    };
    let local_ok = (1..=32).contains(&local.len())
        && first_ok(local)
        && local
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"_.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, hosts)) = labels.split_last() else {
        return false;
    };
    let tld_ok = (2..=4).contains(&tld.len()) && tld.bytes().all(|b| b.is_ascii_lowercase());
    let hosts_ok = (1..=4).contains(&hosts.len())
        && hosts.iter().all(|h| {
            (2..=32).contains(&h.len())
                && first_ok(h)
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
                && !h.ends_with('-')
        });
    local_ok && tld_ok && hosts_ok
}

/// The wait after the `n`-th refusal in a row (n ≥ 1).
/// Without jitter: one account's refusals are not a crowd to spread out.
fn backoff(n: u32) -> Duration {
    crate::backend::retry::doubling(FIRST_BACKOFF, n, MAX_BACKOFF)
}

/// How a personal mount gets its session token.
pub enum Credential {
    /// Logs in with the account's password.
    Password(Secret),
    /// A token pasted from a logged-in browser (`token`).
    Token(Secret),
}

struct Pasted {
    /// The JWT's `exp` (Unix seconds), when readable.
    expires_at: Option<u64>,
}

/// Which of the refusals users meet (docs/123.md, web §1.3) 123's message is, in words that say
/// what to do; `None` for a message we do not know.
pub fn refusal_reason(message: &str) -> Option<&'static str> {
    let has = |words: &[&str]| words.iter().any(|w| message.contains(w));
    if has(&["境外登录"]) {
        Some(
            "risk control: a login from abroad (境外登录风险); log in once in a browser from this \
             machine's network, or paste a browser token (`token`) instead of the password",
        )
    } else if has(&["安全风险", "短信验证码", "微信进行登录"]) {
        Some(
            "risk control: 123 wants an SMS or WeChat verification (当前账号存在安全风险); log in \
             once in a browser from this machine's network, or paste a browser token (`token`)",
        )
    } else if has(&["请进行验证", "验证码", "滑块"]) {
        Some(
            "a verification step (请进行验证) the API cannot pass; log in once in a browser, or \
             paste a browser token (`token`)",
        )
    } else if has(&["锁定", "冻结", "封禁", "禁用"]) {
        Some("the account is locked or frozen; unlock it on 123's web site first")
    } else if has(&["密码错误", "账号或密码", "密码不正确", "用户名或密码"]) {
        Some(
            "wrong username or password (123 only counts a password's first 16 characters; \
             see `check`)",
        )
    } else {
        None
    }
}

struct Refusal {
    until: Instant,
    count: u32,
    message: String,
}

/// The token of one account, shared by the requests of its mount.
pub struct Session {
    http: reqwest::Client,
    login_url: String,
    /// `<scheme>://<host>` of the web API, sent as `Origin` (and, with `/`, `Referer`).
    origin: String,
    username: String,
    password: Secret,
    /// A pasted browser token: never logged in for, never persisted.
    pasted: Option<Pasted>,
    persist_path: Option<PathBuf>,
    /// (generation, token). The generation grows by one per successful login.
    current: Mutex<(u64, Option<Secret>)>,
    refusal: Mutex<Option<Refusal>>,
    login_lock: tokio::sync::Mutex<()>,
    /// Times the login back-off (a test moves it instead of waiting).
    clock: Clock,
    /// `[cluster]`: the account's session shared with every instance (password logins only).
    shared: Option<crate::cluster::SharedSession>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("login_url", &self.login_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(
        http: reqwest::Client,
        login_base: &str,
        origin: String,
        username: String,
        credential: Credential,
        persist_path: Option<PathBuf>,
        clock: Clock,
    ) -> Self {
        let password = match credential {
            Credential::Password(password) => password,
            Credential::Token(token) => {
                return Self::pasted(http, login_base, origin, username, token, clock)
            }
        };
        let token = persist_path.as_ref().and_then(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            value["token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(Secret::from)
        });
        Self {
            http,
            login_url: format!("{}/api/user/sign_in", login_base.trim_end_matches('/')),
            origin,
            username,
            password,
            pasted: None,
            persist_path,
            current: Mutex::new((0, token)),
            refusal: Mutex::new(None),
            login_lock: tokio::sync::Mutex::new(()),
            clock,
            shared: None,
        }
    }

    /// A session on a pasted browser token: no login, nothing persisted.
    fn pasted(
        http: reqwest::Client,
        login_base: &str,
        origin: String,
        username: String,
        token: Secret,
        clock: Clock,
    ) -> Self {
        let expires_at = crate::backend::open::oauth::jwt_expiry(token.expose());
        Self {
            http,
            login_url: format!("{}/api/user/sign_in", login_base.trim_end_matches('/')),
            origin,
            username,
            password: Secret::from(""),
            pasted: Some(Pasted { expires_at }),
            persist_path: None,
            current: Mutex::new((0, Some(token))),
            refusal: Mutex::new(None),
            login_lock: tokio::sync::Mutex::new(()),
            clock,
            shared: None,
        }
    }

    /// The same session shared with every instance of `cluster`: one login for all of them
    /// (a pasted token is never logged in for, so it stays as it is).
    pub fn shared(mut self, cluster: std::sync::Arc<crate::cluster::Cluster>) -> Self {
        if self.pasted.is_none() {
            self.shared = Some(crate::cluster::SharedSession::new(
                cluster,
                &self.login_url,
                &self.username,
            ));
        }
        self
    }

    /// A login here, or in a cluster the cluster's session (another instance's login, or one
    /// made here under the cluster's lease); `adopted` tells which.
    async fn login_or_adopt(&self, dead: Option<String>) -> (Result<String, String>, bool) {
        let Some(shared) = &self.shared else {
            return (self.login().await, false);
        };
        match shared.renew(dead.as_deref(), || self.login()).await {
            crate::cluster::Renewal::Adopted(token) => (Ok(token), true),
            crate::cluster::Renewal::LoggedIn(token) => (Ok(token), false),
            crate::cluster::Renewal::Refused(message) => (Err(message), false),
        }
    }

    /// What `/-/readyz` shows: a refused login (still backing off) wins over an old token.
    pub fn state(&self) -> crate::backend::TokenState {
        use crate::backend::TokenState;
        if let Some(message) = self.pasted_expired() {
            return TokenState::Failing { message };
        }
        if let Some(r) = lock(&self.refusal).as_ref() {
            return TokenState::Failing {
                message: r.message.clone(),
            };
        }
        if lock(&self.current).1.is_some() {
            TokenState::LoggedIn
        } else {
            TokenState::Empty
        }
    }

    /// The token to send and its generation, logging in first when there is none.
    pub async fn token(&self) -> Result<(u64, String), Error> {
        // Bounded: a successful login leaves a token; a failed one returns its error.
        for _ in 0..2 {
            let (generation, token) = {
                let current = lock(&self.current);
                (
                    current.0,
                    current.1.as_ref().map(|t| t.expose().to_string()),
                )
            };
            match token {
                Some(token) => return Ok((generation, token)),
                None => self.relogin(generation).await?,
            }
        }
        Err(Error::Auth("123 web login gave no token".into()))
    }

    /// Makes sure a token newer than generation `seen` exists: logs in unless another request
    /// already did, or a refused login is still backing off (then its error, at once).
    pub async fn relogin(&self, seen: u64) -> Result<(), Error> {
        let _one_at_a_time = self.login_lock.lock().await;
        let dead = {
            let current = lock(&self.current);
            if current.0 != seen && current.1.is_some() {
                return Ok(());
            }
            current.1.as_ref().map(|t| t.expose().to_string())
        };
        if let Some(r) = lock(&self.refusal).as_ref() {
            if self.clock.instant() < r.until {
                return Err(Error::Auth(r.message.clone()));
            }
        }
        let (result, adopted) = self.login_or_adopt(dead).await;
        match result {
            Ok(token) => {
                {
                    let mut current = lock(&self.current);
                    current.0 += 1;
                    current.1 = Some(Secret::from(token.as_str()));
                }
                *lock(&self.refusal) = None;
                self.persist(&token);
                if adopted {
                    tracing::info!("using the cluster's 123 web session");
                } else {
                    tracing::info!(username = %self.username, "logged in to 123's web API");
                }
                Ok(())
            }
            Err(message) => {
                let mut refusal = lock(&self.refusal);
                let count = refusal.as_ref().map_or(0, |r| r.count) + 1;
                let wait = backoff(count);
                tracing::warn!(
                    username = %self.username,
                    error = %message,
                    retry_in_secs = wait.as_secs(),
                    "123 web login failed; the mount stays unready until a login succeeds"
                );
                *refusal = Some(Refusal {
                    until: self.clock.instant() + wait,
                    count,
                    message: message.clone(),
                });
                // The old token is dead (it drew a 401, or there was none).
                lock(&self.current).1 = None;
                Err(Error::Auth(message))
            }
        }
    }

    /// Why a pasted token cannot be used any more, once its JWT `exp` has passed.
    fn pasted_expired(&self) -> Option<String> {
        let exp = self.pasted.as_ref()?.expires_at?;
        let now = self.clock.unix_secs();
        (now >= exp).then(|| {
            let at = chrono::DateTime::from_timestamp(exp as i64, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| exp.to_string());
            format!(
                "the pasted web token expired at {at}; copy a new one from a logged-in browser \
                 (README: \"Personal mounts with a browser token\") into token, or log in with \
                 password"
            )
        })
    }

    /// One `POST /api/user/sign_in` (unsigned, no authorization). `Err` is the text to show.
    /// A mount with a pasted token cannot log in: 123 refused the token.
    async fn login(&self) -> Result<String, String> {
        if self.pasted.is_some() {
            return Err(self.pasted_expired().unwrap_or_else(|| {
                "123 refused the pasted web token (expired or logged out); copy a new one from a \
                 logged-in browser (README: \"Personal mounts with a browser token\") into \
                 token, or log in with password"
                    .to_string()
            }));
        }
        let body = if is_mail(&self.username) {
            serde_json::json!({"mail": self.username, "password": self.password.expose(), "type": 2})
        } else {
            serde_json::json!({"passport": self.username, "password": self.password.expose(), "remember": true})
        };
        let response = self
            .http
            .post(&self.login_url)
            .header("origin", self.origin.as_str())
            .header("referer", format!("{}/", self.origin))
            .header("platform", "web")
            .header("app-version", "3")
            .timeout(crate::backend::deadline::attempt(LOGIN_TIMEOUT).map_err(|e| e.to_string())?)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("cannot reach 123's login host: {}", e.without_url()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("cannot read 123's login answer: {}", e.without_url()))?;
        let reply: LoginReply = serde_json::from_slice(&bytes).map_err(|_| {
            format!(
                "123's login host answered HTTP {} without JSON",
                status.as_u16()
            )
        })?;
        match reply.code() {
            Some(200) => reply
                .data
                .and_then(|d| d.token)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| "123's login answer has no token".to_string()),
            // 123's own words: a wrong password, or risk control (当前账号存在安全风险…,
            // 请进行验证), which needs the user to log in once on the web from the same place.
            Some(code) if !reply.message.is_empty() => Err(match refusal_reason(&reply.message) {
                Some(reason) => format!(
                    "123 refused the login: {reason} (code {code}: {})",
                    reply.message
                ),
                None => format!("123 refused the login (code {code}): {}", reply.message),
            }),
            code => Err(format!(
                "123 refused the login (code {})",
                code.map_or_else(|| "missing".to_string(), |c| c.to_string())
            )),
        }
    }

    fn persist(&self, token: &str) {
        let Some(path) = &self.persist_path else {
            return;
        };
        let result =
            crate::state_files::write_json_atomic(path, &serde_json::json!({ "token": token }));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not persist the 123 web token; a restart will log in again");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_rule() {
        assert!(is_mail("user.name@example.com"));
        assert!(is_mail("a@mail.example.cn"));
        assert!(!is_mail("13800138000"));
        assert!(!is_mail("User@example.com"));
        assert!(!is_mail("a@b.c"));
        assert!(!is_mail("@example.com"));
    }

    #[test]
    fn refusals_are_named() {
        let r = |m: &str| refusal_reason(m).unwrap_or("unknown");
        assert!(
            r("当前账号存在安全风险，请使用短信验证码或者微信进行登录。").contains("SMS or WeChat")
        );
        assert!(r("检测到境外登录风险").contains("abroad"));
        assert!(r("请进行验证").contains("verification step"));
        assert!(r("账号已被锁定，请稍后再试").contains("locked"));
        assert!(r("账号或密码错误").contains("wrong username or password"));
        assert_eq!(r("别的"), "unknown");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
