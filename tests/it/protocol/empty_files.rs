//! Empty files (issue 21): 123 may reject empty uploads (the emulator's `zero_byte_upload =
//! "reject"`), so an empty PUT is kept by the gateway in `state_dir`, never uploaded: listed,
//! served as 0 bytes, with its dead properties and client time, across a restart, under each
//! reading of 123 and each upload mode; a later PUT with bytes makes it a real 123 file.

use crate::common::*;
use pan123_emulator::{EmulatorConfig, ZeroByteUpload};

const CREATE: &str = "/upload/v2/file/create";
const PROPPATCH: &str = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:x-empty\"><D:set><D:prop><Z:colour>teal</Z:colour></D:prop></D:set></D:propertyupdate>";
const ALLPROP: &str =
    "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";

async fn put(env: &TestEnv, path: &str, body: &'static [u8], mtime: Option<&str>) -> u16 {
    let mut req = env.req("PUT", path).body(body);
    if let Some(t) = mtime {
        req = req.header("X-OC-Mtime", t);
    }
    req.send().await.expect("put").status().as_u16()
}

async fn get(env: &TestEnv, path: &str) -> (u16, Vec<u8>) {
    let res = env.get_following(path, &[]).await;
    let status = res.status().as_u16();
    (status, res.bytes().await.expect("body").to_vec())
}

async fn allprop(env: &TestEnv, path: &str) -> String {
    let res = env
        .req("PROPFIND", path)
        .header("Depth", "0")
        .body(ALLPROP)
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207, "{path}");
    res.text().await.expect("body")
}

/// The file at `path` is listed and served as an empty file, with its colour and its time
/// (1600000000 is 2020-09-13T12:26:40Z).
async fn assert_kept(env: &TestEnv, folder: &str, name: &str) {
    let (status, body) = env.propfind(folder, "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains(name), "{body}");
    let path = format!("{folder}{name}");
    let (status, bytes) = get(env, &path).await;
    assert_eq!((status, bytes.len()), (200, 0), "{path}");
    let props = allprop(env, &path).await;
    assert!(props.contains("teal"), "{props}");
    assert!(props.contains("13 Sep 2020 12:26:40 GMT"), "{props}");
    assert!(
        props.contains("<D:getcontentlength>0<") || props.contains(":getcontentlength>0<"),
        "{props}"
    );
}

async fn empty_files_are_kept(reading: ZeroByteUpload) {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.zero_byte_upload = reading;
    let mut env = TestEnv::start(cfg, |emu| {
        let b = emu.mkdir_p("/bg");
        let s = emu.mkdir_p("/sy");
        emu.put_file("/bg/old.txt", "to be emptied");
        emu.put_file("/bg/zero.bin", "");
        let w = emu.mkdir_p("/wb");
        open_mount(
            "/b",
            "proxy",
            &format!("root_id = {b}\ncache_ttl = \"0s\"\n"),
        ) + &open_mount(
            "/s",
            "proxy",
            &format!("root_id = {s}\ncache_ttl = \"0s\"\nupload = \"sync\"\n"),
        ) + &web_mount(
            "/w",
            "proxy",
            &format!("root_id = {w}\ncache_ttl = \"0s\"\n"),
        )
    })
    .await;

    for path in [
        "/b/empty.txt",
        "/s/empty.txt",
        "/w/empty.txt",
        "/b/old.txt",
        "/b/gone.txt",
    ] {
        assert_eq!(
            put(&env, path, b"", Some("1600000000")).await,
            if path == "/b/old.txt" { 204 } else { 201 },
            "{path}"
        );
        let res = env
            .req("PROPPATCH", path)
            .body(PROPPATCH)
            .send()
            .await
            .expect("proppatch");
        assert_eq!(res.status().as_u16(), 207, "{path}");
    }
    assert_kept(&env, "/b/", "empty.txt").await;
    assert_kept(&env, "/s/", "empty.txt").await;
    // Emptying a file replaces it on 123 (it goes to the recycle bin).
    assert_kept(&env, "/b/", "old.txt").await;
    assert!(
        env.emu.lookup("/bg/old.txt").is_none(),
        "the old content was removed"
    );
    // A copy of an empty file made elsewhere is kept the same way.
    let res = env
        .req("COPY", "/b/zero.bin")
        .header("Destination", env.url("/b/zero-copy.bin"))
        .send()
        .await
        .expect("copy");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(get(&env, "/b/zero-copy.bin").await, (200, Vec::new()));
    assert_eq!(
        env.emu.stats().calls(CREATE),
        0,
        "no empty upload was tried"
    );
    assert_eq!(
        env.emu.stats().calls("/b/api/file/upload_request"),
        0,
        "nor on the web mount"
    );
    // A deleted empty file is gone.
    let res = env
        .req("DELETE", "/b/gone.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);

    // A restart keeps them (and not the deleted one).
    env.start_gateway().await;
    assert_kept(&env, "/w/", "empty.txt").await;
    assert_kept(&env, "/b/", "empty.txt").await;
    assert_kept(&env, "/s/", "empty.txt").await;
    assert_kept(&env, "/b/", "old.txt").await;
    let (_, body) = env.propfind("/b/", "1").await;
    assert!(!body.contains("gone.txt"), "{body}");
    assert!(body.contains("zero-copy.bin"), "{body}");

    // Content makes them real 123 files, and a restart no longer shows them empty.
    assert_eq!(
        put(&env, "/b/empty.txt", b"now with bytes", None).await,
        204
    );
    assert_eq!(put(&env, "/s/empty.txt", b"sync bytes", None).await, 204);
    let emu = &env.emu;
    eventually("the background upload lands", || {
        emu.read("/bg/empty.txt").as_deref() == Some(b"now with bytes".as_slice())
    })
    .await;
    assert_eq!(
        emu.read("/sy/empty.txt").as_deref(),
        Some(b"sync bytes".as_slice())
    );
    env.start_gateway().await;
    assert_eq!(
        get(&env, "/b/empty.txt").await,
        (200, b"now with bytes".to_vec())
    );
    assert_eq!(
        get(&env, "/s/empty.txt").await,
        (200, b"sync bytes".to_vec())
    );
    let props = allprop(&env, "/b/empty.txt").await;
    assert!(
        props.contains("teal"),
        "dead properties stay with the path: {props}"
    );
}

#[tokio::test]
async fn empty_files_are_kept_where_123_accepts_empty_uploads() {
    empty_files_are_kept(ZeroByteUpload::Reuse).await;
}

#[tokio::test]
async fn empty_files_are_kept_where_123_rejects_empty_uploads() {
    empty_files_are_kept(ZeroByteUpload::Reject).await;
}
