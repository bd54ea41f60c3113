//! The queue on disk: one JSON manifest per job under `<state_dir>/queue/`, the source of
//! truth after a crash, and `<state_dir>/failed/<job id>/` for uploads that gave up.
//!
//! A manifest is replaced atomically (temp file, fsync, rename, fsync of the directory), so
//! after a crash it holds either the previous phase or the next one, never a torn mix. The
//! directory fsync is a group commit ([`DirSync`]): manifests written together share one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::queue::NewJob;
use super::spool::{blocking, sync_dir, Spool};
use crate::state_files;

/// The format of a manifest; bumped if a field changes meaning.
const VERSION: u32 = 1;

/// Identifies one upload job. Sortable by creation time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub(super) fn new() -> Self {
        let ms = unix_ms(SystemTime::now());
        JobId(format!("{ms:012x}{:08x}", rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Only ids this queue could have made: they end up in file names.
    fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| JobId(s.to_string()))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far a job got. Each step is persisted before the next starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Phase {
    /// Nothing sent yet.
    Queued,
    /// An upload as `name` in `parent` has been started (it may have completed if we crashed).
    Uploading { parent: u64, name: String },
    /// 123 has the file as entry `id`, named `name` in `parent`; it still has to be put in its
    /// place (old file trashed, renamed, or moved after a retarget).
    Uploaded { id: u64, parent: u64, name: String },
}

/// One job's manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub version: u32,
    pub id: JobId,
    pub mount: String,
    /// Where the file lands (changed by a retarget).
    pub parent_id: u64,
    /// The 123-side name it lands under.
    pub name: String,
    pub size: u64,
    pub md5: String,
    pub spool_path: PathBuf,
    /// The client's modification time (unix ms), shown while the file is pending.
    pub modified_ms: u64,
    pub created_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub phase: Phase,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Record {
    /// The manifest of a new job, in phase `Queued`.
    pub fn new(id: JobId, job: &NewJob) -> Self {
        Record {
            version: VERSION,
            id,
            mount: job.mount.clone(),
            parent_id: job.parent_id,
            name: job.name.clone(),
            size: job.file.size,
            md5: job.file.md5.clone(),
            spool_path: job.file.path.clone(),
            modified_ms: unix_ms(job.modified),
            created_ms: unix_ms(SystemTime::now()),
            attempts: 0,
            phase: Phase::Queued,
            last_error: None,
        }
    }

    pub fn modified(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.modified_ms)
    }
}

/// What `failed/<id>/manifest.json` says about an upload that gave up.
#[derive(Debug, Serialize, Deserialize)]
pub struct FailedManifest {
    pub id: String,
    pub mount: String,
    pub parent_id: u64,
    pub name: String,
    pub size: u64,
    pub md5: String,
    pub error: String,
    /// RFC 3339, UTC.
    pub failed_at: String,
    /// The kept copy of the content, inside the same folder; `None` when it was missing.
    pub data_file: Option<String>,
    /// An entry 123 already has under a temporary name, if the upload got that far.
    pub uploaded_id: Option<u64>,
}

/// How a folder is flushed to disk (`sync_dir`; a stand-in in tests).
type SyncOp = Arc<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;

/// Group commit of one folder's fsync, as databases commit transactions: a caller that
/// renamed or removed a file there takes a ticket, then waits until an fsync that started
/// after its ticket has finished. One fsync runs at a time; the callers that arrive while it
/// runs are all covered by the next one. So PUTs that finish together share one fsync of the
/// queue folder, and each is still answered only once its manifest is durable.
pub(super) struct DirSync {
    dir: PathBuf,
    /// Tickets handed out, each after its caller's change to the folder.
    issued: AtomicU64,
    /// The highest ticket a finished fsync covers; held while an fsync runs.
    covered: tokio::sync::Mutex<u64>,
    /// Folder fsyncs done (for `QueueStats::manifest_syncs`).
    syncs: AtomicU64,
    /// The fsync itself (a stand-in in tests).
    op: SyncOp,
}

impl DirSync {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self::with_op(dir, Arc::new(sync_dir))
    }

    fn with_op(dir: PathBuf, op: SyncOp) -> Self {
        DirSync {
            dir,
            issued: AtomicU64::new(0),
            covered: tokio::sync::Mutex::new(0),
            syncs: AtomicU64::new(0),
            op,
        }
    }

    /// Returns once a change the caller made to the folder before calling is durable.
    pub async fn sync(&self) -> std::io::Result<()> {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            return Ok(());
        }
        // Every ticket issued so far belongs to a change already made: this fsync covers it.
        let upto = self.issued.load(Ordering::SeqCst);
        let (dir, op) = (self.dir.clone(), self.op.clone());
        blocking(move || op(&dir)).await?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *covered = upto;
        Ok(())
    }

    /// Folder fsyncs done so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// The folders of the queue under the state dir.
#[derive(Clone)]
pub(super) struct Dirs {
    pub queue: PathBuf,
    pub spool: PathBuf,
    pub failed: PathBuf,
    /// The group commit of `queue/`.
    pub queue_sync: Arc<DirSync>,
}

impl Dirs {
    pub fn new(state_dir: &Path) -> Self {
        let queue = state_dir.join("queue");
        Dirs {
            queue_sync: Arc::new(DirSync::new(queue.clone())),
            queue,
            spool: state_dir.join("spool"),
            failed: state_dir.join("failed"),
        }
    }

    fn manifest(&self, id: &JobId) -> PathBuf {
        self.queue.join(format!("{id}.json"))
    }

    /// Writes a job's manifest atomically and durably.
    pub async fn save(&self, record: &Record) -> std::io::Result<()> {
        let path = self.manifest(&record.id);
        let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        blocking(move || state_files::write_atomic_deferred(&path, &text).map(|_| ())).await?;
        self.queue_sync.sync().await
    }

    /// Removes a job's manifest (the job is over).
    pub async fn remove(&self, id: &JobId) -> std::io::Result<()> {
        let path = self.manifest(id);
        let removed = blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await?;
        if removed {
            self.queue_sync.sync().await?;
        }
        Ok(())
    }

    /// Every manifest on disk, oldest job first; unreadable ones are set aside and reported.
    pub async fn load(&self) -> std::io::Result<Vec<Record>> {
        let dirs = self.clone();
        blocking(move || {
            state_files::create_dir_all(&dirs.queue)?;
            state_files::create_dir_all(&dirs.spool)?;
            state_files::create_dir_all(&dirs.failed)?;
            let mut records = Vec::new();
            for item in std::fs::read_dir(&dirs.queue)? {
                let path = item?.path();
                let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if file.ends_with(".tmp") {
                    // A manifest write that did not reach its rename.
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let Some(stem) = file.strip_suffix(".json") else {
                    continue;
                };
                let parsed = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
                    .and_then(|r| {
                        if JobId::parse(stem).as_ref() == Some(&r.id) && r.version == VERSION {
                            Ok(r)
                        } else {
                            Err("id or version does not match the file".to_string())
                        }
                    });
                match parsed {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        let aside = path.with_extension("unreadable");
                        tracing::error!(path = %path.display(), error = %e, "unreadable upload manifest; set aside");
                        let _ = std::fs::rename(&path, &aside);
                    }
                }
            }
            records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
            Ok(records)
        })
        .await
    }

    /// Removes spool files that no manifest names (bodies of PUTs cut by a crash, files whose
    /// job finished just before one). Returns how many were removed.
    pub async fn sweep_spool(&self, keep: Vec<PathBuf>) -> std::io::Result<usize> {
        let dir = self.spool.clone();
        blocking(move || {
            let mut removed = 0;
            for item in std::fs::read_dir(&dir)? {
                let path = item?.path();
                if Spool::is_spool_file(&path) && !keep.iter().any(|k| k == &path) {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Moves a job's content to `failed/<id>/` with a manifest saying why.
    pub async fn fail(
        &self,
        record: &Record,
        error: &str,
        uploaded_id: Option<u64>,
    ) -> std::io::Result<PathBuf> {
        let folder = self.failed.join(record.id.as_str());
        let spool_path = record.spool_path.clone();
        let mut manifest = FailedManifest {
            id: record.id.to_string(),
            mount: record.mount.clone(),
            parent_id: record.parent_id,
            name: record.name.clone(),
            size: record.size,
            md5: record.md5.clone(),
            error: error.to_string(),
            failed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            data_file: Some("data".to_string()),
            uploaded_id,
        };
        let out = folder.clone();
        blocking(move || {
            state_files::create_dir_all(&folder)?;
            let data = folder.join("data");
            match move_file(&spool_path, &data) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => manifest.data_file = None,
                Err(e) => return Err(e),
            }
            let text = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
            state_files::write_atomic(&folder.join("manifest.json"), &text)?;
            Ok(())
        })
        .await?;
        Ok(out)
    }
}

/// Rename, or copy and remove when the two paths are on different file systems.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(_) => {
            std::fs::copy(from, to)?;
            std::fs::File::open(to)?.sync_all()?;
            std::fs::remove_file(from)
        }
    }
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: JobId) -> Record {
        let job = NewJob {
            mount: "m".into(),
            parent_id: 7,
            name: "a.txt".into(),
            file: super::super::SpooledFile::unaccounted(
                PathBuf::from("/x.spool"),
                3,
                "abc".into(),
            ),
            modified: SystemTime::UNIX_EPOCH,
        };
        Record::new(id, &job)
    }

    /// Ten manifests written together: every save returns only after a folder fsync that
    /// began after its rename, and they share fewer fsyncs than saves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saves_that_finish_together_share_a_folder_fsync() {
        const N: usize = 10;
        let arrived = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = arrived.clone();
        // The first fsync waits until every save has arrived, as on a slow disk.
        let op: SyncOp = Arc::new(move |_| {
            for _ in 0..10_000 {
                if seen.load(Ordering::SeqCst) >= N {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        });
        let sync = Arc::new(DirSync::with_op(PathBuf::from("/nonexistent"), op));
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (sync, arrived) = (sync.clone(), arrived.clone());
                tokio::spawn(async move {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    sync.sync().await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(
            sync.syncs() >= 1 && sync.syncs() < N as u64,
            "{} fsyncs",
            sync.syncs()
        );
        // Every ticket is covered: a later save needs an fsync of its own.
        let before = sync.syncs();
        sync.sync().await.unwrap();
        assert_eq!(sync.syncs(), before + 1);
    }

    #[tokio::test]
    async fn manifests_round_trip_and_bad_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(dir.path());
        assert!(dirs.load().await.unwrap().is_empty());
        let mut r = record(JobId::new());
        r.phase = Phase::Uploaded {
            id: 5,
            parent: 7,
            name: ".pan123-upload-x-a.txt".into(),
        };
        dirs.save(&r).await.unwrap();
        std::fs::write(dirs.queue.join("zzz.json"), b"{not json").unwrap();
        std::fs::write(dirs.queue.join("old.json.tmp"), b"{}").unwrap();
        let loaded = dirs.load().await.unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].phase, r.phase);
        assert!(dirs.queue.join("zzz.unreadable").exists());
        assert!(!dirs.queue.join("old.json.tmp").exists());
        dirs.remove(&r.id).await.unwrap();
        dirs.remove(&r.id).await.unwrap();
        assert!(dirs.load().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn failed_keeps_the_content_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(dir.path());
        dirs.load().await.unwrap();
        let spooled = dirs.spool.join("f.spool");
        std::fs::write(&spooled, b"abc").unwrap();
        let mut r = record(JobId::new());
        r.spool_path = spooled.clone();
        let folder = dirs
            .fail(&r, "123 answered code 1: 文件上传失败", None)
            .await
            .unwrap();
        assert_eq!(std::fs::read(folder.join("data")).unwrap(), b"abc");
        assert!(!spooled.exists());
        let m: FailedManifest =
            serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            (m.mount.as_str(), m.parent_id, m.name.as_str(), m.size),
            ("m", 7, "a.txt", 3)
        );
        assert!(m.error.contains("文件上传失败"));
    }

    #[test]
    fn job_ids_sort_by_time_and_are_file_safe() {
        let a = JobId::new();
        std::thread::sleep(Duration::from_millis(2));
        let b = JobId::new();
        assert!(a < b);
        assert!(JobId::parse(a.as_str()).is_some());
        assert!(JobId::parse("../x").is_none());
    }
}
