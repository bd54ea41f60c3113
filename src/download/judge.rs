//! Judging an upstream answer before the client sees a single header: is it exactly the
//! bytes we asked for, a refused link worth one fresh try, or a failure.

use http::header::{self, HeaderMap};
use http::StatusCode;

use super::range::RangeRequest;

/// What to do with an upstream response head, decided before the client sees anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it: discard the first `skip` bytes of the upstream body, then stream exactly the
    /// promised length (truncating anything after it).
    Accept { skip: u64 },
    /// The link was refused (403, 410, an error page instead of the file): try one fresh link.
    Refresh(String),
    /// The link was refused in a way a fresh link will not fix (other 4xx).
    Refused(String),
    /// Not the bytes we asked for, or the CDN failed.
    Bad(String),
}

/// Judges an upstream answer to our request for `want` of a file of `size` bytes.
///
/// * 206 must carry `Content-Range: bytes a-b/size` with `a..=b` covering what we asked (exactly
///   what we asked, from a well-behaved CDN; a wider range is served by skipping and
///   truncating), and a `Content-Length` of `b-a+1` if any.
/// * 200 must carry `Content-Length: size`: for a range request the CDN ignored `Range`, and we
///   skip to `start`.
/// * 401, 403, 404 and 410 refresh the link (an expired or revoked signature; a deleted file
///   then surfaces as the link source's `NotFound`); so does a 200 whose type is JSON, HTML or
///   XML with the wrong length (123's "200 with a JSON error code" and S3-style error pages).
/// * Any other 4xx is refused, 5xx and anything else is bad, as is any `Content-Encoding`
///   other than `identity`.
pub fn judge(want: RangeRequest, size: u64, status: StatusCode, headers: &HeaderMap) -> Verdict {
    let asked = match want {
        RangeRequest::Full => None,
        RangeRequest::Partial { start, end } => Some((start, end)),
        RangeRequest::Unsatisfiable => {
            return Verdict::Bad("nothing to fetch for an unsatisfiable range".to_owned())
        }
    };
    match status {
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::GONE => return Verdict::Refresh(format!("upstream answered {status}")),
        s if s.is_client_error() => return Verdict::Refused(format!("upstream answered {s}")),
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        s => return Verdict::Bad(format!("upstream answered {s}")),
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(encoding) = text(header::CONTENT_ENCODING) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Verdict::Bad(format!("upstream sent Content-Encoding {encoding}"));
        }
    } else if headers.contains_key(header::CONTENT_ENCODING) {
        return Verdict::Bad("upstream sent an unreadable Content-Encoding".to_owned());
    }
    let length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(parse_u64) {
            Some(n) => Some(n),
            None => return Verdict::Bad("upstream sent an invalid Content-Length".to_owned()),
        },
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or("");

    if status == StatusCode::OK {
        if length == Some(size) {
            return Verdict::Accept {
                skip: asked.map_or(0, |(start, _)| start),
            };
        }
        let got = length.map_or_else(|| "none".to_owned(), |n| n.to_string());
        let reason = format!(
            "upstream answered 200 with Content-Type {content_type:?} and Content-Length {got}, \
             expected {size}"
        );
        return if looks_like_error_page(content_type) {
            Verdict::Refresh(reason)
        } else {
            Verdict::Bad(reason)
        };
    }

    // 206
    if content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return Verdict::Bad("upstream answered a multipart 206 to a single range".to_owned());
    }
    let Some((a, b, total)) = text(header::CONTENT_RANGE).and_then(parse_content_range) else {
        return Verdict::Bad("upstream answered 206 without a valid Content-Range".to_owned());
    };
    if total != size {
        return Verdict::Bad(format!(
            "upstream file has {total} bytes, the listing says {size}"
        ));
    }
    if let Some(n) = length {
        if n != b - a + 1 {
            return Verdict::Bad(format!(
                "upstream Content-Length {n} does not match its Content-Range {a}-{b}"
            ));
        }
    }
    let (start, end) = asked.unwrap_or((0, size.saturating_sub(1)));
    if a <= start && end <= b {
        Verdict::Accept { skip: start - a }
    } else {
        Verdict::Bad(format!(
            "upstream sent bytes {a}-{b}, asked for {start}-{end}"
        ))
    }
}

/// `bytes a-b/total` with `a <= b < total`; `None` otherwise (including `*` totals, which
/// cannot be checked against the listing).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (unit, rest) = value.trim().split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim_start().split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (parse_u64(a)?, parse_u64(b)?, parse_u64(total)?);
    (a <= b && b < total).then_some((a, b, total))
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// JSON, HTML or XML: what CDNs and APIs answer errors with.
fn looks_like_error_page(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || essence.ends_with("+json")
        || essence == "text/html"
        || essence == "application/xhtml+xml"
        || essence == "application/xml"
        || essence == "text/xml"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::test_util::{headers, p, SIZE};

    /// Expected verdict kinds in the judge table (reasons are free text).
    #[derive(Clone, Copy, Debug)]
    enum Want {
        Ok(u64),
        Refresh,
        Refused,
        Bad,
    }

    /// Parses `"name: value | name: value"` into headers.
    fn header_list(spec: &str) -> HeaderMap {
        let pairs: Vec<(&str, &str)> = spec
            .split('|')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.split_once(':').expect("name: value"))
            .map(|(n, v)| (n.trim(), v.trim()))
            .collect();
        headers(&pairs)
    }

    #[test]
    fn judge_table() {
        use RangeRequest::Full;
        use Want::{Bad, Ok, Refresh, Refused};
        let r = p(10, 19);
        #[rustfmt::skip]
        let cases: &[(RangeRequest, u16, &str, Want)] = &[
            // The well-behaved 206.
            (r, 206, "content-range: bytes 10-19/100 | content-length: 10", Ok(0)),
            (r, 206, "content-range: bytes 10-19/100", Ok(0)),
            (r, 206, "content-range: BYTES  10-19/100", Ok(0)),
            // A wider 206 is served by skipping and truncating.
            (r, 206, "content-range: bytes 0-99/100 | content-length: 100", Ok(10)),
            (r, 206, "content-range: bytes 10-29/100", Ok(0)),
            (r, 206, "content-range: bytes 5-19/100", Ok(5)),
            // A 206 that does not cover the range, or of another file, is bad.
            (r, 206, "content-range: bytes 11-19/100", Bad),
            (r, 206, "content-range: bytes 10-18/100", Bad),
            (r, 206, "content-range: bytes 10-19/200", Bad),
            (r, 206, "content-range: bytes 10-19/99", Bad),
            (r, 206, "content-range: bytes 10-19/*", Bad),
            (r, 206, "content-range: bytes */100", Bad),
            (r, 206, "content-range: bytes 19-10/100", Bad),
            (r, 206, "content-range: bytes 10-100/100", Bad),
            (r, 206, "content-range: items 10-19/100", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-length: 11", Bad),
            (r, 206, "content-length: 10", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-type: multipart/byteranges", Bad),
            // 200 to a range request: the CDN ignored Range; skip to the start.
            (r, 200, "content-length: 100", Ok(10)),
            (r, 200, "content-length: 100 | content-type: application/json", Ok(10)),
            // 200 error pages refresh the link; other wrong lengths are bad.
            (r, 200, "content-length: 57 | content-type: application/json", Refresh),
            (r, 200, "content-length: 57 | content-type: text/html; charset=utf-8", Refresh),
            (r, 200, "content-length: 300 | content-type: application/problem+json", Refresh),
            (r, 200, "content-length: 300 | content-type: application/xml", Refresh),
            (r, 200, "content-type: application/json", Refresh),
            (r, 200, "content-length: 57 | content-type: application/octet-stream", Bad),
            (r, 200, "content-length: 10", Bad),
            (r, 200, "", Bad),
            // Full requests.
            (Full, 200, "content-length: 100", Ok(0)),
            (Full, 200, "content-length: 100 | content-encoding: identity", Ok(0)),
            (Full, 200, "content-length: 99", Bad),
            (Full, 200, "content-length: 101", Bad),
            (Full, 200, "content-length: abc", Bad),
            (Full, 200, "content-length: -100", Bad),
            (Full, 200, "content-length: 100 | content-encoding: gzip", Bad),
            (Full, 206, "content-range: bytes 0-99/100", Ok(0)),
            (Full, 206, "content-range: bytes 0-49/100", Bad),
            (r, 206, "content-range: bytes 10-19/100 | content-encoding: br", Bad),
            // Statuses.
            (r, 401, "", Refresh),
            (r, 403, "content-length: 100", Refresh),
            (r, 404, "", Refresh),
            (r, 410, "", Refresh),
            (r, 400, "", Refused),
            (r, 416, "content-range: bytes */100", Refused),
            (r, 429, "", Refused),
            (r, 500, "", Bad),
            (r, 502, "", Bad),
            (r, 503, "", Bad),
            (r, 204, "", Bad),
            (r, 302, "location: http://x/", Bad),
            (r, 304, "", Bad),
            (RangeRequest::Unsatisfiable, 200, "content-length: 100", Bad),
        ];
        for &(want, status, spec, expected) in cases {
            let status = StatusCode::from_u16(status).expect("status");
            let got = judge(want, SIZE, status, &header_list(spec));
            let same = match (&got, expected) {
                (Verdict::Accept { skip }, Ok(n)) => *skip == n,
                (Verdict::Refresh(_), Refresh)
                | (Verdict::Refused(_), Refused)
                | (Verdict::Bad(_), Bad) => true,
                _ => false,
            };
            assert!(
                same,
                "{want:?} {status} {spec:?}: got {got:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(
            parse_content_range("bytes 0-18446744073709551614/18446744073709551615"),
            Some((0, 18446744073709551614, 18446744073709551615))
        );
        for bad in [
            "bytes 0-0/0",
            "bytes 1-0/5",
            "bytes 0-5/5",
            "bytes 0-/5",
            "bytes -1/5",
            "bytes 0-1",
            "bytes=0-1/5",
            "bytes 0-1/18446744073709551616",
            "bytes +0-1/5",
            "",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }
}
