//! Small response builders, so every file response carries the same headers.
//!
//! None of these panics: a value that cannot be a header (an odd redirect target) turns into a
//! 502 rather than a crashed task.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::conditional::Validators;
use crate::backend::Entry;
use crate::response::ResponseBody;
use crate::response::{empty_body, location_value, status_text};

/// The answer to HEAD on a file, from listing metadata only: 200 with the headers a GET would
/// carry and no body.
pub fn head(entry: &Entry, v: &Validators) -> Response<ResponseBody> {
    let mut response = Response::new(empty_body());
    let headers = response.headers_mut();
    file_headers(headers, &entry.name, v);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    response
}

/// 302 to `location`, or 502 when it holds control characters. Spaces and non-ASCII
/// characters are percent-encoded (as UTF-8), which is what a browser would send for them
/// anyway (see [`location_value`]).
pub fn redirect(location: &str) -> Response<ResponseBody> {
    redirect_to(location_value(location).as_ref())
}

/// 302 to a target already made a header value by [`location_value`] (`None`: it could not
/// be one, so 502). Neither the client's cache nor the next page's Referer may keep the
/// (signed) target.
pub fn redirect_to(location: Option<&HeaderValue>) -> Response<ResponseBody> {
    let Some(value) = location else {
        // The location is a signed upstream URL: it is not logged.
        tracing::warn!("redirect target is not a valid header value");
        return status_text(
            StatusCode::BAD_GATEWAY,
            "upstream gave an unusable download link",
            None,
        );
    };
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// 304 with the validators (RFC 9110 §15.4.5: the ETag a 200 would have carried).
pub fn not_modified(v: &Validators) -> Response<ResponseBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    validator_headers(response.headers_mut(), v);
    response
}

/// 412 Precondition Failed.
pub fn precondition_failed() -> Response<ResponseBody> {
    status_text(StatusCode::PRECONDITION_FAILED, "precondition failed", None)
}

/// 416 with `Content-Range: bytes */<size>`.
pub fn range_not_satisfiable(size: u64) -> Response<ResponseBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_RANGE,
        content_range_value(&format!("*/{size}")),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

/// The `Content-Type` for a file name, by extension; `application/octet-stream` when unknown.
/// Text types say `charset=utf-8`: with `nosniff` and no charset a browser decodes a text file
/// in its locale's legacy encoding (windows-1252 in most), garbling every UTF-8 name and note.
pub fn content_type(name: &str) -> HeaderValue {
    match mime_guess::from_path(name).first_raw() {
        None => HeaderValue::from_static("application/octet-stream"),
        Some(m) if m.starts_with("text/") => HeaderValue::from_str(&format!("{m}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static(m)),
        Some(m) => HeaderValue::from_static(m),
    }
}

/// The headers every file response (HEAD, 200, 206) carries, except the length ones.
///
/// `X-Content-Type-Options: nosniff` stops browsers from guessing active content, and types a
/// browser would run as a page get `Content-Security-Policy: sandbox`: an uploaded HTML or SVG
/// file opened from the gateway then runs in an opaque origin and cannot use the user's cached
/// Basic credentials against the gateway itself.
pub(crate) fn file_headers(headers: &mut HeaderMap, name: &str, v: &Validators) {
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let content_type = content_type(name);
    if is_active_content(&content_type) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    validator_headers(headers, v);
}

/// `Content-Range: bytes <rest>`.
pub(crate) fn content_range_value(rest: &str) -> HeaderValue {
    // Only digits, '-', '*' and '/' reach here, all valid header bytes.
    HeaderValue::from_str(&format!("bytes {rest}"))
        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

fn validator_headers(headers: &mut HeaderMap, v: &Validators) {
    if let Some(etag) = v.etag.as_deref() {
        if let Ok(value) = HeaderValue::from_str(etag) {
            headers.insert(header::ETAG, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(v.last_modified)) {
        headers.insert(header::LAST_MODIFIED, value);
    }
}

fn is_active_content(content_type: &HeaderValue) -> bool {
    let value = content_type.to_str().unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/html"
            | "application/xhtml+xml"
            | "image/svg+xml"
            | "text/xml"
            | "application/xml"
            | "text/xsl"
            | "application/xslt+xml"
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use http_body::Body;
    use http_body_util::BodyExt;

    use super::*;
    use crate::response::full_body;

    fn entry(name: &str, size: u64) -> Entry {
        Entry {
            id: 7,
            name: name.into(),
            is_dir: false,
            size,
            md5: Some("900150983cd24fb0d6963f7d28e17f72".into()),
            version: None,
            modified: UNIX_EPOCH + Duration::from_secs(1_704_164_645),
            created: SystemTime::UNIX_EPOCH,
        }
    }

    async fn body_bytes(response: Response<ResponseBody>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    fn header<'a>(response: &'a Response<ResponseBody>, name: &str) -> Option<&'a str> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("text"))
    }

    #[tokio::test]
    async fn head_has_file_headers_and_no_body() {
        let e = entry("Film (2024).mkv", 21_474_836_480);
        let v = Validators::for_entry(&e);
        let r = head(&e, &v);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-length"), Some("21474836480"));
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));
        assert_eq!(
            header(&r, "etag"),
            Some("\"900150983cd24fb0d6963f7d28e17f72\"")
        );
        assert_eq!(
            header(&r, "last-modified"),
            Some("Tue, 02 Jan 2024 03:04:05 GMT")
        );
        assert_eq!(header(&r, "content-type"), Some("video/x-matroska"));
        assert_eq!(header(&r, "content-security-policy"), None);
        assert!(r.body().is_end_stream());
        assert!(body_bytes(r).await.is_empty());
    }

    #[test]
    fn content_types() {
        for (name, want) in [
            ("a.mp4", "video/mp4"),
            ("A.MP4", "video/mp4"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.unknownext", "application/octet-stream"),
            ("noext", "application/octet-stream"),
            (".hidden", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn active_content_is_sandboxed() {
        for name in ["a.html", "a.HTM", "a.svg", "a.xml", "a.xhtml"] {
            let e = entry(name, 1);
            let r = head(&e, &Validators::for_entry(&e));
            assert_eq!(
                header(&r, "content-security-policy"),
                Some("sandbox"),
                "{name}"
            );
            assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        }
    }

    #[test]
    fn redirect_headers() {
        let r = redirect("https://cdn.example/a%20b?sig=x&e=1");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            header(&r, "location"),
            Some("https://cdn.example/a%20b?sig=x&e=1")
        );
        assert_eq!(header(&r, "cache-control"), Some("no-store"));
        assert_eq!(header(&r, "referrer-policy"), Some("no-referrer"));
    }

    #[test]
    fn redirect_to_an_odd_value_is_502() {
        for location in [
            "https://a/\nb",
            "https://a/\u{0}",
            "https://a/\u{7f}",
            "\r",
            "a\tb",
        ] {
            let r = redirect(location);
            assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{location:?}");
            assert_eq!(header(&r, "location"), None);
        }
    }

    #[test]
    fn redirect_percent_encodes_non_ascii() {
        let r = redirect("https://a/ü 文?x=ü");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            header(&r, "location"),
            Some("https://a/%C3%BC%20%E6%96%87?x=%C3%BC")
        );
    }

    #[test]
    fn not_modified_carries_validators() {
        let e = entry("a.mkv", 3);
        let r = not_modified(&Validators::for_entry(&e));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(header(&r, "etag").is_some());
        assert!(header(&r, "last-modified").is_some());
        let r = not_modified(&Validators {
            etag: None,
            last_modified: e.modified,
        });
        assert_eq!(header(&r, "etag"), None);
    }

    #[tokio::test]
    async fn error_statuses() {
        let r = precondition_failed();
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

        let r = range_not_satisfiable(18);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&r, "content-range"), Some("bytes */18"));
        assert!(body_bytes(r).await.is_empty());

        let r = status_text(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate limited",
            Some(Duration::from_millis(2500)),
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, "retry-after"), Some("3"));
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(body_bytes(r).await, "rate limited\n");

        let r = status_text(
            StatusCode::TOO_MANY_REQUESTS,
            "x",
            Some(Duration::from_secs(2)),
        );
        assert_eq!(header(&r, "retry-after"), Some("2"));
        let r = status_text(StatusCode::BAD_GATEWAY, "x", None);
        assert_eq!(header(&r, "retry-after"), None);
    }

    #[tokio::test]
    async fn bodies() {
        assert!(empty_body().is_end_stream());
        let body = full_body("abc");
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.expect("body").to_bytes(), "abc");
    }
}
