//! PROPFIND answered in one pass from the cached listing, for every request shape: no body,
//! `allprop` (with or without `include`), `propname` and `prop` lists, `Depth: 0` and `1`.
//!
//! dav-server answers correctly but builds an XML tree per property, parses every dead
//! property's XML back into a tree (each file's `oc:checksums`) and resolves each child by path
//! twice; for a folder of 10,000 files that is most of the time of the request, and real
//! clients (rclone, Finder, Windows) all send a body. This module writes the multistatus
//! straight from the listing, dead properties (`dav::props`) and locks (`dav::locks`) included,
//! streamed in chunks so a huge folder is never held whole.
//!
//! dav-server stays the reference (`tests/it/protocol/propfind_fast.rs` compares both answers parsed): same
//! responses, hrefs (its percent-encoding), values and statuses, including the Microsoft
//! allprop set for a `Microsoft` User-Agent, `supportedlock` on writable mounts, the
//! zero-padded `quota-used-bytes` it sends Finder and the `Content-Location` of a folder asked
//! for without its slash. Where dav-server strays from RFC 4918 this module follows the RFC:
//! an asked-for property that does not exist is listed under a 404 propstat (§9.1; dav-server
//! leaves it out), a `prop` request gets only the properties it names and `propname` only
//! names (dav-server adds every dead property with its value to both), and `allprop`'s
//! `include` is read by its RFC name (dav-server reads `includes`; both are read here).
//!
//! It declines (`None`, dav-server answers) only for what it cannot reproduce: a target it
//! cannot resolve (dav-server then says why) or a listed name that is not NFC or not a plain
//! segment (dav-server would resolve another path).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::fs::DavProp;
use dav_server::ls::{DavLock, DavLockSystem};
use futures_util::StreamExt as _;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LOCATION, CONTENT_TYPE, PRAGMA};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use unicode_normalization::{is_nfc_quick, IsNormalized};

use super::propfind_body::{Asked, PropName};
use super::{segments, store_key, Children, FsRequest, MountFs, OC_NS};
use crate::backend::Entry;
use crate::mount::Mount;
use crate::response::ResponseBody;

/// dav-server's `PATH_ENCODE_SET`: everything but unreserved characters and '/'.
const PATH_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Entries per body chunk: big enough to keep per-chunk overhead negligible, small enough that
/// a huge folder is streamed rather than held whole (a chunk is about 160 KiB).
const ENTRIES_PER_CHUNK: usize = 256;

const DAV: &str = "DAV:";
const MS: &str = "urn:schemas-microsoft-com:";
const APACHE: &str = "http://apache.org/dav/props/";

/// RFC 4918 §14.2's allprop set, as dav-server sends it (`displayname` and
/// `getcontentlanguage` are dead properties here, listed when stored).
const ALLPROP: &[&str] = &[
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "lockdiscovery",
    "resourcetype",
    "supportedlock",
];
/// What dav-server adds to allprop for a `Microsoft` User-Agent (Windows' Mini-Redirector
/// reads these); `Win32LastAccessTime` is unknown here and left out.
const MS_ALLPROP: &[&str] = &[
    "Win32CreationTime",
    "Win32FileAttributes",
    "Win32LastModifiedTime",
];
/// The live names `propname` lists (when they exist for the resource).
const PROPNAME_DAV: &[&str] = &[
    "creationdate",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "lockdiscovery",
    "resourcetype",
    "supportedlock",
    "quota-available-bytes",
    "quota-used-bytes",
];

/// The multistatus for the PROPFIND at `uri_path` (the request's path, with `base`, the
/// server's `base_path`, and the mount's prefix), or `None` when dav-server must answer. The caller has checked the Depth (0 or 1)
/// and, for Depth 1 on a folder, fetched the complete listing.
pub async fn answer(
    base: &str,
    mount: &Arc<Mount>,
    ctx: &FsRequest,
    uri_path: &str,
    user_agent: &str,
    depth_one: bool,
    asked: Asked,
) -> Option<Response<ResponseBody>> {
    let mut path = DavPath::new(uri_path).ok()?;
    let prefix = if mount.name().is_empty() {
        (!base.is_empty()).then(|| base.to_string())
    } else {
        Some(format!("{base}/{}", mount.name()))
    };
    if let Some(p) = &prefix {
        path.set_prefix(p).ok()?;
    }
    let segs = segments(&path).ok()?;
    let fs = MountFs::new(mount.clone());
    let target = fs.entry(&segs, ctx).await.ok()?;
    let key = store_key(&segs);
    // Shared with the listing cache, not copied: read entry by entry as the body is written.
    let children = if depth_one && target.is_dir {
        Some(fs.children_view(&segs, &key, ctx).await.ok()?)
    } else {
        None
    };
    let each = || children.iter().flat_map(|c| c.iter());
    if !each().all(|c| plain_name(&c.entry.name)) {
        return None;
    }

    // The target's href, with the slash dav-server adds (and announces) to a folder.
    let mut href = path.with_prefix().as_url_string();
    let mut content_location = None;
    if target.is_dir && !href.ends_with('/') {
        href.push('/');
        content_location = Some(href.clone());
    }
    let names = Names::of(&asked, user_agent.contains("Microsoft"));
    let quota = if names.quota {
        mount.vfs.quota().await.ok().map(|q| (q.used, q.total))
    } else {
        None
    };
    let w = Writer {
        asked,
        names,
        locks: !mount.read_only(),
        webdavfs: user_agent.contains("WebDAVFS"),
        quota,
        user: ctx.user.clone(),
        junk_local: ctx.junk_local,
    };

    // What only some resources have: dead properties and locks, looked up once here (both
    // are per-mount maps in memory) so the chunks below are written without waiting.
    let mut extras: HashMap<usize, Extra> = HashMap::new();
    let target_name = segs.last().cloned().unwrap_or_default();
    if mount.props.any_at_or_below(&key) {
        let mut add = |i: usize, name: &str, k: &str| {
            if dead_props_apply(mount, ctx, name, k) {
                let dead = mount.props.all(k, true);
                if !dead.is_empty() {
                    extras.entry(i).or_default().dead = dead;
                }
            }
        };
        add(0, &target_name, &key);
        for (i, c) in each().enumerate() {
            add(i + 1, &c.entry.name, &format!("{key}/{}", c.entry.name));
        }
    }
    if w.locks {
        let ls: &dyn DavLockSystem = &*mount.locks;
        // Ok = no lock on the target, an ancestor (deep) or anything below it: every
        // lockdiscovery is empty, and no resource is looked up.
        if ls.check(&path, None, true, true, &[]).await.is_err() {
            let resource = |h: &str| {
                let mut p = DavPath::new(h).ok()?;
                if let Some(pre) = &prefix {
                    p.set_prefix(pre).ok()?;
                }
                Some(p)
            };
            let at = resource(&href)?;
            let found = ls.discover(&at).await;
            if !found.is_empty() {
                extras.entry(0).or_default().locks = found;
            }
            for (i, c) in each().enumerate() {
                let at = resource(&child_href(&href, c.entry))?;
                let found = ls.discover(&at).await;
                if !found.is_empty() {
                    extras.entry(i + 1).or_default().locks = found;
                }
            }
        }
    }

    let mut head = String::with_capacity(2048);
    head.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    head.push_str("<D:multistatus xmlns:D=\"DAV:\"");
    if w.names.ms_prefix {
        head.push_str(" xmlns:Z=\"urn:schemas-microsoft-com:\"");
    }
    head.push('>');
    let mut buf = Buffers::default();
    w.response(
        &mut head,
        &mut buf,
        &Res {
            href: &href,
            name: &target_name,
            entry: &target,
            mount_root: segs.is_empty(),
            extra: extras.get(&0),
        },
    );
    let first = Bytes::from(head);
    // A body of more than one chunk is written at low priority, off the request workers
    // (`background`); a short one here, at once.
    let long = children
        .as_ref()
        .is_some_and(|c| c.max_len() > ENTRIES_PER_CHUNK);
    let rest = chunks(children, fs, key, href, w, extras);
    let rest = if long {
        super::background::stream(rest).boxed()
    } else {
        futures_util::stream::iter(rest.map(Ok)).boxed()
    };
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(first)])
        .chain(rest)
        .map(|b| b.map(http_body::Frame::data));
    let body: ResponseBody = http_body_util::StreamBody::new(body).boxed_unsync();
    let mut res = Response::new(body);
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

/// Does dav-server find dead properties for this name? A name that is client junk for this
/// request resolves in the junk store only (`MountFs::entry`): a file 123 holds under such a
/// name shows neither dead properties nor a checksum there.
fn dead_props_apply(mount: &Mount, ctx: &FsRequest, name: &str, key: &str) -> bool {
    !ctx.is_junk(name) || mount.junk.get(&ctx.user, key).is_some()
}

/// A child's href: the folder's (ending in '/') and the encoded name, '/' after a folder.
fn child_href(folder_href: &str, e: &Entry) -> String {
    let mut href = String::with_capacity(folder_href.len() + e.name.len() + 8);
    href.push_str(folder_href);
    href.extend(percent_encoding::percent_encode(
        e.name.as_bytes(),
        PATH_ENCODE_SET,
    ));
    if e.is_dir {
        href.push('/');
    }
    href
}

/// The children's responses in chunks, written as the body is read (so memory does not grow
/// with the folder); the last chunk closes the multistatus.
fn chunks(
    children: Option<Children>,
    fs: MountFs,
    dir_key: String,
    folder_href: String,
    w: Writer,
    extras: HashMap<usize, Extra>,
) -> impl Iterator<Item = Bytes> {
    // Where the walk over the children is (`Children::next_from`), and how many were written.
    let mut from = 0usize;
    let mut written = 0usize;
    let mut done = false;
    let mut buf = Buffers::default();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut out = String::with_capacity(ENTRIES_PER_CHUNK * 700);
        // Bounded: at most a chunk's worth of entries per call.
        for _ in 0..ENTRIES_PER_CHUNK {
            let Some((c, next)) = children.as_ref().and_then(|c| c.next_from(from)) else {
                done = true;
                break;
            };
            from = next;
            written += 1;
            let e = fs.shown(&dir_key, &c);
            let href = child_href(&folder_href, &e);
            w.response(
                &mut out,
                &mut buf,
                &Res {
                    href: &href,
                    name: &e.name,
                    entry: &e,
                    mount_root: false,
                    extra: extras.get(&written),
                },
            );
        }
        if done {
            out.push_str("</D:multistatus>");
        }
        Some(Bytes::from(out))
    })
}

/// A name dav-server would resolve back to this very entry when it asks for its properties.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && is_nfc_quick(name.chars()) == IsNormalized::Yes
}

/// What only some resources have.
#[derive(Default)]
struct Extra {
    dead: Vec<DavProp>,
    locks: Vec<DavLock>,
}

/// One resource to answer for.
struct Res<'a> {
    href: &'a str,
    /// The last segment of its path ("" for the mount root).
    name: &'a str,
    entry: &'a Entry,
    /// The mount's root: `quota-used-bytes` is the account's, not the entry's size.
    mount_root: bool,
    extra: Option<&'a Extra>,
}

/// The names a request's shape evaluates per resource, resolved once.
struct Names {
    /// allprop: `include` first, then the allprop set (without what `include` named).
    list: Vec<PropName>,
    /// How many of `list` were named by the client (`include`, or all of `prop`): these get a
    /// 404 when missing; the rest of the allprop set is just left out.
    asked: usize,
    /// `Z` is declared on the multistatus.
    ms_prefix: bool,
    /// A quota property may be written: fetch the quota once.
    quota: bool,
}

impl Names {
    fn of(asked: &Asked, microsoft: bool) -> Self {
        let dav = |n: &str| PropName {
            ns: Some(DAV.into()),
            name: n.into(),
        };
        let (list, named) = match asked {
            Asked::AllProp { include } => {
                let mut list = include.clone();
                let n = list.len();
                let ms = MS_ALLPROP.iter().filter(|_| microsoft).map(|n| PropName {
                    ns: Some(MS.into()),
                    name: (*n).into(),
                });
                for p in ALLPROP.iter().map(|n| dav(n)).chain(ms) {
                    if !list.contains(&p) {
                        list.push(p);
                    }
                }
                (list, n)
            }
            Asked::PropName => (PROPNAME_DAV.iter().map(|n| dav(n)).collect(), 0),
            Asked::Prop(props) => (props.clone(), props.len()),
        };
        let quota = list
            .iter()
            .any(|p| p.is(DAV, "quota-used-bytes") || p.is(DAV, "quota-available-bytes"));
        let ms_prefix = list.iter().any(|p| p.ns.as_deref() == Some(MS));
        Names {
            list,
            asked: named,
            ms_prefix,
            quota,
        }
    }
}

/// What evaluating a property gave.
enum Eval {
    /// Written (with its value, unless names only).
    Written,
    /// Not a live property: look among the dead ones.
    Dead,
    /// Does not exist for this resource.
    Missing,
}

/// Scratch space reused across responses.
#[derive(Default)]
struct Buffers {
    ok: String,
    missing: String,
}

/// Everything fixed for one request.
struct Writer {
    asked: Asked,
    names: Names,
    /// The mount has a lock system (writable): `supportedlock` lists exclusive and shared.
    locks: bool,
    /// Finder: dav-server zero-pads `quota-used-bytes` to 14 digits for it.
    webdavfs: bool,
    /// The account's (used, total), when asked for and available.
    quota: Option<(u64, Option<u64>)>,
    /// `current-user-principal`.
    user: String,
    /// Client junk is answered from the side store (this request's profile).
    junk_local: bool,
}

impl Writer {
    /// One `D:response`: a 200 propstat with what exists, a 404 propstat with what was asked
    /// for and does not (RFC 4918 §9.1), each left out when empty (as dav-server does).
    fn response(&self, out: &mut String, buf: &mut Buffers, r: &Res<'_>) {
        let Buffers { ok, missing } = buf;
        ok.clear();
        missing.clear();
        let content = !matches!(self.asked, Asked::PropName);
        let dead: &[DavProp] = r.extra.map_or(&[], |x| &x.dead);
        for (i, p) in self.names.list.iter().enumerate() {
            match self.live(ok, p, r, content) {
                Eval::Written => {}
                Eval::Dead if matches!(self.asked, Asked::Prop(_)) => {
                    if !self.dead_one(ok, p, r, dead) {
                        empty_element(missing, p);
                    }
                }
                // allprop and propname list the dead properties below; an `include`d one
                // that is not stored is missing.
                Eval::Dead => {
                    if i < self.names.asked && !has_dead(p, r, dead, self.junk_local) {
                        empty_element(missing, p);
                    }
                }
                Eval::Missing => {
                    if i < self.names.asked {
                        empty_element(missing, p);
                    }
                }
            }
        }
        if !matches!(self.asked, Asked::Prop(_)) {
            self.dead_all(ok, r, dead, content);
        }
        out.push_str("<D:response><D:href>");
        escape(out, r.href);
        out.push_str("</D:href>");
        if !ok.is_empty() {
            out.push_str("<D:propstat><D:prop>");
            out.push_str(ok);
            out.push_str("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        }
        if !missing.is_empty() {
            out.push_str("<D:propstat><D:prop>");
            out.push_str(missing);
            out.push_str("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
        }
        out.push_str("</D:response>");
    }

    /// Writes live property `p` of `r` when it exists (as dav-server's `build_prop` does).
    fn live(&self, out: &mut String, p: &PropName, r: &Res<'_>, content: bool) -> Eval {
        let e = r.entry;
        let ns = p.ns.as_deref();
        let name = p.name.as_str();
        let text = |out: &mut String, prefix: &str, value: &str| {
            if content && !value.is_empty() {
                let _ = write!(out, "<{prefix}:{name}>");
                escape(out, value);
                let _ = write!(out, "</{prefix}:{name}>");
            } else {
                let _ = write!(out, "<{prefix}:{name}/>");
            }
            Eval::Written
        };
        match ns {
            Some(DAV) => match name {
                "creationdate" => text(out, "D", &rfc3339(e.created)),
                "getcontentlength" if !e.is_dir => text(out, "D", &e.size.to_string()),
                "getcontenttype" => text(
                    out,
                    "D",
                    if e.is_dir {
                        "httpd/unix-directory"
                    } else {
                        mime_of(r.name)
                    },
                ),
                "getetag" if !e.is_dir => text(out, "D", &etag(e)),
                "getlastmodified" => text(out, "D", &httpdate::fmt_http_date(e.modified)),
                "resourcetype" if e.is_dir && content => {
                    out.push_str("<D:resourcetype><D:collection/></D:resourcetype>");
                    Eval::Written
                }
                "resourcetype" => text(out, "D", ""),
                "supportedlock" if self.locks && content => {
                    out.push_str(
                        "<D:supportedlock>\
                         <D:lockentry><D:lockscope><D:exclusive/></D:lockscope>\
                         <D:locktype><D:write/></D:locktype></D:lockentry>\
                         <D:lockentry><D:lockscope><D:shared/></D:lockscope>\
                         <D:locktype><D:write/></D:locktype></D:lockentry>\
                         </D:supportedlock>",
                    );
                    Eval::Written
                }
                "supportedlock" => text(out, "D", ""),
                "lockdiscovery" => {
                    let locks = r.extra.map_or(&[][..], |x| &x.locks);
                    if content && !locks.is_empty() {
                        out.push_str("<D:lockdiscovery>");
                        for l in locks {
                            activelock(out, l);
                        }
                        out.push_str("</D:lockdiscovery>");
                    } else {
                        out.push_str("<D:lockdiscovery/>");
                    }
                    Eval::Written
                }
                "current-user-principal" if content => {
                    out.push_str("<D:current-user-principal><D:href>");
                    escape(out, &self.user);
                    out.push_str("</D:href></D:current-user-principal>");
                    Eval::Written
                }
                "quota-available-bytes" => match self.quota {
                    Some((used, Some(total))) => {
                        let used = if r.mount_root { used } else { e.size };
                        text(out, "D", &total.saturating_sub(used).to_string())
                    }
                    _ => Eval::Missing,
                },
                "quota-used-bytes" => match self.quota {
                    Some((used, _)) => {
                        let used = if r.mount_root { used } else { e.size };
                        let v = if self.webdavfs {
                            format!("{used:014}")
                        } else {
                            used.to_string()
                        };
                        text(out, "D", &v)
                    }
                    None => Eval::Missing,
                },
                "displayname" | "getcontentlanguage" => Eval::Dead,
                _ => Eval::Missing,
            },
            // `Z` is declared on the multistatus whenever a Microsoft name is evaluated.
            Some(MS) => {
                let prefix = "Z";
                match name {
                    "Win32CreationTime" => text(out, prefix, &httpdate::fmt_http_date(e.created)),
                    "Win32LastModifiedTime" => {
                        text(out, prefix, &httpdate::fmt_http_date(e.modified))
                    }
                    "Win32FileAttributes" => {
                        let mut attr = 0u32;
                        if r.name.starts_with('.') {
                            attr |= 0x0002;
                        }
                        attr |= if e.is_dir { 0x0010 } else { 0x0020 };
                        text(out, prefix, &format!("{attr:08x}"))
                    }
                    _ => Eval::Missing,
                }
            }
            Some(APACHE) => Eval::Missing,
            _ => Eval::Dead,
        }
    }

    /// `prop`: writes dead property `p` of `r` if it is stored (or is the file's checksum).
    fn dead_one(&self, out: &mut String, p: &PropName, r: &Res<'_>, dead: &[DavProp]) -> bool {
        if p.is(OC_NS, "checksums") {
            return match checksum(r, self.junk_local) {
                Some(md5) => {
                    write_checksum(out, md5, true);
                    true
                }
                None => false,
            };
        }
        let Some(d) = dead.iter().find(|d| same_name(d, p)) else {
            return false;
        };
        // dav-server answers 404 for a stored value it cannot parse.
        match d.xml.as_deref().and_then(element_text) {
            Some(xml) => {
                out.push_str(xml);
                true
            }
            None => false,
        }
    }

    /// allprop and propname: every dead property, then the file's checksum.
    fn dead_all(&self, out: &mut String, r: &Res<'_>, dead: &[DavProp], content: bool) {
        for d in dead {
            // The checksum below is the one dav-server's `get_prop` answers.
            if d.name == "checksums" && d.namespace.as_deref() == Some(OC_NS) {
                continue;
            }
            let p = PropName {
                ns: d.namespace.clone(),
                name: d.name.clone(),
            };
            match d.xml.as_deref().and_then(element_text).filter(|_| content) {
                Some(xml) => out.push_str(xml),
                // A value dav-server cannot parse is written as the bare name.
                None => empty_element(out, &p),
            }
        }
        if let Some(md5) = checksum(r, self.junk_local) {
            write_checksum(out, md5, content);
        }
    }
}

/// Is `p` among the dead properties `r` shows?
fn has_dead(p: &PropName, r: &Res<'_>, dead: &[DavProp], junk_local: bool) -> bool {
    (p.is(OC_NS, "checksums") && checksum(r, junk_local).is_some())
        || dead.iter().any(|d| same_name(d, p))
}

fn same_name(d: &DavProp, p: &PropName) -> bool {
    d.name == p.name && d.namespace == p.ns
}

/// The MD5 a file shows as `oc:checksums` (rclone's owncloud vendor reads it there); none for
/// folders and for names that are client junk here (the junk store keeps no MD5).
fn checksum<'a>(r: &Res<'a>, junk_local: bool) -> Option<&'a str> {
    if r.entry.is_dir || (junk_local && super::junk::is_junk(r.name)) {
        return None;
    }
    r.entry.md5.as_deref()
}

fn write_checksum(out: &mut String, md5: &str, content: bool) {
    if content {
        let _ = write!(out, "<oc:checksums xmlns:oc=\"{OC_NS}\"><oc:checksum>MD5:");
        escape(out, md5);
        out.push_str("</oc:checksum></oc:checksums>");
    } else {
        let _ = write!(out, "<oc:checksums xmlns:oc=\"{OC_NS}\"/>");
    }
}

/// `<name/>` in its namespace: `D:` and `Z:` are declared on the multistatus, any other
/// namespace on the element itself.
fn empty_element(out: &mut String, p: &PropName) {
    match p.ns.as_deref() {
        Some(DAV) => {
            let _ = write!(out, "<D:{}/>", p.name);
        }
        Some(ns) => {
            let _ = write!(out, "<R:{} xmlns:R=\"", p.name);
            escape_attr(out, ns);
            out.push_str("\"/>");
        }
        None => {
            let _ = write!(out, "<{}/>", p.name);
        }
    }
}

/// One lock as dav-server's `build_lock_prop` writes it.
fn activelock(out: &mut String, l: &DavLock) {
    out.push_str("<D:activelock><D:lockscope>");
    out.push_str(if l.shared {
        "<D:shared/>"
    } else {
        "<D:exclusive/>"
    });
    out.push_str("</D:lockscope><D:locktype><D:write/></D:locktype><D:depth>");
    out.push_str(if l.deep { "Infinity" } else { "0" });
    out.push_str("</D:depth><D:timeout>");
    match l.timeout {
        None => out.push_str("Infinite"),
        Some(d) => {
            let _ = write!(out, "Second-{}", d.as_secs());
        }
    }
    out.push_str("</D:timeout><D:locktoken><D:href>");
    escape(out, &l.token);
    out.push_str("</D:href></D:locktoken><D:lockroot><D:href>");
    escape(out, &l.path.with_prefix().as_url_string());
    out.push_str("</D:href></D:lockroot>");
    if let Some(owner) = &l.owner {
        let mut xml = Vec::new();
        let config = xmltree::EmitterConfig::new().write_document_declaration(false);
        if owner.write_with_config(&mut xml, config).is_ok() {
            if let Ok(s) = std::str::from_utf8(&xml) {
                out.push_str(s);
            }
        }
    }
    out.push_str("</D:activelock>");
}

/// A stored dead property's XML (as dav-server's emitter wrote it: a declaration, then one
/// element declaring its own namespaces) without the declaration; `None` when it is not one
/// well-formed element.
fn element_text(xml: &[u8]) -> Option<&str> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut depth = 0usize;
    let mut span: Option<(usize, usize)> = None;
    // Bounded: a stored value is at most the 64 KiB a PROPPATCH body may be.
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().ok()? {
            Event::Start(_) | Event::Empty(_) if depth == 0 && span.is_some() => return None,
            Event::Start(_) => {
                if depth == 0 {
                    span = Some((before, before));
                }
                depth += 1;
            }
            Event::Empty(_) if depth == 0 => {
                span = Some((before, reader.buffer_position() as usize));
            }
            Event::End(_) => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    span = span.map(|(s, _)| (s, reader.buffer_position() as usize));
                }
            }
            Event::Text(t) if depth == 0 && !t.trim().is_empty() => return None,
            Event::Eof => break,
            _ => {}
        }
    }
    let (s, e) = span.filter(|_| depth == 0)?;
    let text = std::str::from_utf8(xml.get(s..e)?).ok()?;
    Some(text.trim_start())
}

/// The ETag dav-server shows: the validator of GET and HEAD without its quotes.
fn etag(e: &Entry) -> String {
    let quoted = crate::download::conditional::etag_for(
        e.md5.as_deref(),
        e.version.as_deref(),
        e.size,
        e.modified,
    );
    quoted.trim_matches('"').to_string()
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

/// An attribute value between double quotes, escaped.
fn escape_attr(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            c => {
                let mut b = [0u8; 4];
                escape(out, c.encode_utf8(&mut b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::element_text;

    #[test]
    fn stored_values_are_written_without_their_declaration() {
        let stored =
            br#"<?xml version="1.0" encoding="utf-8"?><Z:color xmlns:Z="urn:x">red</Z:color>"#;
        assert_eq!(
            element_text(stored),
            Some(r#"<Z:color xmlns:Z="urn:x">red</Z:color>"#)
        );
        assert_eq!(
            element_text(br#"<a xmlns="urn:y"/>"#),
            Some(r#"<a xmlns="urn:y"/>"#)
        );
        assert_eq!(element_text(b"<a>"), None);
        assert_eq!(element_text(b"<a/><b/>"), None);
        assert_eq!(element_text(b"text"), None);
        assert_eq!(element_text(b"\xff\xfe"), None);
    }
}
