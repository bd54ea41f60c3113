//! Other instances' pending uploads in this instance's listings (`[cluster]`, issue 19): each
//! published entry gets a local id in a range of its own, so a GET of it finds the owner to
//! proxy from (`Local::Remote`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::Entry;
use crate::cluster::PendingRecord;

/// Ids of other instances' pending files: above the overlay's own local ids.
const REMOTE_ID_BASE: u64 = (1 << 62) + (1 << 61);
/// Most remote files remembered; past it the memory starts again (ids then change, which
/// only costs a client's cached ETag-less id nothing: ids are never shown).
const MAX_KNOWN: usize = 10_000;

#[derive(Default)]
struct Known {
    ids: HashMap<(u64, String), u64>,
    records: HashMap<u64, Arc<PendingRecord>>,
    next: u64,
}

/// The remote pending files seen in listings, by local id.
#[derive(Default)]
pub struct RemoteFiles {
    known: Mutex<Known>,
}

impl RemoteFiles {
    /// The entry a client sees for `record` (its client-side name), remembered by id.
    pub fn entry(&self, record: PendingRecord) -> Entry {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.ids.len() >= MAX_KNOWN {
            known.ids.clear();
            known.records.clear();
        }
        let key = (record.dir, record.name.clone());
        let id = match known.ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = REMOTE_ID_BASE + known.next;
                known.next += 1;
                known.ids.insert(key, id);
                id
            }
        };
        let entry = Entry {
            id,
            name: super::names::from_cloud(&record.name),
            is_dir: false,
            size: record.size,
            md5: Some(record.md5.clone()),
            version: None,
            modified: record.modified(),
            created: record.modified(),
        };
        known.records.insert(id, Arc::new(record));
        entry
    }

    /// The published record behind local id `id`, if it is a remote pending file.
    pub fn record(&self, id: u64) -> Option<Arc<PendingRecord>> {
        if id < REMOTE_ID_BASE {
            return None;
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.records.get(&id).cloned()
    }
}
