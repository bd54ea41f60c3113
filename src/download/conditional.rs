//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range`, evaluated in the order of §13.2.2.
//!
//! Dates are compared in whole seconds, because HTTP-dates carry no fractions while the
//! backend's modification times may. A header we cannot parse is treated as RFC 9110 says for
//! dates (ignored) and, for entity-tag lists, as "matches nothing": that makes `If-Match` fail
//! (safe for writes), `If-None-Match` proceed and `If-Range` fall back to a full 200 (both
//! safe for reads).

use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderName, Method, Response};

use super::respond;
use crate::backend::Entry;
use crate::response::ResponseBody;

/// The validators of one file, as sent in `ETag` and `Last-Modified`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The strong entity tag including its quotes, e.g. `"\"0cc175b9c0f1b6a831c399e269772661\""`.
    pub etag: Option<String>,
    pub last_modified: SystemTime,
}

impl Validators {
    /// The validators of a listed file: [`etag_for`] its MD5 (or version, or size and time)
    /// and its modification time.
    pub fn for_entry(entry: &Entry) -> Validators {
        Validators {
            etag: Some(etag_for(
                entry.md5.as_deref(),
                entry.version.as_deref(),
                entry.size,
                entry.modified,
            )),
            last_modified: entry.modified,
        }
    }
}

/// What the preconditions of a request say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Go on. `honour_range` is false when `If-Range` did not match: the `Range` header must
    /// then be ignored and the whole file sent with 200.
    Proceed { honour_range: bool },
    /// 304 Not Modified (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// What a GET or HEAD of a file comes to before any byte is read.
pub enum Preflight {
    /// Answered from the listing alone: 304, 412, or HEAD's headers (HEAD never costs a link).
    Answered(Response<ResponseBody>),
    /// Send the bytes (with [`Validators::for_entry`], made by the ways that send bytes
    /// themselves: a redirect needs none); `Range` only when `honour_range`.
    Send { honour_range: bool },
}

/// The headers that make a request conditional (RFC 9110 §13.1).
const CONDITIONAL: [HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
];

/// The one place a file request's preconditions and HEAD are answered: every way of sending
/// a file (proxy, redirect, proxy-url, local bytes) comes through here first.
pub fn preflight(method: &Method, headers: &HeaderMap, entry: &Entry) -> Preflight {
    // Most GETs carry no precondition: nothing to compare, so no validators to make.
    if method == Method::GET && !CONDITIONAL.iter().any(|name| headers.contains_key(name)) {
        return Preflight::Send { honour_range: true };
    }
    let v = Validators::for_entry(entry);
    match evaluate(method, headers, &v) {
        Precondition::NotModified => Preflight::Answered(respond::not_modified(&v)),
        Precondition::Failed => Preflight::Answered(respond::precondition_failed()),
        Precondition::Proceed { .. } if method == Method::HEAD => {
            Preflight::Answered(respond::head(entry, &v))
        }
        Precondition::Proceed { honour_range } => Preflight::Send { honour_range },
    }
}

/// Evaluates the preconditions of `headers` against `v`, in the order of RFC 9110 §13.2.2.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Precondition {
    let get_or_head = method == Method::GET || method == Method::HEAD;

    // Step 1 and 2: If-Match, or else If-Unmodified-Since.
    let ours = v.etag.as_deref();
    match tag_list(headers, &header::IF_MATCH) {
        TagList::Tags(tags) if any_matches(&tags, ours, strong_eq) => {}
        TagList::Tags(_) | TagList::Malformed => return Precondition::Failed,
        TagList::Absent => {
            if let Some(date) = header_date(headers, &header::IF_UNMODIFIED_SINCE) {
                if unix_secs(v.last_modified) > date {
                    return Precondition::Failed;
                }
            }
        }
    }

    // Step 3 and 4: If-None-Match, or else If-Modified-Since (GET and HEAD only).
    match tag_list(headers, &header::IF_NONE_MATCH) {
        TagList::Tags(tags) if any_matches(&tags, ours, weak_eq) => {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
        TagList::Tags(_) | TagList::Malformed => {}
        TagList::Absent => {
            if get_or_head {
                if let Some(date) = header_date(headers, &header::IF_MODIFIED_SINCE) {
                    if unix_secs(v.last_modified) <= date {
                        return Precondition::NotModified;
                    }
                }
            }
        }
    }

    // Step 5: If-Range decides whether a Range header is served.
    Precondition::Proceed {
        honour_range: if_range_allows(headers, v),
    }
}

/// True unless an `If-Range` header is present and does not match `v` (RFC 9110 §13.1.5):
/// only an identical strong entity tag, or an HTTP-date equal to the last modification time,
/// keeps the range. A weak tag never does.
pub fn if_range_allows(headers: &HeaderMap, v: &Validators) -> bool {
    let mut values = headers.get_all(header::IF_RANGE).iter();
    let Some(value) = values.next() else {
        return true;
    };
    // Several If-Range fields make no sense (it is not a list): ignore the range.
    if values.next().is_some() {
        return false;
    }
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return match (parse_etag_list(text).as_deref(), v.etag.as_deref()) {
            (Some([Tag::Tag(tag)]), Some(ours)) => strong_eq(tag, ours),
            _ => false,
        };
    }
    match httpdate::parse_http_date(text) {
        Ok(date) => unix_secs(date) == unix_secs(v.last_modified),
        Err(_) => false,
    }
}

/// The quoted strong entity tag of a file: `"<md5>"` when the MD5 is known, else
/// `"<version>"` when the backend has an opaque validator (link mounts), else
/// `"<size hex>-<mtime secs hex>"`. An MD5 that is not plain hex, or a version with characters
/// an entity tag cannot hold, is ignored.
pub fn etag_for(
    md5: Option<&str>,
    version: Option<&str>,
    size: u64,
    modified: SystemTime,
) -> String {
    match (md5, version) {
        (Some(md5), _) if !md5.is_empty() && md5.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("\"{}\"", md5.to_ascii_lowercase())
        }
        // etagc of RFC 9110 §8.8.3, kept to visible ASCII.
        (_, Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"') => {
            format!("\"{v}\"")
        }
        _ => format!("\"{:x}-{:x}\"", size, unix_secs(modified)),
    }
}

/// One element of an entity-tag list, borrowed from the header text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag<'a> {
    /// `*`
    Any,
    /// A full entity tag including quotes and an optional `W/` prefix.
    Tag(&'a str),
}

/// An entity-tag list header (`If-Match`, `If-None-Match`), all its fields together.
enum TagList<'h> {
    Absent,
    /// Present but not a valid list (or not text): matches nothing.
    Malformed,
    Tags(Vec<Tag<'h>>),
}

fn tag_list<'h>(headers: &'h HeaderMap, name: &HeaderName) -> TagList<'h> {
    let mut out = TagList::Absent;
    for value in headers.get_all(name) {
        match (value.to_str().ok().and_then(parse_etag_list), &mut out) {
            (None, _) => return TagList::Malformed,
            (Some(tags), TagList::Tags(all)) => all.extend(tags),
            (Some(tags), _) => out = TagList::Tags(tags),
        }
    }
    out
}

/// True when any tag matches `ours` under `eq`; `*` matches any current representation (the
/// file exists, or we would not be here).
fn any_matches(tags: &[Tag<'_>], ours: Option<&str>, eq: fn(&str, &str) -> bool) -> bool {
    tags.iter().any(|tag| match (tag, ours) {
        (Tag::Any, _) => true,
        (Tag::Tag(tag), Some(ours)) => eq(tag, ours),
        (Tag::Tag(_), None) => false,
    })
}

/// Strong comparison: both tags strong and byte-identical.
fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

/// Weak comparison: identical once any `W/` prefix is removed.
fn weak_eq(a: &str, b: &str) -> bool {
    a.strip_prefix("W/").unwrap_or(a) == b.strip_prefix("W/").unwrap_or(b)
}

/// Parses `"*"` or `1#entity-tag` (RFC 9110 §8.8.3). `None` when malformed. Commas may appear
/// inside a quoted tag, so this scans rather than splits.
fn parse_etag_list(text: &str) -> Option<Vec<Tag<'_>>> {
    let text = text.trim();
    if text == "*" {
        return Some(vec![Tag::Any]);
    }
    let bytes = text.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    loop {
        // Skip whitespace and empty list elements.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        if bytes[i..].starts_with(b"W/") {
            i += 2;
        }
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        // etagc = %x21 / %x23-7E / obs-text; the header text is visible ASCII here.
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] < 0x21 {
                return None;
            }
            i += 1;
        }
        if i == bytes.len() {
            return None; // unterminated
        }
        i += 1;
        tags.push(Tag::Tag(&text[start..i]));
        // After a tag: optional whitespace, then a comma or the end.
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return None;
        }
    }
    if tags.is_empty() {
        None
    } else {
        Some(tags)
    }
}

/// The header parsed as an HTTP-date in Unix seconds; `None` when absent, repeated or invalid
/// (RFC 9110 §13.1.3/§13.1.4: an invalid date is ignored).
fn header_date(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let date = httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()?;
    Some(unix_secs(date))
}

/// Whole seconds since the epoch; times before 1970 count as 0.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;

    const TAG: &str = "\"0cc175b9c0f1b6a831c399e269772661\"";
    /// 2024-01-02T03:04:05.678Z
    fn modified() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_704_164_645_678)
    }
    fn validators() -> Validators {
        Validators {
            etag: Some(TAG.to_owned()),
            last_modified: modified(),
        }
    }
    const SAME_DATE: &str = "Tue, 02 Jan 2024 03:04:05 GMT";
    const EARLIER: &str = "Tue, 02 Jan 2024 03:04:04 GMT";
    const LATER: &str = "Tue, 02 Jan 2024 03:04:06 GMT";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    const GO: Precondition = Precondition::Proceed { honour_range: true };
    const GO_FULL: Precondition = Precondition::Proceed {
        honour_range: false,
    };
    const NOT_MODIFIED: Precondition = Precondition::NotModified;
    const FAILED: Precondition = Precondition::Failed;

    #[test]
    fn table() {
        let weak = format!("W/{TAG}");
        let other = "\"ffff\"";
        let list_with = format!("\"a\", {TAG}");
        let list_with_weak = format!("\"a\", {weak}");
        let comma_tag = "\"a,b\"";
        type Case<'a> = (Method, Vec<(&'a str, &'a str)>, Precondition);
        let cases: Vec<Case> = vec![
            (Method::GET, vec![], GO),
            // If-Match: strong comparison
            (Method::GET, vec![("if-match", TAG)], GO),
            (Method::GET, vec![("if-match", "*")], GO),
            (Method::GET, vec![("if-match", other)], FAILED),
            (Method::GET, vec![("if-match", &weak)], FAILED),
            (Method::GET, vec![("if-match", &list_with)], GO),
            (Method::GET, vec![("if-match", &list_with_weak)], FAILED),
            (
                Method::GET,
                vec![("if-match", "\"a\""), ("if-match", TAG)],
                GO,
            ),
            (Method::GET, vec![("if-match", comma_tag)], FAILED),
            (Method::GET, vec![("if-match", "garbage")], FAILED),
            (Method::GET, vec![("if-match", "\"unterminated")], FAILED),
            (Method::GET, vec![("if-match", "")], FAILED),
            (Method::PUT, vec![("if-match", other)], FAILED),
            (Method::PUT, vec![("if-match", TAG)], GO),
            // If-Unmodified-Since, only without If-Match
            (Method::GET, vec![("if-unmodified-since", SAME_DATE)], GO),
            (Method::GET, vec![("if-unmodified-since", LATER)], GO),
            (Method::GET, vec![("if-unmodified-since", EARLIER)], FAILED),
            (Method::GET, vec![("if-unmodified-since", "yesterday")], GO),
            (
                Method::GET,
                vec![("if-match", TAG), ("if-unmodified-since", EARLIER)],
                GO,
            ),
            (
                Method::GET,
                vec![("if-match", other), ("if-unmodified-since", LATER)],
                FAILED,
            ),
            // If-None-Match: weak comparison
            (Method::GET, vec![("if-none-match", TAG)], NOT_MODIFIED),
            (Method::HEAD, vec![("if-none-match", TAG)], NOT_MODIFIED),
            (Method::GET, vec![("if-none-match", &weak)], NOT_MODIFIED),
            (
                Method::GET,
                vec![("if-none-match", &list_with_weak)],
                NOT_MODIFIED,
            ),
            (Method::GET, vec![("if-none-match", "*")], NOT_MODIFIED),
            (Method::GET, vec![("if-none-match", other)], GO),
            (Method::GET, vec![("if-none-match", "garbage")], GO),
            (Method::PUT, vec![("if-none-match", "*")], FAILED),
            (Method::PUT, vec![("if-none-match", TAG)], FAILED),
            (Method::DELETE, vec![("if-none-match", &weak)], FAILED),
            (Method::PUT, vec![("if-none-match", other)], GO),
            // If-Modified-Since, only without If-None-Match, only GET/HEAD
            (
                Method::GET,
                vec![("if-modified-since", SAME_DATE)],
                NOT_MODIFIED,
            ),
            (
                Method::HEAD,
                vec![("if-modified-since", LATER)],
                NOT_MODIFIED,
            ),
            (Method::GET, vec![("if-modified-since", EARLIER)], GO),
            (Method::GET, vec![("if-modified-since", "not a date")], GO),
            (Method::PUT, vec![("if-modified-since", SAME_DATE)], GO),
            (
                Method::GET,
                vec![("if-none-match", other), ("if-modified-since", SAME_DATE)],
                GO,
            ),
            (
                Method::GET,
                vec![("if-none-match", TAG), ("if-modified-since", EARLIER)],
                NOT_MODIFIED,
            ),
            // Obsolete date formats are still dates
            (
                Method::GET,
                vec![("if-modified-since", "Tuesday, 02-Jan-24 03:04:05 GMT")],
                NOT_MODIFIED,
            ),
            (
                Method::GET,
                vec![("if-modified-since", "Tue Jan  2 03:04:05 2024")],
                NOT_MODIFIED,
            ),
            // Order: If-Match failure wins over If-None-Match
            (
                Method::GET,
                vec![("if-match", other), ("if-none-match", TAG)],
                FAILED,
            ),
            // If-Range
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", TAG)],
                GO,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", &weak)],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", other)],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", SAME_DATE)],
                GO,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", LATER)],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", EARLIER)],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", "garbage")],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", &list_with)],
                GO_FULL,
            ),
            (
                Method::GET,
                vec![("range", "bytes=0-1"), ("if-range", TAG), ("if-range", TAG)],
                GO_FULL,
            ),
            (Method::GET, vec![("if-range", "*")], GO_FULL),
            // If-Range after the other checks passed
            (
                Method::GET,
                vec![("if-none-match", other), ("if-range", &weak)],
                GO_FULL,
            ),
            (Method::GET, vec![("if-match", TAG), ("if-range", TAG)], GO),
        ];
        for (method, pairs, want) in cases {
            let got = evaluate(&method, &headers(&pairs), &validators());
            assert_eq!(got, want, "{method} {pairs:?}");
        }
    }

    #[test]
    fn without_an_etag() {
        let v = Validators {
            etag: None,
            last_modified: modified(),
        };
        let cases: Vec<(Vec<(&str, &str)>, Precondition)> = vec![
            (vec![("if-match", "*")], GO),
            (vec![("if-match", TAG)], FAILED),
            (vec![("if-none-match", "*")], NOT_MODIFIED),
            (vec![("if-none-match", TAG)], GO),
            (vec![("if-range", TAG)], GO_FULL),
            (vec![("if-range", SAME_DATE)], GO),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                evaluate(&Method::GET, &headers(&pairs), &v),
                want,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn before_the_epoch_counts_as_zero() {
        let v = Validators {
            etag: None,
            last_modified: UNIX_EPOCH - Duration::from_secs(10),
        };
        let h = headers(&[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        assert_eq!(evaluate(&Method::GET, &h, &v), NOT_MODIFIED);
    }

    #[test]
    fn non_utf8_values() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_bytes(b"\"\xff\"").expect("obs-text"),
        );
        assert_eq!(evaluate(&Method::GET, &h, &validators()), GO);
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_bytes(b"\"\xff\"").expect("obs-text"),
        );
        assert_eq!(evaluate(&Method::GET, &h, &validators()), FAILED);
    }

    #[test]
    fn etag_list_parsing() {
        assert_eq!(parse_etag_list("*"), Some(vec![Tag::Any]));
        assert_eq!(
            parse_etag_list(" \"a\" ,W/\"b\",, \"c,d\" "),
            Some(vec![
                Tag::Tag("\"a\""),
                Tag::Tag("W/\"b\""),
                Tag::Tag("\"c,d\"")
            ])
        );
        assert_eq!(parse_etag_list("\"\""), Some(vec![Tag::Tag("\"\"")]));
        assert_eq!(parse_etag_list(""), None);
        assert_eq!(parse_etag_list(","), None);
        assert_eq!(parse_etag_list("\"a\" \"b\""), None);
        assert_eq!(parse_etag_list("\"a\"x"), None);
        assert_eq!(parse_etag_list("w/\"a\""), None);
        assert_eq!(parse_etag_list("\"a\", *"), None);
        assert_eq!(parse_etag_list("a"), None);
    }

    #[test]
    fn etags() {
        let t = UNIX_EPOCH + Duration::from_secs(0x6593_7f25);
        assert_eq!(
            etag_for(Some("0CC175B9C0F1B6A831C399E269772661"), Some("v1"), 1, t),
            "\"0cc175b9c0f1b6a831c399e269772661\""
        );
        assert_eq!(etag_for(None, None, 0x1234, t), "\"1234-65937f25\"");
        assert_eq!(etag_for(Some(""), None, 0, t), "\"0-65937f25\"");
        assert_eq!(etag_for(Some("ab\"cd"), None, 16, t), "\"10-65937f25\"");
        assert_eq!(
            etag_for(None, None, 5, UNIX_EPOCH - Duration::from_secs(1)),
            "\"5-0\""
        );
        // Without an MD5 the version is the tag, unless it cannot be one.
        assert_eq!(etag_for(None, Some("1f-ab12"), 0x1f, t), "\"1f-ab12\"");
        assert_eq!(etag_for(Some(""), Some("v2"), 0, t), "\"v2\"");
        assert_eq!(etag_for(None, Some("a\"b"), 16, t), "\"10-65937f25\"");
        assert_eq!(etag_for(None, Some("a b"), 16, t), "\"10-65937f25\"");
        assert_eq!(etag_for(None, Some(""), 16, t), "\"10-65937f25\"");
        // The tags we make must be valid header values and parse back as one strong tag.
        let tag = etag_for(None, Some("3-0123abcd"), u64::MAX, t);
        assert!(HeaderValue::from_str(&tag).is_ok());
        assert_eq!(parse_etag_list(&tag), Some(vec![Tag::Tag(&tag)]));
        let tag = etag_for(None, None, u64::MAX, t);
        assert!(HeaderValue::from_str(&tag).is_ok());
        assert_eq!(parse_etag_list(&tag), Some(vec![Tag::Tag(&tag)]));
    }

    #[test]
    fn for_entry() {
        let entry = Entry {
            id: 1,
            name: "a.mkv".into(),
            is_dir: false,
            size: 3,
            md5: Some("900150983cd24fb0d6963f7d28e17f72".into()),
            version: None,
            modified: modified(),
            created: modified(),
        };
        let v = Validators::for_entry(&entry);
        assert_eq!(
            v.etag.as_deref(),
            Some("\"900150983cd24fb0d6963f7d28e17f72\"")
        );
        assert_eq!(v.last_modified, modified());
    }
}
