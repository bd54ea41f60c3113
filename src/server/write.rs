//! Write methods, after the checks dav-server cannot express, and LOCK's own checks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::destination::destination;
use super::errors::error_response;
use super::paths;
use super::to_dav::dav_mount;
use super::AppState;
use crate::dav::{store_key, FsRequest};
use crate::mount::Mount;
use crate::response;
use crate::response::ResponseBody;
use response::status_text;

/// Write methods, after the checks dav-server cannot express: partial PUTs, names 123 cannot
/// store (400 with the reason), the destination of MOVE/COPY, lock timeouts, client mtimes.
pub(super) async fn write<B>(
    state: &AppState,
    mount: &Arc<Mount>,
    rest: &[String],
    user: &super::auth::User,
    req: Request<B>,
    mut ctx: FsRequest,
    full_path: &str,
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
        let Some((authority, dest)) = destination(req.headers(), &state.base_path) else {
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
        return lock(&state.base_path, mount, rest, ctx, req, full_path).await;
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
    let mut res = dav_mount(&state.base_path, mount, ctx, req, full_path).await;
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
    base: &str,
    mount: &Arc<Mount>,
    rest: &[String],
    ctx: FsRequest,
    mut req: Request<B>,
    full_path: &str,
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
    dav_mount(base, mount, ctx, req, full_path).await
}

/// The `owner` element of a LOCK body, as dav-server will store it (prefix `D`).
fn lock_owner(body: &[u8]) -> Option<xmltree::Element> {
    let info = xmltree::Element::parse(body).ok()?;
    let mut owner = info.get_child("owner")?.clone();
    owner.prefix = Some("D".into());
    Some(owner)
}

/// 400 with the reason when 123 cannot store `name`.
pub(super) fn valid_name(name: &str) -> Result<(), Box<Response<ResponseBody>>> {
    if crate::dav::junk::is_junk(name) {
        return Ok(());
    }
    crate::vfs::cloud_name(name)
        .map(|_| ())
        .map_err(|e| Box::new(status_text(StatusCode::BAD_REQUEST, &e.to_string(), None)))
}
