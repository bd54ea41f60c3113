//! Client junk (`._*`, `.DS_Store`, `Thumbs.db`, `desktop.ini`): kept locally, never sent to 123.
//!
//! Finder writes an AppleDouble file next to every file it copies and a `.DS_Store` in every
//! folder it opens; Explorer probes `desktop.ini` and `Thumbs.db`. Uploading them floods 123 with
//! calls (and rate limits); refusing them fails whole copies. So they live in memory per mount,
//! per user, for a day, bounded in total size and in count (`junk_max_files` per mount,
//! `junk_per_user_max_files` per user; the oldest go first), and are listed back to the user
//! who wrote them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::clock::Clock;

/// Junk is forgotten after this long.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// At most this many bytes of junk per mount.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Is `name` client junk?
pub fn is_junk(name: &str) -> bool {
    // Asked on every GET: compared without making a lowercase copy.
    name.starts_with("._")
        || [".ds_store", "thumbs.db", "desktop.ini"]
            .iter()
            .any(|junk| name.eq_ignore_ascii_case(junk))
}

/// One stored junk file.
#[derive(Clone, Debug)]
pub struct JunkFile {
    pub bytes: Bytes,
    pub modified: SystemTime,
}

/// The junk of one mount, keyed by (user, path inside the mount). Bounded in bytes, in files
/// per mount and in files per user: beyond a cap the oldest files are forgotten (refusing
/// them would fail a whole Finder copy, and junk is disposable), so a listing never holds
/// more than a user's cap of junk.
pub struct JunkStore {
    max_files: usize,
    per_user_max: usize,
    inner: Mutex<Inner>,
    /// Times the day-long lifetime (a test moves it instead of waiting a day).
    clock: Clock,
}

struct Stored {
    file: Arc<JunkFile>,
    /// Order of arrival: the smallest is the oldest.
    seq: u64,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    /// (user, path) → file; ordered so a user's folder is one range.
    files: BTreeMap<(String, String), Stored>,
    /// Every file, oldest first.
    order: BTreeMap<u64, (String, String)>,
    /// Each user's files, oldest first.
    per_user: HashMap<String, BTreeMap<u64, String>>,
    bytes: u64,
    next_seq: u64,
    /// Changes made by this instance's clients, per user (what a cluster shares).
    changes: HashMap<String, u64>,
}

impl Inner {
    fn remove(&mut self, key: &(String, String)) -> Option<Stored> {
        let gone = self.files.remove(key)?;
        self.order.remove(&gone.seq);
        if let Some(mine) = self.per_user.get_mut(&key.0) {
            mine.remove(&gone.seq);
            if mine.is_empty() {
                self.per_user.remove(&key.0);
            }
        }
        self.bytes = self.bytes.saturating_sub(gone.file.bytes.len() as u64);
        Some(gone)
    }

    /// Forgets the oldest file of everyone (`None`) or of one user.
    fn evict_oldest(&mut self, user: Option<&str>) {
        let key = match user {
            None => self.order.values().next().cloned(),
            Some(u) => self
                .per_user
                .get(u)
                .and_then(|mine| mine.values().next())
                .map(|path| (u.to_string(), path.clone())),
        };
        if let Some(key) = key {
            self.remove(&key);
        }
    }

    /// Forgets files past their day (the oldest expire first).
    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.order.values().next().cloned() {
            match self.files.get(&key) {
                Some(s) if s.expires > now => break,
                _ => {
                    if self.remove(&key).is_none() {
                        // An order entry without its file: drop it.
                        let first = self.order.keys().next().copied();
                        if let Some(seq) = first {
                            self.order.remove(&seq);
                        }
                    }
                }
            }
        }
    }
}

impl Default for JunkStore {
    fn default() -> Self {
        Self::new(
            crate::config::DEFAULT_JUNK_MAX_FILES,
            crate::config::DEFAULT_JUNK_PER_USER_MAX_FILES,
            Clock::new(),
        )
    }
}

impl JunkStore {
    /// An empty store keeping at most `max_files` files, `per_user_max` of them per user.
    pub fn new(max_files: usize, per_user_max: usize, clock: Clock) -> Self {
        Self {
            max_files: max_files.max(1),
            per_user_max: per_user_max.max(1),
            inner: Mutex::new(Inner::default()),
            clock,
        }
    }

    fn now(&self) -> Instant {
        self.clock.instant().into_std()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(self.now());
        inner
    }

    /// Stores (or replaces) a junk file, forgetting the oldest ones beyond the caps.
    pub fn put(&self, user: &str, path: &str, bytes: Bytes) {
        *self.inner().changes.entry(user.to_string()).or_insert(0) += 1;
        self.insert(user, path, bytes, self.clock.system());
    }

    fn insert(&self, user: &str, path: &str, bytes: Bytes, modified: SystemTime) {
        let key = (user.to_string(), path.to_string());
        let mut inner = self.inner();
        inner.remove(&key);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += bytes.len() as u64;
        inner.order.insert(seq, key.clone());
        inner
            .per_user
            .entry(key.0.clone())
            .or_default()
            .insert(seq, key.1.clone());
        inner.files.insert(
            key,
            Stored {
                file: Arc::new(JunkFile { bytes, modified }),
                seq,
                expires: self.now() + TTL,
            },
        );
        while inner.per_user.get(user).map_or(0, BTreeMap::len) > self.per_user_max {
            inner.evict_oldest(Some(user));
        }
        while inner.files.len() > self.max_files || inner.bytes > MAX_BYTES {
            inner.evict_oldest(None);
        }
    }

    /// The junk file at `path` that `user` stored.
    pub fn get(&self, user: &str, path: &str) -> Option<Arc<JunkFile>> {
        let inner = self.inner();
        inner
            .files
            .get(&(user.to_string(), path.to_string()))
            .map(|s| s.file.clone())
    }

    /// Forgets a junk file; false when there was none.
    pub fn remove(&self, user: &str, path: &str) -> bool {
        let mut inner = self.inner();
        let gone = inner
            .remove(&(user.to_string(), path.to_string()))
            .is_some();
        if gone {
            *inner.changes.entry(user.to_string()).or_insert(0) += 1;
        }
        gone
    }

    /// How many changes this instance's clients made to `user`'s junk (a cluster shares the
    /// junk again when it grew).
    pub fn changes(&self, user: &str) -> u64 {
        self.inner().changes.get(user).copied().unwrap_or(0)
    }

    /// Every junk file of `user`, as (path, file).
    pub fn of_user(&self, user: &str) -> Vec<(String, Arc<JunkFile>)> {
        let inner = self.inner();
        let mut files: Vec<(u64, String, Arc<JunkFile>)> = inner
            .files
            .range((user.to_string(), String::new())..)
            .take_while(|((u, _), _)| u == user)
            .map(|((_, path), s)| (s.seq, path.clone(), s.file.clone()))
            .collect();
        // Oldest first, so a copy made from them evicts in the same order.
        files.sort_by_key(|f| f.0);
        files.into_iter().map(|(_, p, f)| (p, f)).collect()
    }

    /// Replaces `user`'s junk with `files` (the cluster's copy), oldest first; not a change of
    /// this instance's clients.
    pub fn replace_user(&self, user: &str, files: Vec<(String, JunkFile)>) {
        {
            let mut inner = self.inner();
            let keys: Vec<(String, String)> = inner
                .files
                .range((user.to_string(), String::new())..)
                .take_while(|((u, _), _)| u == user)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                inner.remove(&key);
            }
        }
        for (path, file) in files {
            self.insert(user, &path, file.bytes, file.modified);
        }
    }

    /// Junk files directly inside folder `dir` ("/a/b"), as (name, file).
    pub fn list(&self, user: &str, dir: &str) -> Vec<(String, Arc<JunkFile>)> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        // Every path starting with `prefix` sorts between it and `prefix` with its last
        // character ('/') replaced by the next one ('0').
        let end = format!("{}0", dir.trim_end_matches('/'));
        let inner = self.inner();
        inner
            .files
            .range((user.to_string(), prefix.clone())..(user.to_string(), end))
            .filter_map(|((_, path), s)| {
                let rest = path.strip_prefix(&prefix)?;
                (!rest.contains('/')).then(|| (rest.to_string(), s.file.clone()))
            })
            .collect()
    }

    /// How many junk files the store holds.
    pub fn len(&self) -> usize {
        self.inner().files.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let s = JunkStore::default();
        s.put("alice", "/a/.DS_Store", Bytes::from_static(b"x"));
        s.put("bob", "/a/._f", Bytes::from_static(b"y"));
        s.put("alice", "/a/b/._g", Bytes::from_static(b"z"));
        let l = s.list("alice", "/a");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].0, ".DS_Store");
        assert_eq!(s.list("alice", "/a/b").len(), 1);
        assert_eq!(s.list("alice", "").len(), 0);
    }

    #[test]
    fn the_oldest_go_beyond_the_caps() {
        let s = JunkStore::new(5, 3, Clock::new());
        for i in 0..4 {
            s.put("alice", &format!("/._a{i}"), Bytes::new());
        }
        assert!(s.get("alice", "/._a0").is_none(), "alice keeps 3");
        assert_eq!(s.list("alice", "").len(), 3);
        for i in 0..3 {
            s.put("bob", &format!("/d/._b{i}"), Bytes::new());
        }
        assert_eq!(s.len(), 5, "the mount keeps 5");
        assert!(s.get("alice", "/._a1").is_none(), "the oldest of all went");
        assert!(s.get("bob", "/d/._b2").is_some());
        // Replacing a file makes it the newest, and does not count twice.
        s.put("bob", "/d/._b0", Bytes::from_static(b"again"));
        s.put("alice", "/._a9", Bytes::new());
        assert!(s.get("bob", "/d/._b0").is_some());
        assert!(
            s.get("alice", "/._a2").is_none(),
            "the oldest of all went again"
        );
        assert!(s.get("bob", "/d/._b1").is_some());
        assert_eq!(s.len(), 5);
        assert!(s.remove("bob", "/d/._b0"));
        assert!(!s.remove("bob", "/d/._b0"));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_user_s_junk_is_exported_and_replaced_without_counting_as_a_change() {
        let store = JunkStore::default();
        store.put("alice", "/a/._x", Bytes::from_static(b"1"));
        store.put("alice", "/b/.DS_Store", Bytes::from_static(b"2"));
        store.put("bob", "/a/._x", Bytes::from_static(b"3"));
        assert_eq!(store.changes("alice"), 2);
        let mine: Vec<String> = store.of_user("alice").into_iter().map(|f| f.0).collect();
        assert_eq!(mine, ["/a/._x", "/b/.DS_Store"]);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
        let file = JunkFile {
            bytes: Bytes::from_static(b"4"),
            modified: t,
        };
        store.replace_user("alice", vec![("/c/._y".into(), file)]);
        assert_eq!(store.changes("alice"), 2);
        assert!(store.get("alice", "/a/._x").is_none());
        assert_eq!(store.get("alice", "/c/._y").map(|f| f.modified), Some(t));
        assert!(store.get("bob", "/a/._x").is_some());
        assert!(store.remove("alice", "/c/._y"));
        assert_eq!(store.changes("alice"), 3);
    }
}
