//! Graceful stop: SIGTERM or Ctrl-C stops accepting, lets requests in flight (a film being
//! streamed included) finish for a grace period, then ends the rest. Queued uploads stay on
//! disk for the next start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::response::ResponseBody;

/// How long requests in flight may run on after a stop signal.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Counts requests in flight, from the first byte of the request to the last of the response.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request in flight; dropped when its response body is done (or dropped).
pub struct Guard(Arc<InFlight>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> Guard {
        self.count.fetch_add(1, Ordering::AcqRel);
        Guard(self.clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no request is in flight, or `grace` has passed; true when idle.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// Keeps `guard` (anything whose drop marks the end of a request) alive for as long as the
/// body is.
pub fn hold<G: Send + 'static>(body: ResponseBody, guard: G) -> ResponseBody {
    body.map_err(move |e| {
        let _keep = &guard;
        e
    })
    .boxed_unsync()
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
