//! A client's DELETE or MOVE of a file pending on another instance of the cluster (issue 19):
//! only the instance holding the upload can cancel or retarget it (it is in that instance's
//! queue), so the operation is forwarded there over its internal signed route
//! (`/-/internal/pending`, served by `server::internal`), after this instance checked the
//! client's credentials and the locks, as it would for any write.

use std::time::Duration;

use http::StatusCode;

use crate::backend::{Error, Upstream};
use crate::cluster::{PendingOp, PendingRecord, Unsigned, SIGNATURE_HEADER};

/// The longest the owner may take to cancel or move an upload: a step of the upload in
/// progress (a call to 123) finishes first, and a cancel removes what reached 123 (bounded
/// by the queue's cleanup timeout, 15 s).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What the owner did with a forwarded DELETE or MOVE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Cancelled, or moved; published to the other instances before it answered.
    Done,
    /// It is no longer pending there (it landed meanwhile, or went): the caller does the
    /// operation on what 123 holds, as the owner would have.
    NotPending,
}

/// Asks the owner of `record` to do `op` (`Delete` or `Move`). An owner that cannot be asked
/// or does not answer is `Unavailable` (503 with `Retry-After`, as while it was not
/// forwarded); one that refuses is a `Transport` error (502). Each is logged.
pub async fn forward(
    upstream: &Upstream,
    record: &PendingRecord,
    op: &PendingOp,
) -> Result<Forwarded, Error> {
    let unavailable = || Error::Unavailable(crate::vfs::PENDING_ELSEWHERE.into());
    let Some(cluster) = &upstream.cluster else {
        return Err(unavailable());
    };
    let (url, signature) = match cluster.pending_request(record, op).await {
        Ok(signed) => signed,
        Err(Unsigned::NoSecret) => {
            tracing::warn!(owner = %record.owner, name = %record.name, method = op.method(), "a write on a file pending on another instance waits: the cluster's secret cannot be read");
            return Err(unavailable());
        }
        Err(Unsigned::BadAddress) => return Err(unavailable()),
    };
    let method = http::Method::from_bytes(op.method().as_bytes()).map_err(|_| unavailable())?;
    let answer = upstream
        .http
        .request(method, url)
        .header(SIGNATURE_HEADER, signature)
        .timeout(upstream.timeouts.connect + FORWARD_TIMEOUT)
        .send()
        .await;
    let status = match answer {
        Ok(answer) => answer.status(),
        Err(e) => {
            tracing::warn!(owner = %record.owner, name = %record.name, method = op.method(), error = %e.without_url(), "the instance holding a pending upload did not answer a forwarded write");
            return Err(unavailable());
        }
    };
    match status {
        StatusCode::NO_CONTENT => Ok(Forwarded::Done),
        StatusCode::NOT_FOUND => Ok(Forwarded::NotPending),
        // Busy or stopping: as when it does not answer.
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            tracing::warn!(owner = %record.owner, name = %record.name, method = op.method(), status = status.as_u16(), "the instance holding a pending upload could not take a forwarded write now");
            Err(unavailable())
        }
        _ => {
            tracing::warn!(owner = %record.owner, name = %record.name, method = op.method(), status = status.as_u16(), "the instance holding a pending upload refused a forwarded write");
            Err(Error::Transport(format!(
                "the gateway instance holding this pending upload answered {status}"
            )))
        }
    }
}
