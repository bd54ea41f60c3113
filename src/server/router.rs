//! The request pipeline. Each step either answers the request or passes it on, in this
//! order:
//!
//! 0. `server.base_path`: a request outside it is 404; the steps below see the path under it;
//! 1. internal routes under `/-/` (health, metrics, signed downloads, the page's assets): no
//!    Basic auth (the page's share, queue and connect routes check it themselves);
//! 2. the path, decoded strictly, and the mount it belongs to;
//! 3. OPTIONS, answered before auth so clients can discover the server;
//! 4. the lockout, then authentication (anonymous mounts may be read without it);
//! 5. the XML body guard, before any parser sees a body;
//! 6. the virtual root, or 404 for an unknown mount;
//! 7. may this user use this mount; is the `If` header well formed;
//! 8. `Cache-Control: no-cache` on GET, HEAD or PROPFIND: the folder it is about is listed
//!    afresh (`freshness`);
//! 9. the method: GET/HEAD (`get`, then `download`), PROPFIND (`propfind`), the write methods
//!    (`write`, then dav-server), anything else 405.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use super::access::Origin;
use super::auth::{AuthOutcome, Authenticator, User};
use super::errors::failed_response;
use super::profile::ClientProfile;
use super::{paths, AppState};
use crate::dav::FsRequest;
use crate::download;
use crate::mount::Mount;
use crate::response;
use crate::response::ResponseBody;
use response::status_text;

/// `path` below `base` (`server.base_path`, empty at the root): `/` for `base` itself, `None`
/// outside it.
pub(super) fn below_base<'p>(path: &'p str, base: &str) -> Option<&'p str> {
    if base.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(base)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// A step's outcome: go on with a value, or answer the request with this response.
type Step<T> = Result<T, Response<ResponseBody>>;

/// Answers one request.
pub async fn handle<B>(
    state: Arc<AppState>,
    req: Request<B>,
    origin: Origin<'_>,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    pipeline(&state, req, origin)
        .await
        .unwrap_or_else(|answered| answered)
}

/// The steps, in order (see the module doc).
async fn pipeline<B>(
    state: &Arc<AppState>,
    req: Request<B>,
    origin: Origin<'_>,
) -> Step<Response<ResponseBody>>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(path) = below_base(req.uri().path(), &state.base_path) else {
        return Err(status_text(StatusCode::NOT_FOUND, "Not found", None));
    };
    if let Some(rest) = path.strip_prefix("/-/") {
        // Boxed, as every branch a redirect does not take (see `dispatch`).
        return Ok(Box::pin(internal(state, &req, origin, rest)).await);
    }
    let segments =
        paths::decode(path).map_err(|bad| status_text(StatusCode::BAD_REQUEST, bad.0, None))?;
    let route = state.route(&segments);
    if let Some((m, _)) = &route {
        origin.note.set_mount(m);
    }
    if req.method() == Method::OPTIONS {
        return Ok(super::root::options(route.as_ref().map(|r| r.0.as_ref())));
    }
    let user = authenticate(state, &req, origin.peer, route.as_ref().map(|r| &r.0)).await?;
    let req = super::xml_body::guard(req).await?;
    let Some((mount, rest)) = route else {
        return Ok(Box::pin(root_or_unknown(state, req, &segments, &user)).await);
    };
    if let Some(refused) = admit(&user, &mount, &req) {
        return Ok(refused);
    }
    let profile = ClientProfile::from_rules(req.headers(), &state.clients);
    origin.note.set_profile(&profile);
    let full_path = paths::encode_after(mount.config.path.trim_end_matches('/'), rest);
    if matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND")
        && super::freshness::wants_fresh(req.headers())
    {
        Box::pin(super::freshness::revalidate(&mount, rest, &full_path)).await?;
    }
    // In a cluster the user's junk and the mount's dead properties and client modification
    // times are every instance's (`cluster/junk.rs`, `cluster/props.rs`): read before, stored
    // after a request that changed them. Without Redis, this instance's alone. A GET or HEAD
    // of a name that is not junk reads no junk: one Redis round trip fewer. The two reads go
    // out together (the connection pipelines them), boxed so that a request without a
    // cluster does not carry their state in its future.
    if mount.shared_junk.is_some() || mount.shared_props.is_some() {
        let reads_junk = !matches!(req.method().as_str(), "GET" | "HEAD")
            || rest
                .last()
                .is_some_and(|name| profile.junk_local && crate::dav::junk::is_junk(name));
        let pull_junk = async {
            match &mount.shared_junk {
                Some(shared) if reads_junk => {
                    if let Err(e) = shared.pull(&mount.junk, &user.name).await {
                        tracing::debug!(error = %e, "client junk not read from the cluster");
                    }
                }
                _ => {}
            }
        };
        let pull_props = async {
            match &mount.shared_props {
                Some(shared) => shared.pull(&mount.props).await.map_err(|e| {
                    tracing::debug!(error = %e, "dead properties not read from the cluster");
                }),
                None => Ok(()),
            }
        };
        let ((), props_read) = Box::pin(async { tokio::join!(pull_junk, pull_props) }).await;
        if props_read.is_err() && req.method() == "PROPPATCH" {
            return Err(cluster_unavailable());
        }
    }
    let res = dispatch(
        state, &mount, rest, &segments, req, profile, &user, &full_path,
    )
    .await;
    if let Some(shared) = &mount.shared_junk {
        if let Err(e) = Box::pin(shared.push(&mount.junk, &user.name)).await {
            tracing::warn!(error = %e, "could not share client junk with the other instances");
        }
    }
    if let Some(shared) = &mount.shared_props {
        if let Err(e) = Box::pin(shared.push(&mount.props)).await {
            tracing::warn!(error = %e, "could not share dead properties with the other instances; kept here and shared once Redis answers");
        }
    }
    res
}

/// The method's handler.
#[allow(clippy::too_many_arguments)]
async fn dispatch<B>(
    state: &Arc<AppState>,
    mount: &Arc<Mount>,
    rest: &[String],
    segments: &[String],
    req: Request<super::xml_body::GuardedBody<B>>,
    profile: ClientProfile,
    user: &Arc<User>,
    full_path: &str,
) -> Step<Response<ResponseBody>>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    Ok(match req.method().as_str() {
        "GET" | "HEAD" => {
            super::get::get_or_head(state, mount, rest, segments, &req, profile, full_path, user)
                .await
        }
        // Boxed, as the write methods below: their futures are several KiB, and inline they
        // would make every request's future that size (moved whole a few times per request).
        "PROPFIND" => {
            let ctx = fs_request(&req, mount, user, &profile);
            let metrics = state.metrics();
            let base = &state.base_path;
            Box::pin(super::propfind::propfind(
                base, mount, rest, req, ctx, full_path, metrics,
            ))
            .await
        }
        "PUT" | "PATCH" | "MKCOL" | "DELETE" | "MOVE" | "COPY" | "PROPPATCH" | "LOCK"
        | "UNLOCK" => {
            if let Some(refused) = may_write(state, mount, user, &req) {
                return Ok(refused);
            }
            let ctx = fs_request(&req, mount, user, &profile);
            Box::pin(super::write::write(
                state, mount, rest, user, req, ctx, full_path,
            ))
            .await
        }
        _ => super::root::method_not_allowed(mount),
    })
}

/// The request as the filesystem sees it (PROPFIND and the write methods: a GET needs none).
fn fs_request<B>(
    req: &Request<B>,
    mount: &Mount,
    user: &User,
    profile: &ClientProfile,
) -> FsRequest {
    FsRequest {
        method: req.method().clone(),
        user: user.name.clone(),
        can_write: user.write && !mount.read_only(),
        destination: None,
        oc_mtime: None,
        junk_local: profile.junk_local,
        failure: crate::dav::Failure::default(),
    }
}

/// The lockout, then the credentials: the user, or 401/429. Without credentials, a mount
/// that says so may be read (GET, HEAD, PROPFIND) anonymously. Wrong credentials count
/// towards a lockout; a request without any does not.
pub(super) async fn authenticate<B>(
    state: &AppState,
    req: &Request<B>,
    peer: std::net::SocketAddr,
    mount: Option<&Arc<Mount>>,
) -> Step<Arc<User>> {
    let client_ip = super::lockout::client_ip(peer.ip(), req.headers(), &state.trusted_proxies);
    let locked_out = || {
        status_text(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong credentials; try again later",
            Some(state.lockout.retry_after()),
        )
    };
    let before = state.lockout.check(client_ip).await;
    if before.locked {
        return Err(locked_out());
    }
    match state
        .auth
        .check(req.headers().get(http::header::AUTHORIZATION))
        .await
    {
        AuthOutcome::Ok(user) => {
            state.lockout.succeeded(client_ip, before).await;
            Ok(user)
        }
        AuthOutcome::Missing
            if matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND")
                && mount.is_some_and(|m| m.config.anonymous) =>
        {
            let path = mount.map(|m| m.config.path.clone()).unwrap_or_default();
            Ok(Arc::new(User::anonymous(&path)))
        }
        outcome => {
            if matches!(outcome, AuthOutcome::Invalid) && state.lockout.failed(client_ip).await {
                return Err(locked_out());
            }
            let mut res = status_text(StatusCode::UNAUTHORIZED, "Authentication required", None);
            res.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, Authenticator::challenge());
            Err(res)
        }
    }
}

/// A path outside every mount: the virtual root (the mounts this user may see), or 404.
async fn root_or_unknown<B>(
    state: &AppState,
    req: Request<B>,
    segments: &[String],
    user: &User,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !segments.is_empty() {
        return status_text(StatusCode::NOT_FOUND, "No such mount", None);
    }
    let visible: Vec<Arc<Mount>> = state
        .mounts
        .iter()
        .filter(|m| user.can_see(&m.config.path))
        .cloned()
        .collect();
    if req.method() == Method::GET && crate::page::wants_html(req.headers()) {
        let entries = super::root::mount_entries(&visible);
        return super::ui::folder_page(state, &req, user, None, &[], &entries);
    }
    super::root::root(&state.base_path, state.address_of("/"), req, visible).await
}

/// May this user use this mount at all, and is the `If` header well formed: `Some` answers
/// the request.
fn admit<B>(user: &User, mount: &Mount, req: &Request<B>) -> Option<Response<ResponseBody>> {
    if !user.can_see(&mount.config.path) {
        return Some(status_text(
            StatusCode::FORBIDDEN,
            "This user may not use this mount",
            None,
        ));
    }
    if req
        .headers()
        .get("If")
        .is_some_and(|v| !super::if_header::well_formed(v.as_bytes()))
    {
        return Some(status_text(
            StatusCode::BAD_REQUEST,
            "Malformed If header",
            None,
        ));
    }
    None
}

/// A write method needs a writable mount (or, for COPY, only a writable destination: a COPY
/// only reads its source) and a user who may write: `Some` answers the request.
fn may_write<B>(
    state: &AppState,
    mount: &Arc<Mount>,
    user: &User,
    req: &Request<B>,
) -> Option<Response<ResponseBody>> {
    // In a cluster, a write must reach the other instances (invalidations, later locks and
    // properties): while Redis is unavailable it waits. UNLOCK only gives a lock back.
    if let Some(cluster) = &state.upstream.cluster {
        if !cluster.available() && req.method().as_str() != "UNLOCK" {
            return Some(cluster_unavailable());
        }
    }
    let copies_out = req.method().as_str() == "COPY"
        && super::destination::destination(req.headers(), &state.base_path)
            .and_then(|(_, dest)| state.route(&dest).map(|(m, _)| m))
            .is_some_and(|m| !Arc::ptr_eq(&m, mount) && !m.read_only());
    if mount.read_only() && !copies_out {
        return Some(status_text(
            StatusCode::FORBIDDEN,
            "This mount is read-only",
            None,
        ));
    }
    if !user.write {
        return Some(status_text(
            StatusCode::FORBIDDEN,
            "This user may not write",
            None,
        ));
    }
    None
}

/// 503 for a write while the cluster's Redis is unavailable.
fn cluster_unavailable() -> Response<ResponseBody> {
    status_text(
        StatusCode::SERVICE_UNAVAILABLE,
        "The cluster's shared state (Redis) is unavailable; writes resume when it is back",
        Some(crate::cluster::RETRY_AFTER),
    )
}

/// Routes under `/-/`: health and metrics, the browser page's (`ui`), and signed downloads
/// (`/-/d/…`, whose signature is the credential).
async fn internal<B>(
    state: &AppState,
    req: &Request<B>,
    origin: Origin<'_>,
    rest: &str,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    if let Some(res) = super::health::route(state, req, rest).await {
        return res;
    }
    if let Some(res) = super::ui::route(state, req, origin, rest).await {
        return res;
    }
    if rest == "internal/pending" {
        return super::internal::pending(state, req).await;
    }
    let Some(signed) = rest.strip_prefix("d/") else {
        return status_text(StatusCode::NOT_FOUND, "Not found", None);
    };
    let signed = download::signed_route::SignedRequest {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        rest: signed,
    };
    download::signed_route::serve(&state.downloads(), &state.mounts, &signed, |m| {
        origin.note.set_mount(m)
    })
    .await
    .unwrap_or_else(|failed| failed_response(&failed))
}

impl AppState {
    /// The mount a path belongs to and the segments below it.
    pub(super) fn route<'a>(&self, segments: &'a [String]) -> Option<(Arc<Mount>, &'a [String])> {
        crate::mount::route(&self.mounts, segments)
    }

    /// The absolute URL of `below` (a path under `base_path`, encoded) from `public_url`, if
    /// set.
    pub(super) fn address_of(&self, below: &str) -> Option<String> {
        let url = self.public_url.as_deref()?;
        Some(format!(
            "{}{below}",
            download::policy::gateway_url(url, &self.base_path)
        ))
    }

    /// What the download path needs from this server, for one request.
    pub(super) fn downloads(&self) -> download::Downloads<'_> {
        download::Downloads {
            upstream: &self.upstream,
            signer: self.signer.as_ref(),
            sign_ttl: self.sign_ttl,
            clock: &self.clock,
            public_url: self.public_url.as_deref(),
            base_path: &self.base_path,
            traffic: &self.traffic,
            clients: &self.clients,
        }
    }
}
