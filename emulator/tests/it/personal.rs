//! The personal account on the web API: login (and its risk-control refusal), header and token
//! checks, listing pages, download info and the web-pro hop.

use pan123_emulator::{Emulator, Fault, FaultKind};
use serde_json::{json, Value};

use crate::common::{self, http, signed};

const UA: &str = "test";

async fn login(emu: &Emulator, body: Value) -> Value {
    let r = http()
        .post(format!("{}/api/user/sign_in", emu.base_url()))
        .header("platform", "web")
        .header("app-version", "3")
        .header("user-agent", UA)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

pub async fn token(emu: &Emulator) -> String {
    let v = login(
        emu,
        json!({"passport": emu.web_user(), "password": emu.web_password(), "remember": true}),
    )
    .await;
    assert_eq!(v["code"], 200, "{v}");
    v["data"]["token"].as_str().unwrap().to_string()
}

/// A signed personal call with the web client's headers.
pub fn call(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    query: &str,
    tok: &str,
) -> reqwest::RequestBuilder {
    http()
        .request(method, signed(emu, path, query))
        .header("platform", "web")
        .header("app-version", "3")
        .header("origin", emu.base_url())
        .header("referer", format!("{}/", emu.base_url()))
        .header("authorization", format!("Bearer {tok}"))
}

pub async fn json_of(rb: reqwest::RequestBuilder) -> Value {
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn list_query(parent: u64, page: u32) -> String {
    format!(
        "driveId=0&limit=100&next=0&orderBy=file_id&orderDirection=desc&parentFileId={parent}&trashed=false&SearchData=&Page={page}&OnlyLookAbnormalFile=0&event=homeListFile&operateType=4&inDirectSpace=false"
    )
}

#[tokio::test]
async fn login_by_phone_and_mail_and_risk_control() {
    let emu = common::start().await;
    assert_eq!(emu.web_user(), "13800138000");
    let v = login(
        &emu,
        json!({"passport": emu.web_user(), "password": "wrong"}),
    )
    .await;
    assert_ne!(v["code"], 200);
    assert!(v["data"].is_null());
    let tok = token(&emu).await;
    assert!(tok.starts_with("eyJ"), "JWT-shaped");
    // without the platform header: code 1
    let r = http()
        .post(format!("{}/api/user/sign_in", emu.base_url()))
        .json(&json!({"passport": emu.web_user(), "password": emu.web_password()}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 1);
    // an e-mail account logs in with `mail` and type 2
    let mail = common::start_with(|c| {
        c.web_user = "someone@example.com".into();
        c.web_password = "pw".into();
    })
    .await;
    let v = login(
        &mail,
        json!({"mail": "someone@example.com", "password": "pw", "type": 2}),
    )
    .await;
    assert_eq!(v["code"], 200, "{v}");
    // risk control
    emu.set_switches(|s| s.web_risk_control = true);
    let v = login(
        &emu,
        json!({"passport": emu.web_user(), "password": emu.web_password()}),
    )
    .await;
    assert_ne!(v["code"], 200);
    assert_eq!(
        v["message"],
        "当前账号存在安全风险，请使用短信验证码或者微信进行登录。"
    );
    assert_eq!(emu.stats().calls("/api/user/sign_in"), 4);
}

#[tokio::test]
async fn headers_signature_and_token_are_checked() {
    let emu = common::start().await;
    let tok = token(&emu).await;
    let get = reqwest::Method::GET;
    let v = json_of(call(&emu, get.clone(), "/b/api/user/info", "", &tok)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["UID"], emu.uid());
    // an unknown token, an empty one: code 401
    let v = json_of(call(&emu, get.clone(), "/b/api/user/info", "", "nope")).await;
    assert_eq!(v["code"], 401);
    let v = json_of(call(&emu, get.clone(), "/b/api/user/info", "", "")).await;
    assert_eq!(v["code"], 401);
    // no platform header: code 1
    let r = http()
        .get(signed(&emu, "/b/api/user/info", ""))
        .header("app-version", "3")
        .header("referer", "x")
        .header("authorization", format!("Bearer {tok}"));
    assert_eq!(json_of(r).await["code"], 1);
    // unsigned: 403
    let r = http()
        .get(format!("{}/b/api/user/info", emu.base_url()))
        .header("platform", "web")
        .header("authorization", format!("Bearer {tok}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // expire_tokens covers web sessions too
    emu.expire_tokens();
    let v = json_of(call(&emu, get, "/b/api/user/info", "", &tok)).await;
    assert_eq!(v["code"], 401);
}

#[tokio::test]
async fn listing_pages_to_next_minus_one() {
    let emu = common::start().await;
    for i in 0..250 {
        emu.put_file(&format!("/big/f{i:03}.txt"), format!("file {i}"));
    }
    emu.put_file("/big/gone.txt", "x");
    emu.trash("/big/gone.txt");
    let dir = emu.lookup("/big").unwrap().id;
    let tok = token(&emu).await;
    let mut names = Vec::new();
    let mut last_next = String::new();
    for page in 1..=5 {
        let v = json_of(call(
            &emu,
            reqwest::Method::GET,
            "/b/api/file/list/new",
            &list_query(dir, page),
            &tok,
        ))
        .await;
        assert_eq!(v["code"], 0, "{v}");
        assert_eq!(v["data"]["Total"], 250);
        let items = v["data"]["InfoList"].as_array().unwrap();
        for it in items {
            assert!(it["UpdateAt"].as_str().unwrap().ends_with("+08:00"));
            names.push(it["FileName"].as_str().unwrap().to_string());
        }
        last_next = v["data"]["Next"].as_str().unwrap().to_string();
        if last_next == "-1" {
            break;
        }
    }
    assert_eq!(last_next, "-1");
    assert_eq!(names.len(), 250);
    assert_eq!(names[0], "f249.txt", "file_id desc");
    assert!(!names.contains(&"gone.txt".to_string()));
    // a missing folder is an error, not an empty page
    let v = json_of(call(
        &emu,
        reqwest::Method::GET,
        "/b/api/file/list/new",
        &list_query(987654, 1),
        &tok,
    ))
    .await;
    assert_eq!(v["code"], 5066);
    // the expire-at-page fault: page 2 invalidates the session once
    emu.inject(Fault {
        endpoint: "/b/api/file/list/new".into(),
        kind: FaultKind::ExpireAtPage { page: 2, count: 1 },
    });
    let v = json_of(call(
        &emu,
        reqwest::Method::GET,
        "/b/api/file/list/new",
        &list_query(dir, 1),
        &tok,
    ))
    .await;
    assert_eq!(v["code"], 0);
    let v = json_of(call(
        &emu,
        reqwest::Method::GET,
        "/b/api/file/list/new",
        &list_query(dir, 2),
        &tok,
    ))
    .await;
    assert_eq!(v["code"], 401);
    let tok = token(&emu).await;
    let v = json_of(call(
        &emu,
        reqwest::Method::GET,
        "/b/api/file/list/new",
        &list_query(dir, 2),
        &tok,
    ))
    .await;
    assert_eq!(v["code"], 0);
}

#[tokio::test]
async fn download_info_and_the_hop() {
    let emu = common::start().await;
    let id = emu.put_file("/docs/a.txt", "hello web");
    let tok = token(&emu).await;
    let v = json_of(
        call(&emu, reqwest::Method::POST, "/b/api/file/download_info", "", &tok)
            .json(&json!({"driveId": 0, "etag": "", "fileId": id, "fileName": "a.txt", "s3keyFlag": "", "size": 9, "type": 0})),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let outer = v["data"]["DownloadUrl"].as_str().unwrap().to_string();
    assert!(outer.contains("/web-pro/download-v2/?params="), "{outer}");
    let u = url::Url::parse(&outer).unwrap();
    let params = u
        .query_pairs()
        .find(|(k, _)| k == "params")
        .unwrap()
        .1
        .into_owned();
    use base64::Engine;
    let hop = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(params)
            .unwrap(),
    )
    .unwrap();
    let r = http().get(&hop).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let fin = r.headers()["location"].to_str().unwrap().to_string();
    let r = http().get(&fin).send().await.unwrap();
    assert_eq!(r.status(), 403, "no Referer");
    let r = http()
        .get(&fin)
        .header("Referer", format!("{}/", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello web");
    // a folder or a missing id: 5066
    let dir = emu.lookup("/docs").unwrap().id;
    for bad in [dir, 999_999] {
        let v = json_of(
            call(
                &emu,
                reqwest::Method::POST,
                "/b/api/file/download_info",
                "",
                &tok,
            )
            .json(&json!({"fileId": bad})),
        )
        .await;
        assert_eq!(v["code"], 5066);
    }
}
