//! Running jobs: `workers` at a time, each attempt followed by its outcome (done, retried
//! after a back-off that honours 123's own wait, or failed for good with the content kept
//! under `failed/`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::{cancelled, lock, Job, Run, Status, UploadQueue, MAX_RETRY_WAIT, PROGRESS_LOG_EVERY};
use crate::backend::{Entry, Error, UploadOptions};
use crate::upload::is_temp_name;
use crate::upload::store::{JobId, Phase, Record};

impl UploadQueue {
    /// Hands ready jobs to workers, `workers` at a time.
    pub(super) async fn dispatch(self: Arc<Self>) {
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
    pub(super) fn start_next(self: &Arc<Self>, permit: &mut Option<OwnedSemaphorePermit>) -> bool {
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
    pub(super) async fn run(
        self: Arc<Self>,
        id: JobId,
        sync: bool,
        _done: watch::Sender<()>,
        _permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Entry, Error> {
        let outcome = self.drive(&id).await;
        self.settle(&id, sync, outcome).await
    }

    /// The end of an attempt: done, retried later, or failed for good.
    pub(super) async fn settle(
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
                self.ended(&job.record, true);
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
    pub(super) fn retry_later(&self, id: JobId, wait: Duration) {
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

    /// Moves a job to `failed/` and tells listeners.
    pub(super) async fn fail_job(&self, job: Job, error: &str) {
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

    pub(super) async fn fail_record(&self, record: &Record, error: &str) {
        self.ended(record, false);
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

    /// Upload options whose progress also counts `bytes_uploaded` and logs a progress line
    /// every `PROGRESS_LOG_EVERY` while the upload runs.
    pub(super) fn options(&self, mount: &str, name: &str, size: u64) -> UploadOptions {
        let mut opts = self.upload.clone();
        if let Some(&slices) = self.mount_slices.get(mount) {
            opts.parallel_slices = slices;
        }
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
        Error::TrafficExceeded { resets_at, .. } => Some(crate::traffic::calendar::until(
            *resets_at,
            std::time::SystemTime::now(),
        )),
        _ => None,
    }
}

/// `base` doubled per failed attempt (1-based), capped.
fn retry_wait(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_RETRY_WAIT)
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
}
