//! Request paths: strict decoding into segments, and one canonical encoding.
//!
//! Every path is decoded once, here. A segment that decodes to `.` or `..`, contains `/`, `\`
//! or NUL, or is not UTF-8 is refused, so no encoding trick can climb out of a mount.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters escaped in a path segment: everything but unreserved characters and a few safe
/// sub-delimiters.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b';')
    .add(b'=')
    .add(b'+')
    .add(b'&')
    .add(b'\'');

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Decodes a raw URL path into NFC segments.
pub fn decode(raw: &str) -> Result<Vec<String>, BadPath> {
    let mut out = Vec::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        // Most segments have nothing escaped: taken as they are, already UTF-8.
        let text = if seg.contains('%') {
            let bytes: Vec<u8> = percent_decode_str(seg).collect();
            String::from_utf8(bytes).map_err(|_| BadPath("path is not valid UTF-8"))?
        } else {
            seg.to_owned()
        };
        if text == "." || text == ".." {
            return Err(BadPath("path may not contain . or .. segments"));
        }
        if text.contains(['/', '\\', '\0']) {
            return Err(BadPath("path segment contains a slash, backslash or NUL"));
        }
        if text.len() > 1024 {
            return Err(BadPath("path segment too long"));
        }
        // Most segments are NFC already: kept as they are (no rewrite per request).
        match crate::vfs::names::nfc(&text) {
            std::borrow::Cow::Borrowed(_) => out.push(text),
            std::borrow::Cow::Owned(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Encodes segments canonically: `/a/b%20c`, or `/` for none.
pub fn encode(segments: &[String]) -> String {
    encode_after("", segments)
}

/// `prefix` followed by the canonical encoding of `segments` (as [`encode`]), in one string
/// (allocated once: every request makes one).
pub fn encode_after(prefix: &str, segments: &[String]) -> String {
    let escaped_len: usize = segments.iter().map(|seg| seg.len() + 1).sum();
    let mut s = String::with_capacity(prefix.len() + escaped_len.max(1));
    s.push_str(prefix);
    if segments.is_empty() {
        s.push('/');
        return s;
    }
    for seg in segments {
        s.push('/');
        s.extend(utf8_percent_encode(seg, SEGMENT));
    }
    s
}

/// Encodes one segment (for links in HTML indexes).
pub fn encode_segment(seg: &str) -> String {
    utf8_percent_encode(seg, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        assert_eq!(decode("/a/b%20c/").unwrap(), vec!["a", "b c"]);
        assert_eq!(decode("/").unwrap(), Vec::<String>::new());
        for bad in [
            "/a/../b",
            "/a/%2e%2e/b",
            "/a/%2E%2e",
            "/a%2fb",
            "/a%5cb",
            "/a%00b",
            "/%ff",
            "/a/./b",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trip() {
        let segs = vec!["电影".to_string(), "a b#c%d?.mkv".to_string()];
        assert_eq!(decode(&encode(&segs)).unwrap(), segs);
    }

    #[test]
    fn nfc() {
        // "é" as e + combining acute becomes the single code point.
        assert_eq!(decode("/e%CC%81").unwrap(), vec!["\u{e9}"]);
    }
}
