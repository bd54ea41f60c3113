//! Open API handlers for tokens, account info, listing, links and tree mutations
//! (docs/123.md, open §2, §3, §5). Uploads are in `upload.rs`.
//!
//! Messages docs/123.md quotes are used verbatim; where 123's message is unknown the emulator's own
//! wording is used with code 1 (documented in the README).

use http::Request;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::clock::{open_api_time, rfc3339_cst};
use crate::emulator::{lock, Shared};
use crate::http::{err, ok, query_i64, query_pairs, read_body, Args, HandlerResult, Refused, Resp};
use crate::names;
use crate::server::{Ctx, MSG_429};
use crate::state::{Entry, TreeError, ROOT};

/// 123's "file does not exist" code and message.
pub const CODE_NOT_FOUND: i64 = 5066;
/// Message of code 5066.
pub const MSG_NOT_FOUND: &str = "文件不存在";
/// mkdir on a taken name (docs/123.md, open §1, observed).
pub const MSG_DIR_EXISTS: &str = "该目录下已经有同名文件夹,无法进行创建";
/// A name taken in the target folder (rename, move, create without `duplicate`).
pub const MSG_NAME_TAKEN: &str = "该目录下已经有同名文件";
/// Daily download traffic used up (docs/123.md, open §1).
pub const CODE_TRAFFIC: i64 = 5113;
/// Largest JSON body accepted.
const JSON_LIMIT: usize = 1 << 20;
/// Most ids per batch call (move, trash, delete).
pub(crate) const MAX_BATCH: usize = 100;

/// Read a JSON object body, or the envelope error to send instead.
pub(crate) async fn read_args(req: Request<Incoming>) -> Result<Args, Resp> {
    let body = read_body(req.into_body(), JSON_LIMIT)
        .await
        .map_err(|e| err(1, &e.to_string()))?;
    Args::parse(&body).ok_or_else(|| err(1, "请求参数格式错误"))
}

/// A tree failure as 123 answers it: 5066 for a missing item, code 1 with the reason otherwise.
pub(crate) fn tree_refused(e: &TreeError) -> Refused {
    match e {
        TreeError::NotFound => Refused::new(CODE_NOT_FOUND, MSG_NOT_FOUND),
        other => Refused::new(1, other.to_string()),
    }
}

/// An envelope error for a tree failure.
pub(crate) fn tree_err(e: &TreeError) -> Resp {
    tree_refused(e).open()
}

/// Whether today's CDN traffic has reached the `daily_traffic_cap` switch (then `download_info`
/// answers 5113, on the Open API and the personal web API alike).
pub(crate) fn over_traffic_cap(sh: &Shared) -> bool {
    match sh.switches().daily_traffic_cap {
        Some(cap) => {
            let day = crate::clock::cst_day(sh.now());
            lock(&sh.counters).traffic_on(day) >= cap
        }
        None => false,
    }
}

/// `POST /api/v1/access_token`.
pub async fn access_token(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let id = args.str("clientID").unwrap_or_default().to_string();
    let secret = args.str("clientSecret").unwrap_or_default();
    if !ctx.admit(&id) {
        return Ok(err(429, MSG_429));
    }
    let sh = &ctx.shared;
    if id != sh.client_id || secret != sh.client_secret {
        return Ok(err(1, "clientID或clientSecret错误"));
    }
    let ttl = i64::try_from(sh.switches().token_ttl.as_secs()).unwrap_or(i64::MAX);
    let now = sh.now();
    let (token, expires) = lock(&sh.tokens).issue(&id, now, ttl);
    Ok(ok(
        json!({"accessToken": token, "expiredAt": rfc3339_cst(expires)}),
    ))
}

/// `GET /api/v1/user/info`.
pub fn user_info(ctx: &Ctx) -> Resp {
    let sh = &ctx.shared;
    let used = lock(&sh.fs).tree.space_used();
    let now = sh.now();
    ok(json!({
        "uid": sh.uid,
        "nickname": "emulator",
        "headImage": "",
        "passport": "",
        "mail": "",
        "spaceUsed": used,
        "spacePermanent": 2_199_023_255_552u64,
        "spaceTemp": 0,
        "spaceTempExpr": 0,
        "vip": false,
        "directTraffic": 1_099_511_627_776u64,
        "isHideUID": false,
        "httpsCount": 0,
        "vipInfo": null,
        "developerInfo": {
            "startTime": open_api_time(now - 86400),
            "endTime": open_api_time(now + 365 * 86400),
        },
    }))
}

/// 123's `category`: 1 audio, 2 video, 3 image, 0 anything else.
fn category(name: &str) -> i64 {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp3" | "flac" | "wav" | "aac" | "m4a" | "ogg" | "ape" | "wma") => 1,
        Some("mp4" | "mkv" | "avi" | "mov" | "wmv" | "flv" | "ts" | "webm" | "rmvb" | "m2ts") => 2,
        Some("jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" | "heic" | "tif" | "tiff") => 3,
        _ => 0,
    }
}

/// A v2 list item, fields as docs/123.md, open §3 lists them.
pub(crate) fn open_item(e: &Entry, uid: u64) -> Value {
    json!({
        "fileId": e.id,
        "filename": e.name,
        "parentFileId": e.parent,
        "type": i32::from(e.is_dir),
        "size": e.size,
        "etag": e.md5,
        "status": 0,
        "category": if e.is_dir { 0 } else { category(&e.name) },
        "trashed": i32::from(e.trashed),
        "punishFlag": 0,
        "s3KeyFlag": if e.is_dir { String::new() } else { format!("{uid}-0") },
        "storageNode": if e.is_dir { "m0" } else { "m16" },
        "createAt": open_api_time(e.created),
        "updateAt": open_api_time(e.updated),
    })
}

/// `GET /api/v2/file/list`: cursor paging by fileId (docs/123.md, open §3).
pub fn file_list(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    let q = query_pairs(req.uri());
    let Ok(parent) = query_i64(&q, "parentFileId") else {
        return err(1, "parentFileId参数错误");
    };
    let Ok(limit) = query_i64(&q, "limit") else {
        return err(1, "limit参数错误");
    };
    let Ok(last) = query_i64(&q, "lastFileId") else {
        return err(1, "lastFileId参数错误");
    };
    let limit = match limit {
        None | Some(0) => 100,
        Some(l) if (1..=100).contains(&l) => l as usize,
        Some(_) => return err(1, "limit参数错误,最大为100"),
    };
    let last = last.unwrap_or(0);
    let search = crate::http::query(&q, "searchData")
        .unwrap_or("")
        .trim()
        .to_string();
    let exact = crate::http::query(&q, "searchMode").map(str::trim) == Some("1");

    let sh = &ctx.shared;
    let fs = lock(&sh.fs);
    let candidates: Vec<&Entry> = if !search.is_empty() {
        let needle = search.to_lowercase();
        let mut v: Vec<&Entry> = fs
            .tree
            .all()
            .filter(|e| {
                if exact {
                    e.name == search
                } else {
                    e.name.to_lowercase().contains(&needle)
                }
            })
            .collect();
        v.sort_by_key(|e| e.id);
        v
    } else {
        match u64::try_from(parent.unwrap_or(0)) {
            Ok(p) => fs.tree.children(p).collect(),
            Err(_) => Vec::new(),
        }
    };
    // A negative cursor (e.g. a client echoing -1) means "past the end": nothing more.
    if last < 0 {
        return ok(json!({"lastFileId": -1, "fileList": []}));
    }
    let before = candidates
        .iter()
        .take_while(|e| e.id as i64 <= last)
        .count();
    let page = 1 + (before / limit) as u64;
    if lock(&sh.faults).take_fail_page(ctx.ep.key(), page) {
        return err(1, "服务器内部错误,请稍后重试");
    }
    let rest = &candidates[before..];
    let items: Vec<Value> = rest
        .iter()
        .take(limit)
        .map(|e| open_item(e, sh.uid))
        .collect();
    let next = if rest.len() > limit {
        rest[limit - 1].id as i64
    } else {
        -1
    };
    ok(json!({"lastFileId": next, "fileList": items}))
}

/// A live file by id, or the 5066 envelope.
fn live_file(ctx: &Ctx, id: Option<i64>) -> Result<Entry, Resp> {
    let fs = lock(&ctx.shared.fs);
    let id = id.and_then(|i| u64::try_from(i).ok()).unwrap_or(ROOT);
    match fs.tree.get(id) {
        Some(e) if !e.is_dir && fs.tree.is_live(id) => Ok(e.clone()),
        _ => Err(err(CODE_NOT_FOUND, MSG_NOT_FOUND)),
    }
}

/// `GET /api/v1/file/download_info?fileId=`.
pub fn download_info(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    let q = query_pairs(req.uri());
    let Ok(id) = query_i64(&q, "fileId") else {
        return err(1, "fileId参数错误");
    };
    let e = match live_file(ctx, id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let sh = &ctx.shared;
    let sw = sh.switches();
    // docs/123.md, open §11: a file just uploaded may still be "verifying".
    if crate::upload::take_verifying(sh, e.id) {
        return err(crate::upload::CODE_VERIFYING, crate::upload::MSG_VERIFYING);
    }
    if over_traffic_cap(sh) {
        return err(CODE_TRAFFIC, sw.traffic_message.text());
    }
    let url = crate::cdn::mint(
        sh,
        &crate::cdn::CdnLink {
            bucket: "123-61",
            md5: e.md5.clone(),
            size: e.size,
            filename: e.name.clone(),
            ip: ctx.peer.ip(),
            referer: false,
            expires: sh
                .now()
                .saturating_add(i64::try_from(sw.cdn_link_ttl.as_secs()).unwrap_or(i64::MAX)),
        },
    );
    ok(json!({"downloadUrl": url}))
}

/// `GET /api/v1/direct-link/url?fileID=`.
pub fn direct_link_url(ctx: &Ctx, req: &Request<Incoming>) -> Resp {
    let q = query_pairs(req.uri());
    let Ok(id) = query_i64(&q, "fileID") else {
        return err(1, "fileID参数错误");
    };
    let e = match live_file(ctx, id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    // docs/123.md, open §11: a file just uploaded may still be "verifying".
    if crate::upload::take_verifying(&ctx.shared, e.id) {
        return err(crate::upload::CODE_VERIFYING, crate::upload::MSG_VERIFYING);
    }
    match crate::direct::url_for(&ctx.shared, e.id) {
        Some(url) => ok(json!({"url": url})),
        None => err(1, "该文件不在已启用直链的文件夹内"),
    }
}

/// `POST /upload/v1/file/mkdir` (`name`, `parentID`) → `dirID`.
pub async fn mkdir(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let name = args.str("name").unwrap_or_default().to_string();
    let Ok(parent) = args.int("parentID") else {
        return Ok(err(1, "parentID参数错误"));
    };
    if let Err(e) = names::validate(&name) {
        return Ok(err(1, &e.to_string()));
    }
    let parent = u64::try_from(parent.unwrap_or(0)).unwrap_or(u64::MAX);
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let mut fs = lock(&sh.fs);
    if let Err(e) = fs.tree.live_dir(parent) {
        return Ok(tree_err(&e));
    }
    if fs.tree.conflict(parent, &name, policy, None).is_some() {
        return Ok(err(1, MSG_DIR_EXISTS));
    }
    let id = fs.tree.insert(parent, &name, None, now);
    Ok(ok(json!({"dirID": id})))
}

/// Ids of a batch call: present, 1..=100 of them, all non-negative.
fn batch_ids(args: &Args, key: &str) -> Result<Vec<u64>, Resp> {
    let ids = match args.ids(key) {
        Ok(Some(ids)) => ids,
        _ => return Err(err(1, &format!("{key}参数错误"))),
    };
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(err(1, &format!("{key}数量需在1到{MAX_BATCH}之间")));
    }
    ids.into_iter()
        .map(|i| u64::try_from(i).map_err(|_| err(CODE_NOT_FOUND, MSG_NOT_FOUND)))
        .collect()
}

/// `POST /api/v1/file/move` (`fileIDs` ≤ 100, `toParentFileID`).
pub async fn move_files(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let ids = match batch_ids(&args, "fileIDs") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let Ok(target) = args.int("toParentFileID") else {
        return Ok(err(1, "toParentFileID参数错误"));
    };
    let target = u64::try_from(target.unwrap_or(0)).unwrap_or(u64::MAX);
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let moved = lock(&sh.fs).tree.move_entries(&ids, target, policy, now);
    Ok(match moved {
        Ok(()) => ok(Value::Null),
        Err(e) => tree_err(&e),
    })
}

/// `PUT /api/v1/file/name` (`fileId`, `fileName`).
pub async fn rename(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let Ok(id) = args.int("fileId") else {
        return Ok(err(1, "fileId参数错误"));
    };
    let name = args.str("fileName").unwrap_or_default().to_string();
    let id = id.and_then(|i| u64::try_from(i).ok()).unwrap_or(ROOT);
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let renamed = lock(&sh.fs).tree.rename(id, &name, policy, now);
    Ok(match renamed {
        Ok(()) => ok(Value::Null),
        Err(e) => tree_err(&e),
    })
}

/// `POST /api/v1/file/trash` (`fileIDs` ≤ 100): into the recycle bin.
pub async fn trash(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let ids = match batch_ids(&args, "fileIDs") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let now = ctx.shared.now();
    let trashed = lock(&ctx.shared.fs).tree.trash_all(&ids, now);
    Ok(match trashed {
        Ok(()) => ok(Value::Null),
        Err(e) => tree_err(&e),
    })
}

/// `file/delete` of an item not in the recycle bin (the real text is unpublished).
pub const MSG_NOT_IN_TRASH: &str = "文件不在回收站中,请先放入回收站";

/// `POST /api/v1/file/delete` (`fileIDs` ≤ 100): for good, only items already trashed.
pub async fn delete(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let ids = match batch_ids(&args, "fileIDs") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let mut fs = lock(&ctx.shared.fs);
    for id in &ids {
        match fs.tree.get(*id) {
            Some(e) if e.id != ROOT && e.trashed => {}
            Some(e) if e.id != ROOT => return Ok(err(1, MSG_NOT_IN_TRASH)),
            _ => return Ok(err(CODE_NOT_FOUND, MSG_NOT_FOUND)),
        }
    }
    for id in ids {
        fs.tree.remove(id);
    }
    Ok(ok(Value::Null))
}
