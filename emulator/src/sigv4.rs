//! AWS Signature Version 4 checks of query-signed (presigned) S3 requests, for the static
//! credential upload flow (docs/123.md, web §1.4; switch `upload_credentials = static`).
//!
//! Written here rather than taken from the crate the gateway signs with, so that a misuse of
//! that crate cannot be hidden by the same misuse in the check. Only the query form
//! (`X-Amz-Algorithm=AWS4-HMAC-SHA256`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//! `X-Amz-SignedHeaders`, `X-Amz-Security-Token`, `X-Amz-Signature`, payload `UNSIGNED-PAYLOAD`)
//! is checked; a request signed in the `Authorization` header is refused (an emulator limit:
//! S3 accepts both).

use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The static credentials handed out with one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// The region OpenList's driver signs for (`aws.Config{Region: "123pan"}`).
pub const REGION: &str = "123pan";

/// Why a request's signature was refused (403 `SignatureDoesNotMatch` or `AccessDenied`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("not a query-signed AWS4-HMAC-SHA256 request")]
    NotSigned,
    #[error("unknown access key, region or service in the credential scope")]
    WrongCredential,
    #[error("missing or wrong security token")]
    WrongToken,
    #[error("request has expired")]
    Expired,
    #[error("the signature does not match")]
    Mismatch,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else `%XX`.
fn aws_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a query-signed request: `method`, the raw `path` of the request line, its decoded
/// query `pairs`, its `Host` header, against `creds` at Unix time `now`.
pub fn verify(
    method: &str,
    path: &str,
    pairs: &[(String, String)],
    host: &str,
    creds: &Credentials,
    now: i64,
) -> Result<(), SigError> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(SigError::NotSigned);
    }
    let (Some(credential), Some(date), Some(expires), Some(signed_headers), Some(signature)) = (
        get("X-Amz-Credential"),
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Signature"),
    ) else {
        return Err(SigError::NotSigned);
    };
    // `<key id>/<yyyymmdd>/<region>/s3/aws4_request`
    let scope_parts: Vec<&str> = credential.split('/').collect();
    let [key_id, day, region, "s3", "aws4_request"] = scope_parts.as_slice() else {
        return Err(SigError::WrongCredential);
    };
    if *key_id != creds.access_key_id || *region != REGION || !date.starts_with(day) {
        return Err(SigError::WrongCredential);
    }
    if get("X-Amz-Security-Token") != Some(creds.session_token.as_str()) {
        return Err(SigError::WrongToken);
    }
    let signed_at = NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| SigError::NotSigned)?
        .and_utc()
        .timestamp();
    let expires: i64 = expires.parse().map_err(|_| SigError::NotSigned)?;
    if signed_at.saturating_add(expires) < now {
        return Err(SigError::Expired);
    }
    // Only `host` may be signed: the gateway's requests carry no other signed header.
    if signed_headers != "host" {
        return Err(SigError::Mismatch);
    }
    let mut query: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (aws_encode(k), aws_encode(v)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request =
        format!("{method}\n{path}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        crate::auth_key::hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let expected = crate::auth_key::hex(&hmac(&key, to_sign.as_bytes()));
    if expected.eq_ignore_ascii_case(signature) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature computed step by step from a hand-written canonical request (the form AWS
    /// documents) is accepted; any edit of method, path, expiry or token is refused.
    #[test]
    fn a_signature_made_by_the_algorithm_verifies_and_edits_do_not() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: "tok/en+=".into(),
        };
        let mut pairs: Vec<(String, String)> = vec![
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            (
                "X-Amz-Credential".into(),
                "AKIDEXAMPLE/20261203/123pan/s3/aws4_request".into(),
            ),
            ("X-Amz-Date".into(), "20261203T120000Z".into()),
            ("X-Amz-Expires".into(), "600".into()),
            ("X-Amz-Security-Token".into(), "tok/en+=".into()),
            ("X-Amz-SignedHeaders".into(), "host".into()),
            ("partNumber".into(), "1".into()),
            ("uploadId".into(), "u 1".into()),
        ];
        let now = 1_796_299_200; // 2026-12-03T12:00:00Z
        let host = "127.0.0.1:9000";
        let path = "/s3/b/1-0/k%20x";
        // Find the signature the checker wants, then check it is accepted and edits are not.
        let wrong = {
            let mut p = pairs.clone();
            p.push(("X-Amz-Signature".into(), "00".into()));
            p
        };
        assert_eq!(
            verify("PUT", path, &wrong, host, &creds, now),
            Err(SigError::Mismatch)
        );
        let sig = {
            let canonical = "PUT\n/s3/b/1-0/k%20x\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261203%2F123pan%2Fs3%2Faws4_request&X-Amz-Date=20261203T120000Z&X-Amz-Expires=600&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-SignedHeaders=host&partNumber=1&uploadId=u%201\nhost:127.0.0.1:9000\n\nhost\nUNSIGNED-PAYLOAD";
            let to_sign = format!(
                "AWS4-HMAC-SHA256\n20261203T120000Z\n20261203/123pan/s3/aws4_request\n{}",
                crate::auth_key::hex(&Sha256::digest(canonical.as_bytes()))
            );
            let mut k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", b"20261203");
            for p in ["123pan", "s3", "aws4_request"] {
                k = hmac(&k, p.as_bytes());
            }
            crate::auth_key::hex(&hmac(&k, to_sign.as_bytes()))
        };
        pairs.push(("X-Amz-Signature".into(), sig));
        assert_eq!(verify("PUT", path, &pairs, host, &creds, now), Ok(()));
        assert_eq!(
            verify("POST", path, &pairs, host, &creds, now),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify("PUT", "/s3/b/1-0/other", &pairs, host, &creds, now),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify("PUT", path, &pairs, host, &creds, now + 601),
            Err(SigError::Expired)
        );
        let other = Credentials {
            session_token: "other".into(),
            ..creds.clone()
        };
        assert_eq!(
            verify("PUT", path, &pairs, host, &other, now),
            Err(SigError::WrongToken)
        );
    }
}
