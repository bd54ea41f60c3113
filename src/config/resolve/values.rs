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
