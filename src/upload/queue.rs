//! The durable upload queue: one per gateway, shared by every mount.
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

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{watch, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use unicode_normalization::UnicodeNormalization;

use super::spool::{Spool, SpooledFile};
use super::store::{Dirs, JobId, Phase, Record};
use super::{is_temp_name, temp_name};
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
    retry_backoff: Duration,
    max_attempts: u32,
    backends: HashMap<String, Arc<dyn Backend>>,
    spool: Arc<Spool>,
    state: Mutex<State>,
    /// Serialises enqueue, cancel and retarget, so one target never has two jobs.
    admin: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    listeners: Mutex<Vec<ChangeFn>>,
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
            retry_backoff: cfg.retry_backoff,
            max_attempts: cfg.max_attempts.max(1),
            backends,
            spool,
            state: Mutex::new(State::default()),
            admin: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            listeners: Mutex::new(Vec::new()),
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

    /// Durably records the job (fsync of the manifest) and returns; the upload runs in the
    /// background. A queued or running job for the same (mount, parent, name) is superseded
    /// (cancelled, its spool removed): Explorer's empty PUT then real PUT costs one upload.
    /// When the job cannot be taken, its spooled file is removed (the caller answers with an
    /// error, so the body is of no further use).
    pub async fn enqueue(&self, job: NewJob) -> anyhow::Result<JobId> {
        if let Some(problem) = self.refusal(&job.mount) {
            job.file.discard().await;
            anyhow::bail!("{problem}");
        }
        let (id, _admin) = self.admit(job).await?;
        {
            let mut st = lock(&self.state);
            st.ready.push_back(id.clone());
        }
        self.wake.notify_one();
        Ok(id)
    }

    /// Runs the job now and returns when 123 reports the file complete (upload = "sync"),
    /// with the same safe overwrite. A failure keeps the content under `failed/`.
    pub async fn upload_now(&self, job: NewJob) -> Result<Entry, Error> {
        let me = self.me.upgrade();
        if let Some(problem) = self.refusal(&job.mount) {
            job.file.discard().await;
            return Err(Error::Unavailable(problem));
        }
        let Some(me) = me else {
            job.file.discard().await;
            return Err(Error::Unavailable("the upload queue is shut down".into()));
        };
        let handle = {
            let (id, _admin) = self
                .admit(job)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot record the upload: {e:#}")))?;
            let mut st = lock(&self.state);
            let Some(job) = st.jobs.get_mut(&id) else {
                return Err(cancelled());
            };
            let (tx, rx) = watch::channel(());
            let handle = tokio::spawn(me.run(id, true, tx, None));
            job.status = Status::Running;
            job.run = Some(Run {
                abort: handle.abort_handle(),
                done: rx,
            });
            handle
        };
        // If the caller goes away, the task carries on like a background job.
        match handle.await {
            Ok(result) => result,
            Err(_) => Err(Error::Unavailable(
                "the upload was cancelled or replaced by a newer one".into(),
            )),
        }
    }

    /// Pending (queued or running) files of a folder, for listings and GETs.
    pub fn pending(&self, mount: &str, parent_id: u64) -> Vec<PendingFile> {
        let st = lock(&self.state);
        let mut files: Vec<(&Record, PendingFile)> = st
            .jobs
            .values()
            .filter(|j| j.record.mount == mount && j.record.parent_id == parent_id)
            .map(|j| (&j.record, pending_file(&j.record)))
            .collect();
        files.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        files.into_iter().map(|(_, p)| p).collect()
    }

    /// The pending file `name` of a folder, if any.
    pub fn find(&self, mount: &str, parent_id: u64, name: &str) -> Option<PendingFile> {
        let st = lock(&self.state);
        st.jobs
            .values()
            .find(|j| targets(&j.record, mount, parent_id, name))
            .map(|j| pending_file(&j.record))
    }

    /// DELETE of a pending file: cancels it (removes spool and manifest, and whatever part of
    /// it reached 123). Returns whether one existed.
    pub async fn cancel(&self, mount: &str, parent_id: u64, name: &str) -> bool {
        let _admin = self.admin.lock().await;
        match self.job_at(mount, parent_id, name) {
            Some(id) => self.cancel_job(&id, "cancelled").await,
            None => false,
        }
    }

    /// MOVE of a pending file: changes where it will land (a pending file already there is
    /// superseded). Returns whether one existed.
    pub async fn retarget(
        &self,
        mount: &str,
        parent_id: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
    ) -> bool {
        let _admin = self.admin.lock().await;
        let Some(id) = self.job_at(mount, parent_id, name) else {
            return false;
        };
        if let Some(other) = self.job_at(mount, new_parent, new_name) {
            if other != id {
                self.cancel_job(&other, "superseded by a move").await;
            }
        }
        let Some(step) = self.with_job(&id, |j| j.step.clone()) else {
            return false;
        };
        let _step = step.lock().await;
        let moved = self.with_job(&id, |j| {
            j.record.parent_id = new_parent;
            j.record.name = new_name.to_string();
        });
        if moved.is_none() {
            // It finished while we waited: the caller moves the real file.
            return false;
        }
        if let Err(e) = self.persist(&id).await {
            tracing::error!(job = %id, error = %e, "could not record a moved upload; it may land at the old place after a restart");
        }
        self.changed(mount, parent_id);
        self.changed(mount, new_parent);
        true
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

    /// Why a job for `mount` cannot be taken, if it cannot.
    fn refusal(&self, mount: &str) -> Option<String> {
        if self.is_closed() {
            Some("the upload queue is shut down".to_string())
        } else if !self.backends.contains_key(mount) {
            Some(format!("no writable mount named {mount:?}"))
        } else {
            None
        }
    }

    /// Records a new job durably, supersedes any other job for its target, and returns it with the admin lock held. The manifest of a new job is
    /// written (and fsynced) before the lock is taken, so PUTs of different files do not queue
    /// behind each other's fsync; only superseding an older job of the same target and the
    /// insertion happen under the lock.
    async fn admit(&self, job: NewJob) -> anyhow::Result<(JobId, tokio::sync::MutexGuard<'_, ()>)> {
        let id = JobId::new();
        let record = Record::new(id.clone(), &job);
        if let Err(e) = self.dirs.save(&record).await {
            job.file.discard().await;
            return Err(anyhow::Error::new(e).context("writing the upload manifest"));
        }
        let admin = self.admin.lock().await;
        if let Some(old) = self.job_at(&record.mount, record.parent_id, &record.name) {
            self.cancel_job(&old, "superseded by a newer upload").await;
        }
        tracing::info!(job = %id, mount = %record.mount, parent = record.parent_id, size = record.size, "upload queued");
        lock(&self.state).jobs.insert(
            id.clone(),
            Job {
                record,
                file: job.file,
                status: Status::Queued,
                run: None,
                step: Default::default(),
                persist: Default::default(),
            },
        );
        Ok((id, admin))
    }

    /// Takes jobs loaded from disk into the queue.
    async fn resume(&self, records: Vec<Record>) {
        for record in records {
            if !self.backends.contains_key(&record.mount) {
                tracing::warn!(job = %record.id, mount = %record.mount, "upload job for a mount that is not configured (or not writable); left on disk");
                continue;
            }
            let present = tokio::fs::metadata(&record.spool_path)
                .await
                .is_ok_and(|m| m.len() == record.size);
            if !present {
                tracing::error!(job = %record.id, path = %record.spool_path.display(), "spooled content of an upload job is missing or damaged");
                self.fail_record(
                    &record,
                    "the spooled content is missing or has the wrong size",
                )
                .await;
                continue;
            }
            let file = self
                .spool
                .adopt(record.spool_path.clone(), record.size, record.md5.clone());
            if let Some(old) = self.job_at(&record.mount, record.parent_id, &record.name) {
                self.cancel_job(&old, "superseded by a newer upload").await;
            }
            tracing::info!(job = %record.id, phase = ?record.phase, "resuming an upload");
            let id = record.id.clone();
            let mut st = lock(&self.state);
            st.jobs.insert(
                id.clone(),
                Job {
                    record,
                    file,
                    status: Status::Queued,
                    run: None,
                    step: Default::default(),
                    persist: Default::default(),
                },
            );
            st.ready.push_back(id);
        }
        self.wake.notify_one();
    }

    /// Hands ready jobs to workers, `workers` at a time.
    async fn dispatch(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.workers));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let mut permit = Some(permit);
            while !self.start_next(&mut permit) {
                self.wake.notified().await;
            }
        }
    }

    /// Starts the next queued job with `permit`; false when none is ready.
    fn start_next(self: &Arc<Self>, permit: &mut Option<OwnedSemaphorePermit>) -> bool {
        if self.is_closed() {
            return false;
        }
        let mut st = lock(&self.state);
        while let Some(id) = st.ready.pop_front() {
            let Some(job) = st.jobs.get_mut(&id) else {
                continue;
            };
            if job.status != Status::Queued {
                continue;
            }
            // Spawned under the state lock: the task's first step waits for it, so `run` is
            // set before the job can do anything a cancel would have to stop.
            let (tx, rx) = watch::channel(());
            let handle = tokio::spawn(self.clone().run(id, false, tx, permit.take()));
            job.status = Status::Running;
            job.run = Some(Run {
                abort: handle.abort_handle(),
                done: rx,
            });
            return true;
        }
        false
    }

    /// One attempt of a job, then its outcome. `_done` is dropped when the task ends (also
    /// when it is aborted), which is how `cancel` knows it stopped.
    async fn run(
        self: Arc<Self>,
        id: JobId,
        sync: bool,
        _done: watch::Sender<()>,
        _permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Entry, Error> {
        let outcome = self.drive(&id).await;
        self.settle(&id, sync, outcome).await
    }

    /// Brings a job from its persisted phase to "the file is in place on 123".
    ///
    /// docs/123.md, open §11: the upload always goes to the job's temporary name, then `place`
    /// swaps it in (a listing and a rename for a new file, plus a trash for an overwrite).
    /// Uploading under the real name first would rely on `create` refusing a taken name.
    async fn drive(&self, id: &JobId) -> Result<(Entry, OwnedMutexGuard<()>), Error> {
        let (mount, step, src) = self
            .with_job(id, |j| {
                (j.record.mount.clone(), j.step.clone(), j.file.source())
            })
            .ok_or_else(cancelled)?;
        let backend = self.backends.get(&mount).ok_or(Error::Unsupported)?.clone();
        // Whether the current phase was entered in this attempt (else a crash or a failed
        // attempt may have left more done on 123 than the manifest says).
        let mut fresh = false;
        let mut redecide = 0;
        loop {
            let guard = step.clone().lock_owned().await;
            let rec = self.record(id).ok_or_else(cancelled)?;
            let temp = temp_name(&rec.id, &rec.name);
            match rec.phase.clone() {
                Phase::Queued => {
                    let phase = Phase::Uploading {
                        parent: rec.parent_id,
                        name: temp,
                    };
                    self.set_phase(id, phase).await?;
                }
                Phase::Uploading { parent, name } => {
                    drop(guard);
                    if !fresh {
                        // The upload may have completed before a crash or a lost answer.
                        let children = backend.list(parent).await?;
                        if let Some(e) = children
                            .iter()
                            .find(|e| same_name(&e.name, &name) && holds(e, &rec))
                        {
                            let phase = Phase::Uploaded {
                                id: e.id,
                                parent,
                                name,
                            };
                            self.set_phase(id, phase).await?;
                            fresh = true;
                            continue;
                        }
                    }
                    if !is_temp_name(&name) {
                        // A manifest from before every upload went to a temporary name.
                        let phase = Phase::Uploading { parent, name: temp };
                        self.set_phase(id, phase).await?;
                        fresh = true;
                        continue;
                    }
                    match backend
                        .upload(
                            parent,
                            &name,
                            &src,
                            &self.options(&rec.mount, &name, src.size),
                        )
                        .await
                    {
                        Ok(e) => {
                            self.set_phase(
                                id,
                                Phase::Uploaded {
                                    id: e.id,
                                    parent,
                                    name,
                                },
                            )
                            .await?
                        }
                        // Something holds our temporary name (a leftover the re-check did
                        // not recognise): decide again from the start.
                        Err(Error::AlreadyExists) if redecide < MAX_REDECIDE => {
                            redecide += 1;
                            self.set_phase(id, Phase::Queued).await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Phase::Uploaded {
                    id: file_id,
                    parent,
                    name,
                } => match self.place(&*backend, &rec, file_id, parent, &name).await {
                    Ok(Placed::Done(entry)) => return Ok((entry, guard)),
                    Ok(Placed::Moved) => {}
                    Ok(Placed::Blocked) => {
                        tracing::error!(job = %id, "a folder has the name this upload should take");
                        return Err(Error::AlreadyExists);
                    }
                    // The uploaded file vanished, or the name was taken again mid-swap.
                    Err(Error::NotFound | Error::AlreadyExists) if redecide < MAX_REDECIDE => {
                        redecide += 1;
                        if !self.still_there(&*backend, file_id, parent, &name).await? {
                            self.set_phase(id, Phase::Queued).await?;
                        }
                    }
                    Err(e) => return Err(e),
                },
            }
            fresh = true;
        }
    }

    /// One step of putting uploaded entry `file_id` (now `name` in `parent`) where the job's
    /// target says. Called with the step lock held.
    async fn place(
        &self,
        backend: &dyn Backend,
        rec: &Record,
        file_id: u64,
        parent: u64,
        name: &str,
    ) -> Result<Placed, Error> {
        let id = &rec.id;
        if parent != rec.parent_id {
            // Retargeted to another folder: move it under a name nobody else has.
            if is_temp_name(name) {
                backend.move_to(&[file_id], rec.parent_id).await?;
                let phase = Phase::Uploaded {
                    id: file_id,
                    parent: rec.parent_id,
                    name: name.to_string(),
                };
                self.set_phase(id, phase).await?;
            } else {
                let temp = temp_name(id, &rec.name);
                backend.rename(file_id, &temp).await?;
                let phase = Phase::Uploaded {
                    id: file_id,
                    parent,
                    name: temp,
                };
                self.set_phase(id, phase).await?;
            }
            return Ok(Placed::Moved);
        }
        if same_name(name, &rec.name) {
            return Ok(Placed::Done(file_entry(file_id, rec)));
        }
        let children = backend.list(parent).await?;
        let old: Vec<&Entry> = children
            .iter()
            .filter(|e| same_name(&e.name, &rec.name) && e.id != file_id)
            .collect();
        if old.iter().any(|e| e.is_dir) {
            return Ok(Placed::Blocked);
        }
        if let [same] = old.as_slice() {
            if holds(same, rec) && is_temp_name(name) {
                // 123 had this very content under the name already: keep that file.
                backend.trash(&[file_id]).await?;
                return Ok(Placed::Done((*same).clone()));
            }
        }
        if !old.is_empty() {
            let ids: Vec<u64> = old.iter().map(|e| e.id).collect();
            tracing::info!(job = %id, old = ?ids, "overwrite: the previous version goes to the recycle bin");
            backend.trash(&ids).await?;
        }
        backend.rename(file_id, &rec.name).await?;
        let phase = Phase::Uploaded {
            id: file_id,
            parent,
            name: rec.name.clone(),
        };
        self.set_phase(id, phase).await?;
        Ok(Placed::Moved)
    }

    /// Whether entry `file_id` is still `name` in `parent`.
    async fn still_there(
        &self,
        backend: &dyn Backend,
        file_id: u64,
        parent: u64,
        name: &str,
    ) -> Result<bool, Error> {
        Ok(backend
            .list(parent)
            .await?
            .iter()
            .any(|e| e.id == file_id && same_name(&e.name, name)))
    }

    /// The end of an attempt: done, retried later, or failed for good.
    async fn settle(
        &self,
        id: &JobId,
        sync: bool,
        outcome: Result<(Entry, OwnedMutexGuard<()>), Error>,
    ) -> Result<Entry, Error> {
        match outcome {
            Ok((entry, guard)) => {
                // Removed under the step lock: a cancel or retarget either came first (and
                // the job is gone) or sees it finished. Listeners hear of it before it leaves
                // the pending list, so no reader finds it in neither place (not pending, and
                // hidden by a listing cached before it landed).
                let job = {
                    let mut st = lock(&self.state);
                    if let Some(j) = st.jobs.get(id) {
                        self.changed(&j.record.mount, j.record.parent_id);
                    }
                    st.jobs.remove(id)
                };
                drop(guard);
                let Some(job) = job else {
                    return Err(cancelled());
                };
                tracing::info!(job = %id, file_id = entry.id, size = entry.size, "upload complete");
                self.forget(job).await;
                // Counted once the manifest and the spool file are gone.
                self.completed.fetch_add(1, Ordering::Relaxed);
                Ok(entry)
            }
            Err(error) => {
                let retry = {
                    let mut st = lock(&self.state);
                    let Some(job) = st.jobs.get_mut(id) else {
                        return Err(error);
                    };
                    job.record.attempts += 1;
                    job.record.last_error = Some(error.to_string());
                    let retry =
                        !sync && retryable(&error) && job.record.attempts < self.max_attempts;
                    if retry {
                        job.status = Status::Waiting;
                        job.run = None;
                    }
                    retry.then_some(job.record.attempts)
                };
                match retry {
                    Some(attempts) => {
                        // 123's own "come back later" is a floor (docs/123.md, open §11).
                        let wait = retry_wait(self.retry_backoff, attempts)
                            .max(server_wait(&error).unwrap_or_default())
                            .min(MAX_RETRY_WAIT);
                        tracing::warn!(job = %id, attempts, retry_in_ms = wait.as_millis() as u64, error = %error, "upload attempt failed; will retry");
                        if let Err(e) = self.persist(id).await {
                            tracing::warn!(job = %id, error = %e, "could not record the failed attempt");
                        }
                        self.retry_later(id.clone(), wait);
                    }
                    None => {
                        let job = lock(&self.state).jobs.remove(id);
                        if let Some(job) = job {
                            tracing::error!(job = %id, attempts = job.record.attempts, error = %error, "upload failed for good; content kept under failed/");
                            self.fail_job(job, &error.to_string()).await;
                        }
                    }
                }
                Err(error)
            }
        }
    }

    /// Puts a waiting job back in line after `wait`.
    fn retry_later(&self, id: JobId, wait: Duration) {
        let Some(me) = self.me.upgrade() else { return };
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let queued = {
                let mut st = lock(&me.state);
                let waiting = st
                    .jobs
                    .get_mut(&id)
                    .filter(|j| j.status == Status::Waiting)
                    .map(|j| j.status = Status::Queued)
                    .is_some();
                if waiting {
                    st.ready.push_back(id);
                }
                waiting
            };
            if queued {
                me.wake.notify_one();
            }
        });
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
    }

    /// Stops and removes a job, and whatever part of it reached 123. False when it finished
    /// first. Called with `admin` held.
    async fn cancel_job(&self, id: &JobId, why: &str) -> bool {
        let Some(step) = self.with_job(id, |j| j.step.clone()) else {
            return false;
        };
        // A step in progress (a trash, a rename) finishes first.
        let _step = step.lock().await;
        let job = {
            let mut st = lock(&self.state);
            st.ready.retain(|r| r != id);
            st.jobs.remove(id)
        };
        let Some(mut job) = job else {
            return false;
        };
        if let Some(run) = job.run.take() {
            run.abort.abort();
            wait_done(run.done).await;
        }
        tracing::info!(job = %id, phase = ?job.record.phase, why, "upload cancelled");
        self.cleanup_remote(&job.record).await;
        self.forget(job).await;
        true
    }

    /// Trashes what a cancelled job left on 123: its uploaded entry, or a file its upload may
    /// have completed just before the cancel.
    async fn cleanup_remote(&self, rec: &Record) {
        let Some(backend) = self.backends.get(&rec.mount) else {
            return;
        };
        let work = async {
            match &rec.phase {
                Phase::Queued => Ok(()),
                Phase::Uploading { parent, name } => {
                    let ids: Vec<u64> = backend
                        .list(*parent)
                        .await?
                        .iter()
                        .filter(|e| same_name(&e.name, name) && holds(e, rec))
                        .map(|e| e.id)
                        .collect();
                    if ids.is_empty() {
                        Ok(())
                    } else {
                        backend.trash(&ids).await
                    }
                }
                Phase::Uploaded { id, .. } => backend.trash(&[*id]).await,
            }
        };
        match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(job = %rec.id, error = %e, "could not remove a cancelled upload's partial file from 123")
            }
            Err(_) => {
                tracing::warn!(job = %rec.id, "removing a cancelled upload's partial file from 123 timed out")
            }
        }
    }

    /// Removes a finished or cancelled job's manifest and spool file; tells listeners.
    async fn forget(&self, job: Job) {
        // Waits for a manifest write in flight; later ones find the job gone and skip.
        let _persist = job.persist.lock().await;
        if let Err(e) = self.dirs.remove(&job.record.id).await {
            tracing::warn!(job = %job.record.id, error = %e, "could not remove an upload manifest; the next start will find the job done");
        }
        job.file.clone().discard().await;
        drop(job.file);
        self.changed(&job.record.mount, job.record.parent_id);
    }

    /// Moves a job to `failed/` and tells listeners.
    async fn fail_job(&self, job: Job, error: &str) {
        let _persist = job.persist.lock().await;
        // A complete upload under a temporary name is ours alone: to the recycle bin with it
        // (the content stays under failed/).
        if matches!(&job.record.phase, Phase::Uploaded { name, .. } if is_temp_name(name)) {
            self.cleanup_remote(&job.record).await;
        }
        // The content leaves the spool: its bytes no longer count.
        drop(job.file);
        self.fail_record(&job.record, error).await;
        self.changed(&job.record.mount, job.record.parent_id);
    }

    async fn fail_record(&self, record: &Record, error: &str) {
        let uploaded = match &record.phase {
            Phase::Uploaded { id, .. } => Some(*id),
            _ => None,
        };
        match self.dirs.fail(record, error, uploaded).await {
            Ok(folder) => {
                tracing::error!(job = %record.id, mount = %record.mount, parent = record.parent_id, folder = %folder.display(), error, "upload failed; content kept")
            }
            Err(e) => {
                tracing::error!(job = %record.id, error = %e, "could not move a failed upload to failed/; it stays queued for the next start");
                self.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if let Err(e) = self.dirs.remove(&record.id).await {
            tracing::warn!(job = %record.id, error = %e, "could not remove a failed upload's manifest");
        }
        // Counted once the content and its manifest are under failed/.
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a job's phase and persists it before the step it announces starts.
    async fn set_phase(&self, id: &JobId, phase: Phase) -> Result<(), Error> {
        self.with_job(id, |j| j.record.phase = phase)
            .ok_or_else(cancelled)?;
        self.persist(id)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot write the upload manifest: {e}")))
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

    /// Upload options whose progress also counts `bytes_uploaded` and logs a progress line
    /// every `PROGRESS_LOG_EVERY` while the upload runs.
    fn options(&self, mount: &str, name: &str, size: u64) -> UploadOptions {
        let mut opts = self.upload.clone();
        let user = opts.progress.take();
        let total = self.bytes.clone();
        let last = AtomicU64::new(0);
        let logged = Mutex::new(std::time::Instant::now());
        let (mount, name) = (mount.to_string(), name.to_string());
        opts.progress = Some(Arc::new(move |done| {
            let before = last.swap(done, Ordering::Relaxed);
            if done > before {
                total.fetch_add(done - before, Ordering::Relaxed);
            }
            let mut at = lock(&logged);
            if at.elapsed() >= PROGRESS_LOG_EVERY && done < size {
                *at = std::time::Instant::now();
                tracing::info!(
                    mount = %mount,
                    name = %name,
                    done,
                    size,
                    percent = done.saturating_mul(100) / size.max(1),
                    "upload progress"
                );
            }
            if let Some(user) = &user {
                user(done);
            }
        }));
        opts
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
}

/// What one step of `place` achieved.
enum Placed {
    /// The file is in place.
    Done(Entry),
    /// A step was made; another follows.
    Moved,
    /// A folder holds the target name: the file cannot replace it.
    Blocked,
}

/// The entry of a job's file once it is in place.
fn file_entry(id: u64, rec: &Record) -> Entry {
    let now = SystemTime::now();
    Entry {
        id,
        name: rec.name.nfc().collect(),
        is_dir: false,
        size: rec.size,
        md5: Some(rec.md5.clone()),
        version: None,
        modified: now,
        created: now,
    }
}

/// Which failures are worth another attempt later.
fn retryable(e: &Error) -> bool {
    match e {
        Error::RateLimited { .. }
        | Error::Auth(_)
        | Error::Unavailable(_)
        | Error::Transport(_)
        | Error::TrafficExceeded { .. } => true,
        // An answer we could not read (a proxy's error page?) may go away; a code 123 chose
        // (文件上传失败, a name it refuses, ...) will not.
        Error::Upstream { code, .. } => *code <= 0,
        Error::NotFound
        | Error::AlreadyExists
        | Error::NotADirectory
        | Error::Unsupported
        | Error::InvalidName(_)
        | Error::TooLarge => false,
    }
}

/// How long 123 asked us to wait, when the failure says so: a `Retry-After` with rate
/// limiting, or the time until the traffic quota resets.
fn server_wait(error: &Error) -> Option<Duration> {
    match error {
        Error::RateLimited { retry_after } => *retry_after,
        Error::TrafficExceeded { retry_after, .. } => Some(*retry_after),
        _ => None,
    }
}

/// `base` doubled per failed attempt (1-based), capped.
fn retry_wait(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_RETRY_WAIT)
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

fn pending_file(rec: &Record) -> PendingFile {
    PendingFile {
        name: rec.name.clone(),
        size: rec.size,
        md5: rec.md5.clone(),
        path: rec.spool_path.clone(),
        modified: rec.modified(),
    }
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
    fn retry_waits_double_and_cap() {
        let s = Duration::from_secs;
        assert_eq!(retry_wait(s(5), 1), s(5));
        assert_eq!(retry_wait(s(5), 2), s(10));
        assert_eq!(retry_wait(s(5), 4), s(40));
        assert_eq!(retry_wait(s(5), 30), MAX_RETRY_WAIT);
        let limited = Error::RateLimited {
            retry_after: Some(s(42)),
        };
        assert_eq!(server_wait(&limited), Some(s(42)));
        assert_eq!(server_wait(&Error::Unavailable("x".into())), None);
        assert_eq!(retry_wait(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn permanent_and_retryable_errors() {
        let up = |code| Error::Upstream {
            code,
            message: "文件上传失败".into(),
            trace_id: String::new(),
        };
        assert!(!retryable(&up(1)));
        assert!(retryable(&up(-1)));
        assert!(retryable(&Error::Transport("cut".into())));
        assert!(retryable(&Error::RateLimited { retry_after: None }));
        assert!(!retryable(&Error::TooLarge));
        assert!(!retryable(&Error::NotFound));
    }

    #[test]
    fn names_compare_in_nfc() {
        assert!(same_name("caf\u{e9}", "cafe\u{301}"));
        assert!(!same_name("a", "A"));
    }
}
