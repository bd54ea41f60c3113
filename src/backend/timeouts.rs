//! Upstream timeouts (`server.upstream_*`), set once per process from the config and read by
//! every client that talks to 123: the API clients, the download proxy and the shared HTTP
//! client. One process serves one config, so a process-wide value is the simplest honest home.

use std::sync::OnceLock;
use std::time::Duration;

/// The three ways an upstream can be slow, each with its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// Waiting for a connection (TCP and TLS).
    pub connect: Duration,
    /// Waiting for an API answer, or for a download's response headers.
    pub first_byte: Duration,
    /// A download stalling mid-body.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: crate::config::DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
            first_byte: crate::config::DEFAULT_UPSTREAM_FIRST_BYTE_TIMEOUT,
            idle: crate::config::DEFAULT_UPSTREAM_IDLE_TIMEOUT,
        }
    }
}

static TIMEOUTS: OnceLock<UpstreamTimeouts> = OnceLock::new();

/// Sets the process's timeouts; the first call wins (one config per process).
pub fn set(t: UpstreamTimeouts) {
    let _ = TIMEOUTS.set(t);
}

/// The process's timeouts (the defaults until `set`).
pub fn get() -> UpstreamTimeouts {
    TIMEOUTS.get().copied().unwrap_or_default()
}
