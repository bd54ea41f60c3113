//! 123's calendar: China time (UTC+8, no daylight saving), where its traffic quotas reset at
//! midnight (a daily quota) or at midnight of the 1st (a monthly one), and the months the
//! traffic meter counts in.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, SecondsFormat, TimeZone, Utc};

/// UTC+8.
fn china() -> FixedOffset {
    // 8 h is a valid offset; the fallback (UTC) is never taken.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn in_china(t: SystemTime) -> DateTime<FixedOffset> {
    DateTime::<Utc>::from(t).with_timezone(&china())
}

fn at_china_midnight(date: NaiveDate) -> SystemTime {
    let local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match china().from_local_datetime(&local).single() {
        Some(t) => t.with_timezone(&Utc).into(),
        None => SystemTime::UNIX_EPOCH,
    }
}

/// A calendar month in China time, e.g. `2026-12`: the unit the traffic meter counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    /// The month `t` falls in, China time.
    pub fn of(t: SystemTime) -> Month {
        let local = in_china(t);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The next month.
    pub fn next(self) -> Month {
        if self.month >= 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Midnight of the 1st, China time.
    pub fn start(self) -> SystemTime {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .map(at_china_midnight)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// When this month ends: the start of the next one.
    pub fn end(self) -> SystemTime {
        self.next().start()
    }

    /// Reads the `YYYY-MM` form back (the persisted meter).
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        let month = Month {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        };
        (1..=12).contains(&month.month).then_some(month)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The next midnight, China time, after `now`.
pub fn next_midnight(now: SystemTime) -> SystemTime {
    let today = in_china(now).date_naive();
    today
        .succ_opt()
        .map(at_china_midnight)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// How long from `now` until `at` (zero once past).
pub fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// `t` as RFC 3339 in China time (`2027-01-01T00:00:00+08:00`), as readiness shows reset times.
pub fn rfc3339(t: SystemTime) -> String {
    in_china(t).to_rfc3339_opts(SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn unix(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn months_turn_at_china_midnight() {
        // 2026-11-30T16:00:00Z is 2026-12-01 00:00 in China.
        let turn = 1_796_054_400;
        assert_eq!(Month::of(at(turn - 1)).to_string(), "2026-11");
        assert_eq!(Month::of(at(turn)).to_string(), "2026-12");
        assert_eq!(unix(Month::of(at(turn - 1)).end()), turn);
        assert_eq!(unix(Month::of(at(turn)).start()), turn);
        let december = Month::of(at(turn));
        assert_eq!(december.next().to_string(), "2027-01");
        assert_eq!(rfc3339(december.end()), "2027-01-01T00:00:00+08:00");
        assert_eq!(Month::parse("2026-12"), Some(december));
        assert_eq!(Month::parse("2026-13"), None);
    }

    #[test]
    fn midnight_is_china_midnight() {
        // 2025-01-01T15:00:00Z is 23:00 in China: one hour to midnight.
        assert_eq!(unix(next_midnight(at(1_735_743_600))), 1_735_747_200);
        // At midnight exactly, the next one is a day away.
        assert_eq!(
            unix(next_midnight(at(1_735_747_200))),
            1_735_747_200 + 86_400
        );
    }
}
