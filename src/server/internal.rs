//! `/-/internal/pending`: another instance of the cluster asks this one for the bytes of an
//! upload still pending here (issue 19; the asking side is `download::remote`). The request
//! carries no user credentials: a signature over (mount, folder, name, expiry) made with the
//! cluster's secret, in a header so that it never lands in an access log. Anything unsigned,
//! expired or wrongly signed is refused with 403.

use std::sync::{Arc, Weak};

use http::{Method, Request, Response, StatusCode};

use super::AppState;
use crate::backend::Entry;
use crate::cluster::{Cluster, SIGNATURE_HEADER};
use crate::download::local;
use crate::mount::Mount;
use crate::response::{status_text, ResponseBody};
use crate::upload::UploadQueue;

/// Longest query read.
const MAX_QUERY: usize = 8 * 1024;
/// Longest signature read.
const MAX_SIGNATURE: usize = 256;

/// What the asking instance names.
struct Wanted {
    mount: String,
    dir: u64,
    name: String,
    expires: u64,
}

fn parse(query: &str) -> Option<Wanted> {
    if query.len() > MAX_QUERY {
        return None;
    }
    let (mut mount, mut dir, mut name, mut expires) = (None, None, None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "mount" => mount = Some(v.into_owned()),
            "dir" => dir = v.parse().ok(),
            "name" => name = Some(v.into_owned()),
            "expires" => expires = v.parse().ok(),
            _ => {}
        }
    }
    Some(Wanted {
        mount: mount?,
        dir: dir?,
        name: name?,
        expires: expires?,
    })
}

/// Serves a pending upload's bytes (GET or HEAD, with `Range`) from this instance's spool.
pub async fn pending<B>(state: &AppState, req: &Request<B>) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return status_text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD", None);
    }
    let Some(cluster) = &state.upstream.cluster else {
        return status_text(StatusCode::NOT_FOUND, "Not found", None);
    };
    let refused = || status_text(StatusCode::FORBIDDEN, "Bad or expired signature", None);
    let Some(wanted) = parse(req.uri().query().unwrap_or("")) else {
        return status_text(StatusCode::BAD_REQUEST, "Bad internal request", None);
    };
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= MAX_SIGNATURE);
    let Some(signature) = signature else {
        tracing::warn!(mount = %wanted.mount, name = %wanted.name, "an internal request without a signature was refused");
        return refused();
    };
    if !cluster
        .verify_pending(
            &wanted.mount,
            wanted.dir,
            &wanted.name,
            wanted.expires,
            signature,
        )
        .await
    {
        tracing::warn!(mount = %wanted.mount, name = %wanted.name, "an internal request with a bad or expired signature was refused");
        return refused();
    }
    let Some(file) = state.uploads.find(&wanted.mount, wanted.dir, &wanted.name) else {
        return status_text(StatusCode::NOT_FOUND, "Not pending here", None);
    };
    let entry = Entry {
        id: 0,
        name: file.name.clone(),
        is_dir: false,
        size: file.size,
        md5: Some(file.md5.clone()),
        version: None,
        modified: file.modified,
        created: file.modified,
    };
    local::serve(
        req.method(),
        req.headers(),
        &entry,
        local::Source::File(&file.path),
    )
    .await
}

/// Publishes this instance's pending uploads again every `PENDING_REFRESH` (at once first, so
/// the uploads a restart resumes are listed everywhere), while the state lives.
pub(super) fn spawn_pending_refresh(
    cluster: &Arc<Cluster>,
    uploads: &Arc<UploadQueue>,
    mounts: &[Arc<Mount>],
) {
    let cluster: Weak<Cluster> = Arc::downgrade(cluster);
    let uploads: Weak<UploadQueue> = Arc::downgrade(uploads);
    let mounts: Vec<Weak<Mount>> = mounts.iter().map(Arc::downgrade).collect();
    tokio::spawn(async move {
        loop {
            let (Some(cluster), Some(queue)) = (cluster.upgrade(), uploads.upgrade()) else {
                return;
            };
            if cluster.available() {
                for (mount, dir) in queue.pending_folders() {
                    let found = mounts
                        .iter()
                        .filter_map(Weak::upgrade)
                        .find(|m| m.name() == mount);
                    if let Some(m) = found {
                        m.vfs.publish_pending(dir).await;
                    }
                }
            }
            drop((cluster, queue));
            tokio::time::sleep(crate::cluster::PENDING_REFRESH).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_whole_or_not_at_all() {
        let w = parse("mount=%2Fm&dir=7&name=a%20b.txt&expires=99").expect("parsed");
        assert_eq!(
            (w.mount.as_str(), w.dir, w.name.as_str(), w.expires),
            ("/m", 7, "a b.txt", 99)
        );
        assert!(parse("mount=%2Fm&dir=x&name=a&expires=1").is_none());
        assert!(parse("mount=%2Fm&dir=1&expires=1").is_none());
        assert!(parse(&"a".repeat(MAX_QUERY + 1)).is_none());
    }
}
