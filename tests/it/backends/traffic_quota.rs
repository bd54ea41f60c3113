//! 123's download quota and the gateway's own traffic budgets (issue 21, "The traffic quota").
//!
//! * Code 5113 from any backend's download endpoint: `Retry-After` until the quota resets, read
//!   from 123's message (`traffic_message`: monthly, daily, none), `/-/readyz` says "quota
//!   exhausted until …" while staying 200, and listings keep working.
//! * The traffic meter (`pan123_traffic_bytes`) and `traffic_budget` per mount and per
//!   `[[clients]]` row: downloads stop at the budget's byte (proxied streams are cut there, a
//!   redirect that would cross is refused), 503 with `Retry-After` until the month ends, before
//!   123 is asked; the count survives a restart.

use crate::common::web_api::{SHARE_INFO, WEB_INFO};
use crate::common::*;
use pan123_emulator::{EmulatorConfig, Switches, TrafficMessage};

const DOWNLOAD_INFO: &str = "/api/v1/file/download_info";
const KIB: usize = 1024;
const SHARE_KEY: &str = "quota-Key";

fn lib_id(emu: &pan123_emulator::Emulator) -> u64 {
    emu.lookup("/lib").map(|e| e.id).unwrap_or(0)
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

/// `/-/readyz` as the signed-in user: status and body.
async fn readyz(env: &TestEnv) -> (u16, serde_json::Value) {
    let res = env.req("GET", "/-/readyz").send().await.expect("readyz");
    let status = res.status().as_u16();
    (status, res.json().await.expect("readyz JSON"))
}

fn mount_report<'a>(body: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    body["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["path"] == path))
        .unwrap_or_else(|| panic!("{path} in {body}"))
}

/// Status of a download the gateway cut before its head reached the client (the head and the
/// bytes before the cut may still be in the gateway's write buffer when the connection closes).
const CUT: u16 = 0;

/// A GET's status ([`CUT`] when the connection closed before a head), `Retry-After` (0 when
/// absent) and the bytes received before the body ended or failed.
async fn get(env: &TestEnv, path: &str, headers: &[(&str, &str)]) -> (u16, u64, usize) {
    let mut rb = env.req("GET", path);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let mut res = match rb.send().await {
        Ok(res) => res,
        Err(e) if e.is_request() && !e.is_timeout() => return (CUT, 0, 0),
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut got = 0;
    while let Ok(Some(chunk)) = res.chunk().await {
        got += chunk.len();
    }
    (status, retry, got)
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_start} in\n{text}"))
}

// ---- 123's quota (5113) ------------------------------------------------------------------------

#[tokio::test]
async fn each_quota_message_sets_its_retry_after_and_listings_keep_working() {
    let cfg = EmulatorConfig {
        switches: Switches {
            daily_traffic_cap: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/lib/a.bin", bytes_of(5000, 1));
        emu.put_file("/lib/b.bin", bytes_of(5000, 2));
        open_mount("/m", "proxy", &format!("root_id = {}", lib_id(emu)))
    })
    .await;
    // The first download uses up the (tiny) quota; every later link is refused with 5113.
    let (status, _, _) = get(&env, "/m/a.bin", &[]).await;
    assert_eq!(status, 200);
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200);
    assert_eq!(mount_report(&body, "/m")["downloads"], "ok");

    for message in [
        TrafficMessage::Monthly,
        TrafficMessage::Daily,
        TrafficMessage::None,
    ] {
        env.emu.set_switches(|s| s.traffic_message = message);
        let sent = env.emu.now();
        let res = env.req("GET", "/m/b.bin").send().await.expect("get");
        let answered = env.emu.now();
        assert_eq!(res.status().as_u16(), 503, "{message:?}");
        let retry = retry_after(&res);
        match message {
            TrafficMessage::Monthly => assert_until_next_china_month(retry, sent, answered),
            TrafficMessage::Daily => assert_until_china_midnight(retry, sent, answered),
            TrafficMessage::None => assert!((3599..=3601).contains(&retry), "{retry}"),
        }
        let text = res.text().await.unwrap_or_default();
        assert!(
            text.contains("traffic") && text.contains("listings still work"),
            "{text}"
        );
        if message == TrafficMessage::Monthly {
            // Readiness names the state and the time, and stays 200: listings work.
            let (status, body) = readyz(&env).await;
            assert_eq!(status, 200, "{body}");
            let m = mount_report(&body, "/m");
            assert_eq!(m["ready"], true);
            assert_eq!(
                m["downloads"],
                format!("quota exhausted until {}", next_china_month_rfc3339(sent)),
                "{body}"
            );
        }
        let (status, xml) = env.propfind("/m/", "1").await;
        assert_eq!(status, 207, "{message:?}");
        assert_eq!(responses(&xml), 3);
    }
}

#[tokio::test]
async fn share_and_web_downloads_read_the_monthly_message_too() {
    let cfg = EmulatorConfig {
        switches: Switches {
            daily_traffic_cap: Some(1),
            traffic_message: TrafficMessage::Monthly,
            ..Default::default()
        },
        ..Default::default()
    };
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/lib/a.bin", bytes_of(5000, 1));
        emu.put_file("/lib/b.bin", bytes_of(5000, 2));
        emu.add_share(SHARE_KEY, None, "/lib");
        format!(
            "{}{}",
            share_mount("/s", "proxy", SHARE_KEY, None, ""),
            web_mount("/w", "proxy", &format!("root_id = {}\n", lib_id(emu))),
        )
    })
    .await;
    let (status, _, _) = get(&env, "/s/a.bin", &[]).await;
    assert_eq!(status, 200);
    for (mount, info) in [("/s", SHARE_INFO), ("/w", WEB_INFO)] {
        let calls = env.emu.stats().calls(info);
        let sent = env.emu.now();
        let res = env
            .req("GET", &format!("{mount}/b.bin"))
            .send()
            .await
            .expect("get");
        let answered = env.emu.now();
        assert_eq!(res.status().as_u16(), 503, "{mount}");
        assert_until_next_china_month(retry_after(&res), sent, answered);
        assert_eq!(
            env.emu.stats().calls(info),
            calls + 1,
            "{mount}: 5113 is not retried"
        );
        let (status, _) = env.propfind(&format!("{mount}/"), "1").await;
        assert_eq!(status, 207, "{mount}");
    }
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200);
    let until = next_china_month_rfc3339(env.emu.now());
    for mount in ["/s", "/w"] {
        assert_eq!(
            mount_report(&body, mount)["downloads"],
            format!("quota exhausted until {until}")
        );
    }
}

// ---- the gateway's own budgets -----------------------------------------------------------------

/// `/lib` with three files of 100, 100 and 150 KiB.
fn seed(emu: &pan123_emulator::Emulator) {
    emu.put_file("/lib/f1.bin", bytes_of(100 * KIB, 1));
    emu.put_file("/lib/f2.bin", bytes_of(100 * KIB, 2));
    emu.put_file("/lib/f3.bin", bytes_of(150 * KIB, 3));
}

#[tokio::test]
async fn a_budget_cuts_a_proxied_download_at_the_byte_and_survives_a_restart() {
    const BUDGET: u64 = 300 * 1024;
    let mut env = TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        open_mount(
            "/p",
            "proxy",
            &format!("root_id = {}\ntraffic_budget = \"300KiB\"", lib_id(emu)),
        )
    })
    .await;
    assert_eq!(get(&env, "/p/f1.bin", &[]).await, (200, 0, 100 * KIB));
    assert_eq!(get(&env, "/p/f2.bin", &[]).await, (200, 0, 100 * KIB));
    // 100 KiB are left: the 150 KiB file stops there (the connection is cut).
    let (status, _, got) = get(&env, "/p/f3.bin", &[]).await;
    assert!(status == 200 || status == CUT, "{status}");
    assert!(got <= 100 * KIB, "{got} bytes past the budget");
    let text = metrics_text(&env).await;
    assert_eq!(metric(&text, "pan123_traffic_bytes{mount=\"/p\"} "), BUDGET);
    assert_eq!(
        metric(&text, "pan123_traffic_budget_bytes{mount=\"/p\"} "),
        BUDGET
    );

    // Now every download is 503 until the month ends, without a link call; listings work.
    let calls = env.emu.stats().calls(DOWNLOAD_INFO);
    let sent = env.emu.now();
    let (status, retry, _) = get(&env, "/p/f1.bin", &[]).await;
    let answered = env.emu.now();
    assert_eq!(status, 503);
    assert_until_next_china_month(retry, sent, answered);
    assert_eq!(
        env.emu.stats().calls(DOWNLOAD_INFO),
        calls,
        "123 is not asked"
    );
    let head = env.req("HEAD", "/p/f1.bin").send().await.expect("head");
    assert_eq!(head.status().as_u16(), 200, "HEAD sends no bytes");
    let (status, _) = env.propfind("/p/", "1").await;
    assert_eq!(status, 207);
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200);
    let m = mount_report(&body, "/p");
    assert_eq!(m["traffic_bytes"], BUDGET);
    assert_eq!(
        m["downloads"],
        format!("budget reached until {}", next_china_month_rfc3339(sent))
    );

    // The month's count survives a restart.
    env.start_gateway().await;
    let text = metrics_text(&env).await;
    assert_eq!(metric(&text, "pan123_traffic_bytes{mount=\"/p\"} "), BUDGET);
    let (status, _, _) = get(&env, "/p/f2.bin", &[]).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_redirect_that_would_cross_the_budget_is_refused_before_123_is_asked() {
    const BUDGET: u64 = 250 * 1024;
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        open_mount(
            "/r",
            "redirect",
            &format!("root_id = {}\ntraffic_budget = \"250KiB\"", lib_id(emu)),
        )
    })
    .await;
    // A whole file counts its size; a Range its length.
    assert_eq!(get(&env, "/r/f1.bin", &[]).await.0, 302);
    assert_eq!(
        get(&env, "/r/f3.bin", &[("Range", "bytes=0-99999")])
            .await
            .0,
        302
    );
    let used = 100 * 1024 + 100_000;
    let calls = env.emu.stats().calls(DOWNLOAD_INFO);
    // 100 KiB would cross the budget: refused whole, and 123 is not asked for a link.
    let (status, retry, _) = get(&env, "/r/f2.bin", &[]).await;
    assert_eq!(status, 503);
    assert!(retry > 0);
    assert_eq!(env.emu.stats().calls(DOWNLOAD_INFO), calls);
    // A range of exactly what is left still goes.
    let left = BUDGET - used;
    let range = format!("bytes=0-{}", left - 1);
    assert_eq!(get(&env, "/r/f2.bin", &[("Range", &range)]).await.0, 302);
    let text = metrics_text(&env).await;
    assert_eq!(metric(&text, "pan123_traffic_bytes{mount=\"/r\"} "), BUDGET);
    // Even one byte more is refused.
    let (status, _, _) = get(&env, "/r/f1.bin", &[("Range", "bytes=0-0")]).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_client_row_budget_applies_only_to_its_user_agent() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        seed(emu);
        format!(
            "{}\n[[clients]]\nuser_agent = \"MediaScanner\"\ntraffic_budget = \"150KiB\"\n",
            open_mount("/c", "proxy", &format!("root_id = {}", lib_id(emu)))
        )
    })
    .await;
    let scanner = [("User-Agent", "MediaScanner/2.1")];
    assert_eq!(get(&env, "/c/f1.bin", &scanner).await, (200, 0, 100 * KIB));
    let (status, _, got) = get(&env, "/c/f2.bin", &scanner).await;
    assert!(status == 200 || status == CUT, "{status}");
    assert!(got <= 50 * KIB, "{got} bytes past the row's budget");
    let (status, retry, _) = get(&env, "/c/f1.bin", &scanner).await;
    assert_eq!(status, 503);
    assert!(retry > 0);
    // Another client is not bound by the row.
    let player = [("User-Agent", "VLC/3.0.20 LibVLC/3.0.20")];
    assert_eq!(get(&env, "/c/f3.bin", &player).await, (200, 0, 150 * KIB));
    let text = metrics_text(&env).await;
    assert_eq!(
        metric(
            &text,
            "pan123_traffic_client_bytes{client=\"MediaScanner\"} "
        ),
        150 * 1024
    );
    assert_eq!(
        metric(&text, "pan123_traffic_bytes{mount=\"/c\"} "),
        300 * 1024
    );
    let (_, body) = readyz(&env).await;
    assert_eq!(
        body["traffic_clients"]["MediaScanner"],
        150 * 1024,
        "{body}"
    );
}
