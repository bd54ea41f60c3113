//! The browser page's routes: a folder's page (from `get` and the virtual root), its assets
//! (`/-/ui/…`), share links (`POST /-/share`), the upload queue's state of a folder
//! (`/-/queue`) and a mount's connect page (`/-/connect/<mount>`). Every route that shows or
//! signs something checks the same Basic auth and per-user mounts as WebDAV; a folder's page
//! lists from the same cached listing as PROPFIND, so it costs 123 no more calls.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use super::access::Origin;
use super::auth::User;
use super::{paths, AppState};
use crate::backend::Entry;
use crate::mount::Mount;
use crate::page::{self, i18n, render};
use crate::response::{status_text, ResponseBody};

/// The lifetimes a share link may be given; each is capped by `server.sign_ttl`.
pub const SHARE_LIFETIMES: [u64; 3] = [3600, 86_400, 7 * 86_400];

/// A folder's page for a browser. `segments` is the folder's path below the base (empty for
/// the virtual root), `mount` its mount (none at the root).
pub(super) fn folder_page<B>(
    state: &AppState,
    req: &Request<B>,
    user: &User,
    mount: Option<&Mount>,
    segments: &[String],
    entries: &[Entry],
) -> Response<ResponseBody> {
    let (lang, chosen) = i18n::choose(req.uri().query(), req.headers());
    let mut below = paths::encode(segments);
    if !below.ends_with('/') {
        below.push('/');
    }
    let address = state.address_of(&below);
    let anonymous = req.headers().get(http::header::AUTHORIZATION).is_none();
    let folder = render::Folder {
        lang,
        base: &state.base_path,
        segments,
        address: address.as_deref(),
        can_write: mount.is_some_and(|m| user.write && !m.read_only()),
        can_share: mount.is_some() && state.signer.is_some() && !anonymous,
        mount: mount.map(|m| m.name()),
    };
    let html = render::folder(&folder, &page::ui_prefix(&state.base_path), entries);
    page::html(req.method(), html, chosen.then_some(lang), &state.base_path)
}

/// The routes under `/-/` that belong to the page; `None` for any other.
pub(super) async fn route<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
    rest: &str,
) -> Option<Response<ResponseBody>>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    if let Some(asset) = rest.strip_prefix("ui/") {
        return Some(page::asset(req.method(), req.headers(), asset));
    }
    if let Some(mount) = rest.strip_prefix("connect/") {
        return Some(connect(state, req, origin, mount).await);
    }
    match rest {
        "share" => Some(share(state, req, origin).await),
        "queue" => Some(queue(state, req, origin).await),
        _ => None,
    }
}

/// A query parameter, decoded once.
fn param<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// The path of `?path=` (a gateway path, percent-encoded as in its URL, below the base), its
/// mount and the user, who must be allowed to see that mount: or the answer.
async fn user_and_path<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
    path: &str,
) -> Result<Found, Response<ResponseBody>> {
    let segments =
        paths::decode(path).map_err(|bad| status_text(StatusCode::BAD_REQUEST, bad.0, None))?;
    let Some((mount, rest)) = state.route(&segments) else {
        return Err(status_text(StatusCode::NOT_FOUND, "No such mount", None));
    };
    let depth = segments.len() - rest.len();
    origin.note.set_mount(&mount);
    let user = super::router::authenticate(state, req, origin.peer, Some(&mount)).await?;
    if !user.can_see(&mount.config.path) {
        return Err(status_text(
            StatusCode::FORBIDDEN,
            "This user may not use this mount",
            None,
        ));
    }
    Ok(Found {
        user,
        mount,
        segments,
        depth,
    })
}

/// A path of a request to a page route, its mount and the user allowed to see it.
struct Found {
    user: Arc<User>,
    mount: Arc<Mount>,
    /// The path's segments from the server's root (below the base).
    segments: Vec<String>,
    /// How many leading segments name the mount.
    depth: usize,
}

/// This server's URL as the client reached it: `public_url` when set, else from `Host` (and,
/// behind a trusted reverse proxy that ends TLS, the scheme it forwards).
fn own_url<B>(state: &AppState, req: &Request<B>, peer: std::net::SocketAddr) -> String {
    if let Some(url) = state.public_url.as_deref() {
        return crate::download::policy::gateway_url(url, &state.base_path);
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let proxied_https =
        super::lockout::forwarded_https(peer.ip(), req.headers(), &state.trusted_proxies);
    let scheme = if state.tls || proxied_https {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}{}", state.base_path)
}

/// `POST /-/share?path=<file>&ttl=<seconds>`: a signed `/-/d/…` URL of a file the user may
/// read, valid for the chosen lifetime (capped by `sign_ttl`). Logged with who made it, never
/// the URL itself.
async fn share<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
) -> Response<ResponseBody> {
    if req.method() != Method::POST {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "Only POST", None);
    }
    let Some(signer) = state.signer.as_ref() else {
        return status_text(
            StatusCode::NOT_FOUND,
            "Share links need server.signing_key",
            None,
        );
    };
    let Some(path) = param(req, "path").filter(|p| p.len() <= 4096) else {
        return status_text(StatusCode::BAD_REQUEST, "Missing path", None);
    };
    let ttl = match param(req, "ttl").map(|t| t.parse::<u64>()) {
        None => SHARE_LIFETIMES[0],
        Some(Ok(t)) if SHARE_LIFETIMES.contains(&t) => t,
        Some(_) => {
            return status_text(
                StatusCode::BAD_REQUEST,
                "ttl must be 3600, 86400 or 604800",
                None,
            )
        }
    };
    let Found {
        user,
        mount,
        segments,
        depth,
    } = match user_and_path(state, req, origin, &path).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let rest = &segments[depth..];
    match mount.vfs.resolve(rest).await {
        Ok(e) if !e.is_dir => {}
        Ok(_) => return status_text(StatusCode::BAD_REQUEST, "Only files are shared", None),
        Err(e) => {
            let full = paths::encode(&segments);
            return super::errors::error_response(&e, &full);
        }
    }
    let ttl = Duration::from_secs(ttl).min(state.sign_ttl).as_secs();
    let expires = state.clock.unix_secs() + ttl;
    let encoded = paths::encode(&segments);
    let url = crate::download::signed_route::signed_url(
        &own_url(state, req, origin.peer),
        signer,
        &encoded,
        expires,
    );
    tracing::info!(user = %user.name, mount = %mount.config.path, path = %encoded, ttl_secs = ttl, "share link made");
    page::json(
        StatusCode::OK,
        &serde_json::json!({ "url": url, "expires": expires, "ttl": ttl }),
    )
}

/// `GET /-/queue?path=<folder>`: the uploads of a folder the user may read, each `queued`,
/// `uploading`, `done` or `failed` (recent outcomes only).
async fn queue<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
) -> Response<ResponseBody> {
    if req.method() != Method::GET {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "Only GET", None);
    }
    let Some(path) = param(req, "path").filter(|p| p.len() <= 4096) else {
        return status_text(StatusCode::BAD_REQUEST, "Missing path", None);
    };
    let Found {
        mount,
        segments,
        depth,
        ..
    } = match user_and_path(state, req, origin, &path).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let rest = &segments[depth..];
    let dir = match mount.vfs.resolve(rest).await {
        Ok(e) if e.is_dir => e,
        Ok(_) => return status_text(StatusCode::BAD_REQUEST, "Not a folder", None),
        Err(e) => return super::errors::error_response(&e, &paths::encode(&segments)),
    };
    let items: Vec<serde_json::Value> = state
        .uploads
        .states(mount.name(), dir.id)
        .into_iter()
        .map(|(name, st)| serde_json::json!({ "name": name, "state": st }))
        .collect();
    page::json(StatusCode::OK, &serde_json::json!({ "uploads": items }))
}

/// `GET /-/connect/<mount>`: how to mount it in the usual clients.
async fn connect<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
    mount: &str,
) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD", None);
    }
    let path = format!("/{}", mount.trim_end_matches('/'));
    let Found {
        user,
        mount,
        segments,
        depth,
    } = match user_and_path(state, req, origin, &path).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if segments.len() != depth {
        return status_text(StatusCode::NOT_FOUND, "No such mount", None);
    }
    let (lang, chosen) = i18n::choose(req.uri().query(), req.headers());
    let url = format!(
        "{}{}/",
        own_url(state, req, origin.peer),
        paths::encode(&segments)
    );
    let html = render::connect(
        &render::Connect {
            lang,
            base: &state.base_path,
            mount: mount.name(),
            url: &url,
            user: &user.name,
        },
        &page::ui_prefix(&state.base_path),
    );
    page::html(req.method(), html, chosen.then_some(lang), &state.base_path)
}
