//! The commonest listing, written directly: PROPFIND `Depth: 1` with no body (allprop) on a
//! folder whose listing is known.
//!
//! dav-server answers it correctly but builds an XML tree per property, parses every dead
//! property's XML back into a tree (here each file's `oc:checksums`) and resolves each child by
//! path twice; for a folder of 10,000 files that is most of the time of the request. This
//! module writes the same multistatus in one pass over the listing.
//!
//! Same means: the responses, hrefs (dav-server's percent-encoding), properties, values and
//! statuses that dav-server's `PropWriter` produces for the same request over [`MountFs`],
//! including the Microsoft property set for a `Microsoft` User-Agent, `supportedlock` on
//! writable mounts and the `Content-Location` of a folder asked for without its slash
//! (`tests/propfind_fast.rs` compares both parsed). Whatever this module does not reproduce
//! exactly makes it decline (`None`) so that dav-server answers: a request body, dead
//! properties in or below the folder, a lock on, above or below it, a name that is client
//! junk, not NFC or not a plain segment.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::ls::DavLockSystem;
use futures_util::StreamExt as _;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LOCATION, CONTENT_TYPE, PRAGMA};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use unicode_normalization::{is_nfc_quick, IsNormalized};

use super::{segments, store_key, Ctx, EntryMeta, MountFs, OC_NS};
use crate::backend::Entry;
use crate::download::ResponseBody;
use crate::mount::Mount;

/// dav-server's `PATH_ENCODE_SET`: everything but unreserved characters and '/'.
const PATH_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Entries per body chunk: big enough to keep per-chunk overhead negligible, small enough that
/// a huge folder is streamed rather than held whole.
const ENTRIES_PER_CHUNK: usize = 256;

/// The multistatus of `Depth: 1` allprop on the folder at `uri_path` (the request's path, with
/// the mount's prefix), or `None` when dav-server must answer. The caller has checked that
/// the request is a PROPFIND with `Depth: 1` and an empty body, and fetched the listing.
pub async fn depth_one_allprop(
    mount: &Arc<Mount>,
    ctx: &Ctx,
    uri_path: &str,
    user_agent: &str,
) -> Option<Response<ResponseBody>> {
    let mut path = DavPath::new(uri_path).ok()?;
    if !mount.name().is_empty() {
        path.set_prefix(&format!("/{}", mount.name())).ok()?;
    }
    let segs = segments(&path).ok()?;
    if segs.last().is_some_and(|n| ctx.is_junk(n)) {
        return None;
    }
    let fs = MountFs::new(mount.clone());
    let folder = fs.entry(&segs, ctx).await.ok()?;
    if !folder.is_dir {
        return None;
    }
    let key = store_key(&segs);
    if mount.props.any_at_or_below(&key) {
        return None;
    }
    let locks = !mount.read_only();
    if locks {
        // Ok = no lock on the folder, an ancestor (deep) or anything below it, so every
        // `lockdiscovery` is empty.
        let ls: &dyn DavLockSystem = &*mount.locks;
        if ls.check(&path, None, true, true, &[]).await.is_err() {
            return None;
        }
    }
    let entries = fs.children(&segs, &key, ctx).await.ok()?;
    if !entries.iter().all(|e| plain_name(&e.name, ctx)) {
        return None;
    }

    // The folder's href, with the slash dav-server adds (and announces) when it was missing.
    let mut href = path.with_prefix().as_url_string();
    let mut content_location = None;
    if !href.ends_with('/') {
        href.push('/');
        content_location = Some(href.clone());
    }
    let folder_name = segs.last().cloned().unwrap_or_default();
    let w = Writer {
        ms: user_agent.contains("Microsoft"),
        locks,
    };

    let mut head = String::with_capacity(1024);
    head.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    head.push_str("<D:multistatus xmlns:D=\"DAV:\"");
    if w.ms {
        head.push_str(" xmlns:Z=\"urn:schemas-microsoft-com:\"");
    }
    head.push('>');
    w.response(&mut head, &href, &folder_name, &folder);
    let first = Bytes::from(head);
    let rest = chunks(entries, href, w);
    let body = futures_util::stream::iter(std::iter::once(first).chain(rest))
        .map(|b| Ok::<_, std::io::Error>(http_body::Frame::data(b)));
    let mut res = Response::new(http_body_util::StreamBody::new(body).boxed_unsync());
    *res.status_mut() = StatusCode::MULTI_STATUS;
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    if let Some(loc) = content_location {
        if let Ok(v) = HeaderValue::from_str(&loc) {
            h.insert(CONTENT_LOCATION, v);
        }
    }
    Some(res)
}

/// The children's responses in chunks, written as the body is read; the last chunk closes
/// the multistatus.
fn chunks(entries: Vec<Entry>, folder_href: String, w: Writer) -> impl Iterator<Item = Bytes> {
    let mut entries = entries.into_iter().peekable();
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut out = String::with_capacity(ENTRIES_PER_CHUNK * 640);
        for e in entries.by_ref().take(ENTRIES_PER_CHUNK) {
            let mut href = folder_href.clone();
            href.extend(percent_encoding::percent_encode(
                e.name.as_bytes(),
                PATH_ENCODE_SET,
            ));
            if e.is_dir {
                href.push('/');
            }
            w.response(&mut out, &href, &e.name, &e);
        }
        if entries.peek().is_none() {
            out.push_str("</D:multistatus>");
            done = true;
        }
        Some(Bytes::from(out))
    })
}

/// A name dav-server would resolve back to this very entry when it asks for its properties.
fn plain_name(name: &str, ctx: &Ctx) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !ctx.is_junk(name)
        && is_nfc_quick(name.chars()) == IsNormalized::Yes
}

#[derive(Clone, Copy)]
struct Writer {
    /// The Microsoft allprop set (dav-server: a User-Agent containing "Microsoft").
    ms: bool,
    /// The mount has a lock system (writable): `supportedlock` lists exclusive and shared.
    locks: bool,
}

impl Writer {
    /// One `D:response` with the allprop set dav-server writes for `entry` (`name` = the last
    /// segment of its path inside the mount, "" for the mount root).
    fn response(&self, out: &mut String, href: &str, name: &str, entry: &Entry) {
        use dav_server::fs::DavMetaData;
        let meta = EntryMeta::new(entry.clone());
        out.push_str("<D:response><D:href>");
        escape(out, href);
        out.push_str("</D:href><D:propstat><D:prop>");
        if let Ok(t) = meta.created() {
            out.push_str("<D:creationdate>");
            out.push_str(&rfc3339(t));
            out.push_str("</D:creationdate>");
        }
        if !entry.is_dir {
            let _ = write!(
                out,
                "<D:getcontentlength>{}</D:getcontentlength>",
                entry.size
            );
        }
        out.push_str("<D:getcontenttype>");
        out.push_str(if entry.is_dir {
            "httpd/unix-directory"
        } else {
            mime_of(name)
        });
        out.push_str("</D:getcontenttype>");
        if let Some(etag) = meta.etag() {
            out.push_str("<D:getetag>");
            escape(out, &etag);
            out.push_str("</D:getetag>");
        }
        if let Ok(t) = meta.modified() {
            out.push_str("<D:getlastmodified>");
            out.push_str(&httpdate::fmt_http_date(t));
            out.push_str("</D:getlastmodified>");
        }
        out.push_str("<D:lockdiscovery></D:lockdiscovery>");
        if entry.is_dir {
            out.push_str("<D:resourcetype><D:collection></D:collection></D:resourcetype>");
        } else {
            out.push_str("<D:resourcetype></D:resourcetype>");
        }
        if self.locks {
            out.push_str(
                "<D:supportedlock>\
                 <D:lockentry><D:lockscope><D:exclusive></D:exclusive></D:lockscope>\
                 <D:locktype><D:write></D:write></D:locktype></D:lockentry>\
                 <D:lockentry><D:lockscope><D:shared></D:shared></D:lockscope>\
                 <D:locktype><D:write></D:write></D:locktype></D:lockentry>\
                 </D:supportedlock>",
            );
        } else {
            out.push_str("<D:supportedlock></D:supportedlock>");
        }
        if self.ms {
            if let Ok(t) = meta.created() {
                out.push_str("<Z:Win32CreationTime>");
                out.push_str(&httpdate::fmt_http_date(t));
                out.push_str("</Z:Win32CreationTime>");
            }
            let mut attr = 0u32;
            if name.starts_with('.') {
                attr |= 0x0002;
            }
            attr |= if entry.is_dir { 0x0010 } else { 0x0020 };
            let _ = write!(
                out,
                "<Z:Win32FileAttributes>{attr:08x}</Z:Win32FileAttributes>"
            );
            if let Ok(t) = meta.modified() {
                out.push_str("<Z:Win32LastModifiedTime>");
                out.push_str(&httpdate::fmt_http_date(t));
                out.push_str("</Z:Win32LastModifiedTime>");
            }
        }
        // The dead properties: none (checked), plus the MD5 that `get_props` adds for files.
        if let Some(md5) = entry.md5.as_deref().filter(|_| !entry.is_dir) {
            let _ = write!(out, "<oc:checksums xmlns:oc=\"{OC_NS}\"><oc:checksum>MD5:");
            escape(out, md5);
            out.push_str("</oc:checksum></oc:checksums>");
        }
        out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>");
    }
}

/// dav-server's `creationdate`: RFC 3339 in UTC, whole seconds, `Z`.
fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// dav-server's `getcontenttype` of a file: by the extension of its name.
fn mime_of(name: &str) -> &'static str {
    match name.rsplit_once('.') {
        Some((_, ext)) => mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream"),
        None => "application/octet-stream",
    }
}

/// Text content, escaped as XML character data.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
}
