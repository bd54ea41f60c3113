//! The presigned part host of personal uploads (`/s3/…`, stats and fault word `s3`): where the
//! driver `PUT`s raw part bytes (docs/123.md, web §1.4).
//!
//! URL shape: `<s3 host>/s3/<bucket>/<key>?partNumber=N&uploadId=<id>&expires=<unix>&signature=<hex>`.
//! `signature` is an MD5 over a per-process secret, the path after `/s3`, the part number, the
//! upload id and `expires`, so an edited or forged URL gets 403 (`SignatureDoesNotMatch`), as
//! does one past `expires` (`AccessDenied`, see the `presign_ttl` switch). Errors are S3-style
//! XML bodies. The emulator keeps no per-URL state.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, ETAG, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use md5::{Digest, Md5};
use rand::Rng;

use crate::emulator::{lock, Shared};
use crate::hosts::Host;
use crate::http::{
    empty, encode_query_value, full, query, query_pairs, read_body, BodyError, HandlerResult, Resp,
};
use crate::personal_upload::{part_path, Part, WEB_PART_SIZE};
use crate::server::Ctx;
use crate::upload::cut_body;

/// Stats and fault key of this host.
const HOST: &str = "s3";

fn signature(secret: &str, path: &str, part: u32, upload_id: &str, expires: i64) -> String {
    crate::content::md5_hex(
        format!("{secret}|s3|PUT|{path}|{part}|{upload_id}|{expires}").as_bytes(),
    )
}

/// A presigned `PUT` URL for one part.
pub(crate) fn presigned_url(
    sh: &Shared,
    bucket: &str,
    key: &str,
    part: u32,
    upload_id: &str,
    expires: i64,
) -> String {
    let path = format!("/{bucket}/{key}");
    let sig = signature(&sh.cdn_secret, &path, part, upload_id, expires);
    format!(
        "{}/s3{path}?partNumber={part}&uploadId={}&expires={expires}&signature={sig}",
        sh.url(Host::S3),
        encode_query_value(upload_id)
    )
}

/// An S3 error used in more than one place: status, `Code`, `Message`.
pub(crate) type S3Err = (StatusCode, &'static str, &'static str);
pub(crate) const TOO_LARGE: S3Err = (
    StatusCode::BAD_REQUEST,
    "EntityTooLarge",
    "Your proposed upload exceeds the maximum allowed size.",
);
pub(crate) const INCOMPLETE: S3Err = (
    StatusCode::BAD_REQUEST,
    "IncompleteBody",
    "You did not provide the number of bytes specified by the Content-Length HTTP header.",
);
pub(crate) const NO_UPLOAD: S3Err = (
    StatusCode::NOT_FOUND,
    "NoSuchUpload",
    "The specified upload does not exist.",
);

/// `s3_error` for one of the shared errors above.
pub(crate) fn s3_error_of(e: S3Err, resource: &str) -> Resp {
    s3_error(e.0, e.1, e.2, resource)
}

/// An S3-style XML error.
pub(crate) fn s3_error(status: StatusCode, code: &str, message: &str, resource: &str) -> Resp {
    let request_id: u64 = rand::thread_rng().gen();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><Resource>{}</Resource><RequestId>{request_id:016X}</RequestId></Error>",
        xml_escape(resource)
    );
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    r
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A part `PUT` that passed the URL and header checks.
struct Accepted {
    upload_id: String,
    part: u32,
    len: u64,
    content_md5: Option<String>,
}

/// The checks made before any body byte is read.
fn admit(sh: &Shared, req: &Request<Incoming>) -> Result<Accepted, Resp> {
    let path = req.uri().path().strip_prefix("/s3").unwrap_or_default();
    let pairs = query_pairs(req.uri());
    let forged = || {
        s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            path,
        )
    };
    let part = query(&pairs, "partNumber").and_then(|p| p.parse::<u32>().ok());
    let upload_id = query(&pairs, "uploadId");
    let expires = query(&pairs, "expires").and_then(|e| e.parse::<i64>().ok());
    let sig = query(&pairs, "signature");
    let (Some(part), Some(upload_id), Some(expires), Some(sig)) = (part, upload_id, expires, sig)
    else {
        return Err(forged());
    };
    if signature(&sh.cdn_secret, path, part, upload_id, expires) != sig {
        return Err(forged());
    }
    // Good up to, not including, its expiry second (as CDN links).
    if expires <= sh.now() {
        return Err(s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired",
            path,
        ));
    }
    // HTTP/1.1 framing: without `Content-Length` and `Transfer-Encoding` the body is empty
    // (hyper sends an empty PUT that way); a chunked body has no length and is refused.
    let len = match req.headers().get(CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()),
        None if req.headers().contains_key(TRANSFER_ENCODING) => None,
        None => Some(0),
    };
    let Some(len) = len else {
        return Err(s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
            path,
        ));
    };
    {
        let ups = lock(&sh.web_uploads);
        let Some(u) = ups
            .open
            .get(upload_id)
            .filter(|u| format!("/{}/{}", u.bucket, u.key) == path)
        else {
            return Err(s3_error_of(NO_UPLOAD, path));
        };
        if part < 1 || part > u.part_count() {
            return Err(s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "Part number must be within the upload's parts.",
                path,
            ));
        }
    }
    if len > WEB_PART_SIZE {
        return Err(s3_error_of(TOO_LARGE, path));
    }
    let content_md5 = req
        .headers()
        .get("content-md5")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    Ok(Accepted {
        upload_id: upload_id.to_string(),
        part,
        len,
        content_md5,
    })
}

/// `PUT /s3/<bucket>/<key>?partNumber=…`: store one part, answer 200 with `ETag: "<md5>"`.
/// A SigV4-signed request is the static-credential flow's (`s3_static.rs`).
pub(crate) async fn handle(ctx: &Ctx, req: Request<Incoming>) -> HandlerResult {
    let sh = ctx.shared.clone();
    let cut = lock(&sh.faults).take_cut(HOST);
    if let Some(bytes) = cut {
        return Err(cut_body(req.into_body(), bytes).await);
    }
    let pairs = query_pairs(req.uri());
    if query(&pairs, "X-Amz-Algorithm").is_some() || req.method() == http::Method::POST {
        return crate::s3_static::handle(ctx, req, pairs).await;
    }
    let path = req.uri().path().to_string();
    let limit = usize::try_from(WEB_PART_SIZE).unwrap_or(usize::MAX);
    let acc = match admit(&sh, &req) {
        Ok(a) => a,
        Err(refusal) => {
            // Read what the client sends before refusing, so it sees the answer rather than a
            // connection reset in the middle of its upload.
            let _ = read_body(req.into_body(), limit.saturating_add(1 << 20)).await;
            return Ok(refusal);
        }
    };
    let body = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Ok(s3_error_of(TOO_LARGE, &path)),
        Err(BodyError::Io) => return Ok(s3_error_of(INCOMPLETE, &path)),
    };
    if body.len() as u64 != acc.len {
        return Ok(s3_error_of(INCOMPLETE, &path));
    }
    let digest = Md5::digest(&body);
    if let Some(want) = &acc.content_md5 {
        if STANDARD.decode(want).ok().as_deref() != Some(&digest[..]) {
            return Ok(s3_error(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
                &path,
            ));
        }
    }
    match save_part(&sh, &acc.upload_id, acc.part, body).await {
        Ok(md5) => Ok(etag_reply(&md5)),
        Err(e) => Ok(s3_error_of(e, &path)),
    }
}

/// An empty 200 with `ETag: "<md5>"`, S3's answer to a stored part or object.
pub(crate) fn etag_reply(md5: &str) -> Resp {
    let mut r = Response::new(empty());
    if let Ok(v) = HeaderValue::from_str(&format!("\"{md5}\"")) {
        r.headers_mut().insert(ETAG, v);
    }
    r
}

const INTERNAL: S3Err = (
    StatusCode::INTERNAL_SERVER_ERROR,
    "InternalError",
    "We encountered an internal error. Please try again.",
);

/// Stores part `part` of open upload `upload_id` in its own file (replacing an older copy of
/// that part) and returns its lowercase hex MD5. Both flows' part `PUT`s end here.
pub(crate) async fn save_part(
    sh: &Shared,
    upload_id: &str,
    part: u32,
    body: bytes::Bytes,
) -> Result<String, S3Err> {
    let md5 = crate::auth_key::hex(&Md5::digest(&body));
    let len = body.len() as u64;
    let file = part_path(sh, upload_id, part);
    let written = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || std::fs::write(&file, &body)).await
    };
    if !matches!(written, Ok(Ok(()))) {
        let _ = std::fs::remove_file(&file);
        return Err(INTERNAL);
    }
    let old = {
        let mut ups = lock(&sh.web_uploads);
        match ups.open.get_mut(upload_id) {
            Some(u) => Ok(u.parts.insert(
                part,
                Part {
                    size: len,
                    path: file.clone(),
                    md5: md5.clone(),
                },
            )),
            None => Err(()),
        }
    };
    match old {
        Ok(old) => {
            if let Some(old) = old {
                let _ = std::fs::remove_file(&old.path);
            }
            Ok(md5)
        }
        // Completed or ended while this part was arriving.
        Err(()) => {
            let _ = std::fs::remove_file(&file);
            Err(NO_UPLOAD)
        }
    }
}
