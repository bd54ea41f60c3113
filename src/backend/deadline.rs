//! One overall upstream deadline per client request (`server.upstream_deadline`).
//!
//! Each upstream call has its own limits (connect, first byte) and retries, so a request that
//! makes several calls, each retried, could wait minutes on a 123 that does not answer. The
//! server runs every request inside [`scope`]; every retry loop that talks to 123 asks this
//! module how long its next attempt may wait ([`attempt`]), whether a retry still fits
//! ([`allows`]), and bounds its waits for shared work (a token refresh, a listing fetched for
//! several requests, a pacing slot) with [`bound`] / [`wait`]. Past the deadline the request
//! gets `Error::Unavailable` (503 with Retry-After) or the last real error.
//!
//! A task-local rather than a parameter: the deadline belongs to the request, not to any one
//! call, and threading it through the backend trait, the vfs and four backends would change
//! every signature for one number. Work outside a request (the upload queue, probes, a listing
//! fetch that outlives the request that started it) has no deadline: it is bounded by its own
//! per-call timeouts and retry counts, exactly as before.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Error;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` (one client request) with an upstream deadline `limit` from now.
pub fn scope<F: Future>(limit: Duration, f: F) -> impl Future<Output = F::Output> {
    DEADLINE.scope(Instant::now() + limit, f)
}

/// Runs `f` (one client request) with the upstream deadline `at` (the request's start plus
/// `server.upstream_deadline`: the server reads the clock once for both). Not an `async fn`:
/// that would hold `f` twice (as its argument and inside the scope it awaits), and every
/// request's future is moved whole a few times on its way into hyper.
pub fn scope_until<F: Future>(at: Instant, f: F) -> impl Future<Output = F::Output> {
    DEADLINE.scope(at, f)
}

/// The current request's deadline; `None` outside a request.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left before the deadline; `None` outside a request.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// The error of a request whose deadline passed before 123 answered.
pub fn expired() -> Error {
    Error::Unavailable(
        "123 did not answer within the request's deadline (server.upstream_deadline)".into(),
    )
}

/// How long the next upstream attempt may wait: `limit`, or less when the deadline is nearer.
/// `Err` when the deadline has passed.
pub fn attempt(limit: Duration) -> Result<Duration, Error> {
    match remaining() {
        None => Ok(limit),
        Some(left) if left.is_zero() => Err(expired()),
        Some(left) => Ok(limit.min(left)),
    }
}

/// Whether a retry after waiting `delay` would still start before the deadline (always true
/// outside a request). A loop that may not retry returns the error it has.
pub fn allows(delay: Duration) -> bool {
    remaining().is_none_or(|left| left > delay)
}

/// Awaits `f`, or `Err(expired())` at the deadline.
pub async fn bound<T, F>(f: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    match current() {
        None => f.await,
        Some(at) => tokio::time::timeout_at(at, f)
            .await
            .unwrap_or_else(|_| Err(expired())),
    }
}

/// Awaits `f` (a wait that cannot fail: a lock, a pacing slot), or `Err(expired())` at the
/// deadline.
pub async fn wait<F: Future>(f: F) -> Result<F::Output, Error> {
    bound(async { Ok(f.await) }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outside_a_request_nothing_is_bounded() {
        assert_eq!(current(), None);
        assert_eq!(
            attempt(Duration::from_secs(30)).ok(),
            Some(Duration::from_secs(30))
        );
        assert!(allows(Duration::from_secs(3600)));
        let r = wait(tokio::time::sleep(Duration::from_secs(3600))).await;
        assert!(r.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn inside_a_request_everything_meets_the_deadline() {
        scope(Duration::from_secs(2), async {
            assert_eq!(
                attempt(Duration::from_secs(30)).ok(),
                Some(Duration::from_secs(2))
            );
            assert_eq!(
                attempt(Duration::from_secs(1)).ok(),
                Some(Duration::from_secs(1))
            );
            assert!(allows(Duration::from_secs(1)));
            assert!(!allows(Duration::from_secs(2)));
            let r = wait(tokio::time::sleep(Duration::from_secs(3600))).await;
            assert!(matches!(r, Err(Error::Unavailable(_))));
            assert!(attempt(Duration::from_secs(30)).is_err());
            assert!(!allows(Duration::ZERO));
        })
        .await;
        assert_eq!(current(), None);
    }
}
