//! The personal account on the web API: login (and its risk-control refusal), header and token
//! checks, listing pages, download info and the web-pro hop.

use pan123_emulator::{Emulator, Fault, FaultKind, Host};
use serde_json::{json, Value};

use crate::common::{self, at, hop_referer, http, signed, web_headers};

const UA: &str = "test";

async fn login(emu: &Emulator, body: Value) -> Value {
    let r = web_headers(emu, http().post(at(emu, Host::Login, "/api/user/sign_in")))
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
    web_headers(emu, http().request(method, signed(emu, path, query)))
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
        .post(at(&emu, Host::Login, "/api/user/sign_in"))
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
        .get(at(&emu, Host::Web, "/b/api/user/info"))
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

/// Header edits: a name and its new value (`None` leaves the header out).
type Edits = Vec<(&'static str, Option<String>)>;

/// The header variants a web call is refused for: (what, header edits). Every one is code 1 on
/// the web API (share and personal) and on the login host, where the right headers pass.
fn bad_client_headers(emu: &Emulator) -> Vec<(&'static str, Edits)> {
    let login = emu.host_url(Host::Login);
    let open = emu.base_url();
    vec![
        ("no platform", vec![("platform", None)]),
        (
            "platform open_platform",
            vec![("platform", Some("open_platform".into()))],
        ),
        (
            "platform android",
            vec![("platform", Some("android".into()))],
        ),
        ("no app-version", vec![("app-version", None)]),
        ("app-version 61", vec![("app-version", Some("61".into()))]),
        ("no Referer", vec![("referer", None)]),
        ("Referer not a URL", vec![("referer", Some("x".into()))]),
        (
            "Referer of the login host",
            vec![("referer", Some(format!("{login}/")))],
        ),
        (
            "Referer of the Open API host",
            vec![("referer", Some(format!("{open}/")))],
        ),
        (
            "Referer of 123 itself",
            vec![("referer", Some("https://yun.123pan.com/".into()))],
        ),
        (
            "Origin of the login host",
            vec![("origin", Some(login.clone()))],
        ),
        (
            "Origin of the hop host",
            vec![("origin", Some(emu.host_url(Host::WebPro)))],
        ),
    ]
}

/// `rb` with the web client's headers, then `edits` applied (`None` leaves a header out).
fn with_headers(
    emu: &Emulator,
    rb: reqwest::RequestBuilder,
    edits: &[(&'static str, Option<String>)],
) -> reqwest::RequestBuilder {
    let web = emu.host_url(Host::Web);
    let mut headers = vec![
        ("platform", "web".to_string()),
        ("app-version", "3".to_string()),
        ("origin", web.clone()),
        ("referer", format!("{web}/")),
    ];
    for (name, value) in edits {
        headers.retain(|(n, _)| n != name);
        if let Some(v) = value {
            headers.push((name, v.clone()));
        }
    }
    headers.into_iter().fold(rb, |rb, (n, v)| rb.header(n, v))
}

#[tokio::test]
async fn a_call_not_from_the_web_client_is_refused() {
    let emu = common::start().await;
    emu.add_share("k", None, "/shared");
    let tok = token(&emu).await;
    let cases = bad_client_headers(&emu);
    for (what, edits) in &cases {
        // personal
        let rb = http()
            .get(signed(&emu, "/b/api/user/info", ""))
            .header("authorization", format!("Bearer {tok}"));
        let v = json_of(with_headers(&emu, rb, edits)).await;
        assert_eq!(v["code"], 1, "personal, {what}: {v}");
        // share
        let rb = http().get(signed(
            &emu,
            "/b/api/share/get",
            "shareKey=k&SharePwd=&Page=1",
        ));
        let v = json_of(with_headers(&emu, rb, edits)).await;
        assert_eq!(v["code"], 1, "share, {what}: {v}");
        // login
        let rb = http()
            .post(at(&emu, Host::Login, "/api/user/sign_in"))
            .json(&json!({"passport": emu.web_user(), "password": emu.web_password()}));
        let v = json_of(with_headers(&emu, rb, edits)).await;
        assert_eq!(v["code"], 1, "login, {what}: {v}");
    }
    // the messages: the Open API's for platform, then app-version, then 123pan forbidden
    let rb = http().get(signed(&emu, "/b/api/share/get", "shareKey=k"));
    let v = json_of(with_headers(&emu, rb, &[("platform", None)])).await;
    assert_eq!(
        v["message"],
        "Please include the platform field in the request header"
    );
    let rb = http().get(signed(&emu, "/b/api/share/get", "shareKey=k"));
    let v = json_of(with_headers(&emu, rb, &[("app-version", None)])).await;
    assert_eq!(v["message"], "app-version is required");
    let rb = http().get(signed(&emu, "/b/api/share/get", "shareKey=k"));
    let v = json_of(with_headers(&emu, rb, &[("referer", None)])).await;
    assert_eq!(v["message"], "123pan forbidden");
    // The right headers pass; a same-origin GET without Origin (as a browser sends it) and a
    // Referer naming a page of the web host pass too.
    let web = emu.host_url(Host::Web);
    let rb = http()
        .get(signed(&emu, "/b/api/user/info", ""))
        .header("authorization", format!("Bearer {tok}"));
    let edits = [("origin", None), ("referer", Some(format!("{web}/s/k")))];
    let v = json_of(with_headers(&emu, rb, &edits)).await;
    assert_eq!(v["code"], 0, "{v}");
    let v = json_of(with_headers(
        &emu,
        http().get(signed(
            &emu,
            "/b/api/share/get",
            "shareKey=k&SharePwd=&Page=1",
        )),
        &[],
    ))
    .await;
    assert_eq!(v["code"], 0, "{v}");
    let stats = emu.stats();
    assert_eq!(stats.calls("/api/user/sign_in"), 1 + cases.len() as u64);
    assert_eq!(stats.wrong_host_total(), 0, "{:?}", stats.wrong_host);
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
    // Without the listed etag and s3keyFlag (or with a wrong size): refused (spec web §7).
    let md5 = emu.entry(id).unwrap().md5;
    let flag = format!("{}-0", emu.uid());
    for (etag, s3key_flag, size) in [
        ("", "", 9),
        (md5.as_str(), "", 9),
        ("", flag.as_str(), 9),
        (md5.as_str(), flag.as_str(), 8),
    ] {
        let v = json_of(
            call(&emu, reqwest::Method::POST, "/b/api/file/download_info", "", &tok)
                .json(&json!({"driveId": 0, "etag": etag, "fileId": id, "fileName": "a.txt", "s3keyFlag": s3key_flag, "size": size, "type": 0})),
        )
        .await;
        assert_eq!(v["code"], 1, "{v}");
        assert_eq!(v["message"], pan123_emulator::MSG_STALE_ITEM);
    }
    let v = json_of(
        call(&emu, reqwest::Method::POST, "/b/api/file/download_info", "", &tok)
            .json(&json!({"driveId": 0, "etag": md5, "fileId": id, "fileName": "a.txt", "s3keyFlag": flag, "size": 9, "type": 0})),
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
        .header("Referer", hop_referer(&emu))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello web");
    assert!(outer.starts_with(&emu.host_url(Host::WebPro)), "{outer}");
    assert!(hop.starts_with(&emu.host_url(Host::WebPro)), "{hop}");
    assert!(fin.starts_with(&emu.host_url(Host::Cdn)), "{fin}");
    // the web API's origin is not the CDN's Referer: only the hop's is
    let r = http()
        .get(&fin)
        .header("Referer", format!("{}/", emu.host_url(Host::Web)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the web host as Referer");
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
