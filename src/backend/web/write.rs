//! Writes through the personal web API (docs/123.md, web §1.4): folders and uploads through
//! `upload_request`, parts through presigned URLs, then `upload_complete/v2`; moves
//! (`mod_pid`), renames and trash.
//!
//! Ids go out as strings where the web client sends strings (docs/123.md, web §1.4 notes the mixed
//! types). Calls that could act twice if resent after a lost answer (`upload_request`,
//! `upload_complete/v2`) are re-checked by listing before a resend (`unsure`). When 123
//! hands out static S3 credentials instead of presigned parts, the bytes go to S3 signed by the
//! gateway (`s3_static.rs`), then `upload_complete` (docs/123.md, web §1.4 step 5).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use super::api;
use super::client::Endpoint;
use super::WebBackend;
use crate::backend::pacer::MAX_RETRY_WAIT;
use crate::backend::retry::Retries;
use crate::backend::unsure::{find_child, made_file, made_folder, open_file, send_unsure, Outcome};
use crate::backend::{Entry, Error, UploadOptions, UploadSource};

/// Part size of the presigned-part flow (docs/123.md, web §1.4: 16 MiB).
pub const PART_SIZE: u64 = 16 << 20;
/// Presigned URLs asked for in one call (the web client's batch).
const URL_BATCH: u64 = 10;
/// Attempts per part (the web client's 3).
pub(super) const PART_ATTEMPTS: u32 = 3;
/// Most parts in flight, whatever the options say.
pub(super) const MAX_PARALLEL_PARTS: usize = 16;
/// Ids per `mod_pid` / `trash` call (the limit is not documented; the Open API's 100).
const MAX_BATCH: usize = 100;
/// A part of 16 MiB on a slow line: the whole PUT may take this long.
pub(super) const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// `duplicate` of `upload_request`: 1 = keep both (123 gives the new file a suffixed name).
/// What 0 does is not confirmed (docs/123.md, open §11, web §1.4) and 2 replaces the old file, so
/// `request_upload` refuses a taken name itself (the upload queue sends only names its job
/// alone uses; instant copies need the refusal) and 1 only matters if another client takes the
/// name in between: then both files are kept, never one lost.
const DUPLICATE_KEEP_BOTH: i64 = 1;

/// One upload opened by `upload_request` that needs its bytes.
struct Session {
    file_id: u64,
    bucket: String,
    key: String,
    upload_id: String,
    storage_node: String,
    parts: u64,
}

impl WebBackend {
    pub(super) async fn write_mkdir(&self, parent: u64, name: &str) -> Result<Entry, Error> {
        let body = json!({
            "driveId": 0,
            "etag": "",
            "fileName": name,
            "parentFileId": parent.to_string(),
            "size": 0,
            "type": 1,
        });
        send_unsure(
            || async {
                let reply: api::UploadRequest = self
                    .client
                    .post_unsure(Endpoint::UploadRequest, &body)
                    .await?;
                match u64::try_from(reply.file_id) {
                    Ok(id) if id > 0 => Ok(Entry::new_folder(id, name)),
                    // The reply's shape for folders is not confirmed: find it by listing.
                    _ => made_folder(self, parent, name)
                        .await?
                        .ok_or_else(|| Error::unexpected("upload_request made no folder")),
                }
            },
            || made_folder(self, parent, name),
        )
        .await
        .inspect(|e| self.made(parent, e))
    }

    pub(super) async fn write_rename(&self, id: u64, name: &str) -> Result<(), Error> {
        // Renaming to the name it already has succeeds, so a resend is harmless.
        let body = json!({ "driveId": 0, "fileId": id.to_string(), "fileName": name });
        self.client
            .post::<serde::de::IgnoredAny>(Endpoint::Rename, &body)
            .await?;
        self.forget(&[id]);
        self.seen.forget_all();
        Ok(())
    }

    pub(super) async fn write_move(&self, ids: &[u64], parent: u64) -> Result<(), Error> {
        // An entry already in the target is not moved again, so a resend is harmless.
        for chunk in ids.chunks(MAX_BATCH) {
            let list: Vec<_> = chunk
                .iter()
                .map(|id| json!({ "FileId": id.to_string() }))
                .collect();
            let body = json!({ "fileIdList": list, "parentFileId": parent.to_string() });
            self.client
                .post::<serde::de::IgnoredAny>(Endpoint::ModPid, &body)
                .await?;
            self.moved(chunk, parent);
        }
        self.seen.forget_all();
        Ok(())
    }

    pub(super) async fn write_trash(&self, ids: &[u64]) -> Result<(), Error> {
        // Trashing what is in the trash already succeeds, so a resend is harmless.
        self.ensure_listed(ids).await?;
        for chunk in ids.chunks(MAX_BATCH) {
            let objects: Vec<_> = chunk.iter().map(|id| self.trash_object(*id)).collect();
            let body = json!({ "driveId": 0, "operation": true, "fileTrashInfoList": objects });
            self.client
                .post::<serde::de::IgnoredAny>(Endpoint::Trash, &body)
                .await?;
            self.forget(chunk);
        }
        self.seen.forget_all();
        Ok(())
    }

    pub(super) async fn write_delete_trashed(&self, ids: &[u64]) -> Result<(), Error> {
        // docs/123.md, web §1.4: the recycle bin's delete, as the web client sends it. A resend
        // after the first took effect is answered "no such file", which counts as done.
        for chunk in ids.chunks(MAX_BATCH) {
            let list: Vec<_> = chunk.iter().map(|id| json!({ "FileId": id })).collect();
            let body = json!({
                "driveId": 0,
                "fileIdList": list,
                "event": "recycleDelete",
                "operatePlace": 1,
                "RequestSource": null,
            });
            match self
                .client
                .post::<serde::de::IgnoredAny>(Endpoint::Delete, &body)
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
        // An upload that 123 cannot reuse opens a session that is simply abandoned.
        match self.request_upload(parent, name, md5, size).await? {
            Requested::Done(entry) => Ok(Some(entry)),
            Requested::Session(_) | Requested::Static(_) => Ok(None),
        }
    }

    pub(super) async fn write_upload(
        &self,
        parent: u64,
        name: &str,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<Entry, Error> {
        let md5 = src.md5.to_ascii_lowercase();
        let session = match self.request_upload(parent, name, &md5, src.size).await? {
            Requested::Static(upload) => {
                self.send_static(&upload, src, opts).await?;
                return self
                    .complete_static(parent, name, &md5, src.size, upload.file_id)
                    .await;
            }
            Requested::Done(entry) => {
                tracing::debug!(
                    parent,
                    size = src.size,
                    "123 had the content: instant upload"
                );
                return Ok(entry);
            }
            Requested::Session(s) => s,
        };
        self.send_parts(&session, src, opts).await?;
        let body = json!({
            "StorageNode": session.storage_node,
            "bucket": session.bucket,
            "fileId": session.file_id,
            "fileSize": src.size,
            "isMultipart": session.parts > 1,
            "key": session.key,
            "uploadId": session.upload_id,
        });
        let entry = Entry::new_file(session.file_id, name, src.size, &md5);
        self.complete_unsure(Endpoint::UploadCompleteV2, &body, parent, entry)
            .await
    }

    /// Sends the completion `ep` of the upload that makes `entry` in `parent`. A lost answer
    /// to a completion that worked is found by listing: the file with its content (`unsure`).
    pub(super) async fn complete_unsure(
        &self,
        ep: Endpoint,
        body: &serde_json::Value,
        parent: u64,
        entry: Entry,
    ) -> Result<Entry, Error> {
        let md5 = entry.md5.clone().unwrap_or_default();
        send_unsure(
            || async {
                self.client
                    .post_unsure::<serde::de::IgnoredAny>(ep, body)
                    .await
                    .map(|_| entry.clone())
            },
            || made_file(self, parent, &entry.name, &md5, entry.size),
        )
        .await
        .inspect(|e| self.made(parent, e))
    }

    /// `upload_request` for a file: done at once when 123 has the content, else a session.
    /// `AlreadyExists` when the name is taken, as a listing of `parent` from the last
    /// `SEEN_NAMES_FRESH_FOR` (or a new one) says: the web API has no confirmed "refuse a taken
    /// name" mode.
    async fn request_upload(
        &self,
        parent: u64,
        name: &str,
        md5: &str,
        size: u64,
    ) -> Result<Requested, Error> {
        let taken = match self.seen.taken(parent, name) {
            Some(taken) => taken,
            None => find_child(self, parent, name).await?.is_some(),
        };
        if taken {
            return Err(Error::AlreadyExists);
        }
        let body = json!({
            "driveId": 0,
            "duplicate": DUPLICATE_KEEP_BOTH,
            "etag": md5,
            "fileName": name,
            "parentFileId": parent.to_string(),
            "size": size,
            "type": 0,
        });
        // An instant upload may have happened before the answer was lost; a lost session
        // answer only leaves an unused session behind.
        let request = || {
            self.client
                .post_unsure::<api::UploadRequest>(Endpoint::UploadRequest, &body)
        };
        let reply = match open_file(self, parent, name, md5, size, request).await? {
            Outcome::Answered(reply) => reply,
            Outcome::Found(entry) => return Ok(Requested::Done(entry)),
        };
        let file_id = u64::try_from(reply.file_id)
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::unexpected("upload_request answered without a FileId"))?;
        if reply.reuse || reply.key.is_empty() {
            let entry = Entry::new_file(file_id, name, size, md5);
            self.made(parent, &entry);
            return Ok(Requested::Done(entry));
        }
        let static_credentials = !reply.access_key_id.is_empty()
            && !reply.secret_access_key.is_empty()
            && !reply.session_token.is_empty();
        if static_credentials {
            // docs/123.md, web §1.4 step 5 (OpenList's driver: when all three are set).
            if reply.bucket.is_empty() || reply.end_point.is_empty() {
                return Err(Error::unexpected(
                    "upload_request gave S3 credentials without a Bucket or EndPoint",
                ));
            }
            return Ok(Requested::Static(super::s3_static::StaticUpload {
                file_id,
                endpoint: reply.end_point,
                bucket: reply.bucket,
                key: reply.key,
                access_key_id: reply.access_key_id,
                secret_access_key: reply.secret_access_key,
                session_token: reply.session_token,
            }));
        }
        if reply.upload_id.is_empty() || reply.bucket.is_empty() {
            return Err(Error::unexpected(
                "upload_request answered without an UploadId or Bucket",
            ));
        }
        Ok(Requested::Session(Session {
            file_id,
            bucket: reply.bucket,
            key: reply.key,
            upload_id: reply.upload_id,
            storage_node: reply.storage_node,
            parts: size.div_ceil(PART_SIZE).max(1),
        }))
    }

    /// Sends every part, batch by batch of presigned URLs, `parallel_slices` at a time.
    async fn send_parts(
        &self,
        session: &Session,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<(), Error> {
        let parallel = opts.parallel_slices.clamp(1, MAX_PARALLEL_PARTS);
        let confirmed = AtomicU64::new(0);
        let mut first = 1;
        while first <= session.parts {
            let end = (first + URL_BATCH).min(session.parts + 1);
            let urls = self.presign(session, first, end).await?;
            futures_util::stream::iter(first..end)
                .map(|no| self.send_part(session, src, no, urls.get(&no.to_string()).cloned()))
                .buffer_unordered(parallel)
                .try_for_each(|len| {
                    let done = confirmed.fetch_add(len, Ordering::Relaxed) + len;
                    if let Some(progress) = &opts.progress {
                        progress(done);
                    }
                    async { Ok(()) }
                })
                .await?;
            first = end;
        }
        Ok(())
    }

    /// Presigned URLs of parts `first..end` (end exclusive, as the API counts).
    async fn presign(
        &self,
        session: &Session,
        first: u64,
        end: u64,
    ) -> Result<std::collections::HashMap<String, String>, Error> {
        let ep = if session.parts == 1 {
            Endpoint::UploadObjectAuth
        } else {
            Endpoint::UploadPartsBatch
        };
        let body = json!({
            "bucket": session.bucket,
            "key": session.key,
            "partNumberStart": first,
            "partNumberEnd": end,
            "uploadId": session.upload_id,
            "StorageNode": session.storage_node,
        });
        let reply: api::PresignedUrls = self.client.post(ep, &body).await?;
        Ok(reply.urls)
    }

    /// PUTs part `no`, read from disk; a refused (expired) URL is presigned again.
    async fn send_part(
        &self,
        session: &Session,
        src: &UploadSource,
        no: u64,
        url: Option<String>,
    ) -> Result<u64, Error> {
        let offset = (no - 1) * PART_SIZE;
        let len = PART_SIZE.min(src.size - offset);
        let path = src.path.clone();
        let bytes = tokio::task::spawn_blocking(move || read_part(&path, offset, len))
            .await
            .map_err(|e| Error::Unavailable(format!("part reader stopped: {e}")))?
            .map_err(|e| Error::Unavailable(format!("cannot read the file to upload: {e}")))?;
        let mut url = url;
        // Every failure counts against one bound, and a part's Retry-After is honoured (at most
        // `MAX_RETRY_WAIT`): each is read as a rate limit.
        let mut retries = Retries::new(PART_ATTEMPTS - 1, 0);
        loop {
            let target = match url.take() {
                Some(u) => u,
                None => self
                    .presign(session, no, no + 1)
                    .await?
                    .remove(&no.to_string())
                    .ok_or_else(|| Error::unexpected("no presigned URL for a part"))?,
            };
            let outcome = self
                .http
                .put(&target)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(bytes.clone())
                .timeout(PART_TIMEOUT)
                .send()
                .await;
            let mut server_wait = None;
            let failure = match outcome {
                // docs/123.md, open §11: a part is stored only on HTTP 200 (as OpenList checks);
                // another 2xx is not taken for success.
                Ok(res) if res.status() == reqwest::StatusCode::OK => return Ok(len),
                Ok(res) if res.status() == reqwest::StatusCode::FORBIDDEN => {
                    // Expired or refused: the next attempt asks for a fresh URL.
                    format!("the part URL was refused ({})", res.status())
                }
                Ok(res) if busy(res.status()) => {
                    server_wait = crate::backend::pacer::retry_after(res.headers());
                    url = Some(target);
                    format!("the part upload answered {}", res.status())
                }
                Ok(res) => return Err(refused(res.status(), "the part upload")),
                Err(e) => {
                    url = Some(target);
                    // Without the URL: reqwest errors may print it.
                    format!("the part upload failed: {}", e.without_url())
                }
            };
            let busy = Error::RateLimited {
                retry_after: server_wait.map(|w| w.min(MAX_RETRY_WAIT)),
            };
            let Some(delay) = retries.next_anytime(&busy) else {
                return Err(Error::Unavailable(failure));
            };
            tracing::info!(part = no, attempt = retries.used(), reason = %failure, "retrying an upload part");
            tokio::time::sleep(delay).await;
        }
    }
}

/// A storage answer worth sending a part again for: an outage or a rate limit.
pub(super) fn busy(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// A storage answer that ends a part's tries: `what` answered `status`.
pub(super) fn refused(status: reqwest::StatusCode, what: &str) -> Error {
    Error::Upstream {
        code: i64::from(status.as_u16()),
        message: format!("{what} answered {status}"),
        trace_id: String::new(),
    }
}

/// What opening an upload led to.
enum Requested {
    /// The file exists: instant upload (or an earlier send made it).
    Done(Entry),
    /// Bytes must be sent.
    Session(Session),
    /// Bytes must be sent to S3 with static credentials.
    Static(super::s3_static::StaticUpload),
}

/// `len` bytes of `path` at `offset`; a file shorter than that is an error, never a short part.
pub(super) fn read_part(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> std::io::Result<bytes::Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut buf = vec![0; len];
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(bytes::Bytes::from(buf))
}
