//! Per-client lockout after repeated wrong credentials, so passwords cannot be guessed at
//! argon2's pace from one address. Requests without credentials (Explorer and Finder send one
//! first, to get the challenge) do not count; a successful login clears the count.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Wrong credentials allowed per client within `WINDOW`.
const MAX_FAILURES: u32 = 10;
/// How long failures are remembered, and how long a lockout lasts.
const WINDOW: Duration = Duration::from_secs(5 * 60);

/// The peer address of the connection a request came on (set by the server per connection).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Failure counts and lockouts by client address.
pub struct Lockout {
    failures: moka::sync::Cache<IpAddr, u32>,
    locked: moka::sync::Cache<IpAddr, ()>,
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
        }
    }
}

impl Lockout {
    /// Is this client locked out right now?
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        self.locked.contains_key(&ip)
    }

    /// Records wrong credentials; true when this failure locks the client out.
    pub fn failed(&self, ip: IpAddr) -> bool {
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

    /// A successful login forgets earlier failures.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.invalidate(&ip);
    }

    /// How long a locked-out client should wait.
    pub fn retry_after(&self) -> Duration {
        WINDOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_success_resets() {
        let l = Lockout::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(!l.failed(ip));
        }
        l.succeeded(ip);
        for _ in 0..MAX_FAILURES - 1 {
            assert!(!l.failed(ip));
        }
        assert!(!l.is_locked(ip));
        assert!(l.failed(ip));
        assert!(l.is_locked(ip));
        assert!(!l.is_locked([10, 0, 0, 2].into()));
    }
}
