//! docs/123.md, open §11: right after an upload, 123 may answer `download_info` and
//! `direct-link/url` for the new file with 20103 `文件正在校验中,请间隔1秒后再试` (an SDK's
//! tests retry it there). That is "not yet", not a failure: the call is retried, spaced as the
//! message asks, a bounded number of times within the request's deadline, and then the client
//! is told to come back (503 with Retry-After, through `Error::Unavailable`), never 502.

use std::future::Future;
use std::time::Duration;

use super::client::is_verifying;
use crate::backend::retry::Retries;
use crate::backend::Error;

/// Retries after a "verifying" answer: 4 calls in all, about 3 s of waiting.
pub const VERIFYING_RETRIES: u32 = 3;
/// Spacing of the retries: 123's message asks for one second (a floor; the back-off may add).
pub const VERIFYING_SPACING: Duration = Duration::from_secs(1);

/// Runs `call` (a link call for one file) again while 123 says the file is being verified.
pub async fn while_verifying<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    // "Verifying" is 123 saying "come back in a second": a rate limit with that Retry-After.
    let mut retries = Retries::new(VERIFYING_RETRIES, 0);
    loop {
        match call().await {
            Err(e) if is_verifying(&e) => {
                let wait = Error::RateLimited {
                    retry_after: Some(VERIFYING_SPACING),
                };
                let Some(delay) = retries.next(&wait) else {
                    tracing::info!(
                        "123 is still verifying a file uploaded moments ago; asking the client to retry"
                    );
                    return Err(Error::Unavailable(
                        "123 is still verifying this file, uploaded moments ago".into(),
                    ));
                };
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifying() -> Error {
        Error::Upstream {
            code: 20103,
            message: "文件正在校验中,请间隔1秒后再试".into(),
            trace_id: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_bounded_number_of_times_then_unavailable() {
        let mut calls = 0;
        let r: Result<(), Error> = while_verifying(|| {
            calls += 1;
            async { Err(verifying()) }
        })
        .await;
        assert!(matches!(r, Err(Error::Unavailable(_))));
        assert_eq!(calls, 1 + VERIFYING_RETRIES);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_first_other_answer() {
        let mut calls = 0;
        let r = while_verifying(|| {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 => Err(verifying()),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(2));
        let mut calls = 0;
        let r: Result<(), Error> = while_verifying(|| {
            calls += 1;
            async { Err(Error::NotFound) }
        })
        .await;
        assert!(matches!(r, Err(Error::NotFound)));
        assert_eq!(calls, 1);
    }
}
