//! `/-/internal/pending`: another instance of the cluster asks this one about an upload still
//! pending here (issue 19): its bytes (GET or HEAD; the asking side is `download::remote`), or
//! a client's DELETE or MOVE of it made on that instance (the asking side is `upload::remote`),
//! which only this instance can do: the upload is in its queue. The request carries no user
//! credentials (the asking instance checked them, and the locks): a signature over the method,
//! every parameter and the expiry (`cluster::PendingOp`), made with the cluster's secret, in a
//! header so that it never lands in an access log. Anything unsigned, expired or wrongly signed
//! (a GET's signature on a DELETE included) is refused with 403.
//!
//! A DELETE or MOVE answers 204 once done and published (the asking instance's next listing
//! shows it), or 404 when the file is no longer pending here (it landed, or went): the asking
//! instance then does the operation on what 123 holds, as this one would.

use std::sync::{Arc, Weak};

use http::{Method, Request, Response, StatusCode};

use super::AppState;
use crate::backend::Entry;
use crate::cluster::{Cluster, PendingOp, SIGNATURE_HEADER};
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
    /// A MOVE's destination: folder and 123-side name.
    to: Option<(u64, String)>,
}

fn parse(query: &str) -> Option<Wanted> {
    if query.len() > MAX_QUERY {
        return None;
    }
    let (mut mount, mut dir, mut name, mut expires) = (None, None, None, None);
    let (mut to_dir, mut to_name) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "mount" => mount = Some(v.into_owned()),
            "dir" => dir = Some(v.parse().ok()?),
            "name" => name = Some(v.into_owned()),
            "expires" => expires = Some(v.parse().ok()?),
            "to_dir" => to_dir = Some(v.parse().ok()?),
            "to_name" => to_name = Some(v.into_owned()),
            _ => {}
        }
    }
    let to = match (to_dir, to_name) {
        (Some(dir), Some(name)) => Some((dir, name)),
        (None, None) => None,
        _ => return None,
    };
    Some(Wanted {
        mount: mount?,
        dir: dir?,
        name: name?,
        expires: expires?,
        to,
    })
}

/// The operation a request asks for: its method, with a MOVE's destination from the query.
/// `None` for a method this route does not serve, or a MOVE without a destination.
fn operation(method: &Method, wanted: &Wanted) -> Option<PendingOp> {
    match (method.as_str(), &wanted.to) {
        ("GET" | "HEAD", None) => Some(PendingOp::Read),
        ("DELETE", None) => Some(PendingOp::Delete),
        ("MOVE", Some((dir, name))) => Some(PendingOp::Move {
            dir: *dir,
            name: name.clone(),
        }),
        _ => None,
    }
}

/// Answers another instance's request about an upload pending here (see the module doc).
pub async fn pending<B>(state: &AppState, req: &Request<B>) -> Response<ResponseBody> {
    if !matches!(req.method().as_str(), "GET" | "HEAD" | "DELETE" | "MOVE") {
        return status_text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET, HEAD, DELETE or MOVE",
            None,
        );
    }
    let Some(cluster) = &state.upstream.cluster else {
        return status_text(StatusCode::NOT_FOUND, "Not found", None);
    };
    let refused = || status_text(StatusCode::FORBIDDEN, "Bad or expired signature", None);
    let bad = || status_text(StatusCode::BAD_REQUEST, "Bad internal request", None);
    let Some(wanted) = parse(req.uri().query().unwrap_or("")) else {
        return bad();
    };
    let Some(op) = operation(req.method(), &wanted) else {
        return bad();
    };
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= MAX_SIGNATURE);
    let Some(signature) = signature else {
        tracing::warn!(mount = %wanted.mount, name = %wanted.name, method = %req.method(), "an internal request without a signature was refused");
        return refused();
    };
    if !cluster
        .verify_pending(
            &op,
            &wanted.mount,
            wanted.dir,
            &wanted.name,
            wanted.expires,
            signature,
        )
        .await
    {
        tracing::warn!(mount = %wanted.mount, name = %wanted.name, method = %req.method(), "an internal request with a bad or expired signature was refused");
        return refused();
    }
    match op {
        PendingOp::Read => serve(state, req, &wanted).await,
        PendingOp::Delete | PendingOp::Move { .. } => change(state, &wanted, &op).await,
    }
}

/// Sends a pending upload's bytes (with `Range`) from this instance's spool.
async fn serve<B>(state: &AppState, req: &Request<B>, wanted: &Wanted) -> Response<ResponseBody> {
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

/// Cancels or moves a pending upload for a client of another instance, as this instance's
/// own DELETE or MOVE of it would (`dav::write`), and publishes the folders it changed before
/// answering, so that the asking instance's next listing shows the change.
async fn change(state: &AppState, wanted: &Wanted, op: &PendingOp) -> Response<ResponseBody> {
    let mount = state
        .mounts
        .iter()
        .find(|m| m.name() == wanted.mount && !m.read_only());
    let Some(mount) = mount else {
        return status_text(StatusCode::NOT_FOUND, "No such writable mount here", None);
    };
    let queue = &state.uploads;
    let (mount_name, dir, name) = (mount.name(), wanted.dir, wanted.name.as_str());
    let done = match op {
        PendingOp::Delete => queue.cancel(mount_name, dir, name).await,
        PendingOp::Move {
            dir: to_dir,
            name: to_name,
        } => {
            if to_name.is_empty() || to_name.contains('/') {
                return status_text(StatusCode::BAD_REQUEST, "Bad destination name", None);
            }
            queue
                .retarget(mount_name, dir, name, *to_dir, to_name)
                .await
        }
        PendingOp::Read => false,
    };
    if !done {
        // It landed (or went) meanwhile: what is pending here is published again first, so
        // the asking instance, which now looks at 123, no longer sees it as pending.
        mount.vfs.publish_pending(dir).await;
        return status_text(StatusCode::NOT_FOUND, "Not pending here", None);
    }
    tracing::info!(mount = %mount_name, name = %name, method = op.method(), "a pending upload was changed for a client of another instance");
    mount.vfs.tell_peers(dir).await;
    if let PendingOp::Move { dir: to_dir, .. } = op {
        if *to_dir != dir {
            mount.vfs.tell_peers(*to_dir).await;
        }
    }
    let mut done = Response::new(crate::response::empty_body());
    *done.status_mut() = StatusCode::NO_CONTENT;
    done
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
        let w = parse("mount=m&dir=7&name=a%20b.txt&expires=99").expect("parsed");
        assert_eq!(
            (w.mount.as_str(), w.dir, w.name.as_str(), w.expires),
            ("m", 7, "a b.txt", 99)
        );
        assert!(w.to.is_none());
        assert!(parse("mount=m&dir=x&name=a&expires=1").is_none());
        assert!(parse("mount=m&dir=1&expires=1").is_none());
        assert!(parse(&"a".repeat(MAX_QUERY + 1)).is_none());
        let w = parse("mount=m&dir=7&name=a&expires=9&to_dir=8&to_name=b").expect("move");
        assert_eq!(w.to, Some((8, "b".to_string())));
        // A destination is whole or absent.
        assert!(parse("mount=m&dir=7&name=a&expires=9&to_dir=8").is_none());
        assert!(parse("mount=m&dir=7&name=a&expires=9&to_name=b").is_none());
    }

    #[test]
    fn the_method_and_the_query_agree() {
        let read = parse("mount=m&dir=7&name=a&expires=9").expect("read");
        let moved = parse("mount=m&dir=7&name=a&expires=9&to_dir=8&to_name=b").expect("move");
        assert_eq!(operation(&Method::GET, &read), Some(PendingOp::Read));
        assert_eq!(operation(&Method::HEAD, &read), Some(PendingOp::Read));
        assert_eq!(operation(&Method::DELETE, &read), Some(PendingOp::Delete));
        let mv = Method::from_bytes(b"MOVE").expect("method");
        assert_eq!(operation(&mv, &read), None);
        assert_eq!(
            operation(&mv, &moved),
            Some(PendingOp::Move {
                dir: 8,
                name: "b".into()
            })
        );
        assert_eq!(operation(&Method::GET, &moved), None);
        assert_eq!(operation(&Method::DELETE, &moved), None);
        assert_eq!(operation(&Method::PUT, &read), None);
    }
}
