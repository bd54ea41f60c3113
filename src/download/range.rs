//! The client's `Range` header, reduced to the one thing the proxy can serve exactly.
//!
//! Only a single byte range is honoured. RFC 9110 §14.2 lets a server ignore `Range`, so anything
//! we do not serve exactly (several ranges, other units, garbage, numbers that overflow) becomes
//! [`RangeRequest::Full`]: the client gets a correct 200, never the wrong bytes. A syntactically
//! valid range that starts at or after the end of the file is [`RangeRequest::Unsatisfiable`]
//! (416).

use http::HeaderValue;

/// What to send for one GET, given the client's `Range` header and the file size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file, status 200.
    Full,
    /// Bytes `start..=end` (inclusive, `end < size`), status 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

impl RangeRequest {
    /// Number of body bytes this request promises for a file of `size` bytes.
    pub fn len(&self, size: u64) -> u64 {
        match *self {
            RangeRequest::Full => size,
            RangeRequest::Partial { start, end } => end - start + 1,
            RangeRequest::Unsatisfiable => 0,
        }
    }

    /// True when [`RangeRequest::len`] is zero.
    pub fn is_empty(&self, size: u64) -> bool {
        self.len(size) == 0
    }
}

/// One syntactically valid `byte-range-spec` / `suffix-range-spec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `a-b` or `a-` (`end` = None).
    From { start: u64, end: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Decides what to serve for `header` on a file of `size` bytes. See the module comment.
pub fn parse_range(header: Option<&HeaderValue>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.to_str().ok()).and_then(parse_spec) else {
        return RangeRequest::Full;
    };
    // An empty file has no byte to address; answering 200 with an empty body is what the
    // client needs and avoids a 416 on every probe of an empty file.
    if size == 0 {
        return RangeRequest::Full;
    }
    let last = size - 1;
    match spec {
        Spec::From { start, .. } if start >= size => RangeRequest::Unsatisfiable,
        Spec::From { start, end } => RangeRequest::Partial {
            start,
            end: end.map_or(last, |end| end.min(last)),
        },
        // RFC 9110 §14.1.3: a suffix of length zero selects nothing, so it is unsatisfiable.
        Spec::Suffix(0) => RangeRequest::Unsatisfiable,
        Spec::Suffix(n) => RangeRequest::Partial {
            start: size.saturating_sub(n),
            end: last,
        },
    }
}

/// Parses `bytes=<one range>`; `None` for anything else.
fn parse_spec(value: &str) -> Option<Spec> {
    let (unit, set) = value.trim().split_once('=')?;
    // The range unit is a case-insensitive token (RFC 9110 §14.1).
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    // `range-set = 1#range-spec`: list syntax allows empty elements and optional whitespace.
    let mut items = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let item = items.next()?;
    if items.next().is_some() {
        return None;
    }
    let (first, second) = item.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(parse_digits(second)?));
    }
    let start = parse_digits(first)?;
    if second.is_empty() {
        return Some(Spec::From { start, end: None });
    }
    let end = parse_digits(second)?;
    if start > end {
        return None;
    }
    Some(Spec::From {
        start,
        end: Some(end),
    })
}

/// ASCII digits only (no sign, no whitespace), without overflow.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial { start, end }
    }

    const FULL: RangeRequest = RangeRequest::Full;
    const UNSAT: RangeRequest = RangeRequest::Unsatisfiable;

    #[test]
    fn table() {
        let cases: &[(&str, u64, RangeRequest)] = &[
            // a-b
            ("bytes=0-0", 10, p(0, 0)),
            ("bytes=0-9", 10, p(0, 9)),
            ("bytes=2-5", 10, p(2, 5)),
            ("bytes=9-9", 10, p(9, 9)),
            ("bytes=5-100", 10, p(5, 9)),
            ("bytes=0-18446744073709551615", 10, p(0, 9)),
            ("bytes=10-20", 10, UNSAT),
            ("bytes=10-10", 10, UNSAT),
            ("bytes=11-", 10, UNSAT),
            // a-
            ("bytes=0-", 10, p(0, 9)),
            ("bytes=3-", 10, p(3, 9)),
            ("bytes=9-", 10, p(9, 9)),
            ("bytes=10-", 10, UNSAT),
            ("bytes=007-", 10, p(7, 9)),
            // -n
            ("bytes=-1", 10, p(9, 9)),
            ("bytes=-3", 10, p(7, 9)),
            ("bytes=-10", 10, p(0, 9)),
            ("bytes=-11", 10, p(0, 9)),
            ("bytes=-18446744073709551615", 10, p(0, 9)),
            ("bytes=-0", 10, UNSAT),
            ("bytes=-000", 10, UNSAT),
            // one byte files
            ("bytes=0-", 1, p(0, 0)),
            ("bytes=-5", 1, p(0, 0)),
            ("bytes=1-", 1, UNSAT),
            // empty file: any range is served as a plain 200
            ("bytes=0-", 0, FULL),
            ("bytes=0-0", 0, FULL),
            ("bytes=-5", 0, FULL),
            ("bytes=-0", 0, FULL),
            ("bytes=5-9", 0, FULL),
            // big files
            (
                "bytes=21474836480-",
                21474836481,
                p(21474836480, 21474836480),
            ),
            ("bytes=-1048576", 21474836480, p(21473787904, 21474836479)),
            // case and whitespace that the grammar allows
            ("Bytes=1-2", 10, p(1, 2)),
            ("BYTES=1-2", 10, p(1, 2)),
            ("  bytes=1-2  ", 10, p(1, 2)),
            ("bytes= 1-2", 10, p(1, 2)),
            ("bytes=1-2,", 10, p(1, 2)),
            ("bytes=,1-2", 10, p(1, 2)),
            ("bytes=1-2 , ", 10, p(1, 2)),
            // several ranges: ignored
            ("bytes=0-1,5-6", 10, FULL),
            ("bytes=0-1, 5-", 10, FULL),
            ("bytes=-1,-2", 10, FULL),
            ("bytes=20-30,40-50", 10, FULL),
            // reversed
            ("bytes=5-4", 10, FULL),
            ("bytes=20-4", 10, FULL),
            // overflow
            ("bytes=18446744073709551616-", 10, FULL),
            ("bytes=0-18446744073709551616", 10, FULL),
            ("bytes=-18446744073709551616", 10, FULL),
            ("bytes=99999999999999999999999-", 10, FULL),
            // other units and garbage
            ("items=0-1", 10, FULL),
            ("bytes 0-1", 10, FULL),
            ("bytes=", 10, FULL),
            ("bytes=-", 10, FULL),
            ("bytes=--1", 10, FULL),
            ("bytes=1--2", 10, FULL),
            ("bytes=1-2-3", 10, FULL),
            ("bytes=a-b", 10, FULL),
            ("bytes=1-b", 10, FULL),
            ("bytes=+1-2", 10, FULL),
            ("bytes=1-+2", 10, FULL),
            ("bytes=-+2", 10, FULL),
            ("bytes=1 -2", 10, FULL),
            ("bytes=1- 2", 10, FULL),
            ("bytes=0x10-", 10, FULL),
            ("bytes=1.5-2", 10, FULL),
            ("bytes==1-2", 10, FULL),
            ("bytes=1-2=", 10, FULL),
            ("=1-2", 10, FULL),
            ("bytes", 10, FULL),
            ("", 10, FULL),
            ("0-1", 10, FULL),
        ];
        for (header, size, want) in cases {
            let value = HeaderValue::from_str(header).expect("test header");
            assert_eq!(
                parse_range(Some(&value), *size),
                *want,
                "Range: {header:?}, size {size}"
            );
        }
    }

    #[test]
    fn absent_header_is_full() {
        assert_eq!(parse_range(None, 10), FULL);
        assert_eq!(parse_range(None, 0), FULL);
    }

    #[test]
    fn non_utf8_header_is_full() {
        let value = HeaderValue::from_bytes(b"bytes=\xff0-1").expect("obs-text header");
        assert_eq!(parse_range(Some(&value), 10), FULL);
    }

    #[test]
    fn len() {
        assert_eq!(FULL.len(10), 10);
        assert_eq!(p(2, 5).len(10), 4);
        assert_eq!(p(0, 0).len(10), 1);
        assert_eq!(UNSAT.len(10), 0);
        assert!(FULL.is_empty(0));
        assert!(!p(0, 0).is_empty(1));
    }
}
