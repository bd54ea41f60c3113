//! Upload v2 (docs/123.md, open §4.1): `create` (instant reuse by MD5+size, or a preupload session),
//! `slice` (multipart, per-slice MD5 checked, written at its offset in a temp file),
//! `upload_complete` (pending polls, poll spacing, whole-file MD5 check).
//!
//! The start of an upload (`begin`: checks, `duplicate`, reuse, `overwrite_at`) and its landing
//! in the tree (`finish`) are shared with the personal web uploads (`personal_upload.rs`).

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::Rng;
use serde_json::{json, Value};

use crate::config::{OverwriteAt, ZeroByteUpload};
use crate::content::{self, Blob};
use crate::emulator::{lock, Shared};
use crate::hosts::Host;
use crate::http::{err, ok, read_body, Cut, HandlerResult, Refused, Resp};
use crate::names;
use crate::open_api::{read_args, tree_refused, MSG_NAME_TAKEN};
use crate::server::Ctx;
use crate::state::{Fs, NamePolicy, TreeError};

/// Developer single-file limit (docs/123.md, open §4.1: 10 GB).
pub const MAX_UPLOAD: u64 = 10 << 30;
/// Code and message while the server "verifies" (OpenList saw 20103; docs/123.md, open §1).
pub const CODE_VERIFYING: i64 = 20103;
/// Message of the "poll again in a second" answer.
pub const MSG_VERIFYING: &str = "文件正在校验中,请间隔1秒后再试";
/// Terminal failure of `upload_complete` (whole-file MD5 mismatch).
pub const MSG_UPLOAD_FAILED: &str = "文件上传失败";
/// Files over `MAX_UPLOAD`.
pub const MSG_TOO_BIG: &str = "单个文件不能超过10GB";
/// Zero-byte uploads under `zero_byte_upload: reject`.
pub const MSG_NO_EMPTY: &str = "不支持上传空文件";
/// The emulator could not make its temp file.
pub const MSG_NO_SPACE: &str = "服务器存储空间不足";
/// Unknown or finished-and-failed preupload id.
const MSG_NO_SESSION: &str = "preuploadID不存在或已过期";
/// Code 1 answer of `upload_complete` an SDK's tests saw while 123's queue is busy.
pub const MSG_QUEUE_BUSY: &str = "任务队列削峰中,未直接获取到文件ID,请慢一点";
/// A code nobody has documented, for the `complete_transient_errors` switch.
pub const CODE_UNKNOWN: i64 = 40_199;
/// Its message, equally unknown to clients.
pub const MSG_UNKNOWN: &str = "服务异常(模拟未知错误)";

/// The `complete_transient_errors` answers in the order they cycle (docs/123.md, open §11): 20103
/// "verifying", code 1 "queue busy", and an unknown code.
const TRANSIENT_COMPLETE_ERRORS: [(i64, &str); 3] = [
    (CODE_VERIFYING, MSG_VERIFYING),
    (1, MSG_QUEUE_BUSY),
    (CODE_UNKNOWN, MSG_UNKNOWN),
];

/// Where an upload lands once its bytes are verified. Shared by the Open API's preupload
/// sessions and the web API's presigned-part uploads.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Folder that receives the file.
    pub parent: u64,
    /// Name resolved at create time (`duplicate` is applied again at completion).
    pub name: String,
    /// Lowercase hex MD5 the whole body must have.
    pub md5: String,
    /// Bytes the whole body must have.
    pub size: u64,
    /// 1 = keep both, 2 = overwrite, anything else = refuse a taken name.
    pub duplicate: i64,
}

/// One preupload session.
#[derive(Debug)]
pub struct Session {
    target: Target,
    slice_size: u64,
    path: PathBuf,
    received: BTreeSet<u64>,
    polls: u32,
    last_poll: Option<Instant>,
    verifying: bool,
    /// `complete_transient_errors` answers given so far.
    transient_errors: u32,
}

impl Session {
    fn slices(&self) -> u64 {
        self.target.size.div_ceil(self.slice_size.max(1))
    }
}

/// Open sessions and the results of finished ones (so a repeated complete is idempotent).
#[derive(Debug, Default)]
pub struct Uploads {
    sessions: HashMap<String, Session>,
    finished: HashMap<String, u64>,
    /// Files landed by an upload in this run, with the `verifying_after_upload` answers each
    /// has left.
    verifying: HashMap<u64, u32>,
}

/// Whether a link call for `id` must answer 20103 now (`verifying_after_upload`): true for
/// the first N calls after the file was uploaded in this run.
pub(crate) fn take_verifying(sh: &Shared, id: u64) -> bool {
    let mut ups = lock(&sh.uploads);
    let Some(left) = ups.verifying.get_mut(&id) else {
        return false;
    };
    *left = left.saturating_sub(1);
    if *left == 0 {
        ups.verifying.remove(&id);
    }
    true
}

/// `GET /upload/v2/file/domain` (on the Open API host): the upload hosts.
pub fn domain(ctx: &Ctx) -> Resp {
    ok(json!([ctx.shared.url(Host::Upload)]))
}

/// Where an upload's name lands, resolved against the folder's current children.
struct Placement {
    /// The name to use.
    name: String,
    /// A live file to trash first (overwrite).
    replace: Option<u64>,
}

/// Apply the `duplicate` rules to `name` in `parent`.
fn place(
    fs: &Fs,
    parent: u64,
    name: &str,
    duplicate: i64,
    policy: NamePolicy,
) -> Result<Placement, Refused> {
    let Some(existing) = fs.tree.conflict(parent, name, policy, None) else {
        return Ok(Placement {
            name: name.to_string(),
            replace: None,
        });
    };
    let Some(ex) = fs.tree.get(existing) else {
        return Err(Refused::new(1, MSG_NAME_TAKEN));
    };
    match duplicate {
        1 => {
            let mut n = 1;
            loop {
                let candidate = names::with_suffix(name, n);
                if fs.tree.conflict(parent, &candidate, policy, None).is_none() {
                    return Ok(Placement {
                        name: candidate,
                        replace: None,
                    });
                }
                n += 1;
            }
        }
        2 if !ex.is_dir => Ok(Placement {
            name: name.to_string(),
            replace: (!ex.trashed).then_some(existing),
        }),
        _ => Err(Refused::new(1, MSG_NAME_TAKEN)),
    }
}

/// Make the folders of a `containDir` path under `parent`; returns the last one.
fn make_dirs(fs: &mut Fs, mut parent: u64, dirs: &[&str], now: i64) -> Result<u64, TreeError> {
    for d in dirs {
        parent = match fs.tree.live_child(parent, d) {
            Some(id) if fs.tree.get(id).is_some_and(|e| e.is_dir) => id,
            Some(id) => return Err(TreeError::Conflict(id)),
            None => fs.tree.insert(parent, d, None, now),
        };
    }
    Ok(parent)
}

/// What a new upload asks for: Open `create` or web `upload_request` (type 0).
pub(crate) struct NewUpload<'a> {
    /// Folder id from the request.
    pub parent: u64,
    /// Folders to make under `parent` first (Open `containDir`), outermost first.
    pub dirs: Vec<&'a str>,
    /// File name.
    pub name: &'a str,
    /// `etag` as sent.
    pub etag: &'a str,
    /// Bytes.
    pub size: u64,
    /// `duplicate` as the API means it (see `Target::duplicate`).
    pub duplicate: i64,
    /// Whether known content is an instant upload (false: `reuse_without_file_id`, the bytes
    /// are asked for anyway).
    pub instant: bool,
}

/// How a new upload starts.
pub(crate) enum Begun {
    /// Instant upload: the file exists now with this id.
    Reused(u64),
    /// The bytes must be sent; the file lands at this target when they are verified.
    Fresh(Target),
}

/// The checks and tree work every upload start shares: etag, size limit, name rules, the
/// zero-byte switch, the parent folder, `duplicate`, instant reuse by MD5+size, and an
/// overwrite at create time (`overwrite_at`).
pub(crate) fn begin(sh: &Shared, up: &NewUpload<'_>) -> Result<Begun, Refused> {
    let etag = up.etag.to_ascii_lowercase();
    if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refused::new(1, "etag参数错误"));
    }
    if up.size > MAX_UPLOAD {
        return Err(Refused::new(1, MSG_TOO_BIG));
    }
    for seg in up.dirs.iter().chain(std::iter::once(&up.name)) {
        names::validate(seg).map_err(|e| Refused::new(1, e.to_string()))?;
    }
    let sw = sh.switches();
    if up.size == 0 && sw.zero_byte_upload == ZeroByteUpload::Reject {
        return Err(Refused::new(1, MSG_NO_EMPTY));
    }
    let policy = sh.name_policy();
    let now = sh.now();
    let mut fs = lock(&sh.fs);
    fs.tree.live_dir(up.parent).map_err(|e| tree_refused(&e))?;
    let parent = make_dirs(&mut fs, up.parent, &up.dirs, now)
        .map_err(|_| Refused::new(1, MSG_NAME_TAKEN))?;
    let placed = place(&fs, parent, up.name, up.duplicate, policy)?;
    let zero_normal = up.size == 0 && sw.zero_byte_upload == ZeroByteUpload::Normal;
    if up.instant && fs.content.contains(&etag, up.size) && !zero_normal {
        if let Some(old) = placed.replace {
            fs.tree.trash(old, now);
        }
        let id = fs
            .tree
            .insert(parent, &placed.name, Some((up.size, etag)), now);
        return Ok(Begun::Reused(id));
    }
    if let (Some(old), OverwriteAt::Create) = (placed.replace, sw.overwrite_at) {
        fs.tree.trash(old, now);
    }
    Ok(Begun::Fresh(Target {
        parent,
        name: placed.name,
        md5: etag,
        size: up.size,
        duplicate: up.duplicate,
    }))
}

/// `POST /upload/v2/file/create`.
pub async fn create(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let (Ok(parent), Ok(size), Ok(duplicate)) = (
        args.int("parentFileID"),
        args.int("size"),
        args.int("duplicate"),
    ) else {
        return Ok(err(1, "参数错误"));
    };
    let filename = args.str("filename").unwrap_or_default().to_string();
    let contain_dir = args.bool("containDir").unwrap_or(false);
    let Some(size) = size.and_then(|s| u64::try_from(s).ok()) else {
        return Ok(err(1, "size参数错误"));
    };
    let (dirs, name): (Vec<&str>, &str) = if contain_dir {
        let mut segs: Vec<&str> = filename.split('/').filter(|s| !s.is_empty()).collect();
        let name = segs.pop().unwrap_or("");
        (segs, name)
    } else {
        (Vec::new(), filename.as_str())
    };
    let sh = ctx.shared.clone();
    let sw = sh.switches();
    let etag = args.str("etag").unwrap_or_default();
    // docs/123.md, open §11: `reuse: true` with `fileID: 0` is not an instant upload.
    let known = sw.reuse_without_file_id
        && lock(&sh.fs)
            .content
            .contains(&etag.to_ascii_lowercase(), size);
    let up = NewUpload {
        parent: u64::try_from(parent.unwrap_or(0)).unwrap_or(u64::MAX),
        dirs,
        name,
        etag,
        size,
        duplicate: effective_duplicate(&sh, duplicate.unwrap_or(0)),
        instant: !sw.reuse_without_file_id,
    };
    let target = match begin(&sh, &up) {
        Ok(Begun::Reused(id)) => {
            return Ok(ok(
                json!({"fileID": id, "preuploadID": "", "reuse": true, "sliceSize": 0}),
            ))
        }
        Ok(Begun::Fresh(t)) => t,
        Err(r) => return Ok(r.open()),
    };

    let id = new_preupload_id();
    let path = sh.upload_dir.join(format!("{id}.part"));
    let made = std::fs::File::create(&path).and_then(|f| f.set_len(size));
    if made.is_err() {
        return Ok(err(1, MSG_NO_SPACE));
    }
    let slice_size = sw.slice_size.max(1);
    lock(&sh.uploads).sessions.insert(
        id.clone(),
        Session {
            target,
            slice_size,
            path,
            received: BTreeSet::new(),
            polls: 0,
            last_poll: None,
            verifying: false,
            transient_errors: 0,
        },
    );
    Ok(ok(json!({
        "fileID": 0,
        "preuploadID": id,
        "reuse": known,
        "sliceSize": slice_size,
        "servers": [sh.url(Host::Upload)],
    })))
}

/// `duplicate` as applied: absent or 0 follows `create_on_taken_name` (docs/123.md, open §11);
/// 1 and 2 keep their documented meaning.
pub(crate) fn effective_duplicate(sh: &Shared, duplicate: i64) -> i64 {
    match duplicate {
        0 => sh.switches().create_on_taken_name.as_duplicate(),
        d => d,
    }
}

/// A long opaque preupload id, like 123's.
pub(crate) fn new_preupload_id() -> String {
    let mut rng = rand::thread_rng();
    let a: u128 = rng.gen();
    let b: u128 = rng.gen();
    format!("WvjyUgonimrlI0eS{a:032x}{b:032x}")
}

/// Read `bytes` of a request body, then give up on the connection (the "cut upload" fault).
pub(crate) async fn cut_body(mut body: Incoming, bytes: u64) -> Cut {
    let mut seen = 0u64;
    while seen < bytes {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    seen += d.len() as u64;
                }
            }
            _ => break,
        }
    }
    Cut
}

/// `POST /upload/v2/file/slice` (multipart: `preuploadID`, `sliceNo`, `sliceMD5`, `slice`).
pub async fn slice(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let sh = ctx.shared.clone();
    let cut = lock(&sh.faults).take_cut(ctx.ep.key());
    if let Some(bytes) = cut {
        return Err(cut_body(req.into_body(), bytes).await);
    }
    let boundary = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::multipart::boundary);
    let Some(boundary) = boundary else {
        return Ok(err(1, "请使用multipart/form-data上传分片"));
    };
    let limit = {
        let biggest = lock(&sh.uploads)
            .sessions
            .values()
            .map(|s| s.slice_size)
            .max()
            .unwrap_or(0);
        biggest.max(sh.switches().slice_size).max(16 << 20) + (1 << 20)
    };
    let body = match read_body(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => return Ok(err(1, &e.to_string())),
    };
    let Some(parts) = crate::multipart::parse(&body, &boundary) else {
        return Ok(err(1, "分片表单格式错误"));
    };
    let field = |n: &str| -> Option<Bytes> {
        parts
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(n))
            .map(|p| p.data.clone())
    };
    let text = |n: &str| field(n).and_then(|b| String::from_utf8(b.to_vec()).ok());
    let (Some(pre), Some(no), Some(md5), Some(data)) = (
        text("preuploadID"),
        text("sliceNo"),
        text("sliceMD5"),
        field("slice"),
    ) else {
        return Ok(err(1, "缺少参数: preuploadID, sliceNo, sliceMD5, slice"));
    };
    let (path, offset) = {
        let ups = lock(&sh.uploads);
        let Some(s) = ups.sessions.get(pre.trim()) else {
            return Ok(err(1, MSG_NO_SESSION));
        };
        let Some(no) = no
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=s.slices()).contains(n))
        else {
            return Ok(err(1, "sliceNo参数错误"));
        };
        let offset = (no - 1) * s.slice_size;
        let expected = s.slice_size.min(s.target.size - offset);
        if data.len() as u64 != expected {
            return Ok(err(1, "分片大小与sliceSize不符"));
        }
        (s.path.clone(), (no, offset))
    };
    if !content::md5_hex(&data).eq_ignore_ascii_case(md5.trim()) {
        return Ok(err(1, "分片MD5校验失败"));
    }
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all_at(&data, offset.1)
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return Ok(err(1, "分片写入失败"));
    }
    if let Some(s) = lock(&sh.uploads).sessions.get_mut(pre.trim()) {
        s.received.insert(offset.0);
    }
    Ok(ok(Value::Null))
}

/// `POST /upload/v2/file/upload_complete` (`preuploadID`).
pub async fn complete(ctx: &mut Ctx, req: Request<Incoming>) -> HandlerResult {
    let args = match read_args(req).await {
        Ok(a) => a,
        Err(r) => return Ok(r),
    };
    let pre = args
        .str("preuploadID")
        .unwrap_or_default()
        .trim()
        .to_string();
    let sh = ctx.shared.clone();
    let sw = sh.switches();
    let (path, md5, size) = {
        let mut ups = lock(&sh.uploads);
        if let Some(id) = ups.finished.get(&pre) {
            return Ok(ok(json!({"completed": true, "fileID": id})));
        }
        let Some(s) = ups.sessions.get_mut(&pre) else {
            return Ok(err(1, MSG_NO_SESSION));
        };
        // docs/123.md, open §11: errors a client must poll through, before the normal answers.
        if s.transient_errors < sw.complete_transient_errors {
            let (code, message) = TRANSIENT_COMPLETE_ERRORS
                [s.transient_errors as usize % TRANSIENT_COMPLETE_ERRORS.len()];
            s.transient_errors += 1;
            return Ok(err(code, message));
        }
        let now = Instant::now();
        if s.verifying
            || s.last_poll
                .is_some_and(|t| now.duration_since(t) < sw.complete_poll_interval)
        {
            return Ok(err(CODE_VERIFYING, MSG_VERIFYING));
        }
        s.last_poll = Some(now);
        s.polls += 1;
        if s.polls <= sw.complete_pending_polls {
            return Ok(ok(json!({"completed": false, "fileID": 0})));
        }
        if let Some(missing) = (1..=s.slices()).find(|n| !s.received.contains(n)) {
            return Ok(err(1, &format!("分片未全部上传: 缺少分片{missing}")));
        }
        s.verifying = true;
        (s.path.clone(), s.target.md5.clone(), s.target.size)
    };
    let hashed = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || content::file_md5(&path)).await
    };
    let actual = match hashed {
        Ok(Ok((m, n))) if n == size => Some(m),
        _ => None,
    };
    let Some(session) = lock(&sh.uploads).sessions.remove(&pre) else {
        return Ok(err(1, MSG_NO_SESSION));
    };
    if actual.as_deref() != Some(md5.as_str()) {
        let _ = std::fs::remove_file(&path);
        return Ok(err(1, MSG_UPLOAD_FAILED));
    }
    match finish(&sh, &session.target, &session.path, None) {
        Ok(id) => {
            lock(&sh.uploads).finished.insert(pre, id);
            Ok(ok(json!({"completed": true, "fileID": id})))
        }
        Err(r) => {
            let _ = std::fs::remove_file(&path);
            Ok(r.open())
        }
    }
}

/// Put a verified upload (its whole body at `path`) into the tree, resolving the name again (the
/// folder may have changed). `id` is an id reserved earlier (web uploads announce theirs at
/// `upload_request`); `None` takes a new one. On `Err` nothing was added.
pub(crate) fn finish(
    sh: &Shared,
    t: &Target,
    path: &Path,
    id: Option<u64>,
) -> Result<u64, Refused> {
    let policy = sh.name_policy();
    let now = sh.now();
    let mut fs = lock(&sh.fs);
    if fs.tree.live_dir(t.parent).is_err() {
        return Err(Refused::new(1, MSG_UPLOAD_FAILED));
    }
    let placed = place(&fs, t.parent, &t.name, t.duplicate, policy)?;
    if let Some(old) = placed.replace {
        fs.tree.trash(old, now);
    }
    if fs.content.contains(&t.md5, t.size) {
        // Same bytes already stored: the assembled copy is redundant.
        let _ = std::fs::remove_file(path);
    } else {
        fs.content
            .insert(&t.md5, t.size, Blob::File(path.to_path_buf()));
    }
    let file = Some((t.size, t.md5.clone()));
    let id = match id {
        Some(id) => fs.tree.insert_as(id, t.parent, &placed.name, file, now),
        None => fs.tree.insert(t.parent, &placed.name, file, now),
    };
    drop(fs);
    let verifying = sh.switches().verifying_after_upload;
    if verifying > 0 {
        lock(&sh.uploads).verifying.insert(id, verifying);
    }
    Ok(id)
}
