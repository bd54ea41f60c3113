//! Files that exist only on this side for now, laid over cloud listings: uploads waiting in the
//! queue (readable from their spool file), placeholders (a LOCK on an unmapped URL), which
//! expire unless a PUT follows, and empty files.
//!
//! Empty files are never uploaded (issue 21): 123 may reject empty uploads (docs/123.md, open
//! §8 reports; the emulator's `zero_byte_upload = "reject"`), so an empty PUT is kept here,
//! recorded in `state_dir/empty/<mount>.json` (atomically, before the PUT is answered) so that
//! it survives restarts, until a PUT with bytes replaces it (then it becomes a real 123 file
//! through the upload queue) or a client deletes or moves it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::backend::Entry;

/// Ids of local entries live in a range 123 never uses.
const LOCAL_ID_BASE: u64 = 1 << 62;

/// Whether `id` is one of this gateway's own (a pending upload, a placeholder, or another
/// instance's pending file, whose range lies above this one), not one of 123's.
pub fn is_local_id(id: u64) -> bool {
    id >= LOCAL_ID_BASE
}
/// The MD5 of no bytes, as 123 lists empty files.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
/// A placeholder nobody writes to disappears after this long.
pub const PLACEHOLDER_TTL: Duration = Duration::from_secs(10 * 60);

/// Where the bytes of a local entry are.
#[derive(Clone, Debug)]
pub enum Local {
    /// A spooled upload waiting for (or in) the queue.
    Spooled(PathBuf),
    /// No bytes (a placeholder).
    Empty,
    /// A file pending on another instance of the cluster, read from its owner.
    Remote(std::sync::Arc<crate::cluster::PendingRecord>),
}

#[derive(Clone, Debug)]
struct Item {
    entry: Entry,
    local: Local,
    /// Placeholders expire; empty files stay until replaced or removed.
    expires: Option<Instant>,
}

/// One empty file as kept in `state_dir/empty/<mount>.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct EmptyRecord {
    parent: u64,
    /// The client-side name.
    name: String,
    /// Unix milliseconds of the client's (or the PUT's) modification time.
    modified_ms: u64,
}

/// The local files of one mount, by (parent folder id, name): placeholders kept here, and the
/// upload queue's pending files (asked live, so they show after a restart too).
#[derive(Default)]
pub struct Overlay {
    items: Mutex<HashMap<(u64, String), Item>>,
    next_id: std::sync::atomic::AtomicU64,
    queue: std::sync::OnceLock<(std::sync::Arc<crate::upload::UploadQueue>, String)>,
    /// Stable ids of pending files, by spool path, and back.
    pending_ids: Mutex<HashMap<PathBuf, u64>>,
    /// Where the empty files are recorded (`None`: kept in memory only, as in tests without a
    /// state_dir). Writes are serialised by `items`' lock.
    empty_file: std::sync::OnceLock<PathBuf>,
}

impl Overlay {
    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), Item>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_entry(&self, name: &str, size: u64, md5: Option<String>, modified: SystemTime) -> Entry {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Entry {
            id: LOCAL_ID_BASE + n,
            name: name.to_string(),
            is_dir: false,
            size,
            md5,
            version: None,
            modified,
            created: modified,
        }
    }

    /// Reads the empty files recorded in `path` and records later ones there.
    pub fn set_empty_store(&self, path: PathBuf) {
        let records: Vec<EmptyRecord> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        {
            let mut items = self.items();
            for r in records {
                let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(r.modified_ms);
                let entry = self.new_entry(&r.name, 0, Some(EMPTY_MD5.to_string()), modified);
                items.insert(
                    (r.parent, r.name),
                    Item {
                        entry,
                        local: Local::Empty,
                        expires: None,
                    },
                );
            }
        }
        let _ = self.empty_file.set(path);
    }

    /// Keeps an empty file `name` in `parent` (replacing a placeholder or an older one), recorded
    /// durably before this returns.
    pub fn add_empty(&self, parent: u64, name: &str, modified: SystemTime) -> std::io::Result<()> {
        let entry = self.new_entry(name, 0, Some(EMPTY_MD5.to_string()), modified);
        let mut items = self.items();
        items.insert(
            (parent, name.to_string()),
            Item {
                entry,
                local: Local::Empty,
                expires: None,
            },
        );
        self.save(&items)
    }

    /// Is the local file at (parent, name) an empty file kept for good (not a placeholder)?
    pub fn is_empty_file(&self, parent: u64, name: &str) -> bool {
        self.items()
            .get(&(parent, name.to_string()))
            .is_some_and(|i| matches!(i.local, Local::Empty) && i.expires.is_none())
    }

    /// Writes the empty files to the store; a failure is the caller's to report.
    fn save(&self, items: &HashMap<(u64, String), Item>) -> std::io::Result<()> {
        let Some(path) = self.empty_file.get() else {
            return Ok(());
        };
        let records: Vec<EmptyRecord> = items
            .iter()
            .filter(|(_, i)| i.expires.is_none() && matches!(i.local, Local::Empty))
            .map(|((parent, name), i)| EmptyRecord {
                parent: *parent,
                name: name.clone(),
                modified_ms: i
                    .entry
                    .modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect();
        let bytes = serde_json::to_vec(&records).map_err(std::io::Error::other)?;
        crate::state_files::write_atomic(path, &bytes)
    }

    /// Connects the upload queue whose pending files of `mount` this overlay shows.
    pub fn set_queue(&self, queue: std::sync::Arc<crate::upload::UploadQueue>, mount: &str) {
        let _ = self.queue.set((queue, mount.to_string()));
    }

    fn pending_entry(&self, p: &crate::upload::PendingFile) -> Entry {
        let mut ids = self.pending_ids.lock().unwrap_or_else(|e| e.into_inner());
        let id = *ids.entry(p.path.clone()).or_insert_with(|| {
            LOCAL_ID_BASE
                + self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        });
        Entry {
            id,
            name: super::names::from_cloud(&p.name),
            is_dir: false,
            size: p.size,
            md5: Some(p.md5.clone()),
            version: None,
            modified: p.modified,
            created: p.modified,
        }
    }

    /// This instance's pending uploads in `parent`, as the queue holds them (for publishing
    /// them to the other instances of a cluster).
    pub fn queued(&self, parent: u64) -> Vec<crate::upload::PendingFile> {
        match self.queue.get() {
            Some((queue, mount)) => queue.pending(mount, parent),
            None => Vec::new(),
        }
    }

    fn pending(&self, parent: u64) -> Vec<Entry> {
        let Some((queue, mount)) = self.queue.get() else {
            return Vec::new();
        };
        queue
            .pending(mount, parent)
            .iter()
            .map(|p| self.pending_entry(p))
            .collect()
    }

    /// Shows an empty placeholder in `parent` (unless something is already there).
    pub fn add_placeholder(&self, parent: u64, name: &str) {
        let entry = self.new_entry(name, 0, None, SystemTime::now());
        self.items()
            .entry((parent, name.to_string()))
            .or_insert(Item {
                entry,
                local: Local::Empty,
                expires: Some(Instant::now() + PLACEHOLDER_TTL),
            });
    }

    /// Is the local file at (parent, name) a placeholder?
    pub fn is_placeholder(&self, parent: u64, name: &str) -> bool {
        self.items()
            .get(&(parent, name.to_string()))
            .is_some_and(|i| matches!(i.local, Local::Empty))
    }

    /// Removes a placeholder or an empty file (from the store too; a failed write is logged:
    /// the file then comes back after a restart, which loses nothing).
    pub fn remove(&self, parent: u64, name: &str) -> bool {
        let mut items = self.items();
        let removed = items.remove(&(parent, name.to_string()));
        if removed.as_ref().is_some_and(|i| i.expires.is_none()) {
            if let Err(e) = self.save(&items) {
                tracing::warn!(name, error = %e, "could not record that an empty file is gone");
            }
        }
        removed.is_some()
    }

    /// The pending upload or placeholder called `name` in `parent`. A pending upload wins: it
    /// is newer than any placeholder.
    pub fn find(&self, parent: u64, name: &str) -> Option<Entry> {
        if let Some(e) = self.pending(parent).into_iter().find(|e| e.name == name) {
            return Some(e);
        }
        let mut items = self.items();
        if items.is_empty() {
            // The usual case: no placeholder nor empty file anywhere, so no key to build.
            return None;
        }
        let key = (parent, name.to_string());
        if items
            .get(&key)
            .is_some_and(|i| i.expires.is_some_and(|t| t <= Instant::now()))
        {
            items.remove(&key);
            return None;
        }
        items.get(&key).map(|i| i.entry.clone())
    }

    pub fn list(&self, parent: u64) -> Vec<Entry> {
        let mut out = self.pending(parent);
        let now = Instant::now();
        let mut items = self.items();
        items.retain(|_, i| i.expires.is_none_or(|t| t > now));
        let placeholders: Vec<Entry> = items
            .iter()
            .filter(|(k, _)| k.0 == parent && !out.iter().any(|e| e.name == k.1))
            .map(|(_, i)| i.entry.clone())
            .collect();
        out.extend(placeholders);
        out
    }

    pub fn local(&self, id: u64) -> Option<Local> {
        if !is_local_id(id) {
            return None;
        }
        if let Some(i) = self.items().values().find(|i| i.entry.id == id) {
            return Some(i.local.clone());
        }
        let ids = self.pending_ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .find(|(_, v)| **v == id)
            .map(|(p, _)| Local::Spooled(p.clone()))
    }
}
