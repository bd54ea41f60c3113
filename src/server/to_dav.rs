//! Handing a request to dav-server: over a mount's filesystem (with its locks when
//! writable), or over the virtual root.

use std::sync::Arc;

use bytes::Bytes;
use dav_server::{DavHandler, DavMethodSet};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::errors::error_response;
use crate::dav::{FsRequest, MountFs};
use crate::mount::Mount;
use crate::response::ResponseBody;

/// Hands a request to dav-server over the mount's filesystem, with its locks when writable.
/// `base` is `server.base_path` (empty at the root): dav-server strips it with the mount's
/// name and writes it back into every href.
/// A 500 that a backend error caused is answered as that error (502/503 with Retry-After,
/// like reads), not as dav-server's bare 500.
pub(super) async fn dav_mount<B>(
    base: &str,
    mount: &Arc<Mount>,
    ctx: FsRequest,
    req: Request<B>,
    full_path: &str,
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
        builder = builder.strip_prefix(format!("{base}/{}", mount.name()));
    } else if !base.is_empty() {
        builder = builder.strip_prefix(base.to_string());
    }
    let failure = ctx.failure.clone();
    let res = builder.build_handler().handle_guarded(req, user, ctx).await;
    if res.status() == StatusCode::INTERNAL_SERVER_ERROR {
        if let Some(e) = failure.take() {
            return error_response(&e, full_path);
        }
    }
    res.map(|b| b.boxed_unsync())
}

/// Hands a request to dav-server over `fs`.
pub(super) async fn dav<F, B>(
    fs: F,
    prefix: Option<String>,
    req: Request<B>,
) -> Response<ResponseBody>
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
