//! PROPFIND: Depth normalised, the listing fetched whole before a byte is written, then the
//! one-pass writer (`dav::multistatus`) or dav-server.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};

use super::errors::error_response;
use super::to_dav::dav_mount;
use crate::dav::FsRequest;
use crate::mount::Mount;
use crate::response;
use crate::response::status_text;
use crate::response::ResponseBody;

/// The request header that makes dav-server answer a PROPFIND (value `dav-server`).
pub const PROPFIND_WRITER: &str = "x-propfind-writer";

/// Missing Depth means 1 (never an unbounded walk); infinity is refused cheaply with 403.
/// Returns the response to send instead when the Depth is refused.
pub(super) fn normalise_depth<B>(req: &mut Request<B>) -> Option<Response<ResponseBody>> {
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
            let mut res = Response::new(response::full_body(
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
pub(super) async fn propfind<B>(
    base: &str,
    mount: &Arc<Mount>,
    rest: &[String],
    mut req: Request<super::xml_body::GuardedBody<B>>,
    ctx: FsRequest,
    full_path: &str,
    metrics: &crate::metrics::Metrics,
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
            Err(e) => return error_response(&e, full_path),
        };
        if entry.is_dir && depth_one {
            if let Err(e) = mount.vfs.list(&entry).await {
                return error_response(&e, full_path);
            }
        }
    }
    // `X-Propfind-Writer: dav-server` asks for the reference writer: for comparing both
    // answers when a client misreads a listing (and in `tests/it/protocol/propfind_fast.rs`).
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
            crate::dav::multistatus::answer(base, mount, &ctx, path, ua, depth_one, asked).await
        {
            metrics.propfind_answered("direct");
            return res;
        }
    }
    metrics.propfind_answered("dav-server");
    dav_mount(base, mount, ctx, req, full_path).await
}
