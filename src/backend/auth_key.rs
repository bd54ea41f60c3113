//! 123's direct-link URL authentication (`auth_key`), shared by Open mounts with direct links
//! and by link-tree mounts.
//!
//! `auth_key = <expiry>-<rand>-<uid>-md5("<path>-<expiry>-<rand>-<uid>-<key>")`, added to the
//! query, which is then re-encoded sorted by key. The path keeps its original escaping in the URL;
//! which form of it is hashed is the one point readings disagree on (docs/123.md, web §6): 123's
//! official samples hash the path as written (percent-encoded), OpenList hashes it percent-decoded.
//! [`PathForm`] names the two; `signer.rs` chooses between them per mount.

use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;

/// Which form of the URL's path goes into the `auth_key` hash (docs/123.md, web §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathForm {
    /// The path as written in the URL, percent-escapes kept (123's official samples).
    Encoded,
    /// The path percent-decoded (OpenList's driver).
    Decoded,
}

impl PathForm {
    /// The name used in config values and probe reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encoded => "encoded",
            Self::Decoded => "decoded",
        }
    }

    /// The other form.
    pub fn other(self) -> Self {
        match self {
            Self::Encoded => Self::Decoded,
            Self::Decoded => Self::Encoded,
        }
    }
}

/// The mount key `auth_key_path`: a fixed form, or `auto` (try, learn, remember).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthKeyPath {
    /// Sign the decoded form first; on a refusal where the forms differ, the other; remember
    /// the one that worked (docs/123.md, web §6).
    #[default]
    Auto,
    /// Always this form.
    Fixed(PathForm),
}

impl AuthKeyPath {
    /// Every value, for messages.
    pub const NAMES: [&'static str; 3] = ["auto", "encoded", "decoded"];

    /// Parses a config value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "encoded" => Some(Self::Fixed(PathForm::Encoded)),
            "decoded" => Some(Self::Fixed(PathForm::Decoded)),
            _ => None,
        }
    }
}

/// Whether the two forms of `url`'s path differ (it has a percent-escape), so that the form
/// matters. `false` for an unparsable URL.
pub fn forms_differ(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.path().contains('%'))
}

/// Signs `url` with the decoded path (OpenList's form), valid until `expires_unix`.
pub fn sign_url(url: &str, key: &str, uid: u64, expires_unix: u64, rand: &str) -> Option<String> {
    sign_url_as(PathForm::Decoded, url, key, uid, expires_unix, rand)
}

/// Signs `url` over the `form` of its path so that it stays valid until `expires_unix`.
/// Returns `None` when the URL cannot be parsed.
pub fn sign_url_as(
    form: PathForm,
    url: &str,
    key: &str,
    uid: u64,
    expires_unix: u64,
    rand: &str,
) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    let path = match form {
        PathForm::Encoded => parsed.path().to_string(),
        PathForm::Decoded => percent_decode_str(parsed.path())
            .decode_utf8_lossy()
            .into_owned(),
    };
    let to_hash = format!("{path}-{expires_unix}-{rand}-{uid}-{key}");
    let digest = hex(&Md5::digest(to_hash.as_bytes()));
    let auth_key = format!("{expires_unix}-{rand}-{uid}-{digest}");
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "auth_key")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push(("auth_key".to_string(), auth_key));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    Some(parsed.into())
}

/// A random value for the `rand` field: 32 hex digits, never containing `-`.
pub fn random_rand() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Lowercase hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_example() {
        let got = sign_url(
            "http://vip.123pan.cn/13/files/1.txt",
            "289ds32418bxdba",
            13,
            1689220731,
            "123",
        );
        assert_eq!(
            got.as_deref(),
            Some("http://vip.123pan.cn/13/files/1.txt?auth_key=1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad")
        );
    }

    #[test]
    fn second_vectors() {
        let got = sign_url(
            "https://vip.123pan.cn/1812000499/123-link-Test/linuxqq_3.2.0-16736_mips64el.deb",
            "MyPrivKey123",
            1812000499,
            1700001800,
            "5577006791947779410",
        )
        .unwrap();
        assert!(got.ends_with("mips64el.deb?auth_key=1700001800-5577006791947779410-1812000499-d41240e5d1d100ad8975bc3c15feaddf"), "{got}");
        let got = sign_url(
            "https://vip.123pan.cn/1812000499/%E8%A7%86%E9%A2%91/a%20b.mp4",
            "MyPrivKey123",
            1812000499,
            1700001800,
            "5577006791947779410",
        )
        .unwrap();
        assert_eq!(got, "https://vip.123pan.cn/1812000499/%E8%A7%86%E9%A2%91/a%20b.mp4?auth_key=1700001800-5577006791947779410-1812000499-8806ffe939d6226ea2110643bbea38ff");
        let got = sign_url(
            "http://vip.123pan.cn/13/files/1.txt?b=2&a=1",
            "289ds32418bxdba",
            13,
            1689220731,
            "123",
        )
        .unwrap();
        assert_eq!(got, "http://vip.123pan.cn/13/files/1.txt?a=1&auth_key=1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad&b=2");
    }

    #[test]
    fn encoded_form_hashes_the_path_as_written() {
        let url = "https://vip.123pan.cn/1812000499/%E8%A7%86%E9%A2%91/a%20b.mp4";
        assert!(forms_differ(url));
        assert!(!forms_differ("http://vip.123pan.cn/13/files/1.txt"));
        let encoded = sign_url_as(
            PathForm::Encoded,
            url,
            "MyPrivKey123",
            1812000499,
            1700001800,
            "5577006791947779410",
        )
        .unwrap();
        let want = hex(&Md5::digest(
            "/1812000499/%E8%A7%86%E9%A2%91/a%20b.mp4-1700001800-5577006791947779410-1812000499-MyPrivKey123"
                .as_bytes(),
        ));
        assert!(encoded.ends_with(&want), "{encoded}");
        assert_ne!(
            Some(encoded),
            sign_url(
                url,
                "MyPrivKey123",
                1812000499,
                1700001800,
                "5577006791947779410"
            )
        );
        // Without an escape both forms are the same signature.
        assert_eq!(
            sign_url_as(
                PathForm::Encoded,
                "http://vip.123pan.cn/13/files/1.txt",
                "289ds32418bxdba",
                13,
                1689220731,
                "123"
            ),
            sign_url(
                "http://vip.123pan.cn/13/files/1.txt",
                "289ds32418bxdba",
                13,
                1689220731,
                "123"
            ),
        );
        assert_eq!(AuthKeyPath::from_name("auto"), Some(AuthKeyPath::Auto));
        assert_eq!(
            AuthKeyPath::from_name("encoded"),
            Some(AuthKeyPath::Fixed(PathForm::Encoded))
        );
        assert_eq!(AuthKeyPath::from_name("Decoded"), None);
    }

    #[test]
    fn rand_has_no_dash() {
        assert!(!random_rand().contains('-'));
        assert_eq!(random_rand().len(), 32);
    }
}
