//! The static-credential upload of personal mounts (docs/123.md, web §1.4 step 5, §7): when
//! `upload_request` answers `AccessKeyId`, `SecretAccessKey` and `SessionToken`, the gateway
//! signs S3 requests itself (SigV4, region `123pan`, path style under `EndPoint`, as OpenList's
//! driver configures its AWS client): one `PutObject` for a file of at most one part, else a
//! multipart upload in the presigned flow's 16 MiB parts; then `upload_complete` with the
//! `fileId`.
//!
//! Signing uses `rusty-s3`: a maintained sans-IO S3 request signer (presigned URLs), so the
//! requests go through the gateway's own `reqwest` client, timeouts and retries unchanged, with
//! no second HTTP stack (the AWS SDK) to configure.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, PutObject, UploadPart};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::json;

use super::client::Endpoint;
use super::write::{
    busy, read_part, refused, MAX_PARALLEL_PARTS, PART_ATTEMPTS, PART_SIZE, PART_TIMEOUT,
};
use super::WebBackend;
use crate::backend::retry::Retries;
use crate::backend::{Entry, Error, UploadOptions, UploadSource};

/// The region OpenList's driver signs for.
const REGION: &str = "123pan";
/// How long one signed S3 request stays valid (it is sent at once).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// What `upload_request` handed out for a static-credential upload. No `Debug`: it holds
/// credentials.
pub(super) struct StaticUpload {
    pub file_id: u64,
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl WebBackend {
    /// Sends the file's bytes to S3.
    pub(super) async fn send_static(
        &self,
        upload: &StaticUpload,
        src: &UploadSource,
        opts: &UploadOptions,
    ) -> Result<(), Error> {
        // An endpoint without a scheme is a host name (the AWS SDK's reading): https.
        let endpoint = if upload.endpoint.contains("://") {
            upload.endpoint.clone()
        } else {
            format!("https://{}", upload.endpoint)
        };
        let bucket = url::Url::parse(&endpoint)
            .ok()
            .and_then(|url| Bucket::new(url, UrlStyle::Path, upload.bucket.clone(), REGION).ok())
            .ok_or_else(|| Error::unexpected("upload_request gave an unusable S3 EndPoint"))?;
        let creds = Credentials::new_with_token(
            upload.access_key_id.clone(),
            upload.secret_access_key.clone(),
            upload.session_token.clone(),
        );
        let s3 = S3 {
            http: &self.http,
            bucket: &bucket,
            creds: &creds,
            key: &upload.key,
        };
        let parts = src.size.div_ceil(PART_SIZE).max(1);
        if parts == 1 {
            let body = read(src, 0, src.size).await?;
            let url = PutObject::new(&bucket, Some(&creds), &upload.key).sign(SIGNED_FOR);
            s3.send(reqwest::Method::PUT, url, body, "PutObject")
                .await?;
            if let Some(progress) = &opts.progress {
                progress(src.size);
            }
            return Ok(());
        }
        let url = CreateMultipartUpload::new(&bucket, Some(&creds), &upload.key).sign(SIGNED_FOR);
        let created = s3
            .send(
                reqwest::Method::POST,
                url,
                bytes::Bytes::new(),
                "CreateMultipartUpload",
            )
            .await?;
        let text = String::from_utf8_lossy(&created.1);
        let upload_id = CreateMultipartUpload::parse_response(&text)
            .map_err(|_| {
                Error::unexpected("S3 answered CreateMultipartUpload without an UploadId")
            })?
            .upload_id()
            .to_string();
        let parallel = opts.parallel_slices.clamp(1, MAX_PARALLEL_PARTS);
        let done = std::sync::atomic::AtomicU64::new(0);
        let mut etags: Vec<(u64, String)> = futures_util::stream::iter(1..=parts)
            .map(|no| {
                let (s3, upload_id, done) = (&s3, &upload_id, &done);
                async move {
                    let offset = (no - 1) * PART_SIZE;
                    let len = PART_SIZE.min(src.size - offset);
                    let body = read(src, offset, len).await?;
                    let number = u16::try_from(no)
                        .map_err(|_| Error::unexpected("more S3 parts than S3 allows"))?;
                    let url = UploadPart::new(s3.bucket, Some(s3.creds), s3.key, number, upload_id)
                        .sign(SIGNED_FOR);
                    let (etag, _) = s3
                        .send(reqwest::Method::PUT, url, body, "UploadPart")
                        .await?;
                    let etag = etag
                        .ok_or_else(|| Error::unexpected("S3 answered a part without an ETag"))?;
                    let total = done.fetch_add(len, std::sync::atomic::Ordering::Relaxed) + len;
                    if let Some(progress) = &opts.progress {
                        progress(total);
                    }
                    Ok::<_, Error>((no, etag))
                }
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        etags.sort_by_key(|(no, _)| *no);
        let complete = CompleteMultipartUpload::new(
            &bucket,
            Some(&creds),
            &upload.key,
            &upload_id,
            etags.iter().map(|(_, etag)| etag.as_str()),
        );
        let url = complete.sign(SIGNED_FOR);
        let body = CompleteMultipartUpload::new(
            &bucket,
            Some(&creds),
            &upload.key,
            &upload_id,
            etags.iter().map(|(_, etag)| etag.as_str()),
        )
        .body();
        s3.send(
            reqwest::Method::POST,
            url,
            bytes::Bytes::from(body),
            "CompleteMultipartUpload",
        )
        .await?;
        Ok(())
    }

    /// `upload_complete` `{"fileId"}` after the bytes are on S3; a lost answer is re-checked
    /// by listing (`unsure`), as `upload_complete/v2` is.
    pub(super) async fn complete_static(
        &self,
        parent: u64,
        name: &str,
        md5: &str,
        size: u64,
        file_id: u64,
    ) -> Result<Entry, Error> {
        let body = json!({ "fileId": file_id });
        let entry = Entry::new_file(file_id, name, size, md5);
        self.complete_unsure(Endpoint::UploadComplete, &body, parent, entry)
            .await
    }
}

/// One upload's signing context.
struct S3<'a> {
    http: &'a reqwest::Client,
    bucket: &'a Bucket,
    creds: &'a Credentials,
    key: &'a str,
}

impl S3<'_> {
    /// Sends one signed request, up to `PART_ATTEMPTS` times on a 5xx, 429 or transport error
    /// (a signed URL is good for all of them); its `ETag` and body.
    async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: bytes::Bytes,
        what: &str,
    ) -> Result<(Option<String>, bytes::Bytes), Error> {
        // 5xx, 429 and cuts share one bound: each is read as a rate limit without Retry-After.
        let mut retries = Retries::new(PART_ATTEMPTS - 1, 0);
        let failed = Error::RateLimited { retry_after: None };
        loop {
            let outcome = self
                .http
                .request(method.clone(), url.clone())
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.clone())
                .timeout(PART_TIMEOUT)
                .send()
                .await;
            let failure = match outcome {
                Ok(res) if res.status().is_success() => {
                    let etag = res
                        .headers()
                        .get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = res.bytes().await.map_err(|e| {
                        Error::Transport(format!("S3 {what} answer: {}", e.without_url()))
                    })?;
                    return Ok((etag, body));
                }
                Ok(res) if busy(res.status()) => format!("S3 {what} answered {}", res.status()),
                Ok(res) => return Err(refused(res.status(), &format!("S3 {what}"))),
                // Without the URL: it is signed.
                Err(e) => format!("S3 {what} failed: {}", e.without_url()),
            };
            let Some(delay) = retries.next_anytime(&failed) else {
                return Err(Error::Unavailable(failure));
            };
            tracing::info!(attempt = retries.used(), reason = %failure, "retrying an S3 request");
            tokio::time::sleep(delay).await;
        }
    }
}

/// `len` bytes of the spooled file at `offset`, read off the async threads.
async fn read(src: &UploadSource, offset: u64, len: u64) -> Result<bytes::Bytes, Error> {
    let path = src.path.clone();
    tokio::task::spawn_blocking(move || read_part(&path, offset, len))
        .await
        .map_err(|e| Error::Unavailable(format!("part reader stopped: {e}")))?
        .map_err(|e| Error::Unavailable(format!("cannot read the file to upload: {e}")))
}
