//! Faults, switches and stats through the HTTP control API (and the same data in Rust).

use std::time::{Duration, Instant};

use pan123_emulator::{Fault, FaultKind, Host, Stats, Switches};
use serde_json::{json, Value};

use crate::common::{self, http, signed, web_headers, Api};

async fn control(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http().request(method, format!("{base}/__emulator/{path}"));
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn code429_http_status_and_latency_faults() {
    let emu = common::start().await;
    let base = emu.base_url();
    let api = Api::new(&emu).await;
    let (st, _) = control(
        &base,
        reqwest::Method::POST,
        "faults",
        Some(json!([
            {"endpoint": "/api/v1/user/info", "kind": "code429", "count": 2},
            {"endpoint": "/api/v2/file/list", "kind": "http", "status": 503, "count": 1},
            {"endpoint": "/api/v1/file/download_info", "kind": "latency", "ms": 300, "count": 1}
        ])),
    )
    .await;
    assert_eq!(st, 200);
    let (_, armed) = control(&base, reqwest::Method::GET, "faults", None).await;
    assert_eq!(armed.as_array().unwrap().len(), 3);
    assert_eq!(
        armed[1],
        json!({"endpoint": "/api/v2/file/list", "kind": "http", "status": 503, "count": 1})
    );

    for _ in 0..2 {
        assert_eq!(api.get("/api/v1/user/info").await["code"], 429);
    }
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);

    let r = api
        .http
        .get(format!("{base}/api/v2/file/list?parentFileId=0&limit=100"))
        .header("Platform", "open_platform")
        .header("Authorization", format!("Bearer {}", api.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(api.list(0, 100, 0).await["code"], 0);

    let t0 = Instant::now();
    assert_eq!(
        api.get("/api/v1/file/download_info?fileId=1").await["code"],
        5066
    );
    assert!(t0.elapsed() >= Duration::from_millis(300));

    let (_, stats) = control(&base, reqwest::Method::GET, "stats", None).await;
    let stats: Stats = serde_json::from_value(stats).unwrap();
    assert_eq!(stats.refused("/api/v1/user/info"), 2);
    assert_eq!(stats.calls("/api/v1/user/info"), 1);
    assert_eq!(stats.calls("/api/v2/file/list"), 2);
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats, emu.stats());
    let (st, _) = control(&base, reqwest::Method::DELETE, "stats", None).await;
    assert_eq!(st, 200);
    let s = emu.stats();
    assert!(s.calls.is_empty() && s.refused.is_empty());
    assert_eq!((s.tokens_issued, s.live_tokens), (0, 1));
}

#[tokio::test]
async fn expire_tokens_fault_and_clear() {
    let emu = common::start().await;
    let base = emu.base_url();
    let api = Api::new(&emu).await;
    control(
        &base,
        reqwest::Method::POST,
        "faults",
        Some(json!({"kind": "expire_tokens"})),
    )
    .await;
    assert_eq!(api.get("/api/v1/user/info").await["code"], 401);
    let api = Api::new(&emu).await;
    emu.inject(Fault {
        endpoint: "/api/v1/user/info".into(),
        kind: FaultKind::Code429 { count: 5 },
    });
    let (_, armed) = control(&base, reqwest::Method::GET, "faults", None).await;
    assert_eq!(armed[0]["count"], 5);
    control(&base, reqwest::Method::DELETE, "faults", None).await;
    assert!(emu.faults().is_empty());
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
    emu.inject(Fault {
        endpoint: String::new(),
        kind: FaultKind::ExpireTokens,
    });
    assert_eq!(api.get("/api/v1/user/info").await["code"], 401);
    let (st, _) = control(
        &base,
        reqwest::Method::POST,
        "faults",
        Some(json!({"kind": "bogus"})),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn fail_page_on_both_listings() {
    let emu = common::start().await;
    let dir = emu.mkdir_p("/many");
    for i in 0..250 {
        emu.mkdir_p(&format!("/many/d{i:03}"));
    }
    emu.add_share("s", None, "/many");
    let api = Api::new(&emu).await;
    emu.inject(Fault {
        endpoint: "/api/v2/file/list".into(),
        kind: FaultKind::FailPage { page: 2, count: 1 },
    });
    let p1 = api.list(dir, 100, 0).await;
    assert_eq!(p1["code"], 0);
    let last = p1["data"]["lastFileId"].as_i64().unwrap();
    let p2 = api.list(dir, 100, last).await;
    assert_ne!(p2["code"], 0, "page 2 fails once");
    let p2 = api.list(dir, 100, last).await;
    assert_eq!(p2["code"], 0);
    // page 1 of a new walk does not trip a page-3 fault; page 3 does
    emu.inject(Fault {
        endpoint: "/api/v2/file/list".into(),
        kind: FaultKind::FailPage { page: 3, count: 1 },
    });
    assert_eq!(api.list(dir, 100, 0).await["code"], 0);
    let last = p2["data"]["lastFileId"].as_i64().unwrap();
    assert_ne!(api.list(dir, 100, last).await["code"], 0);

    emu.inject(Fault {
        endpoint: "/b/api/share/get".into(),
        kind: FaultKind::FailPage { page: 2, count: 1 },
    });
    let get = |page: u32| {
        let url = signed(
            &emu,
            "/b/api/share/get",
            &format!("shareKey=s&SharePwd=&parentFileId=0&Page={page}"),
        );
        let rb = web_headers(&emu, http().get(url));
        async move { rb.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(get(1).await["code"], 0);
    assert_ne!(get(2).await["code"], 0);
    assert_eq!(get(2).await["code"], 0);
}

#[tokio::test]
async fn cut_a_direct_download() {
    let emu = common::start_with(|c| c.direct_link_space = Some("/direct".into())).await;
    emu.put_file("/direct/f.bin", common::bytes(10_000, 1));
    let url = format!("{}/{}/direct/f.bin", emu.host_url(Host::Direct), emu.uid());
    let base = emu.base_url();
    control(
        &base,
        reqwest::Method::POST,
        "faults",
        Some(json!({"endpoint": "direct", "kind": "cut_after", "bytes": 0, "count": 1})),
    )
    .await;
    let r = http().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
    assert_eq!(
        http()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len(),
        10_000
    );
}

#[tokio::test]
async fn switches_info_clock_and_qps_over_http() {
    let emu = common::start().await;
    let base = emu.base_url();
    let (st, v) = control(&base, reqwest::Method::GET, "switches", None).await;
    assert_eq!(st, 200);
    let sw: Switches = serde_json::from_value(v).unwrap();
    assert_eq!(sw, emu.switches());
    let (st, v) = control(
        &base,
        reqwest::Method::POST,
        "switches",
        Some(json!({"share_redirect_json": true, "cdn_link_ttl_ms": 60000, "overwrite_at": "complete"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let sw = emu.switches();
    assert!(sw.share_redirect_json);
    assert_eq!(sw.cdn_link_ttl, Duration::from_secs(60));
    assert_eq!(sw.overwrite_at, pan123_emulator::OverwriteAt::Complete);
    let (st, _) = control(
        &base,
        reqwest::Method::POST,
        "switches",
        Some(json!({"nope": 1})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        emu.switches().share_redirect_json,
        "a bad patch changes nothing"
    );

    let (_, v) = control(&base, reqwest::Method::GET, "info", None).await;
    assert_eq!(v["base_url"], base.as_str());
    assert_eq!(v["hosts"]["web"], emu.host_url(Host::Web).as_str());
    assert_eq!(v["client_id"], "demo-client");
    let (_, v) = control(
        &base,
        reqwest::Method::POST,
        "clock",
        Some(json!({"offset_secs": 3600})),
    )
    .await;
    assert_eq!(v["offset_secs"], 3600);
    assert!((emu.now() - chrono::Utc::now().timestamp() - 3600).abs() <= 2);
    let (st, _) = control(
        &base,
        reqwest::Method::POST,
        "qps",
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = control(&base, reqwest::Method::GET, "nothing", None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let emu = common::start().await;
    let hosts = emu.hosts();
    assert_eq!(hosts.len(), 9);
    let c = http();
    for base in hosts.values() {
        assert_eq!(
            c.get(format!("{base}/__emulator/stats"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{base}"
        );
    }
    emu.shutdown().await;
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for base in hosts.values() {
        assert!(
            fresh
                .get(format!("{base}/__emulator/stats"))
                .send()
                .await
                .is_err(),
            "{base}"
        );
    }
}
