//! The personal account's write endpoints on the web API: make folder, uploads with presigned
//! parts on the `s3` host, move, rename, trash, and the traffic cap of personal downloads.

use pan123_emulator::{
    Emulator, Fault, FaultKind, Host, OverwriteAt, TakenName, ZeroByteUpload, WEB_PART_SIZE,
};
use serde_json::{json, Value};

use crate::common::{self, at, bytes, hop_referer, http, md5, signed, web_headers};
use crate::personal::{call, json_of, token};

const PART: usize = WEB_PART_SIZE as usize;

/// A logged-in web client.
struct Web<'a> {
    emu: &'a Emulator,
    tok: String,
}

impl<'a> Web<'a> {
    async fn new(emu: &'a Emulator) -> Web<'a> {
        Web {
            emu,
            tok: token(emu).await,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        json_of(call(self.emu, reqwest::Method::POST, path, "", &self.tok).json(&body)).await
    }

    async fn mkdir(&self, parent: Value, name: &str) -> Value {
        self.post(
            "/b/api/file/upload_request",
            json!({"driveId": 0, "etag": "", "fileName": name, "parentFileId": parent, "size": 0, "type": 1}),
        )
        .await
    }

    async fn request(&self, parent: Value, name: &str, data: &[u8], duplicate: i64) -> Value {
        self.request_raw(parent, name, &md5(data), data.len() as u64, duplicate)
            .await
    }

    async fn request_raw(
        &self,
        parent: Value,
        name: &str,
        etag: &str,
        size: u64,
        duplicate: i64,
    ) -> Value {
        self.post(
            "/b/api/file/upload_request",
            json!({"driveId": 0, "duplicate": duplicate, "etag": etag, "fileName": name,
                   "parentFileId": parent, "size": size, "type": 0}),
        )
        .await
    }

    /// Presign parts `start..end` of the upload described by a request reply.
    async fn presign(&self, up: &Value, start: u64, end: u64) -> Value {
        let path = if end - start == 1 && start == 1 {
            "/b/api/file/s3_upload_object/auth"
        } else {
            "/b/api/file/s3_repare_upload_parts_batch"
        };
        let d = &up["data"];
        self.post(
            path,
            json!({"bucket": d["Bucket"], "key": d["Key"], "partNumberStart": start,
                   "partNumberEnd": end, "uploadId": d["UploadId"], "StorageNode": d["StorageNode"]}),
        )
        .await
    }

    /// The URL of part `no` (one presign call).
    async fn url(&self, up: &Value, no: u64) -> String {
        let v = self.presign(up, no, no + 1).await;
        assert_eq!(v["code"], 0, "{v}");
        v["data"]["presignedUrls"][no.to_string()]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn complete(&self, up: &Value, size: u64) -> Value {
        let d = &up["data"];
        let multipart = size > WEB_PART_SIZE;
        self.post(
            "/b/api/file/upload_complete/v2",
            json!({"StorageNode": d["StorageNode"], "bucket": d["Bucket"], "fileId": d["FileId"],
                   "fileSize": size, "isMultipart": multipart, "key": d["Key"], "uploadId": d["UploadId"]}),
        )
        .await
    }

    /// The whole driver flow; returns the complete reply (or the request reply when reused or
    /// refused).
    async fn upload(&self, parent: Value, name: &str, data: &[u8], duplicate: i64) -> Value {
        let up = self.request(parent, name, data, duplicate).await;
        if up["code"] != 0 || up["data"]["Reuse"] == true {
            return up;
        }
        let n = data.len().div_ceil(PART).max(1) as u64;
        let mut start = 1;
        while start <= n {
            let end = (start + 10).min(n + 1);
            let v = self.presign(&up, start, end).await;
            assert_eq!(v["code"], 0, "{v}");
            for no in start..end {
                let url = v["data"]["presignedUrls"][no.to_string()].as_str().unwrap();
                let from = (no as usize - 1) * PART;
                let chunk = &data[from..(from + PART).min(data.len())];
                let r = put(url, chunk.to_vec()).await;
                assert_eq!(r.status(), 200);
            }
            start = end;
        }
        self.complete(&up, data.len() as u64).await
    }

    async fn space_used(&self) -> u64 {
        let v = json_of(call(
            self.emu,
            reqwest::Method::GET,
            "/b/api/user/info",
            "",
            &self.tok,
        ))
        .await;
        v["data"]["SpaceUsed"].as_u64().unwrap()
    }
}

async fn put(url: &str, body: Vec<u8>) -> reqwest::Response {
    http().put(url).body(body).send().await.unwrap()
}

#[tokio::test]
async fn mkdir_new_existing_and_clash_with_a_file() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let v = web.mkdir(json!("0"), "docs").await;
    assert_eq!(v["code"], 0, "{v}");
    let id = v["data"]["FileId"].as_u64().unwrap();
    assert_eq!(emu.lookup("/docs").unwrap().id, id);
    assert_eq!(v["data"]["Info"]["FileName"], "docs");
    assert_eq!(v["data"]["Info"]["Type"], 1);
    assert_eq!(v["data"]["Info"]["FileId"], id);
    // again (numeric parent id this time): the same folder
    let v = web.mkdir(json!(0), "docs").await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["FileId"], id);
    assert_eq!(emu.list_names("/").unwrap(), vec!["docs"]);
    // nested, parent as a string id
    let v = web.mkdir(json!(id.to_string()), "sub").await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(emu.lookup("/docs/sub").unwrap().is_dir);
    // a file holds the name
    emu.put_file("/a.txt", "x");
    let v = web.mkdir(json!("0"), "a.txt").await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "该目录下已经有同名文件,无法创建文件夹");
    // bad names, missing parent
    assert_eq!(web.mkdir(json!("0"), "a/b").await["code"], 1);
    assert_eq!(web.mkdir(json!("0"), "").await["code"], 1);
    assert_eq!(web.mkdir(json!("987654"), "x").await["code"], 5066);
    assert_eq!(emu.stats().calls("/b/api/file/upload_request"), 7);
}

#[tokio::test]
async fn write_endpoints_check_signature_headers_and_token() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let body = json!({"driveId": 0, "etag": "", "fileName": "d", "parentFileId": "0", "size": 0, "type": 1});
    // unsigned: 403
    let r = web_headers(
        &emu,
        http().post(at(&emu, Host::Web, "/b/api/file/upload_request")),
    )
    .header("authorization", format!("Bearer {}", web.tok))
    .json(&body)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    // no token, a wrong token: 401
    for tok in ["", "nope"] {
        let v = json_of(
            call(&emu, reqwest::Method::POST, "/b/api/file/mod_pid", "", tok)
                .json(&json!({"fileIdList": [{"FileId": "1"}], "parentFileId": "0"})),
        )
        .await;
        assert_eq!(v["code"], 401);
    }
    // no platform header: code 1
    let rb = http()
        .post(signed(&emu, "/b/api/file/rename", ""))
        .header("app-version", "3")
        .header("referer", "x")
        .header("authorization", format!("Bearer {}", web.tok))
        .json(&json!({"fileId": "1", "fileName": "x"}));
    assert_eq!(json_of(rb).await["code"], 1);
    assert!(emu.lookup("/d").is_none());
    let s = emu.stats();
    assert_eq!(s.calls("/b/api/file/upload_request"), 1);
    assert_eq!(s.calls("/b/api/file/mod_pid"), 2);
    assert_eq!(s.calls("/b/api/file/rename"), 1);
}

#[tokio::test]
async fn instant_upload_by_md5_and_size() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let data = bytes(5000, 3);
    emu.put_file("/src.bin", data.clone());
    let dir = emu.mkdir_p("/dst");
    let v = web
        .request(json!(dir.to_string()), "copy.bin", &data, 2)
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["Reuse"], true);
    assert_eq!(v["data"]["Key"], "");
    let id = v["data"]["FileId"].as_u64().unwrap();
    assert_eq!(emu.lookup("/dst/copy.bin").unwrap().id, id);
    assert_eq!(v["data"]["Info"]["Etag"], md5(&data));
    assert_eq!(emu.read("/dst/copy.bin").unwrap(), data);
    // an empty file is always known (zero_byte_upload: reuse) …
    let v = web.request(json!(0), "empty.txt", b"", 2).await;
    assert_eq!(v["data"]["Reuse"], true, "{v}");
    assert_eq!(emu.lookup("/empty.txt").unwrap().size, 0);
    // … or refused
    emu.set_switches(|s| s.zero_byte_upload = ZeroByteUpload::Reject);
    let v = web.request(json!(0), "empty2.txt", b"", 2).await;
    assert_eq!(v["code"], 1);
    // …, or sent as one empty part
    emu.set_switches(|s| s.zero_byte_upload = ZeroByteUpload::Normal);
    let v = web.upload(json!(0), "empty3.txt", b"", 2).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.lookup("/empty3.txt").unwrap().size, 0);
    // name rules and the size limit of the Open API apply
    let v = web.request(json!(0), "a:b.txt", b"x", 2).await;
    assert_eq!(v["code"], 1);
    let v = web
        .request_raw(json!(0), "huge.bin", &md5(b"x"), 11 << 30, 2)
        .await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "单个文件不能超过10GB");
    let v = web.request_raw(json!(0), "bad.bin", "xyz", 3, 2).await;
    assert_eq!(v["code"], 1);
}

#[tokio::test]
async fn one_part_upload() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let data = bytes(1000, 11);
    let before = web.space_used().await;
    let up = web.request(json!("0"), "one.bin", &data, 2).await;
    assert_eq!(up["code"], 0, "{up}");
    let d = &up["data"];
    assert_eq!(d["Reuse"], false);
    assert!(!d["Key"].as_str().unwrap().is_empty());
    for k in ["Bucket", "UploadId", "StorageNode", "EndPoint"] {
        assert!(!d[k].as_str().unwrap().is_empty(), "{k}");
    }
    for k in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        assert_eq!(d[k], "", "{k}");
    }
    let reserved = d["FileId"].as_u64().unwrap();
    assert!(emu.lookup("/one.bin").is_none(), "not before complete");

    let url = web.url(&up, 1).await;
    assert!(
        url.starts_with(&format!("{}/s3/", emu.host_url(Host::S3))),
        "{url}"
    );
    assert_eq!(d["EndPoint"], format!("{}/s3", emu.host_url(Host::S3)));
    let r = put(&url, data.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], format!("\"{}\"", md5(&data)).as_str());

    let v = web.complete(&up, 1000).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["FileId"], reserved);
    assert_eq!(v["data"]["Info"]["FileName"], "one.bin");
    assert_eq!(v["data"]["Info"]["Size"], 1000);
    assert_eq!(emu.lookup("/one.bin").unwrap().id, reserved);
    assert_eq!(emu.read("/one.bin").unwrap(), data);
    assert_eq!(web.space_used().await, before + 1000);
    // a second complete is refused
    let v = web.complete(&up, 1000).await;
    assert_eq!(v["code"], 1);
    // the URL is dead too
    assert_eq!(put(&url, data.clone()).await.status(), 404);
    let s = emu.stats();
    assert_eq!(s.calls("/b/api/file/s3_upload_object/auth"), 1);
    assert_eq!(s.calls("/b/api/file/upload_complete/v2"), 2);
    assert_eq!(s.calls("s3"), 2);
}

#[tokio::test]
async fn three_part_upload_in_any_order() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let dir = emu.mkdir_p("/big");
    let data = bytes(2 * PART + 1234, 5);
    let up = web.request(json!(dir), "three.bin", &data, 2).await;
    assert_eq!(up["code"], 0, "{up}");
    let v = web.presign(&up, 1, 4).await;
    assert_eq!(v["code"], 0, "{v}");
    let urls = v["data"]["presignedUrls"].as_object().unwrap();
    assert_eq!(urls.len(), 3);
    for no in [3usize, 1, 2] {
        let from = (no - 1) * PART;
        let chunk = data[from..(from + PART).min(data.len())].to_vec();
        let r = put(urls[&no.to_string()].as_str().unwrap(), chunk).await;
        assert_eq!(r.status(), 200);
    }
    let v = web.complete(&up, data.len() as u64).await;
    assert_eq!(v["code"], 0, "{v}");
    let e = emu.lookup("/big/three.bin").unwrap();
    assert_eq!(e.id, up["data"]["FileId"].as_u64().unwrap());
    assert_eq!(e.md5, md5(&data));
    assert_eq!(emu.read("/big/three.bin").unwrap(), data);
    assert_eq!(
        emu.stats()
            .calls("/b/api/file/s3_repare_upload_parts_batch"),
        1
    );
    // The same content again is instant.
    let v = web.request(json!(0), "again.bin", &data, 2).await;
    assert_eq!(v["data"]["Reuse"], true, "{v}");
}

#[tokio::test]
async fn bad_parts_are_refused_and_nothing_is_created() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let data = bytes(PART + 10, 9);
    let size = data.len() as u64;
    let up = web.request(json!(0), "bad.bin", &data, 2).await;
    let v = web.presign(&up, 1, 3).await;
    let url1 = v["data"]["presignedUrls"]["1"]
        .as_str()
        .unwrap()
        .to_string();
    let url2 = v["data"]["presignedUrls"]["2"]
        .as_str()
        .unwrap()
        .to_string();
    // nothing sent
    let v = web.complete(&up, size).await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "分片未全部上传: 缺少分片1");
    assert_eq!(put(&url2, data[PART..].to_vec()).await.status(), 200);
    let v = web.complete(&up, size).await;
    assert_eq!(v["message"], "分片未全部上传: 缺少分片1");
    // a short first part
    assert_eq!(put(&url1, data[..PART - 1].to_vec()).await.status(), 200);
    let v = web.complete(&up, size).await;
    assert_eq!(v["code"], 1);
    assert!(
        v["message"].as_str().unwrap().starts_with("分片大小错误"),
        "{v}"
    );
    // a part over 16 MiB, a wrong Content-MD5
    assert_eq!(put(&url1, vec![0u8; PART + 1]).await.status(), 400);
    let r = http()
        .put(&url1)
        .header("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(data[..PART].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("<Code>BadDigest</Code>"));
    // a wrong fileSize, a wrong fileId
    let v = web.complete(&up, size - 1).await;
    assert_eq!(v["code"], 1);
    let mut other = up.clone();
    other["data"]["FileId"] = json!(1);
    assert_eq!(web.complete(&other, size).await["code"], 1);
    // the right size with wrong bytes: the whole MD5 fails and the upload is over
    let mut wrong = data[..PART].to_vec();
    wrong[7] ^= 0xff;
    assert_eq!(put(&url1, wrong).await.status(), 200);
    let v = web.complete(&up, size).await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "文件MD5校验失败,请重新上传");
    assert!(emu.lookup("/bad.bin").is_none());
    assert!(emu.entry(up["data"]["FileId"].as_u64().unwrap()).is_none());
    assert_eq!(web.complete(&up, size).await["code"], 1);
    assert_eq!(put(&url1, data[..PART].to_vec()).await.status(), 404);
    assert_eq!(emu.list_names("/").unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn presign_refusals() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let size = 11 * WEB_PART_SIZE;
    let up = web
        .request_raw(json!(0), "big.bin", &md5(b"not this"), size, 2)
        .await;
    assert_eq!(up["code"], 0, "{up}");
    let v = web.presign(&up, 1, 12).await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "单次最多获取10个分片的上传地址");
    let v = web.presign(&up, 1, 11).await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"]["presignedUrls"].as_object().unwrap().len(), 10);
    let v = web.presign(&up, 11, 12).await;
    assert_eq!(v["code"], 0);
    for (a, b) in [(12, 13), (0, 1), (3, 3)] {
        assert_eq!(web.presign(&up, a, b).await["code"], 1, "{a}..{b}");
    }
    let mut other = up.clone();
    other["data"]["UploadId"] = json!("nope");
    assert_eq!(web.presign(&other, 1, 2).await["code"], 1);
    let mut other = up.clone();
    other["data"]["Key"] = json!("nope");
    assert_eq!(web.presign(&other, 1, 2).await["code"], 1);
}

#[tokio::test]
async fn forged_and_expired_urls_get_403() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let data = bytes(3000, 2);
    let up = web.request(json!(0), "f.bin", &data, 2).await;
    let url = web.url(&up, 1).await;
    let mut u = url::Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    let edited = |key: &str, value: &str| {
        let mut u2 = u.clone();
        u2.query_pairs_mut().clear();
        for (k, v) in &pairs {
            u2.query_pairs_mut()
                .append_pair(k, if k == key { value } else { v });
        }
        u2.to_string()
    };
    for bad in [
        edited("signature", "0123456789abcdef0123456789abcdef"),
        edited("expires", "99999999999"),
        edited("partNumber", "2"),
    ] {
        let r = put(&bad, data.clone()).await;
        assert_eq!(r.status(), 403, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/xml");
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>"));
    }
    u.set_path("/s3/123-upload/other/key");
    assert_eq!(put(u.as_str(), data.clone()).await.status(), 403);
    // a chunked body (no Content-Length): 411
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(data.clone())];
    let r = http()
        .put(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 411);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>MissingContentLength</Code>"));
    // expired: the clock moves past the default 15 minutes
    emu.set_clock_offset(16 * 60);
    let r = put(&url, data.clone()).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>AccessDenied</Code>"));
    emu.set_clock_offset(0);
    // the presign_ttl switch
    emu.set_switches(|s| s.presign_ttl = std::time::Duration::ZERO);
    let born_dead = web.url(&up, 1).await;
    assert_eq!(put(&born_dead, data.clone()).await.status(), 403);
    emu.set_switches(|s| s.presign_ttl = std::time::Duration::from_secs(60));
    let fresh = web.url(&up, 1).await;
    assert_eq!(put(&fresh, data.clone()).await.status(), 200);
    assert_eq!(web.complete(&up, 3000).await["code"], 0);
}

#[tokio::test]
async fn s3_faults_cut_http_and_latency() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let data = bytes(5000, 4);
    let up = web.request(json!(0), "cut.bin", &data, 2).await;
    let url = web.url(&up, 1).await;
    emu.inject(Fault {
        endpoint: "s3".into(),
        kind: FaultKind::CutAfter {
            bytes: 100,
            count: 1,
        },
    });
    let r = http().put(&url).body(data.clone()).send().await;
    assert!(
        r.is_err(),
        "the connection is dropped: {:?}",
        r.map(|r| r.status())
    );
    let v = web.complete(&up, 5000).await;
    assert_eq!(v["message"], "分片未全部上传: 缺少分片1", "nothing stored");
    emu.inject(Fault {
        endpoint: "s3".into(),
        kind: FaultKind::Http {
            status: 503,
            count: 1,
        },
    });
    assert_eq!(put(&url, data.clone()).await.status(), 503);
    emu.inject(Fault {
        endpoint: "s3".into(),
        kind: FaultKind::Latency { ms: 200, count: 1 },
    });
    let t = std::time::Instant::now();
    assert_eq!(put(&url, data.clone()).await.status(), 200);
    assert!(t.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(web.complete(&up, 5000).await["code"], 0);
    assert_eq!(emu.read("/cut.bin").unwrap(), data);
    assert_eq!(emu.stats().calls("s3"), 3);
}

#[tokio::test]
async fn duplicate_modes_and_overwrite_at() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let dir = emu.mkdir_p("/d");
    let old = emu.put_file("/d/a.txt", "old");
    // 2 = overwrite; at create by default
    let new = bytes(700, 1);
    let up = web.request(json!(dir), "a.txt", &new, 2).await;
    assert!(emu.entry(old).unwrap().trashed, "trashed at upload_request");
    let url = web.url(&up, 1).await;
    assert_eq!(put(&url, new.clone()).await.status(), 200);
    assert_eq!(web.complete(&up, 700).await["code"], 0);
    assert_eq!(emu.read("/d/a.txt").unwrap(), new);
    // overwrite at complete
    emu.set_switches(|s| s.overwrite_at = OverwriteAt::Complete);
    let old = emu.put_file("/d/b.txt", "old b");
    let newer = bytes(800, 2);
    let up = web.request(json!(dir), "b.txt", &newer, 2).await;
    assert!(!emu.entry(old).unwrap().trashed, "live until complete");
    let url = web.url(&up, 1).await;
    assert_eq!(put(&url, newer.clone()).await.status(), 200);
    assert_eq!(web.complete(&up, 800).await["code"], 0);
    assert!(emu.entry(old).unwrap().trashed);
    assert_eq!(emu.read("/d/b.txt").unwrap(), newer);
    // 1 = keep both; 0 = "default", which follows `create_on_taken_name` (refuse by default)
    let v = web.upload(json!(dir), "a.txt", &bytes(900, 3), 1).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["Info"]["FileName"], "a(1).txt");
    let v = web.request(json!(dir), "a.txt", &bytes(900, 4), 0).await;
    assert_eq!(v["code"], 1, "{v}");
    emu.set_switches(|s| s.create_on_taken_name = TakenName::KeepBoth);
    let v = web.upload(json!(dir), "a.txt", &bytes(900, 4), 0).await;
    assert_eq!(v["data"]["Info"]["FileName"], "a(2).txt");
    emu.set_switches(|s| s.create_on_taken_name = TakenName::Refuse);
    // instant uploads replace at once
    let v = web.upload(json!(dir), "a(1).txt", &new, 2).await;
    assert_eq!(v["data"]["Reuse"], true);
    assert_eq!(emu.read("/d/a(1).txt").unwrap(), new);
    assert_eq!(
        emu.list_names("/d").unwrap(),
        vec!["a.txt", "b.txt", "a(2).txt", "a(1).txt"]
    );
    // a folder holds the name: refused
    emu.mkdir_p("/d/sub");
    let v = web.request(json!(dir), "sub", &bytes(10, 5), 2).await;
    assert_eq!(v["code"], 1);
}

#[tokio::test]
async fn mod_pid_moves_like_the_open_api() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let x = emu.mkdir_p("/x");
    let y = emu.mkdir_p("/y");
    let xf = emu.put_file("/x/f.txt", "1");
    emu.put_file("/y/f.txt", "2");
    let g = emu.put_file("/x/g.txt", "3");
    let sub = emu.mkdir_p("/x/sub");
    let mv = |ids: Vec<Value>, to: Value| {
        let list: Vec<Value> = ids.into_iter().map(|i| json!({"FileId": i})).collect();
        json!({"fileIdList": list, "parentFileId": to})
    };
    // a taken name: nothing moves
    let v = web
        .post(
            "/b/api/file/mod_pid",
            mv(
                vec![json!(g.to_string()), json!(xf.to_string())],
                json!(y.to_string()),
            ),
        )
        .await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "该目录下已经有同名文件");
    assert_eq!(emu.entry(g).unwrap().parent_id, x);
    // string and numeric ids
    let v = web
        .post(
            "/b/api/file/mod_pid",
            mv(vec![json!(g.to_string())], json!(y.to_string())),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.lookup("/y/g.txt").unwrap().id, g);
    let v = web
        .post("/b/api/file/mod_pid", mv(vec![json!(g)], json!(0)))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.lookup("/g.txt").unwrap().id, g);
    // into itself or below
    let v = web
        .post("/b/api/file/mod_pid", mv(vec![json!(x)], json!(sub)))
        .await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "不能移动到自身或子目录下");
    // unknown id, unknown target
    assert_eq!(
        web.post("/b/api/file/mod_pid", mv(vec![json!("999999")], json!(y)))
            .await["code"],
        5066
    );
    assert_eq!(
        web.post("/b/api/file/mod_pid", mv(vec![json!(g)], json!("999999")))
            .await["code"],
        5066
    );
    // a whole folder
    let v = web
        .post("/b/api/file/mod_pid", mv(vec![json!(x)], json!(y)))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.lookup("/y/x/f.txt").unwrap().id, xf);
    // malformed
    let v = web
        .post(
            "/b/api/file/mod_pid",
            json!({"fileIdList": [], "parentFileId": "0"}),
        )
        .await;
    assert_eq!(v["code"], 1);
}

#[tokio::test]
async fn rename_and_trash() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let a = emu.put_file("/a.txt", "a");
    emu.put_file("/b.txt", "b");
    let rename = |id: Value, name: &str| json!({"driveId": 0, "fileId": id, "fileName": name});
    let v = web
        .post("/b/api/file/rename", rename(json!(a.to_string()), "c.txt"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.lookup("/c.txt").unwrap().id, a);
    let v = web
        .post("/b/api/file/rename", rename(json!(a), "d.txt"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let v = web
        .post("/b/api/file/rename", rename(json!(a), "b.txt"))
        .await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "该目录下已经有同名文件");
    assert_eq!(
        web.post("/b/api/file/rename", rename(json!(a), "x?y"))
            .await["code"],
        1
    );
    assert_eq!(
        web.post("/b/api/file/rename", rename(json!("999999"), "z"))
            .await["code"],
        5066
    );
    assert_eq!(emu.lookup("/d.txt").unwrap().id, a);

    // trash with the listed item, as the driver sends it
    let listing = json_of(call(
        &emu,
        reqwest::Method::GET,
        "/b/api/file/list/new",
        "parentFileId=0&Page=1&limit=100&trashed=false",
        &web.tok,
    ))
    .await;
    let item = listing["data"]["InfoList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["FileName"] == "d.txt")
        .unwrap()
        .clone();
    let body = json!({"driveId": 0, "operation": true, "fileTrashInfoList": [item]});
    let v = web.post("/b/api/file/trash", body.clone()).await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(emu.entry(a).unwrap().trashed);
    assert!(emu.lookup("/d.txt").is_none());
    // again: fine
    assert_eq!(web.post("/b/api/file/trash", body).await["code"], 0);
    // an object that is not the listed one (no Etag/S3KeyFlag, or wrong ones): refused,
    // nothing trashed (spec web §7)
    let b_info = emu.lookup("/b.txt").unwrap();
    let b = b_info.id;
    for stale in [
        json!({"FileId": b}),
        json!({"FileId": b, "Etag": b_info.md5, "S3KeyFlag": "", "Size": b_info.size}),
        json!({"FileId": b, "Etag": "0".repeat(32), "S3KeyFlag": format!("{}-0", emu.uid()), "Size": b_info.size}),
    ] {
        let v = web
            .post(
                "/b/api/file/trash",
                json!({"driveId": 0, "operation": true, "fileTrashInfoList": [stale]}),
            )
            .await;
        assert_eq!(v["code"], 1, "{v}");
        assert_eq!(v["message"], pan123_emulator::MSG_STALE_ITEM);
        assert!(!emu.entry(b).unwrap().trashed);
    }
    // string id with the right fields
    let v = web
        .post(
            "/b/api/file/trash",
            json!({"driveId": 0, "operation": true, "fileTrashInfoList": [{
                "FileId": b.to_string(), "Etag": b_info.md5.to_uppercase(),
                "S3KeyFlag": format!("{}-0", emu.uid()), "Size": b_info.size}]}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(emu.entry(b).unwrap().trashed);
    let v = web
        .post(
            "/b/api/file/trash",
            json!({"driveId": 0, "operation": true, "fileTrashInfoList": [{"FileId": 999999}]}),
        )
        .await;
    assert_eq!(v["code"], 5066);
    // restoring is not emulated
    let v = web
        .post(
            "/b/api/file/trash",
            json!({"driveId": 0, "operation": false, "fileTrashInfoList": [{"FileId": b}]}),
        )
        .await;
    assert_eq!(v["code"], 1);
}

#[tokio::test]
async fn personal_download_info_honours_the_daily_traffic_cap() {
    let emu = common::start().await;
    let web = Web::new(&emu).await;
    let a = emu.put_file("/a.bin", bytes(3000, 1));
    let b = emu.put_file("/b.bin", bytes(3000, 2));
    emu.set_switches(|s| s.daily_traffic_cap = Some(2000));
    let object = |id: u64| {
        let e = emu.entry(id).unwrap();
        json!({"fileId": id, "etag": e.md5, "s3keyFlag": format!("{}-0", emu.uid()), "size": e.size})
    };
    let v = web.post("/b/api/file/download_info", object(a)).await;
    assert_eq!(v["code"], 0, "{v}");
    // download it through the hop: the CDN bytes count toward the cap
    let outer = url::Url::parse(v["data"]["DownloadUrl"].as_str().unwrap()).unwrap();
    let params = outer
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
    let fin = r.headers()["location"].to_str().unwrap().to_string();
    let r = http()
        .get(&fin)
        .header("Referer", hop_referer(&emu))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 3000);
    let v = web.post("/b/api/file/download_info", object(b)).await;
    assert_eq!(v["code"], 5113);
    assert_eq!(v["message"], "您今日自用下载流量已超出1GB上限");
}

/// `upload_credentials = static`: `upload_request` hands out S3 credentials; the S3 host
/// refuses requests without a right SigV4 signature (the gateway's tests send rightly signed
/// ones), and `upload_complete` before the object is whole is code 1 with the upload kept.
#[tokio::test]
async fn static_credentials_are_required_and_checked() {
    let emu = common::start().await;
    emu.set_switches(|s| s.upload_credentials = pan123_emulator::UploadCredentials::Static);
    let web = Web::new(&emu).await;
    let data = bytes(1000, 12);
    let up = web.request(json!("0"), "static.bin", &data, 2).await;
    assert_eq!(up["code"], 0, "{up}");
    let d = &up["data"];
    for k in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Bucket",
        "Key",
        "EndPoint",
    ] {
        assert!(!d[k].as_str().unwrap().is_empty(), "{k}");
    }
    let object = format!(
        "{}/{}/{}",
        d["EndPoint"].as_str().unwrap(),
        d["Bucket"].as_str().unwrap(),
        d["Key"].as_str().unwrap()
    );
    let ak = d["AccessKeyId"].as_str().unwrap();
    let token = d["SessionToken"].as_str().unwrap();
    // A forged signature (right key id and token, wrong signature): 403.
    let forged = format!(
        "{object}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={ak}%2F20991231%2F123pan%2Fs3%2Faws4_request&X-Amz-Date=20991231T000000Z&X-Amz-Expires=600&X-Amz-Security-Token={token}&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        "0".repeat(64)
    );
    let r = put(&forged, data.clone()).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    // No signature at all (a presigned-flow URL shape without its signature): 403 too.
    let r = put(&object, data.clone()).await;
    assert_eq!(r.status(), 403);
    // The end before the object: refused, nothing created, the upload stays open.
    let file_id = d["FileId"].as_u64().unwrap();
    let v = web
        .post("/b/api/file/upload_complete", json!({"fileId": file_id}))
        .await;
    assert_eq!(v["code"], 1, "{v}");
    assert_eq!(v["message"], "文件尚未上传到存储");
    assert!(emu.lookup("/static.bin").is_none());
}
