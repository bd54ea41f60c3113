//! Durations as the config file writes them: "90s", "10m", "1h30m", "500ms", "1d".

use std::time::Duration;

/// Units from largest to smallest; a duration lists its parts in this order, each at most once,
/// so "1h30m" is accepted and the ambiguous-looking "30m1h" is not.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

const HINT: &str = "write e.g. \"90s\", \"10m\" or \"1h30m\" (units: d, h, m, s, ms)";

/// Parses a duration such as "90s", "10m", "1h30m", "500ms" or "0".
///
/// The error is a short description of what is wrong, without the offending key; the caller
/// adds that.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("empty; {HINT}"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; the next must be strictly smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at \"{rest}\"; {HINT}"));
        }
        let (number, after) = rest.split_at(digits);
        if after.starts_with(['.', ',']) {
            return Err("fractions are not supported; write e.g. \"1h30m\" for 1.5h".to_string());
        }
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(letters);
        if unit.is_empty() {
            return Err(format!("missing unit after {number}; {HINT}"));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit \"{unit}\"; {HINT}"));
        };
        if last.is_some_and(|l| index <= l) {
            return Err(format!(
                "\"{unit}\" must come before larger units and appear once; write e.g. \"1h30m\""
            ));
        }
        last = Some(index);
        let value: u64 = number.parse().map_err(|_| "number too large".to_string())?;
        total_ms = value
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| "too large".to_string())?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way the config file does ("1h30m", "10m", "0s"), the inverse of
/// [`parse_duration`] for whole milliseconds.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let unit_ms = u128::from(unit_ms);
        if ms >= unit_ms {
            out.push_str(&format!("{}{name}", ms / unit_ms));
            ms %= unit_ms;
        }
    }
    out
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
            ("10", "missing unit after 10"),
            ("10x", "unknown unit \"x\""),
            ("1 h", "missing unit after 1"),
            ("h", "expected a number at \"h\""),
            ("-5s", "expected a number"),
            ("1.5h", "fractions are not supported"),
            ("30m1h", "must come before larger units"),
            ("1m1m", "must come before larger units"),
            ("99999999999999999999s", "number too large"),
            ("18446744073709551615d", "too large"),
        ];
        for (text, expected) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        assert!(parse_duration("10")
            .unwrap_err()
            .ends_with("(units: d, h, m, s, ms)"));
    }

    #[test]
    fn formats_back() {
        for text in ["1h30m", "10m", "90s", "1d2h", "1s500ms", "0s"] {
            let d = parse_duration(text).unwrap();
            let formatted = format_duration(d);
            assert_eq!(parse_duration(&formatted), Ok(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
