//! The Open backend's writes and the upload queue, driven directly against a real emulator on
//! an ephemeral port: folders, renames, moves, trash, instant copies, sliced uploads with
//! faults and token expiry, safe overwrite, supersede, cancel, retarget and restart.
//!
//! No assertion is on elapsed time; every wait polls a condition with a generous bound.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, OverwriteAt, TakenName};
use pan123_webdav::backend::open::client::OpenClients;
use pan123_webdav::backend::open::{LinkMode, OpenBackend};
use pan123_webdav::backend::{Backend, Error, UploadOptions, UploadSource};
use pan123_webdav::upload::{
    is_temp_name, FailedManifest, NewJob, QueueConfig, Spool, SpoolError, SpooledFile, UploadQueue,
    MAX_FILE_SIZE,
};

const SLICE: u64 = 64 * 1024;
const MOUNT: &str = "open";

const LIST: &str = "/api/v2/file/list";
const CREATE: &str = "/upload/v2/file/create";
const SLICE_EP: &str = "/upload/v2/file/slice";
const COMPLETE: &str = "/upload/v2/file/upload_complete";
const RENAME: &str = "/api/v1/file/name";
const TRASH: &str = "/api/v1/file/trash";
const MOVE: &str = "/api/v1/file/move";

struct Env {
    emu: Emulator,
    backend: Arc<OpenBackend>,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        let mut cfg = EmulatorConfig::default();
        cfg.switches.slice_size = SLICE;
        cfg.switches.complete_pending_polls = 2;
        cfg.switches.complete_poll_interval = Duration::ZERO;
        let emu = Emulator::start(cfg).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Built as src/mount.rs builds it: one shared client per credential.
        let clients = OpenClients::new();
        let http = reqwest::Client::new();
        let client = clients.get(
            &pan123_webdav::backend::Upstream::new(http),
            &emu.base_url(),
            &emu.client_id(),
            &emu.client_secret(),
            Some(dir.path()),
        );
        let backend = Arc::new(OpenBackend::new(client, 0, LinkMode::DownloadInfo));
        Env { emu, backend, dir }
    }

    fn backends(&self) -> HashMap<String, Arc<dyn Backend>> {
        let backend: Arc<dyn Backend> = self.backend.clone();
        HashMap::from([(MOUNT.to_string(), backend)])
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn queue_config(&self) -> QueueConfig {
        let mut c = QueueConfig::new(self.state_dir());
        c.upload.complete_poll_interval = Duration::ZERO;
        c.retry_backoff = Duration::from_millis(5);
        c.spool_max = 1 << 30;
        c.max_attempts = 2;
        c
    }

    async fn queue(&self) -> Arc<UploadQueue> {
        UploadQueue::start(self.queue_config(), self.backends())
            .await
            .unwrap()
    }

    fn calls(&self, ep: &str) -> u64 {
        self.emu.stats().calls(ep)
    }

    /// Whether a latency fault on `ep` has been taken by a request (which is now waiting).
    fn latency_taken(&self, ep: &str) -> bool {
        !self.emu.faults().iter().any(|f| f.endpoint == ep)
    }
}

fn fault(endpoint: &str, kind: FaultKind) -> Fault {
    Fault {
        endpoint: endpoint.to_string(),
        kind,
    }
}

/// Deterministic bytes that do not repeat within a slice.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn md5_hex(b: &[u8]) -> String {
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

async fn spooled(spool: &Spool, bytes: &[u8]) -> SpooledFile {
    let mut w = spool.writer(Some(bytes.len() as u64)).await.unwrap();
    for chunk in bytes.chunks(8 * 1024) {
        w.write(chunk).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn job(q: &UploadQueue, parent: u64, name: &str, bytes: &[u8]) -> NewJob {
    NewJob {
        mount: MOUNT.to_string(),
        parent_id: parent,
        name: name.to_string(),
        file: spooled(&q.spool(), bytes).await,
        modified: SystemTime::now(),
    }
}

/// A local file to hand to `Backend::upload` directly.
fn source(dir: &Path, name: &str, bytes: &[u8]) -> UploadSource {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    UploadSource {
        path,
        size: bytes.len() as u64,
        md5: md5_hex(bytes),
    }
}

fn fast() -> UploadOptions {
    UploadOptions {
        complete_poll_interval: Duration::ZERO,
        ..UploadOptions::default()
    }
}

/// Polls `f` every 25 ms for up to 60 s.
async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A queue with one worker, kept busy by a job whose `create` is held for a while, so that
/// the next jobs stay queued until the test is done with them.
async fn busy_queue(env: &Env) -> Arc<UploadQueue> {
    let mut cfg = env.queue_config();
    cfg.workers = 1;
    let q = UploadQueue::start(cfg, env.backends()).await.unwrap();
    env.emu
        .inject(fault(CREATE, FaultKind::Latency { ms: 700, count: 1 }));
    q.enqueue(job(&q, 0, "blocker.bin", b"blocker").await)
        .await
        .unwrap();
    wait_for("the blocker to hold the worker", || {
        env.latency_taken(CREATE)
    })
    .await;
    q
}

fn no_temp_names(emu: &Emulator, folder: &str) {
    let names = emu.list_names(folder).unwrap();
    assert!(
        !names.iter().any(|n| is_temp_name(n)),
        "temporary names left in {folder}: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_rename_move_trash() {
    let env = Env::new().await;
    let b = &env.backend;
    let a = b.mkdir(0, "a").await.unwrap();
    assert!(a.is_dir && a.name == "a");
    assert_eq!(env.emu.lookup("/a").unwrap().id, a.id);
    assert!(matches!(b.mkdir(0, "a").await, Err(Error::AlreadyExists)));

    let f = env.emu.put_file("/a/f.txt", "hello");
    b.rename(f, "g.txt").await.unwrap();
    assert_eq!(env.emu.read("/a/g.txt").unwrap(), b"hello");
    env.emu.put_file("/a/taken.txt", "x");
    assert!(matches!(
        b.rename(f, "taken.txt").await,
        Err(Error::AlreadyExists)
    ));

    let dest = b.mkdir(0, "b").await.unwrap();
    b.move_to(&[f], dest.id).await.unwrap();
    assert_eq!(env.emu.read("/b/g.txt").unwrap(), b"hello");
    assert!(env.emu.lookup("/a/g.txt").is_none());

    // A folder goes to the trash whole, in one call.
    env.emu.put_file("/a/sub/deep/x.bin", "x");
    env.emu.reset_stats();
    b.trash(&[a.id]).await.unwrap();
    assert_eq!(env.calls(TRASH), 1);
    assert!(env.emu.lookup("/a").is_none());
    assert!(env.emu.entry(a.id).unwrap().trashed);

    // Batches of more than 100 ids are split into calls of at most 100.
    let ids: Vec<u64> = (0..150)
        .map(|i| env.emu.put_file(&format!("/many/{i}.txt"), "m"))
        .collect();
    let c = b.mkdir(0, "c").await.unwrap();
    env.emu.reset_stats();
    b.move_to(&ids, c.id).await.unwrap();
    assert_eq!(env.calls(MOVE), 2);
    assert_eq!(env.emu.list_names("/c").unwrap().len(), 150);
    b.trash(&ids).await.unwrap();
    assert_eq!(env.calls(TRASH), 2);
    assert!(env.emu.list_names("/c").unwrap().is_empty());
    // Nothing to do costs no call.
    b.trash(&[]).await.unwrap();
    assert_eq!(env.calls(TRASH), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_instant_hit_and_miss() {
    let env = Env::new().await;
    let body = data(200_000, 1);
    env.emu.put_file("/src.bin", body.clone());
    let md5 = md5_hex(&body);

    let copy = env
        .backend
        .copy_instant(0, "copy.bin", &md5, body.len() as u64)
        .await
        .unwrap()
        .expect("123 has the content");
    assert_eq!(copy.size, body.len() as u64);
    assert_eq!(env.emu.read("/copy.bin").unwrap(), body);
    assert_eq!(env.emu.lookup("/copy.bin").unwrap().id, copy.id);

    // Unknown content: nothing is created.
    let miss = env
        .backend
        .copy_instant(0, "miss.bin", &md5_hex(b"unknown"), 7)
        .await
        .unwrap();
    assert!(miss.is_none());
    assert!(env.emu.lookup("/miss.bin").is_none());

    // The name must be free.
    assert!(matches!(
        env.backend
            .copy_instant(0, "copy.bin", &md5, body.len() as u64)
            .await,
        Err(Error::AlreadyExists)
    ));
    assert_eq!(env.calls(SLICE_EP), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_reuses_known_content() {
    let env = Env::new().await;
    let body = data(300_000, 2);
    env.emu.put_file("/known.bin", body.clone());
    let src = source(env.dir.path(), "k", &body);
    let e = env
        .backend
        .upload(0, "again.bin", &src, &fast())
        .await
        .unwrap();
    assert_eq!(env.calls(SLICE_EP), 0);
    assert_eq!(env.calls(COMPLETE), 0);
    assert_eq!(env.emu.read("/again.bin").unwrap(), body);
    assert_eq!(e.md5.as_deref(), Some(src.md5.as_str()));
    // A taken name is never replaced (docs/123.md, open §11: `duplicate: 1` is sent, so 123
    // keeps both; the upload queue never gets here, it uploads under names nobody else has).
    let other = source(env.dir.path(), "o", b"other bytes");
    let kept = env
        .backend
        .upload(0, "again.bin", &other, &fast())
        .await
        .unwrap();
    assert_ne!(kept.id, e.id);
    assert_eq!(env.emu.read("/again.bin").unwrap(), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_slice_upload() {
    let env = Env::new().await;
    let body = data((16 * SLICE + 123) as usize, 3);
    let src = source(env.dir.path(), "m", &body);
    let seen = Arc::new(AtomicU64::new(0));
    let progress = seen.clone();
    let opts = UploadOptions {
        parallel_slices: 3,
        progress: Some(Arc::new(move |n| {
            progress.fetch_max(n, Ordering::Relaxed);
        })),
        complete_poll_interval: Duration::ZERO,
    };
    let e = env.backend.upload(0, "big.bin", &src, &opts).await.unwrap();
    assert_eq!(env.emu.read("/big.bin").unwrap(), body);
    assert_eq!(e.id, env.emu.lookup("/big.bin").unwrap().id);
    assert_eq!(e.size, body.len() as u64);
    assert_eq!(seen.load(Ordering::Relaxed), body.len() as u64);
    // 17 slices, one create, and complete polled past its 2 pending answers.
    assert_eq!(env.calls(SLICE_EP), 17);
    assert_eq!(env.calls(CREATE), 1);
    assert_eq!(env.calls(COMPLETE), 3);

    // Too large for 123: refused before any call.
    let huge = UploadSource {
        path: src.path.clone(),
        size: MAX_FILE_SIZE + 1,
        md5: src.md5.clone(),
    };
    assert!(matches!(
        env.backend.upload(0, "huge.bin", &huge, &fast()).await,
        Err(Error::TooLarge)
    ));
    assert_eq!(env.calls(CREATE), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_are_retried_after_a_500_and_a_cut() {
    let env = Env::new().await;
    let body = data((4 * SLICE) as usize, 4);
    let src = source(env.dir.path(), "r", &body);
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::Http {
            status: 500,
            count: 1,
        },
    ));
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::CutAfter {
            bytes: 100,
            count: 1,
        },
    ));
    let opts = UploadOptions {
        parallel_slices: 1,
        ..fast()
    };
    env.backend.upload(0, "r.bin", &src, &opts).await.unwrap();
    assert_eq!(env.emu.read("/r.bin").unwrap(), body);
    assert!(env.emu.faults().is_empty());
    // The 500 is counted by the emulator; the cut may or may not be.
    assert!(env.calls(SLICE_EP) >= 5, "{}", env.calls(SLICE_EP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_give_up_after_four_attempts() {
    let env = Env::new().await;
    let body = data((2 * SLICE) as usize, 5);
    let src = source(env.dir.path(), "g", &body);
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::Http {
            status: 503,
            count: 1000,
        },
    ));
    let opts = UploadOptions {
        parallel_slices: 1,
        ..fast()
    };
    let err = env
        .backend
        .upload(0, "g.bin", &src, &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(env.calls(SLICE_EP), 4);
    assert!(env.emu.lookup("/g.bin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_mid_upload() {
    let env = Env::new().await;
    let body = data((8 * SLICE) as usize, 6);
    let src = source(env.dir.path(), "t", &body);
    // Slow slices, so the test can expire the token between two of them.
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::Latency {
            ms: 150,
            count: 100,
        },
    ));
    let backend = env.backend.clone();
    let opts = UploadOptions {
        parallel_slices: 1,
        ..fast()
    };
    let upload = tokio::spawn(async move { backend.upload(0, "t.bin", &src, &opts).await });
    wait_for("two slices", || env.calls(SLICE_EP) >= 2).await;
    env.emu.expire_tokens();
    let issued_before = env.emu.stats().tokens_issued;
    upload.await.unwrap().unwrap();
    env.emu.clear_faults();
    assert_eq!(env.emu.read("/t.bin").unwrap(), body);
    assert!(env.emu.stats().tokens_issued > issued_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_upload_lands_and_cleans_up() {
    let env = Env::new().await;
    let q = env.queue().await;
    let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = changes.clone();
    q.on_change(Arc::new(move |m: &str, p| {
        seen.lock().unwrap().push((m.to_string(), p))
    }));
    let dir = env.emu.mkdir_p("/docs");
    let body = data((3 * SLICE + 5) as usize, 7);
    let j = job(&q, dir, "report.pdf", &body).await;
    let path = j.file.path.clone();
    q.enqueue(j).await.unwrap();
    // Listed (and readable from the spool) while pending.
    let pending = q.pending(MOUNT, dir);
    if let Some(p) = pending.first() {
        assert_eq!((p.name.as_str(), p.size), ("report.pdf", body.len() as u64));
        assert_eq!(q.find(MOUNT, dir, "report.pdf").unwrap().path, path);
    }
    wait_for("completion", || q.stats().completed == 1).await;
    assert_eq!(env.emu.read("/docs/report.pdf").unwrap(), body);
    assert!(q.pending(MOUNT, dir).is_empty());
    assert!(!path.exists(), "the spool file is removed");
    assert_eq!(q.spool().used(), 0);
    let stats = q.stats();
    assert_eq!((stats.queued, stats.running, stats.failed), (0, 0, 0));
    assert_eq!(stats.bytes_uploaded, body.len() as u64);
    assert!(changes.lock().unwrap().contains(&(MOUNT.to_string(), dir)));
    assert_eq!(
        std::fs::read_dir(env.state_dir().join("queue"))
            .unwrap()
            .count(),
        0
    );
    // A new file goes to its temporary name too (docs/123.md, open §11), then one listing and one
    // rename put it in place; nothing is trashed.
    assert_eq!(env.calls(CREATE), 1);
    assert_eq!(env.calls(LIST), 1);
    assert_eq!(env.calls(RENAME), 1);
    assert_eq!(env.calls(TRASH), 0);
    no_temp_names(&env.emu, "/docs");
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_replaces_and_trashes_the_old_version() {
    let env = Env::new().await;
    let old_id = env.emu.put_file("/d/a.txt", "old content");
    let dir = env.emu.lookup("/d").unwrap().id;
    let q = env.queue().await;
    let body = data((2 * SLICE + 1) as usize, 8);
    q.enqueue(job(&q, dir, "a.txt", &body).await).await.unwrap();
    wait_for("completion", || q.stats().completed == 1).await;
    assert_eq!(env.emu.read("/d/a.txt").unwrap(), body);
    assert!(env.emu.entry(old_id).unwrap().trashed);
    assert_eq!(env.emu.list_names("/d").unwrap(), ["a.txt"]);
    assert_eq!((env.calls(TRASH), env.calls(RENAME)), (1, 1));

    // The same content again: 123 has it already, no byte is sent and the file stays.
    let kept = env.emu.lookup("/d/a.txt").unwrap().id;
    env.emu.reset_stats();
    q.enqueue(job(&q, dir, "a.txt", &body).await).await.unwrap();
    wait_for("completion", || q.stats().completed == 2).await;
    assert_eq!(env.calls(SLICE_EP), 0);
    assert_eq!(env.calls(RENAME), 0);
    assert_eq!(env.emu.lookup("/d/a.txt").unwrap().id, kept);
    assert_eq!(env.emu.read("/d/a.txt").unwrap(), body);
    no_temp_names(&env.emu, "/d");
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_overwrite_keeps_the_old_file_under_both_overwrite_settings() {
    for (at, failing) in [
        (OverwriteAt::Create, SLICE_EP),
        (OverwriteAt::Complete, COMPLETE),
    ] {
        let env = Env::new().await;
        env.emu.set_switches(|s| s.overwrite_at = at);
        let old_id = env.emu.put_file("/d/a.txt", "precious");
        let dir = env.emu.lookup("/d").unwrap().id;
        env.emu.inject(fault(
            failing,
            FaultKind::Http {
                status: 500,
                count: 100_000,
            },
        ));
        let q = env.queue().await;
        let body = data((2 * SLICE) as usize, 9);
        let id = q.enqueue(job(&q, dir, "a.txt", &body).await).await.unwrap();
        wait_for("the job to give up", || q.stats().failed == 1).await;
        env.emu.clear_faults();
        assert_eq!(env.emu.read("/d/a.txt").unwrap(), b"precious", "{at:?}");
        assert!(!env.emu.entry(old_id).unwrap().trashed);
        assert_eq!(env.emu.list_names("/d").unwrap(), ["a.txt"]);
        // The content is kept, with the reason.
        let failed = env.state_dir().join("failed").join(id.as_str());
        assert_eq!(std::fs::read(failed.join("data")).unwrap(), body);
        let m: FailedManifest =
            serde_json::from_slice(&std::fs::read(failed.join("manifest.json")).unwrap()).unwrap();
        assert_eq!((m.name.as_str(), m.parent_id), ("a.txt", dir));
        q.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_md5_fails_for_good_with_a_manifest() {
    let env = Env::new().await;
    let q = env.queue().await;
    let body = data((SLICE + 10) as usize, 10);
    let path = env.state_dir().join("spool").join("hand.spool");
    std::fs::write(&path, &body).unwrap();
    let wrong = md5_hex(b"something else");
    let id = q
        .enqueue(NewJob {
            mount: MOUNT.into(),
            parent_id: 0,
            name: "bad.bin".into(),
            file: SpooledFile::unaccounted(path.clone(), body.len() as u64, wrong.clone()),
            modified: SystemTime::now(),
        })
        .await
        .unwrap();
    wait_for("the failure", || q.stats().failed == 1).await;
    // 文件上传失败 is final: one attempt only.
    assert_eq!(env.calls(CREATE), 1);
    assert!(env.emu.lookup("/bad.bin").is_none());
    no_temp_names(&env.emu, "/");
    let failed = env.state_dir().join("failed").join(id.as_str());
    let m: FailedManifest =
        serde_json::from_slice(&std::fs::read(failed.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        (m.mount.as_str(), m.parent_id, m.name.as_str()),
        (MOUNT, 0, "bad.bin")
    );
    assert_eq!(
        (m.size, m.md5.as_str()),
        (body.len() as u64, wrong.as_str())
    );
    assert!(m.error.contains("文件上传失败"), "{}", m.error);
    assert!(!m.failed_at.is_empty());
    assert_eq!(std::fs::read(failed.join("data")).unwrap(), body);
    assert!(!path.exists());
    assert!(q.pending(MOUNT, 0).is_empty());
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_upload_supersedes_the_queued_one() {
    let env = Env::new().await;
    let q = busy_queue(&env).await;
    // Explorer: an empty PUT, then the real one, while the first is still queued.
    let first = job(&q, 0, "doc.txt", b"").await;
    let first_path = first.file.path.clone();
    q.enqueue(first).await.unwrap();
    let body = data((2 * SLICE + 7) as usize, 11);
    q.enqueue(job(&q, 0, "doc.txt", &body).await).await.unwrap();
    assert!(!first_path.exists());
    let pending = q.pending(MOUNT, 0);
    let docs: Vec<_> = pending.iter().filter(|p| p.name == "doc.txt").collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].size, body.len() as u64);
    wait_for("completion", || q.stats().completed == 2).await;
    assert_eq!(env.emu.read("/doc.txt").unwrap(), body);
    // One upload: the empty file never reached 123 (the other create is the blocker's).
    assert_eq!(env.calls(CREATE), 2);
    let stats = q.stats();
    assert_eq!((stats.queued, stats.running, stats.completed), (0, 0, 2));
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_removes_a_pending_upload() {
    let env = Env::new().await;
    let q = busy_queue(&env).await;
    let j = job(&q, 0, "gone.bin", &data(1000, 12)).await;
    let path = j.file.path.clone();
    q.enqueue(j).await.unwrap();
    assert!(q.cancel(MOUNT, 0, "gone.bin").await);
    assert!(!q.cancel(MOUNT, 0, "gone.bin").await);
    assert!(q.pending(MOUNT, 0).iter().all(|p| p.name != "gone.bin"));
    assert!(!path.exists());
    // Only the blocker is left.
    assert_eq!(q.spool().used(), b"blocker".len() as u64);
    let stats = q.stats();
    assert_eq!(stats.queued + stats.running, 1);
    // A later job still runs, and the cancelled one never reached 123.
    q.enqueue(job(&q, 0, "other.bin", b"x").await)
        .await
        .unwrap();
    wait_for("completion", || q.stats().completed == 2).await;
    assert!(env.emu.lookup("/gone.bin").is_none());
    assert_eq!(env.calls(CREATE), 2);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_uploading_leaves_nothing() {
    let env = Env::new().await;
    let q = env.queue().await;
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::Latency {
            ms: 200,
            count: 100,
        },
    ));
    q.enqueue(job(&q, 0, "big.bin", &data((6 * SLICE) as usize, 13)).await)
        .await
        .unwrap();
    wait_for("the first slice", || env.calls(SLICE_EP) >= 1).await;
    assert!(q.cancel(MOUNT, 0, "big.bin").await);
    env.emu.clear_faults();
    assert!(env.emu.lookup("/big.bin").is_none());
    no_temp_names(&env.emu, "/");
    assert_eq!(q.stats().running, 0);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retarget_changes_where_it_lands() {
    let env = Env::new().await;
    let a = env.emu.mkdir_p("/a");
    let b = env.emu.mkdir_p("/b");
    let q = busy_queue(&env).await;

    // Queued: it simply lands at the new place.
    let one = data(5000, 14);
    q.enqueue(job(&q, a, "one.txt", &one).await).await.unwrap();
    assert!(q.retarget(MOUNT, a, "one.txt", b, "uno.txt").await);
    assert!(!q.retarget(MOUNT, a, "one.txt", b, "x.txt").await);
    assert!(q.find(MOUNT, b, "uno.txt").is_some());
    wait_for("first", || q.stats().completed == 2).await;
    assert_eq!(env.emu.read("/b/uno.txt").unwrap(), one);

    // Uploading under its own name: once 123 has it, it is moved and renamed.
    env.emu.inject(fault(
        SLICE_EP,
        FaultKind::Latency {
            ms: 150,
            count: 100,
        },
    ));
    let two = data((3 * SLICE) as usize, 15);
    q.enqueue(job(&q, a, "two.txt", &two).await).await.unwrap();
    wait_for("a slice", || env.calls(SLICE_EP) >= 1).await;
    env.emu
        .put_file("/b/dos.txt", "older file at the new place");
    assert!(q.retarget(MOUNT, a, "two.txt", b, "dos.txt").await);
    wait_for("second", || q.stats().completed == 3).await;
    env.emu.clear_faults();
    assert_eq!(env.emu.read("/b/dos.txt").unwrap(), two);
    assert!(env.emu.list_names("/a").unwrap().is_empty());
    no_temp_names(&env.emu, "/b");
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_a_queued_upload() {
    let env = Env::new().await;
    let body = data((5 * SLICE + 3) as usize, 16);
    {
        let q = env.queue().await;
        // The first attempt hangs in `create`; shut down meanwhile.
        env.emu
            .inject(fault(CREATE, FaultKind::Latency { ms: 1500, count: 1 }));
        q.enqueue(job(&q, 0, "resume.bin", &body).await)
            .await
            .unwrap();
        wait_for("create to be sent", || env.latency_taken(CREATE)).await;
        q.shutdown().await;
        assert!(env.emu.lookup("/resume.bin").is_none());
    }
    // A stray spool file (a PUT cut by the crash) is swept at start.
    let stray = env.state_dir().join("spool").join("0-stray.part");
    std::fs::write(&stray, b"partial").unwrap();
    let q = env.queue().await;
    assert!(!stray.exists());
    assert_eq!(q.pending(MOUNT, 0).len(), 1);
    assert_eq!(q.spool().used(), body.len() as u64);
    wait_for("completion after restart", || q.stats().completed == 1).await;
    assert_eq!(env.emu.read("/resume.bin").unwrap(), body);
    assert_eq!(q.spool().used(), 0);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_swap_finishes_without_uploading_again() {
    let env = Env::new().await;
    let old_id = env.emu.put_file("/d/a.txt", "old");
    let dir = env.emu.lookup("/d").unwrap().id;
    let body = data((3 * SLICE) as usize, 17);
    {
        let q = env.queue().await;
        // The upload completes under a temporary name; the final rename hangs.
        env.emu
            .inject(fault(RENAME, FaultKind::Latency { ms: 1500, count: 1 }));
        q.enqueue(job(&q, dir, "a.txt", &body).await).await.unwrap();
        wait_for("the rename to be sent", || env.latency_taken(RENAME)).await;
        q.shutdown().await;
    }
    env.emu.reset_stats();
    let q = env.queue().await;
    wait_for("completion after restart", || q.stats().completed == 1).await;
    assert_eq!(env.calls(SLICE_EP), 0, "no byte is sent again");
    assert_eq!(env.calls(CREATE), 0);
    assert_eq!(env.emu.read("/d/a.txt").unwrap(), body);
    assert!(env.emu.entry(old_id).unwrap().trashed);
    assert_eq!(env.emu.list_names("/d").unwrap(), ["a.txt"]);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_now_returns_the_complete_file() {
    let env = Env::new().await;
    env.emu.put_file("/s.txt", "old");
    let q = env.queue().await;
    let body = data((2 * SLICE + 9) as usize, 18);
    let e = q
        .upload_now(job(&q, 0, "s.txt", &body).await)
        .await
        .unwrap();
    assert_eq!(e.id, env.emu.lookup("/s.txt").unwrap().id);
    assert_eq!((e.name.as_str(), e.size), ("s.txt", body.len() as u64));
    assert_eq!(env.emu.read("/s.txt").unwrap(), body);
    assert_eq!(q.stats().completed, 1);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_refuses_too_large_and_full() {
    let env = Env::new().await;
    let mut cfg = env.queue_config();
    cfg.spool_max = 100_000;
    let q = UploadQueue::start(cfg, env.backends()).await.unwrap();
    let spool = q.spool();
    assert!(matches!(
        spool.writer(Some(MAX_FILE_SIZE + 1)).await,
        Err(SpoolError::TooLarge)
    ));
    let mut w = spool.writer(None).await.unwrap();
    w.write(&[7; 60_000]).await.unwrap();
    let mut other = spool.writer(None).await.unwrap();
    assert!(matches!(
        other.write(&[8; 60_000]).await,
        Err(SpoolError::Full)
    ));
    drop(other);
    let f = w.finish().await.unwrap();
    assert_eq!(spool.used(), 60_000);
    // Once uploaded, its bytes are free again.
    q.enqueue(NewJob {
        mount: MOUNT.into(),
        parent_id: 0,
        name: "s.bin".into(),
        file: f,
        modified: SystemTime::now(),
    })
    .await
    .unwrap();
    wait_for("completion", || q.stats().completed == 1).await;
    assert_eq!(spool.used(), 0);
    q.shutdown().await;
}

/// docs/123.md, open §11: `upload_complete` answers errors before success (20103, code 1
/// `任务队列削峰中…`, an unknown code); each is polled through, at one call per answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_polls_through_transient_errors() {
    let env = Env::new().await;
    env.emu.set_switches(|s| s.complete_transient_errors = 3);
    let body = data((SLICE + 3) as usize, 41);
    let src = source(env.dir.path(), "t", &body);
    let e = env.backend.upload(0, "t.bin", &src, &fast()).await.unwrap();
    assert_eq!(env.emu.read("/t.bin").unwrap(), body);
    assert_eq!(env.emu.lookup("/t.bin").unwrap().id, e.id);
    // 3 errors, 2 × `completed: false`, then done; no listing was needed.
    assert_eq!(env.calls(COMPLETE), 6);
    assert_eq!(env.calls(LIST), 0);
}

/// When polling runs out, the folder is listed before the upload is called failed: 123 may
/// have made the file although every answer said otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_that_never_confirms_is_settled_by_a_listing() {
    let env = Env::new().await;
    // Every poll acts (the third completes the upload) and answers an error all the same.
    env.emu.inject(fault(
        COMPLETE,
        FaultKind::ErrorAfter {
            code: 1,
            message: "任务队列削峰中,未直接获取到文件ID,请慢一点".into(),
            count: 1000,
        },
    ));
    let body = data((2 * SLICE) as usize, 42);
    let src = source(env.dir.path(), "m", &body);
    let e = env
        .backend
        .upload(0, "made.bin", &src, &fast())
        .await
        .unwrap();
    assert_eq!(env.emu.lookup("/made.bin").unwrap().id, e.id);
    assert_eq!(env.emu.read("/made.bin").unwrap(), body);
    assert_eq!((env.calls(COMPLETE), env.calls(LIST)), (60, 1));
    env.emu.clear_faults();

    // Never made: after the same polls and one listing, the upload has failed (and may be
    // tried again: it is not 文件上传失败).
    env.emu.reset_stats();
    env.emu.set_switches(|s| s.complete_transient_errors = 1000);
    let body = data((2 * SLICE) as usize, 43);
    let src = source(env.dir.path(), "n", &body);
    let err = env
        .backend
        .upload(0, "never.bin", &src, &fast())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(env.emu.lookup("/never.bin").is_none());
    assert_eq!((env.calls(COMPLETE), env.calls(LIST)), (60, 1));
}

/// docs/123.md, open §11: `reuse: true` with `fileID: 0` is not an instant upload: the slices go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_without_a_file_id_sends_the_slices() {
    let env = Env::new().await;
    env.emu.set_switches(|s| s.reuse_without_file_id = true);
    let body = data((2 * SLICE + 9) as usize, 44);
    env.emu.put_file("/known.bin", body.clone());
    let src = source(env.dir.path(), "r", &body);
    let e = env
        .backend
        .upload(0, "again.bin", &src, &fast())
        .await
        .unwrap();
    assert_eq!(env.emu.lookup("/again.bin").unwrap().id, e.id);
    assert_eq!(env.emu.read("/again.bin").unwrap(), body);
    assert_eq!((env.calls(CREATE), env.calls(SLICE_EP)), (1, 3));
    // An instant copy of it cannot be made that way: nothing is created, after one look.
    env.emu.reset_stats();
    let copy = env
        .backend
        .copy_instant(0, "copy.bin", &src.md5, src.size)
        .await
        .unwrap();
    assert!(copy.is_none());
    assert!(env.emu.lookup("/copy.bin").is_none());
    assert_eq!((env.calls(CREATE), env.calls(LIST)), (1, 2));
}

/// docs/123.md, open §11: whatever `create` does with a taken name (refuse, keep both, replace), a
/// new file whose name another writer takes while it uploads ends as one file with the
/// newest content, the other version in the recycle bin, and no `name(1)` or temporary copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_mid_upload_is_swapped_under_every_reading() {
    for reading in [TakenName::Refuse, TakenName::KeepBoth, TakenName::Replace] {
        let env = Env::new().await;
        env.emu.set_switches(|s| s.create_on_taken_name = reading);
        let dir = env.emu.mkdir_p("/r");
        env.emu
            .inject(fault(SLICE_EP, FaultKind::Latency { ms: 300, count: 1 }));
        let q = env.queue().await;
        let body = data((2 * SLICE) as usize, 45);
        q.enqueue(job(&q, dir, "race.txt", &body).await)
            .await
            .unwrap();
        wait_for("a slice in flight", || env.latency_taken(SLICE_EP)).await;
        let other = env.emu.put_file("/r/race.txt", "another writer");
        wait_for("completion", || q.stats().completed == 1).await;
        assert_eq!(env.emu.read("/r/race.txt").unwrap(), body, "{reading:?}");
        assert_eq!(
            env.emu.list_names("/r").unwrap(),
            ["race.txt"],
            "{reading:?}"
        );
        assert!(
            env.emu.entry(other).unwrap().trashed,
            "{reading:?}: in the bin, not lost"
        );
        assert_eq!(
            (
                env.calls(CREATE),
                env.calls(LIST),
                env.calls(TRASH),
                env.calls(RENAME)
            ),
            (1, 1, 1, 1),
            "{reading:?}"
        );
        q.shutdown().await;
    }
}
