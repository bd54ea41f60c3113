//! QPS limits and live-token limits.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use crate::common::{self, token, Api};

#[tokio::test]
async fn qps_limit_per_endpoint() {
    let emu = common::start_with(|c| c.qps = true).await;
    let api = Api::new(&emu).await;
    // v2 file/list allows 5 per second: 6 at once → exactly one refused
    let calls = (0..6).map(|_| api.list(0, 100, 0));
    let codes: Vec<i64> = join_all(calls)
        .await
        .iter()
        .map(|v: &Value| v["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    let s = emu.stats();
    assert_eq!(s.calls("/api/v2/file/list"), 5);
    assert_eq!(s.refused("/api/v2/file/list"), 1);
    // another endpoint has its own budget
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
    // the window slides
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.list(0, 100, 0).await["code"], 0);
    // file/delete allows 1 per second
    let codes: Vec<i64> = join_all(
        (0..2).map(|_| api.post("/api/v1/file/delete", serde_json::json!({"fileIDs": [1]}))),
    )
    .await
    .iter()
    .map(|v| v["code"].as_i64().unwrap())
    .collect();
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    // switched off at run time
    emu.set_qps(false);
    let codes: Vec<Value> = join_all((0..10).map(|_| api.list(0, 100, 0))).await;
    assert!(codes.iter().all(|v| v["code"] == 0));
}

#[tokio::test]
async fn qps_off_by_config() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let codes: Vec<Value> = join_all((0..12).map(|_| api.list(0, 100, 0))).await;
    assert!(codes.iter().all(|v| v["code"] == 0));
    assert_eq!(emu.stats().calls("/api/v2/file/list"), 12);
}

#[tokio::test]
async fn fourth_token_evicts_the_first() {
    let emu = common::start().await;
    let t1 = token(&emu).await;
    let _t2 = token(&emu).await;
    let _t3 = token(&emu).await;
    let mut api = Api::new(&emu).await; // the 4th
    let s = emu.stats();
    assert_eq!((s.live_tokens, s.tokens_issued), (3, 4));
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
    api.token = t1;
    assert_eq!(api.get("/api/v1/user/info").await["code"], 401);
}

#[tokio::test]
async fn token_lifetime_and_expiry() {
    let emu = common::start_with(|c| c.switches.token_ttl = Duration::from_secs(60)).await;
    let api = Api::new(&emu).await;
    emu.set_clock_offset(59);
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
    emu.set_clock_offset(61);
    assert_eq!(api.get("/api/v1/user/info").await["code"], 401);
    emu.set_clock_offset(0);
    let api = Api::new(&emu).await;
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
    emu.expire_tokens();
    assert_eq!(api.get("/api/v1/user/info").await["code"], 401);
    assert_eq!(emu.stats().live_tokens, 0);
}

#[tokio::test]
async fn the_web_api_and_login_are_rate_limited_too() {
    use crate::common::{at, http, signed, web_headers};
    use pan123_emulator::Host;
    let emu = common::start_with(|c| c.qps = true).await;
    emu.add_share("k", None, "/shared");
    let codes =
        |vs: Vec<Value>| -> Vec<i64> { vs.iter().map(|v| v["code"].as_i64().unwrap()).collect() };
    // login: 5 a second per address; success is code 200
    let body = serde_json::json!({"passport": emu.web_user(), "password": emu.web_password()});
    let logins = (0..6).map(|_| async {
        web_headers(
            &emu,
            http().post(at(&emu, Host::Login, "/api/user/sign_in")),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
    });
    let answers = join_all(logins).await;
    let got = codes(answers.clone());
    assert_eq!(got.iter().filter(|c| **c == 200).count(), 5, "{got:?}");
    assert_eq!(got.iter().filter(|c| **c == 429).count(), 1, "{got:?}");
    // (an account keeps 3 live sessions: take one that is still live)
    let mut tok = String::new();
    for t in answers.iter().filter_map(|v| v["data"]["token"].as_str()) {
        let url = signed(&emu, "/b/api/user/info", "");
        let v: Value = web_headers(&emu, http().get(url))
            .header("authorization", format!("Bearer {t}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["code"] == 0 {
            tok = t.to_string();
            break;
        }
    }
    assert!(!tok.is_empty(), "a live session");
    // listing pages: 3 a second (the web client spaces them 700 ms apart)
    let share_page = || async {
        let url = signed(&emu, "/b/api/share/get", "shareKey=k&SharePwd=&Page=1");
        web_headers(&emu, http().get(url))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let got = codes(join_all((0..4).map(|_| share_page())).await);
    assert_eq!(got.iter().filter(|c| **c == 0).count(), 3, "{got:?}");
    assert_eq!(got.iter().filter(|c| **c == 429).count(), 1, "{got:?}");
    let personal_page = || async {
        let url = signed(&emu, "/b/api/file/list/new", "parentFileId=0&Page=1");
        web_headers(&emu, http().get(url))
            .header("authorization", format!("Bearer {tok}"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let got = codes(join_all((0..4).map(|_| personal_page())).await);
    assert_eq!(got.iter().filter(|c| **c == 0).count(), 3, "{got:?}");
    assert_eq!(got.iter().filter(|c| **c == 429).count(), 1, "{got:?}");
    let s = emu.stats();
    for (key, calls) in [
        ("/api/user/sign_in", 5),
        ("/b/api/share/get", 3),
        ("/b/api/file/list/new", 3),
    ] {
        assert_eq!((s.calls(key), s.refused(key)), (calls, 1), "{key}");
    }
    // the same switch turns it off
    emu.set_qps(false);
    let got = codes(join_all((0..6).map(|_| share_page())).await);
    assert!(got.iter().all(|c| *c == 0), "{got:?}");
}
