//! Logins without developer keys (docs/123.md, open §2, §12): the OAuth "third-party mount
//! app" flow, the token-renewal service that OpenList's online API speaks, and pasted tokens.
//!
//! * `GET /auth` on the web host is the page a logged-in browser approves; the emulator approves
//!   at once and answers 302 to `redirect_uri?code=…&state=…`, which is the browser step a test
//!   (or `authorize`) needs. `GET /api/v1/oauth2/user/authorize` on the Open API does the same for
//!   a caller holding an access token (p123client's endpoint).
//! * `POST /api/v1/oauth2/access_token` exchanges a code or a refresh token. Parameters come in
//!   the query string (123's docs) or a form body (a downstream fork); answers are flat, not
//!   enveloped; errors are `error` / `error_description`. Access tokens live 2 hours, refresh
//!   tokens 90 days; a refresh token works once, and each refresh revokes the access token the
//!   old pair carried. 100 calls a minute per uid (under the QPS switch), then HTTP 429.
//! * The renewal service (its own host, `renew`) answers `GET /?refresh_ui=…&server_use=true&
//!   driver_txt=123cloud_oa` by running the same token logic with the app's own credentials.
//!
//! The switches `oauth_expires_in` and `oauth_refresh_fails` produce the two failures users
//! report: `expires_in: 0` and a refresh that 123 refuses.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use hyper::body::Incoming;
use rand::RngCore;
use serde_json::{json, Value};

use crate::config::OAuthExpiresIn;
use crate::emulator::{lock, Shared};
use crate::http::{json, query, query_pairs, read_body, HandlerResult, Resp};
use crate::server::Ctx;

/// Lifetime of an OAuth access token (docs/123.md, open §2, the doc sample's `expires_in`).
pub const ACCESS_TTL_SECS: i64 = 2 * 3600;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_SECS: i64 = 90 * 86400;
/// Lifetime of an authorization code (unpublished; ten minutes is the usual OAuth choice).
const CODE_TTL_SECS: i64 = 600;
/// Token-endpoint calls allowed per uid per minute (docs/123.md, open §7).
pub const PER_MINUTE: usize = 100;
/// The fixed scope 123 grants.
pub const SCOPE: &str = "user:base,file:all:read,file:all:write";
/// Largest form body read.
const FORM_LIMIT: usize = 16 * 1024;
/// The renewal service's `driver_txt` for 123's OAuth app (docs/123.md, open §2).
pub const RENEW_DRIVER: &str = "123cloud_oa";

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    expires: i64,
}

#[derive(Debug, Clone)]
struct Refresh {
    client_id: String,
    expires: i64,
    /// The access token issued with it, revoked when it is used.
    access: String,
}

/// Codes, refresh tokens and the per-uid window of the token endpoint.
#[derive(Debug, Default)]
pub struct OAuth {
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    window: VecDeque<Instant>,
    /// Refresh tokens used (successfully) since start.
    pub rotations: u64,
}

/// One successful grant, as the token endpoint answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// A Bearer token for the Open API.
    pub access_token: String,
    /// The next refresh token (the one sent is now spent).
    pub refresh_token: String,
    /// Seconds, as announced (0 under `oauth_expires_in = zero`).
    pub expires_in: i64,
}

/// An OAuth error: HTTP status, `error`, `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status sent.
    pub status: StatusCode,
    /// `error`.
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

fn oauth_err(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_string(),
    }
}

fn random_word(prefix: &str) -> String {
    let mut b = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", crate::auth_key::hex(&b))
}

/// A code for `client_id` and `redirect_uri`, as the approval page hands it to the browser.
pub(crate) fn issue_code(sh: &Shared, client_id: &str, redirect_uri: &str) -> String {
    let code = random_word("code-");
    let mut o = lock(&sh.oauth);
    let now = sh.now();
    o.codes.retain(|_, c| c.expires > now);
    o.codes.insert(
        code.clone(),
        Code {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            expires: now + CODE_TTL_SECS,
        },
    );
    code
}

/// A fresh token pair for the emulator's OAuth app, as an exchanged code gives (tests and the
/// control API use it to seed a mount without the browser step).
pub(crate) fn issue_pair(sh: &Shared) -> Grant {
    new_pair(sh, &sh.oauth_client_id.clone())
}

fn new_pair(sh: &Shared, client_id: &str) -> Grant {
    let now = sh.now();
    let (access_token, _) =
        lock(&sh.tokens).issue_uncapped(&format!("oauth:{client_id}"), now, ACCESS_TTL_SECS);
    let refresh_token = random_word("rt-");
    let mut o = lock(&sh.oauth);
    o.refresh.retain(|_, r| r.expires > now);
    o.refresh.insert(
        refresh_token.clone(),
        Refresh {
            client_id: client_id.to_string(),
            expires: now + REFRESH_TTL_SECS,
            access: access_token.clone(),
        },
    );
    let expires_in = match sh.switches().oauth_expires_in {
        OAuthExpiresIn::Normal => ACCESS_TTL_SECS,
        OAuthExpiresIn::Zero => 0,
    };
    Grant {
        access_token,
        refresh_token,
        expires_in,
    }
}

/// A pasted access token (what a user copies from somewhere): valid `ttl_secs`, never renewed.
pub(crate) fn issue_pasted(sh: &Shared, ttl_secs: i64) -> (String, i64) {
    let now = sh.now();
    lock(&sh.tokens).issue_uncapped("pasted", now, ttl_secs)
}

/// The token endpoint's logic, shared by `POST /api/v1/oauth2/access_token` and the renewal
/// service. `param` reads one parameter by name.
pub(crate) fn grant(
    sh: &Shared,
    param: &dyn Fn(&str) -> Option<String>,
) -> Result<Grant, OAuthError> {
    if sh.qps.load(std::sync::atomic::Ordering::Relaxed) {
        let mut o = lock(&sh.oauth);
        let now = Instant::now();
        while o
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            o.window.pop_front();
        }
        if o.window.len() >= PER_MINUTE {
            return Err(oauth_err(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "请求过于频繁，请稍后再试",
            ));
        }
        o.window.push_back(now);
    }
    let client_id = param("client_id").unwrap_or_default();
    if client_id != sh.oauth_client_id {
        return Err(oauth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id 无效",
        ));
    }
    // A refresh worked without the secret (docs/123.md, open §2, a review on OpenList PR #1121);
    // a secret that is sent must be right, and a code exchange needs it.
    let secret = param("client_secret");
    if secret
        .as_deref()
        .is_some_and(|s| s != sh.oauth_client_secret)
    {
        return Err(oauth_err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_secret 错误",
        ));
    }
    let now = sh.now();
    match param("grant_type").as_deref() {
        Some("authorization_code") => {
            if secret.is_none() {
                return Err(oauth_err(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "缺少 client_secret",
                ));
            }
            let code = param("code").unwrap_or_default();
            let redirect = param("redirect_uri").unwrap_or_default();
            let found = lock(&sh.oauth).codes.remove(&code);
            match found {
                Some(c) if c.expires > now && c.client_id == client_id => {
                    if c.redirect_uri != redirect {
                        return Err(oauth_err(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "redirect_uri 不匹配",
                        ));
                    }
                    Ok(new_pair(sh, &client_id))
                }
                _ => Err(oauth_err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "授权码无效或已过期",
                )),
            }
        }
        Some("refresh_token") => {
            if sh.switches().oauth_refresh_fails {
                return Err(oauth_err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "refresh_token 无效",
                ));
            }
            let rt = param("refresh_token").unwrap_or_default();
            let found = lock(&sh.oauth).refresh.remove(&rt);
            match found {
                Some(r) if r.expires > now && r.client_id == client_id => {
                    lock(&sh.tokens).revoke(&r.access);
                    lock(&sh.oauth).rotations += 1;
                    Ok(new_pair(sh, &client_id))
                }
                _ => Err(oauth_err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "refresh_token 无效或已过期",
                )),
            }
        }
        _ => Err(oauth_err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type 必须是 authorization_code 或 refresh_token",
        )),
    }
}

/// The flat answer of a grant.
fn grant_json(g: &Grant) -> Value {
    json!({
        "access_token": g.access_token,
        "expires_in": g.expires_in,
        "refresh_token": g.refresh_token,
        "scope": SCOPE,
        "token_type": "Bearer",
    })
}

/// `POST /api/v1/oauth2/access_token`: query-string parameters, or a form body.
pub(crate) async fn access_token(ctx: &Ctx, req: Request<Incoming>) -> HandlerResult {
    let mut pairs = query_pairs(req.uri());
    let is_form = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        match read_body(req.into_body(), FORM_LIMIT).await {
            Ok(body) => pairs.extend(
                url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            ),
            Err(e) => {
                return Ok(error_resp(&oauth_err(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &e.to_string(),
                )))
            }
        }
    }
    let param = |name: &str| query(&pairs, name).map(str::to_string);
    Ok(match grant(&ctx.shared, &param) {
        Ok(g) => json(StatusCode::OK, &grant_json(&g)),
        Err(e) => error_resp(&e),
    })
}

fn error_resp(e: &OAuthError) -> Resp {
    json(
        e.status,
        &json!({"error": e.error, "error_description": e.description}),
    )
}

/// 302 to `redirect_uri` with `code` (and `state`) in its query.
fn redirect_with_code(sh: &Shared, pairs: &[(String, String)]) -> Resp {
    let client_id = query(pairs, "client_id").unwrap_or_default();
    let redirect = query(pairs, "redirect_uri").unwrap_or_default();
    if client_id != sh.oauth_client_id {
        return error_resp(&oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "client_id 无效",
        ));
    }
    let Ok(mut target) = url::Url::parse(redirect) else {
        return error_resp(&oauth_err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri 无效",
        ));
    };
    let code = issue_code(sh, client_id, redirect);
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = query(pairs, "state") {
            q.append_pair("state", state);
        }
    }
    let mut r = json(StatusCode::FOUND, &json!({}));
    if let Ok(v) = http::HeaderValue::from_str(target.as_str()) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// `GET /auth` on the web host: the approval page, approved at once (a logged-in browser).
pub(crate) fn auth_page(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    redirect_with_code(&ctx.shared, &query_pairs(req.uri()))
}

/// `GET /api/v1/oauth2/user/authorize`: the same for a caller with an access token (query
/// `accessToken`), p123client's endpoint.
pub(crate) fn user_authorize(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    let pairs = query_pairs(req.uri());
    let token = query(&pairs, "accessToken").unwrap_or_default();
    let now = ctx.shared.now();
    let valid = lock(&ctx.shared.tokens).check(token, now).is_some()
        || lock(&ctx.shared.web_tokens).check(token, now).is_some();
    if !valid {
        return crate::http::err(401, crate::server::MSG_401);
    }
    redirect_with_code(&ctx.shared, &pairs)
}

/// The renewal service: `GET <renew>/?refresh_ui=…&server_use=true&driver_txt=123cloud_oa`.
/// 200 `{refresh_token, access_token, expires_in}` or 500 `{"text": …}` (APIPages'
/// `123cloud_oa.ts`, `genToken`).
pub(crate) fn renew(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    let pairs = query_pairs(req.uri());
    let fail = |text: String| json(StatusCode::INTERNAL_SERVER_ERROR, &json!({ "text": text }));
    if query(&pairs, "driver_txt") != Some(RENEW_DRIVER) {
        return fail("不支持的 driver_txt".to_string());
    }
    let Some(rt) = query(&pairs, "refresh_ui").filter(|v| !v.is_empty()) else {
        return fail("缺少 refresh_ui".to_string());
    };
    let sh = &ctx.shared;
    let (id, secret) = (sh.oauth_client_id.clone(), sh.oauth_client_secret.clone());
    let rt = rt.to_string();
    let param = move |name: &str| match name {
        "client_id" => Some(id.clone()),
        "client_secret" => Some(secret.clone()),
        "grant_type" => Some("refresh_token".to_string()),
        "refresh_token" => Some(rt.clone()),
        _ => None,
    };
    match grant(sh, &param) {
        Ok(g) => json(
            StatusCode::OK,
            &json!({
                "refresh_token": g.refresh_token,
                "access_token": g.access_token,
                "expires_in": g.expires_in,
            }),
        ),
        Err(e) => fail(format!("{}: {}", e.error, e.description)),
    }
}
