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

/// Spaces calls so that at most `qps` start within any window, per key.
#[derive(Default)]
pub struct QpsLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
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
}
