//! How an Open mount logs in (issue 21): developer keys, the user's own OAuth app with a
//! refresh token, a token-renewal service, or a pasted access token. Exactly one per mount;
//! a mix is explained by naming every way and the keys each needs.

use super::file::{Report, Section};
use super::resolve::{http_url, secret_from_env, Env};
use super::{OpenLogin, Secret};

/// The four ways, as `check` and the mix message name them.
pub(super) const WAYS: &str = "client_id + client_secret (developer keys); refresh_token + \
     client_id (+ client_secret) of your own OAuth app, or client_id + client_secret + \
     redirect_uri of it and `pan123-webdav authorize`; renew_url + refresh_token (a token-renewal \
     service); or access_token (a pasted token, never renewed)";

/// 123's authorization page (docs/123.md, open §2: OpenList's pages moved to this host in 2026).
pub const DEFAULT_AUTHORIZE_URL: &str = "https://yun.123pan.com/auth";

/// The renewal service OpenList uses by default (docs/123.md, open §2.3), as an example URL.
const RENEW_EXAMPLE: &str = "https://api.oplist.org/123cloud/renewapi";

/// The credential keys of an Open mount, as read from the file.
pub(super) struct RawLogin {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub refresh_token: Option<String>,
    pub renew_url: Option<String>,
    pub access_token: Option<String>,
    pub redirect_uri: Option<String>,
    pub authorize_url: Option<String>,
}

/// The client id, its secret and the login mode, reporting every problem.
pub(super) fn resolve(
    report: &mut Report,
    s: &Section,
    raw: RawLogin,
    env: Env,
) -> (String, Secret, OpenLogin) {
    let has_secret = raw.client_secret.is_some() || raw.client_secret_env.is_some();
    let set: Vec<&str> = [
        ("client_id", raw.client_id.is_some()),
        ("client_secret", has_secret),
        ("refresh_token", raw.refresh_token.is_some()),
        ("renew_url", raw.renew_url.is_some()),
        ("access_token", raw.access_token.is_some()),
        ("redirect_uri", raw.redirect_uri.is_some()),
        ("authorize_url", raw.authorize_url.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(k, _)| k)
    .collect();
    let mix = |report: &mut Report, key: &str, extra: &[&str]| {
        report.add(
            s.key(key),
            format!(
                "set together with {}; an Open mount logs in exactly one way: {WAYS}",
                extra.join(", ")
            ),
        );
    };
    let others = |allowed: &[&str]| -> Vec<&str> {
        set.iter()
            .copied()
            .filter(|k| !allowed.contains(k))
            .collect()
    };

    if let Some(token) = raw.access_token {
        let extra = others(&["access_token"]);
        if !extra.is_empty() {
            mix(report, "access_token", &extra);
        }
        if token.trim().is_empty() {
            report.add(
                s.key("access_token"),
                "empty; paste the access token, or use one of the other ways to log in",
            );
        }
        return (
            String::new(),
            Secret::from(""),
            OpenLogin::AccessToken {
                access_token: Secret::from(token.trim().to_string()),
            },
        );
    }
    if let Some(url) = raw.renew_url {
        let extra = others(&["renew_url", "refresh_token"]);
        if !extra.is_empty() {
            mix(report, "renew_url", &extra);
        }
        let url = http_url(report, s.key("renew_url"), &url, RENEW_EXAMPLE);
        let refresh_token = refresh_token(report, s, raw.refresh_token, "a renewal service");
        return (
            String::new(),
            Secret::from(""),
            OpenLogin::Renew { url, refresh_token },
        );
    }
    let oauth = raw.refresh_token.is_some() || raw.redirect_uri.is_some();
    let client_id = match raw.client_id {
        None => {
            let fix = if oauth {
                "set it to the client id of your OAuth app (the refresh token belongs to it)"
            } else {
                "set it to the client id of your app on the 123 open platform, or log in \
                 another way: refresh_token, renew_url + refresh_token, or access_token"
            };
            s.missing(report, "client_id", fix);
            String::new()
        }
        Some(id) => {
            if id.trim().is_empty() {
                report.add(
                    s.key("client_id"),
                    "empty; set it to the client id of your app on the 123 open platform",
                );
            }
            id
        }
    };
    let client_secret = match (raw.client_secret, raw.client_secret_env) {
        (Some(_), Some(_)) => {
            report.add(
                s.key("client_secret"),
                "set either client_secret or client_secret_env, not both",
            );
            String::new()
        }
        // 123 refreshed with client_id + refresh_token and no secret (docs/123.md, open §2.2);
        // exchanging a code (`authorize`) needs it.
        (None, None) if oauth && raw.refresh_token.is_some() => String::new(),
        (None, None) => {
            if !s.is_bad("client_secret_env") {
                s.missing(
                    report,
                    "client_secret",
                    if oauth {
                        "set client_secret (or client_secret_env) to your OAuth app's secret: \
                         `authorize` exchanges the code with it"
                    } else {
                        "set client_secret, or client_secret_env to the name of an environment \
                         variable that holds it"
                    },
                );
            }
            String::new()
        }
        (Some(secret), None) => {
            if secret.is_empty() {
                report.add(
                    s.key("client_secret"),
                    "empty; set it to your app's client secret, or use client_secret_env",
                );
            }
            secret
        }
        (None, Some(var)) => secret_from_env(report, s.key("client_secret_env"), &var, env),
    };
    let login = if oauth {
        // Kept exactly as written: 123 compares it with the one registered for the app.
        let redirect_uri = raw.redirect_uri.inspect(|u| {
            if !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) {
                report.add(
                    s.key("redirect_uri"),
                    format!(
                        "\"{u}\" is not an http(s) URL; set it to the callback address registered \
                         for your OAuth app, like \"https://example.com/callback\""
                    ),
                );
            }
        });
        let authorize_url = match raw.authorize_url {
            Some(u) => http_url(report, s.key("authorize_url"), &u, DEFAULT_AUTHORIZE_URL),
            None => DEFAULT_AUTHORIZE_URL.to_string(),
        };
        // With redirect_uri alone, `authorize` stores the first refresh token in state_dir.
        let refresh_token = match raw.refresh_token {
            None if redirect_uri.is_some() => Secret::from(""),
            seed => refresh_token(report, s, seed, "your OAuth app"),
        };
        OpenLogin::OAuth {
            refresh_token,
            redirect_uri,
            authorize_url,
        }
    } else {
        if raw.authorize_url.is_some() {
            report.add(
                s.key("authorize_url"),
                "only used with redirect_uri (for `pan123-webdav authorize`); set redirect_uri \
                 too, or remove it",
            );
        }
        OpenLogin::Developer
    };
    (client_id, Secret::from(client_secret), login)
}

fn refresh_token(report: &mut Report, s: &Section, value: Option<String>, whose: &str) -> Secret {
    match value {
        None => {
            s.missing(
                report,
                "refresh_token",
                &format!(
                    "set it to a refresh token issued by {whose}; it is only the first seed, \
                          later ones are kept in state_dir"
                ),
            );
            Secret::from("")
        }
        Some(t) if t.trim().is_empty() => {
            report.add(
                s.key("refresh_token"),
                format!("empty; set it to a refresh token issued by {whose}"),
            );
            Secret::from("")
        }
        Some(t) => Secret::from(t.trim().to_string()),
    }
}
