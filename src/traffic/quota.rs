//! When 123's download quota comes back after code 5113/5114, read from 123's message.
//!
//! The free download quota was daily (您今日自用下载流量已超出1GB上限) and is monthly since 2025
//! (本月免费流量不足); the message says which (docs/123.md, open §1). A monthly quota resets at
//! midnight of the 1st, China time; a daily one at midnight China time; a message naming
//! neither gets an hour, so a client neither hammers 123 nor waits a month for nothing.

use std::time::{Duration, SystemTime};

use super::calendar::{next_midnight, Month};

/// Wait when the message names no period.
pub const UNKNOWN_PERIOD_WAIT: Duration = Duration::from_secs(3600);

/// The period a quota message speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Month,
    Day,
    Unknown,
}

/// The period 123's message names: 本月 (this month) / 每月 / 月度, or 今日 / 当日 / 今天 / 每日.
pub fn period_of(message: &str) -> Period {
    if ["本月", "每月", "月度", "当月"]
        .iter()
        .any(|w| message.contains(w))
    {
        Period::Month
    } else if ["今日", "当日", "今天", "每日", "当天"]
        .iter()
        .any(|w| message.contains(w))
    {
        Period::Day
    } else {
        Period::Unknown
    }
}

/// When the quota 123's `message` speaks of comes back, from `now`.
pub fn resets_at(message: &str, now: SystemTime) -> SystemTime {
    match period_of(message) {
        Period::Month => Month::of(now).end(),
        Period::Day => next_midnight(now),
        Period::Unknown => now + UNKNOWN_PERIOD_WAIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_its_reset() {
        // 2026-12-04T15:00:00Z: 23:00 in China on the 4th.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_396_400);
        let wait = |m: &str| resets_at(m, now).duration_since(now).unwrap().as_secs();
        assert_eq!(wait("本月免费流量不足"), 27 * 86_400 + 3600);
        assert_eq!(wait("您今日自用下载流量已超出1GB上限"), 3600);
        assert_eq!(wait("当日下载流量已用完"), 3600);
        assert_eq!(wait("下载流量已超出上限"), 3600);
        assert_eq!(period_of("下载流量已超出上限"), Period::Unknown);
        assert_eq!(period_of("本月免费流量不足"), Period::Month);
    }
}
