//! Freshness on demand (issue 21): `Cache-Control: no-cache` (or `Pragma: no-cache`) on a
//! PROPFIND or GET lists the folder it is about afresh, even within `cache_ttl`, with one list
//! call, and concurrent ones share it; `cache_ttl_by_depth` gives folders at each depth their
//! own lifetime. Counts are the emulator's list calls.

use crate::common::*;
use pan123_emulator::EmulatorConfig;

const LIST: &str = "/api/v2/file/list";

fn lib_id(emu: &pan123_emulator::Emulator) -> u64 {
    emu.lookup("/lib").map(|e| e.id).unwrap_or(0)
}

fn seed(emu: &pan123_emulator::Emulator) {
    emu.put_file("/lib/a.txt", "a");
    emu.put_file("/lib/sub/x.txt", "x");
    emu.put_file("/lib/other/o.txt", "o");
}

async fn propfind_with(env: &TestEnv, path: &str, header: Option<(&str, &str)>) -> (u16, String) {
    let mut rb = env.req("PROPFIND", path).header("Depth", "1");
    if let Some((k, v)) = header {
        rb = rb.header(k, v);
    }
    let res = rb.send().await.expect("propfind");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

const NO_CACHE: Option<(&str, &str)> = Some(("Cache-Control", "no-cache"));

#[tokio::test]
async fn no_cache_lists_the_folder_afresh_with_one_call_and_only_when_asked() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        open_mount(
            "/m",
            "proxy",
            &format!("root_id = {}\ncache_ttl = \"1h\"", lib_id(emu)),
        )
    })
    .await;
    let (status, xml) = propfind_with(&env, "/m/", None).await;
    assert_eq!(status, 207);
    assert_eq!(responses(&xml), 4, "{xml}");

    // A file added behind the gateway's back: within cache_ttl, not seen without the header…
    env.emu.put_file("/lib/new.txt", "new");
    env.emu.reset_stats();
    let (_, xml) = propfind_with(&env, "/m/", None).await;
    assert!(!xml.contains("new.txt"));
    assert_eq!(env.emu.stats().calls(LIST), 0);
    // …seen at once with it. Eight clients asking at once share one list call (the
    // revalidation running, or one started under a second ago: at most one more if this
    // machine stalls past that second).
    let asks = (0..8).map(|_| propfind_with(&env, "/m/", NO_CACHE));
    for (status, xml) in futures_util::future::join_all(asks).await {
        assert_eq!(status, 207);
        assert!(xml.contains("new.txt"), "{xml}");
    }
    let calls = env.emu.stats().calls(LIST);
    assert!(
        (1..=2).contains(&calls),
        "{calls} list calls for 8 revalidations"
    );
    // And from then on without the header too, for no call.
    env.emu.reset_stats();
    let (_, xml) = propfind_with(&env, "/m/", None).await;
    assert!(xml.contains("new.txt"));
    assert_eq!(env.emu.stats().calls(LIST), 0);

    // A client sending no-cache over and over costs at most one list call per second: asked
    // until the next new file shows, the folder was listed exactly once.
    env.emu.put_file("/lib/later.txt", "l");
    let mut shown = false;
    for _ in 0..100 {
        if propfind_with(&env, "/m/", NO_CACHE)
            .await
            .1
            .contains("later.txt")
        {
            shown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(shown, "later.txt shows once a second has passed");
    assert_eq!(env.emu.stats().calls(LIST), 1);

    // A GET revalidates the file's folder: a file added elsewhere is found, with one list call.
    env.emu.reset_stats();
    let res = env.req("GET", "/m/sub/x.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(env.emu.stats().calls(LIST), 1, "sub listed once (cold)");
    env.emu.put_file("/lib/sub/late.txt", "late bytes");
    let res = env.req("GET", "/m/sub/late.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 404, "not without the header");
    let res = env
        .req("GET", "/m/sub/late.txt")
        .header("Cache-Control", "no-cache")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"late bytes");
    assert_eq!(env.emu.stats().calls(LIST), 2);

    // `Pragma: no-cache` too, on a PROPFIND of the new file itself (its folder is revalidated).
    assert_eq!(propfind_with(&env, "/m/other/", None).await.0, 207);
    env.emu.put_file("/lib/other/pragma.txt", "p");
    env.emu.reset_stats();
    let (status, _) = propfind_with(&env, "/m/other/pragma.txt", None).await;
    assert_eq!(status, 404);
    let pragma = Some(("Pragma", "no-cache"));
    let (status, xml) = propfind_with(&env, "/m/other/pragma.txt", pragma).await;
    assert_eq!(status, 207, "{xml}");
    assert_eq!(env.emu.stats().calls(LIST), 1);
}

#[tokio::test]
async fn cache_ttl_by_depth_gives_each_depth_its_lifetime() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        open_mount(
            "/m",
            "proxy",
            &format!(
                "root_id = {}\ncache_ttl = \"1h\"\ncache_ttl_by_depth = {{ 1 = \"0s\" }}",
                lib_id(emu)
            ),
        )
    })
    .await;
    assert_eq!(propfind_with(&env, "/m/", None).await.0, 207);
    assert_eq!(propfind_with(&env, "/m/sub/", None).await.0, 207);
    env.emu.put_file("/lib/b.txt", "b");
    env.emu.put_file("/lib/sub/y.txt", "y");
    env.emu.reset_stats();
    // The root (depth 0) keeps cache_ttl: served from the cache, no call.
    let (_, xml) = propfind_with(&env, "/m/", None).await;
    assert!(!xml.contains("b.txt"));
    assert_eq!(env.emu.stats().calls(LIST), 0);
    // `sub` (depth 1) is always stale: served, and refreshed in the background.
    let (status, _) = propfind_with(&env, "/m/sub/", None).await;
    assert_eq!(status, 207);
    let emu = &env.emu;
    eventually("sub refreshed", || emu.stats().calls(LIST) >= 1).await;
    let mut seen = false;
    for _ in 0..40 {
        if propfind_with(&env, "/m/sub/", None)
            .await
            .1
            .contains("y.txt")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the depth-1 folder shows the new file");
    // The root still has not been listed again.
    let (_, xml) = propfind_with(&env, "/m/", None).await;
    assert!(!xml.contains("b.txt"));
}
