//! The names a web mount last saw in each folder, so an upload can tell a taken name without
//! listing the folder again: every listing page costs 700 ms of the gateway-wide web pacer, and
//! a bulk upload into a big folder would otherwise list it once per file.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use unicode_normalization::UnicodeNormalization;

/// Names seen per folder, trusted for `fresh_for` after the listing.
pub struct SeenNames {
    folders: Mutex<HashMap<u64, Seen>>,
    fresh_for: Duration,
}

struct Seen {
    at: Instant,
    names: HashSet<String>,
}

impl SeenNames {
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            folders: Mutex::new(HashMap::new()),
            fresh_for,
        }
    }

    fn folders(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Seen>> {
        self.folders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A complete listing of `parent` (names as listed, NFC).
    pub fn listed<'a>(&self, parent: u64, names: impl Iterator<Item = &'a str>) {
        let names = names.map(str::to_string).collect();
        self.folders().insert(
            parent,
            Seen {
                at: Instant::now(),
                names,
            },
        );
    }

    /// This gateway made `name` in `parent`.
    pub fn added(&self, parent: u64, name: &str) {
        if let Some(seen) = self.folders().get_mut(&parent) {
            seen.names.insert(name.nfc().collect());
        }
    }

    /// Something was renamed, moved or trashed: what was seen may be wrong anywhere.
    pub fn forget_all(&self) {
        self.folders().clear();
    }

    /// Whether `name` is taken in `parent`, if a fresh listing says; `None` when unknown.
    pub fn taken(&self, parent: u64, name: &str) -> Option<bool> {
        let folders = self.folders();
        let seen = folders.get(&parent)?;
        if seen.at.elapsed() > self.fresh_for {
            return None;
        }
        let wanted: String = name.nfc().collect();
        Some(seen.names.contains(&wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_from_a_fresh_listing() {
        let seen = SeenNames::new(Duration::from_secs(60));
        assert_eq!(seen.taken(7, "a.txt"), None, "never listed");
        seen.listed(7, ["a.txt", "caf\u{e9}"].into_iter());
        assert_eq!(seen.taken(7, "a.txt"), Some(true));
        assert_eq!(seen.taken(7, "b.txt"), Some(false));
        assert_eq!(seen.taken(7, "cafe\u{301}"), Some(true), "compared in NFC");
        seen.added(7, "b.txt");
        seen.added(8, "c.txt");
        assert_eq!(seen.taken(7, "b.txt"), Some(true));
        assert_eq!(
            seen.taken(8, "c.txt"),
            None,
            "a folder never listed stays unknown"
        );
        seen.forget_all();
        assert_eq!(seen.taken(7, "a.txt"), None);
        let stale = SeenNames::new(Duration::ZERO);
        stale.listed(1, ["x"].into_iter());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(stale.taken(1, "x"), None, "too old to trust");
    }
}
