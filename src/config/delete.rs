//! `delete` of a writable mount (issue 21): what a client's DELETE does on 123.

use std::fmt;

use super::file::{Report, Section};

/// What a client's DELETE (and the source side of a cross-mount MOVE, and a MOVE or COPY that
/// overwrites) does with the entry on 123.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeleteMode {
    /// Into the recycle bin, where 123 keeps it for a while and the user can restore it.
    #[default]
    Trash,
    /// Into the recycle bin, then deleted from it for good (docs/123.md, open §3 and web §1.4:
    /// 123 only deletes what is in the recycle bin already).
    Permanent,
}

impl DeleteMode {
    pub const ALL: [DeleteMode; 2] = [Self::Trash, Self::Permanent];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trash => "trash",
            Self::Permanent => "permanent",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

impl fmt::Display for DeleteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `delete` of an Open or web mount; another value is reported naming the key.
pub(super) fn resolve(report: &mut Report, s: &Section, raw: Option<String>) -> DeleteMode {
    match raw {
        None => DeleteMode::default(),
        Some(name) => DeleteMode::from_name(&name).unwrap_or_else(|| {
            report.add(
                s.key("delete"),
                format!(
                    "\"{name}\" is not a delete mode; use \"trash\" (the default: into 123's \
                     recycle bin) or \"permanent\" (into the recycle bin, then deleted from it)"
                ),
            );
            DeleteMode::default()
        }),
    }
}
