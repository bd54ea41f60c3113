//! Direct-link URL authentication (`auth_key`, 123's "直链鉴权"; docs/123.md, web §3.3).
//!
//! `auth_key = ts-rand-uid-md5("<decoded path>-ts-rand-uid-<key>")`, where `ts` is the expiry.
//! Which form of the path is hashed (decoded, as OpenList signs it, or as written, as 123's
//! samples do) is the `auth_key_path` switch; `direct.rs` passes the form it checks.

use md5::{Digest, Md5};

/// Why an `auth_key` was refused (the host answers 403 for all of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthKeyError {
    /// No `auth_key` while a key is configured.
    #[error("auth_key missing")]
    Missing,
    /// Not exactly four `-`-separated parts, or a non-numeric timestamp.
    #[error("auth_key malformed")]
    Malformed,
    /// The expiry timestamp has passed.
    #[error("auth_key expired")]
    Expired,
    /// The uid part is not this account's uid.
    #[error("auth_key uid mismatch")]
    WrongUid,
    /// The hash does not match.
    #[error("auth_key hash mismatch")]
    BadHash,
}

/// The lowercase hex MD5 over `path-ts-rand-uid-key`.
pub fn hash(decoded_path: &str, ts: i64, rand: &str, uid: u64, key: &str) -> String {
    let input = format!("{decoded_path}-{ts}-{rand}-{uid}-{key}");
    hex(&Md5::digest(input.as_bytes()))
}

/// Build the `auth_key` value for a decoded path expiring at `ts`.
pub fn sign(decoded_path: &str, ts: i64, rand: &str, uid: u64, key: &str) -> String {
    format!(
        "{ts}-{rand}-{uid}-{}",
        hash(decoded_path, ts, rand, uid, key)
    )
}

/// Check `auth_key` (if any) for a request to `decoded_path` at time `now`.
pub fn verify(
    decoded_path: &str,
    auth_key: Option<&str>,
    uid: u64,
    key: &str,
    now: i64,
) -> Result<(), AuthKeyError> {
    let auth_key = auth_key.ok_or(AuthKeyError::Missing)?;
    let parts: Vec<&str> = auth_key.split('-').collect();
    let [ts, rand, key_uid, md5] = parts.as_slice() else {
        return Err(AuthKeyError::Malformed);
    };
    let ts: i64 = ts.parse().map_err(|_| AuthKeyError::Malformed)?;
    if ts < now {
        return Err(AuthKeyError::Expired);
    }
    if *key_uid != uid.to_string() {
        return Err(AuthKeyError::WrongUid);
    }
    if !md5.eq_ignore_ascii_case(&hash(decoded_path, ts, rand, uid, key)) {
        return Err(AuthKeyError::BadHash);
    }
    Ok(())
}

/// Lowercase hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_example() {
        let k = sign("/13/files/1.txt", 1689220731, "123", 13, "289ds32418bxdba");
        assert_eq!(k, "1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad");
        assert_eq!(
            verify(
                "/13/files/1.txt",
                Some(&k),
                13,
                "289ds32418bxdba",
                1689220000
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                "/13/files/1.txt",
                Some(&k),
                13,
                "289ds32418bxdba",
                1689220732
            ),
            Err(AuthKeyError::Expired)
        );
    }

    #[test]
    fn second_open_api_example() {
        let k = sign(
            "/1814435920/files/demo.mp4",
            1767225600,
            "0123456789abcdef0123456789abcdef",
            1814435920,
            "mySecretKey",
        );
        assert_eq!(
            k,
            "1767225600-0123456789abcdef0123456789abcdef-1814435920-1260014f1a070bb1261f0ab2046c5bc3"
        );
    }

    #[test]
    fn web_page_vectors_including_non_ascii() {
        let uid = 1812000499;
        let rand = "5577006791947779410";
        let ascii = "/1812000499/123-link-Test/linuxqq_3.2.0-16736_mips64el.deb";
        assert_eq!(
            hash(ascii, 1700001800, rand, uid, "MyPrivKey123"),
            "d41240e5d1d100ad8975bc3c15feaddf"
        );
        let decoded = "/1812000499/视频/a b.mp4";
        let h = hash(decoded, 1700001800, rand, uid, "MyPrivKey123");
        assert_eq!(h, "8806ffe939d6226ea2110643bbea38ff");
        let k = format!("1700001800-{rand}-{uid}-{h}");
        assert_eq!(
            verify(decoded, Some(&k), uid, "MyPrivKey123", 1700000000),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let key = "289ds32418bxdba";
        let good = "1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad";
        let now = 1689220000;
        let v = |p: &str, k: Option<&str>| verify(p, k, 13, key, now);
        assert_eq!(v("/13/files/1.txt", None), Err(AuthKeyError::Missing));
        assert_eq!(
            v("/13/files/1.txt", Some("1689220731-123-13")),
            Err(AuthKeyError::Malformed)
        );
        assert_eq!(
            v("/13/files/1.txt", Some(&format!("{good}-x"))),
            Err(AuthKeyError::Malformed)
        );
        assert_eq!(v("/13/files/2.txt", Some(good)), Err(AuthKeyError::BadHash));
        assert_eq!(
            verify("/13/files/1.txt", Some(good), 14, key, now),
            Err(AuthKeyError::WrongUid)
        );
    }
}
