//! The request signature of 123's web API (`<api_base>/b/api/...`), docs/123.md, web §0.3, for share
//! and personal-account mounts alike.
//!
//! Each request carries one extra query parameter: its *name* is `timeSign`, a CRC-32 of the
//! current minute in China time written with a digit-to-letter table, and its *value* is
//! `timestamp-random-dataSign`, where `dataSign` is a CRC-32 over the timestamp, the random
//! number, the URL path and the fixed `web`/`3`. Only the path is signed, never the query, so
//! the other parameters may come in any order.

use chrono::DateTime;

/// The digit → letter map applied to `YYYYMMDDhhmm` (indices 0–9 of 123's table).
const DIGIT_MAP: [u8; 10] = *b"adefghlmyi";
/// The fixed `os` and `version` fields (not the `platform` header).
const OS: &str = "web";
const VERSION: &str = "3";
/// China Standard Time, UTC+8, no daylight saving.
const CST_OFFSET_SECS: i64 = 8 * 3600;
/// `random` is `round(1e7 * U)`, so 0..=10_000_000.
const RANDOM_MAX: u32 = 10_000_000;

/// `timeSign` for a Unix time: CRC-32 of the digit-mapped `YYYYMMDDhhmm` in UTC+8.
pub fn time_sign(unix: i64) -> u32 {
    let stamp = DateTime::from_timestamp(unix.saturating_add(CST_OFFSET_SECS), 0)
        .unwrap_or_default()
        .format("%Y%m%d%H%M")
        .to_string();
    let mapped: Vec<u8> = stamp
        .bytes()
        .map(|b| DIGIT_MAP[usize::from(b.saturating_sub(b'0')).min(9)])
        .collect();
    crc32fast::hash(&mapped)
}

/// `dataSign`: CRC-32 of `timestamp|random|path|web|3|timeSign`.
pub fn data_sign(unix: i64, random: u32, path: &str, time_sign: u32) -> u32 {
    let data = format!("{unix}|{random}|{path}|{OS}|{VERSION}|{time_sign}");
    crc32fast::hash(data.as_bytes())
}

/// The signature query parameter `(name, value)` for a request to `path` (the URL path only,
/// e.g. `/b/api/share/get`) made at `unix` with `random`.
pub fn sign_at(path: &str, unix: i64, random: u32) -> (String, String) {
    let key = time_sign(unix);
    let sig = data_sign(unix, random, path, key);
    (key.to_string(), format!("{unix}-{random}-{sig}"))
}

/// The signature parameter for a request to `path` made now.
pub fn sign(path: &str) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    sign_at(path, now, rand::random::<u32>() % (RANDOM_MAX + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five known vectors (docs/123.md, web §0.3): (path, ts, random, timeSign, dataSign).
    const VECTORS: [(&str, i64, u32, u32, u32); 5] = [
        (
            "/b/api/file/list/new",
            1_700_000_000,
            1_234_567,
            883_022_862,
            226_109_213,
        ),
        (
            "/b/api/user/info",
            1_700_000_000,
            1_234_567,
            883_022_862,
            3_025_781_655,
        ),
        (
            "/b/api/share/get",
            1_735_689_599,
            0,
            477_515_232,
            2_376_106_428,
        ),
        (
            "/b/api/file/download_info",
            1_735_660_800,
            10_000_000,
            3_396_700_159,
            1_526_885_358,
        ),
        (
            "/b/api/share/download/info",
            1_690_439_821,
            5_790_548,
            1_946_841_013,
            3_456_942_785,
        ),
    ];

    #[test]
    fn spec_vectors() {
        for (path, ts, random, key, sig) in VECTORS {
            assert_eq!(time_sign(ts), key, "timeSign of {path}");
            assert_eq!(data_sign(ts, random, path, key), sig, "dataSign of {path}");
            assert_eq!(
                sign_at(path, ts, random),
                (key.to_string(), format!("{ts}-{random}-{sig}")),
                "{path}"
            );
        }
    }

    #[test]
    fn minute_is_china_time() {
        // 2025-01-01T00:00:00+08:00 and one second before it are different minutes.
        assert_ne!(time_sign(1_735_660_800), time_sign(1_735_660_799));
        // Within one minute the key does not change.
        assert_eq!(time_sign(1_735_660_800), time_sign(1_735_660_859));
    }

    #[test]
    fn signs_now_within_range() {
        let (key, value) = sign("/b/api/share/get");
        assert!(key.bytes().all(|b| b.is_ascii_digit()), "{key}");
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 3, "{value}");
        let random: u32 = parts[1].parse().expect("random is a number");
        assert!(random <= RANDOM_MAX);
        let ts: i64 = parts[0].parse().expect("ts is a number");
        assert_eq!(key, time_sign(ts).to_string());
    }
}
