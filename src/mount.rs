//! A mount: one backend behind one path, with its caches, download policy and the local
//! side stores (locks, dead properties, client junk) that 123 has no place for.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::BodyExt;

use crate::backend::link::{LinkBackend, Signing};
use crate::backend::open::client::OpenClients;
use crate::backend::open::{LinkMode, OpenBackend};
use crate::backend::share::{ShareBackend, ShareParams};
use crate::backend::signer::DirectSigner;
use crate::backend::web::{token_file, WebBackend, WebParams};
use crate::backend::{Backend, Entry, Error, Upstream};
use crate::clock::Clock;
use crate::cluster::PendingOp;
use crate::config::{BackendConfig, DownloadPolicy, MountConfig, StoreLimits};
use crate::dav::junk::JunkStore;
use crate::dav::locks::{LockStore, MemoryLocks};
use crate::dav::props::{Budget, PropStore};
use crate::dav::shared_locks::SharedLocks;
use crate::download::range::RangeRequest;
use crate::download::{fetch, ProxyError, VfsLinks};
use crate::upload::remote::Forwarded;
use crate::upload::{NewJob, SpoolError, SpoolWriter, SpooledFile};
use crate::vfs::{cloud_name, Local, Vfs};

/// How a writable mount stores uploads.
pub struct Writes {
    pub queue: Arc<crate::upload::UploadQueue>,
    pub spool: Arc<crate::upload::Spool>,
    /// `upload = "sync"`: a PUT answers only once 123 has the file.
    pub sync: bool,
    /// How the gateway reaches 123, for copies whose bytes pass through the gateway.
    pub upstream: Upstream,
}

/// One configured mount, ready to serve.
pub struct Mount {
    pub config: MountConfig,
    /// `config.path`, shared: what the per-request counters (metrics, traffic) are keyed by,
    /// so counting a request copies no string.
    pub label: Arc<str>,
    pub vfs: Vfs,
    /// Class-2 locks; per process, bounded (see `dav::locks`).
    pub locks: Box<dyn LockStore>,
    pub props: PropStore,
    pub junk: JunkStore,
    /// `[cluster]`: the junk shared with the other instances (writable mounts).
    pub shared_junk: Option<crate::cluster::SharedJunk>,
    /// `[cluster]`: `props` shared with the other instances (writable mounts).
    pub shared_props: Option<crate::cluster::SharedProps>,
    /// `None` for read-only mounts.
    pub writes: Option<Writes>,
}

impl Mount {
    /// The first path segment it is served under ("" when mounted at "/").
    pub fn name(&self) -> &str {
        self.config.name()
    }

    pub fn read_only(&self) -> bool {
        self.writes.is_none()
    }

    pub fn policy(&self) -> DownloadPolicy {
        self.config.download
    }

    /// Takes a spooled file as `name` (client-side) in folder `parent`: uploads it now
    /// (`upload = "sync"`) or records it in the queue, keeps the overlay and the folder's
    /// listing in step, and removes the spooled file when it cannot be taken. Every way a file
    /// enters a mount (a PUT, a COPY of a pending file, a copy whose bytes pass through the
    /// gateway) ends here, so the order of these steps is written once.
    pub async fn put(
        &self,
        parent: u64,
        name: &str,
        file: SpooledFile,
        modified: SystemTime,
    ) -> Result<(), PutError> {
        let Some(writes) = self.writes.as_ref() else {
            file.discard().await;
            return Err(PutError::Backend(Error::Unsupported));
        };
        let cloud = match cloud_name(name) {
            Ok(c) => c,
            Err(e) => {
                file.discard().await;
                return Err(PutError::Backend(e));
            }
        };
        if file.size == 0 {
            file.discard().await;
            return self.keep_empty(parent, name, &cloud, modified).await;
        }
        let job = NewJob {
            mount: self.name().to_string(),
            parent_id: parent,
            name: cloud,
            file,
            modified,
        };
        let overlay = self.vfs.overlay();
        if writes.sync {
            // A placeholder (an earlier empty PUT or LOCK) gives way to the real file.
            overlay.remove(parent, name);
            let result = writes.queue.upload_now(job).await;
            self.vfs.invalidate(parent).await;
            result.map(|_| ()).map_err(PutError::Backend)
        } else {
            writes.queue.enqueue(job).await.map_err(PutError::Queue)?;
            // Removed only once the pending file lists in its place.
            overlay.remove(parent, name);
            // In a cluster, every instance lists it before the PUT is answered.
            self.vfs.publish_pending(parent).await;
            Ok(())
        }
    }

    /// An empty file is kept by the gateway, never uploaded (123 may reject empty uploads:
    /// docs/123.md, open §8; see `vfs::overlay`), durably before the PUT is answered. What was
    /// at the name before is replaced, as a PUT replaces: a queued upload is cancelled, a cloud
    /// file removed (the mount's `delete`).
    async fn keep_empty(
        &self,
        parent: u64,
        name: &str,
        cloud: &str,
        modified: SystemTime,
    ) -> Result<(), PutError> {
        let overlay = self.vfs.overlay();
        overlay.add_empty(parent, name, modified).map_err(|e| {
            PutError::Queue(anyhow::Error::new(e).context("recording an empty file in state_dir"))
        })?;
        if let Some(writes) = &self.writes {
            writes.queue.cancel(self.name(), parent, cloud).await;
        }
        let dir = Entry::new_folder(parent, "");
        self.vfs.invalidate(parent).await;
        let old = match self.vfs.list(&dir).await {
            Ok(listing) => listing.find(name).cloned(),
            Err(_) => None,
        };
        if let Some(old) = old {
            if let Err(e) = self.vfs.trash(&old, &dir).await {
                tracing::warn!(mount = %self.config.path, name, error = %e, "an empty file replaced a file on 123, which could not be removed; the empty one is shown");
            }
        }
        Ok(())
    }

    /// The folders at or below `folder` that uploads are queued into: asked before a DELETE of
    /// `folder`, so that `cancel_pending_in` can drop them with it. Walks the folder's
    /// listings (cached ones cost nothing) only when some upload of this mount is queued, at
    /// most `MAX_WALK` folders; a queued upload left out fails later and keeps its content
    /// under `failed/`, which is the safe side.
    pub async fn pending_folders_under(&self, folder: &Entry) -> Vec<u64> {
        const MAX_WALK: usize = 1_000;
        let Some(writes) = &self.writes else {
            return Vec::new();
        };
        let mut wanted: std::collections::HashSet<u64> = writes
            .queue
            .pending_folders()
            .into_iter()
            .filter(|(mount, _)| mount == self.name())
            .map(|(_, id)| id)
            .collect();
        let mut found = Vec::new();
        let mut next = vec![folder.clone()];
        let mut walked = 0;
        while let Some(dir) = next.pop() {
            if wanted.is_empty() || walked == MAX_WALK {
                break;
            }
            walked += 1;
            if wanted.remove(&dir.id) {
                found.push(dir.id);
            }
            let Ok(listing) = self.vfs.list(&dir).await else {
                continue;
            };
            next.extend(listing.entries.iter().filter(|e| e.is_dir).cloned());
        }
        found
    }

    /// Cancels the uploads queued into `folders` (found by `pending_folders_under`, whose
    /// folder is now deleted).
    pub async fn cancel_pending_in(&self, folders: &[u64]) {
        let Some(writes) = &self.writes else { return };
        for &folder in folders {
            let n = writes.queue.cancel_in(self.name(), folder).await;
            if n > 0 {
                tracing::info!(mount = %self.config.path, folder, uploads = n, "queued uploads cancelled with their deleted folder");
            }
        }
    }

    /// A client's DELETE of pending file `name` (client-side) in `parent`, whose bytes are
    /// `local`: its upload is cancelled here, or by the instance of the cluster holding it
    /// (`upload::remote`). `Ok(false)` when it is no longer pending (it landed meanwhile): the
    /// caller removes what 123 holds. Other kinds of `local` are not pending: `Ok(false)`.
    pub async fn cancel_pending(
        &self,
        local: &Local,
        parent: &Entry,
        name: &str,
    ) -> Result<bool, Error> {
        let Some(writes) = &self.writes else {
            return Ok(false);
        };
        match local {
            Local::Spooled(_) => Ok(writes
                .queue
                .cancel(self.name(), parent.id, &cloud_name(name)?)
                .await),
            Local::Remote(record) => {
                crate::upload::remote::forward(&writes.upstream, record, &PendingOp::Delete)
                    .await
                    .map(|done| done == Forwarded::Done)
            }
            Local::Empty => Ok(false),
        }
    }

    /// A client's MOVE of pending file `from_name` (client-side) in `from_parent`, whose bytes
    /// are `local`, to `to_name` in `to_parent` of this mount: its upload is retargeted here,
    /// or by the instance of the cluster holding it. `Ok(false)` when it is no longer pending
    /// (it landed meanwhile): the caller moves what 123 holds.
    pub async fn move_pending(
        &self,
        local: &Local,
        (from_parent, from_name): (&Entry, &str),
        (to_parent, to_name): (&Entry, &str),
    ) -> Result<bool, Error> {
        let Some(writes) = &self.writes else {
            return Ok(false);
        };
        let new = cloud_name(to_name)?;
        match local {
            Local::Spooled(_) => Ok(writes
                .queue
                .retarget(
                    self.name(),
                    from_parent.id,
                    &cloud_name(from_name)?,
                    to_parent.id,
                    &new,
                )
                .await),
            Local::Remote(record) => {
                let op = PendingOp::Move {
                    dir: to_parent.id,
                    name: new,
                };
                crate::upload::remote::forward(&writes.upstream, record, &op)
                    .await
                    .map(|done| done == Forwarded::Done)
            }
            Local::Empty => Ok(false),
        }
    }

    /// Copies file `entry` of mount `src` into folder `dst_parent` of this mount as `name`, its
    /// bytes passing through the gateway into this mount's upload queue. For copies 123 cannot
    /// make by instant reuse: across accounts, a file still pending (here, or on another
    /// instance of the cluster), or when `create` does not
    /// hand back the new file (docs/123.md, open §11, `reuse: true` with `fileID: 0`).
    ///
    /// Bytes from 123 come through the same download path as a client's GET through a proxy
    /// mount (`download::fetch`): the upstream answer is judged before it is used, the
    /// first byte is awaited no longer than `server.upstream_first_byte_timeout`, a refused
    /// link is replaced by a fresh one, and the body is exactly the file's bytes or an error.
    pub async fn copy_through(
        &self,
        src: &Mount,
        entry: &Entry,
        dst_parent: &Entry,
        name: &str,
    ) -> Result<(), PutError> {
        let writes = self
            .writes
            .as_ref()
            .ok_or(PutError::Backend(Error::Unsupported))?;
        let mut writer = writes.spool.writer(Some(entry.size)).await?;
        match src.vfs.local(entry) {
            Some(Local::Empty) => {}
            // Pending on another instance of the cluster: its bytes come from that instance's
            // spool, as a GET of it would (`download::remote`). Any answer but the whole file
            // (it landed meanwhile, the owner is away) leaves the copy for later: 503.
            Some(Local::Remote(record)) => {
                let answer = crate::download::remote::send(
                    &writes.upstream,
                    &record,
                    &http::HeaderMap::new(),
                    false,
                )
                .await;
                if answer.status() != http::StatusCode::OK {
                    drop(writer);
                    return Err(PutError::Backend(Error::Unavailable(
                        crate::vfs::PENDING_ELSEWHERE.into(),
                    )));
                }
                spool_body(
                    &mut writer,
                    answer.into_body(),
                    "reading the source from the instance holding it",
                )
                .await?;
            }
            Some(Local::Spooled(path)) => {
                let mut file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|_| PutError::Backend(Error::NotFound))?;
                writer.write_from(&mut file).await?;
            }
            // The source was a pending upload when the caller read it and has landed since:
            // its spool file is gone and 123 knows it under another id. Not found, so the
            // caller looks it up again (litmus copy_coll met this race between the caller's
            // check and this one: a 207 with a 500 member, from asking 123 for a local id).
            None if Vfs::was_local(entry) => {
                drop(writer);
                return Err(PutError::Backend(Error::NotFound));
            }
            None => {
                if entry.size == 0 && src.vfs.backend().capabilities().sizes_may_be_unknown {
                    // The download path promises `entry.size` bytes: an unknown size would be
                    // copied as an empty file.
                    return Err(PutError::Backend(Error::Unavailable(
                        "the size of the source is unknown, so it cannot be copied".into(),
                    )));
                }
                let links = VfsLinks { mount: src, entry };
                let body = fetch(&writes.upstream, entry, &links, RangeRequest::Full, None)
                    .await
                    .map_err(|e| PutError::Backend(source_error(e)))?;
                spool_body(&mut writer, body, "downloading the source").await?;
            }
        }
        let file = writer.finish().await?;
        if file.size != entry.size {
            file.discard().await;
            return Err(PutError::Backend(Error::Unavailable(
                "the source ended early".into(),
            )));
        }
        self.put(dst_parent.id, name, file, SystemTime::now()).await
    }
}

/// Writes every data frame of a copy's source `body` into `writer`; a broken body is a
/// transport error saying what was `doing`.
async fn spool_body<B>(writer: &mut SpoolWriter, body: B, doing: &str) -> Result<(), PutError>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| PutError::Backend(Error::Transport(format!("{doing}: {e}"))))?;
        if let Ok(chunk) = frame.into_data() {
            writer.write(&chunk).await?;
        }
    }
    Ok(())
}

/// Why [`Mount::put`] or [`Mount::copy_through`] could not take a file. The spooled content
/// is gone in every case.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The spool refused the bytes (too large, full, or a disk error).
    #[error("spooling: {0}")]
    Spool(#[from] SpoolError),
    /// 123 (or the source of a copy) failed, or the name cannot be stored.
    #[error(transparent)]
    Backend(Error),
    /// The queue could not record the job durably.
    #[error("queueing: {0:#}")]
    Queue(anyhow::Error),
}

impl PutError {
    /// As a backend error, for callers that answer every failure through `error_response`.
    pub fn into_backend(self) -> Error {
        match self {
            PutError::Spool(SpoolError::TooLarge) => Error::TooLarge,
            PutError::Backend(e) => e,
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// A failed download of a copy's source as a backend error: a refused or wrong upstream
/// answer is a bad gateway (502), a CDN that keeps rate limiting is 123 rate limiting (503).
fn source_error(e: ProxyError) -> Error {
    match e {
        ProxyError::Link(e) => e,
        ProxyError::Busy { retry_after } => Error::RateLimited {
            retry_after: Some(retry_after),
        },
        other => Error::Transport(format!("downloading the source: {other}")),
    }
}

/// Builds the backend of every mount. Mounts that share a client id share one `OpenClient`.
pub fn build_backends(
    mounts: &[MountConfig],
    upstream: &Upstream,
    clients: &OpenClients,
    state_dir: Option<&Path>,
    clock: &Clock,
    user_agent: &str,
) -> Vec<Arc<dyn Backend>> {
    mounts
        .iter()
        .map(|m| -> Arc<dyn Backend> {
            match &m.backend {
                BackendConfig::Open(open) => {
                    let client = clients.get_for(upstream, open, state_dir);
                    let links = if open.direct_link {
                        LinkMode::Direct {
                            signer: open.direct_link_key.as_ref().map(|k| {
                                Arc::new(DirectSigner::new(
                                    upstream.http.clone(),
                                    k.expose().to_string(),
                                    open.direct_link_valid,
                                    open.auth_key_path,
                                ))
                            }),
                        }
                    } else {
                        LinkMode::DownloadInfo
                    };
                    Arc::new(OpenBackend::new(client, open.root_id, links))
                }
                BackendConfig::Share(share) => {
                    let backend = Arc::new(ShareBackend::new(
                        upstream,
                        ShareParams {
                            api_base: share.api_base.clone(),
                            share_key: share.share_key.clone(),
                            share_password: share
                                .share_password
                                .as_ref()
                                .map(|p| p.expose().to_string()),
                            access_token: share
                                .access_token
                                .as_ref()
                                .map(|t| t.expose().to_string()),
                            root_id: share.root_id,
                            user_agent: user_agent.to_string(),
                        },
                    ));
                    warn_if_redirect_fails(m, backend.as_ref());
                    backend
                }
                BackendConfig::Web(web) => {
                    let backend = Arc::new(WebBackend::new(
                        upstream,
                        WebParams {
                            api_base: web.api_base.clone(),
                            login_base: web.login_base.clone(),
                            username: web.username.clone(),
                            password: web.password.clone(),
                            pasted_token: web.token.clone(),
                            root_id: web.root_id,
                            token_file: state_dir.map(|d| token_file(d, &web.username)),
                            clock: clock.clone(),
                            user_agent: user_agent.to_string(),
                        },
                    ));
                    warn_if_redirect_fails(m, backend.as_ref());
                    backend
                }
                BackendConfig::Link(link) => Arc::new(LinkBackend::new(
                    upstream.http.clone(),
                    link.tree.clone(),
                    link.direct_link_key.as_ref().map(|key| Signing {
                        key: key.expose().to_string(),
                        uid: link.uid,
                        valid: link.direct_link_valid,
                        path: link.auth_key_path,
                    }),
                )),
            }
        })
        .collect()
}

/// `download = "redirect"` is honoured on mounts whose links need headers (share links need
/// their Referer), but most clients will then be refused by the CDN: say so at start-up.
fn warn_if_redirect_fails(m: &MountConfig, backend: &dyn Backend) {
    if m.download == DownloadPolicy::Redirect && backend.capabilities().links_need_headers {
        tracing::warn!(
            mount = %m.path,
            "download = \"redirect\" on a {} mount: its links need a Referer that most clients do \
             not send, so the CDN will refuse them; use \"auto\" or \"proxy\"",
            m.backend.kind()
        );
    }
}

/// Builds a mount around its backend. `writes` is given for mounts that may be written;
/// `limits` caps its side stores.
pub fn build_mount(
    config: &MountConfig,
    backend: Arc<dyn Backend>,
    state_dir: Option<&Path>,
    writes: Option<Writes>,
    limits: &StoreLimits,
    clock: &Clock,
    metrics: &crate::metrics::Metrics,
) -> Arc<Mount> {
    let props_file = state_dir.map(|d| {
        d.join("props")
            .join(format!("{}.json", store_name(config.name())))
    });
    let writes = writes.filter(|_| !config.read_only && backend.capabilities().writable);
    let ttls = crate::vfs::Ttls {
        default: config.cache_ttl,
        by_depth: config.cache_ttl_by_depth.clone(),
    };
    let vfs = Vfs::new(backend, ttls, metrics.clone(), config.delete);
    if let Some(w) = &writes {
        vfs.overlay().set_queue(w.queue.clone(), config.name());
        if let Some(d) = state_dir {
            vfs.overlay().set_empty_store(
                d.join("empty")
                    .join(format!("{}.json", store_name(config.name()))),
            );
        }
    }
    // In a cluster the locks are every instance's (`dav::shared_locks`).
    let cluster = writes.as_ref().and_then(|w| w.upstream.cluster.clone());
    let locks: Box<dyn LockStore> = match cluster.clone() {
        Some(cluster) => Box::new(SharedLocks::new(
            cluster,
            config.name(),
            limits.lock_timeout_max,
            limits.locks_per_user_max,
        )),
        None => Box::new(MemoryLocks::new(
            limits.lock_timeout_max,
            limits.locks_per_user_max,
        )),
    };
    let props = PropStore::open(
        props_file,
        Budget {
            total: limits.props_max_bytes,
            per_user: limits.props_per_user_max_bytes,
        },
    );
    if cluster.is_some() {
        props.share();
    }
    Arc::new(Mount {
        label: config.path.as_str().into(),
        config: config.clone(),
        vfs,
        locks,
        props,
        shared_props: cluster
            .clone()
            .map(|c| crate::cluster::SharedProps::new(c, config.name())),
        shared_junk: cluster
            .clone()
            .map(|c| crate::cluster::SharedJunk::new(c, config.name())),
        junk: JunkStore::new(
            limits.junk_max_files,
            limits.junk_per_user_max_files,
            clock.clone(),
        ),
        writes,
    })
}

/// A file-name-safe name for a mount's side stores ("root" for the mount at "/").
fn store_name(mount: &str) -> String {
    if mount.is_empty() {
        "root".into()
    } else {
        mount
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The mount a path (decoded segments from the server's root) belongs to and the segments
/// below it: the mount served at `/` takes every path; otherwise the first segment names it.
pub fn route<'a>(
    mounts: &[Arc<Mount>],
    segments: &'a [String],
) -> Option<(Arc<Mount>, &'a [String])> {
    if let Some(m) = mounts.iter().find(|m| m.name().is_empty()) {
        return Some((m.clone(), segments));
    }
    let first = segments.first()?;
    let m = mounts.iter().find(|m| m.name() == first)?;
    Some((m.clone(), &segments[1..]))
}
