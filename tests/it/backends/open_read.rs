//! Open-mount behaviour beyond the shared conformance cases: paging and caching costs, faults,
//! tokens, requester-bound links, auth and signatures. Assertions are on statuses, bytes and
//! the emulator's call counts, never on elapsed time.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{EmulatorConfig, ErrorStatus, Fault, FaultKind};

const LIST: &str = "/api/v2/file/list";
const DOWNLOAD_INFO: &str = "/api/v1/file/download_info";

fn lib_mount(emu: &pan123_emulator::Emulator, path: &str, download: &str) -> String {
    let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    open_mount(path, download, &format!("root_id = {id}"))
}

#[tokio::test]
async fn thousand_entry_folder_costs_ten_calls_cold_and_none_warm() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        for i in 0..1000 {
            emu.put_file(
                &format!("/lib/big/f{i:04}.txt"),
                format!("file {i}").into_bytes(),
            );
        }
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    // Resolve the mount root first so only the big folder's pages are counted.
    let (status, _) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    env.emu.reset_stats();
    let (status, body) = env.propfind("/m/big/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(responses(&body), 1001);
    for i in [0, 1, 99, 100, 101, 500, 999] {
        let name = format!("f{i:04}.txt");
        assert!(
            body.contains(&format!("<D:href>/m/big/{name}</D:href>")),
            "{name} missing"
        );
    }
    assert_eq!(
        env.emu.stats().calls(LIST),
        10,
        "cold listing = ceil(1000/100) calls"
    );
    let (status, body) = env.propfind("/m/big/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(responses(&body), 1001);
    assert_eq!(
        env.emu.stats().calls(LIST),
        10,
        "warm listing costs nothing"
    );
}

#[tokio::test]
async fn a_failed_page_is_never_a_short_folder() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        for i in 0..250 {
            emu.put_file(&format!("/lib/big/f{i:04}.txt"), b"x".to_vec());
        }
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let (status, _) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::FailPage {
            page: 2,
            count: 100,
        },
    });
    let (status, body) = env.propfind("/m/big/", "1").await;
    assert!(status == 502 || status == 503, "got {status}: {body}");
    assert!(!body.contains("multistatus"));
    // Once 123 recovers the folder lists completely.
    env.emu.clear_faults();
    let (status, body) = env.propfind("/m/big/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(responses(&body), 251);
}

/// A lasting 429 is a 503 with `Retry-After` after bounded retries. When 123 (or a gateway in
/// front of it: `error_status = mirror`) answers HTTP 429 with its own `Retry-After`, that is
/// the one passed on (docs/123.md, open §11: honour it); else the gateway's 2 s.
#[tokio::test]
async fn a_429_storm_ends_in_503_with_retry_after_after_bounded_retries() {
    for (error_status, retry_after) in [(ErrorStatus::Ok, "2"), (ErrorStatus::Mirror, "1")] {
        let mut cfg = EmulatorConfig::default();
        cfg.switches.error_status = error_status;
        let env = TestEnv::start(cfg, |emu| {
            emu.put_file("/lib/a/x.txt", b"x".to_vec());
            lib_mount(emu, "/m", "proxy")
        })
        .await;
        let (status, _) = env.propfind("/m/", "1").await;
        assert_eq!(status, 207);
        env.emu.reset_stats();
        env.emu.inject(Fault {
            endpoint: LIST.into(),
            // As many 429s as README's attempts: one more attempt would succeed (207).
            kind: FaultKind::Code429 { count: 5 },
        });
        let res = env
            .req("PROPFIND", "/m/a/")
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind");
        assert_eq!(res.status().as_u16(), 503, "{error_status:?}");
        assert_eq!(header(&res, "retry-after"), retry_after, "{error_status:?}");
        let stats = env.emu.stats();
        // README: API calls back off up to 4 times on 429, then 503. (The 503 prompts a
        // readiness probe, whose listing may already have been answered: it is not refused.)
        assert_eq!(
            stats.refused(LIST),
            5,
            "{error_status:?}: the first attempt and four back-offs"
        );
    }
}

#[tokio::test]
async fn head_makes_no_link_call_and_ten_range_gets_make_one() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/film.mkv", bytes_of(50_000, 3));
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let res = env.req("HEAD", "/m/film.mkv").send().await.expect("head");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), 0);
    let all = bytes_of(50_000, 3);
    for i in 0..10u64 {
        let start = i * 4000;
        let res = env
            .req("GET", "/m/film.mkv")
            .header("Range", format!("bytes={start}-{}", start + 999))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 206);
        assert_eq!(
            res.bytes().await.expect("body").as_ref(),
            &all[start as usize..start as usize + 1000]
        );
    }
    assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), 1);
}

#[tokio::test]
async fn auto_proxies_download_info_links_and_a_forced_redirect_fails_from_elsewhere() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/film.mkv", bytes_of(10_000, 4));
        format!(
            "{}{}",
            lib_mount(emu, "/auto", "auto"),
            lib_mount(emu, "/redir", "redirect")
        )
    })
    .await;
    // auto never redirects a download_info link.
    let res = env.req("GET", "/auto/film.mkv").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        bytes_of(10_000, 4).as_slice()
    );
    // A client at 127.0.0.2 following a forced redirect meets the CDN's refusal.
    let res = env.req("GET", "/redir/film.mkv").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 302);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(
        res.headers()
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok()),
        Some("no-referrer")
    );
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let refused = elsewhere.get(&location).send().await.expect("cdn");
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.text().await.unwrap_or_default().contains("1010"));
    // The same client through the proxy mount gets the bytes.
    let res = elsewhere
        .get(env.url("/auto/film.mkv"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        bytes_of(10_000, 4).as_slice()
    );
}

#[tokio::test]
async fn a_cdn_error_page_is_never_passed_on_as_bytes() {
    for http_200 in [false, true] {
        let cfg = EmulatorConfig::default();
        let env = TestEnv::start(cfg, |emu| {
            emu.put_file("/lib/film.mkv", bytes_of(10_000, 5));
            lib_mount(emu, "/m", "proxy")
        })
        .await;
        // Every link the CDN sees is already expired.
        env.emu.set_switches(|s| {
            s.cdn_link_ttl = Duration::ZERO;
            s.cdn_refusal_http_200 = http_200;
        });
        let res = env.req("GET", "/m/film.mkv").send().await.expect("get");
        assert_eq!(
            res.status().as_u16(),
            502,
            "refusal style http_200={http_200}"
        );
        let body = res.bytes().await.unwrap_or_default();
        assert_ne!(body.as_ref(), bytes_of(10_000, 5).as_slice());
        // One fresh link was tried, then the gateway gave up.
        assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), 2);
    }
}

#[tokio::test]
async fn an_upstream_cut_mid_body_gives_fewer_bytes_never_wrong_ones() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/film.mkv", bytes_of(200_000, 6));
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    env.emu.inject(Fault {
        endpoint: "cdn".into(),
        kind: FaultKind::CutAfter {
            bytes: 70_000,
            count: 1,
        },
    });
    let res = env.req("GET", "/m/film.mkv").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    let mut got = Vec::new();
    let mut res = res;
    let mut failed = false;
    loop {
        match res.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the client must see the cut, not a complete-looking body"
    );
    assert!(got.len() < 200_000);
    assert_eq!(
        got.as_slice(),
        &bytes_of(200_000, 6)[..got.len()],
        "every byte delivered is right"
    );
}

#[tokio::test]
async fn two_mounts_share_one_token_and_a_restart_reuses_it() {
    let mut env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", b"a".to_vec());
        format!(
            "{}{}",
            lib_mount(emu, "/one", "proxy"),
            lib_mount(emu, "/two", "proxy")
        )
    })
    .await;
    assert_eq!(env.propfind("/one/", "1").await.0, 207);
    assert_eq!(env.propfind("/two/", "1").await.0, 207);
    assert_eq!(env.emu.stats().tokens_issued, 1);
    env.start_gateway().await;
    assert_eq!(env.propfind("/one/", "1").await.0, 207);
    assert_eq!(
        env.emu.stats().tokens_issued,
        1,
        "the persisted token is reused after a restart"
    );
}

#[tokio::test]
async fn concurrent_401s_cause_one_refresh() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        for i in 0..8 {
            emu.put_file(&format!("/lib/d{i}/x.txt"), b"x".to_vec());
        }
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    assert_eq!(env.emu.stats().tokens_issued, 1);
    env.emu.expire_tokens();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let rb = env
            .req("PROPFIND", &format!("/m/d{i}/"))
            .header("Depth", "1");
        tasks.push(tokio::spawn(async move {
            rb.send().await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("propfind"), 207);
    }
    assert_eq!(env.emu.stats().tokens_issued, 2, "one refresh for all");
}

#[tokio::test]
async fn auth_and_mount_permissions() {
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/a.txt", b"a".to_vec());
            format!(
                "{}{}",
                lib_mount(emu, "/one", "proxy"),
                lib_mount(emu, "/two", "proxy")
            )
        })
        .users("[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nmounts = [\"/one\"]\n")
        .start()
        .await;
    let res = env
        .client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            env.url("/one/"),
        )
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 401);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let res = env
        .client
        .get(env.url("/one/a.txt"))
        .send()
        .await
        .expect("req");
    assert_eq!(res.status().as_u16(), 401);
    let bob = |path: &str| {
        env.client
            .get(env.url(path))
            .basic_auth("bob", Some(PASSWORD))
    };
    assert_eq!(
        bob("/one/a.txt")
            .send()
            .await
            .expect("req")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        bob("/two/a.txt")
            .send()
            .await
            .expect("req")
            .status()
            .as_u16(),
        403
    );
    // OPTIONS needs no credentials; a writable Open mount is class 2 with locks.
    let res = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/one/"))
        .send()
        .await
        .expect("options");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers().get("dav").and_then(|v| v.to_str().ok()),
        Some("1, 2")
    );
    let allow = res
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(allow.contains("PUT") && allow.contains("LOCK"), "{allow}");
}

#[tokio::test]
async fn signed_urls_are_checked() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", b"signed bytes".to_vec());
        emu.put_file("/lib/b.txt", b"other".to_vec());
        lib_mount(emu, "/m", "proxy-url")
    })
    .await;
    let res = env.req("GET", "/m/a.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    assert!(
        location.starts_with(&format!("{}/-/d/m/a.txt?sign=", env.base)),
        "{location}"
    );
    // The signed URL works without credentials.
    let ok = env.client.get(&location).send().await.expect("get");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.bytes().await.expect("body").as_ref(), b"signed bytes");
    // Another path with the same signature, a tampered signature, an expired one.
    let foreign = location.replace("/a.txt?", "/b.txt?");
    assert_eq!(
        env.client
            .get(&foreign)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        403
    );
    let sign = location.split("sign=").nth(1).unwrap_or("").to_string();
    let tampered = location.replace(&sign, &format!("A{sign}"));
    assert_eq!(
        env.client
            .get(&tampered)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        403
    );
    let signer = pan123_webdav::download::sign::UrlSigner::new(SIGNING_KEY.as_bytes());
    let expired = signer.sign("/m/a.txt", 1_000);
    let url = format!(
        "{}/-/d/m/a.txt?sign={}",
        env.base,
        percent_encoding::utf8_percent_encode(&expired, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(
        env.client
            .get(&url)
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        env.client
            .get(format!("{}/-/d/m/a.txt", env.base))
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        403
    );
}

#[tokio::test]
async fn mini_redirector_gets_bytes_on_a_redirect_mount() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", b"windows bytes".to_vec());
        lib_mount(emu, "/m", "redirect")
    })
    .await;
    let res = env
        .req("GET", "/m/a.txt")
        .header("User-Agent", "Microsoft-WebDAV-MiniRedir/10.0.19045")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"windows bytes");
    let res = env
        .req("GET", "/m/a.txt")
        .header("User-Agent", "rclone/v1.60")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 302);
}

#[tokio::test]
async fn depth_rules_and_stale_if_range() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/d/a.txt", bytes_of(1000, 1));
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let res = env
        .req("PROPFIND", "/m/d/")
        .header("Depth", "infinity")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 403);
    assert!(res
        .text()
        .await
        .unwrap_or_default()
        .contains("propfind-finite-depth"));
    // Missing Depth means 1: the folder and its child.
    let res = env.req("PROPFIND", "/m/d/").send().await.expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    assert_eq!(responses(&res.text().await.unwrap_or_default()), 2);
    // If-Range with a stale ETag: the full file, 200.
    let res = env
        .req("GET", "/m/d/a.txt")
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").len(), 1000);
}

#[tokio::test]
async fn a_refused_cached_link_is_fetched_again_once() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/film.mkv", bytes_of(10_000, 7));
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let res = env.req("GET", "/m/film.mkv").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), 1);
    // Two hours later the cached link has expired at the CDN.
    env.emu.set_clock_offset(2 * 3600);
    let res = env
        .req("GET", "/m/film.mkv")
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        &bytes_of(10_000, 7)[100..200]
    );
    assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), 2);
}

#[tokio::test]
async fn daily_traffic_exceeded_is_503_until_midnight_china_time() {
    let cfg = EmulatorConfig {
        switches: pan123_emulator::Switches {
            daily_traffic_cap: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/lib/a.bin", bytes_of(5000, 1));
        emu.put_file("/lib/b.bin", bytes_of(5000, 2));
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    // The first download uses up the (tiny) daily quota; the next link is refused with 5113.
    let _ = env
        .req("GET", "/m/a.bin")
        .send()
        .await
        .expect("get")
        .bytes()
        .await;
    let sent = env.emu.now();
    let r = env.req("GET", "/m/b.bin").send().await.expect("get");
    let answered = env.emu.now();
    assert_eq!(r.status().as_u16(), 503);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert_until_china_midnight(retry, sent, answered);
    assert!(r.text().await.unwrap_or_default().contains("traffic"));
}

#[tokio::test]
async fn a_5xx_burst_is_retried_and_a_lasting_outage_is_503() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a/x.txt", b"x".to_vec());
        emu.put_file("/lib/b/y.txt", b"y".to_vec());
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    // Two 502s in a row: retried, and the folder lists completely.
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::Http {
            status: 502,
            count: 2,
        },
    });
    let (status, body) = env.propfind("/m/a/", "1").await;
    assert_eq!(status, 207);
    assert!(body.contains("x.txt"));
    // A lasting outage: 503 with Retry-After, never an empty folder.
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::Http {
            status: 503,
            count: 1000,
        },
    });
    let r = env
        .req("PROPFIND", "/m/b/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
}
