//! The access log and request metrics: one line per request, written when its response body
//! ends (so it carries the bytes really sent and the whole duration, streaming included), and
//! the request counter, counted when the response head is ready.
//!
//! The router learns the mount, its download policy and the client profile; it leaves them in
//! a `Note` that `serve_connection` lends it (`Origin`). Nothing secret is logged:
//! the path without its query (a signed URL's `sign` stays out), never a header.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::profile::ClientProfile;
use crate::mount::Mount;
use crate::response::ResponseBody;

/// What the router learned about a request, for its log line and metrics. Shared pointers
/// only, so noting costs no copy of a string. Owned by the connection's request handler and
/// lent to the router, so a request allocates nothing for it.
#[derive(Default)]
pub struct Note(Mutex<NoteInner>);

/// What the connection knows of a request besides the request itself: the client's address
/// (the lockout, the page's own URL) and the note the log line and the metrics read once the
/// router is done. Passed along rather than put in the request's extensions: those cost a
/// map and a box per value on every request.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub peer: std::net::SocketAddr,
    pub note: &'a Note,
}

#[derive(Clone, Default)]
struct NoteInner {
    mount: Option<Arc<Mount>>,
    profile: &'static str,
}

impl Note {
    fn with(&self, f: impl FnOnce(&mut NoteInner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn get(&self) -> NoteInner {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The mount the request was routed to, if any.
    pub fn mount(&self) -> Option<Arc<Mount>> {
        self.get().mount
    }

    /// Records the mount a request was routed to.
    pub fn set_mount(&self, mount: &Arc<Mount>) {
        self.with(|n| n.mount = Some(mount.clone()));
    }

    /// Records the client profile of a request.
    pub fn set_profile(&self, profile: &ClientProfile) {
        let label = match (profile.windows, profile.finder, profile.never_redirect) {
            (false, false, false) => "default",
            (true, false, false) => "windows",
            (false, true, false) => "finder",
            (false, false, true) => "never-redirect",
            (true, true, false) => "windows+finder",
            (true, false, true) => "windows+never-redirect",
            (false, true, true) => "finder+never-redirect",
            (true, true, true) => "windows+finder+never-redirect",
        };
        self.with(|n| n.profile = label);
    }
}

/// Is the access log on (`info` for this module)? When it is off, requests skip building
/// their line and wrapping their body.
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::INFO)
}

/// The methods this server knows by name. Any other is answered 501 before anything else and is
/// counted and logged as `other`, so clients cannot grow the metrics or the log with names.
const KNOWN_METHODS: [&str; 16] = [
    "OPTIONS",
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];

/// The method's name when it is a known one, else `None`.
pub fn known_method(method: &http::Method) -> Option<&'static str> {
    KNOWN_METHODS
        .iter()
        .copied()
        .find(|m| *m == method.as_str())
}

/// The most characters of a client-chosen string (the path) written to a log line.
const MAX_LOGGED_CHARS: usize = 512;

/// `s` cut to `MAX_LOGGED_CHARS` characters, marked with `…` when it was cut.
pub fn capped(s: &str) -> String {
    match s.char_indices().nth(MAX_LOGGED_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A short request id: process-unique, increasing (written in hex).
pub fn next_request_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What the log line needs besides the note.
pub struct Line {
    pub id: u64,
    pub peer: std::net::SocketAddr,
    /// A known method's name, or `other`.
    pub method: &'static str,
    /// The request's URI: only its path is logged, capped (`capped`).
    pub uri: http::Uri,
    pub status: u16,
    pub started: Instant,
    pub note: Note,
}

/// Wraps a response body so the request's log line is written when the body ends or is
/// dropped (a client that goes away mid-stream still gets its line, with the bytes sent).
pub fn log_when_done(body: ResponseBody, line: Line) -> ResponseBody {
    LoggedBody {
        inner: body,
        bytes: 0,
        line: Some(line),
    }
    .boxed_unsync()
}

struct LoggedBody {
    inner: ResponseBody,
    bytes: u64,
    line: Option<Line>,
}

impl LoggedBody {
    fn finish(&mut self, cut: bool) {
        let Some(line) = self.line.take() else {
            return;
        };
        let note = line.note.get();
        let mount = note.mount.as_deref();
        tracing::info!(
            request_id = %format_args!("{:x}", line.id),
            peer = %line.peer,
            method = line.method,
            path = %capped(line.uri.path()),
            status = line.status,
            bytes = self.bytes,
            ms = line.started.elapsed().as_millis() as u64,
            mount = mount.map_or("", |m| m.config.path.as_str()),
            policy = mount.map_or("", |m| m.policy().as_str()),
            profile = %note.profile,
            cut,
            "request"
        );
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(false);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(true),
            Poll::Ready(None) => this.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Dropped before the end: the client went away (or a HEAD, whose body is never read).
        let cut = !self.inner.is_end_stream();
        self.finish(cut);
    }
}
