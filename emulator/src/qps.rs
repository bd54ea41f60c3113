//! Per-endpoint request-rate limits, as 123 enforces them (envelope code 429 when exceeded), on
//! the Open API and on the web API and its login host.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The QPS limit of an endpoint (by URL path), `None` = not limited.
///
/// Open API: published developer free-tier numbers (docs/123.md, open §7) where they exist; for
/// endpoints the docs leave out, OpenList's limiter values, which have worked
/// in practice. The gateway uses the same function so both sides agree.
///
/// Web API and login host: 123 publishes no numbers, so these are the emulator's choice. Listing
/// pages get 3 a second: the web client spaces them 700 ms apart (at 123's request,
/// docs/123.md, web §1.2), so a paced client never sees 429 and an unpaced burst does. Login gets 5, everything
/// else 10.
pub fn default_qps(endpoint: &str) -> Option<u32> {
    match endpoint {
        // docs/123.md, open §7: developer free tier
        "/api/v1/access_token" => Some(8),
        "/api/v1/user/info" => Some(10),
        "/api/v2/file/list" => Some(5),
        "/upload/v1/file/mkdir" => Some(5),
        "/api/v1/file/move" => Some(3),
        "/api/v1/file/delete" => Some(1),
        // OpenList's numbers for endpoints the docs leave out
        "/api/v1/file/download_info" => Some(5),
        "/api/v1/direct-link/url" => Some(5),
        "/api/v1/file/name" => Some(1),
        "/api/v1/file/trash" => Some(2),
        "/upload/v2/file/create" => Some(2),
        // upload_complete and slice: unlimited (OpenList: 0 / bypass)
        // web API and login host (the emulator's choice, see above)
        "/b/api/share/get" | "/b/api/file/list/new" => Some(3),
        "/api/user/sign_in" => Some(5),
        p if p.starts_with("/b/api/") => Some(10),
        _ => None,
    }
}

/// Sliding one-second windows of accepted calls, per (owner, endpoint).
#[derive(Debug, Default)]
pub struct Limiter {
    windows: HashMap<(String, String), VecDeque<Instant>>,
}

/// Window length.
const WINDOW: Duration = Duration::from_secs(1);

impl Limiter {
    /// Admit a call if fewer than `limit` calls were admitted in the last second.
    pub fn try_acquire(&mut self, owner: &str, endpoint: &str, limit: u32, now: Instant) -> bool {
        let w = self
            .windows
            .entry((owner.to_string(), endpoint.to_string()))
            .or_default();
        while let Some(front) = w.front() {
            if now.duration_since(*front) >= WINDOW {
                w.pop_front();
            } else {
                break;
            }
        }
        if w.len() >= limit as usize {
            return false;
        }
        w.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(default_qps("/api/v2/file/list"), Some(5));
        assert_eq!(default_qps("/api/v1/file/delete"), Some(1));
        assert_eq!(default_qps("/upload/v2/file/slice"), None);
        assert_eq!(default_qps("/upload/v2/file/upload_complete"), None);
        assert_eq!(default_qps("/b/api/file/list/new"), Some(3));
        assert_eq!(default_qps("/b/api/share/get"), Some(3));
        assert_eq!(default_qps("/b/api/file/upload_request"), Some(10));
        assert_eq!(default_qps("/api/user/sign_in"), Some(5));
        assert_eq!(default_qps("cdn"), None);
    }

    #[test]
    fn sliding_window() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.try_acquire("c", "e", 3, t0));
        }
        assert!(!l.try_acquire("c", "e", 3, t0 + Duration::from_millis(500)));
        assert!(l.try_acquire("other", "e", 3, t0));
        assert!(l.try_acquire("c", "e2", 3, t0));
        assert!(l.try_acquire("c", "e", 3, t0 + Duration::from_millis(1000)));
    }
}
