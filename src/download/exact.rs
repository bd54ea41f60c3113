//! The exact body: exactly the promised bytes of an upstream stream, or a cut connection.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body::{Body, Frame, SizeHint};

use super::upstream::describe;
use crate::backend::Entry;

/// While skipping a prefix that the CDN sent although we asked for a range, yield to the
/// runtime after this many discarded chunks so one download cannot hog a worker thread.
const SKIP_CHUNKS_PER_POLL: usize = 64;

/// A body that yields exactly `remaining` bytes of an upstream stream after discarding `skip`
/// bytes, or an I/O error (which makes hyper cut the connection) if the upstream fails or ends
/// early. One chunk at a time: memory stays bounded by the upstream's chunk size. Dropping it
/// drops the upstream stream, which cancels the upstream request.
pub struct ExactBody<S> {
    /// `None` once finished or failed.
    stream: Option<S>,
    skip: u64,
    remaining: u64,
    delivered: u64,
    file_id: u64,
    name: String,
    /// Counts this stream in the metrics while it lives.
    _active: crate::metrics::ActiveStream,
    metrics: crate::metrics::Metrics,
}

impl<S> ExactBody<S> {
    /// Wraps `stream` for the file `entry` (its id and name are used in the failure log line).
    pub fn new(
        stream: S,
        skip: u64,
        len: u64,
        entry: &Entry,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        ExactBody {
            stream: (len > 0).then_some(stream),
            skip,
            remaining: len,
            delivered: 0,
            file_id: entry.id,
            name: entry.name.clone(),
            _active: metrics.active_stream(),
            metrics,
        }
    }

    fn fail(&mut self, kind: io::ErrorKind, reason: String) -> io::Error {
        self.stream = None;
        tracing::warn!(
            file_id = self.file_id,
            name = %self.name,
            delivered = self.delivered,
            missing = self.remaining,
            %reason,
            "upstream body failed; cutting the client connection"
        );
        io::Error::new(kind, reason)
    }
}

impl<S> fmt::Debug for ExactBody<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactBody")
            .field("file_id", &self.file_id)
            .field("skip", &self.skip)
            .field("remaining", &self.remaining)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// Errors of the upstream stream, described without any URL.
pub trait UpstreamError {
    fn describe(self) -> String;
}

impl UpstreamError for reqwest::Error {
    fn describe(self) -> String {
        describe(self)
    }
}

impl UpstreamError for io::Error {
    fn describe(self) -> String {
        self.to_string()
    }
}

impl<S, E> Body for ExactBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: UpstreamError,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let mut discarded = 0usize;
        loop {
            if this.remaining == 0 {
                // Done: release the upstream connection now rather than when hyper drops us.
                this.stream = None;
                return Poll::Ready(None);
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            let mut chunk = match stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => chunk,
                Poll::Ready(Some(Err(e))) => {
                    let reason = format!("upstream body error: {}", e.describe());
                    return Poll::Ready(Some(Err(this.fail(io::ErrorKind::Other, reason))));
                }
                Poll::Ready(None) => {
                    let reason = "upstream body ended early".to_owned();
                    return Poll::Ready(Some(Err(this.fail(io::ErrorKind::UnexpectedEof, reason))));
                }
            };
            if this.skip > 0 {
                let n = usize::try_from(this.skip).map_or(chunk.len(), |s| s.min(chunk.len()));
                let _ = chunk.split_to(n);
                this.skip -= n as u64;
            }
            if chunk.is_empty() {
                discarded += 1;
                if discarded >= SKIP_CHUNKS_PER_POLL {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            if let Ok(limit) = usize::try_from(this.remaining) {
                chunk.truncate(limit);
            }
            let n = chunk.len() as u64;
            this.remaining -= n;
            this.delivered += n;
            this.metrics.proxied_bytes(n);
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::BodyExt;

    use super::*;
    use crate::download::test_util::{entry, SIZE};

    fn chunks(parts: &[&'static str]) -> Vec<Result<Bytes, io::Error>> {
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect()
    }

    async fn drain(
        parts: Vec<Result<Bytes, io::Error>>,
        skip: u64,
        len: u64,
    ) -> (Vec<Bytes>, Option<io::Error>) {
        let mut body = ExactBody::new(
            stream::iter(parts),
            skip,
            len,
            &entry(SIZE),
            crate::metrics::Metrics::new(),
        );
        assert_eq!(body.size_hint().exact(), Some(len));
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => frames.push(frame.into_data().expect("data frame")),
                Err(e) => {
                    assert!(body.frame().await.is_none(), "nothing after an error");
                    return (frames, Some(e));
                }
            }
        }
        assert!(body.is_end_stream());
        (frames, None)
    }

    fn joined(frames: &[Bytes]) -> Vec<u8> {
        frames.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[tokio::test]
    async fn exact_body_passes_chunks_through() {
        let (frames, err) = drain(chunks(&["abc", "def"]), 0, 6).await;
        assert!(err.is_none());
        assert_eq!(frames, vec![Bytes::from("abc"), Bytes::from("def")]);
    }

    #[tokio::test]
    async fn exact_body_skips_and_truncates() {
        let (frames, err) = drain(chunks(&["ab", "cd", "ef", "gh"]), 3, 3).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), b"def");

        // Stops without reading past the promised length: the error after it is never seen.
        let mut parts = chunks(&["abcdef"]);
        parts.push(Err(io::Error::other("never read")));
        let (frames, err) = drain(parts, 0, 3).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), b"abc");
    }

    #[tokio::test]
    async fn exact_body_ignores_empty_chunks() {
        let (frames, err) = drain(chunks(&["", "ab", "", "c"]), 0, 3).await;
        assert!(err.is_none());
        assert_eq!(frames, vec![Bytes::from("ab"), Bytes::from("c")]);
    }

    #[tokio::test]
    async fn exact_body_cuts_on_early_end() {
        let (frames, err) = drain(chunks(&["ab"]), 0, 5).await;
        assert_eq!(joined(&frames), b"ab");
        assert_eq!(err.expect("error").kind(), io::ErrorKind::UnexpectedEof);

        // Ending inside the skipped prefix is an early end too.
        let (frames, err) = drain(chunks(&["ab"]), 5, 1).await;
        assert!(frames.is_empty());
        assert_eq!(err.expect("error").kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn exact_body_cuts_on_upstream_error() {
        let mut parts = chunks(&["ab"]);
        parts.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")));
        parts.extend(chunks(&["cd"]));
        let (frames, err) = drain(parts, 0, 4).await;
        assert_eq!(joined(&frames), b"ab");
        assert!(err.expect("error").to_string().contains("reset"));
    }

    #[tokio::test]
    async fn exact_body_skips_many_chunks_cooperatively() {
        let data: Vec<Result<Bytes, io::Error>> = (0..1000u32)
            .map(|i| Ok(Bytes::from(vec![(i % 251) as u8])))
            .collect();
        let (frames, err) = drain(data, 998, 2).await;
        assert!(err.is_none());
        assert_eq!(joined(&frames), vec![(998 % 251) as u8, (999 % 251) as u8]);
    }

    #[tokio::test]
    async fn exact_body_of_nothing_is_empty() {
        let (frames, err) = drain(chunks(&["abc"]), 0, 0).await;
        assert!(err.is_none());
        assert!(frames.is_empty());
    }
}
