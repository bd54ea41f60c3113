//! The Prometheus metrics of one gateway, in one registry, and the small interface the layers
//! call to count things.
//!
//! Each server instance owns its own [`Metrics`] and hands a clone to the layers that record
//! (backends and the download proxy get it at construction, the vfs with its mount), so two
//! gateways in one process (the test binary, a cluster node) never mix their counts; `server/`
//! only exposes the text at `/-/metrics`. Gauges that mirror state owned elsewhere (the upload
//! queue) are set from that state at scrape time, so they are never out of date. Label values
//! are bounded sets (methods, statuses, mount names, endpoint paths): never a file path, a user
//! or a URL.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::upload::QueueStats;

/// The content type of `/-/metrics` (OpenMetrics text, which Prometheus reads natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// One of a fixed set of names: no allocation per request.
    method: &'static str,
    status: u16,
    mount: MountLabel,
}

/// A mount's path as a label value, shared with the mount (`Mount::label`): counting a request
/// copies no string.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MountLabel(Arc<str>);

impl prometheus_client::encoding::EncodeLabelValue for MountLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        prometheus_client::encoding::EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    endpoint: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    /// Fixed names (`link`, `listing`; `hit`, `miss`): counted per lookup, no allocation.
    cache: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// The `mount` label of requests outside every mount (`""`), made once.
    no_mount: Arc<str>,
    upstream: Family<UpstreamLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    /// The four series of `cache` (listing and link, hit and miss), each taken from the family
    /// on its first lookup: a lookup then counts without hashing labels or taking the
    /// family's lock (three per redirect).
    cache_series: [std::sync::OnceLock<Counter>; 4],
    proxied_bytes: Counter,
    active_streams: Gauge,
    token_refreshes: Family<ResultLabels, Counter>,
    rate_limited: Family<EndpointLabels, Counter>,
    uploads_queued: Gauge,
    uploads_running: Gauge,
    uploads_failed: Gauge,
    uploads_completed: Gauge,
    upload_bytes: Gauge,
    upload_manifest_syncs: Gauge,
    panics: Counter,
    propfind_writers: Family<WriterLabels, Counter>,
    traffic: Family<MountLabels, Gauge>,
    traffic_budget: Family<MountLabels, Gauge>,
    client_traffic: Family<ClientLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    /// A `[[clients]]` row's User-Agent pattern (a bounded set).
    client: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriterLabels {
    writer: &'static str,
}

/// The vfs caches whose lookups are counted (`pan123_cache_lookups`).
#[derive(Clone, Copy, Debug)]
pub enum CacheName {
    Listing = 0,
    Link = 1,
}

impl CacheName {
    fn label(self) -> &'static str {
        match self {
            CacheName::Listing => "listing",
            CacheName::Link => "link",
        }
    }
}

/// One gateway's counters. Cloning is cheap and shares the counts.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    /// A fresh registry with every count at zero.
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pan123");
        let m = Inner {
            requests: Family::default(),
            no_mount: Arc::from(""),
            upstream: Family::default(),
            cache: Family::default(),
            cache_series: Default::default(),
            proxied_bytes: Counter::default(),
            active_streams: Gauge::default(),
            token_refreshes: Family::default(),
            rate_limited: Family::default(),
            uploads_queued: Gauge::default(),
            uploads_running: Gauge::default(),
            uploads_failed: Gauge::default(),
            uploads_completed: Gauge::default(),
            upload_bytes: Gauge::default(),
            upload_manifest_syncs: Gauge::default(),
            panics: Counter::default(),
            propfind_writers: Family::default(),
            traffic: Family::default(),
            traffic_budget: Family::default(),
            client_traffic: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, status and mount",
            m.requests.clone(),
        );
        registry.register(
            "upstream_calls",
            "Calls to 123's APIs, by endpoint and result",
            m.upstream.clone(),
        );
        registry.register(
            "cache_lookups",
            "Listing and link cache lookups, by cache and result (hit or miss)",
            m.cache.clone(),
        );
        registry.register(
            "proxied_bytes",
            "File bytes streamed to clients by the download proxy",
            m.proxied_bytes.clone(),
        );
        registry.register(
            "proxy_active_streams",
            "Download proxy streams open now",
            m.active_streams.clone(),
        );
        registry.register(
            "token_refreshes",
            "Access token requests to 123, by result",
            m.token_refreshes.clone(),
        );
        registry.register(
            "upstream_rate_limited",
            "Answers of code 429 (rate limited) from 123, by endpoint",
            m.rate_limited.clone(),
        );
        registry.register(
            "uploads_queued",
            "Uploads waiting for a worker or a retry",
            m.uploads_queued.clone(),
        );
        registry.register(
            "uploads_running",
            "Uploads to 123 running now",
            m.uploads_running.clone(),
        );
        registry.register(
            "uploads_failed",
            "Uploads that gave up since start",
            m.uploads_failed.clone(),
        );
        registry.register(
            "uploads_completed",
            "Uploads that finished since start",
            m.uploads_completed.clone(),
        );
        registry.register(
            "upload_bytes",
            "Bytes sent to 123 and confirmed since start",
            m.upload_bytes.clone(),
        );
        registry.register(
            "upload_manifest_syncs",
            "Folder fsyncs of the upload queue since start; manifests written together share one \
             (group commit), so this grows slower than the manifest writes",
            m.upload_manifest_syncs.clone(),
        );
        registry.register(
            "request_panics",
            "Requests whose handler panicked (answered 500; the process kept serving)",
            m.panics.clone(),
        );
        registry.register(
            "propfind_answers",
            "PROPFIND answers by the writer that produced them: direct (one pass from the \
             listing) or dav-server",
            m.propfind_writers.clone(),
        );
        registry.register(
            "traffic_bytes",
            "Bytes downloaded from 123 this calendar month (China time) by mount: proxied bytes \
             as sent, redirects by the length they were sent to fetch",
            m.traffic.clone(),
        );
        registry.register(
            "traffic_budget_bytes",
            "traffic_budget of a mount (bytes per month), for mounts that have one",
            m.traffic_budget.clone(),
        );
        registry.register(
            "traffic_client_bytes",
            "Bytes downloaded from 123 this calendar month by the clients of a [[clients]] row",
            m.client_traffic.clone(),
        );
        Metrics(Arc::new(Inner { registry, ..m }))
    }
}

impl Metrics {
    /// A fresh registry with every count at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Which writer answered a PROPFIND: `direct` or `dav-server`.
    pub fn propfind_answered(&self, writer: &'static str) {
        self.0
            .propfind_writers
            .get_or_create(&WriterLabels { writer })
            .inc();
    }

    /// A request handler that panicked and was answered 500.
    pub fn request_panicked(&self) {
        self.0.panics.inc();
    }

    /// One answered request. `method` is one of a fixed set of names (`other` for the rest), so
    /// clients cannot grow the label set; `mount` is the mount's path (`Mount::label`: `/open`),
    /// or `None` outside any mount.
    pub fn request(&self, method: &'static str, status: u16, mount: Option<&Arc<str>>) {
        let mount = MountLabel(mount.unwrap_or(&self.0.no_mount).clone());
        self.0
            .requests
            .get_or_create(&RequestLabels {
                method,
                status,
                mount,
            })
            .inc();
    }

    /// One attempt of an upstream call: `endpoint` is its URL path (`/api/v2/file/list`), `result`
    /// a short class (`ok`, `code_401`, `code_429`, `http_5xx`, `transport`, …).
    pub fn upstream(&self, endpoint: &str, result: &str) {
        let m = &self.0;
        m.upstream
            .get_or_create(&UpstreamLabels {
                endpoint: endpoint.to_string(),
                result: result.to_string(),
            })
            .inc();
        if result == "code_429" {
            m.rate_limited
                .get_or_create(&EndpointLabels {
                    endpoint: endpoint.to_string(),
                })
                .inc();
        }
    }

    /// A token request's outcome (`ok` or `error`).
    pub fn token_refresh(&self, ok: bool) {
        self.0
            .token_refreshes
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    /// A lookup in one of the vfs caches.
    pub fn cache(&self, cache: CacheName, hit: bool) {
        let slot = cache as usize * 2 + usize::from(!hit);
        self.0.cache_series[slot]
            .get_or_init(|| {
                let labels = CacheLabels {
                    cache: cache.label(),
                    result: if hit { "hit" } else { "miss" },
                };
                self.0.cache.get_or_create(&labels).clone()
            })
            .inc();
    }

    /// Bytes the download proxy handed to a client.
    pub fn proxied_bytes(&self, n: u64) {
        self.0.proxied_bytes.inc_by(n);
    }

    /// The text of `/-/metrics`, with the upload gauges taken from `uploads` now.
    pub fn render(&self, uploads: QueueStats) -> String {
        let m = &self.0;
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.uploads_queued.set(gauge(uploads.queued as u64));
        m.uploads_running.set(gauge(uploads.running as u64));
        m.uploads_failed.set(gauge(uploads.failed));
        m.uploads_completed.set(gauge(uploads.completed));
        m.upload_bytes.set(gauge(uploads.bytes_uploaded));
        m.upload_manifest_syncs.set(gauge(uploads.manifest_syncs));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &m.registry) {
            out.clear();
            let _ = writeln!(out, "# encoding the metrics failed: {e}\n# EOF");
        }
        out
    }

    /// Sets a mount's traffic this month and its budget (taken from the meter at scrape time).
    pub fn set_traffic(&self, mount: &str, bytes: u64, budget: Option<u64>) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let labels = MountLabels {
            mount: mount.to_string(),
        };
        self.0.traffic.get_or_create(&labels).set(gauge(bytes));
        if let Some(budget) = budget {
            self.0
                .traffic_budget
                .get_or_create(&labels)
                .set(gauge(budget));
        }
    }

    /// Sets a `[[clients]]` row's traffic this month.
    pub fn set_client_traffic(&self, client: &str, bytes: u64) {
        let labels = ClientLabels {
            client: client.to_string(),
        };
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.0.client_traffic.get_or_create(&labels).set(bytes);
    }

    /// Counts one open proxy stream until the returned guard is dropped.
    pub fn active_stream(&self) -> ActiveStream {
        self.0.active_streams.inc();
        ActiveStream(self.clone())
    }
}

/// Counts one open proxy stream while it lives.
#[derive(Debug)]
pub struct ActiveStream(Metrics);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0 .0.active_streams.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_gateways_keep_their_own_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.upstream("/api/v2/file/list", "ok");
        a.upstream("/b/api/share/get", "code_429");
        let _stream = b.active_stream();
        let a_text = a.render(QueueStats::default());
        let b_text = b.render(QueueStats::default());
        assert!(a_text.contains(
            "pan123_upstream_calls_total{endpoint=\"/api/v2/file/list\",result=\"ok\"} 1"
        ));
        assert!(
            a_text.contains("pan123_upstream_rate_limited_total{endpoint=\"/b/api/share/get\"} 1")
        );
        assert!(!b_text.contains("/api/v2/file/list"), "{b_text}");
        assert!(b_text.contains("pan123_proxy_active_streams 1"), "{b_text}");
        assert!(a_text.contains("pan123_proxy_active_streams 0"), "{a_text}");
    }
}
