//! The 123 rate budget for the whole cluster: the same two limits `backend::pacer` keeps for one
//! process (at most N call starts per window per key; or starts at least an interval apart), kept
//! in Redis by Lua scripts, which Redis runs atomically, on Redis's own clock so the instances'
//! clocks do not matter. While Redis is unavailable each instance paces itself on its own share
//! of the budget (`Cluster::local_share`).

use std::sync::LazyLock;
use std::time::Duration;

use super::Cluster;
use crate::backend::pacer::Rate;

/// A sliding window log: the start times (µs) of the calls in the window, in a sorted set.
/// Records a start and answers 0 when there is room, else how many ms until the oldest leaves.
const WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.ceil((tonumber(oldest[2]) + window - now) / 1000))
";

/// Spacing: the earliest start (ms) of the next call on the key. Reserves the next slot and
/// answers how many ms to wait for it (0 when it is now).
const SPACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], slot + interval, 'PX', slot - now + interval + 1000)
return slot - now
";

static WINDOW_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(WINDOW));
static SPACE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SPACE));

impl Cluster {
    /// Waits until a call on `key` may start under `rate` for the whole cluster, then records
    /// it: `QpsLimiter::acquire` across instances.
    pub async fn acquire(&self, key: &str, rate: Rate) {
        if rate.calls == 0 {
            return;
        }
        let redis_key = Cluster::key("qps", key);
        let window_ms = rate.window.as_millis() as u64;
        loop {
            let member = format!("{}-{:016x}", self.instance, rand::random::<u64>());
            let k = redis_key.clone();
            let answer = self
                .run(|mut c| async move {
                    WINDOW_SCRIPT
                        .key(&k)
                        .arg(rate.calls)
                        .arg(window_ms)
                        .arg(&member)
                        .invoke_async::<u64>(&mut c)
                        .await
                })
                .await;
            match answer {
                Ok(0) => return,
                Ok(wait_ms) => tokio::time::sleep(Duration::from_millis(wait_ms)).await,
                Err(_) => {
                    let share = rate.share(self.local_share());
                    return self.local.acquire(key, share).await;
                }
            }
        }
    }

    /// Waits until a call on `key` may start at least `interval` after the previous one in the
    /// cluster: `QpsLimiter::space` across instances.
    pub async fn space(&self, key: &str, interval: Duration) {
        let redis_key = Cluster::key("space", key);
        let interval_ms = interval.as_millis() as u64;
        let answer = self
            .run(|mut c| async move {
                SPACE_SCRIPT
                    .key(&redis_key)
                    .arg(interval_ms)
                    .invoke_async::<u64>(&mut c)
                    .await
            })
            .await;
        match answer {
            Ok(wait_ms) => tokio::time::sleep(Duration::from_millis(wait_ms)).await,
            Err(_) => self.local.space(key, interval * self.local_share()).await,
        }
    }
}
