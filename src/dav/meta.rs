//! DAV metadata of a backend entry.

use std::time::SystemTime;

use dav_server::fs::{DavMetaData, FsResult};

use crate::backend::Entry;

/// An entry as dav-server sees it. The ETag is the MD5, or the backend's version when there is
/// no MD5 (dav-server adds the quotes in headers), so PROPFIND, GET and HEAD share one
/// validator.
#[derive(Clone, Debug)]
pub struct EntryMeta {
    pub entry: Entry,
}

impl EntryMeta {
    pub fn new(entry: Entry) -> Self {
        Self { entry }
    }
}

impl DavMetaData for EntryMeta {
    fn len(&self) -> u64 {
        self.entry.size
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.entry.modified)
    }
    fn created(&self) -> FsResult<SystemTime> {
        Ok(self.entry.created)
    }
    fn is_dir(&self) -> bool {
        self.entry.is_dir
    }
    fn etag(&self) -> Option<String> {
        if self.entry.is_dir {
            return None;
        }
        let quoted = crate::download::conditional::etag_for(
            self.entry.md5.as_deref(),
            self.entry.version.as_deref(),
            self.entry.size,
            self.entry.modified,
        );
        Some(quoted.trim_matches('"').to_string())
    }
}
