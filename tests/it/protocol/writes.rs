//! Writing through every writable backend (Open API and personal account): uploads
//! (background and sync), safe overwrite, names, MKCOL/DELETE/MOVE/COPY, locks, client junk,
//! and what each costs at 123. Each scenario runs once per backend (`both!`); what differs is
//! only which endpoints 123 counts (`Kind`).

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind, OverwriteAt};

/// The writable backends, and the endpoints each uses for the same job.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Open,
    Web,
}

impl Kind {
    /// Opens an upload (and for `Web` also makes folders).
    fn create(self) -> &'static str {
        match self {
            Kind::Open => "/upload/v2/file/create",
            Kind::Web => "/b/api/file/upload_request",
        }
    }

    /// Carries the bytes of one slice or part.
    fn part(self) -> &'static str {
        match self {
            Kind::Open => "/upload/v2/file/slice",
            Kind::Web => "s3",
        }
    }

    fn trash(self) -> &'static str {
        match self {
            Kind::Open => "/api/v1/file/trash",
            Kind::Web => "/b/api/file/trash",
        }
    }

    /// Slices or parts a file of `len` bytes takes (`fast_cfg`'s 64 KiB slices for Open, the
    /// web flow's fixed 16 MiB parts).
    fn parts(self, len: u64) -> u64 {
        match self {
            Kind::Open => len.div_ceil(64 * 1024),
            Kind::Web => len.div_ceil(16 << 20).max(1),
        }
    }

    /// Slices or parts a file of `len` bytes that 123 already has costs: none, unless the Open
    /// API's `create` answers `reuse: true` without a fileID (docs/123.md, open §11,
    /// `reuse_without_file_id`), which asks for the bytes anyway.
    fn known_parts(self, emu: &pan123_emulator::Emulator, len: u64) -> u64 {
        match self {
            Kind::Open if emu.switches().reuse_without_file_id => self.parts(len),
            _ => 0,
        }
    }

    /// A mount of this backend at `path` on the emulator folder `root`.
    fn mount(self, emu: &pan123_emulator::Emulator, path: &str, root: &str, extra: &str) -> String {
        let id = emu.lookup(root).map(|e| e.id).unwrap_or(0);
        let extra = format!("root_id = {id}\n{extra}");
        match self {
            Kind::Open => open_mount(path, "proxy", &extra),
            Kind::Web => web_mount(path, "proxy", &extra),
        }
    }
}

/// One `#[tokio::test]` per backend for a scenario `async fn name(kind: Kind)`, and one per
/// backend under each other reading of 123 (`crate::common::profiles`).
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::common::profiles::{use_profile, Profile};
            both!(@row $name, open, Open, Default);
            both!(@row $name, web, Web, Default);
            both!(@row $name, open_openlist_reading, Open, OpenListReading);
            both!(@row $name, web_openlist_reading, Web, OpenListReading);
            both!(@row $name, open_sdk_reading, Open, SdkReading);
            both!(@row $name, web_sdk_reading, Web, SdkReading);
        }
    )*};
    (@row $name:ident, $test:ident, $kind:ident, $profile:ident) => {
        #[tokio::test]
        async fn $test() {
            use_profile(Profile::$profile);
            super::$name(super::Kind::$kind).await
        }
    };
}

/// Small slices and instant completion polls, so uploads are quick and multi-slice.
fn fast_cfg() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg
}

fn lib_mount(kind: Kind, emu: &pan123_emulator::Emulator, extra: &str) -> String {
    kind.mount(emu, "/m", "/lib", extra)
}

async fn env(kind: Kind, extra: &str) -> TestEnv {
    let extra = extra.to_string();
    TestEnv::start(fast_cfg(), move |emu| {
        emu.mkdir_p("/lib");
        lib_mount(kind, emu, &extra)
    })
    .await
}

async fn put(env: &TestEnv, path: &str, body: Vec<u8>) -> u16 {
    env.req("PUT", path)
        .body(body)
        .send()
        .await
        .expect("put")
        .status()
        .as_u16()
}

async fn background_put_is_readable_at_once_and_lands_in_123(kind: Kind) {
    let env = env(kind, "").await;
    let data = bytes_of(300_000, 1);
    assert_eq!(put(&env, "/m/film.mkv", data.clone()).await, 201);
    // Straight after the PUT: listed with its size and MD5, and readable.
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    assert!(
        body.contains("<D:getcontentlength>300000</D:getcontentlength>"),
        "{body}"
    );
    let res = env
        .req("GET", "/m/film.mkv")
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &data[1000..2000]);
    // Then the queue uploads it, in slices.
    eventually("the upload completes", || {
        env.emu.read("/lib/film.mkv").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/film.mkv").expect("uploaded"), data);
    assert_eq!(
        env.emu.stats().calls(kind.part()),
        kind.parts(300_000),
        "300,000 bytes in 64 KiB slices (Open) or one 16 MiB part (web)"
    );
    let full = env.req("GET", "/m/film.mkv").send().await.expect("get");
    assert_eq!(full.bytes().await.expect("body").as_ref(), data.as_slice());
}

async fn known_content_is_uploaded_instantly(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.put_file("/lib/original.bin", bytes_of(200_000, 2));
        lib_mount(kind, emu, "")
    })
    .await;
    assert_eq!(put(&env, "/m/copy.bin", bytes_of(200_000, 2)).await, 201);
    eventually("the reuse completes", || {
        env.emu.lookup("/lib/copy.bin").is_some()
    })
    .await;
    assert_eq!(
        env.emu.stats().calls(kind.part()),
        kind.known_parts(&env.emu, 200_000)
    );
}

async fn a_slice_fault_is_retried(kind: Kind) {
    let env = env(kind, "").await;
    env.emu.inject(Fault {
        endpoint: kind.part().into(),
        kind: FaultKind::Http {
            status: 500,
            count: 1,
        },
    });
    let data = bytes_of(200_000, 3);
    assert_eq!(put(&env, "/m/a.bin", data.clone()).await, 201);
    eventually("the upload completes", || {
        env.emu.read("/lib/a.bin").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/a.bin").expect("uploaded"), data);
}

async fn sync_upload_answers_after_completion(kind: Kind) {
    let env = env(kind, "upload = \"sync\"").await;
    let data = bytes_of(150_000, 4);
    assert_eq!(put(&env, "/m/s.bin", data.clone()).await, 201);
    assert_eq!(
        env.emu
            .read("/lib/s.bin")
            .expect("complete before the answer"),
        data
    );
}

async fn a_failed_overwrite_keeps_the_old_file(kind: Kind) {
    for at in [OverwriteAt::Create, OverwriteAt::Complete] {
        let env = TestEnv::start(fast_cfg(), |emu| {
            emu.put_file("/lib/doc.txt", b"old version".to_vec());
            lib_mount(kind, emu, "upload = \"sync\"")
        })
        .await;
        env.emu.set_switches(|s| s.overwrite_at = at);
        env.emu.inject(Fault {
            endpoint: kind.part().into(),
            kind: FaultKind::Http {
                status: 500,
                count: 10_000,
            },
        });
        let status = put(&env, "/m/doc.txt", bytes_of(200_000, 5)).await;
        assert!(status >= 500, "{at:?}: {status}");
        assert_eq!(
            env.emu.read("/lib/doc.txt").expect("old file kept"),
            b"old version",
            "{at:?}"
        );
        env.emu.clear_faults();
        // And a later overwrite succeeds and replaces it.
        assert_eq!(put(&env, "/m/doc.txt", b"new version".to_vec()).await, 204);
        assert_eq!(
            env.emu.read("/lib/doc.txt").expect("replaced"),
            b"new version",
            "{at:?}"
        );
        let names = env.emu.list_names("/lib").expect("listing");
        assert_eq!(
            names,
            vec!["doc.txt".to_string()],
            "{at:?}: no temporary files left"
        );
    }
}

async fn explorer_sequence_costs_one_upload(kind: Kind) {
    let env = env(kind, "").await;
    let ua = "Microsoft-WebDAV-MiniRedir/10.0.19045";
    let r = env
        .req("PUT", "/m/new.txt")
        .header("User-Agent", ua)
        .body(Vec::new())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    let lock_body = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>"#;
    let r = env
        .req("LOCK", "/m/new.txt")
        .header("User-Agent", ua)
        .header("Timeout", "Second-3600")
        .body(lock_body)
        .send()
        .await
        .expect("lock");
    assert_eq!(r.status().as_u16(), 200);
    let token = r
        .headers()
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
        .expect("lock token")
        .to_string();
    let r = env
        .req("PUT", "/m/new.txt")
        .header("User-Agent", ua)
        .header("If", format!("({token})"))
        .body(b"hello from windows".to_vec())
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    let patch = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32LastModifiedTime>Mon, 23 Nov 2026 10:00:00 GMT</Z:Win32LastModifiedTime></D:prop></D:set></D:propertyupdate>"#;
    let r = env
        .req("PROPPATCH", "/m/new.txt")
        .header("User-Agent", ua)
        .header("If", format!("({token})"))
        .body(patch)
        .send()
        .await
        .expect("proppatch");
    assert_eq!(r.status().as_u16(), 207);
    assert!(r.text().await.unwrap_or_default().contains("200"));
    let r = env
        .req("UNLOCK", "/m/new.txt")
        .header("User-Agent", ua)
        .header("Lock-Token", &token)
        .send()
        .await
        .expect("unlock");
    assert_eq!(r.status().as_u16(), 204);
    eventually("the upload completes", || {
        env.emu.read("/lib/new.txt").is_some()
    })
    .await;
    assert_eq!(
        env.emu.read("/lib/new.txt").expect("uploaded"),
        b"hello from windows"
    );
    assert_eq!(
        env.emu.stats().calls(kind.create()),
        1,
        "one upload, not two"
    );
}

async fn finder_chunked_put(kind: Kind) {
    let env = env(kind, "").await;
    let data = bytes_of(100_000, 6);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(7000).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = env
        .req("PUT", "/m/finder.bin")
        .header("User-Agent", "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0")
        .header("X-Expected-Entity-Length", data.len().to_string())
        .body(body)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    eventually("the upload completes", || {
        env.emu.read("/lib/finder.bin").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/finder.bin").expect("uploaded"), data);
}

async fn partial_put_is_refused(kind: Kind) {
    let env = env(kind, "").await;
    let r = env
        .req("PUT", "/m/p.bin")
        .header("Content-Range", "bytes 0-9/100")
        .body(vec![0u8; 10])
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 501);
    assert!(env.emu.lookup("/lib/p.bin").is_none());
}

async fn too_large_and_spool_full(kind: Kind) {
    let env = TestEnv::builder(fast_cfg())
        .mounts(|emu| {
            emu.mkdir_p("/lib");
            lib_mount(kind, emu, "")
        })
        .server("spool_max = \"1MiB\"")
        .start()
        .await;
    // Over the spool quota: 507, and nothing uploaded.
    assert_eq!(
        put(&env, "/m/big.bin", vec![7u8; 2 * 1024 * 1024]).await,
        507
    );
    assert!(env.emu.lookup("/lib/big.bin").is_none());
    // Announced over 123's 10 GB limit: 413 before a byte is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = env.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let auth = base64_basic();
    let req = format!("PUT /m/huge.bin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Length: 20000000000\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(HANG_GUARD, s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

fn base64_basic() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

async fn forbidden_characters_round_trip(kind: Kind) {
    let env = env(kind, "upload = \"sync\"").await;
    let path = "/m/a%3Ab%3Fc%2A.txt";
    assert_eq!(put(&env, path, b"odd".to_vec()).await, 201);
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(
        body.to_ascii_lowercase()
            .contains("<d:href>/m/a%3ab%3fc%2a.txt</d:href>"),
        "{body}"
    );
    let names = env.emu.list_names("/lib").expect("listing");
    assert_eq!(names, vec!["a\u{FF1A}b\u{FF1F}c\u{FF0A}.txt".to_string()]);
    let r = env.req("GET", path).send().await.expect("get");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"odd");
    // A name 123 can never store: 400 with the reason.
    let r = env
        .req("PUT", &format!("/m/{}", "x".repeat(300)))
        .body(b"x".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap_or_default().contains("256"));
}

async fn mkcol_rules_and_cache_invalidation(kind: Kind) {
    let env = env(kind, "").await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    assert_eq!(
        env.req("MKCOL", "/m/docs")
            .send()
            .await
            .expect("mkcol")
            .status()
            .as_u16(),
        201
    );
    assert!(
        env.propfind("/m/", "1").await.1.contains("/m/docs/"),
        "a new folder shows at once"
    );
    assert_eq!(
        env.req("MKCOL", "/m/docs")
            .send()
            .await
            .expect("mkcol")
            .status()
            .as_u16(),
        405
    );
    assert_eq!(
        env.req("MKCOL", "/m/nope/sub")
            .send()
            .await
            .expect("mkcol")
            .status()
            .as_u16(),
        409
    );
    assert_eq!(
        env.req("DELETE", "/m/docs")
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    assert!(
        !env.propfind("/m/", "1").await.1.contains("/m/docs/"),
        "a deleted folder is gone at once"
    );
}

async fn delete_of_a_big_folder_and_move_onto_a_folder_cost_one_trash_call(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        for i in 0..500 {
            emu.put_file(&format!("/lib/big/f{i}.txt"), b"x".to_vec());
        }
        emu.put_file("/lib/src/a.txt", b"a".to_vec());
        emu.put_file("/lib/dst/b.txt", b"b".to_vec());
        lib_mount(kind, emu, "")
    })
    .await;
    env.emu.reset_stats();
    assert_eq!(
        env.req("DELETE", "/m/big/")
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(env.emu.stats().calls(kind.trash()), 1);
    assert!(env.emu.lookup("/lib/big").is_none());
    env.emu.reset_stats();
    let r = env
        .req("MOVE", "/m/src/")
        .header("Destination", env.url("/m/dst/"))
        .header("Overwrite", "T")
        .send()
        .await
        .expect("move");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(env.emu.stats().calls(kind.trash()), 1);
    assert_eq!(env.emu.read("/lib/dst/a.txt").expect("moved"), b"a");
    assert!(env.emu.lookup("/lib/dst/b.txt").is_none());
    // Overwrite: F onto an existing target is refused.
    env.emu.put_file("/lib/x.txt", b"x".to_vec());
    env.emu.put_file("/lib/y.txt", b"y".to_vec());
    let r = env
        .req("MOVE", "/m/x.txt")
        .header("Destination", env.url("/m/y.txt"))
        .header("Overwrite", "F")
        .send()
        .await
        .expect("move");
    assert_eq!(r.status().as_u16(), 412);
}

async fn case_only_rename_is_a_rename(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.put_file("/lib/a.txt", b"a".to_vec());
        lib_mount(kind, emu, "")
    })
    .await;
    let r = env
        .req("MOVE", "/m/a.txt")
        .header("Destination", env.url("/m/A.txt"))
        .send()
        .await
        .expect("move");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        env.emu.list_names("/lib").expect("listing"),
        vec!["A.txt".to_string()]
    );
    assert_eq!(env.emu.stats().calls(kind.trash()), 0);
    assert_eq!(env.emu.read("/lib/A.txt").expect("renamed"), b"a");
}

async fn delete_of_a_locked_file_is_423(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.put_file("/lib/l.txt", b"l".to_vec());
        lib_mount(kind, emu, "")
    })
    .await;
    let lock_body = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let r = env
        .req("LOCK", "/m/l.txt")
        .body(lock_body)
        .send()
        .await
        .expect("lock");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        env.req("DELETE", "/m/l.txt")
            .send()
            .await
            .expect("delete")
            .status()
            .as_u16(),
        423
    );
    assert!(env.emu.lookup("/lib/l.txt").is_some());
}

async fn copy_reuses_content(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.put_file("/lib/orig.bin", bytes_of(100_000, 8));
        emu.mkdir_p("/lib/dir");
        lib_mount(kind, emu, "")
    })
    .await;
    let r = env
        .req("COPY", "/m/orig.bin")
        .header("Destination", env.url("/m/dir/copy.bin"))
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status().as_u16(), 201);
    // Instant when 123 reuses the content; else the bytes go through the upload queue.
    eventually("the copy lands", || {
        env.emu.read("/lib/dir/copy.bin").as_deref() == Some(bytes_of(100_000, 8).as_slice())
    })
    .await;
    assert_eq!(
        env.emu.stats().calls(kind.part()),
        kind.known_parts(&env.emu, 100_000)
    );
    assert!(env.propfind("/m/dir/", "1").await.1.contains("copy.bin"));
}

async fn client_junk_stays_local(kind: Kind) {
    let env = env(kind, "").await;
    env.emu.reset_stats();
    assert_eq!(
        put(&env, "/m/._film.mkv", b"apple double".to_vec()).await,
        201
    );
    assert_eq!(put(&env, "/m/.DS_Store", b"ds".to_vec()).await, 201);
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(
        body.contains("._film.mkv") && body.contains(".DS_Store"),
        "{body}"
    );
    let r = env.req("GET", "/m/._film.mkv").send().await.expect("get");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"apple double");
    assert_eq!(
        env.req("GET", "/m/Thumbs.db")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        env.emu.stats().calls(kind.create()),
        0,
        "junk never reaches 123"
    );
    assert!(env.emu.lookup("/lib/.DS_Store").is_none());
}

#[tokio::test]
async fn read_only_mounts_and_users_without_write_get_403() {
    let env = TestEnv::builder(fast_cfg())
        .mounts(|emu| {
            emu.mkdir_p("/lib");
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}",
                open_mount("/m", "proxy", &format!("root_id = {id}")),
                open_mount("/ro", "proxy", &format!("root_id = {id}\nread_only = true"))
            )
        })
        .users("[[users]]\nname = \"reader\"\npassword_hash = \"{hash}\"\n")
        .start()
        .await;
    assert_eq!(put(&env, "/ro/x.txt", b"x".to_vec()).await, 403);
    let r = env
        .client
        .put(env.url("/m/x.txt"))
        .basic_auth("reader", Some(PASSWORD))
        .body(b"x".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 403);
    let res = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/m/"))
        .send()
        .await
        .expect("options");
    assert_eq!(
        res.headers().get("dav").and_then(|v| v.to_str().ok()),
        Some("1, 2")
    );
    let res = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/ro/"))
        .send()
        .await
        .expect("options");
    assert_eq!(
        res.headers().get("dav").and_then(|v| v.to_str().ok()),
        Some("1")
    );
}

async fn copy_and_move_onto_existing_files(kind: Kind) {
    let env = env(kind, "").await;
    assert_eq!(put(&env, "/m/src.txt", b"source".to_vec()).await, 201);
    let copy = |dest: &str, overwrite: &str| {
        env.req("COPY", "/m/src.txt")
            .header("Destination", env.url(dest))
            .header("Overwrite", overwrite.to_string())
            .send()
    };
    assert_eq!(
        copy("/m/dst.txt", "T")
            .await
            .expect("copy")
            .status()
            .as_u16(),
        201
    );
    assert_eq!(
        copy("/m/dst.txt", "F")
            .await
            .expect("copy")
            .status()
            .as_u16(),
        412
    );
    assert_eq!(
        copy("/m/dst.txt", "T")
            .await
            .expect("copy")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        copy("/m/nonesuch/dst.txt", "T")
            .await
            .expect("copy")
            .status()
            .as_u16(),
        409
    );
    eventually("both uploads land", || {
        env.emu.read("/lib/dst.txt").is_some() && env.emu.read("/lib/src.txt").is_some()
    })
    .await;
    assert_eq!(
        copy("/m/dst.txt", "T")
            .await
            .expect("copy")
            .status()
            .as_u16(),
        204
    );
    // Instant when 123 reuses the content; else it comes through the upload queue.
    eventually("the copy lands", || {
        env.emu.read("/lib/dst.txt").as_deref() == Some(b"source".as_slice())
    })
    .await;
}

async fn cross_mount_copy_and_move(kind: Kind) {
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.put_file("/lib/a.bin", bytes_of(100_000, 10));
        emu.put_file("/lib/dir/x.txt", b"x".to_vec());
        emu.put_file("/lib/dir/deep/y.txt", b"y".to_vec());
        emu.mkdir_p("/other/sub");
        format!(
            "{}{}",
            kind.mount(emu, "/m", "/lib", ""),
            kind.mount(emu, "/n", "/other", "upload = \"sync\"")
        )
    })
    .await;
    // Content 123 already has: instant reuse in the target mount, no bytes sent (unless
    // `create` answers reuse without a fileID: then the bytes pass through the gateway).
    env.emu.reset_stats();
    let r = env
        .req("COPY", "/m/a.bin")
        .header("Destination", env.url("/n/sub/a.bin"))
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        env.emu.read("/other/sub/a.bin").expect("copied"),
        bytes_of(100_000, 10)
    );
    assert_eq!(
        env.emu.stats().calls(kind.part()),
        kind.known_parts(&env.emu, 100_000)
    );
    assert!(env.propfind("/n/sub/", "1").await.1.contains("a.bin"));
    // Overwrite: F onto it is refused; a missing destination folder is 409.
    let r = env
        .req("COPY", "/m/a.bin")
        .header("Destination", env.url("/n/sub/a.bin"))
        .header("Overwrite", "F")
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status().as_u16(), 412);
    let r = env
        .req("COPY", "/m/a.bin")
        .header("Destination", env.url("/n/nope/a.bin"))
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status().as_u16(), 409);
    // A file still in the queue is streamed through the gateway; MOVE removes the source.
    assert_eq!(put(&env, "/m/fresh.bin", bytes_of(150_000, 11)).await, 201);
    let r = env
        .req("MOVE", "/m/fresh.bin")
        .header("Destination", env.url("/n/fresh.bin"))
        .send()
        .await
        .expect("move");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        env.emu.read("/other/fresh.bin").expect("moved"),
        bytes_of(150_000, 11)
    );
    assert_eq!(
        env.req("GET", "/m/fresh.bin")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        404
    );
    // A folder, recursively.
    let r = env
        .req("COPY", "/m/dir/")
        .header("Destination", env.url("/n/dir/"))
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(env.emu.read("/other/dir/deep/y.txt").expect("copied"), b"y");
}

both!(
    background_put_is_readable_at_once_and_lands_in_123,
    known_content_is_uploaded_instantly,
    a_slice_fault_is_retried,
    sync_upload_answers_after_completion,
    a_failed_overwrite_keeps_the_old_file,
    explorer_sequence_costs_one_upload,
    finder_chunked_put,
    partial_put_is_refused,
    too_large_and_spool_full,
    forbidden_characters_round_trip,
    mkcol_rules_and_cache_invalidation,
    delete_of_a_big_folder_and_move_onto_a_folder_cost_one_trash_call,
    case_only_rename_is_a_rename,
    delete_of_a_locked_file_is_423,
    copy_reuses_content,
    client_junk_stays_local,
    copy_and_move_onto_existing_files,
    cross_mount_copy_and_move,
    put_costs,
);

/// A DELETE of a folder takes the uploads still queued into it (and into its subfolders) with
/// it: they are cancelled, never uploaded into the trashed folder, and none counts as failed.
#[tokio::test]
async fn delete_of_a_folder_cancels_the_uploads_queued_into_it() {
    let env = env(Kind::Open, "").await;
    // 123 refuses every create for now, so the uploads stay queued, retrying.
    env.emu.inject(Fault {
        endpoint: "/upload/v2/file/create".into(),
        kind: FaultKind::Http {
            status: 500,
            count: 1_000,
        },
    });
    for dir in ["/m/dir/", "/m/dir/sub/", "/m/other/"] {
        let r = env.req("MKCOL", dir).send().await.expect("mkcol");
        assert_eq!(r.status().as_u16(), 201, "{dir}");
    }
    assert_eq!(put(&env, "/m/dir/a.bin", bytes_of(1000, 1)).await, 201);
    assert_eq!(put(&env, "/m/dir/sub/b.bin", bytes_of(1000, 2)).await, 201);
    assert_eq!(put(&env, "/m/other/c.bin", bytes_of(1000, 3)).await, 201);
    let r = env.req("DELETE", "/m/dir/").send().await.expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    env.emu.clear_faults();

    // The upload outside the folder lands; the two inside never do, and none failed.
    eventually("the other upload lands", || {
        env.emu.read("/lib/other/c.bin").is_some()
    })
    .await;
    // The landed upload's job ends a moment after 123 holds the file: wait (bounded) until
    // no upload is queued or running and one has ended (the counts are not moved at the same
    // instant), then none may have failed.
    let value = |metrics: &str, name: &str| {
        metrics
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
            .to_string()
    };
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = metrics_text(&env).await;
        let ended = |name| value(&metrics, name).parse::<u64>().unwrap_or(0);
        if value(&metrics, "pan123_uploads_queued") == "0"
            && value(&metrics, "pan123_uploads_running") == "0"
            && ended("pan123_uploads_completed") + ended("pan123_uploads_failed") >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value(&metrics, "pan123_uploads_queued"), "0", "{metrics}");
    assert_eq!(value(&metrics, "pan123_uploads_running"), "0", "{metrics}");
    assert_eq!(value(&metrics, "pan123_uploads_failed"), "0", "{metrics}");
    assert_eq!(
        value(&metrics, "pan123_uploads_completed"),
        "1",
        "{metrics}"
    );
    assert_eq!(env.emu.read("/lib/dir/a.bin"), None);
    assert_eq!(env.emu.read("/lib/dir/sub/b.bin"), None);
    let failed = env.state_dir.path().join("failed");
    let kept = std::fs::read_dir(&failed).map_or(0, |d| d.count());
    assert_eq!(kept, 0, "nothing under {}", failed.display());
}

/// What one PUT costs at 123, endpoint by endpoint, once the mount's token and listing are
/// warm: a new file, then an overwrite of it. Both go to a temporary name and are swapped in
/// (docs/123.md, open §11), whatever `create` does with a taken name, so the counts are the same
/// under every reading except `complete_transient_errors`, which costs that many more polls.
async fn put_costs(kind: Kind) {
    let env = env(kind, "").await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    env.emu.reset_stats();
    let first = bytes_of(200_000, 21);
    assert_eq!(put(&env, "/m/cost.bin", first.clone()).await, 201);
    eventually("the new file lands", || {
        env.emu.read("/lib/cost.bin").as_deref() == Some(first.as_slice())
    })
    .await;
    let new_file = env.emu.stats().calls;
    env.emu.reset_stats();
    let second = bytes_of(200_000, 22);
    assert_eq!(put(&env, "/m/cost.bin", second.clone()).await, 204);
    eventually("the overwrite lands", || {
        env.emu.read("/lib/cost.bin").as_deref() == Some(second.as_slice())
    })
    .await;
    let mut overwrite = env.emu.stats().calls;
    assert_eq!(env.emu.list_names("/lib").expect("listing"), ["cost.bin"]);
    let polls = 2 + u64::from(env.emu.switches().complete_transient_errors);
    let counts = |pairs: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    match kind {
        Kind::Open => {
            // create, 4 slices, complete polls; then a listing and a rename swap it in.
            let upload = [
                ("/upload/v2/file/create", 1),
                ("/upload/v2/file/slice", 4),
                ("/upload/v2/file/upload_complete", polls),
                ("/api/v1/file/name", 1),
            ];
            let mut want = counts(&upload);
            want.insert("/api/v2/file/list".into(), 1);
            assert_eq!(new_file, want, "new file");
            // The swap lists the folder and trashes the old version. How often the overwrite
            // lists it in all depends on when the vfs's refresh after the first upload lands
            // (the PUT's own lookup may re-list it): the write calls are exact.
            let lists = overwrite.remove("/api/v2/file/list").unwrap_or(0);
            assert!((1..=3).contains(&lists), "{lists} listings");
            want.remove("/api/v2/file/list");
            want.insert("/api/v1/file/trash".into(), 1);
            assert_eq!(overwrite, want, "overwrite");
        }
        Kind::Web => {
            // Under static S3 credentials (a reading of `upload_request`) the gateway signs the
            // S3 call itself and completes with `upload_complete`; else it asks for a presigned
            // part and completes with `upload_complete/v2`.
            let mut switches = pan123_emulator::Switches::default();
            crate::common::profiles::current_profile().apply(&mut switches);
            let upload: &[(&str, u64)] =
                if switches.upload_credentials == pan123_emulator::UploadCredentials::Static {
                    &[
                        ("/b/api/file/upload_request", 1),
                        ("s3", 1),
                        ("/b/api/file/upload_complete", 1),
                        ("/b/api/file/rename", 1),
                    ]
                } else {
                    &[
                        ("/b/api/file/upload_request", 1),
                        ("/b/api/file/s3_upload_object/auth", 1),
                        ("s3", 1),
                        ("/b/api/file/upload_complete/v2", 1),
                        ("/b/api/file/rename", 1),
                    ]
                };
            let mut want = counts(upload);
            want.insert("/b/api/file/list/new".into(), 1);
            assert_eq!(new_file, want, "new file");
            // How often the overwrite lists the folder depends on when the vfs's refresh after
            // the first upload lands (1 to 3 in practice): the write calls are exact.
            let lists = overwrite.remove("/b/api/file/list/new").unwrap_or(0);
            assert!((1..=3).contains(&lists), "{lists} listings");
            want.remove("/b/api/file/list/new");
            want.insert("/b/api/file/trash".into(), 1);
            assert_eq!(overwrite, want, "overwrite");
        }
    }
}
