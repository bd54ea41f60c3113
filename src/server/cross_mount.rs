//! COPY and MOVE between mounts, which dav-server cannot do (one filesystem per request).
//!
//! A file is created in the target account by instant reuse (MD5 + size) when 123 already has
//! the content, and otherwise streamed through the gateway into the target mount's spool and
//! upload queue (`Mount::copy_through`, which reads 123 through the download path of a GET). Folders are copied entry by entry. MOVE is COPY, then the source to the
//! recycle bin. Locks are checked here as dav-server would: the destination (and for MOVE the
//! source) must not be locked by someone else, unless the request carries the lock token.

use std::sync::Arc;

use dav_server::davpath::DavPath;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::{HeaderMap, Response, StatusCode};

use super::errors::error_response;
use super::paths;
use crate::backend::{Entry, Error};
use crate::mount::Mount;
use crate::response;
use crate::response::ResponseBody;
use crate::vfs::Local;
use response::status_text;

type Outcome = Result<(), Response<ResponseBody>>;

/// The lock tokens a request submits in its `If` header.
fn submitted_tokens(headers: &HeaderMap) -> Vec<String> {
    let Some(value) = headers.get("If").and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    value
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(t, _)| t.to_string()))
        .filter(|t| t.starts_with("opaquelocktoken:") || t.starts_with("urn:uuid:"))
        .collect()
}

/// 423 unless `segs` (and below) is free of other people's locks or the request holds them.
async fn check_unlocked(mount: &Mount, segs: &[String], user: &str, tokens: &[String]) -> Outcome {
    let Ok(path) = DavPath::new(&paths::encode(segs)) else {
        return Ok(());
    };
    match mount
        .locks
        .check(&path, Some(user), false, true, tokens)
        .await
    {
        Ok(()) => Ok(()),
        Err(_) => Err(status_text(
            StatusCode::LOCKED,
            "The resource is locked",
            None,
        )),
    }
}

/// Answers a COPY or MOVE whose Destination is in another mount.
#[allow(clippy::too_many_arguments)]
pub async fn copy_or_move(
    src: &Arc<Mount>,
    src_segs: &[String],
    dst: &Arc<Mount>,
    dst_segs: &[String],
    headers: &HeaderMap,
    user: &str,
    is_move: bool,
) -> Response<ResponseBody> {
    match run(src, src_segs, dst, dst_segs, headers, user, is_move).await {
        Ok(existed) => {
            let mut res = Response::new(response::empty_body());
            *res.status_mut() = if existed {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            };
            res
        }
        Err(res) => res,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    src: &Arc<Mount>,
    src_segs: &[String],
    dst: &Arc<Mount>,
    dst_segs: &[String],
    headers: &HeaderMap,
    user: &str,
    is_move: bool,
) -> Result<bool, Response<ResponseBody>> {
    // The request path of `segs` in mount `m`, for the log line of an error answer.
    let full_path = |m: &Mount, segs: &[String]| {
        format!(
            "{}{}",
            m.config.path.trim_end_matches('/'),
            paths::encode(segs)
        )
    };
    if dst.read_only() {
        return Err(status_text(
            StatusCode::FORBIDDEN,
            "The destination mount is read-only",
            None,
        ));
    }
    let overwrite = !headers
        .get("Overwrite")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"F"));
    let tokens = submitted_tokens(headers);
    if is_move {
        check_unlocked(src, src_segs, user, &tokens).await?;
    }
    check_unlocked(dst, dst_segs, user, &tokens).await?;
    let entry = src
        .vfs
        .resolve(src_segs)
        .await
        .map_err(|e| error_response(&e, &full_path(src, src_segs)))?;
    let Some((name, dst_parent_segs)) = dst_segs.split_last() else {
        return Err(status_text(
            StatusCode::FORBIDDEN,
            "Cannot replace a mount's root",
            None,
        ));
    };
    let dst_parent = match dst.vfs.resolve(dst_parent_segs).await {
        Ok(p) if p.is_dir => p,
        Ok(_) | Err(Error::NotFound) => {
            return Err(status_text(
                StatusCode::CONFLICT,
                "The destination folder does not exist",
                None,
            ))
        }
        Err(e) => return Err(error_response(&e, &full_path(dst, dst_segs))),
    };
    let existed = match dst.vfs.resolve(dst_segs).await {
        Ok(existing) => {
            if !overwrite {
                return Err(status_text(
                    StatusCode::PRECONDITION_FAILED,
                    "The destination exists and Overwrite is F",
                    None,
                ));
            }
            remove(dst, &existing, &dst_parent, name)
                .await
                .map_err(|e| error_response(&e, &full_path(dst, dst_segs)))?;
            true
        }
        Err(Error::NotFound) => false,
        Err(e) => return Err(error_response(&e, &full_path(dst, dst_segs))),
    };
    copy_entry(src, entry.clone(), dst, dst_parent, name.clone())
        .await
        .map_err(|e| error_response(&e, &full_path(dst, dst_segs)))?;
    if is_move {
        let src_parent = src
            .vfs
            .resolve(&src_segs[..src_segs.len().saturating_sub(1)])
            .await;
        let src_parent = src_parent.map_err(|e| error_response(&e, &full_path(src, src_segs)))?;
        remove(
            src,
            &entry,
            &src_parent,
            src_segs.last().map(String::as_str).unwrap_or(""),
        )
        .await
        .map_err(|e| error_response(&e, &full_path(src, src_segs)))?;
    }
    Ok(existed)
}

/// Removes an entry: a pending upload from the queue (this instance's, or its owner's in a
/// cluster), anything else to the recycle bin.
async fn remove(mount: &Mount, entry: &Entry, parent: &Entry, name: &str) -> Result<(), Error> {
    match mount.vfs.local(entry) {
        Some(Local::Empty) => {
            mount.vfs.overlay().remove(parent.id, name);
            Ok(())
        }
        // Pending here, or on another instance of the cluster (which is asked to cancel it).
        Some(local @ (Local::Spooled(_) | Local::Remote(_))) => {
            if mount.cancel_pending(&local, parent, name).await? {
                return Ok(());
            }
            // It landed in 123 meanwhile: remove that.
            mount.vfs.trash_landed(parent, name).await.map(|_| ())
        }
        None => mount.vfs.trash(entry, parent).await,
    }
}

fn copy_entry<'a>(
    src: &'a Arc<Mount>,
    entry: Entry,
    dst: &'a Arc<Mount>,
    dst_parent: Entry,
    name: String,
) -> BoxFuture<'a, Result<(), Error>> {
    async move {
        if entry.is_dir {
            let folder = dst.vfs.mkdir(&dst_parent, &name).await?;
            for child in src.vfs.list_view(&entry).await? {
                let child_name = child.name.clone();
                copy_entry(src, child, dst, folder.clone(), child_name).await?;
            }
            return Ok(());
        }
        let local = src.vfs.local(&entry);
        // A file pending on another instance stays put until it lands: a MOVE would copy it
        // and then fail to remove it (only its owner can).
        if let Some(Local::Remote(_)) = local {
            return Err(Error::Unavailable(crate::vfs::PENDING_ELSEWHERE.into()));
        }
        if let (Some(md5), None) = (entry.md5.as_deref(), local) {
            if dst
                .vfs
                .copy_instant(&dst_parent, &name, md5, entry.size)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        dst.copy_through(src, &entry, &dst_parent, &name)
            .await
            .map_err(crate::mount::PutError::into_backend)
    }
    .boxed()
}
