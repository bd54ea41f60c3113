//! Client junk (`._*`, `.DS_Store`, `Thumbs.db`, `desktop.ini`): kept locally, never sent to 123.
//!
//! Finder writes an AppleDouble file next to every file it copies and a `.DS_Store` in every
//! folder it opens; Explorer probes `desktop.ini` and `Thumbs.db`. Uploading them floods 123 with
//! calls (and rate limits); refusing them fails whole copies. So they live in memory per mount,
//! per user, for a day, bounded in total size, and are listed back to the user who wrote them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// Junk is forgotten after this long.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// At most this many bytes of junk per mount.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Is `name` client junk?
pub fn is_junk(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with("._") || lower == ".ds_store" || lower == "thumbs.db" || lower == "desktop.ini"
}

/// One stored junk file.
#[derive(Clone, Debug)]
pub struct JunkFile {
    pub bytes: Bytes,
    pub modified: SystemTime,
}

/// The junk of one mount, keyed by (user, path inside the mount).
pub struct JunkStore {
    files: moka::sync::Cache<(String, String), Arc<JunkFile>>,
}

impl Default for JunkStore {
    fn default() -> Self {
        Self::new()
    }
}

impl JunkStore {
    pub fn new() -> Self {
        Self {
            files: moka::sync::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_k: &(String, String), v: &Arc<JunkFile>| {
                    u32::try_from(v.bytes.len()).unwrap_or(u32::MAX).max(1)
                })
                .time_to_live(TTL)
                .build(),
        }
    }

    pub fn put(&self, user: &str, path: &str, bytes: Bytes) {
        self.files.insert(
            (user.into(), path.into()),
            Arc::new(JunkFile {
                bytes,
                modified: SystemTime::now(),
            }),
        );
    }

    pub fn get(&self, user: &str, path: &str) -> Option<Arc<JunkFile>> {
        self.files.get(&(user.to_string(), path.to_string()))
    }

    pub fn remove(&self, user: &str, path: &str) -> bool {
        self.files
            .remove(&(user.to_string(), path.to_string()))
            .is_some()
    }

    /// Junk files directly inside folder `dir` ("/a/b"), as (name, file).
    pub fn list(&self, user: &str, dir: &str) -> Vec<(String, Arc<JunkFile>)> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.files
            .iter()
            .filter(|(k, _)| k.0 == user)
            .filter_map(|(k, v)| {
                let rest = k.1.strip_prefix(&prefix)?;
                (!rest.contains('/')).then(|| (rest.to_string(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in [
            "._film.mkv",
            ".DS_Store",
            "Thumbs.db",
            "desktop.ini",
            "Desktop.ini",
        ] {
            assert!(is_junk(n), "{n}");
        }
        for n in ["film.mkv", "_x", ".hidden", "folder.jpg"] {
            assert!(!is_junk(n), "{n}");
        }
    }

    #[test]
    fn per_user_listing() {
        let s = JunkStore::new();
        s.put("alice", "/a/.DS_Store", Bytes::from_static(b"x"));
        s.put("bob", "/a/._f", Bytes::from_static(b"y"));
        s.put("alice", "/a/b/._g", Bytes::from_static(b"z"));
        let l = s.list("alice", "/a");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0, ".DS_Store");
    }
}
