//! The request body as the handlers see it: bounded in time, and telling the client's mistakes
//! apart from 123's.
//!
//! A body that delivers less than [`MIN_PROGRESS`] bytes in `server.body_idle_timeout` (an
//! upload that stopped, or one that trickles a byte at a time) ends in an error, so the
//! handler stops, drops what it spooled (its spool reservation with it), and the client gets
//! 408. A body hyper cannot decode (a malformed chunk size, a connection that ends early) is
//! the client's error too: 400. dav-server reports every body error as an I/O error (502, or
//! 504 for a timeout), the statuses of an upstream failure, so the body records what happened
//! in its [`Fate`] and the server answers from that instead.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::response::status_text;
use crate::response::ResponseBody;

/// Bytes a body must deliver per `body_idle_timeout` to count as moving.
pub const MIN_PROGRESS: u64 = 1024;

/// How a request body failed, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Less than `MIN_PROGRESS` bytes in `body_idle_timeout`.
    Stalled,
    /// hyper could not read it: bad framing, or the client went away mid-body.
    Malformed,
}

/// Where a [`ClientBody`] records its failure; the server reads it after the handler. One
/// atomic, and none at all for a request that came without a body (nothing can fail), so a
/// GET costs no allocation here.
#[derive(Clone, Debug)]
pub struct Fate(Option<Arc<AtomicU8>>);

impl Default for Fate {
    fn default() -> Self {
        Self(Some(Arc::new(AtomicU8::new(0))))
    }
}

impl Fate {
    /// The fate of a body that was complete with the headers (`is_end_stream`): it cannot
    /// fail.
    pub fn settled() -> Self {
        Self(None)
    }

    fn set(&self, f: Failure) {
        let code = match f {
            Failure::Stalled => 1,
            Failure::Malformed => 2,
        };
        if let Some(slot) = &self.0 {
            // The first failure stays.
            let _ = slot.compare_exchange(0, code, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> Option<Failure> {
        match self.0.as_ref()?.load(Ordering::Acquire) {
            1 => Some(Failure::Stalled),
            2 => Some(Failure::Malformed),
            _ => None,
        }
    }

    /// The response for a failed body instead of `res` (whatever the handler made of the I/O
    /// error), closing the connection: the rest of the body was never read. `res` when the body
    /// did not fail.
    pub fn answer(&self, res: Response<ResponseBody>, http1: bool) -> Response<ResponseBody> {
        let mut res = match self.get() {
            None => return res,
            Some(Failure::Stalled) => status_text(
                StatusCode::REQUEST_TIMEOUT,
                "The request body stopped arriving (less than 1 KiB in server.body_idle_timeout)",
                None,
            ),
            Some(Failure::Malformed) => status_text(
                StatusCode::BAD_REQUEST,
                "The request body is malformed or ended early",
                None,
            ),
        };
        if http1 {
            res.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// A request body with an idle limit that records how it failed.
pub struct ClientBody<B> {
    inner: B,
    limit: Duration,
    /// Start of the current progress window (the first poll, then each completed window).
    window_start: Option<Instant>,
    window_bytes: u64,
    timer: Option<Pin<Box<Sleep>>>,
    fate: Fate,
}

impl<B> ClientBody<B> {
    pub fn new(inner: B, limit: Duration, fate: Fate) -> Self {
        Self {
            inner,
            limit,
            window_start: None,
            window_bytes: 0,
            timer: None,
            fate,
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        // The window starts when the handler first asks (after `100 Continue`, if any), not
        // when the headers came: the handler may have had work to do first.
        let start = *this.window_start.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.window_bytes += data.len() as u64;
                }
                if this.window_bytes >= MIN_PROGRESS {
                    this.window_start = Some(Instant::now());
                    this.window_bytes = 0;
                    this.timer = None;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => {
                this.fate.set(Failure::Malformed);
                return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let limit = this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(start + limit)));
        if timer.as_mut().poll(cx).is_ready() {
            this.fate.set(Failure::Stalled);
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body stopped arriving",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks = futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, io::Error>>;

    fn body_of(chunks: Chunks) -> ClientBody<StreamBody<Chunks>> {
        ClientBody::new(
            StreamBody::new(chunks),
            Duration::from_secs(10),
            Fate::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_is_cut_and_recorded() {
        use futures_util::StreamExt;
        let chunks = futures_util::stream::iter([Ok(Frame::data(Bytes::from(vec![0; 4096])))])
            .chain(futures_util::stream::pending())
            .boxed();
        let mut body = body_of(chunks);
        let fate = body.fate.clone();
        assert!(body.frame().await.is_some_and(|f| f.is_ok()));
        let err = body.frame().await.and_then(|f| f.err());
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
        assert_eq!(fate.get(), Some(Failure::Stalled));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_and_a_steady_body_is_not() {
        use futures_util::StreamExt;
        // One byte a second: 10 bytes per window, far under MIN_PROGRESS.
        let trickle = futures_util::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
        })
        .boxed();
        let mut body = body_of(trickle);
        let fate = body.fate.clone();
        let mut frames = 0;
        while let Some(Ok(_)) = body.frame().await {
            frames += 1;
            assert!(frames < 100, "never cut");
        }
        assert_eq!(fate.get(), Some(Failure::Stalled));
        // 2 KiB a second for a minute: never cut.
        let steady = futures_util::stream::unfold(0, |n| async move {
            if n == 60 {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok(Frame::data(Bytes::from(vec![0; 2048]))), n + 1))
        })
        .boxed();
        let mut body = body_of(steady);
        let fate = body.fate.clone();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            assert!(frame.is_ok());
            frames += 1;
        }
        assert_eq!((frames, fate.get()), (60, None));
    }
}
