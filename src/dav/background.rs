//! Long multistatus bodies written off the request workers, at low priority.
//!
//! A PROPFIND of a folder of 10,000 entries is some 30 ms of pure CPU; while many clients list
//! big folders at once, those chunks kept the runtime's few workers busy, and every stream and
//! upload on the same workers waited its turn behind them (a film stalls because someone opened
//! a big folder). Chunks after the first of a long body are made here instead: on a small pool
//! of threads of their own, niced on Linux, one chunk per demand of the body (no read-ahead, so
//! memory stays a chunk per listing), the oldest body's first. The workers are left to move
//! bytes; the listings take whatever CPU the streams leave.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::Stream;

/// How much lower the writer threads run than the rest of the process (Linux `nice`).
const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// One chunk to make, ordered by when its body started: the oldest body's chunk is made
/// first, so listings under contention finish one after another rather than all late.
struct Queued {
    body: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        Reverse(self.body).cmp(&Reverse(other.body))
    }
}

/// The chunks waiting for a writer thread.
#[derive(Default)]
struct Queue {
    waiting: Mutex<BinaryHeap<Queued>>,
    ready: Condvar,
}

/// The writer threads' queue (the threads start with the first long body).
fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    static STARTED: OnceLock<()> = OnceLock::new();
    let queue = QUEUE.get_or_init(Queue::default);
    STARTED.get_or_init(|| {
        // One core is left to the workers; one thread at least.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1);
        for i in 0..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("pan123-listing-{i}"))
                .spawn(move || run(queue));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a listing writer thread");
            }
        }
    });
    queue
}

fn run(queue: &Queue) {
    lower_priority();
    loop {
        let job = {
            let mut waiting = queue.waiting.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(q) = waiting.pop() {
                    break q.job;
                }
                waiting = queue.ready.wait(waiting).unwrap_or_else(|p| p.into_inner());
            }
        };
        // A panic in one chunk ends that body (its sender is dropped), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

fn submit(body: u64, job: Job) {
    let queue = queue();
    queue
        .waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Queued { body, job });
    queue.ready.notify_one();
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
    static BODIES: AtomicU64 = AtomicU64::new(0);
    let body = BODIES.fetch_add(1, Ordering::Relaxed);
    futures_util::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(
            body,
            Box::new(move || {
                let next = chunks.next();
                let _ = tx.send((next, chunks));
            }),
        );
        match rx.await {
            Ok((Some(chunk), chunks)) => Some((Ok(chunk), Some(chunks))),
            Ok((None, _)) => None,
            Err(_) => Some((
                Err(std::io::Error::other(
                    "the listing writer stopped before the listing was written",
                )),
                None,
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn the_oldest_body_is_served_first() {
        let mut heap = BinaryHeap::new();
        for body in [5, 2, 9, 2] {
            heap.push(Queued {
                body,
                job: Box::new(|| {}),
            });
        }
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|q| q.body)).collect();
        assert_eq!(order, [2, 2, 5, 9]);
    }

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
