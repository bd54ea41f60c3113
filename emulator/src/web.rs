//! The web API host (`/b/api/…`): request-signature gate, its envelope and file object, and the
//! router. Share links live in `share.rs`, the personal account (and its unsigned login on the
//! login host) in `personal.rs`, its tree changes in `personal_write.rs` and its uploads in
//! `personal_upload.rs` (parts go to the `/s3/` host, `s3.rs`).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::clock::rfc3339_cst;
use crate::http::{json, not_found, query_pairs, HandlerResult, Resp};
use crate::server::{Ctx, Ep};
use crate::state::Entry;

/// Route a signed web request. A missing or bad signature gets HTTP 403 with a JSON body: the
/// real server's answer is unconfirmed (spec web §6), and 403 makes a signing bug loud.
pub(crate) async fn handle(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    // Login is on its own host and is not signed (spec web §0.3).
    if ctx.ep == Ep::WebLogin {
        return crate::personal::sign_in(ctx, req).await;
    }
    let pairs = query_pairs(req.uri());
    if let Err(e) = crate::sign::verify(req.uri().path(), &pairs, ctx.shared.now()) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            &json!({"code": 403, "message": format!("签名校验失败: {e}")}),
        ));
    }
    match ctx.ep {
        Ep::ShareGet => Ok(crate::share::list(ctx, &pairs)),
        Ep::ShareDownloadInfo => crate::share::download_info(ctx, req).await,
        _ => {
            // Every other web endpoint belongs to the personal account.
            if let Err(refused) = crate::personal::check(ctx, req.headers()) {
                return Ok(refused);
            }
            use crate::{personal, personal_upload as up, personal_write as write};
            match ctx.ep {
                Ep::WebUserInfo => Ok(personal::user_info(ctx)),
                Ep::WebFileList => Ok(personal::list(ctx, &pairs)),
                Ep::WebDownloadInfo => personal::download_info(ctx, req).await,
                Ep::WebUploadRequest => write::upload_request(ctx, req).await,
                Ep::WebUploadAuth | Ep::WebUploadPartsBatch => up::presign(ctx, req).await,
                Ep::WebUploadComplete => up::complete(ctx, req).await,
                Ep::WebMove => write::mod_pid(ctx, req).await,
                Ep::WebRename => write::rename(ctx, req).await,
                Ep::WebTrash => write::trash(ctx, req).await,
                _ => Ok(not_found()),
            }
        }
    }
}

/// Web success envelope (no trace id; HTTP 200, JSON).
pub fn web_ok(data: Value) -> Resp {
    json(
        StatusCode::OK,
        &json!({"code": 0, "message": "ok", "data": data}),
    )
}

/// Web error envelope.
pub fn web_err(code: i64, message: &str) -> Resp {
    json(
        StatusCode::OK,
        &json!({"code": code, "message": message, "data": null}),
    )
}

/// A web `InfoList` item (spec web §0.4): the eight keys OpenList decodes, plus a few the real
/// API also sends.
pub fn web_item(e: &Entry, uid: u64) -> Value {
    json!({
        "FileId": e.id,
        "FileName": e.name,
        "Type": i32::from(e.is_dir),
        "Size": e.size,
        "Etag": e.md5,
        "S3KeyFlag": if e.is_dir { String::new() } else { format!("{uid}-0") },
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
