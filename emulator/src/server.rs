//! Listeners, routing on (method, path), and the request pipeline every call goes through.
//!
//! Each emulated host has its own listener (`Host`), and every endpoint belongs to exactly one
//! host (`Ep::host`): the Open API (`/api/…`, mkdir, create, upload_complete, domain), the
//! upload host (slices), the web API (`/b/api/…`), the login host (`/api/user/sign_in`), the
//! CDN (`/cdn/…`), the download hop (`/web-pro/…`), the presigned part host (`/s3/…`), the
//! direct-link host (`/<uid>/…`) and the renewal service (`/`). The OAuth token endpoint and the
//! approval page (`/auth`, web host) skip the family checks: their answers are not envelopes. Paths keep their shapes; a routed path on the wrong listener
//! is a 404, counted in `wrong_host`. `/__emulator/…` (the control API) answers on every listener.
//!
//! Pipeline order (the README repeats it): host check → User-Agent recorded → injected latency
//! → injected 429 / HTTP status / `no_code` / `http_json` → family checks (Open API: `Platform`
//! header, then token, then QPS; web API: signature, client headers, token, then QPS) → handler
//! → under `error_status = mirror`, an error's status. Every routed request on its own host is
//! counted in `calls`, except 429 refusals, counted in `refused`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ErrorStatus;
use crate::emulator::{lock, Shared};
use crate::faults::Refusal;
use crate::hosts::Host;
use crate::http::{err, json, mirror_status, not_found, text, trace_id, ErrorCode, HandlerResult};
use crate::qps::default_qps;

/// Message sent with code 429 (the real text is unpublished).
pub const MSG_429: &str = "操作频繁，请稍后再试";
/// Message sent with code 401 for an unknown, expired or evicted token.
pub const MSG_401: &str = "access_token无效或已过期";
/// Message sent with code 1 when the `Platform` header is missing (OpenList#2675).
pub const MSG_PLATFORM: &str = "Please include the platform field in the request header";

/// Every routed endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ep {
    AccessToken,
    UserInfo,
    FileList,
    DownloadInfo,
    DirectLinkUrl,
    Mkdir,
    Move,
    Rename,
    Trash,
    Delete,
    UploadDomain,
    Create,
    Slice,
    Complete,
    ShareGet,
    ShareDownloadInfo,
    WebLogin,
    WebUserInfo,
    WebFileList,
    WebDownloadInfo,
    WebUploadRequest,
    WebUploadAuth,
    WebUploadPartsBatch,
    WebUploadComplete,
    /// `upload_complete` (v1) of the static-credential flow.
    WebUploadCompleteStatic,
    WebMove,
    WebRename,
    WebTrash,
    /// `POST /b/api/file/delete`: for good, from the recycle bin.
    WebDelete,
    Cdn,
    WebPro,
    Direct,
    S3,
    /// `POST /api/v1/oauth2/access_token` (flat answers, no `Platform` or token check).
    OAuthToken,
    /// `GET /api/v1/oauth2/user/authorize`.
    OAuthAuthorize,
    /// `GET /auth` on the web host: the approval page.
    AuthPage,
    /// The renewal service.
    Renew,
}

/// Which checks an endpoint gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Open,
    Web,
    Host,
    /// The OAuth flow and the renewal service: their own answers, no envelope.
    OAuth,
}

impl Ep {
    /// The key used in stats, faults and the QPS table.
    pub fn key(self) -> &'static str {
        match self {
            Ep::AccessToken => "/api/v1/access_token",
            Ep::UserInfo => "/api/v1/user/info",
            Ep::FileList => "/api/v2/file/list",
            Ep::DownloadInfo => "/api/v1/file/download_info",
            Ep::DirectLinkUrl => "/api/v1/direct-link/url",
            Ep::Mkdir => "/upload/v1/file/mkdir",
            Ep::Move => "/api/v1/file/move",
            Ep::Rename => "/api/v1/file/name",
            Ep::Trash => "/api/v1/file/trash",
            Ep::Delete => "/api/v1/file/delete",
            Ep::UploadDomain => "/upload/v2/file/domain",
            Ep::Create => "/upload/v2/file/create",
            Ep::Slice => "/upload/v2/file/slice",
            Ep::Complete => "/upload/v2/file/upload_complete",
            Ep::ShareGet => "/b/api/share/get",
            Ep::ShareDownloadInfo => "/b/api/share/download/info",
            Ep::WebLogin => "/api/user/sign_in",
            Ep::WebUserInfo => "/b/api/user/info",
            Ep::WebFileList => "/b/api/file/list/new",
            Ep::WebDownloadInfo => "/b/api/file/download_info",
            Ep::WebUploadRequest => "/b/api/file/upload_request",
            Ep::WebUploadAuth => "/b/api/file/s3_upload_object/auth",
            Ep::WebUploadPartsBatch => "/b/api/file/s3_repare_upload_parts_batch",
            Ep::WebUploadComplete => "/b/api/file/upload_complete/v2",
            Ep::WebUploadCompleteStatic => "/b/api/file/upload_complete",
            Ep::WebMove => "/b/api/file/mod_pid",
            Ep::WebRename => "/b/api/file/rename",
            Ep::WebTrash => "/b/api/file/trash",
            Ep::WebDelete => "/b/api/file/delete",
            Ep::Cdn => "cdn",
            Ep::WebPro => "web-pro",
            Ep::Direct => "direct",
            Ep::S3 => "s3",
            Ep::OAuthToken => "/api/v1/oauth2/access_token",
            Ep::OAuthAuthorize => "/api/v1/oauth2/user/authorize",
            Ep::AuthPage => "/auth",
            Ep::Renew => "renew",
        }
    }

    /// The one host that serves this endpoint.
    pub fn host(self) -> Host {
        match self {
            Ep::Slice => Host::Upload,
            Ep::WebLogin => Host::Login,
            Ep::Cdn => Host::Cdn,
            Ep::WebPro => Host::WebPro,
            Ep::Direct => Host::Direct,
            Ep::S3 => Host::S3,
            Ep::AuthPage => Host::Web,
            Ep::Renew => Host::Renew,
            _ => match self.family() {
                Family::Web => Host::Web,
                _ => Host::Open,
            },
        }
    }

    fn family(self) -> Family {
        match self {
            Ep::ShareGet
            | Ep::ShareDownloadInfo
            | Ep::WebLogin
            | Ep::WebUserInfo
            | Ep::WebFileList
            | Ep::WebDownloadInfo
            | Ep::WebUploadRequest
            | Ep::WebUploadAuth
            | Ep::WebUploadPartsBatch
            | Ep::WebUploadComplete
            | Ep::WebUploadCompleteStatic
            | Ep::WebMove
            | Ep::WebRename
            | Ep::WebTrash
            | Ep::WebDelete => Family::Web,
            Ep::Cdn | Ep::WebPro | Ep::Direct | Ep::S3 => Family::Host,
            Ep::OAuthToken | Ep::OAuthAuthorize | Ep::AuthPage | Ep::Renew => Family::OAuth,
            _ => Family::Open,
        }
    }
}

/// Map (method, path) to an endpoint.
fn route(method: &Method, path: &str) -> Option<Ep> {
    let get = method == Method::GET;
    let get_or_head = get || method == Method::HEAD;
    let post = method == Method::POST;
    let ep = match path {
        "/api/v1/access_token" if post => Ep::AccessToken,
        "/api/v1/oauth2/access_token" if post => Ep::OAuthToken,
        "/api/v1/oauth2/user/authorize" if get => Ep::OAuthAuthorize,
        "/auth" if get => Ep::AuthPage,
        // OpenList's default address ends in `/123cloud/renewapi`; a self-hosted copy may
        // answer at its root.
        "/" | "/123cloud/renewapi" if get => Ep::Renew,
        "/api/v1/user/info" if get => Ep::UserInfo,
        "/api/v2/file/list" if get => Ep::FileList,
        "/api/v1/file/download_info" if get => Ep::DownloadInfo,
        "/api/v1/direct-link/url" if get => Ep::DirectLinkUrl,
        "/upload/v1/file/mkdir" if post => Ep::Mkdir,
        "/api/v1/file/move" if post => Ep::Move,
        "/api/v1/file/name" if method == Method::PUT => Ep::Rename,
        "/api/v1/file/trash" if post => Ep::Trash,
        "/api/v1/file/delete" if post => Ep::Delete,
        "/upload/v2/file/domain" if get => Ep::UploadDomain,
        "/upload/v2/file/create" if post => Ep::Create,
        "/upload/v2/file/slice" if post => Ep::Slice,
        "/upload/v2/file/upload_complete" if post => Ep::Complete,
        "/b/api/share/get" if get => Ep::ShareGet,
        "/b/api/share/download/info" if post => Ep::ShareDownloadInfo,
        "/api/user/sign_in" if post => Ep::WebLogin,
        "/b/api/user/info" if get => Ep::WebUserInfo,
        "/b/api/file/list/new" if get => Ep::WebFileList,
        "/b/api/file/download_info" if post => Ep::WebDownloadInfo,
        "/b/api/file/upload_request" if post => Ep::WebUploadRequest,
        "/b/api/file/s3_upload_object/auth" if post => Ep::WebUploadAuth,
        "/b/api/file/s3_repare_upload_parts_batch" if post => Ep::WebUploadPartsBatch,
        "/b/api/file/upload_complete/v2" if post => Ep::WebUploadComplete,
        "/b/api/file/upload_complete" if post => Ep::WebUploadCompleteStatic,
        "/b/api/file/mod_pid" if post => Ep::WebMove,
        "/b/api/file/rename" if post => Ep::WebRename,
        "/b/api/file/trash" if post => Ep::WebTrash,
        "/b/api/file/delete" if post => Ep::WebDelete,
        // PUT: parts (presigned), objects and parts (static credentials); POST: multipart
        // create and complete (static credentials).
        p if p.starts_with("/s3/") && (method == Method::PUT || post) => Ep::S3,
        p if p.starts_with("/cdn/") && get_or_head => Ep::Cdn,
        p if p.starts_with("/web-pro/") && get => Ep::WebPro,
        p if get_or_head && is_direct_path(p) => Ep::Direct,
        _ => return None,
    };
    Some(ep)
}

/// `/<digits>/…`: the direct-link host.
fn is_direct_path(p: &str) -> bool {
    let mut parts = p.splitn(3, '/');
    let _ = parts.next();
    matches!(parts.next(), Some(uid) if !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_some()
}

/// Per-request context handed to handlers.
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub ep: Ep,
    /// Set when the QPS gate refused this call (counted as `refused`, not `calls`).
    pub refused: bool,
}

impl Ctx {
    /// The QPS gate for this endpoint and caller; false = answer code 429.
    pub fn admit(&mut self, owner: &str) -> bool {
        if !self.shared.qps.load(Ordering::Relaxed) {
            return true;
        }
        let Some(limit) = default_qps(self.ep.key()) else {
            return true;
        };
        let ok =
            lock(&self.shared.limiter).try_acquire(owner, self.ep.key(), limit, Instant::now());
        if !ok {
            self.refused = true;
        }
        ok
    }
}

/// Accept connections for `host` until `stop` flips, then close them all.
pub(crate) async fn serve(
    listener: TcpListener,
    host: Host,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => {
                let (stream, peer) = match res {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. out of file descriptors: back off instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let mut conn_stop = stop.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(shared.clone(), host, peer, req));
                    let builder = Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = conn_stop.changed() => {}
                    }
                });
            }
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// One request through the pipeline.
async fn handle(
    shared: Arc<Shared>,
    host: Host,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> HandlerResult {
    let path = req.uri().path().to_string();
    if path == "/__emulator" || path.starts_with("/__emulator/") {
        return Ok(crate::control::handle(&shared, req).await);
    }
    let Some(ep) = route(req.method(), &path) else {
        return Ok(not_found());
    };
    let key = ep.key();
    if ep.host() != host {
        // 123's other hosts know nothing of this path.
        tracing::debug!(method = %req.method(), path = %path, %host, want = %ep.host(), "wrong host");
        lock(&shared.counters).wrong_host(key);
        return Ok(not_found());
    }
    tracing::debug!(method = %req.method(), path = %path, %host, peer = %peer, "request");
    // Which clients 123 sees, per endpoint (docs/123.md, web §7: 123 tracks clients by User-Agent).
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    lock(&shared.counters).user_agent(key, &user_agent);

    let hang = lock(&shared.faults).take_hang(key);
    if hang {
        // Counted like any call, then never answered: the connection stays open and silent
        // until the client gives up (or the emulator stops and drops it).
        lock(&shared.counters).call(key);
        std::future::pending::<()>().await;
    }
    lock(&shared.counters).enter(key);
    let _in_flight = InFlight {
        shared: shared.clone(),
        key,
    };
    let latency = lock(&shared.faults).take_latency(key);
    if let Some(ms) = latency {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let refusal = lock(&shared.faults).take_refusal(key);
    if let Some(refusal) = refusal {
        return Ok(finish(&shared, refused(&shared, ep, refusal)));
    }

    let mut ctx = Ctx {
        shared: shared.clone(),
        peer,
        ep,
        refused: false,
    };
    let mut resp = match ep.family() {
        Family::Open => open(&mut ctx, req).await,
        Family::Web => crate::web::handle(&mut ctx, req).await,
        Family::Host => match ep {
            Ep::Cdn => Ok(crate::cdn::handle(&ctx, req)),
            Ep::WebPro => Ok(crate::webpro::handle(&ctx, req)),
            Ep::S3 => crate::s3::handle(&ctx, req).await,
            _ => Ok(crate::direct::handle(&ctx, req)),
        },
        Family::OAuth => match ep {
            Ep::OAuthToken => crate::oauth::access_token(&ctx, req).await,
            Ep::OAuthAuthorize => Ok(crate::oauth::user_authorize(&ctx, &req)),
            Ep::AuthPage => Ok(crate::oauth::auth_page(&ctx, &req)),
            _ => Ok(crate::oauth::renew(&ctx, &req)),
        },
    };
    // The call acted; its answer is replaced (the `error_after` fault).
    if resp.is_ok() && !matches!(ep.family(), Family::Host | Family::OAuth) {
        if let Some((code, message)) = lock(&shared.faults).take_error_after(key) {
            resp = Ok(match ep.family() {
                Family::Web => crate::web::web_err(code, &message),
                _ => err(code, &message),
            });
        }
    }
    {
        let mut c = lock(&shared.counters);
        if ctx.refused {
            c.refuse(key);
        } else {
            c.call(key);
        }
    }
    resp.map(|r| finish(&shared, r))
}

/// A request of one endpoint being handled (`Stats::max_in_flight`); leaves on drop, so also
/// when the client goes away mid-request.
struct InFlight {
    shared: Arc<Shared>,
    key: &'static str,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.shared.counters).leave(self.key);
    }
}

/// The answer of an injected refusal, counted: 429s as `refused`, the rest as `calls`. None of
/// them performs the call.
fn refused(shared: &Shared, ep: Ep, refusal: Refusal) -> crate::http::Resp {
    let key = ep.key();
    match refusal {
        Refusal::Code429 => {
            lock(&shared.counters).refuse(key);
            match ep.family() {
                Family::Host => text(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests"),
                Family::Web if ep != Ep::WebLogin => crate::web::rate_limited(shared, ep),
                _ => err(429, MSG_429),
            }
        }
        Refusal::Http(status) => {
            lock(&shared.counters).call(key);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, status.canonical_reason().unwrap_or("error"))
        }
        Refusal::NoCode => {
            // docs/123.md, open §11: an answer that looks like success to a reader defaulting `code` to 0.
            lock(&shared.counters).call(key);
            json(
                StatusCode::OK,
                &serde_json::json!({"message": "ok", "data": null}),
            )
        }
        Refusal::HttpJson { status, code } => {
            {
                let mut c = lock(&shared.counters);
                if status == 429 || code == 429 {
                    c.refuse(key);
                } else {
                    c.call(key);
                }
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let message = if code == 0 { "ok" } else { MSG_429 };
            json(
                status,
                &serde_json::json!({"code": code, "message": message, "data": null, "x-traceID": trace_id()}),
            )
        }
    }
}

/// The last step of every answer: under `error_status = mirror`, an API error sent as HTTP 200
/// gets the status matching its code (docs/123.md, open §11, "the envelope").
fn finish(shared: &Shared, mut resp: crate::http::Resp) -> crate::http::Resp {
    if shared.switches().error_status == ErrorStatus::Mirror && resp.status() == StatusCode::OK {
        if let Some(ErrorCode(code)) = resp.extensions().get::<ErrorCode>().copied() {
            *resp.status_mut() = mirror_status(code);
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                // As a rate-limiting gateway would say it.
                resp.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            }
        }
    }
    resp
}

/// The Open API's header, token and QPS checks, then the handler.
async fn open(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let platform = req
        .headers()
        .get("platform")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if platform != Some("open_platform") {
        return Ok(err(1, MSG_PLATFORM));
    }
    if ctx.ep != Ep::AccessToken {
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let now = ctx.shared.now();
        let owner = token.and_then(|t| lock(&ctx.shared.tokens).check(t, now));
        let Some(owner) = owner else {
            return Ok(err(401, MSG_401));
        };
        if !ctx.admit(&owner) {
            return Ok(err(429, MSG_429));
        }
    }
    use crate::{open_api as api, upload};
    match ctx.ep {
        Ep::AccessToken => api::access_token(ctx, req).await,
        Ep::UserInfo => Ok(api::user_info(ctx)),
        Ep::FileList => Ok(api::file_list(ctx, &req)),
        Ep::DownloadInfo => Ok(api::download_info(ctx, &req)),
        Ep::DirectLinkUrl => Ok(api::direct_link_url(ctx, &req)),
        Ep::Mkdir => api::mkdir(ctx, req).await,
        Ep::Move => api::move_files(ctx, req).await,
        Ep::Rename => api::rename(ctx, req).await,
        Ep::Trash => api::trash(ctx, req).await,
        Ep::Delete => api::delete(ctx, req).await,
        Ep::UploadDomain => Ok(upload::domain(ctx)),
        Ep::Create => upload::create(ctx, req).await,
        Ep::Slice => upload::slice(ctx, req).await,
        Ep::Complete => upload::complete(ctx, req).await,
        _ => Ok(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(route(&Method::GET, "/api/v2/file/list"), Some(Ep::FileList));
        assert_eq!(route(&Method::POST, "/api/v2/file/list"), None);
        assert_eq!(route(&Method::HEAD, "/cdn/123-61/x"), Some(Ep::Cdn));
        assert_eq!(route(&Method::GET, "/13/files/1.txt"), Some(Ep::Direct));
        assert_eq!(route(&Method::GET, "/13"), None);
        assert_eq!(route(&Method::GET, "/abc/files"), None);
        assert_eq!(route(&Method::PUT, "/api/v1/file/name"), Some(Ep::Rename));
        assert_eq!(route(&Method::PUT, "/s3/b/k/x"), Some(Ep::S3));
        assert_eq!(route(&Method::GET, "/s3/b/k/x"), None);
        assert_eq!(
            route(&Method::POST, "/b/api/file/s3_repare_upload_parts_batch"),
            Some(Ep::WebUploadPartsBatch)
        );
    }

    #[test]
    fn hosts_of_endpoints() {
        assert_eq!(Ep::Slice.host(), Host::Upload);
        assert_eq!(Ep::Create.host(), Host::Open);
        assert_eq!(Ep::Complete.host(), Host::Open);
        assert_eq!(Ep::Mkdir.host(), Host::Open);
        assert_eq!(Ep::UploadDomain.host(), Host::Open);
        assert_eq!(Ep::WebLogin.host(), Host::Login);
        assert_eq!(Ep::ShareGet.host(), Host::Web);
        assert_eq!(Ep::WebTrash.host(), Host::Web);
        assert_eq!(Ep::Cdn.host(), Host::Cdn);
        assert_eq!(Ep::WebPro.host(), Host::WebPro);
        assert_eq!(Ep::Direct.host(), Host::Direct);
        assert_eq!(Ep::S3.host(), Host::S3);
        assert_eq!(Ep::OAuthToken.host(), Host::Open);
        assert_eq!(Ep::AuthPage.host(), Host::Web);
        assert_eq!(Ep::Renew.host(), Host::Renew);
        assert_eq!(route(&Method::GET, "/"), Some(Ep::Renew));
    }
}
