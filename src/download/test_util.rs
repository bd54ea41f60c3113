//! Helpers the download tests share: a listed file and header maps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::range::RangeRequest;
use crate::backend::Entry;

/// The size of [`entry`]'s file in most tests.
pub const SIZE: u64 = 100;

/// A listed file of `size` bytes with an MD5 and a fixed modification time.
pub fn entry(size: u64) -> Entry {
    Entry {
        id: 42,
        name: "film.mkv".into(),
        is_dir: false,
        size,
        md5: Some("900150983cd24fb0d6963f7d28e17f72".into()),
        version: None,
        modified: UNIX_EPOCH + Duration::from_secs(1_704_164_645),
        created: SystemTime::UNIX_EPOCH,
    }
}

/// A header map of `(name, value)` pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

/// `bytes=start-end`.
pub fn p(start: u64, end: u64) -> RangeRequest {
    RangeRequest::Partial { start, end }
}
