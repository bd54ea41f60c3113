//! Names between WebDAV clients and 123.
//!
//! 123 rejects `" \ / : * ? | > <`, names of 256 characters or more, and names made only of
//! spaces. Clients (Finder especially) save names with `:` and `?`. The forbidden characters
//! are mapped reversibly to their full-width look-alikes (U+FF02 …), so a user can save
//! `a:b?.txt` and see it again under that name. A cloud name that itself holds a full-width
//! look-alike is shown with the ASCII character: that is the one ambiguity of the scheme.
//! Names are NFC (macOS sends NFD).

use unicode_normalization::UnicodeNormalization;

/// 123's longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

const MAP: &[(char, char)] = &[
    ('"', '\u{FF02}'),
    ('\\', '\u{FF3C}'),
    (':', '\u{FF1A}'),
    ('*', '\u{FF0A}'),
    ('?', '\u{FF1F}'),
    ('|', '\u{FF5C}'),
    ('>', '\u{FF1E}'),
    ('<', '\u{FF1C}'),
];

/// Why a name cannot be stored on 123.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    AllSpaces,
    TooLong,
    Slash,
    Control,
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameError::Empty => "the name is empty",
            NameError::AllSpaces => "123 does not accept names made only of spaces",
            NameError::TooLong => "123 does not accept names of 256 characters or more",
            NameError::Slash => "a name cannot contain '/'",
            NameError::Control => "a name cannot contain control characters",
        })
    }
}

/// `name` in NFC, without rewriting it when it is NFC already (nearly every name: all ASCII
/// ones are): the lookups of every request path go through here.
pub fn nfc(name: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::{is_nfc_quick, IsNormalized};
    if is_nfc_quick(name.chars()) == IsNormalized::Yes {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(name.nfc().collect())
    }
}

/// The name to store on 123 for a name a client sent.
pub fn to_cloud(name: &str) -> Result<String, NameError> {
    let name: String = name.nfc().collect();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().all(|c| c == ' ') {
        return Err(NameError::AllSpaces);
    }
    if name.contains('/') {
        return Err(NameError::Slash);
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(NameError::Control);
    }
    let mapped: String = name
        .chars()
        .map(|c| {
            MAP.iter()
                .find(|(a, _)| *a == c)
                .map(|(_, b)| *b)
                .unwrap_or(c)
        })
        .collect();
    if mapped.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    Ok(mapped)
}

/// The name to show a client for a name stored on 123.
pub fn from_cloud(name: &str) -> String {
    name.nfc()
        .map(|c| {
            MAP.iter()
                .find(|(_, b)| *b == c)
                .map(|(a, _)| *a)
                .unwrap_or(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_round_trip() {
        for name in ["a:b?.txt", "x*y|z<w>\"q\\.md", "plain.txt", "电影.mkv"] {
            let cloud = to_cloud(name).unwrap();
            assert!(
                !cloud.contains(['"', '\\', '/', ':', '*', '?', '|', '>', '<']),
                "{cloud}"
            );
            assert_eq!(from_cloud(&cloud), name);
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(to_cloud(""), Err(NameError::Empty));
        assert_eq!(to_cloud("   "), Err(NameError::AllSpaces));
        assert_eq!(to_cloud(&"a".repeat(256)), Err(NameError::TooLong));
        assert!(to_cloud(&"a".repeat(255)).is_ok());
        assert_eq!(to_cloud("a\u{0}b"), Err(NameError::Control));
    }

    #[test]
    fn nfd_becomes_nfc() {
        assert_eq!(to_cloud("e\u{301}.txt").unwrap(), "\u{e9}.txt");
    }
}
