//! Signed download URLs for the `proxy-url` policy: `/-/d/<mount>/<path>?sign=<sig>:<expiry>`.
//!
//! `<sig>` is the unpadded base64url HMAC-SHA256 of `"<path>:<expiry>"` under the server's key,
//! where `<path>` is the full percent-encoded gateway path exactly as it appears in the URL and
//! `<expiry>` is a Unix time in seconds. The expiry is inside the MAC, so it cannot be extended;
//! the path is inside the MAC, so a signature cannot be moved to another file. A URL is valid up
//! to and including its expiry second.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// SHA-256's block size: HMAC pads (or first hashes) the key to this length.
const BLOCK: usize = 64;

/// Why a `sign` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Not `<base64url>:<digits>`, or the signature has the wrong length.
    #[error("malformed signature")]
    Malformed,
    /// Well formed but not made by our key for this path and expiry.
    #[error("bad signature")]
    BadSignature,
    /// Genuine, but its expiry has passed.
    #[error("signature expired")]
    Expired,
}

/// Signs and verifies download URLs with one secret key.
#[derive(Clone)]
pub struct UrlSigner {
    /// The HMAC state right after absorbing the key, cloned for every signature.
    keyed: HmacSha256,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner { key: <redacted> }")
    }
}

impl UrlSigner {
    /// A signer for `key`. Any length works; use at least 32 random bytes.
    pub fn new(key: &[u8]) -> Self {
        // HMAC (RFC 2104) hashes a key longer than the block and zero-pads the result; doing that
        // here gives a fixed-size key, so construction cannot fail.
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            let digest = Sha256::digest(key);
            block[..digest.len()].copy_from_slice(&digest);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        UrlSigner {
            keyed: <HmacSha256 as hmac::digest::KeyInit>::new(&block.into()),
        }
    }

    /// The value of the `sign` query parameter for `path` (percent-encoded, as in the URL),
    /// valid until `expires_unix` (inclusive).
    pub fn sign(&self, path: &str, expires_unix: u64) -> String {
        let tag = self.mac(path, &expires_unix.to_string());
        format!("{}:{}", URL_SAFE_NO_PAD.encode(tag), expires_unix)
    }

    /// Checks a `sign` value (already percent-decoded by the caller) for `path` at `now_unix`.
    pub fn verify(&self, path: &str, sign: &str, now_unix: u64) -> Result<(), SignError> {
        let (sig, expiry) = sign.rsplit_once(':').ok_or(SignError::Malformed)?;
        if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignError::Malformed);
        }
        let expiry_secs: u64 = expiry.parse().map_err(|_| SignError::Malformed)?;
        let given = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| SignError::Malformed)?;
        // The MAC covers the expiry exactly as written, so `0170…` is not `170…`.
        let expected = self.mac(path, expiry);
        if given.len() != expected.len() {
            return Err(SignError::Malformed);
        }
        // The signature is checked before the expiry, so a forged expiry reads as forged.
        if !bool::from(expected.as_slice().ct_eq(&given)) {
            return Err(SignError::BadSignature);
        }
        if now_unix > expiry_secs {
            return Err(SignError::Expired);
        }
        Ok(())
    }

    fn mac(&self, path: &str, expiry: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(path.as_bytes());
        mac.update(b":");
        mac.update(expiry.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/movies/a%20b.mkv";

    fn signer() -> UrlSigner {
        UrlSigner::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn round_trip() {
        let s = signer();
        let sign = s.sign(PATH, 1_700_000_000);
        assert!(sign.ends_with(":1700000000"));
        let (sig, _) = sign.split_once(':').expect("colon");
        assert_eq!(sig.len(), 43, "32 bytes in unpadded base64");
        assert!(sig
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(s.verify(PATH, &sign, 1_699_999_999), Ok(()));
        assert_eq!(s.verify(PATH, &sign, 1_700_000_000), Ok(()));
        assert_eq!(s.sign(PATH, 1_700_000_000), sign, "deterministic");
    }

    #[test]
    fn other_path_or_key_is_bad() {
        let s = signer();
        let sign = s.sign(PATH, 1_700_000_000);
        assert_eq!(
            s.verify("/movies/a%20c.mkv", &sign, 0),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            s.verify("/movies/a b.mkv", &sign, 0),
            Err(SignError::BadSignature)
        );
        assert_eq!(
            UrlSigner::new(b"another key").verify(PATH, &sign, 0),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn expired() {
        let s = signer();
        let sign = s.sign(PATH, 1_700_000_000);
        assert_eq!(
            s.verify(PATH, &sign, 1_700_000_001),
            Err(SignError::Expired)
        );
        assert_eq!(s.verify(PATH, &sign, u64::MAX), Err(SignError::Expired));
    }

    #[test]
    fn tampered_expiry_is_bad() {
        let s = signer();
        let sign = s.sign(PATH, 1_700_000_000);
        let (sig, _) = sign.split_once(':').expect("colon");
        for expiry in ["1800000000", "1699999999", "01700000000"] {
            assert_eq!(
                s.verify(PATH, &format!("{sig}:{expiry}"), 1_700_000_001),
                Err(SignError::BadSignature),
                "{expiry}"
            );
        }
    }

    #[test]
    fn tampered_signature_is_bad() {
        let s = signer();
        let sign = s.sign(PATH, 1_700_000_000);
        let mut bytes = sign.into_bytes();
        bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
        let sign = String::from_utf8(bytes).expect("ascii");
        assert_eq!(s.verify(PATH, &sign, 0), Err(SignError::BadSignature));
    }

    #[test]
    fn malformed() {
        let s = signer();
        let good = s.sign(PATH, 1_700_000_000);
        let (sig, _) = good.split_once(':').expect("colon");
        let cases = [
            String::new(),
            ":".to_owned(),
            sig.to_owned(),
            format!("{sig}:"),
            format!("{sig}:+1700000000"),
            format!("{sig}:-1"),
            format!("{sig}:17e8"),
            format!("{sig}: 1700000000"),
            format!("{sig}:99999999999999999999999"),
            format!("{sig}=:1700000000"),
            format!("{sig}%3A1700000000"),
            format!("{}:1700000000", &sig[..42]),
            format!("{sig}AA:1700000000"),
            "not base64!:1700000000".to_owned(),
            ":1700000000".to_owned(),
        ];
        for sign in cases {
            assert_eq!(
                s.verify(PATH, &sign, 0),
                Err(SignError::Malformed),
                "{sign:?}"
            );
        }
    }

    #[test]
    fn long_keys_match_plain_hmac() {
        // The fixed-size key block must give the same MAC as HMAC's own key handling.
        for key in [&b""[..], b"k", &[7u8; 64], &[9u8; 65], &[1u8; 200]] {
            let ours = UrlSigner::new(key).mac(PATH, "42");
            let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key");
            mac.update(format!("{PATH}:42").as_bytes());
            let theirs: [u8; 32] = mac.finalize().into_bytes().into();
            assert_eq!(ours, theirs, "key length {}", key.len());
        }
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2 through our key handling: key "Jefe".
        let signer = UrlSigner::new(b"Jefe");
        let mut mac = signer.keyed.clone();
        mac.update(b"what do ya want for nothing?");
        let out = mac.finalize().into_bytes();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", signer()), "UrlSigner { key: <redacted> }");
    }
}
