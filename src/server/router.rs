//! The request pipeline, in order: internal routes, OPTIONS, auth, path decoding, mount
//! routing, then GET/HEAD (download module), PROPFIND (after the listing is known to be
//! complete) and the rest (dav-server).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dav_server::{DavHandler, DavMethodSet};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::errors::error_response;
use super::index;
use super::paths;
use super::profile::ClientProfile;
use super::AppState;
use crate::backend::{Entry, Error, Link};
use crate::config::DownloadPolicy;
use crate::dav::{store_key, Ctx, MountFs, RootFs};
use crate::download::conditional::{evaluate, Precondition, Validators};
use crate::download::local;
use crate::download::proxy::{proxy, LinkSource};
use crate::download::respond::{self, status_text};
use crate::download::ResponseBody;
use crate::mount::Mount;

/// Methods a read-only mount allows.
const READ_ONLY_ALLOW: &str = "OPTIONS, GET, HEAD, PROPFIND";
/// Methods a writable mount allows.
const WRITABLE_ALLOW: &str =
    "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, PUT, DELETE, MKCOL, COPY, MOVE, LOCK, UNLOCK";
/// The request header that makes dav-server answer a PROPFIND (value `dav-server`).
pub const PROPFIND_WRITER: &str = "x-propfind-writer";

/// What the download policy decided for one GET.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Redirect,
    Proxy,
    ProxyUrl,
}

/// Picks how a file's bytes reach this client.
fn delivery(policy: DownloadPolicy, portable_links: bool, profile: ClientProfile) -> Delivery {
    let wanted = match policy {
        DownloadPolicy::Auto if portable_links => Delivery::Redirect,
        DownloadPolicy::Auto | DownloadPolicy::Proxy => Delivery::Proxy,
        DownloadPolicy::Redirect => Delivery::Redirect,
        DownloadPolicy::ProxyUrl => Delivery::ProxyUrl,
    };
    if profile.never_redirect && wanted != Delivery::Proxy {
        return Delivery::Proxy;
    }
    wanted
}

/// Answers one request.
pub async fn handle<B>(state: Arc<AppState>, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/-/") {
        return internal(&state, &req, rest).await;
    }
    let segments = match paths::decode(&path) {
        Ok(s) => s,
        Err(bad) => return status_text(StatusCode::BAD_REQUEST, bad.0, None),
    };
    let route = state.route(&segments);
    if let Some((m, _)) = &route {
        super::access::note_mount(&req, m);
    }
    if req.method() == Method::OPTIONS {
        return options(route.as_ref().map(|r| r.0.as_ref()));
    }
    let client_ip = req
        .extensions()
        .get::<super::lockout::Peer>()
        .map(|p| super::lockout::client_ip(p.0.ip(), req.headers(), &state.trusted_proxies));
    if client_ip.is_some_and(|ip| state.lockout.is_locked(ip)) {
        let retry = state.lockout.retry_after();
        return status_text(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong credentials; try again later",
            Some(retry),
        );
    }
    let user = match state
        .auth
        .check(req.headers().get(http::header::AUTHORIZATION))
        .await
    {
        super::auth::AuthOutcome::Ok(user) => {
            if let Some(ip) = client_ip {
                state.lockout.succeeded(ip);
            }
            user
        }
        super::auth::AuthOutcome::Missing
            if matches!(req.method().as_str(), "GET" | "HEAD" | "PROPFIND")
                && route.as_ref().is_some_and(|(m, _)| m.config.anonymous) =>
        {
            // A mount that says so may be read without credentials.
            let path = route
                .as_ref()
                .map(|(m, _)| m.config.path.clone())
                .unwrap_or_default();
            Arc::new(super::auth::User::anonymous(&path))
        }
        outcome => {
            // Wrong credentials count towards a lockout; a request without any does not.
            if let (super::auth::AuthOutcome::Invalid, Some(ip)) = (&outcome, client_ip) {
                if state.lockout.failed(ip) {
                    let retry = state.lockout.retry_after();
                    return status_text(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many wrong credentials; try again later",
                        Some(retry),
                    );
                }
            }
            let mut res = status_text(StatusCode::UNAUTHORIZED, "Authentication required", None);
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                super::auth::Authenticator::challenge(),
            );
            return res;
        }
    };
    // Before any XML parser sees the body (PROPFIND of an anonymous mount included).
    let req = match super::xml_body::guard(req).await {
        Ok(req) => req,
        Err(res) => return res,
    };
    let Some((mount, rest)) = route else {
        if segments.is_empty() {
            let visible: Vec<Arc<Mount>> = state
                .mounts
                .iter()
                .filter(|m| user.can_see(&m.config.path))
                .cloned()
                .collect();
            return root(req, visible).await;
        }
        return status_text(StatusCode::NOT_FOUND, "No such mount", None);
    };
    if !user.can_see(&mount.config.path) {
        return status_text(
            StatusCode::FORBIDDEN,
            "This user may not use this mount",
            None,
        );
    }
    if req
        .headers()
        .get("If")
        .is_some_and(|v| !super::if_header::well_formed(v.as_bytes()))
    {
        return status_text(StatusCode::BAD_REQUEST, "Malformed If header", None);
    }
    let profile = ClientProfile::from_rules(req.headers(), &state.clients);
    super::access::note_profile(&req, &profile);
    let what = format!(
        "{}{}",
        mount.config.path.trim_end_matches('/'),
        paths::encode(rest)
    );
    let ctx = Ctx {
        method: req.method().clone(),
        user: user.name.clone(),
        can_write: user.write && !mount.read_only(),
        destination: None,
        oc_mtime: None,
        junk_local: profile.junk_local,
        failure: crate::dav::Failure::default(),
    };
    match req.method().as_str() {
        "GET" | "HEAD" => {
            get_or_head(&state, &mount, rest, &segments, &req, profile, &ctx, &what).await
        }
        "PROPFIND" => propfind(&mount, rest, req, ctx, &what).await,
        "PUT" | "PATCH" | "MKCOL" | "DELETE" | "MOVE" | "COPY" | "PROPPATCH" | "LOCK"
        | "UNLOCK" => {
            // A COPY only reads its source: out of a read-only mount into a writable one is fine.
            let copies_out = req.method().as_str() == "COPY"
                && destination(req.headers())
                    .and_then(|(_, dest)| state.route(&dest).map(|(m, _)| m))
                    .is_some_and(|m| !Arc::ptr_eq(&m, &mount) && !m.read_only());
            if mount.read_only() && !copies_out {
                return status_text(StatusCode::FORBIDDEN, "This mount is read-only", None);
            }
            if !user.write {
                return status_text(StatusCode::FORBIDDEN, "This user may not write", None);
            }
            write(&state, &mount, rest, &user, req, ctx, &what).await
        }
        _ => {
            let mut res = status_text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", None);
            let allow = if mount.read_only() {
                READ_ONLY_ALLOW
            } else {
                WRITABLE_ALLOW
            };
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            res
        }
    }
}

/// Write methods, after the checks dav-server cannot express: partial PUTs, names 123 cannot
/// store (400 with the reason), the destination of MOVE/COPY, lock timeouts, client mtimes.
async fn write<B>(
    state: &AppState,
    mount: &Arc<Mount>,
    rest: &[String],
    user: &super::auth::User,
    req: Request<B>,
    mut ctx: Ctx,
    what: &str,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = req.method().as_str().to_string();
    if method == "PATCH"
        || (method == "PUT" && req.headers().contains_key(http::header::CONTENT_RANGE))
    {
        return status_text(
            StatusCode::NOT_IMPLEMENTED,
            "Partial uploads are not supported; send the whole file",
            None,
        );
    }
    if method == "PUT" || method == "MKCOL" {
        if let Some(name) = rest.last() {
            if let Err(e) = valid_name(name) {
                return *e;
            }
        }
    }
    if rest.is_empty() && matches!(method.as_str(), "MOVE" | "DELETE") {
        return status_text(
            StatusCode::FORBIDDEN,
            "A mount's root cannot be moved or deleted",
            None,
        );
    }
    if method == "MOVE" || method == "COPY" {
        let overwrite = req
            .headers()
            .get("Overwrite")
            .map(|v| v.as_bytes().to_ascii_uppercase());
        if overwrite.is_some_and(|v| v != b"T" && v != b"F") {
            return status_text(StatusCode::BAD_REQUEST, "Overwrite must be T or F", None);
        }
        let Some((authority, dest)) = destination(req.headers()) else {
            return status_text(
                StatusCode::BAD_REQUEST,
                "Missing or invalid Destination header",
                None,
            );
        };
        if let Some(authority) = authority {
            if !state.is_own_host(&authority, req.headers().get(http::header::HOST)) {
                // RFC 4918 9.8.4 / 9.9.4: a destination on another server may be refused with 502.
                return status_text(
                    StatusCode::BAD_GATEWAY,
                    "The destination is on another server",
                    None,
                );
            }
        }
        let routed = state.route(&dest);
        // Neither the server's root nor a mount's can be replaced (dav-server would panic).
        if dest.is_empty() || routed.as_ref().is_some_and(|(_, r)| r.is_empty()) {
            return status_text(
                StatusCode::FORBIDDEN,
                "A mount's root cannot be the destination",
                None,
            );
        }
        match routed {
            Some((m, dest_rest)) if Arc::ptr_eq(&m, mount) => {
                if let Some((name, parent)) = dest_rest.split_last() {
                    if let Err(e) = valid_name(name) {
                        return *e;
                    }
                    match mount.vfs.resolve(parent).await {
                        Ok(p) if p.is_dir => {}
                        Ok(_) | Err(crate::backend::Error::NotFound) => {
                            return status_text(
                                StatusCode::CONFLICT,
                                "The destination folder does not exist",
                                None,
                            )
                        }
                        Err(e) => return error_response(&e, "destination"),
                    }
                }
                ctx.destination = Some(store_key(dest_rest));
            }
            Some((other, dest_rest)) => {
                if !user.can_see(&other.config.path) {
                    return status_text(
                        StatusCode::FORBIDDEN,
                        "This user may not use the destination mount",
                        None,
                    );
                }
                if let Some(name) = dest_rest.last() {
                    if let Err(e) = valid_name(name) {
                        return *e;
                    }
                }
                let dest_rest = dest_rest.to_vec();
                let is_move = method == "MOVE";
                return super::cross_mount::copy_or_move(
                    mount,
                    rest,
                    &other,
                    &dest_rest,
                    req.headers(),
                    &user.name,
                    is_move,
                )
                .await;
            }
            None => {
                return status_text(
                    StatusCode::BAD_GATEWAY,
                    "The destination is not on this server",
                    None,
                )
            }
        }
    }
    if method == "LOCK" {
        return lock(mount, rest, ctx, req, what).await;
    }
    if method == "PUT" {
        ctx.oc_mtime = req
            .headers()
            .get("X-OC-Mtime")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    }
    let stored_mtime = ctx.oc_mtime.is_some();
    let mut res = dav_mount(mount, ctx, req, what).await;
    if stored_mtime && res.status().is_success() {
        res.headers_mut()
            .insert("X-OC-Mtime", HeaderValue::from_static("accepted"));
    }
    res
}

/// LOCK: a missing Timeout gets the default (dav-server would keep the lock forever). A new
/// lock whose owner is over 4 KiB gets 400, and one over a cap (locks per resource, per user)
/// 507 with the reason, before dav-server, which can only answer 423 to a refused lock. The
/// lock store enforces the same caps itself (two LOCKs racing past this check get 423).
async fn lock<B>(
    mount: &Arc<Mount>,
    rest: &[String],
    ctx: Ctx,
    mut req: Request<B>,
    what: &str,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !req.headers().contains_key("Timeout") {
        // A LOCK without a Timeout still expires (dav-server would keep it forever).
        let default = format!("Second-{}", crate::dav::locks::DEFAULT_TIMEOUT.as_secs());
        if let Ok(v) = HeaderValue::from_str(&default) {
            req.headers_mut().insert("Timeout", v);
        }
    }
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, super::xml_body::MAX_XML_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return status_text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The LOCK body is larger than 64 KiB",
                None,
            )
        }
        Err(_) => return status_text(StatusCode::BAD_REQUEST, "The LOCK body was cut", None),
    };
    if !body.is_empty() {
        if lock_owner(&body).is_some_and(|o| crate::dav::locks::owner_too_large(&o)) {
            return status_text(
                StatusCode::BAD_REQUEST,
                crate::dav::locks::Refusal::OwnerTooLarge.message(),
                None,
            );
        }
        if let Ok(path) = dav_server::davpath::DavPath::new(&paths::encode(rest)) {
            if let Err(refusal) = mount.locks.admit(&path, &ctx.user) {
                return status_text(StatusCode::INSUFFICIENT_STORAGE, refusal.message(), None);
            }
        }
    }
    let req = Request::from_parts(parts, http_body_util::Full::new(body));
    dav_mount(mount, ctx, req, what).await
}

/// The `owner` element of a LOCK body, as dav-server will store it (prefix `D`).
fn lock_owner(body: &[u8]) -> Option<xmltree::Element> {
    let info = xmltree::Element::parse(body).ok()?;
    let mut owner = info.get_child("owner")?.clone();
    owner.prefix = Some("D".into());
    Some(owner)
}

/// 400 with the reason when 123 cannot store `name`.
fn valid_name(name: &str) -> Result<(), Box<Response<ResponseBody>>> {
    if crate::dav::junk::is_junk(name) {
        return Ok(());
    }
    crate::vfs::cloud_name(name)
        .map(|_| ())
        .map_err(|e| Box::new(status_text(StatusCode::BAD_REQUEST, &e.to_string(), None)))
}

/// The Destination header's authority (`host[:port]`, when it is an absolute URL) and the
/// decoded segments of its path.
///
/// The path is taken as sent, not normalised by a URL parser (which would resolve `%2e%2e`
/// before we see it): `paths::decode` refuses every dot-segment and encoded slash, so no
/// Destination can climb out of its mount.
fn destination(headers: &http::HeaderMap) -> Option<(Option<String>, Vec<String>)> {
    let raw = headers.get("Destination")?.to_str().ok()?;
    let (authority, path) = match raw.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            let slash = rest.find('/')?;
            // Credentials in the URL (`user@host`) name no other host.
            let authority = rest[..slash].rsplit('@').next().unwrap_or("");
            (Some(authority.to_ascii_lowercase()), &rest[slash..])
        }
        Some(_) => return None,
        None if raw.starts_with('/') => (None, raw),
        None => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    paths::decode(path).ok().map(|segs| (authority, segs))
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-case host and its port, if written.
fn host_and_port(authority: &str) -> (String, Option<&str>) {
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    (host.to_ascii_lowercase(), port.filter(|p| !p.is_empty()))
}

/// Do two authorities name the same server? The same host, and the same port when both say
/// one (a URL without a port means the scheme's default, which the other side may spell out).
fn same_authority(a: &str, b: &str) -> bool {
    let (host_a, port_a) = host_and_port(a);
    let (host_b, port_b) = host_and_port(b);
    host_a == host_b
        && match (port_a, port_b) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

impl AppState {
    /// Is `authority` (a Destination's `host[:port]`) this server: the request's `Host`,
    /// `public_url`'s host or one of `server.host_aliases`?
    fn is_own_host(&self, authority: &str, host: Option<&HeaderValue>) -> bool {
        host.and_then(|h| h.to_str().ok())
            .into_iter()
            .chain(self.own_hosts.iter().map(String::as_str))
            .any(|own| same_authority(authority, own))
    }

    /// The mount a path belongs to and the segments below it.
    fn route<'a>(&self, segments: &'a [String]) -> Option<(Arc<Mount>, &'a [String])> {
        if let Some(m) = self.mounts.iter().find(|m| m.name().is_empty()) {
            return Some((m.clone(), segments));
        }
        let first = segments.first()?;
        let m = self.mounts.iter().find(|m| m.name() == first)?;
        Some((m.clone(), &segments[1..]))
    }
}

/// OPTIONS needs no auth, so Windows can discover the server before it sends credentials.
/// Writable mounts are class 2 (locks); read-only ones class 1 with no write method in
/// `Allow`, so Finder mounts them read-only instead of failing every save.
fn options(mount: Option<&Mount>) -> Response<ResponseBody> {
    let (allow, dav) = match mount {
        Some(m) if !m.read_only() => (WRITABLE_ALLOW, "1, 2"),
        _ => (READ_ONLY_ALLOW, "1"),
    };
    let mut res = Response::new(respond::empty_body());
    let h = res.headers_mut();
    h.insert("DAV", HeaderValue::from_static(dav));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    h.insert(ALLOW, HeaderValue::from_static(allow));
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res
}

/// The virtual root folder: an index for browsers, a PROPFIND listing of mounts for DAV.
async fn root<B>(req: Request<B>, visible: Vec<Arc<Mount>>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match *req.method() {
        Method::GET | Method::HEAD => {
            let entries: Vec<Entry> = visible
                .iter()
                .map(|m| Entry {
                    id: 0,
                    name: m.name().to_string(),
                    is_dir: true,
                    size: 0,
                    md5: None,
                    version: None,
                    modified: SystemTime::UNIX_EPOCH,
                    created: SystemTime::UNIX_EPOCH,
                })
                .collect();
            html(&req, index::render("/", "/", &entries))
        }
        _ if req.method().as_str() == "PROPFIND" => {
            let mut req = req;
            match normalise_depth(&mut req) {
                Some(res) => res,
                None => dav(RootFs::new(visible), None, req).await,
            }
        }
        _ => status_text(StatusCode::FORBIDDEN, "The root folder is read-only", None),
    }
}

fn html<B>(req: &Request<B>, page: String) -> Response<ResponseBody> {
    let len = page.len();
    let body = if req.method() == Method::HEAD {
        respond::empty_body()
    } else {
        respond::full_body(page)
    };
    let mut res = Response::new(body);
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// Missing Depth means 1 (never an unbounded walk); infinity is refused cheaply with 403.
/// Returns the response to send instead when the Depth is refused.
fn normalise_depth<B>(req: &mut Request<B>) -> Option<Response<ResponseBody>> {
    match req
        .headers()
        .get("Depth")
        .map(|v| v.as_bytes().to_ascii_lowercase())
    {
        None => {
            req.headers_mut()
                .insert("Depth", HeaderValue::from_static("1"));
            None
        }
        Some(d) if d == b"0" || d == b"1" => None,
        Some(d) if d == b"infinity" => {
            let mut res = Response::new(respond::full_body(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
            ));
            *res.status_mut() = StatusCode::FORBIDDEN;
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/xml; charset=utf-8"),
            );
            Some(res)
        }
        Some(_) => Some(status_text(
            StatusCode::BAD_REQUEST,
            "Depth must be 0, 1 or infinity",
            None,
        )),
    }
}

/// PROPFIND: resolve the target and, for Depth 1 on a folder, fetch its complete listing
/// before a byte is written, so a failed page becomes 502/503 instead of a 207 that looks like
/// a short or empty folder (dav-server skips folders it cannot read). Then the one-pass writer
/// answers (`dav::multistatus`, every body shape); dav-server only what that declines.
async fn propfind<B>(
    mount: &Arc<Mount>,
    rest: &[String],
    mut req: Request<super::xml_body::GuardedBody<B>>,
    ctx: Ctx,
    what: &str,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(res) = normalise_depth(&mut req) {
        return res;
    }
    let depth_one = req
        .headers()
        .get("Depth")
        .is_some_and(|d| d.as_bytes() == b"1");
    // Client junk is answered from the side store and never asks 123.
    let is_junk = rest.last().is_some_and(|n| ctx.is_junk(n));
    if !is_junk {
        let entry = match mount.vfs.resolve(rest).await {
            Ok(e) => e,
            Err(e) => return error_response(&e, what),
        };
        if entry.is_dir && depth_one {
            if let Err(e) = mount.vfs.list(&entry).await {
                return error_response(&e, what);
            }
        }
    }
    // `X-Propfind-Writer: dav-server` asks for the reference writer: for comparing both
    // answers when a client misreads a listing (and in `tests/propfind_fast.rs`).
    let reference = req
        .headers()
        .get(PROPFIND_WRITER)
        .is_some_and(|v| v.as_bytes() == b"dav-server");
    let asked = req
        .body()
        .checked_bytes()
        .filter(|_| !reference)
        .and_then(crate::dav::propfind_body::parse);
    if let Some(asked) = asked {
        let ua = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let path = req.uri().path();
        if let Some(res) =
            crate::dav::multistatus::answer(mount, &ctx, path, ua, depth_one, asked).await
        {
            super::metrics::propfind_answered("direct");
            return res;
        }
    }
    super::metrics::propfind_answered("dav-server");
    dav_mount(mount, ctx, req, what).await
}

/// Hands a request to dav-server over the mount's filesystem, with its locks when writable.
/// A 500 that a backend error caused is answered as that error (502/503 with Retry-After,
/// like reads), not as dav-server's bare 500.
async fn dav_mount<B>(
    mount: &Arc<Mount>,
    ctx: Ctx,
    req: Request<B>,
    what: &str,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let user = ctx.user.clone();
    let mut builder = DavHandler::builder().filesystem(Box::new(MountFs::new(mount.clone())));
    builder = if mount.read_only() {
        builder.methods(DavMethodSet::WEBDAV_RO)
    } else {
        builder
            .locksystem(mount.locks.dav())
            .methods(DavMethodSet::WEBDAV_RW)
    };
    if !mount.name().is_empty() {
        builder = builder.strip_prefix(format!("/{}", mount.name()));
    }
    let failure = ctx.failure.clone();
    let res = builder.build_handler().handle_guarded(req, user, ctx).await;
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR {
        if let Some(e) = failure.take() {
            return error_response(&e, what);
        }
    }
    res.map(|b| b.boxed_unsync())
}

/// Hands a request to dav-server over `fs`.
async fn dav<F, B>(fs: F, prefix: Option<String>, req: Request<B>) -> Response<ResponseBody>
where
    F: dav_server::fs::DavFileSystem + Clone + Send + Sync + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut builder = DavHandler::builder()
        .filesystem(Box::new(fs))
        .methods(DavMethodSet::WEBDAV_RO);
    if let Some(p) = prefix {
        builder = builder.strip_prefix(p);
    }
    let res = builder.build_handler().handle(req).await;
    res.map(|b| b.boxed_unsync())
}

/// GET/HEAD on a mount path: a folder gets an HTML index (HEAD 200); a file goes by policy.
#[allow(clippy::too_many_arguments)]
async fn get_or_head<B>(
    state: &AppState,
    mount: &Arc<Mount>,
    rest: &[String],
    full: &[String],
    req: &Request<B>,
    profile: ClientProfile,
    ctx: &Ctx,
    what: &str,
) -> Response<ResponseBody> {
    // Client junk is answered locally: from the side store, or a fast 404 that never asks 123.
    if let Some(name) = rest.last().filter(|n| ctx.is_junk(n)) {
        let Some(file) = mount.junk.get(&ctx.user, &store_key(rest)) else {
            return status_text(StatusCode::NOT_FOUND, "Not found", None);
        };
        let entry = Entry {
            id: 0,
            name: name.clone(),
            is_dir: false,
            size: file.bytes.len() as u64,
            md5: None,
            version: None,
            modified: file.modified,
            created: file.modified,
        };
        return local::serve(
            req.method(),
            req.headers(),
            &entry,
            local::Source::Memory(file.bytes.clone()),
        )
        .await;
    }
    let entry = match mount.vfs.resolve(rest).await {
        Ok(e) => e,
        Err(e) => return error_response(&e, what),
    };
    match mount.vfs.local(&entry) {
        Some(crate::vfs::Local::Spooled(path)) => {
            return local::serve(
                req.method(),
                req.headers(),
                &entry,
                local::Source::File(&path),
            )
            .await
        }
        Some(crate::vfs::Local::Empty) => {
            return local::serve(
                req.method(),
                req.headers(),
                &entry,
                local::Source::Memory(Bytes::new()),
            )
            .await
        }
        None => {}
    }
    if entry.is_dir {
        let listing = match mount.vfs.list(&entry).await {
            Ok(l) => l,
            Err(e) => return error_response(&e, what),
        };
        let mut base = paths::encode(full);
        if !base.ends_with('/') {
            base.push('/');
        }
        return html(req, index::render(&base, &base, &listing.entries));
    }
    if let Some(res) = answer_from_metadata(req, &entry) {
        return res;
    }
    match delivery(
        mount.policy(),
        mount.vfs.backend().capabilities().portable_links,
        profile,
    ) {
        Delivery::Redirect => match mount.vfs.link(&entry, false).await {
            Ok(link) => respond::redirect(&link.url),
            Err(e) => error_response(&e, what),
        },
        Delivery::ProxyUrl => proxy_url_redirect(state, mount, full),
        Delivery::Proxy => proxy_file(state, mount, &entry, req, what).await,
    }
}

/// 302 to `<proxy_url>/-/d/<mount>/<path>?sign=…`; that route on this server (or a CDN in
/// front of it) checks the signature and proxies.
fn proxy_url_redirect(state: &AppState, mount: &Mount, full: &[String]) -> Response<ResponseBody> {
    let (Some(signer), Some(base)) = (state.signer.as_ref(), mount.config.proxy_url.as_deref())
    else {
        return status_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "proxy-url needs proxy_url and server.signing_key",
            None,
        );
    };
    let path = paths::encode(full);
    let expires = state.clock.unix_secs() + state.sign_ttl.as_secs();
    let sign = signer.sign(&path, expires);
    let encoded: String =
        percent_encoding::utf8_percent_encode(&sign, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    respond::redirect(&format!(
        "{}/-/d{}?sign={}",
        base.trim_end_matches('/'),
        path,
        encoded
    ))
}

struct VfsLinks<'a> {
    mount: &'a Mount,
    entry: &'a Entry,
}

#[async_trait::async_trait]
impl LinkSource for VfsLinks<'_> {
    async fn link(&self, refresh: bool) -> Result<Link, Error> {
        self.mount.vfs.link(self.entry, refresh).await
    }
}

async fn proxy_file<B>(
    state: &AppState,
    mount: &Mount,
    entry: &Entry,
    req: &Request<B>,
    what: &str,
) -> Response<ResponseBody> {
    // A size the backend does not know (a link-tree file whose HEAD failed) cannot be proxied:
    // the proxy promises exactly `entry.size` bytes, which would be an empty 200. Send the
    // client to the link itself, which such backends hand out portable.
    if entry.size == 0 && mount.vfs.backend().capabilities().sizes_may_be_unknown {
        return match mount.vfs.link(entry, false).await {
            Ok(link) if link.portable => respond::redirect(&link.url),
            Ok(_) => status_text(
                StatusCode::BAD_GATEWAY,
                "The size of this file is unknown, so it cannot be proxied",
                None,
            ),
            Err(e) => error_response(&e, what),
        };
    }
    let links = VfsLinks { mount, entry };
    match proxy(&state.http, req.method(), req.headers(), entry, &links).await {
        Ok(res) => res,
        Err(crate::download::proxy::ProxyError::Link(e)) => error_response(&e, what),
        Err(e) => {
            tracing::warn!(what = %super::access::capped(what), error = %e, "proxy failed");
            status_text(e.status(), "The upstream download failed", e.retry_after())
        }
    }
}

/// Routes under `/-/`: signed downloads (`/-/d/…`). The signature is the credential.
async fn internal<B>(state: &AppState, req: &Request<B>, rest: &str) -> Response<ResponseBody> {
    if let Some(res) = super::health::route(state, req, rest).await {
        return res;
    }
    let Some(signed_path) = rest.strip_prefix("d/").map(|p| format!("/{p}")) else {
        return status_text(StatusCode::NOT_FOUND, "Not found", None);
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD", None);
    }
    let Some(signer) = state.signer.as_ref() else {
        return status_text(
            StatusCode::NOT_FOUND,
            "Signed downloads are not enabled",
            None,
        );
    };
    let segments = match paths::decode(&signed_path) {
        Ok(s) => s,
        Err(bad) => return status_text(StatusCode::BAD_REQUEST, bad.0, None),
    };
    let canonical = paths::encode(&segments);
    let sign = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sign")
            .map(|(_, v)| v.into_owned())
    });
    let Some(sign) = sign else {
        return status_text(StatusCode::FORBIDDEN, "Missing signature", None);
    };
    if let Err(e) = signer.verify(&canonical, &sign, state.clock.unix_secs()) {
        return status_text(
            StatusCode::FORBIDDEN,
            &format!("Invalid signature: {e}"),
            None,
        );
    }
    let Some((mount, rest)) = state.route(&segments) else {
        return status_text(StatusCode::NOT_FOUND, "No such mount", None);
    };
    super::access::note_mount(req, &mount);
    let what = canonical.clone();
    let entry = match mount.vfs.resolve(rest).await {
        Ok(e) if !e.is_dir => e,
        Ok(_) => return status_text(StatusCode::NOT_FOUND, "Not a file", None),
        Err(e) => return error_response(&e, &what),
    };
    if let Some(res) = answer_from_metadata(req, &entry) {
        return res;
    }
    proxy_file(state, &mount, &entry, req, &what).await
}

/// What a file request can be answered with before any link is fetched: 304/412 from the
/// conditional headers, and HEAD from listing metadata (HEAD never costs a link call).
fn answer_from_metadata<B>(req: &Request<B>, entry: &Entry) -> Option<Response<ResponseBody>> {
    let v = Validators::for_entry(entry);
    match evaluate(req.method(), req.headers(), &v) {
        Precondition::NotModified => Some(respond::not_modified(&v)),
        Precondition::Failed => Some(respond::precondition_failed()),
        Precondition::Proceed { .. } if req.method() == Method::HEAD => {
            Some(respond::head(entry, &v))
        }
        Precondition::Proceed { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert!(same_authority("dav.example.com", "DAV.example.com:443"));
        assert!(same_authority("127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_authority("127.0.0.1:8080", "127.0.0.1:9090"));
        assert!(!same_authority("evil.example.com", "dav.example.com"));
        assert!(same_authority("[::1]:8080", "[::1]:8080"));
        assert!(same_authority("[::1]", "[::1]:8080"));
        assert!(!same_authority("[::1]:8080", "[::2]:8080"));
    }

    #[test]
    fn destination_header() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "Destination",
            HeaderValue::from_static("http://u:p@Host:80/a/b"),
        );
        assert_eq!(
            destination(&h),
            Some((Some("host:80".into()), vec!["a".into(), "b".into()]))
        );
        h.insert("Destination", HeaderValue::from_static("/a/"));
        assert_eq!(destination(&h), Some((None, vec!["a".into()])));
        h.insert("Destination", HeaderValue::from_static("ftp://host/a"));
        assert_eq!(destination(&h), None);
    }

    #[test]
    fn delivery_table() {
        let plain = ClientProfile::default();
        let windows = ClientProfile {
            never_redirect: true,
            windows: true,
            ..ClientProfile::default()
        };
        use DownloadPolicy::*;
        let cases = [
            (Auto, true, plain, Delivery::Redirect),
            (Auto, false, plain, Delivery::Proxy),
            (Redirect, false, plain, Delivery::Redirect),
            (Proxy, true, plain, Delivery::Proxy),
            (ProxyUrl, false, plain, Delivery::ProxyUrl),
            (Redirect, true, windows, Delivery::Proxy),
            (ProxyUrl, true, windows, Delivery::Proxy),
            (Auto, true, windows, Delivery::Proxy),
        ];
        for (policy, portable, profile, want) in cases {
            assert_eq!(
                delivery(policy, portable, profile),
                want,
                "{policy:?} portable={portable} {profile:?}"
            );
        }
    }
}
