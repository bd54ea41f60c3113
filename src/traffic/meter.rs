//! The traffic meter: bytes downloaded from 123 this calendar month (China time), per mount and
//! per `[[clients]]` row, and the budgets (`traffic_budget`) checked against it.
//!
//! Counted are the bytes the gateway proxies (as they pass, so a budget stops a stream at the
//! byte) and, for a redirect, the bytes the client was sent to fetch: the range's length for a
//! `Range` request, else the file's size (an estimate: the client may stop early). A redirect
//! that would cross a budget is refused whole; a proxied stream is cut at the budget's last
//! byte. The month's counts are written to `state_dir/traffic.json` at most every
//! [`FLUSH_INTERVAL`] and at shutdown, so a restart keeps them; the month turns at midnight of
//! the 1st, China time, and the counts start again from zero.
//!
//! The meter is per gateway process: two gateways in front of one account count separately.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::calendar::Month;
use crate::clock::Clock;

/// How often changed counts are written to `state_dir` (and once more at shutdown).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The meter's file in `state_dir`.
const FILE_NAME: &str = "traffic.json";
/// A meter file larger than this is not read (it holds a few counters).
const FILE_CAP: u64 = 1 << 20;

/// The month's counts.
#[derive(Debug)]
struct Counts {
    month: Month,
    /// When `month` starts and ends: a time inside them is in `month` without working out
    /// the calendar date (every download asks).
    span: (SystemTime, SystemTime),
    mounts: HashMap<String, u64>,
    clients: HashMap<String, u64>,
}

/// The file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    month: String,
    #[serde(default)]
    mounts: BTreeMap<String, u64>,
    #[serde(default)]
    clients: BTreeMap<String, u64>,
}

/// Why a download may not go ahead: a budget is used up (or would be crossed) until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The end of the month, China time.
    pub until: SystemTime,
    /// `traffic_budget` of "mount /x" or "client row \"Kodi\"", for the message.
    pub whose: String,
}

/// The budgets one download is counted against: its mount's, and its client row's if one
/// matched.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The mount's path (shared with the mount: a download clones no string).
    pub mount: Arc<str>,
    pub mount_budget: Option<u64>,
    /// The matching `[[clients]]` row's pattern and budget.
    pub client: Option<(String, Option<u64>)>,
}

/// One gateway's meter. Shared by every request (`Arc`).
#[derive(Debug)]
pub struct Meter {
    clock: Clock,
    file: Option<PathBuf>,
    counts: Mutex<Counts>,
    /// Counts changed since the last write.
    dirty: AtomicBool,
    /// Mounts whose downloads 123 refused with 5113/5114, and until when (not persisted:
    /// 123 says it again).
    quota: Mutex<HashMap<String, SystemTime>>,
}

/// Whose budget is the tightest: the mount's or the client row's.
#[derive(Clone, Copy, Debug)]
enum Whose {
    Mount,
    Client,
}

impl Meter {
    /// A meter reading the counts `state_dir` holds for the current month (none without a
    /// `state_dir`, or for another month).
    pub fn new(clock: Clock, state_dir: Option<&std::path::Path>) -> Self {
        let file = state_dir.map(|d| d.join(FILE_NAME));
        let month = Month::of(clock.system());
        let mut counts = Counts {
            month,
            span: (month.start(), month.end()),
            mounts: HashMap::new(),
            clients: HashMap::new(),
        };
        if let Some(saved) = file.as_deref().and_then(load) {
            if Month::parse(&saved.month) == Some(month) {
                counts.mounts = saved.mounts.into_iter().collect();
                counts.clients = saved.clients.into_iter().collect();
            }
        }
        Self {
            clock,
            file,
            counts: Mutex::new(counts),
            dirty: AtomicBool::new(false),
            quota: Mutex::default(),
        }
    }

    /// The counts of the current month, turned over first if the month has changed.
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.system();
        if now < c.span.0 || now >= c.span.1 {
            let month = Month::of(now);
            c.span = (month.start(), month.end());
            if c.month != month {
                c.month = month;
                c.mounts.clear();
                c.clients.clear();
                self.dirty.store(true, Ordering::Relaxed);
            }
        }
        c
    }

    /// The bytes each budget of `scope` has left: the smallest, and whose it is (`None` when
    /// no budget applies). Called for every proxied chunk, so whose budget it is stays a
    /// flag until a refusal needs its name.
    fn left(c: &Counts, scope: &Scope) -> Option<(u64, Whose)> {
        let mut least: Option<(u64, Whose)> = None;
        let mut consider = |used: u64, budget: Option<u64>, whose: Whose| {
            if let Some(budget) = budget {
                let left = budget.saturating_sub(used);
                if least.as_ref().is_none_or(|(l, _)| left < *l) {
                    least = Some((left, whose));
                }
            }
        };
        consider(
            c.mounts.get(&*scope.mount).copied().unwrap_or(0),
            scope.mount_budget,
            Whose::Mount,
        );
        if let Some((row, budget)) = &scope.client {
            consider(
                c.clients.get(row).copied().unwrap_or(0),
                *budget,
                Whose::Client,
            );
        }
        least
    }

    fn refused(&self, c: &Counts, scope: &Scope, whose: Whose) -> Refused {
        let whose = match (whose, &scope.client) {
            (Whose::Client, Some((row, _))) => format!("client row \"{row}\""),
            _ => format!("mount {}", scope.mount),
        };
        Refused {
            until: c.month.end(),
            whose,
        }
    }

    fn add(&self, c: &mut Counts, scope: &Scope, n: u64) {
        if n == 0 {
            return;
        }
        // The key is cloned only the first time a mount or row counts this month.
        match c.mounts.get_mut(&*scope.mount) {
            Some(v) => *v += n,
            None => {
                c.mounts.insert(scope.mount.to_string(), n);
            }
        }
        if let Some((row, _)) = &scope.client {
            match c.clients.get_mut(row) {
                Some(v) => *v += n,
                None => {
                    c.clients.insert(row.clone(), n);
                }
            }
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// May a download of `scope` start at all: refused once a budget is used up.
    pub fn admit(&self, scope: &Scope) -> Result<(), Refused> {
        let c = self.counts();
        match Self::left(&c, scope) {
            Some((0, whose)) => Err(self.refused(&c, scope, whose)),
            _ => Ok(()),
        }
    }

    /// Counts `n` bytes a redirect sends the client to fetch, all or nothing: refused when they
    /// would cross a budget.
    pub fn reserve(&self, scope: &Scope, n: u64) -> Result<(), Refused> {
        let mut c = self.counts();
        match Self::left(&c, scope) {
            Some((0, whose)) => return Err(self.refused(&c, scope, whose)),
            Some((left, whose)) if n > left => return Err(self.refused(&c, scope, whose)),
            _ => {}
        }
        self.add(&mut c, scope, n);
        Ok(())
    }

    /// Counts up to `n` proxied bytes: as many as every budget allows (all of them without a
    /// budget). Fewer than `n` means the stream must stop there.
    pub fn take(&self, scope: &Scope, n: u64) -> u64 {
        let mut c = self.counts();
        let allowed = match Self::left(&c, scope) {
            Some((left, _)) => n.min(left),
            None => n,
        };
        self.add(&mut c, scope, allowed);
        allowed
    }

    /// Gives back bytes reserved for a redirect that was not sent (the link failed).
    pub fn refund(&self, scope: &Scope, n: u64) {
        let mut c = self.counts();
        if let Some(v) = c.mounts.get_mut(&*scope.mount) {
            *v = v.saturating_sub(n);
        }
        if let Some((row, _)) = &scope.client {
            if let Some(v) = c.clients.get_mut(row) {
                *v = v.saturating_sub(n);
            }
        }
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The current month and a mount's bytes in it.
    pub fn mount_bytes(&self, mount: &str) -> (Month, u64) {
        let c = self.counts();
        (c.month, c.mounts.get(mount).copied().unwrap_or(0))
    }

    /// Every client row's bytes this month, by pattern.
    pub fn client_bytes(&self) -> Vec<(String, u64)> {
        let c = self.counts();
        let mut rows: Vec<(String, u64)> = c.clients.iter().map(|(k, v)| (k.clone(), *v)).collect();
        rows.sort();
        rows
    }

    /// When the current month ends (China time): when budgets start again.
    pub fn month_end(&self) -> SystemTime {
        self.counts().month.end()
    }

    /// Notes that 123 refused a download of `mount` for its traffic quota until `until`.
    pub fn quota_exhausted(&self, mount: &str, until: SystemTime) {
        self.quota
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(mount.to_string(), until);
    }

    /// Notes that 123 handed out a download link for `mount` again.
    pub fn quota_available(&self, mount: &str) {
        let mut q = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        if !q.is_empty() {
            q.remove(mount);
        }
    }

    /// Until when 123's quota is used up for `mount`, if it is now.
    pub fn quota_until(&self, mount: &str) -> Option<SystemTime> {
        let now = self.clock.system();
        self.quota
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(mount)
            .copied()
            .filter(|until| *until > now)
    }

    /// Writes the counts to `state_dir` if they changed since the last write.
    pub fn flush(&self) {
        let Some(file) = &self.file else {
            return;
        };
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let saved = {
            let c = self.counts();
            Saved {
                month: c.month.to_string(),
                mounts: c.mounts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                clients: c.clients.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            }
        };
        let bytes = match serde_json::to_vec(&saved) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = crate::state_files::write_atomic(file, &bytes) {
            self.dirty.store(true, Ordering::Relaxed);
            tracing::warn!(file = %file.display(), error = %e, "cannot save the traffic meter");
        }
    }

    /// Writes changed counts every [`FLUSH_INTERVAL`] while the meter lives.
    pub fn spawn_flusher(self: &Arc<Self>) {
        if self.file.is_none() {
            return;
        }
        let weak: Weak<Meter> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                let Some(meter) = weak.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || meter.flush()).await;
            }
        });
    }
}

/// The saved counts, or `None` (logged) when the file is missing or unreadable.
fn load(path: &std::path::Path) -> Option<Saved> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > FILE_CAP {
        tracing::warn!(file = %path.display(), "the traffic meter file is too large; starting from zero");
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(saved) => Some(saved),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the traffic meter; starting from zero");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(budget: Option<u64>, client: Option<u64>) -> Scope {
        Scope {
            mount: "/m".into(),
            mount_budget: budget,
            client: client.map(|b| ("Kodi".to_string(), Some(b))),
        }
    }

    #[test]
    fn budgets_stop_at_the_byte() {
        let meter = Meter::new(Clock::new(), None);
        let s = scope(Some(100), None);
        assert_eq!(meter.take(&s, 60), 60);
        assert_eq!(meter.take(&s, 60), 40);
        assert_eq!(meter.take(&s, 1), 0);
        assert!(meter.admit(&s).is_err());
        assert_eq!(meter.mount_bytes("/m").1, 100);
    }

    #[test]
    fn a_redirect_that_would_cross_is_refused_whole() {
        let meter = Meter::new(Clock::new(), None);
        let s = scope(Some(100), None);
        assert!(meter.reserve(&s, 70).is_ok());
        let refused = meter.reserve(&s, 40).unwrap_err();
        assert_eq!(refused.whose, "mount /m");
        assert!(meter.reserve(&s, 30).is_ok());
        meter.refund(&s, 30);
        assert_eq!(meter.mount_bytes("/m").1, 70);
    }

    #[test]
    fn a_client_budget_counts_across_mounts_and_only_for_its_row() {
        let meter = Meter::new(Clock::new(), None);
        let kodi = scope(None, Some(50));
        let other = scope(None, None);
        assert_eq!(meter.take(&kodi, 80), 50);
        assert!(meter.admit(&kodi).is_err());
        assert!(meter.admit(&other).is_ok());
        assert_eq!(meter.take(&other, 80), 80);
        assert_eq!(meter.client_bytes(), vec![("Kodi".to_string(), 50)]);
    }

    #[test]
    fn counts_survive_a_restart_and_end_with_the_month() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::new();
        let meter = Meter::new(clock.clone(), Some(dir.path()));
        meter.take(&scope(None, Some(10)), 7);
        meter.flush();
        let again = Meter::new(clock.clone(), Some(dir.path()));
        assert_eq!(again.mount_bytes("/m").1, 7);
        assert_eq!(again.client_bytes(), vec![("Kodi".to_string(), 7)]);
        clock.advance(Duration::from_secs(32 * 86_400));
        assert_eq!(again.mount_bytes("/m").1, 0);
        let later = Meter::new(clock, Some(dir.path()));
        assert_eq!(later.mount_bytes("/m").1, 0);
    }
}
