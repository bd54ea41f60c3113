//! The `Destination` of COPY and MOVE: its path, and whether its host is this server.

use http::header::HeaderValue;

use super::paths;
use super::router::below_base;
use super::AppState;

/// The Destination header's authority (`host[:port]`, when it is an absolute URL) and the
/// decoded segments of its path below `base` (`server.base_path`); `None` outside it.
///
/// The path is taken as sent, not normalised by a URL parser (which would resolve `%2e%2e`
/// before we see it): `paths::decode` refuses every dot-segment and encoded slash, so no
/// Destination can climb out of its mount.
pub(super) fn destination(
    headers: &http::HeaderMap,
    base: &str,
) -> Option<(Option<String>, Vec<String>)> {
    let raw = headers.get("Destination")?.to_str().ok()?;
    let (authority, path) = match raw.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            let slash = rest.find('/')?;
            // Credentials in the URL (`user@host`) name no other host.
            let authority = rest[..slash].rsplit('@').next().unwrap_or("");
            (Some(authority.to_ascii_lowercase()), &rest[slash..])
        }
        Some(_) => return None,
        None if raw.starts_with('/') => (None, raw),
        None => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = below_base(path, base)?;
    paths::decode(path).ok().map(|segs| (authority, segs))
}

/// Splits `host[:port]` (IPv6 in brackets) into a lower-case host and its port, if written.
fn host_and_port(authority: &str) -> (String, Option<&str>) {
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    (host.to_ascii_lowercase(), port.filter(|p| !p.is_empty()))
}

/// Do two authorities name the same server? The same host, and the same port when both say
/// one (a URL without a port means the scheme's default, which the other side may spell out).
fn same_authority(a: &str, b: &str) -> bool {
    let (host_a, port_a) = host_and_port(a);
    let (host_b, port_b) = host_and_port(b);
    host_a == host_b
        && match (port_a, port_b) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

impl AppState {
    /// Is `authority` (a Destination's `host[:port]`) this server: the request's `Host`,
    /// `public_url`'s host or one of `server.host_aliases`?
    pub(super) fn is_own_host(&self, authority: &str, host: Option<&HeaderValue>) -> bool {
        host.and_then(|h| h.to_str().ok())
            .into_iter()
            .chain(self.own_hosts.iter().map(String::as_str))
            .any(|own| same_authority(authority, own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert!(same_authority("dav.example.com", "DAV.example.com:443"));
        assert!(same_authority("127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_authority("127.0.0.1:8080", "127.0.0.1:9090"));
        assert!(!same_authority("evil.example.com", "dav.example.com"));
        assert!(same_authority("[::1]:8080", "[::1]:8080"));
        assert!(same_authority("[::1]", "[::1]:8080"));
        assert!(!same_authority("[::1]:8080", "[::2]:8080"));
    }

    #[test]
    fn destination_header() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "Destination",
            HeaderValue::from_static("http://u:p@Host:80/a/b"),
        );
        assert_eq!(
            destination(&h, ""),
            Some((Some("host:80".into()), vec!["a".into(), "b".into()]))
        );
        h.insert("Destination", HeaderValue::from_static("/a/"));
        assert_eq!(destination(&h, ""), Some((None, vec!["a".into()])));
        h.insert("Destination", HeaderValue::from_static("ftp://host/a"));
        assert_eq!(destination(&h, ""), None);
        h.insert(
            "Destination",
            HeaderValue::from_static("http://h/dav/a%20b"),
        );
        assert_eq!(
            destination(&h, "/dav"),
            Some((Some("h".into()), vec!["a b".into()]))
        );
        h.insert("Destination", HeaderValue::from_static("/dav"));
        assert_eq!(destination(&h, "/dav"), Some((None, vec![])));
        h.insert("Destination", HeaderValue::from_static("/davx/a"));
        assert_eq!(destination(&h, "/dav"), None);
        h.insert("Destination", HeaderValue::from_static("/a"));
        assert_eq!(destination(&h, "/dav"), None);
    }
}
