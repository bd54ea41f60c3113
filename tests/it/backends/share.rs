//! Share mounts beyond the conformance suite: signed and paced listing, the download hop and
//! its Referer, a wrong password, and listing failures that must never look like short folders.

use std::time::Instant;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind, Host};

const KEY: &str = "sh4re-Key";
const PASSWORD: &str = "pw42";
const LIST: &str = "/b/api/share/get";
const MANY: usize = 250;

/// `/lib` shared as `KEY` with `PASSWORD`: a folder of 250 files, a nested file, a film.
fn seed(emu: &Emulator) {
    for i in 0..MANY {
        emu.put_file(&format!("/lib/many/f{i:03}.txt"), format!("file {i}"));
    }
    emu.put_file("/lib/a/b/c.txt", "nested");
    emu.put_file("/lib/film.mkv", bytes_of(200_000, 5));
    emu.add_share(KEY, Some(PASSWORD), "/lib");
}

async fn env_with(mounts: impl FnOnce(&Emulator) -> String) -> TestEnv {
    TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        mounts(emu)
    })
    .await
}

async fn share_env(download: &str) -> TestEnv {
    env_with(|_| share_mount("/s", download, KEY, Some(PASSWORD), "")).await
}

/// Waits (bounded) until the start-up probe's page has reached the emulator, so call counts
/// that follow are the test's own.
async fn settle(env: &TestEnv, calls: u64) {
    for _ in 0..200 {
        if env.emu.stats().calls(LIST) >= calls {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the emulator never saw {calls} listing calls");
}

#[tokio::test]
async fn a_folder_of_250_lists_in_three_signed_pages() {
    let env = share_env("auto").await;
    // The root (probe + first listing), then count only the big folder.
    let (status, _) = env.propfind("/s/", "1").await;
    assert_eq!(status, 207);
    settle(&env, 2).await;
    env.emu.reset_stats();
    let started = Instant::now();
    let (status, body) = env.propfind("/s/many/", "1").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 207, "{body}");
    assert_eq!(responses(&body), MANY + 1);
    for i in [0, 99, 100, 199, 200, MANY - 1] {
        assert!(
            body.contains(&format!("/s/many/f{i:03}.txt</D:href>")),
            "f{i:03}"
        );
    }
    let stats = env.emu.stats();
    assert_eq!(stats.calls(LIST), 3, "100 + 100 + 50");
    assert_eq!(stats.refused(LIST), 0);
    eprintln!(
        "250 entries: {} list calls in {elapsed:?}",
        stats.calls(LIST)
    );
    // Cached: the same listing again costs nothing.
    let (status, _) = env.propfind("/s/many/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(env.emu.stats().calls(LIST), 3);
}

/// Listing pages of the web API are paced gateway-wide, one per 700 ms (OpenList's bucket, at
/// 123's request), across mounts: a share mount and a personal mount listing big folders at
/// once never send two pages closer together, read from the emulator's arrival times.
#[tokio::test]
async fn listing_pages_of_two_mounts_at_once_are_700_ms_apart() {
    let env = env_with(|emu| {
        let root = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            share_mount("/s", "auto", KEY, Some(PASSWORD), ""),
            web_mount("/w", "auto", &format!("root_id = {root}\n"))
        )
    })
    .await;
    // Both mounts' start-up probes have listed, so what follows is the test's own.
    settle(&env, 1).await;
    for _ in 0..200 {
        if env.emu.stats().calls("/b/api/file/list/new") >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    env.emu.reset_stats();
    let (share, web) = tokio::join!(env.propfind("/s/many/", "1"), env.propfind("/w/many/", "1"));
    assert_eq!(share.0, 207, "{}", share.1);
    assert_eq!(web.0, 207, "{}", web.1);
    assert_eq!(responses(&share.1), MANY + 1);
    assert_eq!(responses(&web.1), MANY + 1);
    let mut arrivals = env.emu.call_times(LIST);
    arrivals.extend(env.emu.call_times("/b/api/file/list/new"));
    arrivals.sort_unstable();
    // Each mount: its root (the start-up probe bypasses the cache) and three pages of `many`.
    assert_eq!(arrivals.len(), 8, "four pages each: {arrivals:?}");
    // The gateway spaces its sends by 700 ms. An arrival can be late by however long a busy
    // two-core machine delays one request in flight, which shortens one gap and lengthens the
    // next, so single gaps are held only to half the spacing (a pacer that let two pages go
    // together would show a gap near 0), while the span from the first arrival to the last,
    // where only the two ends' delays count, must hold seven whole spacings less 100 ms.
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= 350,
            "pages {} ms apart: {arrivals:?}",
            pair[1] - pair[0]
        );
    }
    let span = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        span >= 7 * 700 - 100,
        "eight pages over {span} ms: {arrivals:?}"
    );
}

/// The emulator refuses any web API call whose signature is missing or wrong (HTTP 403, code
/// 403), so every listing and link above was verified; this shows the check is live.
#[tokio::test]
async fn the_emulator_checks_every_signature() {
    let env = share_env("auto").await;
    let unsigned = reqwest::get(format!(
        "{}{LIST}?shareKey={KEY}&SharePwd={PASSWORD}&parentFileId=0&Page=1",
        env.emu.host_url(Host::Web)
    ))
    .await
    .expect("unsigned");
    assert_eq!(unsigned.status().as_u16(), 403);
    let forged = reqwest::get(format!(
        "{}{LIST}?883022862=1700000000-1234567-226109213&shareKey={KEY}&SharePwd={PASSWORD}",
        env.emu.host_url(Host::Web)
    ))
    .await
    .expect("forged");
    assert_eq!(forged.status().as_u16(), 403);
    env.emu.reset_stats();
    let (status, _) = env.propfind("/s/a/b/", "1").await;
    assert_eq!(status, 207);
    let res = env.get_following("/s/a/b/c.txt", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "nested");
    let stats = env.emu.stats();
    assert!(stats.calls(LIST) >= 3, "root, a, a/b: {:?}", stats.calls);
    assert_eq!(stats.calls("/b/api/share/download/info"), 1);
}

/// Under `auto` the gateway proxies, sending the Referer the CDN demands; the hop may answer
/// with a 302 or with JSON.
#[tokio::test]
async fn auto_proxies_with_the_referer_through_either_hop_style() {
    let env = share_env("auto").await;
    let all = bytes_of(200_000, 5);
    env.emu.reset_stats();
    let res = env
        .get_following("/s/film.mkv", &[("Range", "bytes=1000-1999")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &all[1000..2000]);
    let stats = env.emu.stats();
    assert_eq!(stats.calls("/b/api/share/download/info"), 1);
    assert_eq!(stats.calls("web-pro"), 1);
    // The CDN answers 403 without `Referer: <web-pro host>/`: the bytes prove it was sent.
    assert_eq!(stats.calls("cdn"), 1);

    // A second range reuses the cached link: no API call, no hop.
    let res = env
        .get_following("/s/film.mkv", &[("Range", "bytes=-10")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        &all[all.len() - 10..]
    );
    assert_eq!(env.emu.stats().calls("web-pro"), 1);

    // The JSON style of the hop, on a fresh gateway (empty link cache).
    env.emu.set_switches(|s| s.share_redirect_json = true);
    let mut env = env;
    env.start_gateway().await;
    let res = env.get_following("/s/film.mkv", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), all.as_slice());
    // The web API, the hop and the CDN each on its own host, with the Referer each wants.
    assert_no_wrong_host(&env.emu);
}

/// A forced redirect is a 302 to the CDN, which refuses a client that does not send the
/// Referer (the conformance row share_redirect checks the same through the suite).
#[tokio::test]
async fn forced_redirect_is_refused_by_the_cdn_without_the_referer() {
    let env = share_env("redirect").await;
    let res = env.req("GET", "/s/film.mkv").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = header(&res, "location");
    let refused = reqwest::get(&location).await.expect("cdn");
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.text().await.expect("body").contains("Referer"));
}

#[tokio::test]
async fn a_wrong_password_is_502_with_123s_message_and_other_mounts_work() {
    let env = env_with(|_| {
        format!(
            "{}{}{}",
            share_mount("/bad", "auto", KEY, Some("wrong"), ""),
            share_mount("/nokey", "auto", "no-such-share", None, ""),
            share_mount("/good", "auto", KEY, Some(PASSWORD), ""),
        )
    })
    .await;
    for path in ["/bad/", "/bad/film.mkv", "/nokey/"] {
        let (status, body) = env.propfind(path, "1").await;
        assert_eq!(status, 502, "{path}: {body}");
        assert!(
            body.contains("分享码错误或者分享地址错误"),
            "{path}: {body}"
        );
    }
    let res = env.get_following("/bad/film.mkv", &[]).await;
    assert_eq!(res.status().as_u16(), 502);
    let (status, body) = env.propfind("/good/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("film.mkv"));
    // The start-up probe (logged as a warning) reports the same message.
    let gw = env.gw.as_ref().expect("gateway");
    let bad = &gw.state.mounts[0];
    match bad.vfs.backend().probe().await {
        Err(pan123_webdav::backend::Error::Upstream { message, .. }) => {
            assert_eq!(message, "分享码错误或者分享地址错误")
        }
        other => panic!("probe: {other:?}"),
    }
    assert!(gw.state.mounts[2].vfs.backend().probe().await.is_ok());
}

/// A failed page is an error for the whole listing, never a folder of the pages that worked.
#[tokio::test]
async fn a_listing_fault_on_page_2_is_an_error_not_a_short_folder() {
    let env = share_env("auto").await;
    let (status, _) = env.propfind("/s/", "1").await;
    assert_eq!(status, 207);
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::FailPage { page: 2, count: 1 },
    });
    let (status, body) = env.propfind("/s/many/", "1").await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("f000.txt"), "{body}");
    // Nothing short was cached: the next try lists everything.
    let (status, body) = env.propfind("/s/many/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(responses(&body), MANY + 1);
}

#[tokio::test]
async fn unavailable_pages_are_retried_then_reported() {
    let env = share_env("auto").await;
    let (status, _) = env.propfind("/s/", "1").await;
    assert_eq!(status, 207);
    settle(&env, 2).await;
    // One 503 is retried (and paced) and the listing completes.
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::Http {
            status: 503,
            count: 1,
        },
    });
    env.emu.reset_stats();
    let (status, body) = env.propfind("/s/many/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(responses(&body), MANY + 1);
    assert_eq!(env.emu.stats().calls(LIST), 4, "three pages and one retry");
    // A lasting outage is a 503 with Retry-After, not a listing.
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::Http {
            status: 503,
            count: 3,
        },
    });
    let res = env
        .req("PROPFIND", "/s/a/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 503);
    assert!(!header(&res, "retry-after").is_empty());
}

/// An answer that is not JSON (an HTML error page, a proxy's "OK") is an error: OpenList reads
/// it as an empty folder (docs/123.md, web §0.2).
#[tokio::test]
async fn a_body_that_is_not_json_is_an_error_not_an_empty_folder() {
    let env = share_env("auto").await;
    let (status, _) = env.propfind("/s/", "1").await;
    assert_eq!(status, 207);
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::Http {
            status: 200,
            count: 1,
        },
    });
    let (status, body) = env.propfind("/s/a/", "1").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("not JSON"), "{body}");
}

/// Share mounts are read-only by nature, whatever the user may do.
#[tokio::test]
async fn writes_are_refused_as_read_only() {
    let env = share_env("auto").await;
    let res = env.req("OPTIONS", "/s/").send().await.expect("options");
    assert_eq!(header(&res, "dav"), "1");
    assert_eq!(header(&res, "allow"), "OPTIONS, GET, HEAD, PROPFIND");
    let res = env
        .req("PUT", "/s/new.txt")
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.expect("body").contains("read-only"));
}

/// Some shares hand out downloads only to a logged-in account (123's code 5112 since 2025-07):
/// a share mount with `access_token` (a web session token copied from a browser) downloads; one
/// without gets 502 with 123's explanation, never bytes of an error page.
#[tokio::test]
async fn an_access_token_opens_shares_that_need_a_login() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.share_download_needs_login = true;
    let env = TestEnv::start(cfg, |emu| {
        seed(emu);
        let token = emu.web_session_token();
        format!(
            "{}{}",
            share_mount("/anon", "proxy", KEY, Some(PASSWORD), ""),
            share_mount(
                "/tok",
                "proxy",
                KEY,
                Some(PASSWORD),
                &format!("access_token = \"{token}\"")
            )
        )
    })
    .await;
    let res = env.get_following("/tok/film.mkv", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        bytes_of(200_000, 5).as_slice()
    );
    let res = env.get_following("/anon/film.mkv", &[]).await;
    assert_eq!(res.status().as_u16(), 502);
    let text = res.text().await.expect("body");
    assert!(text.contains("您需要注册登录或付费后下载"), "{text}");
    // Listing needs no login either way.
    let (status, body) = env.propfind("/anon/", "1").await;
    assert_eq!(status, 207, "{body}");
}
