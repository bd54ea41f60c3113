//! Personal-account (`web`) mounts beyond the conformance suite: login and the persisted token,
//! one re-login for a 401 in the middle of a listing and for many concurrent 401s, folders of
//! more than 100 entries, ranges under proxy (with the CDN's Referer), e-mail login, a login
//! refused for risk control while other mounts keep working, and secrets kept out of the log.

use std::sync::Arc;
use std::time::Duration;

use crate::common::web_api::settle;
use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

const LOGIN: &str = "/api/user/sign_in";
const LIST: &str = "/b/api/file/list/new";
const INFO: &str = "/b/api/file/download_info";
const MANY: usize = 250;
const RISK: &str = "当前账号存在安全风险，请使用短信验证码或者微信进行登录。";

fn seed(emu: &Emulator) {
    for i in 0..MANY {
        emu.put_file(&format!("/me/many/f{i:03}.txt"), format!("file {i}"));
    }
    emu.put_file("/me/film.mkv", bytes_of(200_000, 5));
    emu.put_file("/me/old.txt", "trashed");
    emu.trash("/me/old.txt");
    for i in 0..5 {
        emu.put_file(&format!("/me/five/p{i}.bin"), bytes_of(10_000, i));
    }
}

/// A web mount at `/w` whose root is `/me`, plus `more` mounts.
async fn web_env(cfg: EmulatorConfig, download: &str, more: &str) -> TestEnv {
    let download = download.to_string();
    let more = more.to_string();
    TestEnv::start(cfg, move |emu| {
        seed(emu);
        let root = emu.lookup("/me").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{more}",
            web_mount("/w", &download, &format!("root_id = {root}\n"))
        )
    })
    .await
}

#[tokio::test]
async fn logs_in_once_lists_250_entries_and_keeps_the_token() {
    let mut env = web_env(EmulatorConfig::default(), "auto", "").await;
    let (status, body) = env.propfind("/w/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("/w/film.mkv</D:href>"));
    assert!(!body.contains("old.txt"), "trashed entries are hidden");
    settle(&env, "/b/api/user/info", 1).await;
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        1,
        "probe and listing share one login"
    );

    env.emu.reset_stats();
    let started = std::time::Instant::now();
    let (status, body) = env.propfind("/w/many/", "1").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 207, "{body}");
    assert_eq!(responses(&body), MANY + 1);
    eprintln!("{MANY} entries listed in {elapsed:?} (paced pages)");
    for i in [0, 99, 100, 199, 200, MANY - 1] {
        assert!(
            body.contains(&format!("/w/many/f{i:03}.txt</D:href>")),
            "f{i:03}"
        );
    }
    let stats = env.emu.stats();
    assert_eq!(
        stats.calls(LIST),
        3,
        "100 + 100 + 50, stopping at Next = -1"
    );
    assert_eq!(stats.calls(LOGIN), 0);
    // Modification times come from UpdateAt (RFC 3339).
    assert!(body.contains("<D:getlastmodified>"), "{body}");

    // The token is in state_dir, private, and a restart reuses it: no new login.
    let tokens = env.state_dir.path().join("tokens");
    let file = std::fs::read_dir(&tokens)
        .expect("tokens dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("web-"))
        })
        .expect("a web token file");
    assert!(
        !file.to_string_lossy().contains("13800138000"),
        "no phone number in the name"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    env.start_gateway().await;
    let (status, _) = env.propfind("/w/five/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        0,
        "the persisted token was reused"
    );
}

#[tokio::test]
async fn a_401_in_the_middle_of_a_listing_is_one_relogin_and_one_retry() {
    let env = web_env(EmulatorConfig::default(), "auto", "").await;
    let (status, _) = env.propfind("/w/", "1").await;
    assert_eq!(status, 207);
    settle(&env, "/b/api/user/info", 1).await;
    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: LIST.into(),
        kind: FaultKind::ExpireAtPage { page: 2, count: 1 },
    });
    let (status, body) = env.propfind("/w/many/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(responses(&body), MANY + 1, "complete, not a short folder");
    let stats = env.emu.stats();
    assert_eq!(stats.calls(LOGIN), 1, "one re-login");
    assert_eq!(stats.calls(LIST), 4, "pages 1, 2 (401), 2 again, 3");
}

#[tokio::test]
async fn concurrent_401s_cause_one_login() {
    let env = web_env(EmulatorConfig::default(), "proxy", "").await;
    let (status, _) = env.propfind("/w/five/", "1").await;
    assert_eq!(status, 207);
    settle(&env, "/b/api/user/info", 1).await;
    env.emu.expire_tokens();
    env.emu.reset_stats();
    let env = Arc::new(env);
    let mut tasks = Vec::new();
    for i in 0..5u8 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let res = env
                .get_following(&format!("/w/five/p{i}.bin"), &[("Range", "bytes=10-19")])
                .await;
            (i, res.status().as_u16(), res.bytes().await.expect("body"))
        }));
    }
    for task in tasks {
        let (i, status, body) = task.await.expect("task");
        assert_eq!(status, 206, "p{i}");
        assert_eq!(body.as_ref(), &bytes_of(10_000, i)[10..20], "p{i}");
    }
    let stats = env.emu.stats();
    eprintln!(
        "download_info calls for five concurrent 401s: {}",
        stats.calls(INFO)
    );
    assert_eq!(stats.calls(LOGIN), 1, "five requests saw 401, one login");
    assert!(
        stats.calls(INFO) >= 6 && stats.calls(INFO) <= 10,
        "{:?}",
        stats.calls
    );
}

#[tokio::test]
async fn ranges_under_proxy_send_the_referer() {
    for download in ["proxy", "auto"] {
        let env = web_env(EmulatorConfig::default(), download, "").await;
        let all = bytes_of(200_000, 5);
        env.emu.reset_stats();
        let res = env
            .get_following("/w/film.mkv", &[("Range", "bytes=1000-1999")])
            .await;
        assert_eq!(res.status().as_u16(), 206, "{download}");
        assert_eq!(header(&res, "content-range"), "bytes 1000-1999/200000");
        assert_eq!(res.bytes().await.expect("body").as_ref(), &all[1000..2000]);
        let stats = env.emu.stats();
        assert_eq!(stats.calls(INFO), 1);
        assert_eq!(stats.calls("web-pro"), 1);
        // The CDN answers 403 without `Referer: <origin of DownloadUrl>/`: the bytes prove the
        // gateway sent it.
        assert_eq!(stats.calls("cdn"), 1);
        let res = env
            .get_following("/w/film.mkv", &[("Range", "bytes=-10")])
            .await;
        assert_eq!(res.status().as_u16(), 206);
        assert_eq!(
            res.bytes().await.expect("body").as_ref(),
            &all[all.len() - 10..]
        );
        assert_eq!(env.emu.stats().calls(INFO), 1, "the link is cached");
        // Out of range: 416, no upstream call.
        let res = env
            .get_following("/w/film.mkv", &[("Range", "bytes=300000-")])
            .await;
        assert_eq!(res.status().as_u16(), 416);
        // Login on the login host, calls on the web host, the hop and the CDN on theirs.
        assert_no_wrong_host(&env.emu);
    }
}

#[tokio::test]
async fn an_email_account_logs_in_by_mail() {
    let cfg = EmulatorConfig {
        web_user: "someone@example.com".into(),
        web_password: "mail-password".into(),
        ..Default::default()
    };
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/hello.txt", "hi");
        "[[mounts]]\npath = \"/w\"\nbackend = \"web\"\nusername = \"someone@example.com\"\npassword = \"mail-password\"\napi_base = \"{web}\"\nlogin_base = \"{login}\"\n"
            .to_string()
    })
    .await;
    let res = env.get_following("/w/hello.txt", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "hi");
}

#[tokio::test]
async fn risk_control_leaves_the_mount_unready_and_other_mounts_working() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.web_risk_control = true;
    let mut env = web_env(cfg, "auto", &open_mount("/open", "proxy", "")).await;
    // The start-up probe's login is refused; readiness names 123's message.
    let mut report = serde_json::Value::Null;
    for _ in 0..400 {
        let res = env.req("GET", "/-/readyz").send().await.expect("readyz");
        let status = res.status().as_u16();
        report = res.json().await.expect("readyz json");
        if status == 503 && report.to_string().contains(RISK) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let text = report.to_string();
    assert!(text.contains(RISK), "{text}");
    assert!(!text.contains("demo-password"), "{text}");
    let web = report["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["path"] == "/w"))
        .expect("the web mount in readyz");
    assert_eq!(web["ready"], false, "{web}");
    assert_eq!(web["token"], "failing", "{web}");
    assert!(web["token_error"].to_string().contains(RISK), "{web}");

    // Requests fail fast (503), and the blocked login is not retried in a loop.
    for _ in 0..5 {
        let (status, _) = env.propfind("/w/", "1").await;
        assert_eq!(status, 503);
    }
    let res = env.get_following("/w/film.mkv", &[]).await;
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        1,
        "one refused login, then back-off"
    );
    assert_eq!(env.emu.stats().calls(LIST), 0);

    // The other mount works.
    let (status, body) = env.propfind("/open/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("/open/me/"));

    // Once the user has cleared the block, a restart logs in.
    env.emu.set_switches(|s| s.web_risk_control = false);
    env.start_gateway().await;
    let (status, body) = env.propfind("/w/", "1").await;
    assert_eq!(status, 207, "{body}");
    let report: serde_json::Value = env
        .req("GET", "/-/readyz")
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz json");
    let web = report["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["path"] == "/w"))
        .expect("the web mount in readyz");
    assert_eq!(web["token"], "valid", "{web}");
    assert_eq!(web["ready"], true, "{web}");
}

/// A refused login backs off 15 s, then doubles (30 s, 1 min, …) up to 30 min, and requests in
/// between send no login: read from the emulator's login count while the gateway's clock is
/// moved forward (no waiting).
#[tokio::test]
async fn a_refused_login_backs_off_doubling_up_to_thirty_minutes() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.web_risk_control = true;
    // The emulator's login rate limit runs on real time, which this test compresses.
    cfg.qps = false;
    let env = web_env(cfg, "auto", "").await;
    // The start-up probe's login is the first refusal.
    settle(&env, LOGIN, 1).await;
    let clock = env.clock();
    let mut logins = 1;
    let mut expected_waits = Vec::new();
    let mut wait = 15;
    for _ in 0..10 {
        expected_waits.push(wait);
        wait = (wait * 2).min(30 * 60);
    }
    for (n, secs) in expected_waits.iter().enumerate() {
        // A second before the back-off ends: refused at once, no login sent.
        clock.advance(Duration::from_secs(secs - 1));
        let (status, _) = env.propfind("/w/", "1").await;
        assert_eq!(status, 503, "refusal {n}");
        assert_eq!(
            env.emu.stats().calls(LOGIN),
            logins,
            "back-off {n} of {secs} s"
        );
        // Once it has ended: exactly one login, refused again.
        clock.advance(Duration::from_secs(1));
        let (status, _) = env.propfind("/w/", "1").await;
        assert_eq!(status, 503, "refusal {n}");
        logins += 1;
        assert_eq!(env.emu.stats().calls(LOGIN), logins, "after {secs} s");
    }
    assert_eq!(
        *expected_waits.last().unwrap_or(&0),
        1800,
        "capped at 30 min"
    );
}

/// The real binary, at debug level: neither the password nor the session token nor a CDN
/// signature reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_and_token_stay_out_of_the_log() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.put_file("/a.txt", "hello");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    let text = fill_hosts(
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n[[mounts]]\npath = \"/w\"\nbackend = \"web\"\nusername = \"{}\"\npassword_env = \"PAN123_TEST_WEB_PASSWORD\"\napi_base = \"{{web}}\"\nlogin_base = \"{{login}}\"\ndownload = \"proxy\"\n",
            state.display(),
            password_hash(),
            emu.web_user(),
        ),
        &emu,
        "",
    );
    std::fs::write(&config, text).expect("write config");
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let gw = GatewayProcess::spawn(
        &config,
        port,
        &[
            ("RUST_LOG", "debug"),
            ("PAN123_TEST_WEB_PASSWORD", &emu.web_password()),
        ],
        Some(log),
    )
    .await;
    let base = gw.base.clone();
    let client = reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let mut body = None;
    for _ in 0..200 {
        if let Ok(res) = client
            .get(format!("{base}/w/a.txt"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
        {
            body = Some((res.status().as_u16(), res.text().await.unwrap_or_default()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, Some((200, "hello".to_string())));
    // An upload whose first part URL is refused: the retry is logged, its URL is not.
    emu.inject(Fault {
        endpoint: "s3".into(),
        kind: FaultKind::Http {
            status: 403,
            count: 1,
        },
    });
    let res = client
        .put(format!("{base}/w/up.bin"))
        .basic_auth(USER, Some(PASSWORD))
        .body(bytes_of(70_000, 31))
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    for _ in 0..400 {
        if emu.read("/up.bin").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(emu.read("/up.bin"), Some(bytes_of(70_000, 31)));
    let token_file = std::fs::read_dir(state.join("tokens"))
        .expect("tokens dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("web-"))
        .expect("token file");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(token_file).expect("read")).expect("json");
    let token = saved["token"].as_str().expect("token").to_string();
    assert!(token.len() > 20);
    drop(gw);
    // The real binary, configured as an operator would, called every 123 host correctly.
    assert_no_wrong_host(&emu);
    let text = std::fs::read_to_string(&log_path).expect("read the log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("logged in to 123's web API")),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("retrying an upload part")),
        "{}",
        lines.join("\n")
    );
    for line in &lines {
        for secret in [emu.web_password(), token.clone(), PASSWORD.to_string()] {
            assert!(!line.contains(&secret), "a secret in the log: {line}");
        }
        assert!(!line.contains("&s="), "a CDN signature in the log: {line}");
        assert!(
            !line.contains("signature="),
            "a presigned part URL in the log: {line}"
        );
    }
}

const UPLOAD_REQUEST: &str = "/b/api/file/upload_request";
const PARTS_BATCH: &str = "/b/api/file/s3_repare_upload_parts_batch";
const OBJECT_AUTH: &str = "/b/api/file/s3_upload_object/auth";
const COMPLETE: &str = "/b/api/file/upload_complete/v2";
/// The presigned part host.
const PART: &str = "s3";

/// A writable web mount at `/w` on `/me`, uploading synchronously so each PUT's answer says
/// whether the file reached 123.
async fn upload_env() -> TestEnv {
    TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.mkdir_p("/me");
        let root = emu.lookup("/me").map(|e| e.id).unwrap_or(0);
        web_mount(
            "/w",
            "proxy",
            &format!("root_id = {root}\nupload = \"sync\"\n"),
        )
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

#[tokio::test]
async fn a_40_mib_upload_goes_in_three_presigned_parts() {
    let env = upload_env().await;
    let data = bytes_of(40 << 20, 21);
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/big.bin", data.clone()).await, 201);
    assert!(env.emu.read("/me/big.bin").expect("uploaded") == data);
    let stats = env.emu.stats();
    assert_eq!(stats.calls(UPLOAD_REQUEST), 1);
    assert_eq!(
        stats.calls(PARTS_BATCH),
        1,
        "three parts: one batch of URLs"
    );
    assert_eq!(stats.calls(OBJECT_AUTH), 0);
    assert_eq!(stats.calls(PART), 3, "16 + 16 + 8 MiB");
    assert_eq!(stats.calls(COMPLETE), 1);
    // Read back through the gateway: listed with its size, bytes right.
    let res = env
        .get_following("/w/big.bin", &[("Range", "bytes=20000000-20000009")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        &data[20_000_000..20_000_010]
    );
    // Parts went to the presigned part host, the rest to the web host.
    assert_no_wrong_host(&env.emu);
}

#[tokio::test]
async fn a_small_upload_is_one_part_and_known_content_none() {
    let env = upload_env().await;
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/a.txt", b"hello web".to_vec()).await, 201);
    assert_eq!(env.emu.read("/me/a.txt").expect("uploaded"), b"hello web");
    let stats = env.emu.stats();
    assert_eq!(
        stats.calls(OBJECT_AUTH),
        1,
        "one part: the single-object URL"
    );
    assert_eq!(stats.calls(PARTS_BATCH), 0);
    assert_eq!(stats.calls(PART), 1);
    // The same content again: 123 reuses it, no bytes sent.
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/b.txt", b"hello web".to_vec()).await, 201);
    assert_eq!(env.emu.read("/me/b.txt").expect("reused"), b"hello web");
    assert_eq!(env.emu.stats().calls(PART), 0);
    assert_eq!(env.emu.stats().calls(COMPLETE), 0);
}

#[tokio::test]
async fn a_refused_part_url_is_presigned_again_and_a_cut_part_is_resent() {
    let env = upload_env().await;
    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: PART.into(),
        kind: FaultKind::Http {
            status: 403,
            count: 1,
        },
    });
    let data = bytes_of(100_000, 22);
    assert_eq!(put(&env, "/w/r.bin", data.clone()).await, 201);
    assert_eq!(env.emu.read("/me/r.bin").expect("uploaded"), data);
    let stats = env.emu.stats();
    assert_eq!(stats.calls(PART), 2, "refused once, then sent");
    assert_eq!(stats.calls(OBJECT_AUTH), 2, "a fresh URL after the 403");

    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: PART.into(),
        kind: FaultKind::CutAfter {
            bytes: 1000,
            count: 1,
        },
    });
    let data = bytes_of(100_000, 23);
    assert_eq!(put(&env, "/w/c.bin", data.clone()).await, 201);
    assert_eq!(env.emu.read("/me/c.bin").expect("uploaded"), data);
    let stats = env.emu.stats();
    assert_eq!(stats.calls(PART), 2, "cut once, then sent");
    assert_eq!(stats.calls(OBJECT_AUTH), 1, "the URL was still good");
}

#[tokio::test]
async fn a_session_expiring_mid_upload_is_one_relogin() {
    let env = upload_env().await;
    settle(&env, "/b/api/user/info", 1).await;
    env.emu.reset_stats();
    // The part is slow; the session expires while it is in flight; completing then meets a
    // 401, logs in again once and completes.
    env.emu.inject(Fault {
        endpoint: PART.into(),
        kind: FaultKind::Latency { ms: 600, count: 1 },
    });
    let env = Arc::new(env);
    let task = {
        let env = env.clone();
        tokio::spawn(async move { put(&env, "/w/slow.bin", bytes_of(50_000, 24)).await })
    };
    // The part's URL was handed out: the (slow) part is in flight.
    settle(&env, OBJECT_AUTH, 1).await;
    env.emu.expire_tokens();
    assert_eq!(task.await.expect("put task"), 201);
    assert_eq!(
        env.emu.read("/me/slow.bin").expect("uploaded"),
        bytes_of(50_000, 24)
    );
    let stats = env.emu.stats();
    assert_eq!(stats.calls(LOGIN), 1, "one re-login");
    assert_eq!(stats.calls(COMPLETE), 2, "401, then completed");
}

#[tokio::test]
async fn a_lost_answer_is_rechecked_before_resending() {
    let env = upload_env().await;
    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: UPLOAD_REQUEST.into(),
        kind: FaultKind::Http {
            status: 502,
            count: 1,
        },
    });
    assert_eq!(
        put(&env, "/w/once.txt", b"exactly once".to_vec()).await,
        201
    );
    assert_eq!(
        env.emu.list_names("/me").expect("listing"),
        vec!["once.txt".to_string()]
    );
    assert_eq!(
        env.emu.stats().calls(UPLOAD_REQUEST),
        2,
        "re-checked, then resent"
    );
    // A folder the same way.
    env.emu.inject(Fault {
        endpoint: UPLOAD_REQUEST.into(),
        kind: FaultKind::Http {
            status: 503,
            count: 1,
        },
    });
    let res = env.req("MKCOL", "/w/dir").send().await.expect("mkcol");
    assert_eq!(res.status().as_u16(), 201);
    assert!(env.emu.lookup("/me/dir").is_some_and(|e| e.is_dir));
}

/// The upload's "is the name taken" check reads the listing the gateway just made, so it costs
/// no listing of its own (each page is 700 ms of the shared web pacer). The swap of the upload
/// from its temporary name does list the folder once (docs/123.md, open §11: nothing may depend on
/// what 123 does with a taken name, so the swap looks before it renames).
#[tokio::test]
async fn uploads_into_a_freshly_listed_folder_list_nothing_more() {
    let env = upload_env().await;
    env.emu.put_file("/me/old.txt", "old");
    assert_eq!(env.propfind("/w/", "1").await.0, 207);
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/new0.txt", b"zero".to_vec()).await, 201);
    assert_eq!(
        env.emu.stats().calls(LIST),
        1,
        "the PROPFIND's listing answered both the PUT and the upload's check; the swap lists"
    );
    for i in 1..5u8 {
        let status = put(&env, &format!("/w/new{i}.txt"), vec![i; 1000]).await;
        assert_eq!(status, 201);
    }
    // An overwrite: the name is known to be taken, so it goes beside the old file and swaps.
    assert_eq!(put(&env, "/w/old.txt", b"new".to_vec()).await, 204);
    assert_eq!(env.emu.read("/me/old.txt").expect("replaced"), b"new");
    let stats = env.emu.stats();
    // Each completed upload makes the folder's cached listing stale, so the next PUT lists it
    // once (the gateway's listing, which the upload's check then reuses): one per later PUT
    // (5), and one per swap from the temporary name (6). None for the checks themselves.
    assert_eq!(stats.calls(LIST), 11, "{:?}", stats.calls);
    assert_eq!(stats.calls(UPLOAD_REQUEST), 6);
    let mut names = env.emu.list_names("/me").expect("listing");
    names.sort();
    assert_eq!(
        names,
        ["new0.txt", "new1.txt", "new2.txt", "new3.txt", "new4.txt", "old.txt"]
    );
}

const TRASH: &str = "/b/api/file/trash";

/// Waits until a background upload is on 123 and its job is over in the gateway (so what
/// follows does not race the queue's last step).
async fn landed(env: &TestEnv, account_path: &str) {
    let queue = env.gw.as_ref().expect("gateway").state.uploads.clone();
    eventually("the upload lands", || {
        env.emu.lookup(account_path).is_some() && {
            let stats = queue.stats();
            stats.queued + stats.running == 0
        }
    })
    .await;
}

/// docs/123.md, web §7: `download_info` and trash send the object 123 listed (`etag`, `s3keyFlag`,
/// the whole item), never empty fields, also for a file this process has not listed: right after
/// its upload and after a rename (its folder is listed first), and after a restart of the gateway.
/// The emulator refuses any other object, as 123 would.
#[tokio::test]
async fn download_and_trash_of_files_not_listed_in_this_process() {
    let mut env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.mkdir_p("/me");
        let root = emu.lookup("/me").map(|e| e.id).unwrap_or(0);
        web_mount("/w", "proxy", &format!("root_id = {root}\n"))
    })
    .await;
    // Right after an upload: the GET lists the folder once, then download_info is accepted.
    assert_eq!(put(&env, "/w/fresh.txt", b"fresh".to_vec()).await, 201);
    landed(&env, "/me/fresh.txt").await;
    env.emu.reset_stats();
    let res = env.get_following("/w/fresh.txt", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"fresh");
    let stats = env.emu.stats();
    assert_eq!(
        (stats.calls(LIST), stats.calls(INFO)),
        (1, 1),
        "{:?}",
        stats.calls
    );

    // Right after an upload, a DELETE: the folder is listed first, the trash is accepted.
    assert_eq!(put(&env, "/w/gone.txt", b"gone".to_vec()).await, 201);
    landed(&env, "/me/gone.txt").await;
    env.emu.reset_stats();
    let res = env
        .req("DELETE", "/w/gone.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    assert!(env.emu.lookup("/me/gone.txt").is_none(), "trashed");
    let stats = env.emu.stats();
    assert_eq!(
        (stats.calls(LIST), stats.calls(TRASH)),
        (1, 1),
        "{:?}",
        stats.calls
    );

    // A rename forgets the listed object: the DELETE lists again.
    let res = env
        .req("MOVE", "/w/fresh.txt")
        .header("Destination", env.url("/w/renamed.txt"))
        .send()
        .await
        .expect("move");
    assert_eq!(res.status().as_u16(), 201);
    env.emu.reset_stats();
    let res = env
        .req("DELETE", "/w/renamed.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    assert!(env.emu.lookup("/me/renamed.txt").is_none(), "trashed");
    let stats = env.emu.stats();
    assert_eq!(
        (stats.calls(LIST), stats.calls(TRASH)),
        (1, 1),
        "{:?}",
        stats.calls
    );

    // After a restart: nothing is known but what a listing says.
    assert_eq!(put(&env, "/w/kept.txt", b"kept".to_vec()).await, 201);
    landed(&env, "/me/kept.txt").await;
    env.start_gateway().await;
    env.emu.reset_stats();
    let res = env.get_following("/w/kept.txt", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"kept");
    let res = env
        .req("DELETE", "/w/kept.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    assert!(env.emu.lookup("/me/kept.txt").is_none(), "trashed");
    let stats = env.emu.stats();
    assert_eq!(
        (stats.calls(LIST), stats.calls(INFO), stats.calls(TRASH)),
        (1, 1, 1),
        "{:?}",
        stats.calls
    );
    assert_no_wrong_host(&env.emu);
}

/// The end of the static-credential flow (docs/123.md, web §1.4 step 5).
const COMPLETE_STATIC: &str = "/b/api/file/upload_complete";

/// Static S3 credentials from `upload_request` (switch `upload_credentials = static`): the
/// gateway signs S3 requests itself (the emulator's S3 host checks SigV4): one `PutObject` for
/// a small file, a multipart upload in 16 MiB parts for a big one (create, three parts,
/// complete), then `upload_complete` with the `fileId`; never the presigned-part calls.
#[tokio::test]
async fn static_s3_credentials_upload_small_and_multipart() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.upload_credentials = pan123_emulator::UploadCredentials::Static;
    let env = TestEnv::start(cfg, |emu| {
        emu.mkdir_p("/me");
        let root = emu.lookup("/me").map(|e| e.id).unwrap_or(0);
        web_mount(
            "/w",
            "proxy",
            &format!("root_id = {root}\nupload = \"sync\"\n"),
        )
    })
    .await;
    let small = bytes_of(5000, 31);
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/small.bin", small.clone()).await, 201);
    assert!(env.emu.read("/me/small.bin").expect("uploaded") == small);
    let stats = env.emu.stats();
    assert_eq!(stats.calls(UPLOAD_REQUEST), 1);
    assert_eq!(stats.calls(PART), 1, "one PutObject");
    assert_eq!(stats.calls(COMPLETE_STATIC), 1);
    assert_eq!(
        stats.calls(OBJECT_AUTH) + stats.calls(PARTS_BATCH) + stats.calls(COMPLETE),
        0
    );

    // One 503 of the S3 host: the same signed request again.
    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: PART.into(),
        kind: FaultKind::Http {
            status: 503,
            count: 1,
        },
    });
    let again = bytes_of(7000, 33);
    assert_eq!(put(&env, "/w/again.bin", again.clone()).await, 201);
    assert!(env.emu.read("/me/again.bin").expect("uploaded") == again);
    assert_eq!(
        env.emu.stats().calls(PART),
        2,
        "the 503, then the PutObject"
    );

    let big = bytes_of(40 << 20, 32);
    env.emu.reset_stats();
    assert_eq!(put(&env, "/w/big.bin", big.clone()).await, 201);
    assert!(env.emu.read("/me/big.bin").expect("uploaded") == big);
    let stats = env.emu.stats();
    assert_eq!(stats.calls(UPLOAD_REQUEST), 1);
    assert_eq!(stats.calls(PART), 5, "create, 16 + 16 + 8 MiB, complete");
    assert_eq!(stats.calls(COMPLETE_STATIC), 1);
    assert_eq!(
        stats.calls(OBJECT_AUTH) + stats.calls(PARTS_BATCH) + stats.calls(COMPLETE),
        0
    );
    // Read back through the gateway.
    let res = env
        .get_following("/w/big.bin", &[("Range", "bytes=20000000-20000009")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        &big[20_000_000..20_000_010]
    );
    assert_no_wrong_host(&env.emu);
}
