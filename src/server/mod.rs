//! The HTTP server: listener, optional TLS, the per-request wrapper (one log line per request)
//! and the shared state every request reads.
//!
//! Every connection is bounded: the per-address cap and the header and keep-alive timeouts
//! (`conn`), the request body's idle limit (`body`), and one upstream deadline per request
//! (`backend::deadline`).

mod access;
pub mod auth;
pub mod body;
pub mod conn;
mod cross_mount;
mod destination;
mod errors;
mod freshness;
mod get;
pub mod health;
pub mod if_header;
pub(crate) mod index;
mod internal;
pub mod lockout;
pub mod paths;
pub mod profile;
mod propfind;
mod root;
mod router;
pub mod shutdown;
mod tls;
mod to_dav;
mod ui;
mod write;
pub mod xml_body;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backend::open::client::OpenClients;
use crate::backend::Backend;
use crate::clock::Clock;
use crate::config::Config;
use crate::download::sign::UrlSigner;
use crate::mount::{build_backends, build_mount, Mount, Writes};
use crate::response;
use crate::upload::{QueueConfig, UploadQueue};

/// The most header bytes one request may carry.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Requests one HTTP/2 connection may have in flight at once.
const MAX_H2_STREAMS: u32 = 64;
/// How often an HTTP/2 connection is pinged to see that the client is still there.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Everything a request may read.
pub struct AppState {
    pub mounts: Vec<Arc<Mount>>,
    pub auth: auth::Authenticator,
    /// How this instance reaches 123: the HTTP client for downloads and API calls (one
    /// connection pool) and the instance's metrics, which every layer records into.
    pub upstream: crate::backend::Upstream,
    pub signer: Option<UrlSigner>,
    pub sign_ttl: Duration,
    /// The upload queue shared by every writable mount.
    pub uploads: Arc<UploadQueue>,
    /// Requests in flight, for a graceful stop.
    pub inflight: Arc<shutdown::InFlight>,
    /// Clients locked out after repeated wrong credentials.
    pub lockout: lockout::Lockout,
    /// Reverse proxies whose forwarding headers name the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Readiness of each mount (`/-/readyz`).
    pub health: health::Health,
    /// `/-/metrics` asks for Basic auth.
    pub metrics_auth: bool,
    /// `/-/metrics` is served on `server.metrics_listen`, not on the main listener.
    pub metrics_elsewhere: bool,
    /// `[[clients]]`: per-User-Agent overrides, first match wins.
    pub clients: Vec<crate::config::ClientRule>,
    /// `host[:port]` of `public_url` and `server.host_aliases`: names of this server that a
    /// COPY or MOVE Destination may carry besides the request's own `Host`.
    pub own_hosts: Vec<String>,
    /// Header, keep-alive and body timeouts and the per-address connection cap.
    pub limits: conn::ClientLimits,
    /// Live connections per client address.
    pub per_ip: Arc<conn::PerIp>,
    /// The clock of the decisions that wait minutes or days (login back-off, junk lifetime,
    /// signed URL expiry); tests move it instead of sleeping.
    pub clock: Clock,
    /// How long one request may spend on 123 in all (`server.upstream_deadline`).
    pub upstream_deadline: Duration,
    /// `server.base_path`: every route lives below it; empty at the root.
    pub base_path: String,
    /// `server.public_url`: this gateway as clients reach it, for the absolute URLs it builds.
    pub public_url: Option<String>,
    /// The main listener speaks TLS (`tls_cert`): URLs built from `Host` are `https`.
    pub tls: bool,
    /// Bytes downloaded from 123 this month, per mount and client row, and their budgets.
    pub traffic: Arc<crate::traffic::Meter>,
}

/// The upstream of a one-shot command (`check --probe`, `authorize`): the server's timeouts and
/// `User-Agent`, counters of its own.
pub fn tool_upstream(
    server: &crate::config::ServerConfig,
) -> anyhow::Result<crate::backend::Upstream> {
    let timeouts = crate::backend::timeouts::UpstreamTimeouts::from_config(server);
    Ok(crate::backend::Upstream {
        http: http_client(&server.user_agent, timeouts)?,
        downloads: crate::download::client::DownloadClient::new(&server.user_agent, timeouts)?,
        metrics: crate::metrics::Metrics::new(),
        timeouts,
        cluster: None,
    })
}

/// The HTTP client every upstream call shares. No overall timeout (a film streams for hours);
/// the idle pool timeout stays below what CDNs typically allow (60 s) so we never reuse a
/// socket the other side already closed. Its default `User-Agent` is `server.user_agent` (our
/// own name unless configured; docs/123.md, web §7: never another project's); the download proxy
/// sends the end client's instead.
pub fn http_client(
    user_agent: &str,
    timeouts: crate::backend::timeouts::UpstreamTimeouts,
) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .pool_idle_timeout(Duration::from_secs(50))
        .read_timeout(timeouts.idle)
        .user_agent(user_agent)
        .build()
        .context("building the HTTP client")
}

impl AppState {
    /// This instance's counters (`/-/metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.upstream.metrics
    }

    /// Builds the state from a validated config: backends, the upload queue (which resumes
    /// uploads a previous run left), and the mounts.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let timeouts = crate::backend::timeouts::UpstreamTimeouts::from_config(&config.server);
        let http = http_client(&config.server.user_agent, timeouts)?;
        let cluster = match &config.cluster {
            Some(c) => Some(
                crate::cluster::Cluster::start(c)
                    .await
                    .with_context(|| format!("{}: [cluster]", config.source.display()))?,
            ),
            None => None,
        };
        let upstream = crate::backend::Upstream {
            http: http.clone(),
            downloads: crate::download::client::DownloadClient::new(
                &config.server.user_agent,
                timeouts,
            )?,
            metrics: crate::metrics::Metrics::new(),
            timeouts,
            cluster: cluster.clone(),
        };
        let clients = OpenClients::with_qps_scale(config.server.qps_scale);
        let clock = Clock::new();
        let state_dir = &config.server.state_dir;
        let tightened = crate::state_files::tighten(state_dir);
        if tightened > 0 {
            tracing::info!(
                state_dir = %state_dir.display(),
                entries = tightened,
                "made files under state_dir private to the service user (0600/0700)"
            );
        }
        let backends = build_backends(
            &config.mounts,
            &upstream,
            &clients,
            Some(state_dir),
            &clock,
            &config.server.user_agent,
        );
        let writable: HashMap<String, Arc<dyn Backend>> = config
            .mounts
            .iter()
            .zip(&backends)
            .filter(|(m, b)| !m.read_only && b.capabilities().writable)
            .map(|(m, b)| (m.name().to_string(), b.clone()))
            .collect();
        let mut queue_config = QueueConfig::new(state_dir.clone());
        queue_config.workers = config.server.upload_workers;
        queue_config.spool_max = config.server.spool_max;
        // Each mount's own `upload_slices`, applied to its jobs only.
        queue_config.mount_slices = config
            .mounts
            .iter()
            .map(|m| (m.name().to_string(), m.upload_slices))
            .collect();
        let uploads = UploadQueue::start(queue_config, writable)
            .await
            .with_context(|| {
                format!(
                    "{}: server.state_dir: cannot open the upload queue",
                    config.source.display()
                )
            })?;
        let mounts: Vec<Arc<Mount>> = config
            .mounts
            .iter()
            .zip(backends)
            .map(|(m, b)| {
                let writes = Writes {
                    queue: uploads.clone(),
                    spool: uploads.spool(),
                    sync: m.upload == crate::config::UploadMode::Sync,
                    upstream: upstream.clone(),
                };
                build_mount(
                    m,
                    b,
                    Some(state_dir),
                    Some(writes),
                    &config.server.stores,
                    &clock,
                    &upstream.metrics,
                )
            })
            .collect();
        let weak: Vec<std::sync::Weak<Mount>> = mounts.iter().map(Arc::downgrade).collect();
        let mount_named = move |name: &str| {
            weak.iter()
                .filter_map(|w| w.upgrade())
                .find(|m| m.name() == name)
        };
        let find = mount_named.clone();
        let clustered = cluster.is_some();
        uploads.on_change(Arc::new(move |mount: &str, parent: u64| {
            if let Some(m) = find(mount) {
                m.vfs.invalidate_now(parent);
                // A background upload landed (or failed): the other instances list it too.
                if clustered {
                    tokio::spawn(async move { m.vfs.tell_peers(parent).await });
                }
            }
        }));
        if let Some(cluster) = &cluster {
            if let Some(url) = config
                .cluster
                .as_ref()
                .and_then(|c| c.advertise(&config.server))
            {
                cluster.set_advertise_url(&url);
            }
            for m in &mounts {
                m.vfs.join_cluster(cluster.clone(), m.name());
            }
            internal::spawn_pending_refresh(cluster, &uploads, &mounts);
            let all: Vec<std::sync::Weak<Mount>> = mounts.iter().map(Arc::downgrade).collect();
            cluster.on_invalidate(move |what| match what {
                crate::cluster::Invalidation::Folder { mount, dir } => {
                    if let Some(m) = mount_named(&mount) {
                        m.vfs.invalidate_now(dir);
                    }
                }
                crate::cluster::Invalidation::Everything => {
                    for m in all.iter().filter_map(|w| w.upgrade()) {
                        m.vfs.invalidate_all_now();
                    }
                }
            });
        }
        let health = health::Health::new(mounts.len(), config.server.ready_probe_interval);
        let auth = auth::Authenticator::new(&config.users)?;
        let signer = config
            .server
            .signing_key
            .as_ref()
            .map(|k| UrlSigner::new(k.expose().as_bytes()));
        Ok(Self {
            mounts,
            auth,
            upstream,
            signer,
            sign_ttl: config.server.sign_ttl,
            uploads,
            health,
            metrics_auth: config.server.metrics_auth,
            metrics_elsewhere: config.server.metrics_listen.is_some(),
            clients: config.clients.clone(),
            inflight: Arc::default(),
            lockout: lockout::Lockout::default().shared(cluster.clone()),
            trusted_proxies: config.server.trusted_proxies.clone(),
            own_hosts: own_hosts(&config.server),
            limits: conn::ClientLimits {
                header_timeout: config.server.header_timeout,
                keepalive_timeout: config.server.keepalive_timeout,
                body_idle_timeout: config.server.body_idle_timeout,
                connections_per_ip: config.server.connections_per_ip,
            },
            per_ip: Arc::default(),
            upstream_deadline: config.server.upstream_deadline,
            base_path: config.server.base_path.clone(),
            public_url: config.server.public_url.clone(),
            tls: config.server.tls_cert.is_some(),
            traffic: Arc::new(crate::traffic::Meter::new(
                clock.clone(),
                Some(&config.server.state_dir),
            )),
            clock,
        })
    }
}

/// `public_url`'s authority and the configured aliases.
fn own_hosts(server: &crate::config::ServerConfig) -> Vec<String> {
    let public = server
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            let host = u.host_str()?.to_ascii_lowercase();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        });
    public
        .into_iter()
        .chain(server.host_aliases.iter().cloned())
        .collect()
}

/// A server running in the background: its address and a way to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// `http(s)://addr`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for the accept loop to end and stops the upload workers (queued
    /// uploads stay on disk for the next start).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.state.uploads.shutdown().await;
        self.state.traffic.flush();
    }

    /// Stops accepting, lets requests in flight finish for up to `grace`, then stops the upload
    /// workers (queued uploads stay on disk for the next start). Returns whether every
    /// request finished in time.
    pub async fn shutdown_gracefully(self, grace: std::time::Duration) -> bool {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let idle = self.state.inflight.wait_idle(grace).await;
        if !idle {
            tracing::warn!(
                in_flight = self.state.inflight.count(),
                "grace period over; ending the remaining requests"
            );
        }
        self.state.uploads.shutdown().await;
        self.state.traffic.flush();
        idle
    }

    /// Waits until the server stops.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds `config.server.listen` (port 0 allowed) and serves in the background.
pub async fn start(config: &Config) -> anyhow::Result<RunningServer> {
    let state = Arc::new(AppState::new(config).await?);
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "{}: server.listen: cannot listen on {}",
                config.source.display(),
                config.server.listen
            )
        })?;
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    if let Some(addr) = config.server.metrics_listen {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "{}: server.metrics_listen: cannot listen on {addr}",
                config.source.display()
            )
        })?;
        health::spawn_metrics_listener(listener, &state);
    }
    start_on(listener, state, tls)
}

/// Serves `state` on an already bound listener.
pub fn start_on(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<RunningServer> {
    let addr = listener.local_addr()?;
    spawn_probes(&state);
    health::spawn_reprobe(&state);
    state.traffic.spawn_flusher();
    let (tx, mut rx) = watch::channel(false);
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = rx.changed() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // The TCP peer counts, not a forwarding header (none has been read yet). A trusted
            // reverse proxy carries many clients on its one address: it is not capped.
            let slot = if st.trusted_proxies.contains(&peer.ip()) {
                None
            } else {
                match st.per_ip.admit(peer.ip(), st.limits.connections_per_ip) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(%peer, limit = st.limits.connections_per_ip, "too many connections from this address; closing");
                        drop(stream);
                        continue;
                    }
                }
            };
            let _ = stream.set_nodelay(true);
            let state = st.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let activity = conn::Activity::new();
                let stream = conn::Watched::new(stream, activity.clone());
                match tls {
                    Some(acceptor) => {
                        // The handshake is part of the first request's header time.
                        let limit = state.limits.header_timeout;
                        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                serve_connection(TokioIo::new(s), state, peer, activity).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake too slow; closing"),
                        }
                    }
                    None => serve_connection(TokioIo::new(stream), state, peer, activity).await,
                }
            });
        }
    });
    Ok(RunningServer {
        addr,
        state,
        shutdown: tx,
        task,
    })
}

/// Runs every mount's start-up probe (`Backend::probe`) in the background, so a slow or failing
/// upstream never delays listening. A failure is logged once, naming the mount; the mount keeps
/// serving, and its requests meet the same error (mapped like any other).
fn spawn_probes(state: &Arc<AppState>) {
    for mount in &state.mounts {
        let mount = mount.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = mount.vfs.backend().probe().await;
            health::startup_probe(
                &state,
                &mount,
                result
                    .as_ref()
                    .map(|()| started.elapsed())
                    .map_err(|e| e.to_string()),
            );
            match result {
                Ok(()) => tracing::debug!(mount = %mount.config.path, "mount probe passed"),
                Err(e) => tracing::warn!(
                    mount = %mount.config.path,
                    backend = mount.config.backend.kind(),
                    error = %e,
                    "mount probe failed; this mount's requests will fail the same way"
                ),
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    state: Arc<AppState>,
    peer: SocketAddr,
    activity: Arc<conn::Activity>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = state.limits;
    let per_request = activity.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let busy = per_request.begin();
        async move {
            let guard = state.inflight.enter();
            let started = tokio::time::Instant::now();
            let method = access::known_method(req.method());
            let uri = req.uri().clone();
            let http1 = req.version() < http::Version::HTTP_2;
            let note = access::Note::default();
            let res = match method {
                // Unknown methods are answered before auth or routing: nothing of theirs is
                // counted or logged by name.
                None => response::status_text(
                    http::StatusCode::NOT_IMPLEMENTED,
                    "Method not implemented",
                    None,
                ),
                Some(name) => {
                    let (parts, incoming) = req.into_parts();
                    let fate = if hyper::body::Body::is_end_stream(&incoming) {
                        body::Fate::settled()
                    } else {
                        body::Fate::default()
                    };
                    let req = hyper::Request::from_parts(
                        parts,
                        body::ClientBody::new(
                            incoming,
                            state.limits.body_idle_timeout,
                            fate.clone(),
                        ),
                    );
                    let origin = access::Origin { peer, note: &note };
                    // The deadline counts from the request's start (one clock read for both).
                    let handled = crate::backend::deadline::scope_until(
                        started + state.upstream_deadline,
                        router::handle(state.clone(), req, origin),
                    );
                    let res = catching_panics(handled, name, &uri, state.metrics()).await;
                    // A body the client failed to send is the client's error, whatever the
                    // handler made of it.
                    fate.answer(res, http1)
                }
            };
            let method = method.unwrap_or("other");
            let status = res.status();
            let mount = note.mount();
            let mount_path = mount.as_ref().map_or("", |m| m.config.path.as_str());
            state
                .metrics()
                .request(method, status.as_u16(), mount.as_ref().map(|m| &m.label));
            if !mount_path.is_empty() {
                health::observe(&state, mount_path, status);
            }
            // The log line and its body wrapper only when the access log is on.
            let line = access::enabled().then(|| access::Line {
                id: access::next_request_id(),
                peer,
                method,
                uri,
                status: status.as_u16(),
                started,
                note,
            });
            Ok::<_, Infallible>(res.map(|body| {
                let body = match line {
                    Some(line) => access::log_when_done(body, line),
                    None => body,
                };
                shutdown::hold(body, (guard, busy))
            }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // No WebDAV client needs more than a few KiB of headers; refuse floods early (431). The
    // header and keep-alive timeouts are the watchdog's below (hyper's own header timeout
    // cannot tell a slow client from an idle one), so none is set here.
    builder.http1().max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(limits.header_timeout)
        .timer(TokioTimer::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Bounded: every turn ends the connection or waits for the next time to look.
    loop {
        match activity.verdict(tokio::time::Instant::now(), &limits) {
            conn::Verdict::Wait(until) => tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = tokio::time::sleep_until(until) => {}
            },
            conn::Verdict::SlowHeaders => {
                tracing::debug!(%peer, "request headers too slow; closing the connection");
                return;
            }
            conn::Verdict::Idle => {
                // Nothing is in flight, so this ends at once (HTTP/2 says GOAWAY first).
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(limits.header_timeout, conn.as_mut()).await;
                tracing::debug!(%peer, "idle connection closed");
                return;
            }
        }
    }
}

/// Answers with `handler`'s response; a panic anywhere in it becomes a 500 that closes the
/// connection, with a log line and a metric, instead of an empty reply: the process and every
/// other request keep going (shared state is poison-tolerant, so nothing is left unusable).
/// Not an `async fn`, so `handler` is held once, not twice (see `deadline::scope_until`).
fn catching_panics<'a, F>(
    handler: F,
    method: &'static str,
    uri: &'a http::Uri,
    metrics: &'a crate::metrics::Metrics,
) -> impl std::future::Future<Output = hyper::Response<crate::response::ResponseBody>> + 'a
where
    F: std::future::Future<Output = hyper::Response<crate::response::ResponseBody>> + 'a,
{
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(handler)
        .catch_unwind()
        .map(move |caught| caught.unwrap_or_else(|panic| panicked(&*panic, method, uri, metrics)))
}

/// The 500 of a handler that panicked (see [`catching_panics`]).
fn panicked(
    panic: &(dyn std::any::Any + Send),
    method: &'static str,
    uri: &http::Uri,
    metrics: &crate::metrics::Metrics,
) -> hyper::Response<crate::response::ResponseBody> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(
        method,
        path = %access::capped(uri.path()),
        panic = %access::capped(&message),
        "a request handler panicked; answered 500"
    );
    metrics.request_panicked();
    let mut res = response::status_text(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        None,
    );
    res.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    res
}

/// Runs the server until SIGTERM or Ctrl-C, then stops gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let server = start(&config).await?;
    tracing::info!(url = %server.url(), mounts = server.state.mounts.len(), "serving WebDAV");
    for m in &server.state.mounts {
        tracing::info!(mount = %m.config.path, policy = ?m.policy(), "mount ready");
    }
    shutdown::signal().await;
    tracing::info!(
        in_flight = server.state.inflight.count(),
        "stop signal: no new connections; letting requests in flight finish"
    );
    server.shutdown_gracefully(shutdown::DEFAULT_GRACE).await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request's future is moved whole a few times on its way through hyper (into the
    /// dispatcher, into the panic catch): the branches a redirect does not take (the proxy,
    /// PROPFIND, writes, a link or credential not cached) are boxed so that what a GET holds
    /// inline stays small. It was 8.5 KiB (in a debug build, which lays futures out larger than
    /// a release build), and moving it was 7 % of the gateway's time under wrk's 302 load.
    #[test]
    fn a_request_future_stays_small() {
        fn future_size<A, B, C, F>(_: impl FnOnce(A, B, C) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = future_size(router::handle::<http_body_util::Full<bytes::Bytes>>);
        assert!(
            size <= 5 * 1024,
            "router::handle's future is {size} bytes: box the branch that made it grow"
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_and_closes_the_connection() {
        let res = catching_panics(
            async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                hyper::Response::new(response::empty_body())
            },
            "GET",
            &http::Uri::from_static("/x"),
            &crate::metrics::Metrics::new(),
        )
        .await;
        assert_eq!(res.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            res.headers().get(http::header::CONNECTION),
            Some(&http::HeaderValue::from_static("close"))
        );
    }
}
