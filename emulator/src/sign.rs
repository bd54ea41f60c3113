//! The web API's request signature (docs/123.md, web §0.3), signing and checking.
//!
//! A signed request carries one query parameter whose *name* is `timeSign` (all digits) and whose
//! value is `timestamp-random-dataSign`. Only the URL path is signed, so the emulator must see
//! the same path the client signed (`/b/api/...`).

/// Digit → letter map applied to the `YYYYMMDDhhmm` stamp (indices 0–9 of 123's table).
const DIGIT_MAP: [u8; 10] = *b"adefghlmyi";

/// The web signature's fixed `os` and `version` fields.
const OS: &str = "web";
const VERSION: &str = "3";

/// Allowed clock skew between the signer and the emulator. The real tolerance is unknown; ±10 min
/// is generous enough for any honest client and still rejects replayed old URLs.
pub const MAX_SKEW_SECS: i64 = 600;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No all-digit query key, or more than one.
    #[error("missing signature parameter")]
    Missing,
    /// The value is not `ts-rand-sig` with numeric parts.
    #[error("malformed signature value")]
    Malformed,
    /// The key does not match the timestamp.
    #[error("timeSign does not match the timestamp")]
    BadTimeSign,
    /// The data signature does not match.
    #[error("dataSign does not match")]
    BadDataSign,
    /// The timestamp is outside the allowed skew.
    #[error("timestamp outside the allowed clock skew")]
    Skew,
}

/// `timeSign` for a Unix time: CRC-32 of the digit-mapped `YYYYMMDDhhmm` (UTC+8).
pub fn time_sign(unix: i64) -> u32 {
    let stamp = crate::clock::cst_minute_stamp(unix);
    let mapped: Vec<u8> = stamp
        .bytes()
        .map(|b| DIGIT_MAP[usize::from(b.saturating_sub(b'0')).min(9)])
        .collect();
    crc32fast::hash(&mapped)
}

/// `dataSign`: CRC-32 of `ts|random|path|web|3|timeSign`.
pub fn data_sign(unix: i64, random: &str, path: &str, time_sign: u32) -> u32 {
    let data = format!("{unix}|{random}|{path}|{OS}|{VERSION}|{time_sign}");
    crc32fast::hash(data.as_bytes())
}

/// Sign `path` at `unix` with `random`; returns the query parameter `(name, value)`.
/// Used by tests and by anyone scripting the emulator by hand.
pub fn sign_path(path: &str, unix: i64, random: u32) -> (String, String) {
    let key = time_sign(unix);
    let random = random.to_string();
    let sig = data_sign(unix, &random, path, key);
    (key.to_string(), format!("{unix}-{random}-{sig}"))
}

/// Check the signature among `query` pairs (decoded) for a request to `path` at time `now`.
pub fn verify(path: &str, query: &[(String, String)], now: i64) -> Result<(), SignError> {
    let mut digit_keys = query
        .iter()
        .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    let (key, value) = digit_keys.next().ok_or(SignError::Missing)?;
    if digit_keys.next().is_some() {
        return Err(SignError::Missing);
    }
    let mut parts = value.splitn(3, '-');
    let (Some(ts), Some(random), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SignError::Malformed);
    };
    let ts: i64 = ts.parse().map_err(|_| SignError::Malformed)?;
    if random.is_empty() || !random.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignError::Malformed);
    }
    let key: u32 = key.parse().map_err(|_| SignError::Malformed)?;
    let sig: u32 = sig.parse().map_err(|_| SignError::Malformed)?;
    if key != time_sign(ts) {
        return Err(SignError::BadTimeSign);
    }
    if sig != data_sign(ts, random, path, key) {
        return Err(SignError::BadDataSign);
    }
    if (ts - now).abs() > MAX_SKEW_SECS {
        return Err(SignError::Skew);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §0.3 vectors: (path, ts, random, key, dataSign).
    const VECTORS: [(&str, i64, u32, u32, u32); 5] = [
        (
            "/b/api/file/list/new",
            1700000000,
            1234567,
            883022862,
            226109213,
        ),
        (
            "/b/api/user/info",
            1700000000,
            1234567,
            883022862,
            3025781655,
        ),
        ("/b/api/share/get", 1735689599, 0, 477515232, 2376106428),
        (
            "/b/api/file/download_info",
            1735660800,
            10000000,
            3396700159,
            1526885358,
        ),
        (
            "/b/api/share/download/info",
            1690439821,
            5790548,
            1946841013,
            3456942785,
        ),
    ];

    fn q(name: &str, value: &str) -> Vec<(String, String)> {
        vec![
            ("limit".to_string(), "100".to_string()),
            (name.to_string(), value.to_string()),
            ("Page".to_string(), "1".to_string()),
        ]
    }

    #[test]
    fn vectors_sign_and_verify() {
        for (path, ts, random, key, sig) in VECTORS {
            assert_eq!(time_sign(ts), key, "{path}");
            let (name, value) = sign_path(path, ts, random);
            assert_eq!(name, key.to_string());
            assert_eq!(value, format!("{ts}-{random}-{sig}"));
            assert_eq!(verify(path, &q(&name, &value), ts), Ok(()), "{path}");
            // within the skew window on both sides
            assert_eq!(verify(path, &q(&name, &value), ts + MAX_SKEW_SECS), Ok(()));
            assert_eq!(verify(path, &q(&name, &value), ts - MAX_SKEW_SECS), Ok(()));
        }
    }

    #[test]
    fn mapped_stamp_matches_table() {
        // vector A: 202311150613 -> eaefdddhaldf
        let stamp = crate::clock::cst_minute_stamp(1700000000);
        let mapped: String = stamp
            .bytes()
            .map(|b| DIGIT_MAP[usize::from(b - b'0')] as char)
            .collect();
        assert_eq!(mapped, "eaefdddhaldf");
    }

    #[test]
    fn refusals() {
        let (path, ts, random, key, sig) = VECTORS[2];
        let good = format!("{ts}-{random}-{sig}");
        let name = key.to_string();
        assert_eq!(verify(path, &[], ts), Err(SignError::Missing));
        assert_eq!(
            verify("/b/api/share/download/info", &q(&name, &good), ts),
            Err(SignError::BadDataSign)
        );
        assert_eq!(
            verify(path, &q("12345", &good), ts),
            Err(SignError::BadTimeSign)
        );
        assert_eq!(
            verify(path, &q(&name, &format!("{ts}-{random}-{}", sig ^ 1)), ts),
            Err(SignError::BadDataSign)
        );
        assert_eq!(
            verify(path, &q(&name, "x-1-2"), ts),
            Err(SignError::Malformed)
        );
        assert_eq!(
            verify(path, &q(&name, &good), ts + MAX_SKEW_SECS + 1),
            Err(SignError::Skew)
        );
    }
}
