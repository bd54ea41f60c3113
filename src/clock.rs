//! Time as the gateway's decisions see it: the system clocks plus an offset that only moves
//! forward. The decisions that wait minutes or days — the web login back-off, the lifetime of
//! client junk, the expiry of signed URLs — read this clock, so a test can move it instead of
//! sleeping (the emulator has the same kind of clock for 123's side). In production the offset
//! stays zero. One `Clock` belongs to one `AppState`; clones share it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A shared handle on the gateway's clock.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    /// A clock with no offset.
    pub fn new() -> Self {
        Self::default()
    }

    fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The monotonic now, for waits and lifetimes.
    pub fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.offset()
    }

    /// The wall-clock now, for timestamps that leave the process (signed URL expiry).
    pub fn system(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    /// Unix seconds of `system()`.
    pub fn unix_secs(&self) -> u64 {
        self.system()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }

    /// Moves the clock forward by `by` (for tests: what would take minutes takes none).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_offset() {
        let clock = Clock::new();
        let other = clock.clone();
        let before = other.unix_secs();
        clock.advance(Duration::from_secs(3600));
        assert!(other.unix_secs() >= before + 3600);
        assert!(other.instant() >= tokio::time::Instant::now() + Duration::from_secs(3599));
    }
}
