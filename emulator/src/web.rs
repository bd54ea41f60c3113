//! The web API host (`/b/api/…`) and the login host: request-signature gate, the web client's
//! header checks, the QPS gate, the envelope and file object, and the router. Share links live
//! in `share.rs`, the personal account (and its unsigned login on the login host) in
//! `personal.rs`, its tree changes in `personal_write.rs` and its uploads in `personal_upload.rs`
//! (parts go to the S3 host, `s3.rs`).

use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::clock::rfc3339_cst;
use crate::config::{WebRateLimitStyle, WebSignatureFailure};
use crate::emulator::Shared;
use crate::http::{json, not_found, query_pairs, HandlerResult, Resp};
use crate::server::{Ctx, Ep, MSG_429, MSG_PLATFORM};
use crate::state::Entry;

/// Refusal text for a client that does not look like 123's web client (alist#4756, #4758).
pub const MSG_FORBIDDEN: &str = "123pan forbidden";
/// Refusal text for a missing `app-version` header.
pub const MSG_APP_VERSION: &str = "app-version is required";
/// The `app-version` the web client sends with `platform: web` (docs/123.md, web §1.2, §1.3).
pub const WEB_APP_VERSION: &str = "3";

/// Route a web API or login request. A missing or bad signature gets HTTP 403 with a JSON body:
/// the real server's answer is unconfirmed (docs/123.md, web §6), and 403 makes a signing bug loud.
pub(crate) async fn handle(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    // Login is on its own host and is not signed (docs/123.md, web §0.3), but it is called by the same
    // web page, so it gets the same header checks.
    if ctx.ep == Ep::WebLogin {
        if let Err(refused) = check_client(&ctx.shared, req.headers()) {
            return Ok(refused);
        }
        if !ctx.admit(&format!("ip:{}", ctx.peer.ip())) {
            return Ok(web_err(429, MSG_429));
        }
        return crate::personal::sign_in(ctx, req).await;
    }
    let pairs = query_pairs(req.uri());
    if let Err(e) = crate::sign::verify(req.uri().path(), &pairs, ctx.shared.now()) {
        return Ok(match ctx.shared.switches().web_signature_failure {
            WebSignatureFailure::Code => json(
                StatusCode::FORBIDDEN,
                &json!({"code": 403, "message": format!("签名校验失败: {e}")}),
            ),
            WebSignatureFailure::StatusInfo => json(
                StatusCode::OK,
                &json!({"status": 0, "info": MSG_SIGN_STATUS_INFO}),
            ),
        });
    }
    if let Err(refused) = check_client(&ctx.shared, req.headers()) {
        return Ok(refused);
    }
    match ctx.ep {
        Ep::ShareGet | Ep::ShareDownloadInfo => {
            // Anonymous: counted per address.
            if !ctx.admit(&format!("ip:{}", ctx.peer.ip())) {
                return Ok(rate_limited(&ctx.shared, ctx.ep));
            }
            if ctx.ep == Ep::ShareGet {
                Ok(crate::share::list(ctx, &pairs))
            } else {
                crate::share::download_info(ctx, req).await
            }
        }
        _ => {
            // Every other web endpoint belongs to the personal account.
            let owner = match crate::personal::check(ctx, req.headers()) {
                Ok(owner) => owner,
                Err(refused) => return Ok(refused),
            };
            if !ctx.admit(&owner) {
                return Ok(rate_limited(&ctx.shared, ctx.ep));
            }
            use crate::{personal, personal_upload as up, personal_write as write};
            match ctx.ep {
                Ep::WebUserInfo => Ok(personal::user_info(ctx)),
                Ep::WebFileList => Ok(personal::list(ctx, &pairs)),
                Ep::WebDownloadInfo => personal::download_info(ctx, req).await,
                Ep::WebUploadRequest => write::upload_request(ctx, req).await,
                Ep::WebUploadAuth | Ep::WebUploadPartsBatch => up::presign(ctx, req).await,
                Ep::WebUploadComplete => up::complete(ctx, req).await,
                Ep::WebUploadCompleteStatic => up::complete_static(ctx, req).await,
                Ep::WebMove => write::mod_pid(ctx, req).await,
                Ep::WebRename => write::rename(ctx, req).await,
                Ep::WebTrash => write::trash(ctx, req).await,
                Ep::WebDelete => write::delete(ctx, req).await,
                _ => Ok(not_found()),
            }
        }
    }
}

/// The checks 123 makes of the web client on the web API and the login host, as strictly as the
/// Open API checks `Platform`: `platform: web` (else code 1 with the Open API's text), its
/// `app-version` (missing: code 1 `app-version is required`; another value: code 1
/// `123pan forbidden`), and a `Referer` whose origin is the web host, the origin its pages live
/// on (missing or another origin: code 1 `123pan forbidden`). An `Origin`, when sent (a browser
/// leaves it off same-origin GETs), must be that origin too.
pub(crate) fn check_client(sh: &Shared, headers: &HeaderMap) -> Result<(), Resp> {
    if header(headers, "platform") != Some("web") {
        return Err(web_err(1, MSG_PLATFORM));
    }
    match header(headers, "app-version") {
        None | Some("") => return Err(web_err(1, MSG_APP_VERSION)),
        Some(WEB_APP_VERSION) => {}
        Some(_) => return Err(web_err(1, MSG_FORBIDDEN)),
    }
    if !names_web_origin(sh, header(headers, "referer")) {
        return Err(web_err(1, MSG_FORBIDDEN));
    }
    if headers.contains_key("origin") && !names_web_origin(sh, header(headers, "origin")) {
        return Err(web_err(1, MSG_FORBIDDEN));
    }
    Ok(())
}

/// Whether a `Referer` or `Origin` value is a URL on the web host's origin.
pub(crate) fn names_web_origin(sh: &Shared, value: Option<&str>) -> bool {
    let web = url::Url::parse(sh.web_origin()).map(|u| u.origin());
    match (value.and_then(|v| url::Url::parse(v).ok()), web) {
        (Some(v), Ok(web)) => v.origin() == web,
        _ => false,
    }
}

/// A header's trimmed text (`None` when absent or not text).
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Web success envelope (no trace id; HTTP 200, JSON).
pub fn web_ok(data: Value) -> Resp {
    json(
        StatusCode::OK,
        &json!({"code": 0, "message": "ok", "data": data}),
    )
}

/// Web error envelope (marked with its code, for `error_status = mirror`).
pub fn web_err(code: i64, message: &str) -> Resp {
    crate::http::error_code(
        json(
            StatusCode::OK,
            &json!({"code": code, "message": message, "data": null}),
        ),
        code,
    )
}

/// The web API's "too many requests", in the style the `web_rate_limit_style` switch picks
/// (docs/123.md, web §7: HTTP 429, code 429 and worded messages with other codes are all seen).
pub(crate) fn rate_limited(sh: &Shared, ep: Ep) -> Resp {
    match sh.switches().web_rate_limit_style {
        WebRateLimitStyle::Code429 => web_err(429, MSG_429),
        WebRateLimitStyle::Http429 => {
            let mut r = crate::http::text(
                StatusCode::TOO_MANY_REQUESTS,
                "<html><body><h1>429 Too Many Requests</h1></body></html>",
            );
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html"),
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            r
        }
        WebRateLimitStyle::Message => match ep {
            Ep::ShareDownloadInfo | Ep::WebDownloadInfo => web_err(1, MSG_DOWNLOAD_BUSY),
            _ => web_err(CODE_RATE_LIMIT_MIN, MSG_RATE_LIMIT_MIN),
        },
    }
}

/// A rate-limit message seen on download-link calls (docs/123.md, web §7).
pub const MSG_DOWNLOAD_BUSY: &str = "下载操作频繁，请稍后再试";
/// A rate-limit code and message seen elsewhere on the web API (docs/123.md, web §7).
pub const CODE_RATE_LIMIT_MIN: i64 = 100011;
/// Its message.
pub const MSG_RATE_LIMIT_MIN: &str = "rate limit type min";
/// The failed-signature answer of a public capture (docs/123.md, web §7), without a `code`.
pub const MSG_SIGN_STATUS_INFO: &str =
    "签名错误,请检查您的本地时间是否为东八区时间-platform forbidden";

/// A file object sent back (`download_info`, `trash`) whose fields are not the file's: 123 wants
/// the object as listed (docs/123.md, web §7); the real code and text are unknown, this is the
/// emulator's wording.
pub const MSG_STALE_ITEM: &str = "文件信息不匹配,请刷新后重试";

/// The `S3KeyFlag` of an entry: `<uid>-0` for files (the observed shape), empty for folders.
pub fn key_flag(e: &Entry, uid: u64) -> String {
    if e.is_dir {
        String::new()
    } else {
        format!("{uid}-0")
    }
}

/// Whether a file object a client sent back carries the entry's own `Etag`, `S3KeyFlag` and
/// `Size` (keys matched case-insensitively: `download_info` sends `etag`/`s3keyFlag`, `trash`
/// the listed `Etag`/`S3KeyFlag`). A missing or empty field where the entry has a value is a
/// mismatch: 123 locates the stored object by them (docs/123.md, web §7).
pub fn echoes_item(obj: &crate::http::Args, e: &Entry, uid: u64) -> bool {
    let etag = obj
        .str("etag")
        .is_some_and(|v| v.eq_ignore_ascii_case(&e.md5));
    let flag = obj.str("s3keyFlag") == Some(key_flag(e, uid).as_str());
    let size = obj.int("size") == Ok(i64::try_from(e.size).ok());
    etag && flag && size
}

/// A web `InfoList` item (docs/123.md, web §0.4): the eight keys OpenList decodes, plus a few the real
/// API also sends.
pub fn web_item(e: &Entry, uid: u64) -> Value {
    json!({
        "FileId": e.id,
        "FileName": e.name,
        "Type": i32::from(e.is_dir),
        "Size": e.size,
        "Etag": e.md5,
        "S3KeyFlag": key_flag(e, uid),
        "UpdateAt": rfc3339_cst(e.updated),
        "CreateAt": rfc3339_cst(e.created),
        "DownloadUrl": "",
        "ParentFileId": e.parent,
        "Status": 0,
        "Category": 0,
        "ContentType": "0",
        "Hidden": false,
        "StarredStatus": 0,
    })
}
