//! Call and byte counters, so tests can assert on upstream traffic ("HEAD made zero link calls").

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;
use std::time::Instant;

/// Distinct User-Agents kept per endpoint; more are not recorded (a bound, not a sample).
const MAX_USER_AGENTS: usize = 16;

use serde::{Deserialize, Serialize};

/// A snapshot of the counters (also the JSON of `GET /__emulator/stats`).
///
/// Keys: URL path for API endpoints (`/api/v2/file/list`, `/b/api/share/get`), short words for
/// download and upload hosts (`cdn`, `direct`, `web-pro`, `s3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests per endpoint, except those refused with 429.
    pub calls: BTreeMap<String, u64>,
    /// Requests refused with 429 (QPS limiter or an injected fault).
    pub refused: BTreeMap<String, u64>,
    /// Requests for an endpoint that reached another host's listener (answered 404, counted
    /// nowhere else). A correct client leaves this empty.
    #[serde(default)]
    pub wrong_host: BTreeMap<String, u64>,
    /// Body bytes sent by the download hosts, all together.
    pub bytes_served: u64,
    /// Body bytes sent, per download host word.
    pub bytes: BTreeMap<String, u64>,
    /// Access tokens valid now.
    pub live_tokens: usize,
    /// Access tokens issued since start (or the last reset).
    pub tokens_issued: u64,
    /// Distinct `User-Agent` values seen per endpoint (`""` = none sent), at most 16 each.
    #[serde(default)]
    pub user_agents: BTreeMap<String, BTreeSet<String>>,
    /// The most requests of one endpoint in flight at once (from arrival, injected latency
    /// included, to the answer): how many slices or parts a client sends in parallel.
    #[serde(default)]
    pub max_in_flight: BTreeMap<String, u64>,
}

impl Stats {
    /// Calls of one endpoint (0 if none).
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.calls.get(endpoint).copied().unwrap_or(0)
    }

    /// 429 refusals of one endpoint (0 if none).
    pub fn refused(&self, endpoint: &str) -> u64 {
        self.refused.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests for `endpoint` sent to another host (0 if none).
    pub fn wrong_host(&self, endpoint: &str) -> u64 {
        self.wrong_host.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests sent to the wrong host, all endpoints together.
    pub fn wrong_host_total(&self) -> u64 {
        self.wrong_host.values().sum()
    }

    /// The distinct User-Agents seen on one endpoint (empty if no call).
    pub fn user_agents(&self, endpoint: &str) -> Vec<String> {
        self.user_agents
            .get(endpoint)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The most requests of `endpoint` in flight at once (0 if none).
    pub fn max_in_flight(&self, endpoint: &str) -> u64 {
        self.max_in_flight.get(endpoint).copied().unwrap_or(0)
    }

    /// Bytes served by one download host word (0 if none).
    pub fn bytes(&self, host: &str) -> u64 {
        self.bytes.get(host).copied().unwrap_or(0)
    }
}

/// Arrival times kept per endpoint (the oldest are dropped beyond it).
const TIMES_PER_ENDPOINT: usize = 10_000;

/// Milliseconds since the first call counted in this process: a monotonic time line shared by
/// every emulator, so a test can compare arrivals (pacing) across endpoints and hosts.
fn millis_now() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The live counters behind `Stats`.
#[derive(Debug, Default)]
pub struct Counters {
    calls: BTreeMap<String, u64>,
    /// Arrival of each counted call per endpoint, in `millis_now` (at most
    /// `TIMES_PER_ENDPOINT`, the latest).
    times: BTreeMap<String, VecDeque<u64>>,
    refused: BTreeMap<String, u64>,
    wrong_host: BTreeMap<String, u64>,
    bytes: BTreeMap<String, u64>,
    bytes_served: u64,
    user_agents: BTreeMap<String, BTreeSet<String>>,
    in_flight: BTreeMap<String, u64>,
    max_in_flight: BTreeMap<String, u64>,
    tokens_issued_base: u64,
    /// CDN traffic of the current UTC+8 day, for the daily traffic cap.
    traffic_day: i64,
    traffic_today: u64,
}

impl Counters {
    /// Count one call.
    pub fn call(&mut self, endpoint: &str) {
        *self.calls.entry(endpoint.to_string()).or_default() += 1;
        let times = self.times.entry(endpoint.to_string()).or_default();
        if times.len() == TIMES_PER_ENDPOINT {
            times.pop_front();
        }
        times.push_back(millis_now());
    }

    /// When the counted calls of `endpoint` arrived (monotonic milliseconds, oldest first).
    pub fn call_times(&self, endpoint: &str) -> Vec<u64> {
        self.times
            .get(endpoint)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Record the User-Agent of a request to `endpoint`.
    pub fn user_agent(&mut self, endpoint: &str, user_agent: &str) {
        let seen = self.user_agents.entry(endpoint.to_string()).or_default();
        if seen.len() < MAX_USER_AGENTS && !seen.contains(user_agent) {
            seen.insert(user_agent.to_string());
        }
    }

    /// A request of `endpoint` arrived; `leave` is called when it is answered.
    pub fn enter(&mut self, endpoint: &str) {
        let now = self.in_flight.entry(endpoint.to_string()).or_default();
        *now += 1;
        let now = *now;
        let max = self.max_in_flight.entry(endpoint.to_string()).or_default();
        *max = (*max).max(now);
    }

    /// A request of `endpoint` was answered (or dropped).
    pub fn leave(&mut self, endpoint: &str) {
        if let Some(n) = self.in_flight.get_mut(endpoint) {
            *n = n.saturating_sub(1);
        }
    }

    /// Count one 429 refusal.
    pub fn refuse(&mut self, endpoint: &str) {
        *self.refused.entry(endpoint.to_string()).or_default() += 1;
    }

    /// Count one request sent to the wrong host.
    pub fn wrong_host(&mut self, endpoint: &str) {
        *self.wrong_host.entry(endpoint.to_string()).or_default() += 1;
    }

    /// Count body bytes sent by a download host on day `day`.
    pub fn served(&mut self, host: &str, n: u64, day: i64) {
        *self.bytes.entry(host.to_string()).or_default() += n;
        self.bytes_served += n;
        if host == "cdn" {
            if self.traffic_day != day {
                self.traffic_day = day;
                self.traffic_today = 0;
            }
            self.traffic_today += n;
        }
    }

    /// CDN bytes served on day `day`.
    pub fn traffic_on(&self, day: i64) -> u64 {
        if self.traffic_day == day {
            self.traffic_today
        } else {
            0
        }
    }

    /// Zero every counter; `tokens_issued` restarts from `issued_now`.
    pub fn reset(&mut self, issued_now: u64) {
        // Requests still in flight leave after the reset: keep counting them.
        let in_flight = std::mem::take(&mut self.in_flight);
        *self = Counters {
            in_flight,
            tokens_issued_base: issued_now,
            ..Counters::default()
        };
    }

    /// A snapshot, with token numbers supplied by the token store.
    pub fn snapshot(&self, live_tokens: usize, issued_total: u64) -> Stats {
        Stats {
            calls: self.calls.clone(),
            refused: self.refused.clone(),
            wrong_host: self.wrong_host.clone(),
            bytes_served: self.bytes_served,
            bytes: self.bytes.clone(),
            live_tokens,
            tokens_issued: issued_total.saturating_sub(self.tokens_issued_base),
            user_agents: self.user_agents.clone(),
            max_in_flight: self.max_in_flight.clone(),
        }
    }
}
