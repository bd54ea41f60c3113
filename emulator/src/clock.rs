//! Wall-clock time as the emulator sees it, plus 123's time formats.
//!
//! Every wall-clock decision (token expiry, link expiry `t`, `auth_key` expiry, the web signature's
//! skew window, timestamps of new files) reads this clock, so a test can shift it instead of
//! waiting. Monotonic intervals (QPS window, poll spacing) use `Instant` and are not shifted.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};

/// UTC+8 (China Standard Time, no DST), the zone of every time string 123 sends.
pub fn cst() -> FixedOffset {
    // 8 h is always a valid offset; the fallback is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// The emulator's clock: system time plus an adjustable offset in seconds.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// Current Unix time in seconds.
    pub fn now(&self) -> i64 {
        Utc::now()
            .timestamp()
            .saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Shift the clock: `now()` becomes system time + `secs`.
    pub fn set_offset(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }

    /// The current offset in seconds.
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }
}

fn to_cst(unix: i64) -> DateTime<FixedOffset> {
    let utc = DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default();
    utc.with_timezone(&cst())
}

/// `"YYYY-MM-DD HH:MM:SS"` in UTC+8, the Open API's `createAt`/`updateAt` format.
pub fn open_api_time(unix: i64) -> String {
    to_cst(unix).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// RFC 3339 with a `+08:00` offset, e.g. `2025-03-23T15:48:37+08:00` (`expiredAt`, web `UpdateAt`).
pub fn rfc3339_cst(unix: i64) -> String {
    to_cst(unix).to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// `YYYYMMDDhhmm` in UTC+8, the input of the web signature's `timeSign`.
pub fn cst_minute_stamp(unix: i64) -> String {
    to_cst(unix).format("%Y%m%d%H%M").to_string()
}

/// The calendar day (UTC+8) of a Unix time, as days since the epoch; used for daily quotas.
pub fn cst_day(unix: i64) -> i64 {
    unix.saturating_add(8 * 3600).div_euclid(86400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_china_time() {
        assert_eq!(open_api_time(1700000000), "2023-11-15 06:13:20");
        assert_eq!(rfc3339_cst(1742716117), "2025-03-23T15:48:37+08:00");
        assert_eq!(cst_minute_stamp(1735689599), "202501010759");
    }

    #[test]
    fn offset_shifts_now() {
        let c = Clock::default();
        let before = c.now();
        c.set_offset(86400);
        assert!(c.now() >= before + 86400);
    }
}
