//! A proxied body counted by the traffic meter as it passes, and cut at the last byte a
//! budget allows (`traffic::meter`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::response::ResponseBody;
use crate::traffic::{Meter, Scope};

/// `inner`, each data chunk counted against `scope`'s budgets; once a budget is reached the
/// rest of the chunk is dropped and the body fails, which cuts the client's connection (the
/// client then asks again and is answered 503 until the month ends).
pub fn metered(inner: ResponseBody, meter: Arc<Meter>, scope: Scope) -> ResponseBody {
    Metered {
        inner,
        meter,
        scope,
        cut: false,
    }
    .boxed_unsync()
}

struct Metered {
    inner: ResponseBody,
    meter: Arc<Meter>,
    scope: Scope,
    /// The budget was reached in the last chunk: the next poll fails.
    cut: bool,
}

fn budget_reached() -> io::Error {
    io::Error::other("the traffic budget is reached; cutting the download")
}

impl Body for Metered {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Some(Err(budget_reached())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Some(data) = frame.data_ref() else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                let n = data.len() as u64;
                let allowed = this.meter.take(&this.scope, n);
                if allowed == n {
                    return Poll::Ready(Some(Ok(frame)));
                }
                tracing::info!(
                    mount = %this.scope.mount,
                    "traffic budget reached; cutting a proxied download at the budget's last byte"
                );
                if allowed == 0 {
                    this.cut = true;
                    return Poll::Ready(Some(Err(budget_reached())));
                }
                this.cut = true;
                let mut data = frame.into_data().unwrap_or_default();
                data.truncate(allowed as usize);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.cut && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[tokio::test]
    async fn the_body_stops_at_the_budgets_last_byte() {
        let meter = Arc::new(Meter::new(Clock::new(), None));
        let scope = Scope {
            mount: "/m".into(),
            mount_budget: Some(10),
            client: None,
        };
        let chunks: Vec<Result<Frame<Bytes>, io::Error>> = (0..3)
            .map(|_| Ok(Frame::data(Bytes::from_static(b"abcd"))))
            .collect();
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut body = metered(inner.boxed_unsync(), meter.clone(), scope);
        let mut got = Vec::new();
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => got.extend_from_slice(f.data_ref().unwrap()),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert_eq!(got, b"abcdabcdab");
        assert!(failed, "the body fails after the budget's last byte");
        assert_eq!(meter.mount_bytes("/m").1, 10);
    }
}
