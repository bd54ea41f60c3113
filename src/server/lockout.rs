//! Per-client lockout after repeated wrong credentials, so passwords cannot be guessed at
//! argon2's pace from one address. Requests without credentials (Explorer and Finder send one
//! first, to get the challenge) do not count; a successful login clears the count.

use std::net::IpAddr;
use std::time::Duration;

pub use crate::cluster::LoginState;

/// Wrong credentials allowed per client within `WINDOW`.
const MAX_FAILURES: u32 = 10;
/// How long failures are remembered, and how long a lockout lasts.
const WINDOW: Duration = Duration::from_secs(5 * 60);

/// Failure counts and lockouts by client address: this instance's, and in a cluster every
/// instance's (kept in Redis; while Redis is unavailable this instance counts alone).
pub struct Lockout {
    failures: moka::sync::Cache<IpAddr, u32>,
    locked: moka::sync::Cache<IpAddr, ()>,
    /// Has this instance counted a wrong credential since it started? Until then both caches
    /// are empty, and a request with right ones skips their two lookups.
    any_failure: std::sync::atomic::AtomicBool,
    shared: Option<std::sync::Arc<crate::cluster::Cluster>>,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
            locked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
            any_failure: std::sync::atomic::AtomicBool::new(false),
            shared: None,
        }
    }
}

impl Lockout {
    /// The lockout of every instance of `cluster`.
    pub fn shared(mut self, cluster: Option<std::sync::Arc<crate::cluster::Cluster>>) -> Self {
        self.shared = cluster;
        self
    }

    /// The cluster, when it answers (else this instance decides alone, without waiting).
    fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.shared.as_deref().filter(|c| c.available())
    }

    /// Is this client locked out right now (here, or on any instance of a cluster)? The answer
    /// goes back to `succeeded`, which then clears shared failures only where there are some:
    /// an authenticated request costs one Redis round trip, not two.
    pub async fn check(&self, ip: IpAddr) -> LoginState {
        if self.any_failure() && self.locked.contains_key(&ip) {
            return LoginState {
                locked: true,
                failures: false,
            };
        }
        match self.cluster() {
            Some(cluster) => cluster.login_state(ip).await.unwrap_or_default(),
            None => LoginState::default(),
        }
    }

    /// Records wrong credentials; true when this failure locks the client out.
    pub async fn failed(&self, ip: IpAddr) -> bool {
        if let Some(cluster) = self.cluster() {
            if let Ok(locked) = cluster.login_failed(ip, MAX_FAILURES, WINDOW).await {
                if locked {
                    tracing::warn!(client = %ip, failures = MAX_FAILURES, lockout_s = WINDOW.as_secs(), "too many wrong credentials on the cluster's instances; locking the client out");
                }
                return locked;
            }
        }
        self.any_failure
            .store(true, std::sync::atomic::Ordering::Release);
        let n = self.failures.get(&ip).unwrap_or(0) + 1;
        self.failures.insert(ip, n);
        if n >= MAX_FAILURES {
            self.failures.invalidate(&ip);
            self.locked.insert(ip, ());
            tracing::warn!(client = %ip, failures = n, lockout_s = WINDOW.as_secs(), "too many wrong credentials; locking the client out");
            return true;
        }
        false
    }

    /// A successful login forgets earlier failures (`before` is what `check` found).
    pub async fn succeeded(&self, ip: IpAddr, before: LoginState) {
        if self.any_failure() {
            self.failures.invalidate(&ip);
        }
        if !before.failures {
            return;
        }
        if let Some(cluster) = self.cluster() {
            let _ = cluster.login_succeeded(ip).await;
        }
    }

    /// Has a wrong credential been counted here (see the field)?
    fn any_failure(&self) -> bool {
        self.any_failure.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How long a locked-out client should wait.
    pub fn retry_after(&self) -> Duration {
        WINDOW
    }
}

/// The address a request comes from: the peer, or, when the peer is a trusted reverse proxy,
/// the nearest address in `X-Forwarded-For` (or `Forwarded: for=`) that is not one of the
/// trusted proxies. Headers from anyone else are ignored: they are trivially forged.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in value.split([',', ';']) {
            if let Some(addr) = part
                .trim()
                .strip_prefix("for=")
                .or_else(|| part.trim().strip_prefix("For="))
            {
                let addr = addr.trim_matches('"').trim_start_matches('[');
                let addr = addr.split(']').next().unwrap_or(addr);
                if let Ok(ip) = addr.parse() {
                    chain.push(ip);
                } else if let Some(Ok(ip)) = addr.rsplit_once(':').map(|(h, _)| h.parse()) {
                    chain.push(ip);
                }
            }
        }
    }
    if chain.is_empty() {
        for value in headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            chain.extend(
                value
                    .split(',')
                    .filter_map(|a| a.trim().parse::<IpAddr>().ok()),
            );
        }
    }
    chain
        .iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// Whether a trusted reverse proxy says the client spoke HTTPS to it (`X-Forwarded-Proto`, or
/// `Forwarded: proto=`; the first hop, the one nearest the client, counts). Anyone else's
/// headers are ignored, as in [`client_ip`].
pub fn forwarded_https(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpAddr]) -> bool {
    if !trusted.contains(&peer) {
        return false;
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    if let Some(proto) = first("x-forwarded-proto") {
        return proto.eq_ignore_ascii_case("https");
    }
    first("forwarded").is_some_and(|hop| {
        hop.split(';').any(|kv| {
            kv.trim().split_once('=').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("proto") && v.trim_matches('"').eq_ignore_ascii_case("https")
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_behind_trusted_proxies() {
        let proxy: IpAddr = [127, 0, 0, 1].into();
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.7, 10.0.0.9, 127.0.0.1".parse().unwrap(),
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip([10, 0, 0, 9].into(), &h, &[proxy]),
            IpAddr::from([10, 0, 0, 9])
        );
        // Behind the trusted proxy: the nearest untrusted hop.
        assert_eq!(client_ip(proxy, &h, &[proxy]), IpAddr::from([10, 0, 0, 9]));
        assert_eq!(
            client_ip(proxy, &h, &[proxy, [10, 0, 0, 9].into()]),
            IpAddr::from([203, 0, 113, 7])
        );
        let mut f = http::HeaderMap::new();
        f.insert(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https".parse().unwrap(),
        );
        assert_eq!(
            client_ip(proxy, &f, &[proxy]),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &http::HeaderMap::new(), &[proxy]), proxy);
    }

    #[tokio::test]
    async fn locks_after_max_failures_and_success_resets() {
        let l = Lockout::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(!l.failed(ip).await);
        }
        let before = l.check(ip).await;
        l.succeeded(ip, before).await;
        for _ in 0..MAX_FAILURES - 1 {
            assert!(!l.failed(ip).await);
        }
        assert!(!l.check(ip).await.locked);
        assert!(l.failed(ip).await);
        assert!(l.check(ip).await.locked);
        assert!(!l.check([10, 0, 0, 2].into()).await.locked);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn the_scheme_a_proxy_forwards() {
        assert!(https_via(&headers(&[("x-forwarded-proto", "https")])));
        assert!(https_via(&headers(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(!https_via(&headers(&[("x-forwarded-proto", "http")])));
        assert!(https_via(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=https;host=dav.example"
        )])));
        assert!(https_via(&headers(&[(
            "forwarded",
            "proto=\"https\", proto=http"
        )])));
        assert!(!https_via(&headers(&[(
            "forwarded",
            "for=192.0.2.1, proto=https"
        )])));
        assert!(!https_via(&headers(&[])));
    }

    /// [`forwarded_https`] from a trusted proxy.
    fn https_via(headers: &http::HeaderMap) -> bool {
        let proxy: IpAddr = [192, 0, 2, 9].into();
        forwarded_https(proxy, headers, &[proxy])
    }

    #[test]
    fn an_untrusted_peer_cannot_say_https() {
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(!forwarded_https([192, 0, 2, 9].into(), &h, &[]));
    }
}
