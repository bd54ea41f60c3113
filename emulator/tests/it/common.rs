//! Helpers shared by the integration tests: start an emulator, talk to it like a client.

use std::time::Duration;

use pan123_emulator::{Emulator, EmulatorConfig, Host};
use serde_json::{json, Value};

/// A config for tests: no QPS limits, small slices, no poll delays (tests that need the real
/// defaults set them back).
pub fn cfg() -> EmulatorConfig {
    let mut c = EmulatorConfig {
        qps: false,
        ..EmulatorConfig::default()
    };
    c.switches.slice_size = 1024;
    c.switches.complete_pending_polls = 0;
    c.switches.complete_poll_interval = Duration::ZERO;
    c
}

/// Start an emulator with `cfg()` adjusted by `f`.
pub async fn start_with(f: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut c = cfg();
    f(&mut c);
    Emulator::start(c).await.expect("emulator starts")
}

/// Start an emulator with `cfg()`.
pub async fn start() -> Emulator {
    start_with(|_| {}).await
}

/// A reqwest client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An Open API client with a token.
pub struct Api {
    /// The Open API host.
    pub base: String,
    /// The upload host (`create`'s `servers`), where slices go.
    pub upload: String,
    pub http: reqwest::Client,
    pub token: String,
}

/// Get a fresh access token.
pub async fn token(emu: &Emulator) -> String {
    let v: Value = http()
        .post(format!("{}/api/v1/access_token", emu.base_url()))
        .header("Platform", "open_platform")
        .json(&json!({"clientID": emu.client_id(), "clientSecret": emu.client_secret()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], 0, "{v}");
    v["data"]["accessToken"].as_str().unwrap().to_string()
}

impl Api {
    pub async fn new(emu: &Emulator) -> Api {
        Api {
            base: emu.base_url(),
            upload: emu.host_url(Host::Upload),
            http: http(),
            token: token(emu).await,
        }
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.req_at(&self.base, m, path)
    }

    /// A request with the Open API headers to `path` on the host at `base`.
    pub fn req_at(&self, base: &str, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{base}{path}"))
            .header("Platform", "open_platform")
            .header("Authorization", format!("Bearer {}", self.token))
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        let r = self
            .req(reqwest::Method::PUT, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn list(&self, parent: u64, limit: u32, last: i64) -> Value {
        self.get(&format!(
            "/api/v2/file/list?parentFileId={parent}&limit={limit}&lastFileId={last}&searchData=&searchMode=&trashed=false"
        ))
        .await
    }

    /// Walk a folder to the end; returns (pages, items).
    pub async fn list_all(&self, parent: u64, limit: u32) -> (usize, Vec<Value>) {
        let mut last = 0;
        let mut items = Vec::new();
        for page in 1..=1000 {
            let v = self.list(parent, limit, last).await;
            assert_eq!(v["code"], 0, "{v}");
            items.extend(v["data"]["fileList"].as_array().unwrap().iter().cloned());
            last = v["data"]["lastFileId"].as_i64().unwrap();
            if last == -1 {
                return (page, items);
            }
        }
        panic!("listing did not end");
    }

    /// `create` for `data` under `parent`.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        data: &[u8],
        duplicate: Option<i64>,
    ) -> Value {
        let mut body = json!({
            "parentFileID": parent, "filename": name, "etag": md5(data), "size": data.len(),
        });
        if let Some(d) = duplicate {
            body["duplicate"] = json!(d);
        }
        self.post("/upload/v2/file/create", body).await
    }

    /// Send slice `no` (1-based) with the given MD5.
    pub async fn slice(
        &self,
        pre: &str,
        no: u64,
        data: Vec<u8>,
        slice_md5: &str,
    ) -> reqwest::Result<Value> {
        let form = reqwest::multipart::Form::new()
            .text("preuploadID", pre.to_string())
            .text("sliceNo", no.to_string())
            .text("sliceMD5", slice_md5.to_string())
            .part(
                "slice",
                reqwest::multipart::Part::bytes(data).file_name(format!("x.part{no}")),
            );
        self.req_at(&self.upload, reqwest::Method::POST, "/upload/v2/file/slice")
            .multipart(form)
            .send()
            .await?
            .json()
            .await
    }

    /// Send every slice of `data` in order.
    pub async fn send_slices(&self, pre: &str, data: &[u8], slice_size: usize) {
        for (i, chunk) in data.chunks(slice_size).enumerate() {
            let v = self
                .slice(pre, i as u64 + 1, chunk.to_vec(), &md5(chunk))
                .await
                .unwrap();
            assert_eq!(v["code"], 0, "{v}");
        }
    }

    /// Poll upload_complete until it answers completed or an error (at most 20 polls).
    pub async fn complete(&self, pre: &str) -> Value {
        for _ in 0..20 {
            let v = self
                .post(
                    "/upload/v2/file/upload_complete",
                    json!({"preuploadID": pre}),
                )
                .await;
            if v["code"] != 0 || v["data"]["completed"] == true {
                return v;
            }
        }
        panic!("upload_complete never finished");
    }

    /// The whole upload flow; returns the final complete (or create, if reused) answer.
    pub async fn upload(
        &self,
        parent: u64,
        name: &str,
        data: &[u8],
        duplicate: Option<i64>,
    ) -> Value {
        let c = self.create(parent, name, data, duplicate).await;
        if c["code"] != 0 || c["data"]["reuse"] == true {
            return c;
        }
        let pre = c["data"]["preuploadID"].as_str().unwrap().to_string();
        let slice = c["data"]["sliceSize"].as_u64().unwrap() as usize;
        self.send_slices(&pre, data, slice).await;
        self.complete(&pre).await
    }

    /// GET a URL (absolute) with optional Range, returning (status, headers, body).
    pub async fn fetch(
        &self,
        url: &str,
        range: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        fetch(&self.http, url, range).await
    }
}

/// GET `url` with an optional Range header.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut rb = client.get(url);
    if let Some(r) = range {
        rb = rb.header("Range", r);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

pub fn md5(data: &[u8]) -> String {
    pan123_emulator::content::md5_hex(data)
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    pan123_emulator::content::generated_fill(seed, 0, &mut v);
    v
}

/// A signed web API URL (on the web host) for `path` with `query` at the emulator's current time.
pub fn signed(emu: &Emulator, path: &str, query: &str) -> String {
    let (k, v) = pan123_emulator::sign::sign_path(path, emu.now(), 4242);
    let sep = if query.is_empty() { "" } else { "&" };
    format!("{}{path}?{k}={v}{sep}{query}", emu.host_url(Host::Web))
}

/// `path` on `host`.
pub fn at(emu: &Emulator, host: Host, path: &str) -> String {
    format!("{}{path}", emu.host_url(host))
}

/// The web client's headers (spec web §1.2) on a request: `platform: web`, `app-version: 3`,
/// `Origin` and `Referer` naming the web host.
pub fn web_headers(emu: &Emulator, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let web = emu.host_url(Host::Web);
    rb.header("platform", "web")
        .header("app-version", "3")
        .header("origin", web.as_str())
        .header("referer", format!("{web}/"))
}

/// The `Referer` the CDN wants for web (share and personal) links: the hop host's origin.
pub fn hop_referer(emu: &Emulator) -> String {
    format!("{}/", emu.host_url(Host::WebPro))
}
