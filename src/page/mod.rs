//! The browser page: a folder's listing for people (browse, play, upload, share), served from
//! the binary. The HTML is rendered here with the listing in it; `assets/app.js` (hand-written,
//! no build step) enhances it, and `assets/app.css` styles it. Assets live under
//! `/-/ui/<version>/`, where the version is a hash of their content, so they are cached for a
//! year and a new binary's assets get a new path.

pub mod i18n;
pub mod render;

use std::sync::OnceLock;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG};
use http::{HeaderMap, Method, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::response::{self, status_text, ResponseBody};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The assets' version: the first 12 hex digits of the SHA-256 of both.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(APP_JS.as_bytes());
        h.update(APP_CSS.as_bytes());
        h.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The asset prefix under `base_path`: `<base>/-/ui/<version>`.
pub fn ui_prefix(base: &str) -> String {
    format!("{base}/-/ui/{}", version())
}

/// Whether a GET comes from a browser that wants a page (its `Accept` names HTML).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Answers `/-/ui/<rest>`: an asset of this build with its ETag and a year's cache, 304 when
/// the browser already has it; 404 for another version or name.
pub fn asset(method: &Method, headers: &HeaderMap, rest: &str) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD", None);
    }
    let Some((v, name)) = rest.split_once('/') else {
        return status_text(StatusCode::NOT_FOUND, "Not found", None);
    };
    let (body, kind) = match name {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return status_text(StatusCode::NOT_FOUND, "Not found", None),
    };
    if v != version() {
        return status_text(StatusCode::NOT_FOUND, "Not this version's asset", None);
    }
    let etag = format!("\"{}-{}\"", version(), name);
    let fresh = headers
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut res = if fresh {
        let mut r = Response::new(response::empty_body());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(if method == Method::HEAD {
            response::empty_body()
        } else {
            response::full_body(body)
        });
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        r
    };
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(ETAG, tag);
    }
    res.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    res
}

/// An HTML page response (`Content-Length`, no body for HEAD), setting the `lang` cookie when
/// the request chose its language by `?lang=`.
pub fn html(
    method: &Method,
    page: String,
    set_lang: Option<i18n::Lang>,
    base: &str,
) -> Response<ResponseBody> {
    let len = page.len();
    let mut res = Response::new(if method == Method::HEAD {
        response::empty_body()
    } else {
        response::full_body(page)
    });
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    // The listing changes with every write: the browser asks again each time.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        http::header::VARY,
        HeaderValue::from_static("Accept, Accept-Language, Cookie"),
    );
    if let Some(lang) = set_lang {
        let path = if base.is_empty() { "/" } else { base };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "lang={}; Path={path}; Max-Age=31536000; SameSite=Lax",
            lang.code()
        )) {
            h.insert(http::header::SET_COOKIE, v);
        }
    }
    res
}

/// A small JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let body = value.to_string();
    let mut res = Response::new(response::full_body(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_versioned_and_revalidate() {
        let rest = format!("{}/app.js", version());
        let res = asset(&Method::GET, &HeaderMap::new(), &rest);
        assert_eq!(res.status(), StatusCode::OK);
        let etag = res.headers()[ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(http::header::IF_NONE_MATCH, etag);
        assert_eq!(
            asset(&Method::GET, &h, &rest).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            asset(&Method::GET, &HeaderMap::new(), "old/app.js").status(),
            StatusCode::NOT_FOUND
        );
    }
}
