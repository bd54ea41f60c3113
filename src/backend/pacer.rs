//! Request pacing for 123's APIs: a per-endpoint QPS limiter and the retry back-off.
//!
//! 123 counts calls per credential and endpoint in one-second windows and answers code 429
//! past the limit. The limiter keeps us under that without ever holding a slot while a caller
//! sleeps or retries: a slot is simply the start time of a call, and it frees itself when it is
//! older than the window. The limiter is behind a small interface so a shared (Redis) one can
//! replace it when several gateway instances serve one account.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window 123 counts calls in, plus a margin for the time a request spends on the wire:
/// the emulator (and 123) see the arrival time, we see the start time.
const WINDOW: Duration = Duration::from_millis(1050);

/// Spaces calls so that at most `qps` start within any window, per key; or, with
/// [`QpsLimiter::space`], at least a fixed interval apart, per key.
#[derive(Default)]
pub struct QpsLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Per key, the earliest start of the next spaced call.
    next_slot: Mutex<HashMap<String, Instant>>,
}

/// How far apart listing pages of 123's web API start (share links, later personal accounts):
/// OpenList's token bucket of one page per 700 ms, burst 1, added at 123's request (alist#6012)
/// so that mass listing is not taken for an attack (docs/123.md, web §1.2, §2.3).
pub const WEB_LIST_INTERVAL: Duration = Duration::from_millis(700);

/// The one limiter for 123's web API in this process. 123 sees every share (and later
/// personal-account) mount of this gateway as one client, so their listing pages share one
/// spacing per API host: keyed by `api_base`, which is the same for every real mount.
pub fn web_api() -> &'static QpsLimiter {
    static WEB: std::sync::OnceLock<QpsLimiter> = std::sync::OnceLock::new();
    WEB.get_or_init(QpsLimiter::new)
}

impl QpsLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until a call on `key` may start under `rate`, then records it.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        if rate.calls == 0 {
            return;
        }
        loop {
            let wait_until = {
                let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
                let window = windows.entry(key.to_string()).or_default();
                let now = Instant::now();
                while window
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= rate.window)
                {
                    window.pop_front();
                }
                if window.len() < rate.calls as usize {
                    window.push_back(now);
                    return;
                }
                // The oldest start leaves the window first.
                window.front().map(|t| *t + rate.window).unwrap_or(now)
            };
            tokio::time::sleep_until(wait_until).await;
        }
    }
}

impl QpsLimiter {
    /// Waits until a call on `key` may start at least `interval` after the previous one on
    /// `key` started, then records it. A slot is reserved before waiting, so concurrent
    /// callers queue in order and a cancelled caller only leaves a gap.
    pub async fn space(&self, key: &str, interval: Duration) {
        let start = {
            let mut slots = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = slots.get(key).map_or(now, |next| (*next).max(now));
            slots.insert(key.to_string(), slot + interval);
            slot
        };
        tokio::time::sleep_until(start).await;
    }
}

/// The longest server `Retry-After` a retry loop waits for; longer ones end the loop instead
/// (the client gets 503 with that `Retry-After`), so one request never sleeps for minutes.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How long to wait before retry number `attempt` (1-based) after a 429 or a transient
/// failure: exponential from 250 ms, capped at 4 s, with ±25 % jitter so that requests that
/// failed together do not retry together (docs/123.md, open §11, "QPS"), and never shorter than a
/// `Retry-After` the server gave (docs/123.md, open §11: honour it on every retry loop).
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    backoff_at(attempt, retry_after, rand::random::<f64>())
}

/// [`backoff`] with its random draw `unit` (in `[0, 1)`) passed in: a pure function, tested by
/// table without sleeping. `unit = 0.5` gives the exponential step itself.
pub fn backoff_at(attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
    let base = super::retry::doubling(Duration::from_millis(250), attempt, Duration::from_secs(4));
    let jittered = base.mul_f64(0.75 + 0.5 * unit.clamp(0.0, 1.0));
    match retry_after {
        Some(r) if r > jittered => r.min(MAX_RETRY_WAIT),
        _ => jittered,
    }
}

/// A response's `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP date. A date in the
/// past, or a zero, counts as one second (the server did say "later").
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.max(Duration::from_secs(1)))
}

/// How many calls may start per window for a published limit of `qps` scaled by `scale`
/// (`server.qps_scale`, 0.1–1.0; docs/123.md, open §11: run at 80 % of the table by default).
/// A scaled limit under one call per second becomes one call per longer window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Calls per window; 0 = unlimited.
    pub calls: u32,
    pub window: Duration,
}

impl Rate {
    /// The rate for a published `qps` (0 = no limit) at `scale`.
    pub fn scaled(qps: u32, scale: f64) -> Rate {
        let per_second = f64::from(qps) * scale.clamp(0.01, 1.0);
        if qps == 0 {
            Rate {
                calls: 0,
                window: WINDOW,
            }
        } else if per_second >= 1.0 {
            Rate {
                calls: per_second.floor() as u32,
                window: WINDOW,
            }
        } else {
            Rate {
                calls: 1,
                window: WINDOW.div_f64(per_second),
            }
        }
    }
}

impl Rate {
    /// One instance's part of this rate when `n` instances share it (while the shared limiter
    /// of a cluster is unavailable): a share of the calls per window, or one call per
    /// proportionally longer window when there are fewer calls than instances.
    pub fn share(self, n: u32) -> Rate {
        if self.calls == 0 || n <= 1 {
            self
        } else if self.calls >= n {
            Rate {
                calls: self.calls / n,
                window: self.window,
            }
        } else {
            Rate {
                calls: 1,
                window: self.window * n / self.calls,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_table() {
        let ms = |m| Duration::from_millis(m);
        let backoff = |attempt, ra| backoff_at(attempt, ra, 0.5);
        let cases = [
            (1, None, ms(250)),
            (2, None, ms(500)),
            (3, None, ms(1000)),
            (4, None, ms(2000)),
            (5, None, ms(4000)),
            (9, None, ms(4000)),
            (60, None, ms(4000)),
            (1, Some(ms(3000)), ms(3000)),
            (5, Some(ms(100)), ms(4000)),
            (1, Some(Duration::from_secs(3600)), Duration::from_secs(30)),
        ];
        for (attempt, ra, want) in cases {
            assert_eq!(
                backoff(attempt, ra),
                want,
                "attempt {attempt} retry_after {ra:?}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_a_quarter_and_under_retry_after() {
        let ms = |m| Duration::from_millis(m);
        assert_eq!(
            backoff_at(1, None, 0.0),
            ms(187) + Duration::from_micros(500)
        );
        assert_eq!(backoff_at(3, None, 1.0), ms(1250));
        assert_eq!(backoff_at(5, None, 0.0), ms(3000));
        // A Retry-After is a floor: jitter never shortens it.
        assert_eq!(backoff_at(1, Some(ms(2000)), 0.0), ms(2000));
        assert_eq!(backoff_at(1, Some(ms(2000)), 1.0), ms(2000));
        for _ in 0..100 {
            let d = backoff(2, None);
            assert!(d >= ms(375) && d <= ms(625), "{d:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::RETRY_AFTER, v.parse().expect("value"));
            m
        };
        assert_eq!(retry_after(&h("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&h("0")), Some(Duration::from_secs(1)));
        assert_eq!(
            retry_after(&h("Thu, 01 Jan 1970 00:00:00 GMT")),
            Some(Duration::from_secs(1))
        );
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let got = retry_after(&h(&later)).expect("a date");
        assert!(got > Duration::from_secs(100) && got <= Duration::from_secs(120));
        assert_eq!(retry_after(&h("soon")), None);
        assert_eq!(retry_after(&http::HeaderMap::new()), None);
    }

    #[test]
    fn scaled_rates() {
        let r = |qps, scale| Rate::scaled(qps, scale);
        assert_eq!(r(5, 0.8).calls, 4);
        assert_eq!(r(10, 0.8).calls, 8);
        assert_eq!(r(3, 0.8).calls, 2);
        assert_eq!(r(5, 1.0).calls, 5);
        assert_eq!(r(0, 0.8).calls, 0);
        // 1 QPS at 80 %: one call per 1.3125 s.
        assert_eq!(
            r(1, 0.8),
            Rate {
                calls: 1,
                window: WINDOW.div_f64(0.8)
            }
        );
        assert_eq!(r(2, 0.1).calls, 1);
        assert_eq!(r(2, 0.1).window, WINDOW.div_f64(0.2));
    }

    #[test]
    fn shared_rates() {
        let r = Rate::scaled(5, 0.8);
        assert_eq!(r.share(1), r);
        assert_eq!(
            r.share(2),
            Rate {
                calls: 2,
                window: WINDOW
            }
        );
        assert_eq!(
            r.share(4),
            Rate {
                calls: 1,
                window: WINDOW
            }
        );
        assert_eq!(
            r.share(8),
            Rate {
                calls: 1,
                window: WINDOW * 2
            }
        );
        let unlimited = Rate::scaled(0, 0.8);
        assert_eq!(unlimited.share(4), unlimited);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_calls_per_key() {
        let l = QpsLimiter::new();
        let start = Instant::now();
        let three = Rate::scaled(3, 1.0);
        for _ in 0..3 {
            l.acquire("list", three).await;
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        l.acquire("list", three).await;
        assert!(start.elapsed() >= WINDOW);
        // Another key is independent.
        let t = Instant::now();
        l.acquire("info", Rate::scaled(1, 1.0)).await;
        assert!(t.elapsed() < Duration::from_millis(10));
        // Unlimited never waits.
        for _ in 0..100 {
            l.acquire("slice", Rate::scaled(0, 0.8)).await;
        }
        // A scaled-down limit under 1 QPS spaces calls further than a second apart.
        let slow = Rate::scaled(1, 0.5);
        let t = Instant::now();
        l.acquire("rename", slow).await;
        l.acquire("rename", slow).await;
        assert!(t.elapsed() >= WINDOW * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn spacing_is_per_key_and_shared_by_callers() {
        let l = std::sync::Arc::new(QpsLimiter::new());
        let start = Instant::now();
        l.space("web", WEB_LIST_INTERVAL).await;
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the first call is free"
        );
        // Three concurrent callers on one key start one interval apart, in order.
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    l.space("web", WEB_LIST_INTERVAL).await;
                    Instant::now()
                })
            })
            .collect();
        let mut starts = Vec::new();
        for t in tasks {
            starts.push(t.await.expect("task"));
        }
        starts.sort();
        assert!(starts[0] - start >= WEB_LIST_INTERVAL);
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] >= WEB_LIST_INTERVAL, "{starts:?}");
        }
        // Another key is independent.
        let t = Instant::now();
        l.space("other", WEB_LIST_INTERVAL).await;
        assert!(t.elapsed() < Duration::from_millis(10));
        // After a quiet interval the next call is free again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let t = Instant::now();
        l.space("web", WEB_LIST_INTERVAL).await;
        assert!(t.elapsed() < Duration::from_millis(10));
    }
}
