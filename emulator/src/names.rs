//! 123's file-name rules (docs/123.md, open §4.1) and name comparison.
//!
//! The messages for broken rules were never published; the ones below are the emulator's own,
//! worded like 123's, and every one comes with envelope code 1.

/// Characters 123 refuses in a name.
pub const FORBIDDEN: &[char] = &['"', '\\', '/', ':', '*', '?', '|', '>', '<'];

/// Longest accepted name, in characters (the docs say "< 256").
pub const MAX_NAME_CHARS: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("文件名不能为空")]
    Empty,
    /// Only spaces.
    #[error("文件名不能全部是空格")]
    AllSpaces,
    /// 256 characters or more.
    #[error("文件名要小于256个字符")]
    TooLong,
    /// Contains one of `FORBIDDEN`.
    #[error("文件名不能包含下列任何字符：\"\\/:*?|><")]
    Forbidden,
}

/// Check a single name (no path) against 123's rules.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().all(|c| c == ' ') {
        return Err(NameError::AllSpaces);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name.contains(FORBIDDEN) {
        return Err(NameError::Forbidden);
    }
    Ok(())
}

/// Whether two names collide in one folder under the case-sensitivity switch.
pub fn same(a: &str, b: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        a == b
    } else {
        a == b || a.to_lowercase() == b.to_lowercase()
    }
}

/// The "keep both" name for `duplicate: 1`: `stem(n).ext`. 123's real suffix is not documented;
/// this shape is the common one among cloud drives.
pub fn with_suffix(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name}({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(validate("a.txt"), Ok(()));
        assert_eq!(validate(" a "), Ok(()));
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate("   "), Err(NameError::AllSpaces));
        for c in FORBIDDEN {
            assert_eq!(validate(&format!("a{c}b")), Err(NameError::Forbidden));
        }
        assert_eq!(validate(&"x".repeat(255)), Ok(()));
        assert_eq!(validate(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(validate(&"视".repeat(255)), Ok(()));
    }

    #[test]
    fn suffix_and_compare() {
        assert_eq!(with_suffix("a.txt", 1), "a(1).txt");
        assert_eq!(with_suffix("noext", 2), "noext(2)");
        assert_eq!(with_suffix(".hidden", 1), ".hidden(1)");
        assert!(same("A.txt", "a.TXT", false));
        assert!(!same("A.txt", "a.txt", true));
    }
}
