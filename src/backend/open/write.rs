//! Writes through the Open API: folders, renames, moves, trash, instant copies and the v2
//! chunked upload (docs/123.md, open §3.4, §4.1).
//!
//! Every call goes through `OpenClient` (pacing, 401 refresh, 429 back-off). The calls that
//! could act twice if resent after a lost answer (`mkdir`, `create`) are never resent blindly:
//! after a 5xx or a cut the folder is listed, and only if the name is still missing is the call
//! sent again.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use serde_json::json;

use super::api;
use super::client::{is_upload_failed, is_verifying, Endpoint, Retry};
use super::OpenBackend;
use crate::backend::unsure::{find_child, made_file, made_folder, open_file, send_unsure, Outcome};
use crate::backend::{deadline, Entry, Error, UploadOptions, UploadSource};

/// 123 refuses single files over 10 GB through the Open API (docs/123.md, open §4.1). The emulator
/// reads that as 10 GiB (`10 << 30`); so do we, so that a file it would take is never refused here.
pub const MAX_UPLOAD_SIZE: u64 = 10 << 30;

/// Most ids per `move` / `trash` call (docs/123.md, open §3).
const MAX_BATCH: usize = 100;
/// `upload_complete` polls before giving up, as OpenList does (60 × 1 s).
const MAX_COMPLETE_POLLS: u32 = 60;
/// `duplicate` sent with every `create` (docs/123.md, open §11: what 123 does with a taken name
/// when it is absent is unknown, so it is never left out). 1 = keep both: whatever happens,
/// nothing is replaced. The upload queue uploads under a name nobody else has and swaps
/// afterwards, so the value only matters when someone takes that name meanwhile.
const DUPLICATE_KEEP_BOTH: i64 = 1;
/// Most slices in flight, whatever the options say (OpenList allows 1..=32).
const MAX_PARALLEL_SLICES: usize = 32;

impl OpenBackend {
    pub(super) async fn write_mkdir(&self, parent: u64, name: &str) -> Result<Entry, Error> {
        let body = json!({ "name": name, "parentID": parent });
        send_unsure(
            || async {
                let reply = self
                    .client
                    .post::<api::Mkdir>(Endpoint::Mkdir, &body, Retry::Never)
                    .await?;
                Ok(Entry::new_folder(reply.dir_id.max(0) as u64, name))
            },
            // 123 may have made the folder before the answer was lost.
            || made_folder(self, parent, name),
        )
        .await
    }

    pub(super) async fn write_rename(&self, id: u64, name: &str) -> Result<(), Error> {
        // Renaming to the name it already has succeeds, so a resend is harmless.
        let body = json!({ "fileId": id, "fileName": name });
        self.client
            .put::<serde::de::IgnoredAny>(Endpoint::Rename, &body, Retry::Safe)
            .await
            .map(drop)
    }

    pub(super) async fn write_move(&self, ids: &[u64], parent: u64) -> Result<(), Error> {
        // An entry already in the target is skipped by 123, so a resend is harmless.
        for chunk in ids.chunks(MAX_BATCH) {
            let body = json!({ "fileIDs": chunk, "toParentFileID": parent });
            self.client
                .post::<serde::de::IgnoredAny>(Endpoint::Move, &body, Retry::Safe)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn write_trash(&self, ids: &[u64]) -> Result<(), Error> {
        // Trashing an entry that is in the trash already succeeds, so a resend is harmless.
        for chunk in ids.chunks(MAX_BATCH) {
            let body = json!({ "fileIDs": chunk });
            self.client
                .post::<serde::de::IgnoredAny>(Endpoint::Trash, &body, Retry::Safe)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn write_delete_trashed(&self, ids: &[u64]) -> Result<(), Error> {
        // docs/123.md, open §3: only what is in the recycle bin. A resend after the first
        // took effect finds nothing and is answered "no such file", which counts as done.
        for chunk in ids.chunks(MAX_BATCH) {
            let body = json!({ "fileIDs": chunk });
            match self
                .client
                .post::<serde::de::IgnoredAny>(Endpoint::Delete, &body, Retry::Safe)
                .await
            {
                Ok(_) | Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) async fn write_copy_instant(
        &self,
        parent: u64,
        name: &str,
        md5: &str,
        size: u64,
    ) -> Result<Option<Entry>, Error> {
        if size > MAX_UPLOAD_SIZE {
            return Err(Error::TooLarge);
        }
        // docs/123.md, open §11: `create` cannot be asked to refuse a taken name (only keep both
        // and replace are defined), so the name is checked here; should someone take it in
        // between, `duplicate: 1` keeps both.
        if find_child(self, parent, name).await?.is_some() {
            return Err(Error::AlreadyExists);
        }
        // A `reuse: false` answer opens a preupload session that is simply abandoned.
        match self.create(parent, name, md5, size).await? {
            Created::Done(entry) => Ok(Some(entry)),
            // docs/123.md, open §11: `reuse: true` without a fileID may still have made the file
            // (its id was just not handed back): look before calling it not copied.
            Created::Session(s) if s.reused => made_file(self, parent, name, md5, size).await,
            Created::Session(_) => Ok(None),
        }
    }

    pub(super) async fn write_upload(
        &self,
        parent: u64,
        name: &str,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<Entry, Error> {
        if src.size > MAX_UPLOAD_SIZE {
            return Err(Error::TooLarge);
        }
        let md5 = src.md5.to_ascii_lowercase();
        let session = match self.create(parent, name, &md5, src.size).await? {
            Created::Done(entry) => {
                tracing::debug!(
                    parent,
                    size = src.size,
                    "123 had the content: instant upload (no bytes sent)"
                );
                return Ok(entry);
            }
            Created::Session(s) => s,
        };
        self.send_slices(&session, src, opts).await?;
        match self
            .complete(&session.preupload_id, opts.complete_poll_interval)
            .await
        {
            Ok(id) => Ok(Entry::new_file(id, name, src.size, &md5)),
            // docs/123.md, open §11: polling ran out, but 123 may have made the file all the same.
            Err(e) if !is_upload_failed(&e) => match find_child(self, parent, name).await {
                Ok(Some(found))
                    if !found.is_dir
                        && found.size == src.size
                        && found.md5.as_deref() == Some(md5.as_str()) =>
                {
                    tracing::info!(
                        parent,
                        file_id = found.id,
                        error = %e,
                        "upload_complete never confirmed, but the file is listed: done"
                    );
                    Ok(found)
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// `create` with `duplicate` 1 (keep both: a taken name is never replaced). Resent only
    /// after a re-check shows that the first send did not create the file.
    async fn create(
        &self,
        parent: u64,
        name: &str,
        md5: &str,
        size: u64,
    ) -> Result<Created, Error> {
        let body = json!({
            "parentFileID": parent,
            "filename": name,
            "etag": md5,
            "size": size,
            "duplicate": DUPLICATE_KEEP_BOTH,
        });
        // An instant upload may have happened before the answer was lost. A lost
        // `reuse: false` answer only leaves an unused session behind.
        let create = || {
            self.client
                .post::<api::UploadCreate>(Endpoint::UploadCreate, &body, Retry::Never)
        };
        let reply = match open_file(self, parent, name, md5, size, create).await? {
            Outcome::Answered(reply) => reply,
            Outcome::Found(entry) => return Ok(Created::Done(entry)),
        };
        if reply.reuse && reply.file_id > 0 {
            return Ok(Created::Done(Entry::new_file(
                reply.file_id as u64,
                name,
                size,
                md5,
            )));
        }
        // docs/123.md, open §11 (OpenList: "秒传成功才会返回正确的 FileID，否则为 0"): `reuse: true`
        // with `fileID: 0` is not an instant upload; the bytes go to the session it opened.
        if reply.reuse {
            tracing::debug!(
                parent,
                "create answered reuse without a fileID: sending the slices"
            );
        }
        let preupload_id = reply
            .preupload_id
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::unexpected("create answered without a preuploadID"))?;
        let server = reply
            .servers
            .and_then(|s| s.into_iter().find(|s| !s.is_empty()))
            .ok_or_else(|| Error::unexpected("create answered without an upload server"))?;
        let slice_size = u64::try_from(reply.slice_size)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| Error::unexpected("create answered without a sliceSize"))?;
        Ok(Created::Session(Session {
            preupload_id,
            server,
            slice_size,
            reused: reply.reuse,
        }))
    }

    /// Sends every slice, `parallel_slices` at a time, each read from disk at its offset.
    async fn send_slices(
        &self,
        session: &Session,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<(), Error> {
        let count = src.size.div_ceil(session.slice_size);
        let parallel = opts.parallel_slices.clamp(1, MAX_PARALLEL_SLICES);
        let confirmed = AtomicU64::new(0);
        futures_util::stream::iter(1..=count)
            .map(|no| self.send_slice(session, src, no))
            .buffer_unordered(parallel)
            .try_for_each(|len| {
                let done = confirmed.fetch_add(len, Ordering::Relaxed) + len;
                report(opts, done);
                async { Ok(()) }
            })
            .await
    }

    async fn send_slice(
        &self,
        session: &Session,
        src: &UploadSource,
        no: u64,
    ) -> Result<u64, Error> {
        let offset = (no - 1) * session.slice_size;
        let len = session.slice_size.min(src.size - offset);
        let form = SliceForm::new(&session.preupload_id, no);
        let path = src.path.clone();
        let body = tokio::task::spawn_blocking(move || form.build(&path, offset, len))
            .await
            .map_err(|e| Error::Unavailable(format!("slice reader stopped: {e}")))?
            .map_err(|e| Error::Unavailable(format!("cannot read the file to upload: {e}")))?;
        let content_type = format!("multipart/form-data; boundary={}", body.boundary);
        self.client
            .post_slice::<serde::de::IgnoredAny>(&session.server, &content_type, body.bytes)
            .await?;
        Ok(len)
    }

    /// Polls `upload_complete` until 123 has verified the file; returns its id.
    ///
    /// docs/123.md, open §11: 123 answers more than "verifying" while it works (20103, code 1
    /// `任务队列削峰中,未直接获取到文件ID,请慢一点`, codes nobody has documented; OpenList
    /// retries every error), so every error code 123 answers is polled through except the
    /// definite `文件上传失败`. A failure of the call itself (5xx, a cut, 429 past the client's
    /// back-off) was retried by `OpenClient` already and ends the polling. Bounded by
    /// `MAX_COMPLETE_POLLS` and the request's deadline; the caller looks for the file before it
    /// calls the upload failed.
    async fn complete(&self, preupload_id: &str, interval: Duration) -> Result<u64, Error> {
        let body = json!({ "preuploadID": preupload_id });
        let mut last = None;
        for poll in 1..=MAX_COMPLETE_POLLS {
            match self
                .client
                .post::<api::UploadComplete>(Endpoint::UploadComplete, &body, Retry::Safe)
                .await
            {
                Ok(r) if r.completed && r.file_id > 0 => return Ok(r.file_id as u64),
                Ok(_) => tracing::trace!(poll, "123 is still verifying the upload"),
                Err(e) if is_upload_failed(&e) => {
                    tracing::warn!(error = %e, "123 rejected the uploaded file (MD5 mismatch)");
                    return Err(e);
                }
                Err(e @ Error::Upstream { .. }) => {
                    if !is_verifying(&e) {
                        tracing::info!(poll, error = %e, "upload_complete answered an error; polling on");
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
            if poll == MAX_COMPLETE_POLLS || !deadline::allows(interval) {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        let why = last.map_or_else(
            || "it kept saying not completed".to_string(),
            |e| e.to_string(),
        );
        Err(Error::Unavailable(format!(
            "123 did not confirm the upload after polling upload_complete ({why})"
        )))
    }
}

/// What `create` answered.
enum Created {
    /// The file exists: instant upload (or an earlier send made it).
    Done(Entry),
    /// Bytes must be sent.
    Session(Session),
}

struct Session {
    preupload_id: String,
    server: String,
    slice_size: u64,
    /// `create` said `reuse: true` but gave no fileID (docs/123.md, open §11).
    reused: bool,
}

/// The multipart form of one slice, built in one buffer with the slice read straight into it.
struct SliceForm {
    boundary: String,
    head: String,
}

/// A ready slice body.
struct SliceBody {
    boundary: String,
    bytes: bytes::Bytes,
}

/// Placeholder for the slice MD5, which is known only once the bytes are read; an MD5 in hex
/// is always 32 characters, so it is patched in place.
const MD5_PLACEHOLDER: &str = "00000000000000000000000000000000";

impl SliceForm {
    fn new(preupload_id: &str, no: u64) -> Self {
        let boundary = format!("pan123-{:032x}", rand::random::<u128>());
        // Field order as OpenList sends it: preuploadID, sliceNo, sliceMD5, then the file part.
        let head = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"preuploadID\"\r\n\r\n{preupload_id}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"sliceNo\"\r\n\r\n{no}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"sliceMD5\"\r\n\r\n{MD5_PLACEHOLDER}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"slice\"; filename=\"part{no}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            b = boundary
        );
        Self { boundary, head }
    }

    /// Reads `len` bytes at `offset` of `path` into the form and fills in their MD5.
    fn build(self, path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<SliceBody> {
        let tail = format!("\r\n--{}--\r\n", self.boundary);
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        let mut buf = Vec::with_capacity(self.head.len() + len + tail.len());
        buf.extend_from_slice(self.head.as_bytes());
        let start = buf.len();
        buf.resize(start + len, 0);
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf[start..])?;
        let digest = hex(&Md5::digest(&buf[start..]));
        // The placeholder is the last 32-character run before the file part's headers.
        let md5_at = self
            .head
            .find(MD5_PLACEHOLDER)
            .ok_or_else(|| std::io::Error::other("slice form without an MD5 field"))?;
        buf[md5_at..md5_at + MD5_PLACEHOLDER.len()].copy_from_slice(digest.as_bytes());
        buf.extend_from_slice(tail.as_bytes());
        Ok(SliceBody {
            boundary: self.boundary,
            bytes: bytes::Bytes::from(buf),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    crate::backend::auth_key::hex(bytes)
}

fn report(opts: &UploadOptions, bytes: u64) {
    if let Some(progress) = &opts.progress {
        progress(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_form_is_multipart_with_the_slice_md5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let body = SliceForm::new("pre-1", 2).build(&path, 4, 3).unwrap();
        let text = String::from_utf8(body.bytes.to_vec()).unwrap();
        let b = &body.boundary;
        let want_md5 = hex(&Md5::digest(b"456"));
        assert!(text.starts_with(&format!("--{b}\r\n")));
        assert!(text.contains("name=\"preuploadID\"\r\n\r\npre-1\r\n"));
        assert!(text.contains("name=\"sliceNo\"\r\n\r\n2\r\n"));
        assert!(text.contains(&format!("name=\"sliceMD5\"\r\n\r\n{want_md5}\r\n")));
        assert!(text.ends_with(&format!("\r\n\r\n456\r\n--{b}--\r\n")));
        // A file shorter than the slice is an error, never a short slice.
        assert!(SliceForm::new("p", 1).build(&path, 8, 5).is_err());
    }
}
