//! Values that several tables share: http(s) URLs and durations.

use super::*;

/// An http(s) URL to which paths are appended: no query or fragment; returned without a
/// trailing slash.
pub(in crate::config) fn http_url(
    report: &mut Report,
    key: String,
    value: &str,
    example: &str,
) -> String {
    let trimmed = value.trim_end_matches('/');
    let problem = match url::Url::parse(trimmed) {
        Err(err) => Some(format!("\"{value}\" is not a URL ({err})")),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(format!("\"{value}\" is not an http(s) URL"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(format!("\"{value}\" has no host"))
        }
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            Some(format!("\"{value}\" must not have a query or a fragment"))
        }
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        report.add(key, format!("{problem}; write it like \"{example}\""));
    }
    trimmed.to_string()
}

/// A duration key: its default when absent; zero only where `allow_zero`.
pub(super) fn duration(
    report: &mut Report,
    s: &Section,
    key: &str,
    value: Option<String>,
    default: Duration,
    allow_zero: bool,
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    match parse_duration(&text) {
        Ok(d) if d.is_zero() && !allow_zero => {
            report.add(s.key(key), "must be longer than 0s");
            default
        }
        Ok(d) => d,
        Err(problem) => {
            report.add(
                s.key(key),
                format!("\"{text}\" is not a duration: {problem}"),
            );
            default
        }
    }
}

/// Most rows of `cache_ttl_by_depth`, and the deepest depth it may name.
const MAX_DEPTH_ROWS: usize = 64;
const MAX_DEPTH: u32 = 1000;

/// `cache_ttl_by_depth = { 0 = "10m", 1 = "1m" }`: folder depths (the mount's root is 0) and
/// their listing lifetimes, sorted by depth.
pub(super) fn ttl_by_depth(
    report: &mut Report,
    s: &Section,
    value: Option<std::collections::BTreeMap<String, String>>,
) -> Vec<(u32, Duration)> {
    let key = "cache_ttl_by_depth";
    let Some(table) = value else {
        return Vec::new();
    };
    if table.len() > MAX_DEPTH_ROWS {
        report.add(
            s.key(key),
            format!(
                "{} rows; at most {MAX_DEPTH_ROWS} depths may be set",
                table.len()
            ),
        );
        return Vec::new();
    }
    let mut rows = Vec::new();
    for (depth, ttl) in table {
        let Some(d) = depth.parse::<u32>().ok().filter(|d| *d <= MAX_DEPTH) else {
            report.add(
                format!("{}.{depth}", s.key(key)),
                format!(
                    "\"{depth}\" is not a folder depth; use whole numbers from 0 (the mount's \
                     root) to {MAX_DEPTH}, like {{ 0 = \"10m\", 1 = \"1m\" }}"
                ),
            );
            continue;
        };
        match parse_duration(&ttl) {
            Ok(t) => rows.push((d, t)),
            Err(problem) => report.add(
                format!("{}.{depth}", s.key(key)),
                format!("\"{ttl}\" is not a duration: {problem}"),
            ),
        }
    }
    rows.sort_by_key(|(d, _)| *d);
    rows.dedup_by_key(|(d, _)| *d);
    rows
}

/// A monthly `traffic_budget` (a size like `"9GiB"`): `None` when absent; more than zero.
pub(in crate::config) fn traffic_budget(
    report: &mut Report,
    key: String,
    value: Option<String>,
) -> Option<u64> {
    let text = value?;
    match crate::config::upload::parse_size(&text) {
        Ok(0) => {
            report.add(
                key,
                "0 would stop every download; set a size like \"9GiB\", or leave the key out \
                 for no budget",
            );
            None
        }
        Ok(n) => Some(n),
        Err(problem) => {
            report.add(
                key,
                format!("\"{text}\" is not a size: {problem}; write it like \"9GiB\""),
            );
            None
        }
    }
}
