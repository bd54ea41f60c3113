//! Upstream faults for the share, link (direct-link tree) and web (personal account) mounts,
//! all injected through the emulator: 429 storms and bursts, 5xx bursts and outages on listing,
//! on the download-link endpoints, on the `web-pro` hop and on the CDN / direct host; cuts in
//! the middle of a body; links the CDN refuses; 123's daily traffic limit (5113); web rate
//! limits in each shape they have been seen in (`web_rate_limit_style`).
//!
//! Each case asserts statuses and upstream call counts (emulator stats), never timings, except
//! a generous hang guard around every request. Slow upstreams (the configured timeouts) are in
//! `tests/it/backends/upstream_timeouts.rs`.
//!
//! Covered elsewhere, not repeated here:
//! * Open API mounts: `tests/it/backends/open_read.rs`, `tests/it/backends/timeouts.rs`.
//! * A web session expiring in the middle of a listing walk: `tests/it/backends/web.rs`
//!   (`a_401_in_the_middle_of_a_listing_is_one_relogin_and_one_retry`).
//! * An expired `auth_key` re-signed on a link mount: `tests/it/backends/link.rs`
//!   (`an_expired_auth_key_is_re_signed`, `a_refused_signed_link_is_re_signed_by_the_proxy`).
//! * A share listing page failing with a code (`fail_page`) or answering a body that is not
//!   JSON: `tests/it/backends/share.rs`.

use std::time::Duration;

use crate::common::web_api::*;
use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, FaultKind};

const SHARE_KEY: &str = "faults-Key";
/// Attempts of one web API call under a lasting 429: the first and four retries.
const ATTEMPTS_429: u64 = 5;
/// Attempts of one web API call under a lasting 5xx: the first and two retries.
const ATTEMPTS_5XX: u64 = 3;
/// Bytes of each small test file.
const SMALL: usize = 20_000;
/// Bytes of the film cut in the middle.
const FILM: usize = 200_000;
/// Entries of `/lib/big`: two listing pages.
const BIG: usize = 101;

/// `/lib`: six small folders (one file each), twelve small files and a film; shared as
/// `SHARE_KEY`, and the root of the web mount.
fn seed(emu: &Emulator) {
    for d in 1..=6 {
        emu.put_file(&format!("/lib/d{d}/x{d}.txt"), format!("in d{d}"));
    }
    for i in 0..12u8 {
        emu.put_file(&format!("/lib/f{i:02}.bin"), bytes_of(SMALL, i));
    }
    emu.put_file("/lib/film.mkv", bytes_of(FILM, 99));
    // Two listing pages (100 + 1).
    for i in 0..BIG {
        emu.put_file(&format!("/lib/big/b{i:03}.txt"), "b");
    }
    emu.add_share(SHARE_KEY, None, "/lib");
}

/// No mount is re-probed more than once an hour, so the probes are the setup's own.
const SERVER: &str = "ready_probe_interval = \"1h\"\n";

/// A share mount `/s` and a web mount `/w` over the same `/lib`, both proxying.
async fn env(cfg: EmulatorConfig) -> TestEnv {
    let env = TestEnv::builder(cfg)
        .mounts(|emu| {
            seed(emu);
            let root = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}",
                share_mount("/s", "proxy", SHARE_KEY, None, ""),
                web_mount("/w", "proxy", &format!("root_id = {root}\n")),
            )
        })
        .server(SERVER)
        .start()
        .await;
    // Both start-up probes have reached the emulator, and both roots are listed (and cached).
    settle(&env, SHARE_LIST, 1).await;
    settle(&env, WEB_PROBE, 1).await;
    for mount in ["/s/", "/w/"] {
        let (status, body) = guard("root", env.propfind(mount, "1")).await;
        assert_eq!(status, 207, "{mount}: {body}");
    }
    // A 502/503/504 prompts one readiness probe of the mount (a listing of its root) per
    // `ready_probe_interval`. Use that one up now, so the counts that follow are the test's own.
    for kind in [Kind::Share, Kind::Web] {
        let before = env.emu.stats().calls(kind.list());
        inject(&env, kind.info(), http(503, 1000));
        let got = get(&env, &format!("{}/f11.bin", kind.mount())).await;
        assert_eq!(got.status, 503, "{kind:?}");
        env.emu.clear_faults();
        settle(&env, kind.list(), before + 1).await;
    }
    // The probes have finished (both mounts are ready again) before counting anew.
    let mut ready = false;
    for _ in 0..400 {
        let res = guard("readyz", env.req("GET", "/-/readyz").send()).await;
        if res.expect("readyz").status().as_u16() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ready, "the probes never made both mounts ready again");
    env.emu.reset_stats();
    env
}

fn http(status: u16, count: u32) -> FaultKind {
    FaultKind::Http { status, count }
}

/// A PROPFIND (Depth 1) under the hang guard: status, Retry-After, body.
async fn propfind(env: &TestEnv, path: &str) -> (u16, String, String) {
    let res = guard(path, env.req("PROPFIND", path).header("Depth", "1").send())
        .await
        .expect("propfind");
    let status = res.status().as_u16();
    let retry = header(&res, "retry-after");
    let body = guard(path, res.text()).await.unwrap_or_default();
    (status, retry, body)
}

/// What a GET got: status, Retry-After and Content-Length (or ""), the body as far as it came,
/// and whether it ended in an error (a cut connection).
struct Got {
    status: u16,
    retry: String,
    length: String,
    body: Vec<u8>,
    cut: bool,
}

/// A GET under the hang guard.
async fn get(env: &TestEnv, path: &str) -> Got {
    let mut res = guard(path, env.req("GET", path).send()).await.expect("get");
    let mut got = Got {
        status: res.status().as_u16(),
        retry: header(&res, "retry-after"),
        length: header(&res, "content-length"),
        body: Vec::new(),
        cut: false,
    };
    // Bounded: every turn reads a chunk of a finite body, or ends.
    loop {
        match guard(path, res.chunk()).await {
            Ok(Some(chunk)) => got.body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                got.cut = true;
                break;
            }
        }
    }
    got
}

/// A GET that must succeed with exactly the emulator's content of `account_path`.
async fn get_ok(env: &TestEnv, path: &str, account_path: &str) {
    let got = get(env, path).await;
    assert_eq!(got.status, 200, "{path}");
    assert!(!got.cut, "{path}: cut");
    let want = env.emu.read(account_path).expect("content");
    assert!(
        got.body == want,
        "{path}: wrong bytes ({} bytes)",
        got.body.len()
    );
}

/// A failed GET: an error page, never the file's bytes.
fn assert_not_file(env: &TestEnv, account_path: &str, body: &[u8]) {
    let file = env.emu.read(account_path).expect("content");
    assert!(body.len() < 1000, "an error page, not {} bytes", body.len());
    assert_ne!(body, file.as_slice());
}

fn attempts(env: &TestEnv, endpoint: &str) -> u64 {
    let stats = env.emu.stats();
    stats.calls(endpoint) + stats.refused(endpoint)
}

// ---- 1. 429 on listing -----------------------------------------------------------------------

/// A burst of 429 shorter than the retry budget is absorbed; a storm ends in 503 with
/// Retry-After after a bounded number of attempts, and nothing short is cached.
async fn listing_429(kind: Kind) {
    let env = env(EmulatorConfig::default()).await;
    let m = kind.mount();
    inject(&env, kind.list(), FaultKind::Code429 { count: 2 });
    let (status, _, body) = propfind(&env, &format!("{m}/d1/")).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert_eq!(responses(&body), 2, "{kind:?}: {body}");
    assert!(body.contains("x1.txt"), "{kind:?}: {body}");
    let stats = env.emu.stats();
    assert_eq!(stats.refused(kind.list()), 2, "{kind:?}");
    assert_eq!(stats.calls(kind.list()), 1, "{kind:?}");

    env.emu.reset_stats();
    inject(&env, kind.list(), FaultKind::Code429 { count: 1000 });
    let (status, retry, body) = propfind(&env, &format!("{m}/d2/")).await;
    assert_eq!(status, 503, "{kind:?}: {body}");
    assert!(!retry.is_empty(), "{kind:?}: Retry-After");
    assert!(!body.contains("x2.txt"), "{kind:?}: {body}");
    assert_eq!(
        attempts(&env, kind.list()),
        ATTEMPTS_429,
        "{kind:?}: bounded"
    );
    assert_eq!(env.emu.stats().calls(kind.list()), 0);

    env.emu.clear_faults();
    let (status, _, body) = propfind(&env, &format!("{m}/d2/")).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert!(body.contains("x2.txt"), "{kind:?}: {body}");
}

/// Share and web mounts, each on its own emulator (faults and pacing apart), side by side.
#[tokio::test]
async fn listing_429_burst_is_absorbed_and_a_storm_is_503() {
    tokio::join!(listing_429(Kind::Share), listing_429(Kind::Web));
}

// ---- 3. 5xx on listing -----------------------------------------------------------------------

/// Two 502s are retried and the folder lists completely; a lasting 503 or 500 is a 503 with
/// Retry-After after three attempts, never a short or empty 207.
async fn listing_5xx(kind: Kind) {
    let env = env(EmulatorConfig::default()).await;
    let m = kind.mount();
    inject(&env, kind.list(), http(502, 2));
    let (status, _, body) = propfind(&env, &format!("{m}/d1/")).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert_eq!(responses(&body), 2, "{kind:?}: {body}");
    assert_eq!(env.emu.stats().calls(kind.list()), 3, "{kind:?}");

    for (status_in, dir) in [(503, "d2"), (500, "d3")] {
        env.emu.reset_stats();
        inject(&env, kind.list(), http(status_in, 1000));
        let (status, retry, body) = propfind(&env, &format!("{m}/{dir}/")).await;
        assert_eq!(status, 503, "{kind:?} {status_in}: {body}");
        assert!(!retry.is_empty(), "{kind:?} {status_in}: Retry-After");
        assert!(!body.contains("<D:multistatus"), "{kind:?}: {body}");
        assert_eq!(
            env.emu.stats().calls(kind.list()),
            ATTEMPTS_5XX,
            "{kind:?} {status_in}: bounded"
        );
        env.emu.clear_faults();
    }
    // Nothing was cached: the folder lists once 123 is back.
    let (status, _, body) = propfind(&env, &format!("{m}/d2/")).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert!(body.contains("x2.txt"), "{kind:?}: {body}");

    // An outage that starts after page 1 of a two-page folder (armed while the pacer holds
    // page 2 back): an error, never a folder of the first page.
    env.emu.reset_stats();
    let big = format!("{m}/big/");
    let arm = async {
        for _ in 0..2000 {
            if env.emu.stats().calls(kind.list()) >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        inject(&env, kind.list(), http(503, 1000));
    };
    let ((status, retry, body), ()) = tokio::join!(propfind(&env, &big), arm);
    assert_eq!(status, 503, "{kind:?}: {body}");
    assert!(!retry.is_empty(), "{kind:?}: Retry-After");
    assert!(!body.contains("b000.txt"), "{kind:?}: {body}");
    assert_eq!(
        env.emu.stats().calls(kind.list()),
        1 + ATTEMPTS_5XX,
        "{kind:?}: page 1, then page 2 three times"
    );
    env.emu.clear_faults();
    if let Kind::Web = kind {
        // Page 2 answering a code (share mounts: tests/it/backends/share.rs).
        inject(&env, kind.list(), FaultKind::FailPage { page: 2, count: 1 });
        let (status, _, body) = propfind(&env, &big).await;
        assert_eq!(status, 502, "{kind:?}: {body}");
        assert!(!body.contains("b000.txt"), "{kind:?}: {body}");
    }
    let (status, _, body) = propfind(&env, &big).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert_eq!(responses(&body), BIG + 1, "{kind:?}: complete");
}

/// Share and web mounts, each on its own emulator (faults and pacing apart), side by side.
#[tokio::test]
async fn listing_5xx_burst_is_retried_and_an_outage_is_503() {
    tokio::join!(listing_5xx(Kind::Share), listing_5xx(Kind::Web));
}

// ---- 2. 429 / 5xx on the download-link endpoint ----------------------------------------------

/// Bursts on `download/info` (`download_info`) are retried and the bytes are right; a lasting
/// 429 or 5xx is a 503 with Retry-After after bounded attempts, and no failure is cached.
async fn download_info_faults(kind: Kind) {
    let env = env(EmulatorConfig::default()).await;
    let m = kind.mount();
    let info = kind.info();

    inject(&env, info, FaultKind::Code429 { count: 2 });
    get_ok(&env, &format!("{m}/f00.bin"), "/lib/f00.bin").await;
    assert_eq!(env.emu.stats().refused(info), 2, "{kind:?}");
    assert_eq!(env.emu.stats().calls(info), 1, "{kind:?}");

    env.emu.reset_stats();
    inject(&env, info, FaultKind::Code429 { count: 1000 });
    let Got {
        status,
        retry,
        body,
        ..
    } = get(&env, &format!("{m}/f01.bin")).await;
    assert_eq!(status, 503, "{kind:?}");
    assert!(!retry.is_empty(), "{kind:?}: Retry-After");
    assert_not_file(&env, "/lib/f01.bin", &body);
    assert_eq!(attempts(&env, info), ATTEMPTS_429, "{kind:?}: bounded");
    assert_eq!(env.emu.stats().calls("cdn"), 0);
    env.emu.clear_faults();

    env.emu.reset_stats();
    inject(&env, info, http(502, 2));
    get_ok(&env, &format!("{m}/f02.bin"), "/lib/f02.bin").await;
    assert_eq!(env.emu.stats().calls(info), 3, "{kind:?}");

    env.emu.reset_stats();
    inject(&env, info, http(503, 1000));
    let Got {
        status,
        retry,
        body,
        ..
    } = get(&env, &format!("{m}/f03.bin")).await;
    assert_eq!(status, 503, "{kind:?}");
    assert!(!retry.is_empty(), "{kind:?}: Retry-After");
    assert_not_file(&env, "/lib/f03.bin", &body);
    assert_eq!(
        env.emu.stats().calls(info),
        ATTEMPTS_5XX,
        "{kind:?}: bounded"
    );
    env.emu.clear_faults();

    // The failures were not cached.
    env.emu.reset_stats();
    get_ok(&env, &format!("{m}/f01.bin"), "/lib/f01.bin").await;
    get_ok(&env, &format!("{m}/f03.bin"), "/lib/f03.bin").await;
    assert_eq!(env.emu.stats().calls(info), 2, "{kind:?}");
}

/// Share and web mounts, each on its own emulator (faults and pacing apart), side by side.
#[tokio::test]
async fn download_info_bursts_are_retried_and_outages_are_503() {
    tokio::join!(
        download_info_faults(Kind::Share),
        download_info_faults(Kind::Web)
    );
}

/// Rate limiting in each shape the web API has been seen to use (`web_rate_limit_style`: code
/// 429, HTTP 429, a worded message with another code; docs/123.md, web §7) is recognised as such: a
/// lasting one on the download-link endpoint is a 503 after the same bounded attempts, never a
/// 502; the server's own `Retry-After` (1 s with HTTP 429) is passed on, else the gateway's 5 s.
#[tokio::test]
async fn web_rate_limits_in_every_shape_are_rate_limits() {
    use pan123_emulator::WebRateLimitStyle;
    let env = env(EmulatorConfig::default()).await;
    let styles = [
        (WebRateLimitStyle::Code429, "5"),
        (WebRateLimitStyle::Http429, "1"),
        (WebRateLimitStyle::Message, "5"),
    ];
    for (style, retry_after) in styles {
        env.emu.set_switches(|s| s.web_rate_limit_style = style);
        for kind in [Kind::Share, Kind::Web] {
            let what = format!("{style:?} {kind:?}");
            env.emu.reset_stats();
            inject(&env, kind.info(), FaultKind::Code429 { count: 1000 });
            let got = get(&env, &format!("{}/f05.bin", kind.mount())).await;
            env.emu.clear_faults();
            assert_eq!(got.status, 503, "{what}");
            assert_eq!(got.retry, retry_after, "{what}");
            assert_not_file(&env, "/lib/f05.bin", &got.body);
            assert_eq!(attempts(&env, kind.info()), ATTEMPTS_429, "{what}");
            assert_eq!(env.emu.stats().calls(kind.info()), 0, "{what}");
        }
    }
    get_ok(&env, "/w/f05.bin", "/lib/f05.bin").await;
}

// ---- 2. 429 / 5xx on the web-pro hop and the CDN ---------------------------------------------

/// One faulty answer of the hop or the CDN is retried and the bytes are right; a lasting fault
/// ends in an error status after bounded attempts, never in the fault's body served as bytes.
async fn hop_and_cdn_faults(kind: Kind) {
    let env = env(EmulatorConfig::default()).await;
    let m = kind.mount();
    // (endpoint, burst, lasting fault, status for the lasting fault, attempts it gets)
    let cases: [(&str, FaultKind, FaultKind, u16, u64); 4] = [
        // The hop retries like an API call: a lasting 5xx or 429 is 503 with Retry-After.
        ("web-pro", http(503, 1), http(503, 1000), 503, ATTEMPTS_5XX),
        (
            "web-pro",
            FaultKind::Code429 { count: 1 },
            FaultKind::Code429 { count: 1000 },
            503,
            ATTEMPTS_429,
        ),
        // The proxy retries the CDN twice with the same link, then answers 502 (the link was
        // good and 123's CDN failed) or, for a CDN still rate limiting, 503 with Retry-After.
        ("cdn", http(503, 1), http(503, 1000), 502, 3),
        (
            "cdn",
            FaultKind::Code429 { count: 1 },
            FaultKind::Code429 { count: 1000 },
            503,
            3,
        ),
    ];
    for (i, (endpoint, burst, lasting, lasting_status, tries)) in cases.into_iter().enumerate() {
        let what = format!("{kind:?} {endpoint} {burst:?}");
        let short = format!("/lib/f{:02}.bin", 2 * i + 4);
        let long = format!("/lib/f{:02}.bin", 2 * i + 5);
        env.emu.reset_stats();
        inject(&env, endpoint, burst);
        get_ok(&env, &format!("{m}{}", &short[4..]), &short).await;
        assert_eq!(
            attempts(&env, endpoint),
            2,
            "{what}: the fault and one retry"
        );
        assert_eq!(
            env.emu.stats().calls(kind.info()),
            1,
            "{what}: the same link"
        );

        env.emu.reset_stats();
        inject(&env, endpoint, lasting);
        let Got {
            status,
            retry,
            body,
            ..
        } = get(&env, &format!("{m}{}", &long[4..])).await;
        assert_eq!(status, lasting_status, "{what}");
        if status == 503 {
            assert!(!retry.is_empty(), "{what}: Retry-After");
        }
        assert_not_file(&env, &long, &body);
        assert_eq!(attempts(&env, endpoint), tries, "{what}: bounded");
        assert_eq!(env.emu.stats().calls(kind.info()), 1, "{what}: no new link");
        env.emu.clear_faults();
        // Once the fault is gone the same file downloads.
        get_ok(&env, &format!("{m}{}", &long[4..]), &long).await;
    }
}

/// Share and web mounts, each on its own emulator (faults and pacing apart), side by side.
#[tokio::test]
async fn hop_and_cdn_bursts_are_retried_and_outages_fail_cleanly() {
    tokio::join!(
        hop_and_cdn_faults(Kind::Share),
        hop_and_cdn_faults(Kind::Web)
    );
}

// ---- 5. a cut in the middle of a download ----------------------------------------------------

/// The CDN drops the connection after 70 000 bytes: the client gets fewer bytes than the
/// Content-Length and a cut connection, every byte right; the next GET is whole.
async fn cut_mid_download(env: &TestEnv, endpoint: &str, path: &str, account_path: &str) {
    let file = env.emu.read(account_path).expect("content");
    inject(
        env,
        endpoint,
        FaultKind::CutAfter {
            bytes: 70_000,
            count: 1,
        },
    );
    let got = get(env, path).await;
    assert_eq!(got.status, 200, "{path}");
    assert_eq!(got.length, file.len().to_string(), "{path}");
    assert!(got.cut, "{path}: the client must see the cut");
    assert!(
        got.body.len() < file.len(),
        "{path}: {} bytes",
        got.body.len()
    );
    assert!(
        got.body == file[..got.body.len()],
        "{path}: every byte delivered is right"
    );
    get_ok(env, path, account_path).await;
}

#[tokio::test]
async fn share_and_web_cuts_mid_download_are_cut_connections() {
    let env = env(EmulatorConfig::default()).await;
    cut_mid_download(&env, "cdn", "/s/film.mkv", "/lib/film.mkv").await;
    cut_mid_download(&env, "cdn", "/w/film.mkv", "/lib/film.mkv").await;
}

// ---- 6. the CDN refuses a link -----------------------------------------------------------------

/// The CDN refuses a cached link as expired (403, or 200 with a JSON error): the gateway fetches
/// exactly one fresh link, and when that is refused too (`cdn_link_ttl` 0: expired on arrival)
/// it answers 502, never the error page as file bytes. Once links are good again the next GET
/// is whole.
#[tokio::test]
async fn a_refused_link_is_fetched_again_once_then_502() {
    tokio::join!(refused_link(false), refused_link(true));
}

async fn refused_link(http_200: bool) {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.cdn_link_ttl = Duration::from_secs(60);
    cfg.switches.cdn_refusal_http_200 = http_200;
    let env = env(cfg).await;
    for kind in [Kind::Share, Kind::Web] {
        get_ok(&env, &format!("{}/f00.bin", kind.mount()), "/lib/f00.bin").await;
    }
    // Five minutes on, the cached links (valid 60 s) have expired at the CDN, while the web
    // API's signatures (±10 minutes) still pass; and every new link is expired on arrival.
    env.emu.set_clock_offset(300);
    env.emu.set_switches(|s| s.cdn_link_ttl = Duration::ZERO);
    for kind in [Kind::Share, Kind::Web] {
        let what = format!("{kind:?} http_200={http_200}");
        env.emu.reset_stats();
        let Got { status, body, .. } = get(&env, &format!("{}/f00.bin", kind.mount())).await;
        assert_eq!(status, 502, "{what}");
        assert_not_file(&env, "/lib/f00.bin", &body);
        let stats = env.emu.stats();
        assert_eq!(
            stats.calls(kind.info()),
            1,
            "{what}: exactly one fresh link"
        );
        assert_eq!(stats.calls("cdn"), 1, "{what}: the cached link, refused");
        // The hop checks a link's expiry too: it refuses the fresh link (403), the gateway
        // keeps the decoded hop URL as the link (as OpenList does), and the proxy's fetch of
        // it is refused again: one resolve and one refused fetch at the hop.
        assert_eq!(stats.calls("web-pro"), 2, "{what}");
    }
    env.emu
        .set_switches(|s| s.cdn_link_ttl = Duration::from_secs(1800));
    for kind in [Kind::Share, Kind::Web] {
        env.emu.reset_stats();
        get_ok(&env, &format!("{}/f00.bin", kind.mount()), "/lib/f00.bin").await;
        assert_eq!(env.emu.stats().calls(kind.info()), 1, "{kind:?}");
    }
}

// ---- 7. 123's daily traffic limit (5113) on the personal download_info -----------------------

#[tokio::test]
async fn web_daily_traffic_exceeded_is_503_until_midnight_china_time() {
    let cfg = EmulatorConfig {
        switches: pan123_emulator::Switches {
            daily_traffic_cap: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let env = env(cfg).await;
    // The first download uses up the (tiny) daily quota; the next link is refused with 5113.
    get_ok(&env, "/w/f00.bin", "/lib/f00.bin").await;
    let sent = env.emu.now();
    let Got {
        status,
        retry,
        body,
        ..
    } = get(&env, "/w/f01.bin").await;
    let answered = env.emu.now();
    assert_eq!(status, 503);
    let retry: u64 = retry.parse().expect("Retry-After in seconds");
    assert_until_china_midnight(retry, sent, answered);
    assert!(String::from_utf8_lossy(&body).contains("traffic"));
    assert_eq!(env.emu.stats().calls(WEB_INFO), 2, "5113 is not retried");
}

// ---- link mounts: faults of the direct host ----------------------------------------------------

fn link_cfg(key: Option<&str>) -> EmulatorConfig {
    EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        direct_link_key: key.map(str::to_string),
        ..Default::default()
    }
}

const LINK_KEY: &str = "upstream-faults-key";

/// A proxying link mount `/l` over `/direct` (sizes in the text, so no HEAD at start-up).
async fn link_env(key: Option<&str>) -> TestEnv {
    let key = key.map(str::to_string);
    TestEnv::start(link_cfg(key.as_deref()), move |emu| {
        let mut urls = String::new();
        for i in 0..6u8 {
            let path = format!("/direct/f{i:02}.bin");
            emu.put_file(&path, bytes_of(SMALL, i));
            urls.push_str(&format!("{SMALL}:{}\n", direct_url(emu, &path)));
        }
        emu.put_file("/direct/film.mkv", bytes_of(FILM, 99));
        urls.push_str(&format!("{FILM}:{}\n", direct_url(emu, "/direct/film.mkv")));
        let signing = key
            .map(|k| {
                format!(
                    "direct_link_key = \"{k}\"\nuid = {}\ndirect_link_valid = \"30m\"\n",
                    emu.uid()
                )
            })
            .unwrap_or_default();
        link_mount("/l", "proxy", &urls, &signing)
    })
    .await
}

/// One faulty answer of the direct host is retried; a lasting 5xx or 429 is a 502 after
/// bounded attempts; a cut is a cut connection with right bytes.
#[tokio::test]
async fn link_direct_host_faults() {
    let env = link_env(None).await;
    // (burst, lasting fault, status for the lasting fault: 502, or 503 while rate limited)
    let cases: [(FaultKind, FaultKind, u16); 2] = [
        (http(503, 1), http(503, 1000), 502),
        (
            FaultKind::Code429 { count: 1 },
            FaultKind::Code429 { count: 1000 },
            503,
        ),
    ];
    for (i, (burst, lasting, lasting_status)) in cases.into_iter().enumerate() {
        let short = format!("/direct/f{:02}.bin", 2 * i);
        let long = format!("/direct/f{:02}.bin", 2 * i + 1);
        env.emu.reset_stats();
        inject(&env, "direct", burst.clone());
        get_ok(&env, &format!("/l{}", &short[7..]), &short).await;
        assert_eq!(
            attempts(&env, "direct"),
            2,
            "{burst:?}: the fault and one retry"
        );

        env.emu.reset_stats();
        inject(&env, "direct", lasting);
        let Got {
            status,
            retry,
            body,
            ..
        } = get(&env, &format!("/l{}", &long[7..])).await;
        assert_eq!(status, lasting_status, "{burst:?}");
        if status == 503 {
            assert!(!retry.is_empty(), "{burst:?}: Retry-After");
        }
        assert_not_file(&env, &long, &body);
        assert_eq!(attempts(&env, "direct"), 3, "{burst:?}: bounded");
        env.emu.clear_faults();
        get_ok(&env, &format!("/l{}", &long[7..]), &long).await;
    }
    cut_mid_download(&env, "direct", "/l/film.mkv", "/direct/film.mkv").await;
}

/// With `auth_key` signing, a direct host that keeps refusing (403) gets one freshly signed
/// link, then 502. (One refusal that a fresh signature cures: `tests/it/backends/link.rs`.)
#[tokio::test]
async fn link_lasting_refusal_is_one_re_sign_then_502() {
    let env = link_env(Some(LINK_KEY)).await;
    get_ok(&env, "/l/f00.bin", "/direct/f00.bin").await;
    env.emu.reset_stats();
    inject(&env, "direct", http(403, 1000));
    let Got { status, body, .. } = get(&env, "/l/f00.bin").await;
    assert_eq!(status, 502);
    assert_not_file(&env, "/direct/f00.bin", &body);
    assert_eq!(
        env.emu.stats().calls("direct"),
        2,
        "the cached link and one fresh"
    );
    env.emu.clear_faults();
    get_ok(&env, "/l/f00.bin", "/direct/f00.bin").await;
}

// ---- other readings of 123 -------------------------------------------------------------------

/// The listing, link, hop and CDN fault cases again under each other reading of 123
/// (`crate::common::profiles`): the same statuses, bytes and call counts.
mod other_readings {
    use super::*;
    use crate::common::profiles::{use_profile, Profile};

    async fn all_cases(profile: Profile) {
        use_profile(profile);
        tokio::join!(listing_429(Kind::Share), listing_429(Kind::Web));
        tokio::join!(listing_5xx(Kind::Share), listing_5xx(Kind::Web));
        tokio::join!(
            download_info_faults(Kind::Share),
            download_info_faults(Kind::Web)
        );
        tokio::join!(
            hop_and_cdn_faults(Kind::Share),
            hop_and_cdn_faults(Kind::Web)
        );
    }

    #[tokio::test]
    async fn openlist_reading() {
        all_cases(Profile::OpenListReading).await;
    }

    #[tokio::test]
    async fn sdk_reading() {
        all_cases(Profile::SdkReading).await;
    }
}

// ---- 20103 on link calls for a file just uploaded (docs/123.md, open §11) -----------------------

/// Calls one link call makes while 123 keeps saying "verifying": the first and 3 retries.
const ATTEMPTS_VERIFYING: u64 = 4;

/// Right after an upload, 123 may answer `download_info` and `direct-link/url` with 20103
/// `文件正在校验中`: retried with spacing, so a short spell costs only calls; a long one is a
/// 503 with Retry-After after bounded attempts, never a 502, and is not cached.
#[tokio::test]
async fn a_file_still_verifying_is_retried_then_503() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 0;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg.switches.verifying_after_upload = 2;
    cfg.direct_link_space = Some("/direct".into());
    let env = TestEnv::start(cfg, |emu| {
        let direct = emu.mkdir_p("/direct");
        let sync = "upload = \"sync\"\n";
        format!(
            "{}{}",
            open_mount("/o", "proxy", sync),
            open_mount(
                "/d",
                "proxy",
                &format!("{sync}root_id = {direct}\ndirect_link = true\n")
            )
        )
    })
    .await;
    for (mount, endpoint, seed) in [
        ("/o", "/api/v1/file/download_info", 31),
        ("/d", "/api/v1/direct-link/url", 33),
    ] {
        env.emu.set_switches(|s| s.verifying_after_upload = 2);
        let data = bytes_of(100_000, seed);
        assert_eq!(
            env.req("PUT", &format!("{mount}/short.bin"))
                .body(data.clone())
                .send()
                .await
                .expect("put")
                .status()
                .as_u16(),
            201
        );
        env.emu.reset_stats();
        let res = env
            .req("GET", &format!("{mount}/short.bin"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 200, "{mount}");
        assert_eq!(res.bytes().await.expect("body").as_ref(), data.as_slice());
        assert_eq!(
            env.emu.stats().calls(endpoint),
            3,
            "{mount}: 2 × 20103, then the link"
        );

        env.emu.set_switches(|s| s.verifying_after_upload = 1000);
        let data = bytes_of(100_000, seed + 1);
        let put = env
            .req("PUT", &format!("{mount}/long.bin"))
            .body(data.clone())
            .send()
            .await
            .expect("put");
        assert_eq!(put.status().as_u16(), 201);
        env.emu.reset_stats();
        let res = env
            .req("GET", &format!("{mount}/long.bin"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 503, "{mount}");
        let retry = header(&res, "retry-after");
        assert!(
            retry.parse::<u64>().is_ok_and(|s| s > 0),
            "{mount}: Retry-After {retry:?}"
        );
        let body = res.bytes().await.expect("body");
        assert_ne!(body.as_ref(), data.as_slice());
        let stats = env.emu.stats();
        assert_eq!(
            stats.calls(endpoint),
            ATTEMPTS_VERIFYING,
            "{mount}: bounded"
        );
        assert_eq!(stats.calls("cdn") + stats.calls("direct"), 0, "{mount}");
        // Not cached: the next GET asks 123 again, as boundedly.
        env.emu.reset_stats();
        let res = env
            .req("GET", &format!("{mount}/long.bin"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 503, "{mount}");
        assert_eq!(
            env.emu.stats().calls(endpoint),
            ATTEMPTS_VERIFYING,
            "{mount}"
        );
    }
}
