//! Walking a web-API folder listing (share and personal alike) and turning its items into
//! entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use unicode_normalization::UnicodeNormalization;

use super::wire::FileItem;
use crate::backend::{Entry, Error};

/// A folder of more pages than this is refused rather than walked forever (a million items,
/// about two hours of paced listing).
const MAX_PAGES: u32 = 10_000;

/// An entry from one listed item.
pub(crate) fn entry_from_item(item: FileItem) -> Entry {
    let is_dir = item.kind == 1;
    let md5 = item
        .etag
        .filter(|e| !is_dir && e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|e| e.to_ascii_lowercase());
    let modified = item
        .update_at
        .as_deref()
        .map_or(SystemTime::UNIX_EPOCH, parse_rfc3339);
    let created = item.create_at.as_deref().map_or(modified, parse_rfc3339);
    Entry {
        id: item.file_id.max(0) as u64,
        name: item.file_name.nfc().collect(),
        is_dir,
        size: if is_dir { 0 } else { item.size.max(0) as u64 },
        md5,
        version: None,
        modified,
        created,
    }
}

/// Parses `UpdateAt` (RFC 3339). Unparsable values become the Unix epoch rather than "now", so
/// they never look fresh.
fn parse_rfc3339(s: &str) -> SystemTime {
    match chrono::DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) if t.timestamp() > 0 => {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp() as u64)
        }
        _ => SystemTime::UNIX_EPOCH,
    }
}

/// One listing page of the web API: its items, its `Next` and, where sent, its `Total`.
pub(crate) type WebPage = (Vec<FileItem>, String, Option<i64>);

/// Walks a web-API folder listing (share and personal alike): `Page` 1, 2, … until an empty
/// page or `Next == "-1"`, remembering each file's `S3KeyFlag` (download links need it). Any
/// failed page is an error, never a short list.
pub(crate) async fn list_pages<F, Fut>(
    dir_id: u64,
    key_flags: &Mutex<HashMap<u64, String>>,
    mut fetch: F,
) -> Result<Vec<Entry>, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<WebPage, Error>>,
{
    let mut entries = Vec::new();
    for page_no in 1..=MAX_PAGES {
        let (items, next, total) = fetch(page_no).await?;
        let last = items.is_empty() || next == "-1";
        {
            let mut flags = key_flags.lock().unwrap_or_else(|p| p.into_inner());
            for item in &items {
                if let Some(flag) = item.s3_key_flag.as_ref().filter(|f| !f.is_empty()) {
                    flags.insert(item.file_id.max(0) as u64, flag.clone());
                }
            }
        }
        entries.extend(items.into_iter().map(entry_from_item));
        if last {
            if let Some(total) = total.filter(|t| *t as usize != entries.len()) {
                tracing::warn!(
                    folder = dir_id,
                    listed = entries.len(),
                    total,
                    "123 listed a different number of entries than its Total"
                );
            }
            return Ok(entries);
        }
    }
    Err(Error::Upstream {
        code: -1,
        message: format!("the folder has more than {MAX_PAGES} pages; refusing to list it"),
        trace_id: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_entries() {
        let item: FileItem = serde_json::from_str(
            r#"{"FileId":5,"FileName":"cafe\u0301.txt","Type":0,"Size":10,
                "Etag":"0CC175B9C0F1B6A831C399E269772661","UpdateAt":"2024-01-02T15:04:05+08:00"}"#,
        )
        .expect("item");
        let e = entry_from_item(item);
        assert_eq!(e.name, "caf\u{e9}.txt");
        assert_eq!(e.md5.as_deref(), Some("0cc175b9c0f1b6a831c399e269772661"));
        assert_eq!(
            e.modified,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_179_045)
        );
        assert_eq!(e.created, e.modified);
        let dir: FileItem = serde_json::from_str(
            r#"{"FileId":6,"FileName":"d","Type":1,"Size":99,"Etag":"","UpdateAt":"garbage"}"#,
        )
        .expect("item");
        let d = entry_from_item(dir);
        assert!(d.is_dir && d.size == 0 && d.md5.is_none());
        assert_eq!(d.modified, SystemTime::UNIX_EPOCH);
    }
}
