//! The write side of `MountFs`: PUT bodies into the spool and the upload queue, MKCOL, DELETE,
//! MOVE and COPY through the vfs, with the side stores kept in step.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture, FsResult, OpenOptions};
use futures_util::FutureExt;

use super::{store_key, EntryMeta, FsRequest, MountFs};
use crate::backend::Entry;
use crate::mount::{Mount, PutError};
use crate::upload::{SpoolError, SpoolWriter};
use crate::vfs::{cloud_name, Local};

/// Junk files are small; a bigger one is refused rather than held in memory.
const MAX_JUNK_BYTES: usize = 4 * 1024 * 1024;

/// Maps a failed [`Mount::put`]: a sync upload's error is remembered in the request's
/// failure slot (answered 502/503, not 500).
fn put_error(e: PutError, failure: &super::Failure) -> FsError {
    match e {
        PutError::Spool(e) => spool_error(e),
        PutError::Backend(e) => failure.fs_error(&e),
        PutError::Queue(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not queue an upload");
            FsError::GeneralFailure
        }
    }
}

fn spool_error(e: SpoolError) -> FsError {
    match e {
        SpoolError::TooLarge => FsError::TooLarge,
        SpoolError::Full => FsError::InsufficientStorage,
        other => {
            tracing::warn!(error = %other, "spool write failed");
            FsError::GeneralFailure
        }
    }
}

impl MountFs {
    fn require_write(&self, ctx: &FsRequest) -> FsResult<()> {
        if ctx.can_write && self.mount.writes.is_some() {
            Ok(())
        } else {
            Err(FsError::Forbidden)
        }
    }

    pub(super) async fn open_for_write(
        &self,
        segs: &[String],
        options: OpenOptions,
        ctx: &FsRequest,
    ) -> FsResult<Box<dyn DavFile>> {
        self.require_write(ctx)?;
        let (parent, name) = self.parent_of(segs, ctx).await?;
        let key = store_key(segs);
        let existing = match self.entry(segs, ctx).await {
            Ok(e) => Some(e),
            Err(FsError::NotFound) => None,
            Err(e) => return Err(e),
        };
        match &existing {
            Some(e) if e.is_dir => return Err(FsError::Forbidden),
            Some(_) if options.create_new => return Err(FsError::Exists),
            None if !options.create && !options.create_new => return Err(FsError::NotFound),
            _ => {}
        }
        if ctx.is_junk(&name) {
            return Ok(Box::new(JunkWriter {
                mount: self.mount.clone(),
                user: ctx.user.clone(),
                key,
                name,
                buf: Vec::new(),
            }));
        }
        // A name 123 cannot store is refused before any byte is spooled.
        cloud_name(&name).map_err(|e| ctx.fs_error(&e))?;
        if ctx.method.as_str() == "LOCK" {
            // A LOCK on an unmapped URL creates an empty resource: a local placeholder, never
            // a 0-byte cloud file, that expires unless a PUT follows.
            if existing.is_none() {
                self.mount.vfs.overlay().add_placeholder(parent.id, &name);
            }
            let entry = existing.unwrap_or_else(|| empty_entry(&name));
            return Ok(Box::new(super::MetaOnlyFile {
                meta: EntryMeta::new(entry),
            }));
        }
        let Some(writes) = self.mount.writes.as_ref() else {
            return Err(FsError::Forbidden);
        };
        let writer = writes
            .spool
            .writer(options.size)
            .await
            .map_err(spool_error)?;
        Ok(Box::new(SpoolFile {
            mount: self.mount.clone(),
            parent: parent.id,
            name,
            key,
            expected: options.size,
            written: 0,
            mtime: ctx.oc_mtime,
            writer: Some(writer),
            failure: ctx.failure.clone(),
        }))
    }

    pub(super) async fn create_dir_at(&self, segs: &[String], ctx: &FsRequest) -> FsResult<()> {
        self.require_write(ctx)?;
        let (parent, name) = self.parent_of(segs, ctx).await?;
        if ctx.is_junk(&name) {
            return Err(FsError::Forbidden);
        }
        if self.entry(segs, ctx).await.is_ok() {
            return Err(FsError::Exists);
        }
        self.mount
            .vfs
            .mkdir(&parent, &name)
            .await
            .map(|_| ())
            .map_err(|e| ctx.fs_error(&e))
    }

    pub(super) async fn remove_at(&self, segs: &[String], ctx: &FsRequest) -> FsResult<()> {
        self.require_write(ctx)?;
        let key = store_key(segs);
        let (parent, name) = self.parent_of(segs, ctx).await?;
        if ctx.is_junk(&name) {
            return if self.mount.junk.remove(&ctx.user, &key) {
                Ok(())
            } else {
                Err(FsError::NotFound)
            };
        }
        let entry = self.entry(segs, ctx).await?;
        match self.mount.vfs.local(&entry) {
            Some(Local::Empty) => {
                self.mount.vfs.overlay().remove(parent.id, &name);
            }
            // Pending here, or on another instance of the cluster (which is asked to cancel it).
            Some(local @ (Local::Spooled(_) | Local::Remote(_))) => {
                let cancelled = self
                    .mount
                    .cancel_pending(&local, &parent, &name)
                    .await
                    .map_err(|e| ctx.fs_error(&e))?;
                if !cancelled {
                    // It landed in 123 meanwhile: remove that instead.
                    let trashed = self.mount.vfs.trash_landed(&parent, &name).await;
                    if !trashed.map_err(|e| ctx.fs_error(&e))? {
                        return Err(FsError::NotFound);
                    }
                }
            }
            None => {
                let queued_below = if entry.is_dir {
                    self.mount.pending_folders_under(&entry).await
                } else {
                    Vec::new()
                };
                self.mount
                    .vfs
                    .trash(&entry, &parent)
                    .await
                    .map_err(|e| ctx.fs_error(&e))?;
                self.mount.cancel_pending_in(&queued_below).await;
            }
        }
        self.mount.props.remove(&key);
        Ok(())
    }

    pub(super) async fn rename_at(
        &self,
        from: &[String],
        to: &[String],
        ctx: &FsRequest,
    ) -> FsResult<()> {
        self.require_write(ctx)?;
        let (from_parent, from_name) = self.parent_of(from, ctx).await?;
        let (to_parent, to_name) = self.parent_of(to, ctx).await?;
        let (from_key, to_key) = (store_key(from), store_key(to));
        if ctx.is_junk(&from_name) {
            let f = self
                .mount
                .junk
                .get(&ctx.user, &from_key)
                .ok_or(FsError::NotFound)?;
            self.mount.junk.remove(&ctx.user, &from_key);
            self.mount.junk.put(&ctx.user, &to_key, f.bytes.clone());
            return Ok(());
        }
        let entry = self.entry(from, ctx).await?;
        match self.mount.vfs.local(&entry) {
            Some(Local::Empty) => {
                let overlay = self.mount.vfs.overlay();
                if overlay.is_empty_file(from_parent.id, &from_name) {
                    // Recorded at the new name before the old record goes.
                    overlay
                        .add_empty(to_parent.id, &to_name, entry.modified)
                        .map_err(|e| {
                            tracing::warn!(error = %e, "could not record a moved empty file");
                            FsError::GeneralFailure
                        })?;
                } else {
                    overlay.add_placeholder(to_parent.id, &to_name);
                }
                overlay.remove(from_parent.id, &from_name);
            }
            // Pending here, or on another instance of the cluster (which is asked to move it).
            Some(local @ (Local::Spooled(_) | Local::Remote(_))) => {
                let moved = self
                    .mount
                    .move_pending(&local, (&from_parent, &from_name), (&to_parent, &to_name))
                    .await
                    .map_err(|e| ctx.fs_error(&e))?;
                if !moved {
                    // The upload finished while the move waited for it: move the real file.
                    let landed = self
                        .mount
                        .vfs
                        .landed(&from_parent, &from_name)
                        .await
                        .map_err(|e| ctx.fs_error(&e))?
                        .ok_or(FsError::NotFound)?;
                    self.mount
                        .vfs
                        .rename_move(&landed, &from_parent, &to_parent, &to_name)
                        .await
                        .map_err(|e| ctx.fs_error(&e))?;
                }
            }
            None => self
                .mount
                .vfs
                .rename_move(&entry, &from_parent, &to_parent, &to_name)
                .await
                .map_err(|e| ctx.fs_error(&e))?,
        }
        self.mount
            .props
            .relocate(&from_key, &to_key, false, &ctx.user);
        Ok(())
    }

    pub(super) async fn copy_at(
        &self,
        from: &[String],
        to: &[String],
        ctx: &FsRequest,
    ) -> FsResult<()> {
        self.require_write(ctx)?;
        let (to_parent, to_name) = self.parent_of(to, ctx).await?;
        let (from_key, to_key) = (store_key(from), store_key(to));
        // The copy carries the dead properties: refuse it (507) before anything is copied
        // when they would go over the budget.
        self.mount
            .props
            .copy_fits(&from_key, &to_key, &ctx.user)
            .map_err(|_| FsError::InsufficientStorage)?;
        let entry = self.entry(from, ctx).await?;
        if from.last().is_some_and(|n| ctx.is_junk(n)) {
            let f = self
                .mount
                .junk
                .get(&ctx.user, &from_key)
                .ok_or(FsError::NotFound)?;
            self.mount.junk.put(&ctx.user, &to_key, f.bytes.clone());
            return Ok(());
        }
        match self.mount.vfs.local(&entry) {
            Some(Local::Empty) => self
                .mount
                .vfs
                .overlay()
                .add_empty(to_parent.id, &to_name, SystemTime::now())
                .map_err(|e| {
                    tracing::warn!(error = %e, "could not record a copied empty file");
                    FsError::GeneralFailure
                })?,
            // A file still waiting in the queue, here or on another instance (whose spool
            // sends the bytes): a second spool file, a second job.
            Some(Local::Spooled(_) | Local::Remote(_)) => {
                match self
                    .mount
                    .copy_through(&self.mount, &entry, &to_parent, &to_name)
                    .await
                {
                    // The upload landed while this COPY ran and its spool file went with it:
                    // copy the file 123 now holds. Once: a source still local is an answer.
                    Err(PutError::Backend(crate::backend::Error::NotFound)) => {
                        let landed = self.entry(from, ctx).await?;
                        if self.mount.vfs.local(&landed).is_some() {
                            return Err(FsError::NotFound);
                        }
                        return Box::pin(self.copy_at(from, to, ctx)).await;
                    }
                    other => other.map_err(|e| put_error(e, &ctx.failure))?,
                }
            }
            // A copy of an empty cloud file is an empty file like any other: kept here, since
            // 123 may refuse to create it (`Mount::put`).
            None if !entry.is_dir && entry.size == 0 => self
                .mount
                .vfs
                .overlay()
                .add_empty(to_parent.id, &to_name, SystemTime::now())
                .map_err(|e| {
                    tracing::warn!(error = %e, "could not record a copied empty file");
                    FsError::GeneralFailure
                })?,
            None => {
                let md5 = entry.md5.as_deref().ok_or(FsError::NotImplemented)?;
                let vfs = &self.mount.vfs;
                let mut copied = vfs
                    .copy_instant(&to_parent, &to_name, md5, entry.size)
                    .await;
                if matches!(copied, Err(crate::backend::Error::AlreadyExists)) {
                    // dav-server removed the destination (or saw none) before calling us; a file
                    // there now is a queued upload that landed meanwhile. The client asked for
                    // this copy to win.
                    if let Ok(existing) = vfs.resolve(to).await {
                        if vfs.local(&existing).is_none() {
                            vfs.trash(&existing, &to_parent)
                                .await
                                .map_err(|e| ctx.fs_error(&e))?;
                        }
                    }
                    copied = vfs
                        .copy_instant(&to_parent, &to_name, md5, entry.size)
                        .await;
                }
                let copied = copied.map_err(|e| ctx.fs_error(&e))?;
                if copied.is_none() {
                    // 123 would not make the copy by instant reuse (docs/123.md, open §11: it may
                    // answer `reuse: true` without the new file): the bytes pass through here.
                    tracing::info!(mount = %self.mount.config.path, file = %entry.name, "123 did not reuse the content of a copy; copying the bytes");
                    self.mount
                        .copy_through(&self.mount, &entry, &to_parent, &to_name)
                        .await
                        .map_err(|e| put_error(e, &ctx.failure))?;
                }
            }
        }
        self.mount
            .props
            .relocate(&from_key, &to_key, true, &ctx.user);
        Ok(())
    }
}

fn empty_entry(name: &str) -> Entry {
    let now = SystemTime::now();
    Entry {
        id: 0,
        name: name.to_string(),
        is_dir: false,
        size: 0,
        md5: None,
        version: None,
        modified: now,
        created: now,
    }
}

/// A PUT body on its way into the spool. Dropped without `flush` (the client went away, or the
/// body was short) it leaves nothing behind: the writer removes its file.
struct SpoolFile {
    mount: Arc<Mount>,
    parent: u64,
    name: String,
    key: String,
    expected: Option<u64>,
    written: u64,
    mtime: Option<SystemTime>,
    writer: Option<SpoolWriter>,
    /// The request's failure slot (a sync upload's error is answered 502/503, not 500).
    failure: super::Failure,
}

impl std::fmt::Debug for SpoolFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolFile")
            .field("name", &self.name)
            .field("written", &self.written)
            .finish()
    }
}

impl SpoolFile {
    async fn write(&mut self, buf: &[u8]) -> FsResult<()> {
        let w = self.writer.as_mut().ok_or(FsError::GeneralFailure)?;
        w.write(buf).await.map_err(spool_error)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    async fn finish(&mut self) -> FsResult<()> {
        let writer = self.writer.take().ok_or(FsError::GeneralFailure)?;
        let file = writer.finish().await.map_err(spool_error)?;
        if self.expected.is_some_and(|n| n != file.size) {
            // A short body: dav-server calls flush before it checks the length. Never upload it.
            file.discard().await;
            return Err(FsError::GeneralFailure);
        }
        let md5 = file.md5.clone();
        let modified = self.mtime.unwrap_or_else(SystemTime::now);
        // An empty body is kept by the gateway (`Mount::put`): Explorer's empty PUT before the
        // real one costs no upload, and 123's refusal of empty uploads loses nothing.
        self.mount
            .put(self.parent, &self.name, file, modified)
            .await
            .map_err(|e| put_error(e, &self.failure))?;
        if let Some(t) = self.mtime {
            self.mount.props.set_mtime(&self.key, t, Some(&md5));
        }
        Ok(())
    }
}

impl DavFile for SpoolFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let mut e = empty_entry(&self.name);
        e.size = self.written;
        let m: Box<dyn DavMetaData> = Box::new(EntryMeta::new(e));
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                self.write(&chunk).await?;
                buf.advance(chunk.len());
            }
            Ok(())
        }
        .boxed()
    }
    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.write(&buf).await }.boxed()
    }
    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::GeneralFailure) }.boxed()
    }
    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Only "rewind to where we are" is meaningful for a spool: partial PUTs are refused.
        let here = self.written;
        async move {
            match pos {
                SeekFrom::Start(n) if n == here => Ok(n),
                _ => Err(FsError::NotImplemented),
            }
        }
        .boxed()
    }
    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async move { self.finish().await }.boxed()
    }
}

/// A junk file being written: held in memory, stored in the side store on flush.
struct JunkWriter {
    mount: Arc<Mount>,
    user: String,
    key: String,
    name: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for JunkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JunkWriter")
            .field("name", &self.name)
            .finish()
    }
}

impl JunkWriter {
    fn push(&mut self, b: &[u8]) -> FsResult<()> {
        if self.buf.len() + b.len() > MAX_JUNK_BYTES {
            return Err(FsError::TooLarge);
        }
        self.buf.extend_from_slice(b);
        Ok(())
    }
}

impl DavFile for JunkWriter {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let mut e = empty_entry(&self.name);
        e.size = self.buf.len() as u64;
        let m: Box<dyn DavMetaData> = Box::new(EntryMeta::new(e));
        async move { Ok(m) }.boxed()
    }
    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let r = (|| {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                self.push(&chunk)?;
                buf.advance(chunk.len());
            }
            Ok(())
        })();
        async move { r }.boxed()
    }
    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        let r = self.push(&buf);
        async move { r }.boxed()
    }
    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::GeneralFailure) }.boxed()
    }
    fn seek(&'_ mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        async { Err(FsError::NotImplemented) }.boxed()
    }
    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        self.mount.junk.put(
            &self.user,
            &self.key,
            Bytes::from(std::mem::take(&mut self.buf)),
        );
        async { Ok(()) }.boxed()
    }
}
