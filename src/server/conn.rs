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

/// What one connection's watchdog knows.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests whose headers are in and whose response is not done.
    in_flight: usize,
    /// With nothing in flight: when the client started sending the next request (its first
    /// byte; for a new connection, the connection itself).
    awaiting_since: Option<Instant>,
    /// When the last request in flight ended (or the connection started).
    idle_since: Instant,
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
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                awaiting_since: Some(now),
                idle_since: now,
            }),
        })
    }

    /// Bytes came from the client.
    fn on_read(&self) {
        let mut st = lock(&self.state);
        if st.in_flight == 0 && st.awaiting_since.is_none() {
            st.awaiting_since = Some(Instant::now());
        }
    }

    /// A request's headers are in; the returned guard ends it (drop it with the response).
    pub fn begin(self: &Arc<Self>) -> Busy {
        let mut st = lock(&self.state);
        st.in_flight += 1;
        st.awaiting_since = None;
        Busy(self.clone())
    }

    /// The verdict at `now`.
    pub fn verdict(&self, now: Instant, limits: &ClientLimits) -> Verdict {
        let st = lock(&self.state);
        if st.in_flight > 0 {
            // Requests bound their own bodies (`body_idle_timeout`); look again later.
            return Verdict::Wait(now + limits.header_timeout.min(limits.keepalive_timeout));
        }
        match st.awaiting_since {
            Some(t) if now >= t + limits.header_timeout => Verdict::SlowHeaders,
            Some(t) => Verdict::Wait(t + limits.header_timeout),
            None if now >= st.idle_since + limits.keepalive_timeout => Verdict::Idle,
            None => Verdict::Wait(st.idle_since + limits.keepalive_timeout),
        }
    }
}

/// One request in flight on a connection.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            st.idle_since = Instant::now();
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
