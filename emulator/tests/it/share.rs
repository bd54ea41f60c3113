//! Share links: signature, listing and paging, download info, the web-pro hop and Referer.

use std::collections::BTreeSet;

use base64::Engine;
use pan123_emulator::{Emulator, Host};
use serde_json::{json, Value};

use crate::common::{self, fetch, hop_referer, http, signed, web_headers};

/// A GET with the web client's headers.
async fn get(emu: &Emulator, url: &str) -> (u16, Value) {
    let r = web_headers(emu, http().get(url)).send().await.unwrap();
    let st = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/json");
    (st, r.json().await.unwrap())
}

async fn share_emu() -> Emulator {
    let emu = common::start().await;
    for i in 0..250 {
        emu.put_file(&format!("/shared/f{i:03}.txt"), format!("file {i}"));
    }
    emu.put_file("/shared/sub/inner.txt", "inner");
    emu.put_file("/shared/hidden.txt", "trashed");
    emu.trash("/shared/hidden.txt");
    emu.put_file("/private/secret.txt", "no");
    emu.add_share("abc-DEF", Some("pw12"), "/shared");
    emu.add_share("open", None, "/shared/sub");
    emu
}

#[tokio::test]
async fn signature_is_required_and_vectors_verify() {
    let emu = share_emu().await;
    let base = emu.host_url(Host::Web);
    // unsigned, and a signature for another path
    let (st, _) = get(
        &emu,
        &format!("{base}/b/api/share/get?shareKey=open&SharePwd=&Page=1"),
    )
    .await;
    assert_eq!(st, 403);
    let (k, v) = pan123_emulator::sign::sign_path("/b/api/user/info", emu.now(), 1);
    let (st, _) = get(
        &emu,
        &format!("{base}/b/api/share/get?{k}={v}&shareKey=open"),
    )
    .await;
    assert_eq!(st, 403);
    // vector C, with the emulator's clock at its timestamp
    emu.set_clock_offset(1735689599 - chrono::Utc::now().timestamp());
    let url = format!(
        "{base}/b/api/share/get?477515232=1735689599-0-2376106428&limit=100&next=0&orderBy=file_id&orderDirection=desc&parentFileId=0&Page=1&shareKey=open&SharePwd="
    );
    let (st, v) = get(&emu, &url).await;
    assert_eq!((st, v["code"].as_i64()), (200, Some(0)), "{v}");
    // ±10 minutes of skew, not more
    emu.set_clock_offset(1735689599 + 599 - chrono::Utc::now().timestamp());
    assert_eq!(get(&emu, &url).await.0, 200);
    emu.set_clock_offset(1735689599 + 660 - chrono::Utc::now().timestamp());
    assert_eq!(get(&emu, &url).await.0, 403);
    // vector E on download/info
    emu.set_clock_offset(1690439821 - chrono::Utc::now().timestamp());
    let inner = emu.lookup("/shared/sub/inner.txt").unwrap().id;
    let url = format!("{base}/b/api/share/download/info?1946841013=1690439821-5790548-3456942785");
    let r = web_headers(&emu, http().post(url))
        .json(&json!({"shareKey": "open", "SharePwd": "", "fileId": inner}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 0, "{v}");
}

#[tokio::test]
async fn listing_pages_and_password() {
    let emu = share_emu().await;
    let q = "limit=100&next=0&orderBy=file_id&orderDirection=desc&parentFileId=0&shareKey=abc-DEF";
    let (_, v) = get(
        &emu,
        &signed(
            &emu,
            "/b/api/share/get",
            &format!("{q}&Page=1&SharePwd=bad"),
        ),
    )
    .await;
    assert_ne!(v["code"], 0);
    assert_eq!(v["message"], "分享码错误或者分享地址错误");
    let (_, v) = get(
        &emu,
        &signed(&emu, "/b/api/share/get", "Page=1&shareKey=nokey&SharePwd="),
    )
    .await;
    assert_eq!(v["message"], "分享码错误或者分享地址错误");

    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut nexts = Vec::new();
    for page in 1..=10 {
        let (st, v) = get(
            &emu,
            &signed(
                &emu,
                "/b/api/share/get",
                &format!("{q}&Page={page}&SharePwd=pw12"),
            ),
        )
        .await;
        assert_eq!((st, v["code"].as_i64()), (200, Some(0)), "{v}");
        assert!(v["data"].get("Total").is_none());
        let list = v["data"]["InfoList"].as_array().unwrap();
        for it in list {
            for k in [
                "FileId",
                "FileName",
                "Type",
                "Size",
                "Etag",
                "S3KeyFlag",
                "UpdateAt",
                "DownloadUrl",
            ] {
                assert!(it.get(k).is_some(), "{k}");
            }
            let t = it["UpdateAt"].as_str().unwrap();
            assert!(
                t.ends_with("+08:00") && chrono::DateTime::parse_from_rfc3339(t).is_ok(),
                "{t}"
            );
            ids.push(it["FileId"].as_u64().unwrap());
            names.push(it["FileName"].as_str().unwrap().to_string());
        }
        let next = v["data"]["Next"]
            .as_str()
            .expect("Next is a JSON string")
            .to_string();
        nexts.push(next.clone());
        if next == "-1" {
            break;
        }
    }
    // 250 files + "sub"; the trashed file is hidden
    assert_eq!(nexts.len(), 3);
    assert_eq!(nexts[2], "-1");
    assert_eq!(ids.len(), 251);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 251);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "orderDirection=desc");
    assert!(
        !names.iter().any(|n| n == "hidden.txt"),
        "trashed items are hidden"
    );

    // sub-folder by ParentFileId (capital P), and a folder outside the share
    let sub = emu.lookup("/shared/sub").unwrap().id;
    let (_, v) = get(
        &emu,
        &signed(
            &emu,
            "/b/api/share/get",
            &format!("shareKey=abc-DEF&SharePwd=pw12&ParentFileId={sub}&Page=1"),
        ),
    )
    .await;
    let list = v["data"]["InfoList"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["FileName"], "inner.txt");
    assert_eq!(list[0]["Etag"], common::md5(b"inner"));
    assert_eq!(list[0]["Type"], 0);
    let private = emu.lookup("/private").unwrap().id;
    let (_, v) = get(
        &emu,
        &signed(
            &emu,
            "/b/api/share/get",
            &format!("shareKey=abc-DEF&SharePwd=pw12&parentFileId={private}&Page=1"),
        ),
    )
    .await;
    assert_ne!(v["code"], 0);
    assert_eq!(emu.stats().calls("/b/api/share/get"), 7);
}

/// Decode a `DownloadURL`'s `params` the way OpenList does.
fn decode_params(download_url: &str) -> String {
    let u = url::Url::parse(download_url).unwrap();
    let params = u
        .query_pairs()
        .find(|(k, _)| k == "params")
        .unwrap()
        .1
        .into_owned();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(params)
        .unwrap();
    String::from_utf8(raw).unwrap()
}

async fn download_url(emu: &Emulator, body: Value) -> Value {
    let r = web_headers(
        emu,
        http().post(signed(emu, "/b/api/share/download/info", "")),
    )
    .json(&body)
    .send()
    .await
    .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

#[tokio::test]
async fn download_hop_redirect_and_referer() {
    let emu = share_emu().await;
    let hop_host = emu.host_url(Host::WebPro);
    let cdn = emu.host_url(Host::Cdn);
    let f = emu.lookup("/shared/f007.txt").unwrap().id;
    let private = emu.lookup("/private/secret.txt").unwrap().id;
    let v = download_url(
        &emu,
        json!({"shareKey": "abc-DEF", "SharePwd": "pw12", "fileId": private}),
    )
    .await;
    assert_ne!(v["code"], 0, "outside the share");
    let v = download_url(
        &emu,
        json!({"shareKey": "abc-DEF", "SharePwd": "x", "fileId": f}),
    )
    .await;
    assert_eq!(v["message"], "分享码错误或者分享地址错误");
    // keys case-insensitively, as qaiu's client sends them
    let v = download_url(
        &emu,
        json!({"ShareKey": "abc-DEF", "sharepwd": "pw12", "FileID": f, "Etag": "", "S3keyFlag": "", "Size": 8}),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let outer = v["data"]["DownloadURL"].as_str().unwrap().to_string();
    assert!(
        outer.starts_with(&format!("{hop_host}/web-pro/download-v2/?params=")),
        "{outer}"
    );
    assert!(outer.ends_with("&is_s3=0"));
    let hop = decode_params(&outer);
    assert!(hop.starts_with(&format!("{hop_host}/web-pro/")), "{hop}");

    let c = http();
    let r = c.get(&hop).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let fin = r.headers()["location"].to_str().unwrap().to_string();
    assert!(fin.starts_with(&format!("{cdn}/cdn/123-680/")), "{fin}");
    // no Referer, wrong ones (123 itself, the web host, the CDN), the right one (the hop's)
    assert_eq!(fetch(&c, &fin, None).await.0, 403);
    for wrong in [
        "https://yun.123pan.com/".to_string(),
        format!("{}/", emu.host_url(Host::Web)),
        format!("{cdn}/"),
    ] {
        let r = c
            .get(&fin)
            .header("Referer", wrong.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{wrong}");
    }
    let r = c
        .get(&fin)
        .header("Referer", hop_referer(&emu))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"file 7");
    let r = c
        .get(&fin)
        .header("Referer", hop_referer(&emu))
        .header("Range", "bytes=-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"7");

    // JSON style hop
    emu.set_switches(|s| s.share_redirect_json = true);
    let r = c.get(&hop).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 0);
    assert_eq!(v["message"], "ok");
    assert_eq!(v["data"]["redirect_url"], fin.as_str());
    // the outer URL itself redirects to the hop (for browsers)
    let r = c.get(&outer).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], hop.as_str());
    // The hop takes the web host as Referer (the web client sends it) or none; not another.
    let web_referer = format!("{}/", emu.host_url(Host::Web));
    let r = c
        .get(&hop)
        .header("Referer", web_referer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(&hop)
        .header("Referer", hop_referer(&emu))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the hop host names itself");
    let s = emu.stats();
    assert_eq!(s.calls("web-pro"), 5);
    assert_eq!(s.calls("/b/api/share/download/info"), 3);
    assert_eq!(s.calls("cdn"), 6);
    assert_eq!(s.wrong_host_total(), 0);
}

#[tokio::test]
async fn a_shared_file_lists_itself() {
    let emu = common::start().await;
    emu.put_file("/one.txt", "solo");
    emu.add_share("single", None, "/one.txt");
    let (_, v) = get(
        &emu,
        &signed(
            &emu,
            "/b/api/share/get",
            "shareKey=single&SharePwd=&parentFileId=0&Page=1",
        ),
    )
    .await;
    let list = v["data"]["InfoList"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["FileName"], "one.txt");
    assert_eq!(v["data"]["Next"], "-1");
}
