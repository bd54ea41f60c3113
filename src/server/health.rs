//! Liveness and readiness: `/-/healthz` (the process answers) and `/-/readyz` (every mount can
//! reach 123), plus the background task that re-probes failing mounts.
//!
//! Readiness is judged from evidence the gateway already has, so a healthy gateway costs 123 no
//! extra calls: the credential's state (a failed token refresh or web login), the start-up probe, and probes
//! prompted by requests of a mount that ended in 502/503/504. A failing mount is re-probed every
//! `server.ready_probe_interval` by listing its root folder straight from the backend (no cache),
//! and is ready again as soon as a probe passes. Reports carry no secret: token states, error
//! messages (which never hold a token or a URL) and counts.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::json;

use super::AppState;
use crate::backend::auth_key::AuthKeyPath;
use crate::backend::signer::Accepts;
use crate::backend::TokenState;
use crate::mount::Mount;
use crate::response;
use crate::response::ResponseBody;

/// What is known of a mount's upstream.
#[derive(Clone, Debug, Default)]
enum Upstream {
    /// No evidence yet.
    #[default]
    Unknown,
    Ok,
    Failing(String),
}

#[derive(Clone, Debug, Default)]
struct MountHealth {
    upstream: Upstream,
    /// Unix seconds of the last probe.
    checked_at: Option<u64>,
    latency_ms: Option<u64>,
    /// When the last probe prompted by a failed request started.
    probe_started: Option<Instant>,
}

/// The readiness state of every mount, in mount order.
pub struct Health {
    mounts: Vec<Mutex<MountHealth>>,
    pub probe_interval: Duration,
}

impl Health {
    pub fn new(mount_count: usize, probe_interval: Duration) -> Self {
        Self {
            mounts: (0..mount_count).map(|_| Mutex::default()).collect(),
            probe_interval,
        }
    }

    fn set(&self, index: usize, upstream: Upstream, latency: Option<Duration>) {
        if let Some(m) = self.mounts.get(index) {
            let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
            m.upstream = upstream;
            if let Some(latency) = latency {
                m.latency_ms = Some(latency.as_millis() as u64);
                m.checked_at = Some(unix_now());
            }
        }
    }

    fn get(&self, index: usize) -> MountHealth {
        self.mounts
            .get(index)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    fn ready(&self, index: usize, mount: &Mount) -> bool {
        !matches!(self.get(index).upstream, Upstream::Failing(_))
            && !matches!(
                mount.vfs.backend().token_state(),
                Some(TokenState::Failing { .. })
            )
    }
}

/// Records the outcome of a mount's start-up probe.
pub fn startup_probe(state: &AppState, mount: &Mount, result: Result<Duration, String>) {
    let Some(index) = index_of(state, mount) else {
        return;
    };
    match result {
        Ok(latency) => state.health.set(index, Upstream::Ok, Some(latency)),
        Err(e) => state.health.set(index, Upstream::Failing(e), None),
    }
}

/// Notes the final status of a request to the mount at `mount_path`. A 502/503/504 is a hint,
/// not a verdict (one broken file or a bad `Destination` must not take the gateway out of a
/// load balancer): it starts a probe of the mount, at most one per `ready_probe_interval`, and
/// the probe decides.
pub fn observe(state: &Arc<AppState>, mount_path: &str, status: StatusCode) {
    if !matches!(status.as_u16(), 502..=504) {
        return;
    }
    let Some(index) = state
        .mounts
        .iter()
        .position(|m| m.config.path == mount_path)
    else {
        return;
    };
    if let Some(m) = state.health.mounts.get(index) {
        let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
        if m.probe_started
            .is_some_and(|t| t.elapsed() < state.health.probe_interval)
        {
            return;
        }
        m.probe_started = Some(Instant::now());
    }
    let state = state.clone();
    tokio::spawn(async move {
        if let Some(mount) = state.mounts.get(index) {
            let result = probe(mount).await;
            record(&state, index, result);
        }
    });
}

/// Stores a probe's outcome, logging changes of readiness.
fn record(state: &AppState, index: usize, result: Result<Duration, String>) {
    let path = state
        .mounts
        .get(index)
        .map(|m| m.config.path.as_str())
        .unwrap_or("");
    let was_failing = matches!(state.health.get(index).upstream, Upstream::Failing(_));
    match result {
        Ok(latency) => {
            if was_failing {
                tracing::info!(mount = path, "mount probe passed; the mount is ready again");
            }
            state.health.set(index, Upstream::Ok, Some(latency));
        }
        Err(e) => {
            if was_failing {
                tracing::debug!(mount = path, error = %e, "mount probe failed again");
            } else {
                tracing::warn!(mount = path, error = %e, "mount probe failed; the mount is not ready");
            }
            state
                .health
                .set(index, Upstream::Failing(e), Some(Duration::ZERO));
        }
    }
}

fn index_of(state: &AppState, mount: &Mount) -> Option<usize> {
    state.mounts.iter().position(|m| std::ptr::eq(&**m, mount))
}

/// Lists a mount's root straight from its backend: `Ok(latency)` or the error's text.
pub async fn probe(mount: &Mount) -> Result<Duration, String> {
    let started = Instant::now();
    let backend = mount.vfs.backend();
    match backend.list(backend.root_id()).await {
        Ok(_) => Ok(started.elapsed()),
        Err(e) => Err(e.to_string()),
    }
}

/// Re-probes failing mounts every `probe_interval` while the state lives.
pub fn spawn_reprobe(state: &Arc<AppState>) {
    let weak: Weak<AppState> = Arc::downgrade(state);
    let interval = state.health.probe_interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(state) = weak.upgrade() else {
                return;
            };
            for (index, mount) in state.mounts.iter().enumerate() {
                if state.health.ready(index, mount) {
                    continue;
                }
                let result = probe(mount).await;
                record(&state, index, result);
            }
        }
    });
}

/// `/-/healthz`: the process is alive.
pub fn healthz() -> Response<ResponseBody> {
    let mut res = Response::new(response::full_body("ok\n"));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Who asks `/-/readyz`, and so how much the answer says.
pub enum ReadyView<'a> {
    /// Anyone: whether the server is ready, and counts of mounts and uploads. No mount path,
    /// backend type or upstream message.
    Public,
    /// A signed-in user: the details of the mounts this user may see.
    User(&'a super::auth::User),
    /// The private `metrics_listen` address (without `metrics_auth`): every detail.
    Operator,
}

/// `/-/readyz`: 200 when every mount is ready, 503 otherwise; the body says as much as `view`
/// may know (each mount's token and upstream state and the upload queue, or only counts).
pub fn readyz(state: &AppState, view: ReadyView<'_>) -> Response<ResponseBody> {
    let (mut body, ready) = report(state);
    match view {
        ReadyView::Operator => {}
        ReadyView::User(user) => {
            if let Some(mounts) = body.get_mut("mounts").and_then(|m| m.as_array_mut()) {
                mounts.retain(|m| {
                    m.get("path")
                        .and_then(|p| p.as_str())
                        .is_some_and(|p| user.can_see(p))
                });
            }
        }
        ReadyView::Public => {
            let mounts = body
                .get("mounts")
                .and_then(|m| m.as_array())
                .map(|m| m.as_slice())
                .unwrap_or_default();
            let ready_mounts = mounts
                .iter()
                .filter(|m| m.get("ready").and_then(|r| r.as_bool()) == Some(true))
                .count();
            let mut public = json!({
                "ready": ready,
                "mounts": mounts.len(),
                "ready_mounts": ready_mounts,
                "uploads": body.get("uploads").cloned().unwrap_or_default(),
            });
            if let Some(state) = body.pointer("/cluster/state") {
                public["cluster"] = json!({ "state": state });
            }
            body = public;
        }
    }
    let mut res = Response::new(response::full_body(body.to_string()));
    *res.status_mut() = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The readiness report and whether every mount is ready.
pub fn report(state: &AppState) -> (serde_json::Value, bool) {
    let mut all_ready = true;
    let mounts: Vec<serde_json::Value> = state
        .mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| {
            let h = state.health.get(index);
            let ready = state.health.ready(index, mount);
            all_ready &= ready;
            let (token, token_expires_at, token_error) = match mount.vfs.backend().token_state() {
                None => ("none", None, None),
                Some(TokenState::Empty) => ("empty", None, None),
                Some(TokenState::Valid { expires_at }) => ("valid", Some(expires_at), None),
                Some(TokenState::LoggedIn) => ("valid", None, None),
                Some(TokenState::Failing { message }) => ("failing", None, Some(message)),
            };
            let (upstream, upstream_error) = match h.upstream {
                Upstream::Unknown => ("unknown", None),
                Upstream::Ok => ("ok", None),
                Upstream::Failing(e) => ("failing", Some(e)),
            };
            let (month, traffic) = state.traffic.mount_bytes(&mount.config.path);
            let downloads = downloads_state(state, mount, traffic);
            json!({
                "path": mount.config.path,
                "backend": mount.config.backend.kind(),
                "ready": ready,
                "token": token,
                "token_expires_at": token_expires_at,
                "token_error": token_error,
                "upstream": upstream,
                "upstream_error": upstream_error,
                "checked_at": h.checked_at,
                "probe_latency_ms": h.latency_ms,
                "downloads": downloads,
                "traffic_month": month.to_string(),
                "traffic_bytes": traffic,
                "traffic_budget": mount.config.traffic_budget,
            })
        })
        .collect();
    let q = state.uploads.stats();
    // Bytes of each `[[clients]]` row this month (row patterns are config, not secrets).
    let clients: serde_json::Map<String, serde_json::Value> = state
        .traffic
        .client_bytes()
        .into_iter()
        .map(|(row, bytes)| (row, json!(bytes)))
        .collect();
    let mut body = json!({
        "ready": all_ready,
        "mounts": mounts,
        "traffic_clients": clients,
        "uploads": {
            "queued": q.queued,
            "running": q.running,
            "failed": q.failed,
            "completed": q.completed,
            "bytes_uploaded": q.bytes_uploaded,
        },
    });
    // Redis being unavailable does not make an instance unready: it still serves reads, and a
    // load balancer taking every instance out would serve nothing. It is shown instead.
    if let Some(cluster) = &state.upstream.cluster {
        body["cluster"] = match cluster.error() {
            None => json!({ "state": "connected" }),
            Some(e) => {
                json!({ "state": "unavailable", "error": format!("Redis is unavailable: {e}") })
            }
        };
    }
    (body, all_ready)
}

/// What stops a mount's downloads now, in words: `"ok"`, `"quota exhausted until <RFC 3339>"`
/// (123 answered 5113/5114) or `"budget reached until <RFC 3339>"` (`traffic_budget`). Neither
/// makes the mount unready: its listings still work, and a load balancer must not take the
/// gateway out for it; the state is in the body for monitoring.
fn downloads_state(state: &AppState, mount: &Mount, traffic: u64) -> String {
    use crate::traffic::calendar::rfc3339;
    if let Some(until) = state.traffic.quota_until(&mount.config.path) {
        return format!("quota exhausted until {}", rfc3339(until));
    }
    if mount.config.traffic_budget.is_some_and(|b| traffic >= b) {
        return format!(
            "budget reached until {}",
            rfc3339(state.traffic.month_end())
        );
    }
    "ok".to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The operational routes under `/-/`: `healthz`, `readyz` and `metrics`; `None` for other
/// paths. Health answers without auth; metrics asks for it when `server.metrics_auth` is set.
pub async fn route<B>(
    state: &AppState,
    req: &http::Request<B>,
    rest: &str,
) -> Option<Response<ResponseBody>> {
    route_on(state, req, rest, false).await
}

/// As `route`; `own_listener` is true on `server.metrics_listen`, the only place metrics are
/// served when that key is set.
async fn route_on<B>(
    state: &AppState,
    req: &http::Request<B>,
    rest: &str,
    own_listener: bool,
) -> Option<Response<ResponseBody>> {
    let res = match rest {
        "healthz" => healthz(),
        "readyz" => {
            let operator = own_listener && !state.metrics_auth;
            let user = if operator {
                None
            } else {
                match state
                    .auth
                    .check(req.headers().get(http::header::AUTHORIZATION))
                    .await
                {
                    super::auth::AuthOutcome::Ok(user) => Some(user),
                    _ => None,
                }
            };
            let view = match &user {
                _ if operator => ReadyView::Operator,
                Some(user) => ReadyView::User(user),
                None => ReadyView::Public,
            };
            readyz(state, view)
        }
        "metrics" if state.metrics_elsewhere && !own_listener => return None,
        "metrics" => {
            if state.metrics_auth {
                let outcome = state
                    .auth
                    .check(req.headers().get(http::header::AUTHORIZATION))
                    .await;
                if !matches!(outcome, super::auth::AuthOutcome::Ok(_)) {
                    let mut res = response::status_text(
                        StatusCode::UNAUTHORIZED,
                        "Authentication required",
                        None,
                    );
                    res.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        super::auth::Authenticator::challenge(),
                    );
                    return Some(res);
                }
            }
            for mount in &state.mounts {
                let (_, bytes) = state.traffic.mount_bytes(&mount.config.path);
                state
                    .metrics()
                    .set_traffic(&mount.config.path, bytes, mount.config.traffic_budget);
            }
            for (row, bytes) in state.traffic.client_bytes() {
                state.metrics().set_client_traffic(&row, bytes);
            }
            let mut res = Response::new(response::full_body(
                state.metrics().render(state.uploads.stats()),
            ));
            res.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        _ => return None,
    };
    if !is_read(req) {
        return Some(only_get_and_head());
    }
    Some(res)
}

/// `check --probe`: lists each mount's root on 123 and prints one line per mount with the
/// latency or the error; fails when a mount fails. Builds only the backends (not the upload
/// queue, which would resume uploads beside a running server), reusing persisted tokens.
pub async fn probe_mounts(config: crate::config::Config) -> anyhow::Result<()> {
    let upstream = super::tool_upstream(&config.server)?;
    let clients =
        crate::backend::open::client::OpenClients::with_qps_scale(config.server.qps_scale);
    let mut upstream = upstream;
    if let Some(c) = &config.cluster {
        // The probe uses the cluster's token like any instance, so it costs no new one.
        let cluster = crate::cluster::Cluster::start(c).await?;
        match cluster.error() {
            None => println!("probe [cluster]: OK, Redis answers"),
            Some(e) => {
                println!("probe [cluster]: FAILED: Redis is unavailable: {e}");
            }
        }
        upstream.cluster = Some(cluster);
    }
    let backends = crate::mount::build_backends(
        &config.mounts,
        &upstream,
        &clients,
        Some(&config.server.state_dir),
        &crate::clock::Clock::new(),
        &config.server.user_agent,
    );
    let mut failed = usize::from(upstream.cluster.as_ref().is_some_and(|c| !c.available()));
    for (mount, backend) in config.mounts.iter().zip(backends) {
        let started = Instant::now();
        match backend.list(backend.root_id()).await {
            Ok(entries) => {
                println!(
                    "probe {}: OK, {} entries in the root, {} ms",
                    mount.path,
                    entries.len(),
                    started.elapsed().as_millis()
                );
                if let Some(outcome) = backend.probe_auth_key_path().await {
                    let (line, ok) = auth_key_report(auth_key_path_of(mount), outcome);
                    println!("probe {}: {line}", mount.path);
                    failed += usize::from(!ok);
                }
            }
            Err(e) => {
                failed += 1;
                println!(
                    "probe {}: FAILED after {} ms: {e}",
                    mount.path,
                    started.elapsed().as_millis()
                );
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} mount(s) failed the probe");
    }
    Ok(())
}

/// The configured `auth_key_path` of a mount that signs direct links.
fn auth_key_path_of(mount: &crate::config::MountConfig) -> AuthKeyPath {
    match &mount.backend {
        crate::config::BackendConfig::Open(open) => open.auth_key_path,
        crate::config::BackendConfig::Link(link) => link.auth_key_path,
        _ => AuthKeyPath::default(),
    }
}

/// The `check --probe` line on `auth_key`'s path form (docs/123.md, web §6), and whether it is
/// fine: a host that refuses both forms, or only accepts the one the config does not sign, fails.
fn auth_key_report(
    configured: AuthKeyPath,
    outcome: Result<(String, Accepts), crate::backend::Error>,
) -> (String, bool) {
    let (name, accepts) = match outcome {
        Ok(found) => found,
        Err(e) => return (format!("auth_key path form: cannot tell: {e}"), false),
    };
    match accepts {
        Accepts::Both => (
            format!(
                "auth_key path form: the direct-link host accepts both forms (asked with {name:?})"
            ),
            true,
        ),
        Accepts::Only(form) => {
            let line = format!(
                "auth_key path form: the direct-link host accepts \"{}\" (asked with {name:?})",
                form.as_str()
            );
            match configured {
                AuthKeyPath::Fixed(signed) if signed != form => (
                    format!(
                        "{line}, but auth_key_path = \"{}\": set it to \"{}\" or \"auto\"",
                        signed.as_str(),
                        form.as_str()
                    ),
                    false,
                ),
                _ => (line, true),
            }
        }
        Accepts::Neither => (
            format!(
                "auth_key path form: the direct-link host refuses both forms (asked with \
                 {name:?}): check direct_link_key and uid"
            ),
            false,
        ),
        Accepts::Unknown(reason) => (
            format!("auth_key path form: cannot tell (asked with {name:?}): {reason}"),
            false,
        ),
    }
}

/// `healthcheck`: succeeds when `url` answers 200 within a few seconds.
pub async fn healthcheck(url: String) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let status = client.get(&url).send().await?.status();
    if status != StatusCode::OK {
        anyhow::bail!("{url} answered {status}");
    }
    Ok(())
}

/// Serves `/-/metrics`, `/-/healthz` and `/-/readyz` (nothing else) on `listener`, for as long
/// as the state lives.
pub fn spawn_metrics_listener(listener: tokio::net::TcpListener, state: &Arc<AppState>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if weak.strong_count() == 0 {
                return;
            }
            let weak = weak.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let state = weak.upgrade();
                        async move {
                            let path = req.uri().path().to_string();
                            let res = match (state, path.strip_prefix("/-/")) {
                                (Some(state), Some(rest)) => {
                                    route_on(&state, &req, rest, true).await
                                }
                                _ => None,
                            };
                            Ok::<_, std::convert::Infallible>(res.unwrap_or_else(|| {
                                response::status_text(StatusCode::NOT_FOUND, "Not found", None)
                            }))
                        }
                    });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
                }
            });
        }
    });
}

fn is_read<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::GET || req.method() == http::Method::HEAD
}

fn only_get_and_head() -> Response<ResponseBody> {
    response::status_text(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD", None)
}
