//! Behaviour README promises that no other suite checks: the LOCK default timeout, dead
//! properties and client times surviving a restart, client junk seen only by its writer, the
//! listing cache's stale-while-revalidate, the lifetime of issued signed URLs and of client
//! junk (by moving the gateway's clock, not by waiting), and the built-in client rows
//! (RaiDrive, Kodi) proxied on a redirect mount.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::EmulatorConfig;

const EXCLUSIVE: &str = "exclusive";
const SHARED: &str = "shared";

/// A writable Open mount `/m` over `/lib` (with `a.txt`), proxying, with more mount keys.
async fn env_with(mount_extra: &str, server_extra: &str, users: &str) -> TestEnv {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.complete_pending_polls = 0;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let mount_extra = mount_extra.to_string();
    TestEnv::builder(cfg)
        .mounts(move |emu| {
            emu.put_file("/lib/a.txt", b"documented bytes".to_vec());
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}\n{mount_extra}"))
        })
        .users(users)
        .server(server_extra)
        .start()
        .await
}

/// LOCK's status and the timeout its `lockdiscovery` grants.
async fn lock(
    env: &TestEnv,
    path: &str,
    timeout: Option<&str>,
    scope: &str,
) -> (u16, String, String) {
    let body = format!("<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>");
    let mut req = env.req("LOCK", path).body(body);
    if let Some(t) = timeout {
        req = req.header("Timeout", t);
    }
    let res = req.send().await.expect("lock");
    let status = res.status().as_u16();
    let body = res.text().await.expect("body");
    let granted = body
        .split_once("timeout>")
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(t, _)| t.to_string())
        .unwrap_or_default();
    (status, granted, body)
}

/// README: a LOCK without `Timeout` and any exclusive lock last at most 10 minutes (dav-server's
/// cap); a shared lock lasts what it asks, at most `lock_timeout_max` (1 h by default).
#[tokio::test]
async fn lock_timeouts_are_the_documented_ones() {
    let env = env_with("", "", "").await;
    let (status, timeout, body) = lock(&env, "/m/a.txt", None, EXCLUSIVE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(timeout, "Second-600", "{body}");
    for asked in ["Infinite", "Second-86400"] {
        let path = format!("/m/exclusive-{asked}.txt");
        let (status, timeout, body) = lock(&env, &path, Some(asked), EXCLUSIVE).await;
        assert_eq!(status, 201, "{asked}: {body}");
        assert_eq!(timeout, "Second-600", "{asked}: {body}");
        let path = format!("/m/shared-{asked}.txt");
        let (status, timeout, body) = lock(&env, &path, Some(asked), SHARED).await;
        assert_eq!(status, 201, "{asked}: {body}");
        assert_eq!(timeout, "Second-3600", "shared, {asked}: {body}");
    }
    let (status, timeout, body) = lock(&env, "/m/short.txt", Some("Second-120"), SHARED).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(timeout, "Second-120", "{body}");
}

/// PROPPATCH's dead properties and a client's `X-OC-Mtime` live in `state_dir` and outlast the
/// process.
#[tokio::test]
async fn dead_properties_and_client_times_survive_a_restart() {
    let mut env = env_with("", "", "").await;
    let res = env
        .req("PUT", "/m/stamped.txt")
        .header("X-OC-Mtime", "1500000000")
        .body("stamped")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(header(&res, "x-oc-mtime"), "accepted");
    let proppatch = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:x-documented\"><D:set><D:prop><Z:colour>vermilion</Z:colour></D:prop></D:set></D:propertyupdate>";
    let res = env
        .req("PROPPATCH", "/m/a.txt")
        .body(proppatch)
        .send()
        .await
        .expect("proppatch");
    assert_eq!(res.status().as_u16(), 207);
    let emu = &env.emu;
    eventually("the upload lands", || {
        emu.read("/lib/stamped.txt").is_some()
    })
    .await;

    env.start_gateway().await;
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "{body}");
    // 1500000000 is 2017-07-14T02:40:00Z.
    assert!(body.contains("14 Jul 2017 02:40:00 GMT"), "{body}");
    let allprop = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";
    let res = env
        .req("PROPFIND", "/m/a.txt")
        .header("Depth", "0")
        .body(allprop)
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(body.contains("vermilion"), "{body}");
}

/// Client junk is kept on the gateway and listed back to the user who wrote it, and only to
/// that user.
#[tokio::test]
async fn client_junk_is_seen_only_by_the_user_who_wrote_it() {
    let env = env_with(
        "",
        "",
        "[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nmounts = [\"*\"]\nwrite = true\n",
    )
    .await;
    let res = env
        .req("PUT", "/m/.DS_Store")
        .body("alice's")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(body.contains(".DS_Store"), "{body}");
    let bob = |method: &str, path: &str| {
        env.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                env.url(path),
            )
            .basic_auth("bob", Some(PASSWORD))
    };
    let res = bob("PROPFIND", "/m/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(!body.contains(".DS_Store"), "{body}");
    let res = bob("GET", "/m/.DS_Store").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 404);
    assert!(
        env.emu.lookup("/lib/.DS_Store").is_none(),
        "junk stays local"
    );
}

/// An expired listing is served at once and refreshed in the background: one list call, and
/// the next request sees the change.
#[tokio::test]
async fn an_expired_listing_is_served_at_once_then_refreshed_in_the_background() {
    let env = env_with("cache_ttl = \"1s\"\n", "", "").await;
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "{body}");
    env.emu.put_file("/lib/new.txt", b"new".to_vec());
    env.emu.reset_stats();
    // Past the cache's lifetime (a configured duration, not a synchronisation).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(
        !body.contains("new.txt"),
        "the stale listing is served: {body}"
    );
    let emu = &env.emu;
    eventually("one background refresh", || {
        emu.stats().calls("/api/v2/file/list") == 1
    })
    .await;
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("new.txt"), "{body}");
    assert_eq!(env.emu.stats().calls("/api/v2/file/list"), 1);
}

/// A URL issued by `proxy-url` works until `sign_ttl` (1 h by default) has passed, and is
/// refused after (the gateway's clock is moved forward, no waiting).
#[tokio::test]
async fn issued_signed_urls_work_until_sign_ttl() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", b"signed bytes".to_vec());
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "proxy-url", &format!("root_id = {id}"))
    })
    .await;
    let res = env.req("GET", "/m/a.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = header(&res, "location");
    let plain = reqwest::Client::new();
    let status = |url: String| {
        let plain = plain.clone();
        async move {
            plain
                .get(url)
                .send()
                .await
                .expect("signed get")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(location.clone()).await, 200);
    let clock = env.clock();
    clock.advance(Duration::from_secs(3600 - 10));
    assert_eq!(status(location.clone()).await, 200, "10 s before sign_ttl");
    clock.advance(Duration::from_secs(11));
    assert_eq!(status(location.clone()).await, 403, "1 s after sign_ttl");
    // A URL issued now works again.
    let res = env.req("GET", "/m/a.txt").send().await.expect("get");
    assert_eq!(status(header(&res, "location")).await, 200);
}

/// Client junk lives a day: listed back to its writer for 24 hours, then forgotten.
#[tokio::test]
async fn client_junk_lives_a_day() {
    let env = env_with("", "", "").await;
    let res = env
        .req("PUT", "/m/._a.txt")
        .body("apple double")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let clock = env.clock();
    clock.advance(Duration::from_secs(24 * 3600 - 60));
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(body.contains("._a.txt"), "a minute before a day: {body}");
    clock.advance(Duration::from_secs(120));
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(!body.contains("._a.txt"), "a minute after a day: {body}");
    let res = env.req("GET", "/m/._a.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 404);
}

/// README: RaiDrive and Kodi follow redirects to foreign hosts badly, so the built-in client
/// rows proxy them even on a redirect mount; other clients are redirected.
#[tokio::test]
async fn raidrive_and_kodi_are_proxied_on_a_redirect_mount() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/film.mkv", bytes_of(50_000, 3));
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "redirect", &format!("root_id = {id}"))
    })
    .await;
    for ua in [
        "RaiDrive/2023.9.0",
        "Kodi/21.0 (X11; Linux x86_64) App_Bitness/64 Version/21.0-(21.0.0)-Git:20240403-9",
    ] {
        env.emu.reset_stats();
        let res = env
            .req("GET", "/m/film.mkv")
            .header("User-Agent", ua)
            .header("Range", "bytes=100-199")
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 206, "{ua}");
        assert_eq!(
            res.bytes().await.expect("body").as_ref(),
            &bytes_of(50_000, 3)[100..200],
            "{ua}"
        );
        assert_eq!(env.emu.stats().calls("cdn"), 1, "{ua}: proxied");
    }
    let res = env
        .req("GET", "/m/film.mkv")
        .header("User-Agent", "VLC/3.0.20 LibVLC/3.0.20")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 302, "other clients are redirected");
}
