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
/// so that mass listing is not taken for an attack (spec web §1.2, §2.3).
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

    /// Waits until a call on `key` may start under a limit of `qps` calls per second, then
    /// records it. `qps == 0` means unlimited.
    pub async fn acquire(&self, key: &str, qps: u32) {
        if qps == 0 {
            return;
        }
        loop {
            let wait_until = {
                let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
                let window = windows.entry(key.to_string()).or_default();
                let now = Instant::now();
                while window
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    window.pop_front();
                }
                if window.len() < qps as usize {
                    window.push_back(now);
                    return;
                }
                // The oldest start leaves the window first.
                window.front().map(|t| *t + WINDOW).unwrap_or(now)
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

/// How long to wait before retry number `attempt` (1-based) after a 429 or a transient
/// failure: exponential from 250 ms, capped at 4 s, and never shorter than a Retry-After the
/// server gave. A pure function so it is tested by table, without sleeping.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    let base = Duration::from_millis(exp.min(4000));
    match retry_after {
        Some(r) if r > base => r.min(Duration::from_secs(30)),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_table() {
        let ms = |m| Duration::from_millis(m);
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

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_calls_per_key() {
        let l = QpsLimiter::new();
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire("list", 3).await;
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        l.acquire("list", 3).await;
        assert!(start.elapsed() >= WINDOW);
        // Another key is independent.
        let t = Instant::now();
        l.acquire("info", 1).await;
        assert!(t.elapsed() < Duration::from_millis(10));
        // Unlimited never waits.
        for _ in 0..100 {
            l.acquire("slice", 0).await;
        }
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
