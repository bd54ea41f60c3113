//! The access log and request metrics: one line per request, written when its response body
//! ends (so it carries the bytes really sent and the whole duration, streaming included), and
//! the request counter, counted when the response head is ready.
//!
//! The router learns the mount, its download policy and the client profile; it leaves them in
//! a `Note` that `serve_connection` put in the request's extensions. Nothing secret is logged:
//! the path without its query (a signed URL's `sign` stays out), never a header.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::profile::ClientProfile;
use crate::download::ResponseBody;
use crate::mount::Mount;

/// What the router learned about a request, for its log line.
#[derive(Clone, Debug, Default)]
pub struct Note(Arc<Mutex<NoteInner>>);

#[derive(Clone, Debug, Default)]
struct NoteInner {
    mount: String,
    policy: &'static str,
    profile: String,
}

impl Note {
    fn with(&self, f: impl FnOnce(&mut NoteInner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn get(&self) -> NoteInner {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The mount path (`/open`), or `""` for requests outside any mount.
    pub fn mount_path(&self) -> String {
        self.get().mount
    }
}

/// Records the mount a request was routed to (no-op without a `Note`).
pub fn note_mount<B>(req: &Request<B>, mount: &Mount) {
    if let Some(note) = req.extensions().get::<Note>() {
        note.with(|n| {
            n.mount = mount.config.path.clone();
            n.policy = mount.policy().as_str();
        });
    }
}

/// Records the client profile of a request (no-op without a `Note`).
pub fn note_profile<B>(req: &Request<B>, profile: &ClientProfile) {
    if let Some(note) = req.extensions().get::<Note>() {
        let mut parts = Vec::new();
        if profile.windows {
            parts.push("windows");
        }
        if profile.finder {
            parts.push("finder");
        }
        if profile.never_redirect {
            parts.push("never-redirect");
        }
        let label = if parts.is_empty() {
            "default".to_string()
        } else {
            parts.join("+")
        };
        note.with(|n| n.profile = label);
    }
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

/// A short request id: process-unique, increasing.
pub fn next_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What the log line needs besides the note.
pub struct Line {
    pub id: String,
    pub peer: std::net::SocketAddr,
    /// A known method's name, or `other`.
    pub method: &'static str,
    /// Capped (`capped`).
    pub path: String,
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
        tracing::info!(
            request_id = %line.id,
            peer = %line.peer,
            method = line.method,
            path = %line.path,
            status = line.status,
            bytes = self.bytes,
            ms = line.started.elapsed().as_millis() as u64,
            mount = %note.mount,
            policy = note.policy,
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
