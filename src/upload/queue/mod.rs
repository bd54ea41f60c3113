//! The durable upload queue: one per gateway, shared by every mount.
//!
//! Where to look: `pending.rs` takes jobs in (enqueue, a sync upload, supersede, cancel,
//! retarget, resume after a restart) and answers what is pending; `worker.rs` runs them
//! (dispatch to workers, retries, failure to `failed/`); `overwrite.rs` is the safe-overwrite
//! protocol one attempt follows on 123 (temporary name, then the swap).
//!
//! A PUT is answered once its body is spooled and its job manifest is on disk; the upload to
//! 123 runs here, in the background, and resumes after a restart. Every upload, of a new file
//! or an overwrite, goes to a temporary name only this job uses, in the same folder; only once
//! 123 has the whole file is the old one (if any) trashed and the new one renamed. So nothing
//! depends on what 123's `create` does with a taken name (docs/123.md, open §11: refuse, keep both
//! as `name(1)`, or replace, perhaps before the new file is complete): a new file whose name
//! someone takes meanwhile, and an overwrite, take the same path, and no `name(1)` copy is
//! ever made. Each step is persisted before it starts, so a crash between steps leaves both
//! files (the old one perhaps in the recycle bin), never neither.
//!
//! At most one job exists per target (mount, folder, name): a newer one supersedes the older.
//! A job's target may change while it runs (a MOVE of the pending file); every step re-reads
//! it under the job's step lock, which `retarget` and `cancel` take too.

mod overwrite;
mod pending;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use unicode_normalization::UnicodeNormalization;

use super::spool::{Spool, SpooledFile};
use super::store::{Dirs, JobId, Phase, Record};
use crate::backend::{Backend, Entry, Error, UploadOptions};

/// Default attempts of one background job before it counts as failed for good: with the
/// default 5 s first retry, about 10 minutes of trying.
const MAX_ATTEMPTS: u32 = 8;
/// Longest wait between two attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(600);
/// How long removing a cancelled job's partial result from 123 may take before it is left
/// (hidden under its temporary name) and logged.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often one job may find its name taken by someone else mid-way and decide again.
const MAX_REDECIDE: u32 = 3;
/// How often a running upload logs its progress.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);

/// How the queue runs.
#[derive(Clone)]
pub struct QueueConfig {
    /// `<state_dir>/queue`, `/spool` and `/failed` live here.
    pub state_dir: PathBuf,
    /// Uploads running at once.
    pub workers: usize,
    /// Slices in parallel, complete polling, progress.
    pub upload: UploadOptions,
    /// Slices in parallel per mount (its `upload_slices`); mounts not named use
    /// `upload.parallel_slices`.
    pub mount_slices: HashMap<String, usize>,
    /// Wait before the first retry of a failed attempt; doubled each time up to 10 minutes.
    pub retry_backoff: Duration,
    /// Byte budget of the spool the queue hands out (`spool()`).
    pub spool_max: u64,
    /// Attempts of a background job before it fails for good (at least 1).
    pub max_attempts: u32,
}

impl QueueConfig {
    /// The defaults: 2 workers, 3 slices in parallel, 5 s first retry, a 10 GiB spool.
    pub fn new(state_dir: PathBuf) -> Self {
        QueueConfig {
            state_dir,
            workers: 2,
            upload: UploadOptions::default(),
            mount_slices: HashMap::new(),
            retry_backoff: Duration::from_secs(5),
            spool_max: 10 << 30,
            max_attempts: MAX_ATTEMPTS,
        }
    }
}

/// A spooled file to upload as `name` (123-side) into folder `parent_id` of `mount`.
#[derive(Debug)]
pub struct NewJob {
    pub mount: String,
    pub parent_id: u64,
    pub name: String,
    pub file: SpooledFile,
    /// The client's modification time, shown while the file is pending.
    pub modified: SystemTime,
}

/// A file that is queued or uploading: listings show it and GETs read it from `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFile {
    pub name: String,
    pub size: u64,
    pub md5: String,
    /// The spooled content.
    pub path: PathBuf,
    pub modified: SystemTime,
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting for a worker or for a retry.
    pub queued: usize,
    pub running: usize,
    /// Jobs that gave up since start (kept under `failed/`).
    pub failed: u64,
    /// Jobs that finished since start.
    pub completed: u64,
    /// Bytes sent to 123 and confirmed (instant uploads send none).
    pub bytes_uploaded: u64,
    /// fsyncs of the `queue/` folder since start: manifests written together share one
    /// (group commit), so this grows slower than the number of manifest writes.
    pub manifest_syncs: u64,
}

/// How many ended jobs `states` remembers.
const RECENT_MAX: usize = 256;

/// A job that ended: its target and whether it landed.
#[derive(Clone, Debug)]
struct Ended {
    mount: String,
    parent: u64,
    name: String,
    done: bool,
}

/// A listener of `on_change`: (mount name, parent folder id).
pub type ChangeFn = Arc<dyn Fn(&str, u64) + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// In `ready`, waiting for a worker.
    Queued,
    /// Waiting out a retry back-off.
    Waiting,
    Running,
}

/// A task running a job: how to stop it and how to know it stopped.
struct Run {
    abort: AbortHandle,
    done: watch::Receiver<()>,
}

struct Job {
    record: Record,
    /// Holds the spool bytes counted while the job lives.
    file: SpooledFile,
    status: Status,
    run: Option<Run>,
    /// Held by each step that decides from, or changes, where the file is on 123.
    step: Arc<tokio::sync::Mutex<()>>,
    /// Serialises manifest writes so the last one always holds the latest record.
    persist: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<JobId, Job>,
    ready: VecDeque<JobId>,
}

/// The queue. Built by `start`, shared as `Arc`; `shutdown` stops it.
pub struct UploadQueue {
    me: Weak<UploadQueue>,
    dirs: Dirs,
    workers: usize,
    upload: UploadOptions,
    mount_slices: HashMap<String, usize>,
    retry_backoff: Duration,
    max_attempts: u32,
    backends: HashMap<String, Arc<dyn Backend>>,
    spool: Arc<Spool>,
    state: Mutex<State>,
    /// Serialises enqueue, cancel and retarget, so one target never has two jobs.
    admin: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    listeners: Mutex<Vec<ChangeFn>>,
    /// The last jobs that ended, for the page's queue view (`states`).
    recent: Mutex<VecDeque<Ended>>,
    tasks: Mutex<Vec<AbortHandle>>,
    closed: AtomicBool,
    completed: AtomicU64,
    failed: AtomicU64,
    bytes: Arc<AtomicU64>,
}

impl UploadQueue {
    /// Loads persisted jobs, sweeps stale spool/temp files that no job references, and starts
    /// workers. Jobs of mounts missing from `backends` stay on disk untouched.
    pub async fn start(
        cfg: QueueConfig,
        backends: HashMap<String, Arc<dyn Backend>>,
    ) -> anyhow::Result<Arc<UploadQueue>> {
        let dirs = Dirs::new(&cfg.state_dir);
        let records = dirs
            .load()
            .await
            .with_context(|| format!("reading the upload queue in {}", dirs.queue.display()))?;
        let keep = records.iter().map(|r| r.spool_path.clone()).collect();
        let swept = dirs
            .sweep_spool(keep)
            .await
            .with_context(|| format!("sweeping the upload spool in {}", dirs.spool.display()))?;
        if swept > 0 {
            tracing::info!(files = swept, "removed spool files no upload job refers to");
        }
        let spool = Arc::new(Spool::new(dirs.spool.clone(), cfg.spool_max));
        let queue = Arc::new_cyclic(|me| UploadQueue {
            me: me.clone(),
            dirs,
            workers: cfg.workers.max(1),
            upload: cfg.upload,
            mount_slices: cfg.mount_slices,
            retry_backoff: cfg.retry_backoff,
            max_attempts: cfg.max_attempts.max(1),
            backends,
            spool,
            state: Mutex::new(State::default()),
            admin: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            listeners: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::new()),
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: Arc::new(AtomicU64::new(0)),
        });
        queue.resume(records).await;
        let dispatcher = tokio::spawn(queue.clone().dispatch());
        lock(&queue.tasks).push(dispatcher.abort_handle());
        Ok(queue)
    }

    /// Called (with mount name and parent folder id) whenever a job changes what a folder
    /// lists: completed, failed, cancelled, retargeted, so the vfs can invalidate it.
    pub fn on_change(&self, f: ChangeFn) {
        lock(&self.listeners).push(f);
    }

    /// The spool PUT bodies go to (`<state_dir>/spool`), with the queue's files counted.
    pub fn spool(&self) -> Arc<Spool> {
        self.spool.clone()
    }

    pub fn stats(&self) -> QueueStats {
        let st = lock(&self.state);
        let running = st
            .jobs
            .values()
            .filter(|j| j.status == Status::Running)
            .count();
        QueueStats {
            queued: st.jobs.len() - running,
            running,
            failed: self.failed.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes.load(Ordering::Relaxed),
            manifest_syncs: self.dirs.queue_sync.syncs(),
        }
    }

    /// Stops workers (for shutdown and tests) and waits until no job task runs; queued jobs
    /// stay on disk for the next start.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let runs: Vec<Run> = {
            let mut st = lock(&self.state);
            st.jobs.values_mut().filter_map(|j| j.run.take()).collect()
        };
        for run in runs {
            run.abort.abort();
            wait_done(run.done).await;
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn changed(&self, mount: &str, parent: u64) {
        let listeners: Vec<ChangeFn> = lock(&self.listeners).clone();
        for f in listeners {
            f(mount, parent);
        }
    }

    fn job_at(&self, mount: &str, parent: u64, name: &str) -> Option<JobId> {
        let st = lock(&self.state);
        st.jobs
            .values()
            .find(|j| targets(&j.record, mount, parent, name))
            .map(|j| j.record.id.clone())
    }

    fn record(&self, id: &JobId) -> Option<Record> {
        self.with_job(id, |j| j.record.clone())
    }

    fn with_job<T>(&self, id: &JobId, f: impl FnOnce(&mut Job) -> T) -> Option<T> {
        lock(&self.state).jobs.get_mut(id).map(f)
    }

    /// Writes the job's current record (nothing if the job is gone).
    async fn persist(&self, id: &JobId) -> std::io::Result<()> {
        let Some(lock_) = self.with_job(id, |j| j.persist.clone()) else {
            return Ok(());
        };
        let _guard = lock_.lock().await;
        let Some(record) = self.record(id) else {
            return Ok(());
        };
        self.dirs.save(&record).await
    }

    /// Sets a job's phase and persists it before the step it announces starts.
    async fn set_phase(&self, id: &JobId, phase: Phase) -> Result<(), Error> {
        self.with_job(id, |j| j.record.phase = phase)
            .ok_or_else(cancelled)?;
        self.persist(id)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot write the upload manifest: {e}")))
    }
}

fn targets(rec: &Record, mount: &str, parent: u64, name: &str) -> bool {
    rec.mount == mount && rec.parent_id == parent && same_name(&rec.name, name)
}

/// Names compare after NFC, as 123's listings are normalised by the backend.
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.nfc().eq(b.nfc())
}

/// Whether a listed entry is this job's content.
fn holds(e: &Entry, rec: &Record) -> bool {
    !e.is_dir && e.size == rec.size && e.md5.as_deref() == Some(rec.md5.as_str())
}

fn cancelled() -> Error {
    Error::Unavailable("the upload was cancelled".into())
}

async fn wait_done(mut done: watch::Receiver<()>) {
    while done.changed().await.is_ok() {}
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_in_nfc() {
        assert!(same_name("caf\u{e9}", "cafe\u{301}"));
        assert!(!same_name("a", "A"));
    }
}
