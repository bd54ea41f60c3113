//! The dav-server adapter: the DAV view of one mount (`MountFs`) and the virtual root folder
//! listing the mounts a user may see (`RootFs`).
//!
//! It knows DAV, not 123: it asks the vfs for entries, keeps what 123 cannot hold (dead
//! properties, client junk) in the mount's side stores, and maps vfs errors to `FsError` in one
//! place. GET and HEAD on files never reach it (the download module answers them).

mod background;
pub mod junk;
pub mod locks;
mod meta;
pub mod multistatus;
pub mod propfind_body;
pub mod props;
pub mod shared_locks;
mod write;

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError, FsFuture, FsResult,
    FsStream, GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use futures_util::{stream, FutureExt};
use http::StatusCode;
use unicode_normalization::UnicodeNormalization;

pub use meta::EntryMeta;

use crate::backend::{Entry, Error};
use crate::mount::Mount;

/// ownCloud's namespace, for `oc:checksums` (rclone's owncloud vendor reads the MD5 there).
pub const OC_NS: &str = "http://owncloud.org/ns";

/// The request being served, as the filesystem sees it: dav-server hands it to every call.
#[derive(Clone, Debug)]
pub struct FsRequest {
    pub method: http::Method,
    pub user: String,
    /// The user may write and the mount is writable.
    pub can_write: bool,
    /// MOVE/COPY: the destination path inside the mount ("/a/b"), decoded.
    pub destination: Option<String>,
    /// A modification time the client asked for (`X-OC-Mtime`).
    pub oc_mtime: Option<SystemTime>,
    /// The client's junk is kept in the side store (its profile's `junk_local`).
    pub junk_local: bool,
    /// The backend error behind a failure dav-server can only call 500 (see [`Failure`]).
    pub failure: Failure,
}

/// The backend error behind a request's `FsError::GeneralFailure`. dav-server has no 502, 503
/// or Retry-After, so a write that met an unreachable or rate-limiting 123 would be a bare
/// 500; the error is kept here and the server answers it as it answers every backend error
/// (`server::errors`), after dav-server is done. Shared by the clones of one request's `FsRequest`.
#[derive(Clone, Debug, Default)]
pub struct Failure(Arc<std::sync::Mutex<Option<Error>>>);

impl Failure {
    /// `fs_error(e)`, remembering `e` when that is a general failure.
    pub fn fs_error(&self, e: &Error) -> FsError {
        let mapped = fs_error(e);
        if mapped == FsError::GeneralFailure {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
        }
        mapped
    }

    /// The last backend error that became a general failure, if any.
    pub fn take(&self) -> Option<Error> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl FsRequest {
    /// Maps a backend error for dav-server (see [`Failure`]).
    pub fn fs_error(&self, e: &Error) -> FsError {
        self.failure.fs_error(e)
    }

    /// Is `name` client junk that this request keeps locally?
    pub fn is_junk(&self, name: &str) -> bool {
        self.junk_local && junk::is_junk(name)
    }
}

/// Maps a backend error to what dav-server can express. dav-server has no 503: an upstream
/// failure can only be a general failure (500), never "empty"; requests keep the error itself
/// in their [`Failure`] so the server answers 502/503 instead (PROPFIND pre-fetches the listing
/// and never gets here with one).
pub fn fs_error(e: &Error) -> FsError {
    match e {
        Error::NotFound => FsError::NotFound,
        Error::NotADirectory => FsError::Forbidden,
        Error::AlreadyExists => FsError::Exists,
        Error::Unsupported => FsError::NotImplemented,
        // dav-server has no 400 for names; the router refuses bad names with 400 first.
        Error::InvalidName(_) => FsError::Forbidden,
        Error::TooLarge => FsError::TooLarge,
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
        // Most names are NFC already (all ASCII ones are): skip the rewrite for them.
        if unicode_normalization::is_nfc_quick(seg.chars())
            == unicode_normalization::IsNormalized::Yes
        {
            out.push(seg.to_string());
        } else {
            out.push(seg.nfc().collect());
        }
    }
    Ok(out)
}

/// The key of a path in the side stores: "/a/b" ("" for the mount root).
pub fn store_key(segs: &[String]) -> String {
    segs.iter().fold(String::new(), |mut s, seg| {
        s.push('/');
        s.push_str(seg);
        s
    })
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

    /// The entry at `segs` as the user sees it (junk from the side store, the client's
    /// modification time where one was stored).
    async fn entry(&self, segs: &[String], ctx: &FsRequest) -> FsResult<Entry> {
        if let Some(name) = segs.last() {
            if ctx.is_junk(name) {
                let key = store_key(segs);
                return self
                    .mount
                    .junk
                    .get(&ctx.user, &key)
                    .map(|f| junk_entry(name, &f))
                    .ok_or(FsError::NotFound);
            }
        }
        let mut entry = self
            .mount
            .vfs
            .resolve(segs)
            .await
            .map_err(|e| ctx.fs_error(&e))?;
        self.apply_mtime(&store_key(segs), &mut entry);
        Ok(entry)
    }

    fn apply_mtime(&self, key: &str, entry: &mut Entry) {
        if let Some(t) = self.mount.props.mtime(key, entry.md5.as_deref()) {
            entry.modified = t;
        }
    }

    /// The children of the folder at `segs` (`key` = its side-store key) as the user sees
    /// them: the listing with client modification times, then the user's junk kept locally.
    async fn children(&self, segs: &[String], key: &str, ctx: &FsRequest) -> FsResult<Vec<Entry>> {
        let children = self.children_view(segs, key, ctx).await?;
        Ok(children.iter().map(|e| self.shown(key, &e)).collect())
    }

    /// The same children without copying the listing; client modification times are applied
    /// by whoever reads them ([`MountFs::shown`]).
    async fn children_view(
        &self,
        segs: &[String],
        key: &str,
        ctx: &FsRequest,
    ) -> FsResult<Children> {
        let dir = self.entry(segs, ctx).await?;
        let view = self
            .mount
            .vfs
            .list_shared(&dir)
            .await
            .map_err(|e| ctx.fs_error(&e))?;
        let junk = self
            .mount
            .junk
            .list(&ctx.user, key)
            .into_iter()
            .map(|(n, f)| junk_entry(&n, &f))
            .collect();
        Ok(Children { view, junk })
    }

    /// A child of the folder with side-store key `dir_key` as the user sees it: a listed entry
    /// with the client's modification time, if one was stored for its content (junk kept
    /// locally has its own).
    fn shown(&self, dir_key: &str, child: &Child<'_>) -> Entry {
        let mut e = child.entry.clone();
        if !child.junk {
            self.apply_mtime(&format!("{dir_key}/{}", e.name), &mut e);
        }
        e
    }

    /// The parent folder entry and the last name of `segs`.
    async fn parent_of(&self, segs: &[String], ctx: &FsRequest) -> FsResult<(Entry, String)> {
        let (name, parent) = segs.split_last().ok_or(FsError::Forbidden)?;
        let parent = self
            .mount
            .vfs
            .resolve(parent)
            .await
            .map_err(|e| ctx.fs_error(&e))?;
        if !parent.is_dir {
            return Err(FsError::Forbidden);
        }
        Ok((parent, name.clone()))
    }
}

/// A folder's children as the user sees them: the listing with local files over it (shared,
/// not copied), then the user's junk kept locally.
pub struct Children {
    view: crate::vfs::View,
    junk: Vec<Entry>,
}

/// One of [`Children`], before [`MountFs::shown`].
pub struct Child<'a> {
    pub entry: &'a Entry,
    /// Kept in the junk store (not listed by the vfs).
    pub junk: bool,
}

impl Children {
    /// The entries in order: the listing's, then the junk.
    pub fn iter(&self) -> impl Iterator<Item = Child<'_>> {
        let listed = self.view.iter().map(|entry| Child { entry, junk: false });
        listed.chain(self.junk.iter().map(|entry| Child { entry, junk: true }))
    }

    /// At most how many entries [`iter`](Self::iter) yields (local files hiding a listed one
    /// of the same name are counted twice).
    pub fn max_len(&self) -> usize {
        self.view.listing.entries.len() + self.view.local.len() + self.junk.len()
    }

    /// The `i`th entry of [`iter`](Self::iter) and the position to look from for the next one
    /// (`from` = where the previous call left off): the walk a streamed answer makes.
    pub fn next_from(&self, from: usize) -> Option<(Child<'_>, usize)> {
        let listing = &self.view.listing.entries;
        let mut i = from;
        while let Some(e) = listing.get(i) {
            i += 1;
            if !self.view.local.iter().any(|l| l.name == e.name) {
                return Some((
                    Child {
                        entry: e,
                        junk: false,
                    },
                    i,
                ));
            }
        }
        let rest = i - listing.len();
        if let Some(e) = self.view.local.get(rest) {
            return Some((
                Child {
                    entry: e,
                    junk: false,
                },
                i + 1,
            ));
        }
        let rest = rest - self.view.local.len();
        self.junk.get(rest).map(|e| {
            (
                Child {
                    entry: e,
                    junk: true,
                },
                i + 1,
            )
        })
    }
}

fn junk_entry(name: &str, f: &junk::JunkFile) -> Entry {
    Entry {
        id: 0,
        name: name.to_string(),
        is_dir: false,
        size: f.bytes.len() as u64,
        md5: None,
        version: None,
        modified: f.modified,
        created: f.modified,
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

fn dir_stream(entries: Vec<Entry>) -> FsStream<Box<dyn DavDirEntry>> {
    let items: Vec<FsResult<Box<dyn DavDirEntry>>> = entries
        .into_iter()
        .map(|e| {
            let d: Box<dyn DavDirEntry> = Box::new(Dirent {
                meta: EntryMeta::new(e),
            });
            Ok(d)
        })
        .collect();
    Box::pin(stream::iter(items))
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

impl GuardedFileSystem<FsRequest> for MountFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let segs = segments(path)?;
            if options.write || options.create || options.create_new || options.append {
                return self.open_for_write(&segs, options, ctx).await;
            }
            let entry = self.entry(&segs, ctx).await?;
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
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let segs = segments(path)?;
            let key = store_key(&segs);
            // DELETE, and the replaced destination of MOVE/COPY, remove whole folders with one
            // call (`remove_dir`): showing dav-server no children keeps it from deleting them
            // one by one. Locks below were already checked by dav-server for the whole tree.
            let whole_folder = ctx.method == http::Method::DELETE
                || ctx
                    .destination
                    .as_deref()
                    .is_some_and(|d| key == d || key.starts_with(&format!("{d}/")));
            if whole_folder {
                return Ok(dir_stream(Vec::new()));
            }
            Ok(dir_stream(self.children(&segs, &key, ctx).await?))
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let entry = self.entry(&segments(path)?, ctx).await?;
            let m: Box<dyn DavMetaData> = Box::new(EntryMeta::new(entry));
            Ok(m)
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, ctx: &'a FsRequest) -> FsFuture<'a, ()> {
        async move { self.create_dir_at(&segments(path)?, ctx).await }.boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, ctx: &'a FsRequest) -> FsFuture<'a, ()> {
        async move { self.remove_at(&segments(path)?, ctx).await }.boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, ctx: &'a FsRequest) -> FsFuture<'a, ()> {
        async move { self.remove_at(&segments(path)?, ctx).await }.boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, ()> {
        async move { self.rename_at(&segments(from)?, &segments(to)?, ctx).await }.boxed()
    }

    fn copy<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, ()> {
        async move { self.copy_at(&segments(from)?, &segments(to)?, ctx).await }.boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _ctx: &'a FsRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async { true })
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            if !ctx.can_write {
                return Err(FsError::Forbidden);
            }
            let segs = segments(path)?;
            self.entry(&segs, ctx).await?;
            self.mount
                .props
                .patch(&store_key(&segs), &ctx.user, patch)
                .map_err(|_| FsError::InsufficientStorage)
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move {
            let segs = segments(path)?;
            let entry = self.entry(&segs, ctx).await?;
            let mut props = self.mount.props.all(&store_key(&segs), do_content);
            props.extend(checksum_prop(&entry, do_content));
            Ok(props)
        }
        .boxed()
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        ctx: &'a FsRequest,
    ) -> FsFuture<'a, Vec<u8>> {
        async move {
            let segs = segments(path)?;
            if prop.name == "checksums" && prop.namespace.as_deref() == Some(OC_NS) {
                let entry = self.entry(&segs, ctx).await?;
                return checksum_prop(&entry, true)
                    .and_then(|p| p.xml)
                    .ok_or(FsError::NotFound);
            }
            self.mount
                .props
                .get(&store_key(&segs), &prop)
                .ok_or(FsError::NotFound)
        }
        .boxed()
    }

    fn get_quota<'a>(&'a self, ctx: &'a FsRequest) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            let q = self.mount.vfs.quota().await.map_err(|e| ctx.fs_error(&e))?;
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
            let entries = self
                .mounts
                .iter()
                .map(|m| folder_meta(m.name()).entry)
                .collect();
            Ok(dir_stream(entries))
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
