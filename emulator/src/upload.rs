//! Upload v2 (spec open-api §4.1): `create` (instant reuse by MD5+size, or a preupload session),
//! `slice` (multipart, per-slice MD5 checked, written at its offset in a temp file),
//! `upload_complete` (pending polls, poll spacing, whole-file MD5 check).

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
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
use crate::http::{err, ok, read_body, Cut, HandlerResult, Resp};
use crate::names;
use crate::open_api::{read_args, tree_err, MSG_NAME_TAKEN};
use crate::server::Ctx;
use crate::state::{Fs, NamePolicy, TreeError};

/// Developer single-file limit (spec open-api §4.1: 10 GB).
pub const MAX_UPLOAD: u64 = 10 << 30;
/// Code and message while the server "verifies" (OpenList saw 20103; spec open-api §1).
pub const CODE_VERIFYING: i64 = 20103;
/// Message of the "poll again in a second" answer.
pub const MSG_VERIFYING: &str = "文件正在校验中,请间隔1秒后再试";
/// Terminal failure of `upload_complete` (whole-file MD5 mismatch).
pub const MSG_UPLOAD_FAILED: &str = "文件上传失败";
/// Unknown or finished-and-failed preupload id.
const MSG_NO_SESSION: &str = "preuploadID不存在或已过期";

/// One preupload session.
#[derive(Debug)]
pub struct Session {
    parent: u64,
    name: String,
    md5: String,
    size: u64,
    duplicate: i64,
    slice_size: u64,
    path: PathBuf,
    received: BTreeSet<u64>,
    polls: u32,
    last_poll: Option<Instant>,
    verifying: bool,
}

impl Session {
    fn slices(&self) -> u64 {
        self.size.div_ceil(self.slice_size.max(1))
    }
}

/// Open sessions and the results of finished ones (so a repeated complete is idempotent).
#[derive(Debug, Default)]
pub struct Uploads {
    sessions: HashMap<String, Session>,
    finished: HashMap<String, u64>,
}

/// `GET /upload/v2/file/domain`: the upload hosts (this emulator).
pub fn domain(ctx: &Ctx) -> Resp {
    ok(json!([ctx.shared.base_url]))
}

/// Where an upload's name lands, resolved against the folder's current children.
enum Placement {
    /// Use this name; `replace` is a live file to trash first (overwrite).
    Name { name: String, replace: Option<u64> },
    /// Refused with this envelope.
    Refused(Resp),
}

/// Apply the `duplicate` rules to `name` in `parent`.
fn place(fs: &Fs, parent: u64, name: &str, duplicate: i64, policy: NamePolicy) -> Placement {
    let Some(existing) = fs.tree.conflict(parent, name, policy, None) else {
        return Placement::Name {
            name: name.to_string(),
            replace: None,
        };
    };
    let Some(ex) = fs.tree.get(existing) else {
        return Placement::Refused(err(1, MSG_NAME_TAKEN));
    };
    match duplicate {
        1 => {
            let mut n = 1;
            loop {
                let candidate = names::with_suffix(name, n);
                if fs.tree.conflict(parent, &candidate, policy, None).is_none() {
                    return Placement::Name {
                        name: candidate,
                        replace: None,
                    };
                }
                n += 1;
            }
        }
        2 if !ex.is_dir => Placement::Name {
            name: name.to_string(),
            replace: (!ex.trashed).then_some(existing),
        },
        _ => Placement::Refused(err(1, MSG_NAME_TAKEN)),
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
    let etag = args.str("etag").unwrap_or_default().to_ascii_lowercase();
    let contain_dir = args.bool("containDir").unwrap_or(false);
    let duplicate = duplicate.unwrap_or(0);
    let Some(size) = size.and_then(|s| u64::try_from(s).ok()) else {
        return Ok(err(1, "size参数错误"));
    };
    if etag.len() != 32 || !etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(err(1, "etag参数错误"));
    }
    if size > MAX_UPLOAD {
        return Ok(err(1, "单个文件不能超过10GB"));
    }
    let (dirs, name): (Vec<&str>, &str) = if contain_dir {
        let mut segs: Vec<&str> = filename.split('/').filter(|s| !s.is_empty()).collect();
        let name = segs.pop().unwrap_or("");
        (segs, name)
    } else {
        (Vec::new(), filename.as_str())
    };
    for seg in dirs.iter().chain(std::iter::once(&name)) {
        if let Err(e) = names::validate(seg) {
            return Ok(err(1, &e.to_string()));
        }
    }
    let sh = ctx.shared.clone();
    let sw = sh.switches();
    if size == 0 && sw.zero_byte_upload == ZeroByteUpload::Reject {
        return Ok(err(1, "不支持上传空文件"));
    }
    let policy = sh.name_policy();
    let now = sh.now();
    let parent = u64::try_from(parent.unwrap_or(0)).unwrap_or(u64::MAX);

    let mut fs = lock(&sh.fs);
    if let Err(e) = fs.tree.live_dir(parent) {
        return Ok(tree_err(&e));
    }
    let parent = match make_dirs(&mut fs, parent, &dirs, now) {
        Ok(p) => p,
        Err(_) => return Ok(err(1, MSG_NAME_TAKEN)),
    };
    let (final_name, replace) = match place(&fs, parent, name, duplicate, policy) {
        Placement::Name { name, replace } => (name, replace),
        Placement::Refused(r) => return Ok(r),
    };
    let zero_normal = size == 0 && sw.zero_byte_upload == ZeroByteUpload::Normal;
    if fs.content.contains(&etag, size) && !zero_normal {
        if let Some(old) = replace {
            fs.tree.trash(old, now);
        }
        let id = fs.tree.insert(parent, &final_name, Some((size, etag)), now);
        return Ok(ok(
            json!({"fileID": id, "preuploadID": "", "reuse": true, "sliceSize": 0}),
        ));
    }
    if let (Some(old), OverwriteAt::Create) = (replace, sw.overwrite_at) {
        fs.tree.trash(old, now);
    }
    drop(fs);

    let id = new_preupload_id();
    let path = sh.upload_dir.join(format!("{id}.part"));
    let made = std::fs::File::create(&path).and_then(|f| f.set_len(size));
    if made.is_err() {
        return Ok(err(1, "服务器存储空间不足"));
    }
    let slice_size = sw.slice_size.max(1);
    lock(&sh.uploads).sessions.insert(
        id.clone(),
        Session {
            parent,
            name: final_name,
            md5: etag,
            size,
            duplicate,
            slice_size,
            path,
            received: BTreeSet::new(),
            polls: 0,
            last_poll: None,
            verifying: false,
        },
    );
    Ok(ok(json!({
        "fileID": 0,
        "preuploadID": id,
        "reuse": false,
        "sliceSize": slice_size,
        "servers": [sh.base_url],
    })))
}

/// A long opaque preupload id, like 123's.
fn new_preupload_id() -> String {
    let mut rng = rand::thread_rng();
    let a: u128 = rng.gen();
    let b: u128 = rng.gen();
    format!("WvjyUgonimrlI0eS{a:032x}{b:032x}")
}

/// Read `bytes` of a request body, then give up on the connection (the "cut upload" fault).
async fn cut_body(mut body: Incoming, bytes: u64) -> Cut {
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
        let expected = s.slice_size.min(s.size - offset);
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
        (s.path.clone(), s.md5.clone(), s.size)
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
    match finish(&sh, &session) {
        Ok(id) => {
            lock(&sh.uploads).finished.insert(pre, id);
            Ok(ok(json!({"completed": true, "fileID": id})))
        }
        Err(r) => {
            let _ = std::fs::remove_file(&path);
            Ok(r)
        }
    }
}

/// Put a verified upload into the tree (resolving the name again: the folder may have changed).
fn finish(sh: &Shared, s: &Session) -> Result<u64, Resp> {
    let policy = sh.name_policy();
    let now = sh.now();
    let mut fs = lock(&sh.fs);
    if fs.tree.live_dir(s.parent).is_err() {
        return Err(err(1, MSG_UPLOAD_FAILED));
    }
    let (name, replace) = match place(&fs, s.parent, &s.name, s.duplicate, policy) {
        Placement::Name { name, replace } => (name, replace),
        Placement::Refused(r) => return Err(r),
    };
    if let Some(old) = replace {
        fs.tree.trash(old, now);
    }
    if fs.content.contains(&s.md5, s.size) {
        // Same bytes already stored: the assembled copy is redundant.
        let _ = std::fs::remove_file(&s.path);
    } else {
        fs.content
            .insert(&s.md5, s.size, Blob::File(s.path.clone()));
    }
    Ok(fs
        .tree
        .insert(s.parent, &name, Some((s.size, s.md5.clone())), now))
}
