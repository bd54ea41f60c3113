//! The one retry decision of every upstream loop: how many times a rate limit (code or HTTP
//! 429) and a transient failure (5xx, a cut, a timeout) may be retried, and how long to wait
//! before each retry. The wait is `pacer::backoff_at` (exponential, jittered, never shorter
//! than the server's `Retry-After`, which `pacer::retry_after` reads in both of its forms); a
//! `Retry-After` longer than `pacer::MAX_RETRY_WAIT` ends the loop, so the client is told to
//! come back later instead. The decision itself is the pure [`Retries::decide`], tested by
//! table without sleeping (as rclone's `lib/pacer`); [`Retries::next`] adds the random draw and
//! the request's deadline.

use std::time::Duration;

use super::pacer::{backoff_at, MAX_RETRY_WAIT};
use super::{deadline, Error};

/// The retries one call has used, against its bounds.
#[derive(Clone, Copy, Debug)]
pub struct Retries {
    rate_limited: u32,
    transient: u32,
    max_rate_limited: u32,
    max_transient: u32,
}

impl Retries {
    /// Up to `max_rate_limited` retries after a rate limit and `max_transient` after a 5xx or a
    /// cut (0 for calls that may have acted before their answer was lost).
    pub fn new(max_rate_limited: u32, max_transient: u32) -> Self {
        Self {
            rate_limited: 0,
            transient: 0,
            max_rate_limited,
            max_transient,
        }
    }

    /// Transient retries used so far (for log lines).
    pub fn transient(&self) -> u32 {
        self.transient
    }

    /// Retries of either kind used so far (for log lines).
    pub fn used(&self) -> u32 {
        self.rate_limited + self.transient
    }

    /// Whether `error` still has a retry left, the deadline aside: for loops that do some work
    /// (a re-check) between the failure and the wait.
    pub fn covers(&self, error: &Error) -> bool {
        let mut tried = *self;
        tried.decide(error, 0.5).is_some()
    }

    /// Counts one more retry of `error` and says how long to wait before it, or `None` when it
    /// is not retried: out of retries, a `Retry-After` beyond `MAX_RETRY_WAIT`, an error that
    /// is final, or a wait that would end past the request's deadline.
    pub fn next(&mut self, error: &Error) -> Option<Duration> {
        let mut tried = *self;
        let delay = tried.next_anytime(error)?;
        if !deadline::allows(delay) {
            return None;
        }
        *self = tried;
        Some(delay)
    }

    /// [`Retries::next`] whatever the request's deadline: for upload parts, which their own
    /// per-part timeout bounds and which may outlive the request that spooled them.
    pub fn next_anytime(&mut self, error: &Error) -> Option<Duration> {
        self.decide(error, rand::random::<f64>())
    }

    /// Waits before the next retry of `error` (logging a transient one with `endpoint`), or
    /// hands `error` back when it is not retried: the end of every request loop's turn.
    pub async fn wait(&mut self, error: Error, endpoint: &str) -> Result<(), Error> {
        let Some(delay) = self.next(&error) else {
            return Err(error);
        };
        if !matches!(error, Error::RateLimited { .. }) {
            tracing::info!(endpoint, attempt = self.transient, error = %error, "retrying a failed 123 call");
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// [`Retries::next`] without the deadline, with its random draw `unit` (in `[0, 1)`)
    /// passed in: a pure function.
    pub fn decide(&mut self, error: &Error, unit: f64) -> Option<Duration> {
        match error {
            Error::RateLimited { retry_after }
                if retry_after.is_some_and(|r| r > MAX_RETRY_WAIT) =>
            {
                None
            }
            Error::RateLimited { retry_after } if self.rate_limited < self.max_rate_limited => {
                self.rate_limited += 1;
                Some(backoff_at(self.rate_limited, *retry_after, unit))
            }
            Error::Unavailable(_) | Error::Transport(_) if self.transient < self.max_transient => {
                self.transient += 1;
                Some(backoff_at(self.transient, None, unit))
            }
            _ => None,
        }
    }
}

/// `first`, doubled per step after the first (`n` ≥ 1) and capped at `max`: the exponential
/// part of every back-off (the retries' `pacer::backoff_at`, the web login's refusals).
pub fn doubling(first: Duration, n: u32, max: Duration) -> Duration {
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (bounds, errors in order, the waits expected).
    type Case = ((u32, u32), Vec<Error>, Vec<Option<Duration>>);

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    #[test]
    fn decisions_by_table() {
        let limited = |after: Option<u64>| Error::RateLimited {
            retry_after: after.map(Duration::from_secs),
        };
        let cut = Error::Transport("reset".into());
        // (bounds, errors in order, the waits at unit 0.5, i.e. the exponential step itself)
        let cases: Vec<Case> = vec![
            // Rate limits back off 250, 500, 1000 ms, then give up.
            (
                (3, 0),
                vec![limited(None), limited(None), limited(None), limited(None)],
                vec![Some(ms(250)), Some(ms(500)), Some(ms(1000)), None],
            ),
            // A Retry-After is a floor; one beyond MAX_RETRY_WAIT ends the loop at once.
            (
                (4, 0),
                vec![limited(Some(3)), limited(Some(31))],
                vec![Some(ms(3000)), None],
            ),
            // Transient failures use their own count; none for calls that must not repeat.
            (
                (4, 2),
                vec![cut.clone(), limited(None), cut.clone(), cut.clone()],
                vec![Some(ms(250)), Some(ms(250)), Some(ms(500)), None],
            ),
            ((4, 0), vec![cut.clone()], vec![None]),
            // Final errors are never retried.
            (
                (4, 2),
                vec![Error::NotFound, Error::Auth("no".into())],
                vec![None, None],
            ),
        ];
        for ((max_rl, max_tr), errors, waits) in cases {
            let mut r = Retries::new(max_rl, max_tr);
            let got: Vec<_> = errors.iter().map(|e| r.decide(e, 0.5)).collect();
            assert_eq!(got, waits, "{errors:?}");
        }
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let cut = Error::Unavailable("503".into());
        assert_eq!(
            Retries::new(0, 1).decide(&cut, 0.0),
            Some(ms(187) + Duration::from_micros(500))
        );
        assert_eq!(
            Retries::new(0, 1).decide(&cut, 1.0),
            Some(ms(312) + Duration::from_micros(500))
        );
    }
}
