//! Upstream timeouts (`server.upstream_*`): read from the config and handed to every client that
//! talks to 123 (the API clients, the download proxy and the shared HTTP client) when it is
//! built, inside [`crate::backend::Upstream`]. Never process-wide: two gateways in one process
//! keep their own.

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

impl UpstreamTimeouts {
    /// The `server.upstream_*` keys of a config.
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        Self {
            connect: server.upstream_connect_timeout,
            first_byte: server.upstream_first_byte_timeout,
            idle: server.upstream_idle_timeout,
        }
    }
}
