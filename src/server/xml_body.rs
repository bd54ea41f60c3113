//! Bounds on the XML bodies of PROPFIND, PROPPATCH and LOCK before any of them reaches
//! dav-server.
//!
//! dav-server parses these bodies with `xmltree`, which builds its tree recursively: a small body
//! whose elements nest a few thousand levels deep overflows the stack and aborts the whole
//! process. So the body is read here first (at most what dav-server itself would read), scanned
//! once with a streaming, non-recursive reader (`quick-xml`), and refused with 400 when it nests
//! deeper or holds more elements than any WebDAV client sends. What passes is handed on as the
//! same bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::response::status_text;
use crate::response::ResponseBody;

/// The most body bytes read: what dav-server reads of a non-PUT body.
pub const MAX_XML_BYTES: usize = 64 * 1024;
/// The deepest element nesting accepted. WebDAV clients send four or five levels; dead property
/// values may nest a little more.
pub const MAX_XML_DEPTH: usize = 64;
/// The most elements one body may hold (Finder's PROPFIND names about twenty).
pub const MAX_XML_ELEMENTS: usize = 4096;

/// A request body that is either still the client's stream or was read whole and checked.
pub enum GuardedBody<B> {
    Stream(B),
    Read(Option<Bytes>),
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.get_mut() {
            GuardedBody::Stream(b) => Pin::new(b).poll_frame(cx),
            GuardedBody::Read(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GuardedBody::Stream(b) => b.is_end_stream(),
            GuardedBody::Read(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GuardedBody::Stream(b) => b.size_hint(),
            GuardedBody::Read(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl<B: Body> GuardedBody<B> {
    /// The body as read and checked here (empty when the client sent none); `None` for a body
    /// still being streamed.
    pub fn checked_bytes(&self) -> Option<&[u8]> {
        match self {
            GuardedBody::Read(Some(b)) => Some(b),
            GuardedBody::Read(None) => Some(&[]),
            GuardedBody::Stream(b) if b.is_end_stream() => Some(&[]),
            GuardedBody::Stream(_) => None,
        }
    }
}

/// Does dav-server parse this method's body as XML?
fn parses_xml(method: &http::Method) -> bool {
    matches!(method.as_str(), "PROPFIND" | "PROPPATCH" | "LOCK")
}

/// Reads and checks the body of an XML method; other requests pass through untouched.
/// `Err` is the answer to send instead (400 for a body out of bounds or not XML, 413 for one
/// larger than dav-server would read).
pub async fn guard<B>(req: Request<B>) -> Result<Request<GuardedBody<B>>, Response<ResponseBody>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !parses_xml(req.method()) || req.body().is_end_stream() {
        return Ok(req.map(GuardedBody::Stream));
    }
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_XML_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(status_text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The XML body is too large",
                None,
            ))
        }
        Err(e) => {
            tracing::debug!(error = %e, "reading an XML request body failed");
            return Err(status_text(
                StatusCode::BAD_REQUEST,
                "The request body could not be read",
                None,
            ));
        }
    };
    if let Err(problem) = check(&bytes) {
        return Err(status_text(StatusCode::BAD_REQUEST, problem, None));
    }
    Ok(Request::from_parts(parts, GuardedBody::Read(Some(bytes))))
}

/// Scans `xml` once, without recursion: `Err` names what is out of bounds or malformed.
pub fn check(xml: &[u8]) -> Result<(), &'static str> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut depth = 0usize;
    let mut elements = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                elements += 1;
                if depth > MAX_XML_DEPTH {
                    return Err("The XML body nests too deeply");
                }
            }
            Ok(Event::Empty(_)) => elements += 1,
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err("The request body is not well-formed XML"),
        }
        if elements > MAX_XML_ELEMENTS {
            return Err("The XML body has too many elements");
        }
    }
    if depth != 0 {
        return Err("The request body is not well-formed XML");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        let mut s = String::from("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>");
        for _ in 0..depth {
            s.push_str("<x>");
        }
        for _ in 0..depth {
            s.push_str("</x>");
        }
        s.push_str("</D:prop></D:propfind>");
        s.into_bytes()
    }

    #[test]
    fn client_bodies_pass() {
        let finder = br#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop xmlns:A="http://apple.com/ns/"><D:getlastmodified/><D:getcontentlength/><D:resourcetype/><A:quota/></D:prop></D:propfind>"#;
        assert_eq!(check(finder), Ok(()));
        let lock = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>"#;
        assert_eq!(check(lock), Ok(()));
        assert_eq!(check(&nested(MAX_XML_DEPTH - 2)), Ok(()));
    }

    #[test]
    fn deep_nesting_and_floods_are_refused() {
        assert!(check(&nested(3000)).is_err());
        assert!(check(&nested(MAX_XML_DEPTH)).is_err());
        let flood = format!("<a>{}</a>", "<b/>".repeat(MAX_XML_ELEMENTS + 1));
        assert!(check(flood.as_bytes()).is_err());
        // Unclosed elements never reach the recursive parser either.
        assert!(check("<a>".repeat(5000).as_bytes()).is_err());
        assert!(check(b"<a></b>").is_err());
    }
}
