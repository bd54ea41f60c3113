//! Signed download links: `proxy-url` mounts answer a GET with a 302 to
//! `<proxy_url>/-/d/<mount>/<path>?sign=…`, and this route (on this gateway, or behind a CDN in
//! front of it) checks the signature and proxies. The signature is the credential: no
//! Basic auth on this route.

use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode, Uri};

use super::conditional::{preflight, Preflight, Validators};
use super::policy::{gateway_url, proxy_file, Downloads, Failed, FileRequest};
use super::respond;
use super::sign::UrlSigner;
use crate::mount::Mount;
use crate::response::status_text;
use crate::response::ResponseBody;
use crate::server::paths;

/// 302 to `<proxy_url>/-/d/<mount>/<path>?sign=…` for the file at `path` (from the server's
/// root, below `base_path`); without a `proxy_url`, to `server.public_url`. 500 when neither
/// is set or the server has no signing key (`check` refuses both).
pub fn redirect(dl: &Downloads<'_>, mount: &Mount, path: &[String]) -> Response<ResponseBody> {
    let base = mount.config.proxy_url.as_deref().or(dl.public_url);
    let (Some(signer), Some(base)) = (dl.signer, base) else {
        return status_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "proxy-url needs proxy_url and server.signing_key",
            None,
        );
    };
    let path = paths::encode(path);
    let expires = dl.clock.unix_secs() + dl.sign_ttl.as_secs();
    respond::redirect(&signed_url(
        &gateway_url(base, dl.base_path),
        signer,
        &path,
        expires,
    ))
}

/// `<root>/-/d<path>?sign=…` valid until `expires` (unix seconds), for the file at `path`
/// (encoded, from the server's root): the one shape of a signed link, for the `proxy-url`
/// policy's redirects and the browser page's share links alike.
pub fn signed_url(root: &str, signer: &UrlSigner, path: &str, expires: u64) -> String {
    let sign = signer.sign(path, expires);
    let sign = percent_encoding::utf8_percent_encode(&sign, percent_encoding::NON_ALPHANUMERIC);
    format!("{root}/-/d{path}?sign={sign}")
}

/// One request to `/-/d/<rest>`.
pub struct SignedRequest<'r> {
    pub method: &'r Method,
    pub uri: &'r Uri,
    pub headers: &'r HeaderMap,
    /// The path after `/-/d/`, still encoded.
    pub rest: &'r str,
}

/// Answers GET or HEAD on `/-/d/<mount>/<path>?sign=…`: the signature must be valid for the
/// canonical path and not expired; then the file is proxied (never redirected: the link
/// exists so that the bytes come through this gateway). `on_mount` learns the mount once it
/// is known (for the access log).
pub async fn serve(
    dl: &Downloads<'_>,
    mounts: &[Arc<Mount>],
    req: &SignedRequest<'_>,
    on_mount: impl FnOnce(&Arc<Mount>),
) -> Result<Response<ResponseBody>, Failed> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Ok(status_text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET and HEAD",
            None,
        ));
    }
    let Some(signer) = dl.signer else {
        return Ok(status_text(
            StatusCode::NOT_FOUND,
            "Signed downloads are not enabled",
            None,
        ));
    };
    let segments = match paths::decode(&format!("/{}", req.rest)) {
        Ok(s) => s,
        Err(bad) => return Ok(status_text(StatusCode::BAD_REQUEST, bad.0, None)),
    };
    let canonical = paths::encode(&segments);
    let sign = req.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sign")
            .map(|(_, v)| v.into_owned())
    });
    let Some(sign) = sign else {
        return Ok(status_text(
            StatusCode::FORBIDDEN,
            "Missing signature",
            None,
        ));
    };
    if let Err(e) = signer.verify(&canonical, &sign, dl.clock.unix_secs()) {
        return Ok(status_text(
            StatusCode::FORBIDDEN,
            &format!("Invalid signature: {e}"),
            None,
        ));
    }
    let Some((mount, rest)) = crate::mount::route(mounts, &segments) else {
        return Ok(status_text(StatusCode::NOT_FOUND, "No such mount", None));
    };
    on_mount(&mount);
    let full_path = canonical.as_str();
    let entry = match mount.vfs.resolve(rest).await {
        Ok(e) if !e.is_dir => e,
        Ok(_) => return Ok(status_text(StatusCode::NOT_FOUND, "Not a file", None)),
        Err(e) => {
            return Err(Failed {
                failure: super::policy::Failure::Backend(e),
                full_path: canonical,
            })
        }
    };
    let honour_range = match preflight(req.method, req.headers, &entry) {
        Preflight::Answered(res) => return Ok(res),
        Preflight::Send { honour_range } => honour_range,
    };
    if let Err(refused) = dl.admit(&mount, req.method, req.headers) {
        return Ok(dl.budget_refused(&refused));
    }
    let file = FileRequest {
        method: req.method,
        headers: req.headers,
        never_redirect: true,
        path: &segments,
        full_path,
    };
    let v = Validators::for_entry(&entry);
    proxy_file(dl, &mount, &entry, &file, &v, honour_range).await
}
