//! Taking jobs in and answering what is pending: enqueue, a sync upload, supersede, cancel
//! and retarget (each under the `admin` lock, so one target never has two jobs), and the jobs
//! a previous run left on disk.

use tokio::sync::watch;

use super::{
    cancelled, holds, lock, same_name, targets, wait_done, Ended, Job, NewJob, PendingFile, Run,
    Status, UploadQueue, CLEANUP_TIMEOUT, RECENT_MAX,
};
use crate::backend::{Entry, Error};
use crate::upload::store::{JobId, Phase, Record};

impl UploadQueue {
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

    /// The uploads of a folder and their state, for the browser page: `queued` or `uploading`
    /// for pending jobs, then `done` or `failed` for the last jobs that ended there.
    pub fn states(&self, mount: &str, parent_id: u64) -> Vec<(String, &'static str)> {
        let mut out: Vec<(String, &'static str)> = {
            let st = lock(&self.state);
            let mut jobs: Vec<&Job> = st
                .jobs
                .values()
                .filter(|j| j.record.mount == mount && j.record.parent_id == parent_id)
                .collect();
            jobs.sort_by(|a, b| a.record.id.cmp(&b.record.id));
            jobs.into_iter()
                .map(|j| {
                    let state = if j.status == Status::Running {
                        "uploading"
                    } else {
                        "queued"
                    };
                    (j.record.name.clone(), state)
                })
                .collect()
        };
        let recent = lock(&self.recent);
        for e in recent
            .iter()
            .filter(|e| e.mount == mount && e.parent == parent_id)
        {
            if !out.iter().any(|(n, _)| *n == e.name) {
                out.push((e.name.clone(), if e.done { "done" } else { "failed" }));
            }
        }
        out
    }

    /// Remembers that a job ended (the newest first), for `states`.
    pub(super) fn ended(&self, record: &Record, done: bool) {
        let mut recent = lock(&self.recent);
        recent.retain(|e| !targets_ended(e, record));
        recent.push_front(Ended {
            mount: record.mount.clone(),
            parent: record.parent_id,
            name: record.name.clone(),
            done,
        });
        recent.truncate(RECENT_MAX);
    }

    /// The folders (mount, folder id) that have pending files, for publishing them again to
    /// the other instances of a cluster.
    pub fn pending_folders(&self) -> Vec<(String, u64)> {
        let st = lock(&self.state);
        let mut folders: Vec<(String, u64)> = st
            .jobs
            .values()
            .map(|j| (j.record.mount.clone(), j.record.parent_id))
            .collect();
        folders.sort();
        folders.dedup();
        folders
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

    /// DELETE of a folder: cancels every upload queued into it (their files go with the
    /// folder, as they would had they landed). Returns how many there were.
    pub async fn cancel_in(&self, mount: &str, parent_id: u64) -> usize {
        let _admin = self.admin.lock().await;
        let ids: Vec<JobId> = lock(&self.state)
            .jobs
            .iter()
            .filter(|(_, j)| j.record.mount == mount && j.record.parent_id == parent_id)
            .map(|(id, _)| id.clone())
            .collect();
        let mut cancelled = 0;
        for id in ids {
            if self.cancel_job(&id, "its folder was deleted").await {
                cancelled += 1;
            }
        }
        cancelled
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

    /// Why a job for `mount` cannot be taken, if it cannot.
    pub(super) fn refusal(&self, mount: &str) -> Option<String> {
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
    pub(super) async fn admit(
        &self,
        job: NewJob,
    ) -> anyhow::Result<(JobId, tokio::sync::MutexGuard<'_, ()>)> {
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
    pub(super) async fn resume(&self, records: Vec<Record>) {
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

    /// Stops and removes a job, and whatever part of it reached 123. False when it finished
    /// first. Called with `admin` held.
    pub(super) async fn cancel_job(&self, id: &JobId, why: &str) -> bool {
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
        let (mount, parent) = (job.record.mount.clone(), job.record.parent_id);
        self.forget(job).await;
        // The pending entry is gone and nothing landed: the folder lists again.
        self.changed(&mount, parent);
        true
    }

    /// Trashes what a cancelled job left on 123: its uploaded entry, or a file its upload may
    /// have completed just before the cancel.
    pub(super) async fn cleanup_remote(&self, rec: &Record) {
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

    /// Removes a finished or cancelled job's manifest and spool file. Listeners are told by the
    /// caller, when the job leaves the pending list: a second notice after a finished job left
    /// it would make a listing fetched in between stale (one more list call for a client that
    /// came in right after the upload landed).
    pub(super) async fn forget(&self, job: Job) {
        // Waits for a manifest write in flight; later ones find the job gone and skip.
        let _persist = job.persist.lock().await;
        if let Err(e) = self.dirs.remove(&job.record.id).await {
            tracing::warn!(job = %job.record.id, error = %e, "could not remove an upload manifest; the next start will find the job done");
        }
        job.file.clone().discard().await;
        drop(job.file);
    }
}

pub(super) fn pending_file(rec: &Record) -> PendingFile {
    PendingFile {
        name: rec.name.clone(),
        size: rec.size,
        md5: rec.md5.clone(),
        path: rec.spool_path.clone(),
        modified: rec.modified(),
    }
}

fn targets_ended(e: &Ended, record: &Record) -> bool {
    e.mount == record.mount && e.parent == record.parent_id && e.name == record.name
}
