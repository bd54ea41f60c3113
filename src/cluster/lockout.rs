//! The login lockout counted for the whole cluster (issue 19): wrong credentials sent to any
//! instance add up per client address, and a lockout holds on every instance, so a guesser
//! cannot multiply its tries by the number of instances behind the balancer.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use super::{Cluster, Unavailable};

/// Counts one failure; at `ARGV[1]` failures the count is dropped and the client is locked out
/// for `ARGV[2]` ms. Answers the count (0 once locked out).
const FAIL: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 0
end
return n
";

static FAIL_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(FAIL));

/// One round trip per authenticated request: 1 when locked out, 2 when failures are counted
/// (a login must clear them), 0 otherwise.
const STATE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 1
end
return redis.call('EXISTS', KEYS[1]) * 2
";

static STATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(STATE));

/// What the cluster knows of a client address before its credentials are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginState {
    /// Locked out on some instance.
    pub locked: bool,
    /// Wrong credentials are counted for it, so a successful login has something to clear.
    pub failures: bool,
}

fn keys(ip: IpAddr) -> (String, String) {
    (
        Cluster::key("login-failures", &ip.to_string()),
        Cluster::key("locked-out", &ip.to_string()),
    )
}

impl Cluster {
    /// Whether `ip` is locked out on any instance, and whether failures are counted for it.
    pub async fn login_state(&self, ip: IpAddr) -> Result<LoginState, Unavailable> {
        let (failures, locked) = keys(ip);
        let state = self
            .run(|mut c| async move {
                STATE_SCRIPT
                    .key(&failures)
                    .key(&locked)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(LoginState {
            locked: state == 1,
            failures: state == 2,
        })
    }

    /// Counts wrong credentials from `ip` (remembered for `window`); true when this one locks
    /// the client out, for `window`, on every instance (the `max`-th within it).
    pub async fn login_failed(
        &self,
        ip: IpAddr,
        max: u32,
        window: Duration,
    ) -> Result<bool, Unavailable> {
        let (failures, locked) = keys(ip);
        let n = self
            .run(|mut c| async move {
                FAIL_SCRIPT
                    .key(&failures)
                    .key(&locked)
                    .arg(max)
                    .arg(window.as_millis() as u64)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(n == 0)
    }

    /// Forgets `ip`'s failures (it logged in).
    pub async fn login_succeeded(&self, ip: IpAddr) -> Result<(), Unavailable> {
        let (failures, _) = keys(ip);
        self.run(|mut c| async move {
            redis::cmd("DEL")
                .arg(&failures)
                .query_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }
}
