//! Open API endpoints: auth headers, user info, listing and paging, links, tree mutations.

use std::collections::BTreeSet;

use pan123_emulator::Host;
use serde_json::{json, Value};

use crate::common::{self, at, http, md5, Api};

#[tokio::test]
async fn access_token_and_header_checks() {
    let emu = common::start().await;
    let base = emu.base_url();
    let c = http();
    // wrong secret
    let v: Value = c
        .post(format!("{base}/api/v1/access_token"))
        .header("Platform", "open_platform")
        .json(&json!({"clientID": "demo-client", "clientSecret": "nope"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(v["code"], 0);
    assert!(v["data"].is_null());
    assert!(v.get("x-traceID").is_some());
    // no Platform header
    let v: Value = c
        .post(format!("{base}/api/v1/access_token"))
        .json(&json!({"clientID": "demo-client", "clientSecret": "demo-secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 1);
    assert_eq!(
        v["message"],
        "Please include the platform field in the request header"
    );
    // keys case-insensitively, lowercase header name
    let r = c
        .post(format!("{base}/api/v1/access_token"))
        .header("platform", "open_platform")
        .json(&json!({"ClientId": "demo-client", "CLIENTSECRET": "demo-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["message"], "ok");
    let tok = v["data"]["accessToken"].as_str().unwrap();
    assert!(tok.starts_with("eyJ"));
    let exp = v["data"]["expiredAt"].as_str().unwrap();
    assert!(exp.ends_with("+08:00"), "{exp}");
    let exp = chrono::DateTime::parse_from_rfc3339(exp)
        .unwrap()
        .timestamp();
    let days = (exp - emu.now()) as f64 / 86400.0;
    assert!((29.9..=30.1).contains(&days), "{days}");

    // missing / bad Authorization → 401
    let v: Value = c
        .get(format!("{base}/api/v1/user/info"))
        .header("Platform", "open_platform")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 401);
    let v: Value = c
        .get(format!("{base}/api/v1/user/info"))
        .header("Platform", "open_platform")
        .header("Authorization", "Bearer eyJnope")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 401);
    // Platform missing on an authorised call
    let v: Value = c
        .get(format!("{base}/api/v1/user/info"))
        .header("Authorization", format!("Bearer {tok}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 1);
    // unknown path → 404
    let r = c
        .get(format!("{base}/api/v9/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn user_info_reports_space() {
    let emu = common::start().await;
    emu.put_file("/a.bin", vec![1u8; 1000]);
    emu.put_file("/d/b.bin", vec![2u8; 24]);
    let api = Api::new(&emu).await;
    let v = api.get("/api/v1/user/info").await;
    assert_eq!(v["code"], 0);
    let d = &v["data"];
    assert_eq!(d["uid"], emu.uid());
    assert_eq!(d["spaceUsed"], 1024);
    assert!(d["spacePermanent"].as_u64().unwrap() > 0);
    assert_eq!(d["spaceTemp"], 0);
    assert_eq!(d["vip"], false);
    for k in [
        "nickname",
        "headImage",
        "passport",
        "mail",
        "directTraffic",
        "isHideUID",
        "vipInfo",
    ] {
        assert!(d.get(k).is_some(), "{k}");
    }
}

#[tokio::test]
async fn list_items_have_exact_fields() {
    let emu = common::start().await;
    let f = emu.put_file("/docs/song.mp3", "abc");
    let d = emu.mkdir_p("/docs/sub");
    emu.put_file("/docs/gone.txt", "x");
    emu.set_modified("/docs/song.mp3", 1700000000);
    assert!(emu.trash("/docs/gone.txt"));
    let docs = emu.lookup("/docs").unwrap().id;
    let api = Api::new(&emu).await;
    let v = api.list(docs, 100, 0).await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"]["lastFileId"], -1);
    let items = v["data"]["fileList"].as_array().unwrap();
    assert_eq!(items.len(), 3, "trashed items are listed too");
    let expected: BTreeSet<&str> = [
        "fileId",
        "filename",
        "parentFileId",
        "type",
        "size",
        "etag",
        "status",
        "category",
        "trashed",
        "punishFlag",
        "s3KeyFlag",
        "storageNode",
        "createAt",
        "updateAt",
    ]
    .into();
    for it in items {
        let keys: BTreeSet<&str> = it.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, expected);
    }
    let song = &items[0];
    assert_eq!(song["fileId"], f);
    assert_eq!(song["filename"], "song.mp3");
    assert_eq!(song["parentFileId"], docs);
    assert_eq!(song["type"], 0);
    assert_eq!(song["size"], 3);
    assert_eq!(song["etag"], md5(b"abc"));
    assert_eq!(song["trashed"], 0);
    assert_eq!(song["category"], 1);
    assert_eq!(song["createAt"], "2023-11-15 06:13:20");
    assert_eq!(song["updateAt"], "2023-11-15 06:13:20");
    let sub = &items[1];
    assert_eq!(sub["fileId"], d);
    assert_eq!(sub["type"], 1);
    assert_eq!(sub["etag"], "");
    assert_eq!(sub["size"], 0);
    assert_eq!(sub["storageNode"], "m0");
    assert_eq!(items[2]["trashed"], 1);
    // the time format
    let t = items[2]["updateAt"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{t}"
    );
    // a missing lastFileId and empty values are accepted
    let v = api
        .get(&format!("/api/v2/file/list?parentFileId={docs}&limit=100"))
        .await;
    assert_eq!(v["data"]["fileList"].as_array().unwrap().len(), 3);
    let v = api
        .get("/api/v2/file/list?parentFileId=&limit=&lastFileId=")
        .await;
    assert_eq!(v["code"], 0, "{v}");
    // limit over 100 is refused, junk ids too
    assert_ne!(api.list(docs, 101, 0).await["code"], 0);
    assert_ne!(
        api.get("/api/v2/file/list?parentFileId=x&limit=10").await["code"],
        0
    );
}

#[tokio::test]
async fn paging_edge_cases() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    for (n, pages) in [(0usize, 1usize), (99, 1), (100, 1), (101, 2), (1000, 10)] {
        let dir = emu.mkdir_p(&format!("/p{n}"));
        let mut want = BTreeSet::new();
        for i in 0..n {
            want.insert(emu.mkdir_p(&format!("/p{n}/d{i:04}")));
        }
        let (got_pages, items) = api.list_all(dir, 100).await;
        assert_eq!(got_pages, pages, "{n} children");
        let ids: Vec<u64> = items
            .iter()
            .map(|i| i["fileId"].as_u64().unwrap())
            .collect();
        let set: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len(), "ids unique");
        assert_eq!(set, want, "ids complete");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending fileId");
    }
    // a non-final page's lastFileId is its last item's id
    let dir = emu.lookup("/p101").unwrap().id;
    let v = api.list(dir, 100, 0).await;
    let items = v["data"]["fileList"].as_array().unwrap();
    assert_eq!(v["data"]["lastFileId"], items[99]["fileId"]);
    // small limits page too
    let (pages, items) = api.list_all(dir, 7).await;
    assert_eq!((pages, items.len()), (15, 101));
    // a negative cursor is the end
    let v = api.list(dir, 100, -1).await;
    assert_eq!(v["data"]["fileList"].as_array().unwrap().len(), 0);
    assert_eq!(v["data"]["lastFileId"], -1);
}

#[tokio::test]
async fn search_fuzzy_and_exact() {
    let emu = common::start().await;
    emu.put_file("/a/Report-2024.pdf", "1");
    emu.put_file("/b/report.txt", "2");
    emu.put_file("/b/other.txt", "3");
    let api = Api::new(&emu).await;
    let names = |v: &Value| -> Vec<String> {
        v["data"]["fileList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["filename"].as_str().unwrap().to_string())
            .collect()
    };
    let v = api
        .get("/api/v2/file/list?parentFileId=0&limit=100&searchData=report&searchMode=0")
        .await;
    assert_eq!(names(&v), ["Report-2024.pdf", "report.txt"]);
    let v = api
        .get("/api/v2/file/list?parentFileId=0&limit=100&searchData=report.txt&searchMode=1")
        .await;
    assert_eq!(names(&v), ["report.txt"]);
}

#[tokio::test]
async fn mkdir_rules() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let v = api
        .post(
            "/upload/v1/file/mkdir",
            json!({"name": "new", "parentID": "0"}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let id = v["data"]["dirID"].as_u64().unwrap();
    assert_eq!(emu.lookup("/new").unwrap().id, id);
    let v = api
        .post(
            "/upload/v1/file/mkdir",
            json!({"NAME": "new", "parentid": 0}),
        )
        .await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "该目录下已经有同名文件夹,无法进行创建");
    for bad in [
        "a/b", "a\\b", "a:b", "a*b", "a?b", "a|b", "a>b", "a<b", "a\"b", "   ", "",
    ] {
        let v = api
            .post(
                "/upload/v1/file/mkdir",
                json!({"name": bad, "parentID": id}),
            )
            .await;
        assert_eq!(v["code"], 1, "{bad:?}");
    }
    let long = "x".repeat(256);
    let v = api
        .post(
            "/upload/v1/file/mkdir",
            json!({"name": long, "parentID": id}),
        )
        .await;
    assert_eq!(v["code"], 1);
    let ok = "y".repeat(255);
    let v = api
        .post("/upload/v1/file/mkdir", json!({"name": ok, "parentID": id}))
        .await;
    assert_eq!(v["code"], 0);
    // unknown parent
    let v = api
        .post(
            "/upload/v1/file/mkdir",
            json!({"name": "z", "parentID": 999}),
        )
        .await;
    assert_eq!(v["code"], 5066);
}

#[tokio::test]
async fn move_rename_trash_delete() {
    let emu = common::start().await;
    let a = emu.put_file("/a.txt", "a");
    let b = emu.put_file("/b.txt", "b");
    let dir = emu.mkdir_p("/dir");
    let sub = emu.mkdir_p("/dir/sub");
    emu.put_file("/dir/b.txt", "other b");
    let api = Api::new(&emu).await;

    // move: conflict, cycle, too many, then success with ids as strings
    let v = api
        .post(
            "/api/v1/file/move",
            json!({"fileIDs": [b], "toParentFileID": dir}),
        )
        .await;
    assert_eq!(v["code"], 1, "name taken in target");
    let v = api
        .post(
            "/api/v1/file/move",
            json!({"fileIDs": [dir], "toParentFileID": sub}),
        )
        .await;
    assert_eq!(v["code"], 1, "into own descendant");
    let many: Vec<u64> = (0..101).map(|_| a).collect();
    let v = api
        .post(
            "/api/v1/file/move",
            json!({"fileIDs": many, "toParentFileID": dir}),
        )
        .await;
    assert_eq!(v["code"], 1);
    let v = api
        .post(
            "/api/v1/file/move",
            json!({"fileIDs": [a.to_string()], "toParentFileID": dir.to_string()}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(v["data"].is_null());
    assert_eq!(emu.lookup("/dir/a.txt").unwrap().id, a);
    assert_eq!(emu.path_of(a).as_deref(), Some("/dir/a.txt"));
    let v = api
        .post(
            "/api/v1/file/move",
            json!({"fileIDs": [999999], "toParentFileID": 0}),
        )
        .await;
    assert_eq!(v["code"], 5066);

    // rename
    let v = api
        .put(
            "/api/v1/file/name",
            json!({"fileId": a, "fileName": "b.txt"}),
        )
        .await;
    assert_eq!(v["code"], 1, "taken");
    let v = api
        .put("/api/v1/file/name", json!({"fileId": a, "fileName": "c:d"}))
        .await;
    assert_eq!(v["code"], 1, "forbidden char");
    let v = api
        .put(
            "/api/v1/file/name",
            json!({"fileId": a, "fileName": "A.txt"}),
        )
        .await;
    assert_eq!(v["code"], 0, "case change of itself");
    let v = api
        .put(
            "/api/v1/file/name",
            json!({"fileId": a, "fileName": "B.TXT"}),
        )
        .await;
    assert_eq!(
        v["code"], 0,
        "case-sensitive by default: B.TXT differs from b.txt"
    );
    emu.set_switches(|s| s.case_sensitive_names = false);
    let v = api
        .put(
            "/api/v1/file/name",
            json!({"fileId": a, "fileName": "b.txt"}),
        )
        .await;
    assert_eq!(v["code"], 1, "case-insensitive: b.txt is taken");
    emu.set_switches(|s| s.case_sensitive_names = true);

    // delete needs trash first
    let v = api
        .post("/api/v1/file/delete", json!({"fileIDs": [a]}))
        .await;
    assert_ne!(v["code"], 0);
    let v = api
        .post("/api/v1/file/trash", json!({"fileIDs": [a]}))
        .await;
    assert_eq!(v["code"], 0);
    assert!(emu.lookup("/dir/B.TXT").is_none());
    assert!(emu.entry(a).unwrap().trashed);
    let listed = api.list(dir, 100, 0).await;
    let trashed: Vec<&Value> = listed["data"]["fileList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["trashed"] == 1)
        .collect();
    assert_eq!(trashed.len(), 1);
    let v = api
        .post("/api/v1/file/delete", json!({"fileIDs": [a]}))
        .await;
    assert_eq!(v["code"], 0);
    assert!(emu.entry(a).is_none());
    let v = api
        .post("/api/v1/file/trash", json!({"fileIDs": [a]}))
        .await;
    assert_eq!(v["code"], 5066);
}

#[tokio::test]
async fn trashed_blocks_name_switch() {
    let emu = common::start().await;
    emu.mkdir_p("/x");
    assert!(emu.trash("/x"));
    let api = Api::new(&emu).await;
    emu.set_switches(|s| s.trashed_blocks_name = true);
    let v = api
        .post("/upload/v1/file/mkdir", json!({"name": "x", "parentID": 0}))
        .await;
    assert_eq!(v["code"], 1);
    emu.set_switches(|s| s.trashed_blocks_name = false);
    let v = api
        .post("/upload/v1/file/mkdir", json!({"name": "x", "parentID": 0}))
        .await;
    assert_eq!(v["code"], 0);
}

#[tokio::test]
async fn download_info_and_traffic_cap() {
    let emu = common::start().await;
    let data = common::bytes(5000, 9);
    let id = emu.put_file("/f.bin", data.clone());
    let dir = emu.mkdir_p("/d");
    let api = Api::new(&emu).await;
    let v = api.get("/api/v1/file/download_info?fileId=424242").await;
    assert_eq!(
        (v["code"].as_i64(), v["message"].as_str()),
        (Some(5066), Some("文件不存在"))
    );
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={dir}"))
        .await;
    assert_eq!(v["code"], 5066);
    // the parameter name is exact: fileID is not fileId
    let v = api
        .get(&format!("/api/v1/file/download_info?fileID={id}"))
        .await;
    assert_ne!(v["code"], 0);
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let url = v["data"]["downloadUrl"].as_str().unwrap().to_string();
    let u = url::Url::parse(&url).unwrap();
    let m = md5(&data);
    assert!(
        u.path().starts_with(&format!("/cdn/123-61/{}/", &m[..8])),
        "{url}"
    );
    assert!(url.starts_with(&emu.host_url(Host::Cdn)), "{url}");
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    for k in ["v", "t", "s"] {
        assert!(q.contains_key(k), "{k} in {url}");
    }
    let t: i64 = q["t"].parse().unwrap();
    assert!((t - emu.now() - 1800).abs() <= 5, "default ttl 30 min");
    let (st, _, body) = api.fetch(&url, None).await;
    assert_eq!(st, 200);
    assert_eq!(body, data);

    emu.set_switches(|s| s.daily_traffic_cap = Some(5000));
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 5113);
    emu.set_switches(|s| s.daily_traffic_cap = Some(1 << 30));
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 0);
    // trashed files are gone for download_info
    emu.trash("/f.bin");
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 5066);
}

#[tokio::test]
async fn direct_link_url_and_domain() {
    let emu = common::start_with(|c| c.direct_link_space = Some("/direct".into())).await;
    let inside = emu.put_file("/direct/视频/a b.txt", "inside");
    let outside = emu.put_file("/other.txt", "outside");
    let api = Api::new(&emu).await;
    let v = api
        .get(&format!("/api/v1/direct-link/url?fileID={outside}"))
        .await;
    assert_eq!(v["code"], 1);
    let v = api
        .get(&format!("/api/v1/direct-link/url?fileID={inside}"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let url = v["data"]["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "{}/{}/direct/%E8%A7%86%E9%A2%91/a%20b.txt",
            emu.host_url(Host::Direct),
            emu.uid()
        )
    );
    let (st, _, body) = api.fetch(url, None).await;
    assert_eq!((st, body.as_slice()), (200, b"inside".as_slice()));
    let v = api.get("/upload/v2/file/domain").await;
    assert_eq!(v["data"], json!([emu.host_url(Host::Upload)]));
}

#[tokio::test]
async fn seeded_from_a_folder_and_generated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("music/live")).unwrap();
    std::fs::write(dir.path().join("music/live/a.flac"), b"flac bytes").unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"hello").unwrap();
    let data_dir = dir.path().to_path_buf();
    let emu = common::start_with(move |c| {
        c.data_dir = Some(data_dir);
        c.generate = vec![pan123_emulator::GenerateSpec::parse("/gen=3:2KiB@5").unwrap()];
    })
    .await;
    assert_eq!(emu.list_names("/").unwrap(), ["music", "readme.txt", "gen"]);
    assert_eq!(emu.read("/music/live/a.flac").unwrap(), b"flac bytes");
    assert_eq!(emu.lookup("/readme.txt").unwrap().md5, md5(b"hello"));
    assert_eq!(
        emu.list_names("/gen").unwrap(),
        ["file-00001.bin", "file-00002.bin", "file-00003.bin"]
    );
    let g = emu.read("/gen/file-00002.bin").unwrap();
    assert_eq!(g, common::bytes(2048, 6));
    // a generated body served with a range
    let big = emu.put_generated_file("/big.bin", 3 << 20, 77);
    let api = Api::new(&emu).await;
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={big}"))
        .await;
    let url = v["data"]["downloadUrl"].as_str().unwrap();
    let (st, _, body) = api.fetch(url, Some("bytes=2000000-2000099")).await;
    assert_eq!(st, 206);
    let mut want = vec![0u8; 100];
    pan123_emulator::content::generated_fill(77, 2_000_000, &mut want);
    assert_eq!(body, want);
    // a disk-backed body through the CDN
    let flac = emu.lookup("/music/live/a.flac").unwrap().id;
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={flac}"))
        .await;
    let (st, _, body) = api
        .fetch(v["data"]["downloadUrl"].as_str().unwrap(), Some("bytes=5-"))
        .await;
    assert_eq!((st, body.as_slice()), (206, b"bytes".as_slice()));
    // the data folder is never written
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[tokio::test]
async fn bad_input_gets_errors_not_panics() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    for path in [
        "/upload/v1/file/mkdir",
        "/api/v1/file/move",
        "/api/v1/file/trash",
        "/api/v1/file/delete",
        "/upload/v2/file/create",
        "/upload/v2/file/upload_complete",
        "/upload/v2/file/slice",
    ] {
        for body in [
            "",
            "not json",
            "[1,2]",
            "{\"fileIDs\": \"x\"}",
            "{\"size\": -5}",
        ] {
            let host = if path.ends_with("/slice") {
                Host::Upload
            } else {
                Host::Open
            };
            let r = api
                .http
                .post(at(&emu, host, path))
                .header("Platform", "open_platform")
                .header("Authorization", format!("Bearer {}", api.token))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} {body:?}");
            let v: Value = r.json().await.unwrap();
            assert_ne!(v["code"], 0, "{path} {body:?}");
        }
    }
    let r = api
        .http
        .post(at(&emu, Host::Upload, "/upload/v2/file/slice"))
        .header("Platform", "open_platform")
        .header("Authorization", format!("Bearer {}", api.token))
        .header("Content-Type", "multipart/form-data; boundary=zzz")
        .body("--zzz\r\ngarbage")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["code"], 0);
    for q in ["fileId=abc", "fileId=-1", "fileId=99999999999999999999", ""] {
        let v = api.get(&format!("/api/v1/file/download_info?{q}")).await;
        assert_ne!(v["code"], 0, "{q}");
    }
    for (host, p) in [
        (Host::Cdn, "/cdn/x"),
        (Host::Cdn, "/cdn/123-61/a/b/c?t=1&s=2&ip=3"),
        (Host::WebPro, "/web-pro/redirect/x"),
        (Host::WebPro, "/web-pro/download-v2/?params=%%%"),
    ] {
        let st = http().get(at(&emu, host, p)).send().await.unwrap().status();
        assert!(st.is_client_error(), "{p}: {st}");
    }
    // still serving
    assert_eq!(api.get("/api/v1/user/info").await["code"], 0);
}
