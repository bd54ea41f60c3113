//! Personal (web) file uploads, the presigned-part flow of docs/123.md, web §1.4:
//! `upload_request` (`type: 0`) → instant reuse, or an upload with `Bucket`/`Key`/`UploadId` and
//! *empty* S3 credentials; `s3_upload_object/auth` and `s3_repare_upload_parts_batch` hand out
//! presigned part URLs (the `/s3/` host, `s3.rs`); `upload_complete/v2` checks the parts,
//! assembles them and creates the file under the `FileId` announced at `upload_request`.
//!
//! The start (name rules, size limit, `duplicate`, reuse, `overwrite_at`, `zero_byte_upload`)
//! and the landing in the tree are the Open API's (`upload::begin`, `upload::finish`).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use http::Request;
use hyper::body::Incoming;
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::config::UploadCredentials;
use crate::emulator::{lock, Shared};
use crate::hosts::Host;
use crate::http::{Args, HandlerResult, Resp};
use crate::open_api::read_args;
use crate::server::Ctx;
use crate::sigv4::Credentials;
use crate::upload::{begin, finish, new_preupload_id, Begun, NewUpload, Target};
use crate::web::{web_err, web_item, web_ok};

/// Part size of the presigned-part flow. The driver always cuts 16 MiB parts and nothing in the
/// protocol tells it otherwise, so this is a constant (not the Open API's `slice_size` switch).
pub const WEB_PART_SIZE: u64 = 16 << 20;
/// Most part URLs one presign call hands out (the driver's batch). Asking for more is refused
/// with code 1: the emulator's choice, 123's own limit is unknown.
pub const MAX_PRESIGN_BATCH: u32 = 10;
/// `Bucket` of every upload (cosmetic).
const BUCKET: &str = "123-upload";
/// `StorageNode` of every upload (echoed by clients, not checked).
const STORAGE_NODE: &str = "m16";

/// Unknown `uploadId`, or one whose complete failed its MD5 check.
pub const MSG_NO_UPLOAD: &str = "上传任务不存在或已过期";
/// `bucket`/`key` (or `fileId`) that do not belong to the `uploadId`.
pub const MSG_WRONG_UPLOAD: &str = "上传参数与上传任务不符";
/// A presign range outside `1..=parts` or empty.
pub const MSG_PART_RANGE: &str = "分片序号超出范围";
/// More than `MAX_PRESIGN_BATCH` parts in one presign call.
pub const MSG_BATCH: &str = "单次最多获取10个分片的上传地址";
/// `upload_complete/v2` again after it succeeded.
pub const MSG_ALREADY_DONE: &str = "该文件已上传完成,请勿重复提交";
/// `fileSize` differs from the `size` of `upload_request`.
pub const MSG_SIZE_MISMATCH: &str = "fileSize与上传文件大小不符";
/// `isMultipart` says the opposite of the part count.
pub const MSG_MULTIPART: &str = "isMultipart与分片数不符";
/// A part is missing (followed by its number); the upload stays open.
pub const MSG_PART_MISSING: &str = "分片未全部上传: 缺少分片";
/// A part other than the last is not 16 MiB (followed by its number); the upload stays open.
pub const MSG_PART_SIZE: &str = "分片大小错误: 除最后一片外每片须为16MiB, 分片";
/// The parts' sizes do not add up to the file size; the upload stays open.
pub const MSG_PARTS_TOTAL: &str = "分片总大小与文件大小不符";
/// The parts could not be joined (emulator disk trouble); the upload is over.
pub const MSG_ASSEMBLE: &str = "文件合并失败";
/// `upload_complete` of the static flow before the S3 object is whole (emulator wording).
pub const MSG_NO_OBJECT: &str = "文件尚未上传到存储";
/// The assembled content's MD5 is not the `etag` of `upload_request`; the upload is over.
pub const MSG_MD5_MISMATCH: &str = "文件MD5校验失败,请重新上传";

/// One received part, stored in its own file until complete assembles them.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub size: u64,
    pub path: PathBuf,
    /// Lowercase hex MD5 (the part's `ETag`).
    pub md5: String,
}

/// One upload waiting for its parts.
#[derive(Debug)]
pub(crate) struct WebUpload {
    pub target: Target,
    /// The `FileId` announced by `upload_request`, reserved in the tree.
    pub file_id: u64,
    pub bucket: String,
    pub key: String,
    /// Received parts by number (a part sent again replaces the older one).
    pub parts: BTreeMap<u32, Part>,
    /// The static S3 credentials handed out for it (switch `upload_credentials = static`).
    pub creds: Option<Credentials>,
    /// Where the static flow's S3 object stands.
    pub object: StaticObject,
}

/// The S3 object of a static-credential upload (docs/123.md, web §1.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum StaticObject {
    /// Nothing sent yet.
    #[default]
    None,
    /// One `PutObject`: the whole object is part 1.
    Put,
    /// A multipart upload under this S3 upload id, parts arriving.
    Multipart(String),
    /// That multipart upload completed.
    Completed(String),
}

impl WebUpload {
    /// `ceil(size / 16 MiB)`, at least 1 (an empty file is one empty part), as the driver counts.
    pub fn part_count(&self) -> u32 {
        u32::try_from(self.target.size.div_ceil(WEB_PART_SIZE).max(1)).unwrap_or(u32::MAX)
    }

    /// The static flow's object is whole: parts 1..=k with no gap (any sizes S3 allows) adding
    /// up to the file's size, after a `PutObject` or a completed multipart upload.
    fn check_static_object(&self) -> Result<(), String> {
        if !matches!(self.object, StaticObject::Put | StaticObject::Completed(_)) {
            return Err(MSG_NO_OBJECT.to_string());
        }
        let k = u32::try_from(self.parts.len()).unwrap_or(u32::MAX);
        if let Some(missing) = (1..=k).find(|n| !self.parts.contains_key(n)) {
            return Err(format!("{MSG_PART_MISSING}{missing}"));
        }
        let total: u64 = self.parts.values().map(|p| p.size).sum();
        if total != self.target.size {
            return Err(MSG_PARTS_TOTAL.to_string());
        }
        Ok(())
    }

    /// Check that the parts are exactly 1..=n, every one but the last `WEB_PART_SIZE` bytes and
    /// all together the file's size; `Err` is the refusal message.
    fn check_parts(&self) -> Result<(), String> {
        let n = self.part_count();
        if let Some(missing) = (1..=n).find(|k| !self.parts.contains_key(k)) {
            return Err(format!("{MSG_PART_MISSING}{missing}"));
        }
        if let Some((k, _)) = self
            .parts
            .iter()
            .find(|(k, p)| **k < n && p.size != WEB_PART_SIZE)
        {
            return Err(format!("{MSG_PART_SIZE}{k}"));
        }
        let total: u64 = self.parts.values().map(|p| p.size).sum();
        if total != self.target.size {
            return Err(MSG_PARTS_TOTAL.to_string());
        }
        Ok(())
    }
}

/// Open web uploads by `uploadId`, and finished ones (so a second complete can be refused).
#[derive(Debug, Default)]
pub(crate) struct WebUploads {
    pub open: HashMap<String, WebUpload>,
    pub finished: HashMap<String, u64>,
}

/// The `upload_request` reply for something that exists now (instant upload, or a folder):
/// the driver's keys, S3 ones empty, plus `Info` (the item as listed).
pub(crate) fn done_reply(id: u64, info: Value, reuse: bool) -> Value {
    json!({
        "AccessKeyId": "", "SecretAccessKey": "", "SessionToken": "",
        "Bucket": "", "Key": "", "UploadId": "", "StorageNode": "", "EndPoint": "",
        "FileId": id, "Reuse": reuse, "Info": info,
    })
}

/// `upload_request` with `type: 0`. `duplicate` 2 = overwrite, 1 = keep both (`name(1).ext`),
/// 0 or absent = "default" (docs/123.md, web §1.4), which nobody has pinned down: it follows the
/// `create_on_taken_name` switch, as the Open API's `create` does.
pub(crate) fn request(ctx: &Ctx, args: &Args) -> Resp {
    let sh = &ctx.shared;
    let parent = match crate::personal_write::id_arg(args, "parentFileId") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Ok(Some(size)) = args.int("size") else {
        return web_err(1, "size参数错误");
    };
    let Ok(size) = u64::try_from(size) else {
        return web_err(1, "size参数错误");
    };
    let duplicate = match args.int("duplicate") {
        Ok(Some(d @ (1 | 2))) => d,
        Ok(None | Some(0)) => crate::upload::effective_duplicate(sh, 0),
        _ => return web_err(1, "duplicate参数错误"),
    };
    let up = NewUpload {
        parent,
        dirs: Vec::new(),
        name: args.str("fileName").unwrap_or_default(),
        etag: args.str("etag").unwrap_or_default(),
        size,
        duplicate,
        instant: true,
    };
    let target = match begin(sh, &up) {
        Ok(Begun::Reused(id)) => {
            let fs = lock(&sh.fs);
            let info = fs.tree.get(id).map_or(Value::Null, |e| web_item(e, sh.uid));
            return web_ok(done_reply(id, info, true));
        }
        Ok(Begun::Fresh(t)) => t,
        Err(r) => return r.web(),
    };
    let file_id = lock(&sh.fs).tree.reserve_id();
    let upload_id = new_preupload_id();
    let key = format!("{}-0/{:032x}", sh.uid, rand::thread_rng().gen::<u128>());
    // docs/123.md, web §1.4: with static credentials the client signs S3 requests itself.
    let creds = (sh.switches().upload_credentials == UploadCredentials::Static).then(|| {
        let mut rng = rand::thread_rng();
        Credentials {
            access_key_id: format!("AKID{:016X}", rng.gen::<u64>()),
            secret_access_key: format!("{:040x}", rng.gen::<u128>()),
            session_token: format!("{:064x}", rng.gen::<u128>()),
        }
    });
    let (ak, sk, token) = creds.as_ref().map_or(("", "", ""), |c| {
        (
            c.access_key_id.as_str(),
            c.secret_access_key.as_str(),
            c.session_token.as_str(),
        )
    });
    let reply = json!({
        "AccessKeyId": ak, "SecretAccessKey": sk, "SessionToken": token,
        "Bucket": BUCKET, "Key": key, "UploadId": upload_id,
        "StorageNode": STORAGE_NODE, "EndPoint": format!("{}/s3", sh.url(Host::S3)),
        "FileId": file_id, "Reuse": false,
    });
    lock(&sh.web_uploads).open.insert(
        upload_id.clone(),
        WebUpload {
            target,
            file_id,
            bucket: BUCKET.to_string(),
            key,
            parts: BTreeMap::new(),
            creds,
            object: StaticObject::None,
        },
    );
    web_ok(reply)
}

/// The open upload named by `uploadId`, `bucket` and `key` of a body, or the refusal.
fn named<'a>(ups: &'a WebUploads, args: &Args) -> Result<(&'a str, &'a WebUpload), Resp> {
    let id = args.str("uploadId").unwrap_or_default();
    let Some((id, u)) = ups.open.get_key_value(id) else {
        return Err(web_err(1, MSG_NO_UPLOAD));
    };
    if args.str("bucket") != Some(u.bucket.as_str()) || args.str("key") != Some(u.key.as_str()) {
        return Err(web_err(1, MSG_WRONG_UPLOAD));
    }
    Ok((id.as_str(), u))
}

/// `POST /b/api/file/s3_upload_object/auth` and `POST /b/api/file/s3_repare_upload_parts_batch`
/// (same body and answer): `data.presignedUrls` maps part numbers `partNumberStart` ..
/// `partNumberEnd` (exclusive) to presigned `PUT` URLs valid for `presign_ttl`.
pub async fn presign(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = &ctx.shared;
    let (Ok(Some(start)), Ok(Some(end))) = (args.int("partNumberStart"), args.int("partNumberEnd"))
    else {
        return Ok(web_err(1, "partNumberStart/partNumberEnd参数错误"));
    };
    let ttl = i64::try_from(sh.switches().presign_ttl.as_secs()).unwrap_or(i64::MAX);
    let expires = sh.now().saturating_add(ttl);
    let ups = lock(&sh.web_uploads);
    let (upload_id, u) = match named(&ups, &args) {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    if start < 1 || end <= start || end - 1 > i64::from(u.part_count()) {
        return Ok(web_err(1, MSG_PART_RANGE));
    }
    if end - start > i64::from(MAX_PRESIGN_BATCH) {
        return Ok(web_err(1, MSG_BATCH));
    }
    let mut urls = Map::new();
    for part in start..end {
        let part = u32::try_from(part).unwrap_or(u32::MAX);
        let url = crate::s3::presigned_url(sh, &u.bucket, &u.key, part, upload_id, expires);
        urls.insert(part.to_string(), Value::String(url));
    }
    Ok(web_ok(json!({"presignedUrls": urls})))
}

/// `POST /b/api/file/upload_complete/v2`
/// `{"StorageNode","bucket","fileId","fileSize","isMultipart","key","uploadId"}`. Synchronous.
/// Wrong ids or sizes and incomplete parts are refused and the upload stays open; a wrong whole
/// MD5 ends it. On success the file exists under the reserved `FileId`.
pub async fn complete(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = ctx.shared.clone();
    let (upload_id, upload) = {
        let mut ups = lock(&sh.web_uploads);
        let id = args.str("uploadId").unwrap_or_default();
        if ups.finished.contains_key(id) {
            return Ok(web_err(1, MSG_ALREADY_DONE));
        }
        let (upload_id, u) = match named(&ups, &args) {
            Ok((id, u)) => (id.to_string(), u),
            Err(r) => return Ok(r),
        };
        let file_id = args.int("fileId").ok().flatten();
        if file_id.and_then(|i| u64::try_from(i).ok()) != Some(u.file_id) {
            return Ok(web_err(1, MSG_WRONG_UPLOAD));
        }
        let file_size = args.int("fileSize").ok().flatten();
        if file_size.and_then(|s| u64::try_from(s).ok()) != Some(u.target.size) {
            return Ok(web_err(1, MSG_SIZE_MISMATCH));
        }
        if args
            .bool("isMultipart")
            .is_some_and(|m| m != (u.part_count() > 1))
        {
            return Ok(web_err(1, MSG_MULTIPART));
        }
        if let Err(msg) = u.check_parts() {
            return Ok(web_err(1, &msg));
        }
        match ups.open.remove(&upload_id) {
            Some(u) => (upload_id, u),
            None => return Ok(web_err(1, MSG_NO_UPLOAD)),
        }
    };
    Ok(land(&sh, upload_id, upload).await)
}

/// `POST /b/api/file/upload_complete` `{"fileId"}`: the static-credential flow's end (docs/123.md,
/// web §1.4). The upload is found by its `FileId`; its S3 object must be whole (else
/// code 1, and the upload stays open); then it lands as `upload_complete/v2` lands.
pub async fn complete_static(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let sh = ctx.shared.clone();
    let Some(file_id) = args
        .int("fileId")
        .ok()
        .flatten()
        .and_then(|i| u64::try_from(i).ok())
    else {
        return Ok(web_err(1, "fileId参数错误"));
    };
    let (upload_id, upload) = {
        let mut ups = lock(&sh.web_uploads);
        if ups.finished.values().any(|id| *id == file_id) {
            return Ok(web_err(1, MSG_ALREADY_DONE));
        }
        let Some((id, u)) = ups
            .open
            .iter()
            .find(|(_, u)| u.file_id == file_id && u.creds.is_some())
        else {
            return Ok(web_err(1, MSG_NO_UPLOAD));
        };
        if let Err(msg) = u.check_static_object() {
            return Ok(web_err(1, &msg));
        }
        let id = id.clone();
        match ups.open.remove(&id) {
            Some(u) => (id, u),
            None => return Ok(web_err(1, MSG_NO_UPLOAD)),
        }
    };
    Ok(land(&sh, upload_id, upload).await)
}

/// Joins a checked upload's parts, checks the whole MD5 and creates the file under the
/// reserved `FileId` (both completions).
async fn land(sh: &std::sync::Arc<Shared>, upload_id: String, upload: WebUpload) -> Resp {
    let whole = sh.upload_dir.join(format!("{upload_id}.bin"));
    let assembled = {
        let parts: Vec<PathBuf> = upload.parts.values().map(|p| p.path.clone()).collect();
        let whole = whole.clone();
        tokio::task::spawn_blocking(move || assemble(&parts, &whole)).await
    };
    remove_parts(&upload);
    let md5 = match assembled {
        Ok(Ok(m)) => m,
        _ => {
            let _ = std::fs::remove_file(&whole);
            return web_err(1, MSG_ASSEMBLE);
        }
    };
    if md5 != upload.target.md5 {
        let _ = std::fs::remove_file(&whole);
        return web_err(1, MSG_MD5_MISMATCH);
    }
    match finish(sh, &upload.target, &whole, Some(upload.file_id)) {
        Ok(id) => {
            lock(&sh.web_uploads).finished.insert(upload_id, id);
            let info = lock(&sh.fs)
                .tree
                .get(id)
                .map_or(Value::Null, |e| web_item(e, sh.uid));
            web_ok(json!({"FileId": id, "Info": info}))
        }
        Err(r) => {
            let _ = std::fs::remove_file(&whole);
            r.web()
        }
    }
}

/// Concatenate part files into `whole`, returning the lowercase hex MD5 of the result.
fn assemble(parts: &[PathBuf], whole: &Path) -> std::io::Result<String> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(whole)?);
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in parts {
        let mut f = std::fs::File::open(p)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
    }
    out.flush()?;
    Ok(crate::auth_key::hex(&h.finalize()))
}

/// Delete the part files of an upload that is over.
fn remove_parts(u: &WebUpload) {
    for p in u.parts.values() {
        let _ = std::fs::remove_file(&p.path);
    }
}

/// A fresh file for one received part (unique, so two PUTs of one part never share a file).
pub(crate) fn part_path(sh: &Shared, upload_id: &str, part: u32) -> PathBuf {
    let nonce: u64 = rand::thread_rng().gen();
    sh.upload_dir
        .join(format!("{upload_id}.{part}.{nonce:016x}.s3part"))
}
