//! What the tests of share and personal (web) mounts share: the web API's endpoint names as
//! the emulator counts them, which mount of a two-mount environment is which, a hang guard,
//! and fault injection / call-count waits.

use std::future::Future;
use std::time::Duration;

use pan123_emulator::{Fault, FaultKind};

use super::TestEnv;

pub const SHARE_LIST: &str = "/b/api/share/get";
pub const SHARE_INFO: &str = "/b/api/share/download/info";
pub const WEB_LIST: &str = "/b/api/file/list/new";
pub const WEB_INFO: &str = "/b/api/file/download_info";
pub const WEB_PROBE: &str = "/b/api/user/info";
/// Per-request hang guard (the client's own timeout is longer).
pub const GUARD: Duration = Duration::from_secs(30);

/// Awaits `fut`, failing the test if it takes longer than the hang guard.
pub async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// Which mount a case runs against: the share at `/s` or the personal account at `/w`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Share,
    Web,
}

impl Kind {
    pub fn mount(self) -> &'static str {
        match self {
            Kind::Share => "/s",
            Kind::Web => "/w",
        }
    }

    /// The listing endpoint.
    pub fn list(self) -> &'static str {
        match self {
            Kind::Share => SHARE_LIST,
            Kind::Web => WEB_LIST,
        }
    }

    /// The download-link endpoint.
    pub fn info(self) -> &'static str {
        match self {
            Kind::Share => SHARE_INFO,
            Kind::Web => WEB_INFO,
        }
    }
}

/// Arms one fault on `endpoint`.
pub fn inject(env: &TestEnv, endpoint: &str, kind: FaultKind) {
    env.emu.inject(Fault {
        endpoint: endpoint.into(),
        kind,
    });
}

/// Waits (bounded) until the emulator has seen `calls` calls of `endpoint`.
pub async fn settle(env: &TestEnv, endpoint: &str, calls: u64) {
    for _ in 0..400 {
        if env.emu.stats().calls(endpoint) >= calls {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the emulator never saw {calls} calls of {endpoint}");
}
