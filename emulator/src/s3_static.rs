//! The S3 host's answers to the static-credential flow (docs/123.md, web §1.4, switch
//! `upload_credentials = static`): path-style requests to `<EndPoint>/<Bucket>/<Key>` signed
//! with SigV4 in the query (`sigv4.rs`) by the credentials `upload_request` handed out for
//! that object.
//!
//! * `PUT` without `partNumber`: `PutObject`, the whole file in one body.
//! * `POST ?uploads`: `CreateMultipartUpload` → XML `UploadId`.
//! * `PUT ?partNumber&uploadId`: `UploadPart` → `ETag`.
//! * `POST ?uploadId`: `CompleteMultipartUpload` with the XML list of parts and ETags.
//!
//! Errors are S3 XML (`s3.rs`): a bad signature 403 `SignatureDoesNotMatch`, an expired one 403
//! `AccessDenied`, an unknown object or S3 upload id 404 `NoSuchUpload`, a part list that is not
//! what was received 400 `InvalidPart`. Then `upload_complete` (`personal_upload.rs`) lands it.

use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use rand::Rng;

use crate::emulator::lock;
use crate::http::{full, query, read_body, BodyError, HandlerResult, Resp};
use crate::personal_upload::{StaticObject, WEB_PART_SIZE};
use crate::s3::{etag_reply, s3_error, s3_error_of, save_part, INCOMPLETE, NO_UPLOAD, TOO_LARGE};
use crate::server::Ctx;
use crate::sigv4::{verify, SigError};

/// Most bytes one `PutObject` or `UploadPart` body may have here (S3 allows 5 GiB; the
/// emulator keeps bodies in memory, and the gateway sends at most 16 MiB at once).
const MAX_BODY: u64 = 4 * WEB_PART_SIZE;

/// Handles one signed request of the static flow; `pairs` is its decoded query.
pub(crate) async fn handle(
    ctx: &Ctx,
    req: Request<Incoming>,
    pairs: Vec<(String, String)>,
) -> HandlerResult {
    let sh = ctx.shared.clone();
    let raw_path = req.uri().path().to_string();
    let object = percent_decode_str(raw_path.strip_prefix("/s3").unwrap_or_default())
        .decode_utf8_lossy()
        .into_owned();
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let found = {
        let ups = lock(&sh.web_uploads);
        ups.open.iter().find_map(|(id, u)| {
            let creds = u.creds.clone()?;
            (format!("/{}/{}", u.bucket, u.key) == object)
                .then(|| (id.clone(), creds, u.object.clone(), u.target.size))
        })
    };
    let Some((upload_id, creds, state, size)) = found else {
        let _ = read_body(req.into_body(), usize::MAX).await;
        return Ok(s3_error_of(NO_UPLOAD, &object));
    };
    if let Err(e) = verify(
        req.method().as_str(),
        &raw_path,
        &pairs,
        &host,
        &creds,
        sh.now(),
    ) {
        let _ = read_body(req.into_body(), usize::MAX).await;
        return Ok(match e {
            SigError::Expired => s3_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Request has expired",
                &object,
            ),
            _ => s3_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                &object,
            ),
        });
    }
    let part = query(&pairs, "partNumber").and_then(|p| p.parse::<u32>().ok());
    let s3_upload = query(&pairs, "uploadId").map(str::to_string);
    let post = req.method() == Method::POST;
    match (post, part, s3_upload) {
        // CreateMultipartUpload.
        (true, None, None) if query(&pairs, "uploads").is_some() => {
            let id = format!("{:032x}", rand::thread_rng().gen::<u128>());
            set_object(&sh, &upload_id, StaticObject::Multipart(id.clone()), true);
            Ok(xml(&format!(
                "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                bucket_of(&object),
                key_of(&object)
            )))
        }
        // CompleteMultipartUpload.
        (true, None, Some(id)) => {
            if state != StaticObject::Multipart(id.clone()) {
                return Ok(s3_error_of(NO_UPLOAD, &object));
            }
            let body = match read_body(req.into_body(), 1 << 20).await {
                Ok(b) => b,
                Err(_) => return Ok(s3_error_of(INCOMPLETE, &object)),
            };
            let listed = parse_parts(&String::from_utf8_lossy(&body));
            let matches = {
                let ups = lock(&sh.web_uploads);
                ups.open.get(&upload_id).is_some_and(|u| {
                    !listed.is_empty()
                        && listed.len() == u.parts.len()
                        && listed.iter().all(|(n, etag)| {
                            u.parts
                                .get(n)
                                .is_some_and(|p| p.md5.eq_ignore_ascii_case(etag))
                        })
                })
            };
            if !matches {
                return Ok(s3_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPart",
                    "One or more of the specified parts could not be found or its entity tag did not match.",
                    &object,
                ));
            }
            set_object(&sh, &upload_id, StaticObject::Completed(id), false);
            Ok(xml(&format!(
                "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>{}</Bucket><Key>{}</Key><ETag>\"{upload_id}-{}\"</ETag></CompleteMultipartUploadResult>",
                bucket_of(&object),
                key_of(&object),
                listed.len()
            )))
        }
        // UploadPart.
        (false, Some(n), Some(id)) => {
            if state != StaticObject::Multipart(id) || n == 0 || n > 10_000 {
                let _ = read_body(req.into_body(), usize::MAX).await;
                return Ok(s3_error_of(NO_UPLOAD, &object));
            }
            store(&sh, req, &upload_id, n, &object).await
        }
        // PutObject: the whole file; earlier parts are dropped.
        (false, None, None) => {
            if size > MAX_BODY {
                let _ = read_body(req.into_body(), usize::MAX).await;
                return Ok(s3_error_of(TOO_LARGE, &object));
            }
            set_object(&sh, &upload_id, StaticObject::Put, true);
            store(&sh, req, &upload_id, 1, &object).await
        }
        _ => {
            let _ = read_body(req.into_body(), usize::MAX).await;
            Ok(s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "This request is not an S3 operation the emulator serves.",
                &object,
            ))
        }
    }
}

/// Reads a body (at most `MAX_BODY`) and stores it as part `n`.
async fn store(
    sh: &crate::emulator::Shared,
    req: Request<Incoming>,
    upload_id: &str,
    n: u32,
    object: &str,
) -> HandlerResult {
    let limit = usize::try_from(MAX_BODY).unwrap_or(usize::MAX);
    let body = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Ok(s3_error_of(TOO_LARGE, object)),
        Err(BodyError::Io) => return Ok(s3_error_of(INCOMPLETE, object)),
    };
    match save_part(sh, upload_id, n, body).await {
        Ok(md5) => Ok(etag_reply(&md5)),
        Err(e) => Ok(s3_error_of(e, object)),
    }
}

/// Sets the object's state; `fresh` drops any part received before.
fn set_object(sh: &crate::emulator::Shared, upload_id: &str, state: StaticObject, fresh: bool) {
    let mut ups = lock(&sh.web_uploads);
    if let Some(u) = ups.open.get_mut(upload_id) {
        if fresh {
            for p in std::mem::take(&mut u.parts).into_values() {
                let _ = std::fs::remove_file(&p.path);
            }
        }
        u.object = state;
    }
}

fn bucket_of(object: &str) -> &str {
    object
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

fn key_of(object: &str) -> &str {
    object
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, k)| k)
}

/// `(PartNumber, ETag without quotes)` of each `<Part>` of a CompleteMultipartUpload body.
fn parse_parts(body: &str) -> Vec<(u32, String)> {
    let inner = |s: &str, tag: &str| -> Option<String> {
        let start = s.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = s[start..].find(&format!("</{tag}>"))? + start;
        Some(s[start..end].to_string())
    };
    body.split("<Part>")
        .skip(1)
        .filter_map(|part| {
            let n = inner(part, "PartNumber")?.trim().parse().ok()?;
            let etag = inner(part, "ETag")?
                .replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .trim()
                .trim_matches('"')
                .to_string();
            Some((n, etag))
        })
        .collect()
}

fn xml(body: &str) -> Resp {
    let mut r = Response::new(full(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"
    )));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_lists_parse() {
        let body = "<CompleteMultipartUpload><Part><ETag>&quot;abc&quot;</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>\"def\"</ETag></Part></CompleteMultipartUpload>";
        assert_eq!(
            parse_parts(body),
            [(1, "abc".to_string()), (2, "def".to_string())]
        );
        assert_eq!(bucket_of("/b/1-0/k"), "b");
        assert_eq!(key_of("/b/1-0/k"), "1-0/k");
    }
}
