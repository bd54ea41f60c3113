//! Which way an Open client obtains access tokens (issue 21), and what that means for token
//! files and readiness. `client.rs` asks this module for a token; the wire details live in
//! `oauth.rs` (the user's OAuth app) and `renew.rs` (a renewal service).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::oauth::{jwt_expiry, RefreshSource, RefreshStore};
use super::token::unix;
use crate::backend::TokenState;
use crate::config::{OpenLogin, OpenMountConfig};

/// A pasted token is reported unready this long before it expires, so there is a day to
/// paste a new one (issue 21).
pub const PASTED_WARNING: Duration = Duration::from_secs(24 * 3600);
/// How long a pasted token whose expiry cannot be read is trusted (OpenList's passive mode,
/// docs/123.md, open §2.4); a 401 ends it sooner.
const PASTED_UNKNOWN_TTL: u64 = 90 * 86400;

/// A client's way of logging in, with the state it needs.
pub enum Login {
    /// Developer keys: `POST /api/v1/access_token`.
    Developer {
        client_id: String,
        client_secret: String,
    },
    /// The user's own OAuth app and its rotating refresh token.
    OAuth {
        client_id: String,
        client_secret: String,
        store: Arc<RefreshStore>,
    },
    /// A renewal service and the rotating refresh token it renews.
    Renew {
        url: String,
        store: Arc<RefreshStore>,
    },
    /// A pasted token, never renewed; `expires_at` from its JWT `exp` when readable.
    Pasted {
        access_token: String,
        expires_at: Option<u64>,
    },
}

impl Login {
    /// Builds the login of `open`, reading a rotated refresh token from `state_dir`.
    pub fn new(open: &OpenMountConfig, state_dir: Option<&Path>) -> Login {
        let refresh_path = state_dir.map(|d| refresh_path(d, open));
        match &open.login {
            OpenLogin::Developer => Login::Developer {
                client_id: open.client_id.clone(),
                client_secret: open.client_secret.expose().to_string(),
            },
            OpenLogin::OAuth { refresh_token, .. } => Login::OAuth {
                client_id: open.client_id.clone(),
                client_secret: open.client_secret.expose().to_string(),
                store: Arc::new(RefreshStore::open(refresh_path, refresh_token.expose())),
            },
            OpenLogin::Renew { url, refresh_token } => Login::Renew {
                url: url.clone(),
                store: Arc::new(RefreshStore::open(refresh_path, refresh_token.expose())),
            },
            OpenLogin::AccessToken { access_token } => Login::Pasted {
                access_token: access_token.expose().to_string(),
                expires_at: jwt_expiry(access_token.expose()),
            },
        }
    }

    /// The name `check` and logs use for this way.
    pub fn name(&self) -> &'static str {
        match self {
            Login::Developer { .. } => "client credentials",
            Login::OAuth { .. } => "OAuth refresh token",
            Login::Renew { .. } => "renewal service",
            Login::Pasted { .. } => "pasted access token",
        }
    }

    /// Whether tokens of this login are worth keeping across restarts (a pasted one is in the
    /// config anyway).
    pub fn persists(&self) -> bool {
        !matches!(self, Login::Pasted { .. })
    }

    /// Readiness of a pasted token: failing from a day before its expiry (issue 21).
    pub fn pasted_state(&self, now: SystemTime) -> Option<TokenState> {
        let Login::Pasted {
            expires_at: Some(exp),
            ..
        } = self
        else {
            return None;
        };
        let now = unix(now);
        let at = chrono::DateTime::from_timestamp(*exp as i64, 0)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| exp.to_string());
        if now >= *exp {
            Some(TokenState::Failing {
                message: format!(
                    "the pasted access_token expired at {at}; paste a new one, or log in with \
                     refresh_token or renew_url so that tokens are renewed"
                ),
            })
        } else if now + PASTED_WARNING.as_secs() >= *exp {
            Some(TokenState::Failing {
                message: format!(
                    "the pasted access_token expires at {at}, in less than a day; paste a new one"
                ),
            })
        } else {
            None
        }
    }

    /// The pasted token as a `Token`, or why it cannot be used.
    pub fn pasted_token(&self) -> Option<Result<super::token::Token, crate::backend::Error>> {
        let Login::Pasted {
            access_token,
            expires_at,
        } = self
        else {
            return None;
        };
        let now = unix(SystemTime::now());
        Some(match expires_at {
            Some(exp) if now >= *exp => Err(crate::backend::Error::Auth(
                "the pasted access_token has expired; paste a new one".to_string(),
            )),
            _ => Ok(super::token::Token {
                access_token: access_token.clone(),
                expires_at: expires_at.unwrap_or(now + PASTED_UNKNOWN_TTL),
            }),
        })
    }
}

/// What tells two logins apart: mounts with the same identity share one client (one token,
/// one refresh chain, one QPS budget). Developer keys keep their old identity (the client id),
/// so their token files survive an upgrade.
pub fn identity(open: &OpenMountConfig) -> String {
    match &open.login {
        OpenLogin::Developer => open.client_id.clone(),
        OpenLogin::OAuth { refresh_token, .. } => {
            format!("oauth\n{}\n{}", open.client_id, refresh_token.expose())
        }
        OpenLogin::Renew { url, refresh_token } => {
            format!("renew\n{url}\n{}", refresh_token.expose())
        }
        OpenLogin::AccessToken { access_token } => format!("pasted\n{}", access_token.expose()),
    }
}

/// The file a login's rotated refresh token is kept in.
pub fn refresh_path(state_dir: &Path, open: &OpenMountConfig) -> PathBuf {
    state_dir.join("tokens").join(format!(
        "refresh-{}.json",
        super::client::token_file_key(&open.api_base, &identity(open))
    ))
}

/// The file an Open login's access token is kept in across restarts (`client.rs` reads and
/// writes it).
pub fn access_path(state_dir: &Path, open: &OpenMountConfig) -> PathBuf {
    state_dir.join("tokens").join(format!(
        "open-{}.json",
        super::client::token_file_key(&open.api_base, &identity(open))
    ))
}

/// Keeps the first token pair of an OAuth mount (the `authorize` command): the refresh token
/// where the mount's login reads its rotating refresh token, as a rotation of the config's
/// seed, and the access token where the client looks for it, both atomically and 0600, so the
/// next `serve` starts with them. Returns the refresh token's file.
pub fn store_authorized(
    state_dir: &Path,
    open: &OpenMountConfig,
    answer: super::oauth::Answer,
) -> std::io::Result<PathBuf> {
    let OpenLogin::OAuth { refresh_token, .. } = &open.login else {
        return Err(std::io::Error::other("not an OAuth mount"));
    };
    let path = refresh_path(state_dir, open);
    let store = RefreshStore::open(Some(path.clone()), refresh_token.expose());
    store.keep(&answer.refresh_token)?;
    let token = answer.token_now();
    let text = serde_json::to_vec(&token).map_err(std::io::Error::other)?;
    crate::state_files::write_atomic(&access_path(state_dir, open), &text)?;
    Ok(path)
}

/// For `check`: which refresh token a mount starts with (`None` without one).
pub fn refresh_source(state_dir: &Path, open: &OpenMountConfig) -> Option<RefreshSource> {
    match &open.login {
        OpenLogin::OAuth { refresh_token, .. } | OpenLogin::Renew { refresh_token, .. } => Some(
            super::oauth::source_in(&refresh_path(state_dir, open), refresh_token.expose()),
        ),
        _ => None,
    }
}
