//! A well-formedness check of the `If` header before dav-server parses it.
//!
//! dav-server 0.11's `If` parser indexes past the end of an unterminated `<…` or `[…` and
//! panics, which would drop the connection mid-request. Every `If` header is checked here
//! first; a malformed one gets 400, as RFC 4918 asks.

/// True when every list, state token, resource tag and entity tag in `value` is closed.
pub fn well_formed(value: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'(' => {
                if depth > 0 {
                    return false;
                }
                depth += 1;
            }
            b')' => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            b'<' => match value[i + 1..].iter().position(|&c| c == b'>') {
                Some(n) => i += n + 1,
                None => return false,
            },
            b'[' => {
                let mut quoted = false;
                let mut j = i + 1;
                loop {
                    match value.get(j) {
                        None => return false,
                        Some(b'"') => quoted = !quoted,
                        Some(b']') if !quoted => break,
                        Some(_) => {}
                    }
                    j += 1;
                }
                i = j;
            }
            b'>' | b']' => return false,
            _ => {}
        }
        i += 1;
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let good: &[&str] = &[
            "(<opaquelocktoken:abc>)",
            "<http://x/a> (<urn:uuid:1> [\"etag\"]) (Not <DAV:no-lock>)",
            "([W/\"x]y\"])",
            "",
        ];
        for g in good {
            assert!(well_formed(g.as_bytes()), "{g}");
        }
        let bad: &[&str] = &[
            "(<garbage",
            "([\"etag\"",
            "((<a>))",
            "(<a>",
            "<a> )",
            "(x]",
            "[\"a\"",
            "(<a>))",
        ];
        for b in bad {
            assert!(!well_formed(b.as_bytes()), "{b}");
        }
    }
}
