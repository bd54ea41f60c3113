//! A mount: one backend behind one path, with its caches and download policy.

use std::path::Path;
use std::sync::Arc;

use crate::backend::open::client::OpenClients;
use crate::backend::open::{LinkMode, OpenBackend};
use crate::backend::Backend;
use crate::config::{BackendConfig, DownloadPolicy, MountConfig};
use crate::vfs::Vfs;

/// One configured mount, ready to serve.
pub struct Mount {
    pub config: MountConfig,
    pub vfs: Vfs,
}

impl Mount {
    /// The first path segment it is served under ("" when mounted at "/").
    pub fn name(&self) -> &str {
        self.config.name()
    }

    pub fn read_only(&self) -> bool {
        // Writes arrive with the write issue; until then every mount is read-only.
        true
    }

    pub fn policy(&self) -> DownloadPolicy {
        self.config.download
    }
}

/// Builds every mount of a config. Mounts that share a client id share one `OpenClient`.
pub fn build_mounts(
    mounts: &[MountConfig],
    http: &reqwest::Client,
    clients: &OpenClients,
    state_dir: Option<&Path>,
) -> Vec<Arc<Mount>> {
    mounts
        .iter()
        .map(|m| {
            let backend: Arc<dyn Backend> = match &m.backend {
                BackendConfig::Open(open) => {
                    let client = clients.get(
                        http,
                        &open.api_base,
                        &open.client_id,
                        open.client_secret.expose(),
                        state_dir,
                    );
                    let links = if open.direct_link {
                        LinkMode::Direct {
                            key: open
                                .direct_link_key
                                .as_ref()
                                .map(|k| k.expose().to_string()),
                            valid: open.direct_link_valid,
                        }
                    } else {
                        LinkMode::DownloadInfo
                    };
                    Arc::new(OpenBackend::new(client, open.root_id, links))
                }
            };
            Arc::new(Mount {
                config: m.clone(),
                vfs: Vfs::new(backend, m.cache_ttl),
            })
        })
        .collect()
}
