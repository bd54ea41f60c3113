//! OPTIONS, 405's `Allow`, and the virtual root folder above the mounts.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};

use super::index;
use super::propfind::normalise_depth;
use super::to_dav::dav;
use crate::backend::Entry;
use crate::dav::RootFs;
use crate::mount::Mount;
use crate::response;
use crate::response::status_text;
use crate::response::ResponseBody;

/// Methods a read-only mount allows.
const READ_ONLY_ALLOW: &str = "OPTIONS, GET, HEAD, PROPFIND";
/// Methods a writable mount allows.
const WRITABLE_ALLOW: &str =
    "OPTIONS, GET, HEAD, PROPFIND, PROPPATCH, PUT, DELETE, MKCOL, COPY, MOVE, LOCK, UNLOCK";

/// 405 with the methods `mount` allows.
pub(super) fn method_not_allowed(mount: &Mount) -> Response<ResponseBody> {
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

/// OPTIONS needs no auth, so Windows can discover the server before it sends credentials.
/// Writable mounts are class 2 (locks); read-only ones class 1 with no write method in
/// `Allow`, so Finder mounts them read-only instead of failing every save.
pub(super) fn options(mount: Option<&Mount>) -> Response<ResponseBody> {
    let (allow, dav) = match mount {
        Some(m) if !m.read_only() => (WRITABLE_ALLOW, "1, 2"),
        _ => (READ_ONLY_ALLOW, "1"),
    };
    let mut res = Response::new(response::empty_body());
    let h = res.headers_mut();
    h.insert("DAV", HeaderValue::from_static(dav));
    h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
    h.insert(ALLOW, HeaderValue::from_static(allow));
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res
}

/// The virtual root folder: an index for browsers, a PROPFIND listing of mounts for DAV.
pub(super) async fn root<B>(
    base: &str,
    address: Option<String>,
    req: Request<B>,
    visible: Vec<Arc<Mount>>,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match *req.method() {
        Method::GET | Method::HEAD => {
            let entries = mount_entries(&visible);
            let path = format!("{base}/");
            html(
                &req,
                index::render(&path, &path, address.as_deref(), &entries),
            )
        }
        _ if req.method().as_str() == "PROPFIND" => {
            let mut req = req;
            match normalise_depth(&mut req) {
                Some(res) => res,
                None => {
                    let prefix = (!base.is_empty()).then(|| base.to_string());
                    dav(RootFs::new(visible), prefix, req).await
                }
            }
        }
        _ => status_text(StatusCode::FORBIDDEN, "The root folder is read-only", None),
    }
}

/// The mounts as the virtual root's folders.
pub(super) fn mount_entries(visible: &[Arc<Mount>]) -> Vec<Entry> {
    visible
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
        .collect()
}

pub(super) fn html<B>(req: &Request<B>, page: String) -> Response<ResponseBody> {
    let len = page.len();
    let body = if req.method() == Method::HEAD {
        response::empty_body()
    } else {
        response::full_body(page)
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
