//! Long multistatus bodies written off the request workers, at low priority.
//!
//! A PROPFIND of a folder of 10,000 entries is some 30 ms of pure CPU; while many clients list
//! big folders at once, those chunks kept the runtime's few workers busy, and every stream and
//! upload on the same workers waited its turn behind them (a film stalls because someone opened
//! a big folder). Chunks after the first of a long body are made here instead: on a small pool
//! of threads of their own, niced on Linux, one chunk per demand of the body (no read-ahead, so
//! memory stays a chunk per listing). The workers are left to move bytes; the listings take
//! whatever CPU the streams leave.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::Stream;

/// How much lower the writer threads run than the rest of the process (Linux `nice`).
const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The writer threads' queue (started with the first long body).
fn queue() -> &'static Mutex<Sender<Job>> {
    static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        // One core is left to the workers; one thread at least.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1);
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pan123-listing-{i}"))
                .spawn(move || run(&rx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a listing writer thread");
            }
        }
        Mutex::new(tx)
    })
}

fn run(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        match job {
            // A panic in one chunk ends that body (its sender is dropped), not the thread.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; PRIO_PROCESS with a thread id changes
    // that thread only (Linux).
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICENESS)
    };
    if rc != 0 {
        tracing::debug!("could not lower the listing writer's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// The items of `chunks`, each made on a writer thread when the stream is polled for it.
pub fn stream<I>(chunks: I) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    I: Iterator<Item = Bytes> + Send + 'static,
{
    futures_util::stream::unfold(Some(chunks), |state| async move {
        let mut chunks = state?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let next = chunks.next();
            let _ = tx.send((next, chunks));
        });
        let sent = queue()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_ok();
        let gone =
            || std::io::Error::other("the listing writer stopped before the listing was written");
        if !sent {
            return Some((Err(gone()), None));
        }
        match rx.await {
            Ok((Some(chunk), chunks)) => Some((Ok(chunk), Some(chunks))),
            Ok((None, _)) => None,
            Err(_) => Some((Err(gone()), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn chunks_arrive_in_order_and_the_stream_ends() {
        let chunks = (0..100).map(|i| Bytes::from(format!("{i},")));
        let got: Vec<Bytes> = stream(chunks).map(|r| r.expect("chunk")).collect().await;
        let text: String = got
            .iter()
            .map(|b| std::str::from_utf8(b).expect("utf-8"))
            .collect();
        let want: String = (0..100).map(|i| format!("{i},")).collect();
        assert_eq!(text, want);
    }

    #[tokio::test]
    async fn a_panicking_chunk_ends_its_body_with_an_error_and_the_writer_goes_on() {
        let bad = (0..3).map(|i| {
            assert!(i < 1, "a chunk that cannot be written");
            Bytes::from_static(b"x")
        });
        let got: Vec<_> = stream(bad).collect().await;
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
        let good: Vec<_> = stream(std::iter::once(Bytes::from_static(b"y")))
            .collect()
            .await;
        assert_eq!(got.len() + good.len(), 3);
    }
}
