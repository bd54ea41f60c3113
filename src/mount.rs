//! A mount: one backend behind one path, with its caches, download policy and the local
//! side stores (locks, dead properties, client junk) that 123 has no place for.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;

use crate::backend::link::{LinkBackend, Signing};
use crate::backend::open::client::OpenClients;
use crate::backend::open::{LinkMode, OpenBackend};
use crate::backend::share::{ShareBackend, ShareParams};
use crate::backend::signer::DirectSigner;
use crate::backend::web::{token_file, WebBackend, WebParams};
use crate::backend::{Backend, Entry, Error, Upstream};
use crate::clock::Clock;
use crate::config::{BackendConfig, DownloadPolicy, MountConfig, StoreLimits};
use crate::dav::junk::JunkStore;
use crate::dav::locks::{LockStore, MemoryLocks};
use crate::dav::props::{Budget, PropStore};
use crate::upload::NewJob;
use crate::vfs::{cloud_name, Local, Vfs};

/// How a writable mount stores uploads.
pub struct Writes {
    pub queue: Arc<crate::upload::UploadQueue>,
    pub spool: Arc<crate::upload::Spool>,
    /// `upload = "sync"`: a PUT answers only once 123 has the file.
    pub sync: bool,
    /// The gateway's HTTP client, for copies whose bytes pass through the gateway.
    pub http: reqwest::Client,
}

/// One configured mount, ready to serve.
pub struct Mount {
    pub config: MountConfig,
    pub vfs: Vfs,
    /// Class-2 locks; per process, bounded (see `dav::locks`).
    pub locks: Box<dyn LockStore>,
    pub props: PropStore,
    pub junk: JunkStore,
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

    /// Copies file `entry` of mount `src` into folder `dst_parent` of this mount as `name`, its
    /// bytes passing through the gateway into this mount's upload queue. For copies 123 cannot
    /// make by instant reuse: across accounts, or when `create` does not hand back the new file
    /// (docs/123.md, open §11, `reuse: true` with `fileID: 0`).
    pub async fn copy_through(
        &self,
        src: &Mount,
        entry: &Entry,
        dst_parent: &Entry,
        name: &str,
    ) -> Result<(), Error> {
        let writes = self.writes.as_ref().ok_or(Error::Unsupported)?;
        let io = |e: crate::upload::SpoolError| match e {
            crate::upload::SpoolError::TooLarge => Error::TooLarge,
            other => Error::Unavailable(format!("spooling a copy: {other}")),
        };
        let mut writer = writes.spool.writer(Some(entry.size)).await.map_err(io)?;
        match src.vfs.local(entry) {
            Some(Local::Empty) => {}
            Some(Local::Spooled(path)) => {
                let mut file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| Error::Transport(e.to_string()))?;
                writer.write_from(&mut file).await.map_err(io)?;
            }
            None => {
                let link = src.vfs.link(entry, false).await?;
                let res = writes
                    .http
                    .get(&link.url)
                    .headers(link.headers.clone())
                    .send()
                    .await
                    .map_err(|e| Error::Transport(e.without_url().to_string()))?;
                if res.status() != reqwest::StatusCode::OK {
                    return Err(Error::Unavailable(format!(
                        "the source download answered HTTP {}",
                        res.status().as_u16()
                    )));
                }
                let mut body = res.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| Error::Transport(e.without_url().to_string()))?;
                    writer.write(&chunk).await.map_err(io)?;
                }
            }
        }
        let file = writer.finish().await.map_err(io)?;
        if file.size != entry.size {
            file.discard().await;
            return Err(Error::Unavailable("the source ended early".into()));
        }
        let job = NewJob {
            mount: self.name().to_string(),
            parent_id: dst_parent.id,
            name: cloud_name(name)?,
            file,
            modified: SystemTime::now(),
        };
        if writes.sync {
            writes.queue.upload_now(job).await.map(|_| ())?;
            self.vfs.invalidate(dst_parent.id).await;
            Ok(())
        } else {
            writes
                .queue
                .enqueue(job)
                .await
                .map(|_| ())
                .map_err(|e| Error::Unavailable(format!("queueing a copy: {e}")))
        }
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
    let vfs = Vfs::new(backend, config.cache_ttl, metrics.clone());
    if let Some(w) = &writes {
        vfs.overlay().set_queue(w.queue.clone(), config.name());
    }
    Arc::new(Mount {
        config: config.clone(),
        vfs,
        locks: Box::new(MemoryLocks::new(
            limits.lock_timeout_max,
            limits.locks_per_user_max,
        )),
        props: PropStore::open(
            props_file,
            Budget {
                total: limits.props_max_bytes,
                per_user: limits.props_per_user_max_bytes,
            },
        ),
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
