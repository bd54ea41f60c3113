//! Limits on client connections: how long a client may take to send a request's headers
//! (`server.header_timeout`), how long a connection with no request in flight stays open
//! (`server.keepalive_timeout`), and how many connections one address may hold
//! (`server.connections_per_ip`).
//!
//! hyper has a header timeout for HTTP/1 only, and it starts when the connection goes idle,
//! so it cannot tell a slow client from an idle keep-alive one; nothing in hyper closes an idle
//! HTTP/2 connection, and a connection that never sends a byte never even reaches hyper's
//! timer (the protocol is not known yet). So each connection has a small watchdog instead,
//! fed by the socket (`Watched`: the first byte of a request) and by the request handler
//! (`Activity::begin`: a request's headers are in, until its response is done). It sees the
//! same for both protocols.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The per-connection limits, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub connections_per_ip: usize,
}

/// Live connections per client address.
#[derive(Default)]
pub struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// A slot for one more connection from `ip`, or `None` when it holds `max` already. The
    /// slot is given back when dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            per_ip: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        lock(&self.counts).get(&ip).copied().unwrap_or(0)
    }
}

/// One admitted connection.
pub struct Slot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.per_ip.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// What one connection's watchdog knows. Marked on every socket read and at each request's
/// begin and end, so it is lock-free: atomics, and the clock read only where the timeouts
/// measure from (the first byte of a request after an idle spell, and a request's end); a
/// socket read in the middle of a request costs two atomic loads.
#[derive(Debug)]
pub struct Activity {
    /// Times below are milliseconds since this instant (the connection's start).
    epoch: Instant,
    /// Requests whose headers are in and whose response is not done.
    in_flight: AtomicUsize,
    /// With nothing in flight: 1 + when the client started sending the next request (its
    /// first byte; for a new connection, the connection itself). 0 = not yet.
    awaiting_since: AtomicU64,
    /// When the last request in flight ended (or the connection started).
    idle_since: AtomicU64,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet; look again at this time.
    Wait(Instant),
    /// A request's headers did not arrive within `header_timeout`: close.
    SlowHeaders,
    /// No request for `keepalive_timeout`: close gracefully.
    Idle,
}

impl Activity {
    /// A new connection: waiting for its first request from now on.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            awaiting_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
        })
    }

    /// Now, as milliseconds since `epoch`.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Bytes came from the client.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) != 0
            || self.awaiting_since.load(Ordering::Acquire) != 0
        {
            return;
        }
        let mark = self.now_ms() + 1;
        if self
            .awaiting_since
            .compare_exchange(0, mark, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && self.in_flight.load(Ordering::Acquire) != 0
        {
            // A request began meanwhile: these were its bytes, not the next one's.
            let _ =
                self.awaiting_since
                    .compare_exchange(mark, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A request's headers are in; the returned guard ends it (drop it with the response).
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.awaiting_since.store(0, Ordering::Release);
        Busy(self.clone())
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Instant, limits: &ClientLimits) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Requests bound their own bodies (`body_idle_timeout`); look again later.
            return Verdict::Wait(now + limits.header_timeout.min(limits.keepalive_timeout));
        }
        match self.awaiting_since.load(Ordering::Acquire) {
            0 => {
                let idle_since = self.at(self.idle_since.load(Ordering::Acquire));
                if now >= idle_since + limits.keepalive_timeout {
                    Verdict::Idle
                } else {
                    Verdict::Wait(idle_since + limits.keepalive_timeout)
                }
            }
            mark => {
                let t = self.at(mark - 1);
                if now >= t + limits.header_timeout {
                    Verdict::SlowHeaders
                } else {
                    Verdict::Wait(t + limits.header_timeout)
                }
            }
        }
    }
}

/// One request in flight on a connection.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        // Idle from now on (unused while others are in flight; the last to end marks it
        // again). Stored before the count drops, so the watchdog never sees an idle
        // connection with an old time.
        a.idle_since.store(a.now_ms(), Ordering::Release);
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.awaiting_since.store(0, Ordering::Release);
        }
    }
}

/// A client socket that tells its connection's [`Activity`] when bytes arrive.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ClientLimits = ClientLimits {
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        body_idle_timeout: Duration::from_secs(60),
        connections_per_ip: 2,
    };

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_tells_slow_headers_from_idle_keep_alive() {
        let a = Activity::new();
        let start = Instant::now();
        // A new connection has `header_timeout` for its first request.
        assert_eq!(
            a.verdict(start, &LIMITS),
            Verdict::Wait(start + LIMITS.header_timeout)
        );
        assert_eq!(
            a.verdict(start + LIMITS.header_timeout, &LIMITS),
            Verdict::SlowHeaders
        );
        // A request in flight is never the watchdog's business.
        let busy = a.begin();
        assert!(matches!(
            a.verdict(start + Duration::from_secs(3600), &LIMITS),
            Verdict::Wait(_)
        ));
        drop(busy);
        // Idle: `keepalive_timeout` from the end of the last request.
        let idle = Instant::now();
        assert_eq!(
            a.verdict(idle + Duration::from_secs(59), &LIMITS),
            Verdict::Wait(idle + LIMITS.keepalive_timeout)
        );
        assert_eq!(
            a.verdict(idle + LIMITS.keepalive_timeout, &LIMITS),
            Verdict::Idle
        );
        // The next request's first byte starts the header clock.
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        let first = Instant::now();
        assert_eq!(
            a.verdict(first, &LIMITS),
            Verdict::Wait(first + LIMITS.header_timeout)
        );
    }

    #[test]
    fn addresses_hold_at_most_their_share() {
        let per_ip = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let a = per_ip.admit(ip, 2).unwrap();
        let _b = per_ip.admit(ip, 2).unwrap();
        assert!(per_ip.admit(ip, 2).is_none());
        assert!(per_ip.admit(other, 2).is_some());
        drop(a);
        assert_eq!(per_ip.count(ip), 1);
        assert!(per_ip.admit(ip, 2).is_some());
    }
}
