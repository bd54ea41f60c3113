//! The personal account's tree changes on the web API (docs/123.md, web §1.4): make folder
//! (`upload_request` with `type: 1`), move (`mod_pid`), rename (`rename`), trash (`trash`) and
//! delete from the recycle bin (`delete`).
//! `upload_request` with `type: 0` is a file upload and goes on in `personal_upload.rs`.
//!
//! Move, rename and trash use the same tree operations as the Open API (`Tree::move_entries`,
//! `Tree::rename`, `Tree::trash_all`), so both APIs refuse the same things with the same codes
//! and messages. Ids in bodies may be numbers or numeric strings (the driver mixes both).

use http::Request;
use hyper::body::Incoming;
use serde_json::Value;

use crate::emulator::lock;
use crate::http::{Args, HandlerResult, Resp};
use crate::names;
use crate::open_api::{read_args, tree_refused, CODE_NOT_FOUND, MAX_BATCH, MSG_NOT_FOUND};
use crate::server::Ctx;
use crate::web::{echoes_item, web_err, web_item, web_ok, MSG_STALE_ITEM};

/// `upload_request` for a folder whose name a live *file* (or a trashed item, under
/// `trashed_blocks_name`) holds. 123's real text is unknown; this is the emulator's wording.
pub const MSG_MKDIR_FILE_CLASH: &str = "该目录下已经有同名文件,无法创建文件夹";
/// `trash` with `operation: false` (restore from the recycle bin), which is not emulated.
pub const MSG_NO_RESTORE: &str = "暂不支持从回收站还原";

/// `POST /b/api/file/upload_request`: `type` 1 makes a folder, `type` 0 starts a file upload.
pub async fn upload_request(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    Ok(match args.int("type") {
        Ok(Some(1)) => mkdir(ctx, &args),
        Ok(Some(0)) => crate::personal_upload::request(ctx, &args),
        _ => web_err(1, "type参数错误"),
    })
}

/// A folder id argument (number or numeric string); absent means the root. A negative id
/// names nothing, so it becomes an id that is never found.
pub(crate) fn id_arg(args: &Args, key: &str) -> Result<u64, Resp> {
    match args.int(key) {
        Ok(v) => Ok(u64::try_from(v.unwrap_or(0)).unwrap_or(u64::MAX)),
        Err(()) => Err(web_err(1, &format!("{key}参数错误"))),
    }
}

/// Make folder (`type: 1`). An existing live folder of that name is the answer: 123's behaviour
/// here is unconfirmed, and answering with the folder keeps "make sure it exists" idempotent.
/// Any other holder of the name is refused with code 1 `MSG_MKDIR_FILE_CLASH`.
fn mkdir(ctx: &Ctx, args: &Args) -> Resp {
    let parent = match id_arg(args, "parentFileId") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let name = args.str("fileName").unwrap_or_default();
    if let Err(e) = names::validate(name) {
        return web_err(1, &e.to_string());
    }
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let mut fs = lock(&sh.fs);
    if let Err(e) = fs.tree.live_dir(parent) {
        return tree_refused(&e).web();
    }
    let id = match fs.tree.conflict(parent, name, policy, None) {
        Some(c) if fs.tree.is_live(c) && fs.tree.get(c).is_some_and(|e| e.is_dir) => c,
        Some(_) => return web_err(1, MSG_MKDIR_FILE_CLASH),
        None => fs.tree.insert(parent, name, None, now),
    };
    match fs.tree.get(id) {
        Some(e) => web_ok(crate::personal_upload::done_reply(
            id,
            web_item(e, sh.uid),
            false,
        )),
        None => web_err(CODE_NOT_FOUND, MSG_NOT_FOUND),
    }
}

/// The `FileId`s of a list of file objects (`[{"FileId": …}, …]`): 1 to 100 of them.
fn file_ids(args: &Args, key: &str) -> Result<Vec<u64>, Resp> {
    let bad = || web_err(1, &format!("{key}参数错误"));
    let Some(Value::Array(items)) = args.get(key) else {
        return Err(bad());
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(web_err(1, &format!("{key}数量需在1到{MAX_BATCH}之间")));
    }
    items
        .iter()
        .map(
            |item| match Args::from_value(item).map(|o| o.int("FileId")) {
                Some(Ok(Some(id))) => Ok(u64::try_from(id).unwrap_or(u64::MAX)),
                _ => Err(bad()),
            },
        )
        .collect()
}

/// `POST /b/api/file/mod_pid`: `{"fileIdList":[{"FileId":…}],"parentFileId":…}`. All or
/// nothing, as the Open API's move.
pub async fn mod_pid(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let ids = match file_ids(&args, "fileIdList") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let target = match id_arg(&args, "parentFileId") {
        Ok(t) => t,
        Err(r) => return Ok(r),
    };
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let moved = lock(&sh.fs).tree.move_entries(&ids, target, policy, now);
    Ok(match moved {
        Ok(()) => web_ok(Value::Null),
        Err(e) => tree_refused(&e).web(),
    })
}

/// `POST /b/api/file/rename`: `{"driveId":0,"fileId":…,"fileName":…}`, as the Open API's rename.
pub async fn rename(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let Ok(Some(id)) = args.int("fileId") else {
        return Ok(web_err(1, "fileId参数错误"));
    };
    let id = u64::try_from(id).unwrap_or(u64::MAX);
    let name = args.str("fileName").unwrap_or_default();
    let sh = &ctx.shared;
    let policy = sh.name_policy();
    let now = sh.now();
    let renamed = lock(&sh.fs).tree.rename(id, name, policy, now);
    Ok(match renamed {
        Ok(()) => web_ok(Value::Null),
        Err(e) => tree_refused(&e).web(),
    })
}

/// `POST /b/api/file/trash`: `{"driveId":0,"operation":true,"fileTrashInfoList":[<items>]}`.
/// Items are file objects as listed: their `Etag`, `S3KeyFlag` and `Size` must be the entry's
/// (else code 1 `MSG_STALE_ITEM`, nothing trashed; docs/123.md, web §7). Trashing a trashed item is
/// fine; an unknown id refuses the whole call (5066), as on the Open API.
pub async fn trash(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    if args.bool("operation") == Some(false) {
        return Ok(web_err(1, MSG_NO_RESTORE));
    }
    let ids = match file_ids(&args, "fileTrashInfoList") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let now = ctx.shared.now();
    let mut fs = lock(&ctx.shared.fs);
    if let Some(Value::Array(items)) = args.get("fileTrashInfoList") {
        let stale = items.iter().zip(&ids).any(|(item, id)| {
            let entry = fs.tree.get(*id);
            match (Args::from_value(item), entry) {
                (Some(obj), Some(e)) => !echoes_item(&obj, e, ctx.shared.uid),
                // An unknown id: refused below as on the Open API.
                (_, None) => false,
                (None, Some(_)) => true,
            }
        });
        if stale {
            return Ok(web_err(1, MSG_STALE_ITEM));
        }
    }
    let trashed = fs.tree.trash_all(&ids, now);
    Ok(match trashed {
        Ok(()) => web_ok(Value::Null),
        Err(e) => tree_refused(&e).web(),
    })
}

/// `POST /b/api/file/delete` (the recycle bin's "delete for good"):
/// `{"driveId":0,"fileIdList":[{"FileId":…}],"event":"recycleDelete",…}`. Only items already in
/// the recycle bin, all or nothing, as the Open API's `file/delete` (spec open-api §3.4).
pub async fn delete(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let ids = match file_ids(&args, "fileIdList") {
        Ok(i) => i,
        Err(r) => return Ok(r),
    };
    let mut fs = lock(&ctx.shared.fs);
    for id in &ids {
        match fs.tree.get(*id) {
            Some(e) if e.id != crate::state::ROOT && e.trashed => {}
            Some(e) if e.id != crate::state::ROOT => {
                return Ok(web_err(1, crate::open_api::MSG_NOT_IN_TRASH))
            }
            _ => return Ok(web_err(CODE_NOT_FOUND, MSG_NOT_FOUND)),
        }
    }
    for id in ids {
        fs.tree.remove(id);
    }
    Ok(web_ok(Value::Null))
}
