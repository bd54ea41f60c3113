//! A GET of a file pending on another instance of the cluster (issue 19): its bytes are only in
//! the owner's spool until the upload lands, so they are fetched from the owner over its
//! internal signed route (`/-/internal/pending`, served by `server::internal`) and passed on.
//! The preconditions and HEAD were answered here already (`preflight`, from the published
//! size, MD5 and time, which the owner's answer shares); only the range travels.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{
    HeaderMap, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
    RANGE,
};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};

use crate::backend::Upstream;
use crate::cluster::{PendingOp, PendingRecord, Unsigned, SIGNATURE_HEADER};
use crate::response::{status_text, ResponseBody};

/// What a client is told to wait when the owner cannot answer right now.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends the bytes of `record` from its owner: the client's `Range` when `honour_range`.
pub async fn send(
    upstream: &Upstream,
    record: &Arc<PendingRecord>,
    headers: &HeaderMap,
    honour_range: bool,
) -> Response<ResponseBody> {
    let Some(cluster) = &upstream.cluster else {
        return status_text(StatusCode::BAD_GATEWAY, "Not in a cluster", None);
    };
    let unavailable = |why: &str| {
        status_text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("The file is being uploaded by another gateway instance, which {why}"),
            Some(RETRY_AFTER),
        )
    };
    let (url, signature) = match cluster.pending_request(record, &PendingOp::Read).await {
        Ok(signed) => signed,
        Err(Unsigned::NoSecret) => {
            return unavailable("cannot be asked while the cluster's Redis is unavailable")
        }
        Err(Unsigned::BadAddress) => return unavailable("published no usable address"),
    };
    let mut rb = upstream
        .http
        .get(url)
        .header(SIGNATURE_HEADER, signature)
        .timeout(upstream.timeouts.first_byte + upstream.timeouts.connect);
    if honour_range {
        if let Some(range) = headers.get(RANGE) {
            rb = rb.header(RANGE, range);
        }
    }
    let answer = match rb.send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(owner = %record.owner, name = %record.name, error = %e.without_url(), "the instance holding a pending upload did not answer");
            return status_text(
                StatusCode::BAD_GATEWAY,
                "The gateway instance holding this pending upload did not answer",
                None,
            );
        }
    };
    let status = answer.status().as_u16();
    match status {
        200 | 206 | 416 => {}
        404 => return unavailable("has just finished (or cancelled) it; try again"),
        _ => {
            tracing::warn!(owner = %record.owner, name = %record.name, status, "the instance holding a pending upload refused to send it");
            return status_text(
                StatusCode::BAD_GATEWAY,
                "The gateway instance holding this pending upload refused to send it",
                None,
            );
        }
    }
    let mut res = Response::builder().status(status);
    for name in [
        CONTENT_LENGTH,
        CONTENT_RANGE,
        CONTENT_TYPE,
        ETAG,
        LAST_MODIFIED,
        ACCEPT_RANGES,
    ] {
        if let Some(v) = answer.headers().get(&name) {
            res = res.header(name, v.clone());
        }
    }
    let body = answer.bytes_stream().map(|chunk| {
        chunk
            .map(|b: Bytes| http_body::Frame::data(b))
            .map_err(|e| std::io::Error::other(e.without_url()))
    });
    res.body(StreamBody::new(body).boxed_unsync())
        .unwrap_or_else(|_| status_text(StatusCode::BAD_GATEWAY, "Bad answer from the owner", None))
}
