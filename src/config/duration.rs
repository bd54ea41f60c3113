//! Durations as the config file writes them: "90s", "10m", "1h30m", "500ms", "1d".
//!
//! The `humantime` crate parses and formats them: it takes the forms the README documents and
//! a few more ("1h 30m", "2 days", "1.5h"), and its output parses back to the same value.

use std::time::Duration;

const HINT: &str = "write e.g. \"90s\", \"10m\" or \"1h30m\" (units: d, h, m, s, ms)";

/// Parses a duration such as "90s", "10m", "1h30m", "500ms" or "0".
///
/// The error is a short description of what is wrong, without the offending key; the caller
/// adds that.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty; {HINT}"));
    }
    humantime::parse_duration(text).map_err(|err| format!("{err}; {HINT}"))
}

/// Writes a duration the way the config file may ("1h 30m", "10m", "0s"); it parses back with
/// [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("90s", 90),
            ("10m", 600),
            ("1h", 3600),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1d", 86_400),
            ("2h0m5s", 7205),
            (" 10m ", 600),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("10", "time unit needed"),
            ("10x", "unknown time unit \"x\""),
            ("h", "expected number"),
            ("-5s", "expected number"),
            ("99999999999999999999s", "too large"),
        ];
        for (text, expected) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.ends_with("(units: d, h, m, s, ms)"), "{text:?}: {err}");
        }
    }

    #[test]
    fn formats_back() {
        for text in ["1h30m", "10m", "90s", "1d2h", "1s500ms", "0s"] {
            let d = parse_duration(text).unwrap();
            let formatted = format_duration(d);
            assert_eq!(parse_duration(&formatted), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
