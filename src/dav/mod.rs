//! The dav-server adapter: a read view of one mount (`MountFs`) and the virtual root folder
//! listing the mounts a user may see (`RootFs`).
//!
//! It knows DAV, not 123: it asks the vfs for entries and maps vfs errors to `FsError` in one
//! place. GET and HEAD on files never reach it (the download module answers them), so its
//! `DavFile` only reports metadata.

mod meta;

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, OpenOptions, ReadDirMeta,
};
use futures_util::{stream, FutureExt};
use unicode_normalization::UnicodeNormalization;

pub use meta::EntryMeta;

use crate::backend::{Entry, Error};
use crate::mount::Mount;

/// ownCloud's namespace, for `oc:checksums` (rclone's owncloud vendor reads the MD5 there).
pub const OC_NS: &str = "http://owncloud.org/ns";

/// Maps a backend error to what dav-server can express. dav-server has no 503: a rate-limited
/// or unavailable upstream during PROPFIND is caught before dav-server runs (the server
/// pre-fetches the listing), so here it can only be a general failure (500), never "empty".
pub fn fs_error(e: &Error) -> FsError {
    match e {
        Error::NotFound => FsError::NotFound,
        Error::NotADirectory => FsError::Forbidden,
        Error::AlreadyExists => FsError::Exists,
        Error::Unsupported => FsError::NotImplemented,
        // dav-server has no 400 for names; 403 tells the client the operation is refused.
        Error::InvalidName(_) => FsError::Forbidden,
        Error::RateLimited { .. }
        | Error::Auth(_)
        | Error::TrafficExceeded { .. }
        | Error::Upstream { .. }
        | Error::Unavailable(_)
        | Error::Transport(_) => FsError::GeneralFailure,
    }
}

/// Splits a decoded DAV path into NFC segments, refusing `.`/`..` and invalid UTF-8.
pub fn segments(path: &DavPath) -> FsResult<Vec<String>> {
    let text = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    let mut out = Vec::new();
    for seg in text.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." {
            return Err(FsError::Forbidden);
        }
        out.push(seg.nfc().collect());
    }
    Ok(out)
}

/// The DAV view of one mount.
#[derive(Clone)]
pub struct MountFs {
    mount: Arc<Mount>,
}

impl MountFs {
    pub fn new(mount: Arc<Mount>) -> Self {
        Self { mount }
    }

    async fn entry(&self, path: &DavPath) -> FsResult<Entry> {
        let segs = segments(path)?;
        self.mount
            .vfs
            .resolve(&segs)
            .await
            .map_err(|e| fs_error(&e))
    }
}

struct Dirent {
    meta: EntryMeta,
}

impl DavDirEntry for Dirent {
    fn name(&self) -> Vec<u8> {
        self.meta.entry.name.as_bytes().to_vec()
    }
    fn metadata(&'_ self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
    fn is_dir(&'_ self) -> FsFuture<'_, bool> {
        let d = self.meta.entry.is_dir;
        async move { Ok(d) }.boxed()
    }
}

/// A handle dav-server holds while answering about a file; bytes are served elsewhere.
#[derive(Debug)]
struct MetaOnlyFile {
    meta: EntryMeta,
}

impl DavFile for MetaOnlyFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&'_ mut self, _buf: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn write_bytes(&'_ mut self, _buf: bytes::Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }
    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, bytes::Bytes> {
        // Never empty bytes: dav-server would pad with zeros.
        async { Err(FsError::GeneralFailure) }.boxed()
    }
    fn seek(&'_ mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        async { Err(FsError::GeneralFailure) }.boxed()
    }
    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

impl DavFileSystem for MountFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            if options.write || options.create || options.create_new || options.append {
                return Err(FsError::Forbidden);
            }
            let entry = self.entry(path).await?;
            let f: Box<dyn DavFile> = Box::new(MetaOnlyFile {
                meta: EntryMeta::new(entry),
            });
            Ok(f)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let dir = self.entry(path).await?;
            let listing = self.mount.vfs.list(&dir).await.map_err(|e| fs_error(&e))?;
            let items: Vec<FsResult<Box<dyn DavDirEntry>>> = listing
                .entries
                .iter()
                .map(|e| {
                    let d: Box<dyn DavDirEntry> = Box::new(Dirent {
                        meta: EntryMeta::new(e.clone()),
                    });
                    Ok(d)
                })
                .collect();
            let s: FsStream<Box<dyn DavDirEntry>> = Box::pin(stream::iter(items));
            Ok(s)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let entry = self.entry(path).await?;
            let m: Box<dyn DavMetaData> = Box::new(EntryMeta::new(entry));
            Ok(m)
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async { true })
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, do_content: bool) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let entry = self.entry(path).await?;
            Ok(checksum_prop(&entry, do_content).into_iter().collect())
        }
        .boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        async move {
            if prop.name != "checksums" || prop.namespace.as_deref() != Some(OC_NS) {
                return Err(FsError::NotFound);
            }
            let entry = self.entry(path).await?;
            checksum_prop(&entry, true)
                .and_then(|p| p.xml)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota(&'_ self) -> FsFuture<'_, (u64, Option<u64>)> {
        async move {
            let q = self.mount.vfs.quota().await.map_err(|e| fs_error(&e))?;
            Ok((q.used, q.total))
        }
        .boxed()
    }
}

/// `<oc:checksums><oc:checksum>MD5:<hex></oc:checksum></oc:checksums>` for files with an MD5.
fn checksum_prop(entry: &Entry, do_content: bool) -> Option<DavProp> {
    let md5 = entry.md5.as_deref().filter(|_| !entry.is_dir)?;
    let xml = if do_content {
        format!("<oc:checksums xmlns:oc=\"{OC_NS}\"><oc:checksum>MD5:{md5}</oc:checksum></oc:checksums>")
    } else {
        format!("<oc:checksums xmlns:oc=\"{OC_NS}\"/>")
    };
    Some(DavProp {
        name: "checksums".into(),
        prefix: Some("oc".into()),
        namespace: Some(OC_NS.into()),
        xml: Some(xml.into_bytes()),
    })
}

/// The virtual root: one folder per mount the user may see.
#[derive(Clone)]
pub struct RootFs {
    mounts: Arc<Vec<Arc<Mount>>>,
}

impl RootFs {
    pub fn new(mounts: Vec<Arc<Mount>>) -> Self {
        Self {
            mounts: Arc::new(mounts),
        }
    }
}

fn folder_meta(name: &str) -> EntryMeta {
    EntryMeta::new(Entry {
        id: 0,
        name: name.to_string(),
        is_dir: true,
        size: 0,
        md5: None,
        version: None,
        modified: SystemTime::UNIX_EPOCH,
        created: SystemTime::UNIX_EPOCH,
    })
}

impl DavFileSystem for RootFs {
    fn open<'a>(
        &'a self,
        _path: &'a DavPath,
        _options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            if !segments(path)?.is_empty() {
                return Err(FsError::NotFound);
            }
            let items: Vec<FsResult<Box<dyn DavDirEntry>>> = self
                .mounts
                .iter()
                .map(|m| {
                    let d: Box<dyn DavDirEntry> = Box::new(Dirent {
                        meta: folder_meta(m.name()),
                    });
                    Ok(d)
                })
                .collect();
            let s: FsStream<Box<dyn DavDirEntry>> = Box::pin(stream::iter(items));
            Ok(s)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let segs = segments(path)?;
            let m: Box<dyn DavMetaData> = match segs.as_slice() {
                [] => Box::new(folder_meta("")),
                [name] if self.mounts.iter().any(|m| m.name() == name) => {
                    Box::new(folder_meta(name))
                }
                _ => return Err(FsError::NotFound),
            };
            Ok(m)
        }
        .boxed()
    }
}
