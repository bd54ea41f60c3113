//! The download CDN: ranges, requester binding, expiry, rate cap, byte counting.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use pan123_emulator::Emulator;

use crate::common::{self, fetch, Api};

async fn link(emu: &Emulator, api: &Api, path: &str) -> String {
    let id = emu.lookup(path).unwrap().id;
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    v["data"]["downloadUrl"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn range_edge_cases() {
    let emu = common::start().await;
    let data = common::bytes(1000, 1);
    emu.put_file("/f.bin", data.clone());
    let api = Api::new(&emu).await;
    let url = link(&emu, &api, "/f.bin").await;
    let etag = format!("\"{}\"", common::md5(&data));

    let (st, h, body) = api.fetch(&url, None).await;
    assert_eq!(st, 200);
    assert_eq!(body, data);
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(h["content-length"], "1000");

    let cases: [(&str, &str, std::ops::Range<usize>); 5] = [
        ("bytes=0-0", "bytes 0-0/1000", 0..1),
        ("bytes=999-999", "bytes 999-999/1000", 999..1000),
        ("bytes=-10", "bytes 990-999/1000", 990..1000),
        ("bytes=400-", "bytes 400-999/1000", 400..1000),
        ("bytes=10-5000", "bytes 10-999/1000", 10..1000),
    ];
    for (range, content_range, want) in cases {
        let (st, h, body) = api.fetch(&url, Some(range)).await;
        assert_eq!(st, 206, "{range}");
        assert_eq!(h["content-range"], content_range, "{range}");
        assert_eq!(body, &data[want.clone()], "{range}");
        assert_eq!(h["content-length"], want.len().to_string().as_str());
        assert_eq!(h["etag"], etag.as_str());
    }
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let (st, h, body) = api.fetch(&url, Some(range)).await;
        assert_eq!(st, 416, "{range}");
        assert_eq!(h["content-range"], "bytes */1000");
        assert!(body.is_empty());
    }
    // HEAD: headers only
    let r = api.http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "1000");
    // served bytes are counted: 1000 + 1 + 1 + 10 + 600 + 990
    let s = emu.stats();
    assert_eq!(s.bytes("cdn"), 2602);
    assert_eq!(s.bytes_served, 2602);
    assert_eq!(s.calls("cdn"), 10);
    // an altered link is refused
    let bad = url.replace("&s=", "&s=0");
    assert_eq!(api.fetch(&bad, None).await.0, 403);
}

#[tokio::test]
async fn bound_to_the_requester() {
    let emu = common::start().await;
    emu.put_file("/f.bin", "bound");
    let api = Api::new(&emu).await;
    let url = link(&emu, &api, "/f.bin").await;
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let r = other.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], 1010);
    assert_eq!(v["message"], "forbidden realc:guangzhou arg_c:beijing");

    emu.set_switches(|s| s.cdn_refusal_http_200 = true);
    let r = other.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], 1010);
    // the requester itself still gets the bytes
    let (st, _, body) = api.fetch(&url, None).await;
    assert_eq!((st, body.as_slice()), (200, b"bound".as_slice()));
}

#[tokio::test]
async fn links_expire() {
    let emu = common::start().await;
    emu.put_file("/f.bin", "x");
    let api = Api::new(&emu).await;
    let url = link(&emu, &api, "/f.bin").await;
    emu.set_clock_offset(29 * 60);
    assert_eq!(api.fetch(&url, None).await.0, 200);
    emu.set_clock_offset(31 * 60);
    assert_eq!(api.fetch(&url, None).await.0, 403);
    emu.set_clock_offset(0);
    emu.set_switches(|s| s.cdn_link_ttl = Duration::from_secs(60));
    let url = link(&emu, &api, "/f.bin").await;
    emu.set_clock_offset(61);
    assert_eq!(api.fetch(&url, None).await.0, 403);
}

#[tokio::test]
async fn rate_cap_slows_downloads() {
    let emu = common::start_with(|c| c.switches.cdn_rate_limit = Some(256 * 1024)).await;
    let data = common::bytes(128 * 1024, 3);
    emu.put_file("/f.bin", data.clone());
    let api = Api::new(&emu).await;
    let url = link(&emu, &api, "/f.bin").await;
    let t0 = Instant::now();
    let (st, _, body) = api.fetch(&url, None).await;
    assert_eq!((st, body.len()), (200, data.len()));
    assert_eq!(body, data);
    // 128 KiB at 256 KiB/s cannot take less than ~0.5 s (a lower bound, never flaky)
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn cut_after_k_bytes() {
    let emu = common::start().await;
    let data = common::bytes(300_000, 4);
    emu.put_file("/f.bin", data.clone());
    let api = Api::new(&emu).await;
    let url = link(&emu, &api, "/f.bin").await;
    emu.inject(pan123_emulator::Fault {
        endpoint: "cdn".into(),
        kind: pan123_emulator::FaultKind::CutAfter {
            bytes: 70_000,
            count: 1,
        },
    });
    let r = api.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    let mut got = 0usize;
    let mut r = r;
    let err = loop {
        match r.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(
        err.is_some(),
        "the body must end in an error, not look complete"
    );
    assert_eq!(got, 70_000);
    assert!(emu.faults().is_empty());
    let (st, _, body) = fetch(&api.http, &url, None).await;
    assert_eq!((st, body.len()), (200, 300_000));
}
