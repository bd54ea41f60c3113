//! The proxy end to end over a local stub CDN (a raw TCP server), and its error statuses.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::backend::{Error as BackendError, Link};
use crate::download::conditional::Validators;
use crate::download::test_util::{entry, headers, SIZE};
use crate::download::upstream::MAX_BUSY_RETRIES;

#[test]
fn statuses() {
    assert_eq!(
        ProxyError::Refused(String::new()).status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        ProxyError::Upstream(String::new()).status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(ProxyError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        ProxyError::Link(BackendError::NotFound).status(),
        StatusCode::BAD_GATEWAY
    );
}

// ---- end to end over a local stub CDN ----------------------------------------------------

/// A raw TCP server standing in for the CDN: each connection's request head is recorded and
/// answered with `respond(index, head)`, then the connection is closed.
struct Stub {
    base: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Stub {
    async fn start<F>(respond: F) -> Stub
    where
        F: Fn(usize, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let respond = Arc::new(respond);
        let recorded = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let respond = respond.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut byte = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut byte).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&byte[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    let index = {
                        let mut heads = recorded.lock().expect("lock");
                        heads.push(head.clone());
                        heads.len() - 1
                    };
                    match respond(index, &head) {
                        Some(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                            let _ = socket.shutdown().await;
                        }
                        // Never answer; hold the connection open.
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        Stub { base, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

fn data() -> Arc<Vec<u8>> {
    Arc::new((0..SIZE).map(|i| (i * 7 % 256) as u8).collect())
}

fn reply(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The `Range: bytes=a-b` of a recorded head, if any.
fn asked_range(head: &str) -> Option<(usize, usize)> {
    let line = head.lines().find_map(|l| l.strip_prefix("range: bytes="))?;
    let (a, b) = line.trim().split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A well-behaved CDN for `data`.
fn cdn(data: &[u8], head: &str) -> Vec<u8> {
    let total = data.len();
    match asked_range(head) {
        Some((a, b)) => reply(
            "206 Partial Content",
            &[
                ("content-range", format!("bytes {a}-{b}/{total}")),
                ("content-length", (b - a + 1).to_string()),
                ("content-type", "application/octet-stream".into()),
            ],
            &data[a..=b],
        ),
        None => reply("200 OK", &[("content-length", total.to_string())], data),
    }
}

/// A link source counting its calls, handing out `<base>/file?sign=secret-<n>`.
struct Links {
    base: String,
    calls: AtomicUsize,
    refreshes: AtomicUsize,
    error: Option<BackendError>,
}

impl Links {
    fn new(stub: &Stub) -> Links {
        Links {
            base: stub.base.clone(),
            calls: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            error: None,
        }
    }
    fn calls(&self) -> (usize, usize) {
        (
            self.calls.load(Ordering::SeqCst),
            self.refreshes.load(Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl LinkSource for Links {
    async fn link(&self, refresh: bool) -> Result<Arc<Link>, BackendError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if refresh {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://www.123pan.com/"),
        );
        Ok(Arc::new(
            Link::new(format!("{}/file?sign=secret-{n}", self.base), None, false)
                .with_headers(headers),
        ))
    }
}

fn client() -> crate::backend::Upstream {
    crate::backend::Upstream::new(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    )
}

async fn get(
    links: &Links,
    size: u64,
    pairs: &[(&str, &str)],
) -> Result<Response<ResponseBody>, ProxyError> {
    proxy(
        &client(),
        &Method::GET,
        &headers(pairs),
        &entry(size),
        links,
    )
    .await
}

fn header_of<'a>(response: &'a Response<ResponseBody>, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("text"))
}

async fn body_of(response: Response<ResponseBody>) -> Result<Vec<u8>, io::Error> {
    Ok(response.into_body().collect().await?.to_bytes().to_vec())
}

#[tokio::test]
async fn passes_the_range_through_exactly() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
    let links = Links::new(&stub);
    let etag = Validators::for_entry(&entry(SIZE)).etag.expect("etag");
    let response = get(
        &links,
        SIZE,
        &[
            ("range", "bytes=10-19"),
            ("if-range", &etag),
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("cookie", "session=1"),
            ("if-none-match", "\"other\""),
            ("user-agent", "VLC/3.0"),
        ],
    )
    .await
    .expect("proxied");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header_of(&response, "content-length"), Some("10"));
    assert_eq!(
        header_of(&response, "content-range"),
        Some("bytes 10-19/100")
    );
    assert_eq!(header_of(&response, "accept-ranges"), Some("bytes"));
    assert_eq!(header_of(&response, "etag"), Some(etag.as_str()));
    assert_eq!(
        header_of(&response, "content-type"),
        Some("video/x-matroska")
    );
    assert!(header_of(&response, "last-modified").is_some());
    assert_eq!(body_of(response).await.expect("body"), &data[10..20]);

    let heads = stub.heads();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert!(
        head.starts_with("get /file?sign=secret-0 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nrange: bytes=10-19\r\n"), "{head}");
    assert!(
        head.contains("\r\nreferer: https://www.123pan.com/\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\naccept-encoding: identity\r\n"), "{head}");
    // The player's User-Agent is what 123's CDN expects to see (docs/123.md, web §7).
    assert!(head.contains("\r\nuser-agent: vlc/3.0\r\n"), "{head}");
    for leaked in ["authorization", "cookie", "if-"] {
        assert!(!head.contains(leaked), "{leaked} forwarded: {head}");
    }
    assert_eq!(links.calls(), (1, 0));
}

#[tokio::test]
async fn range_forms_reach_upstream_normalised() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
    let links = Links::new(&stub);
    for (range, upstream, slice) in [
        ("bytes=-10", "bytes=90-99", 90..100),
        ("bytes=95-", "bytes=95-99", 95..100),
        ("bytes=50-1000", "bytes=50-99", 50..100),
        ("bytes=0-", "bytes=0-99", 0..100),
        ("bytes=99-99", "bytes=99-99", 99..100),
    ] {
        let response = get(&links, SIZE, &[("range", range)])
            .await
            .expect("proxied");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let want_cr = format!("bytes {}-{}/100", slice.start, slice.end - 1);
        assert_eq!(
            header_of(&response, "content-range"),
            Some(want_cr.as_str())
        );
        assert_eq!(
            body_of(response).await.expect("body"),
            &data[slice],
            "{range}"
        );
        let heads = stub.heads();
        let last = heads.last().expect("a request");
        assert!(
            last.contains(&format!("\r\nrange: {upstream}\r\n")),
            "{range}: {last}"
        );
    }
}

#[tokio::test]
async fn full_file_without_range() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
    let links = Links::new(&stub);
    for pairs in [
        vec![],
        vec![("range", "bytes=0-1,5-6")],
        vec![("range", "lines=1-2")],
        vec![("range", "bytes=0-1"), ("range", "bytes=5-6")],
    ] {
        let response = get(&links, SIZE, &pairs).await.expect("proxied");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, "content-length"), Some("100"));
        assert_eq!(header_of(&response, "content-range"), None);
        assert_eq!(body_of(response).await.expect("body"), *data);
    }
    assert!(stub.heads().iter().all(|h| !h.contains("\r\nrange:")));
}

#[tokio::test]
async fn a_cdn_ignoring_range_still_gives_the_exact_bytes() {
    let data = data();
    let d = data.clone();
    let stub =
        Stub::start(move |_, _| Some(reply("200 OK", &[("content-length", "100".into())], &d)))
            .await;
    let links = Links::new(&stub);
    let response = get(&links, SIZE, &[("range", "bytes=30-39")])
        .await
        .expect("proxied");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header_of(&response, "content-length"), Some("10"));
    assert_eq!(body_of(response).await.expect("body"), &data[30..40]);
}

#[tokio::test]
async fn a_refused_link_is_refreshed_once() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |index, head| {
        Some(if index == 0 {
            reply(
                "403 Forbidden",
                &[
                    ("content-type", "text/html".into()),
                    ("content-length", "9".into()),
                ],
                b"forbidden",
            )
        } else {
            cdn(&d, head)
        })
    })
    .await;
    let links = Links::new(&stub);
    let response = get(&links, SIZE, &[("range", "bytes=0-9")])
        .await
        .expect("proxied");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_of(response).await.expect("body"), &data[..10]);
    assert_eq!(links.calls(), (2, 1));
    let heads = stub.heads();
    assert_eq!(heads.len(), 2);
    assert!(
        heads[1].starts_with("get /file?sign=secret-1 "),
        "{}",
        heads[1]
    );
}

#[tokio::test]
async fn a_json_error_in_a_200_is_refreshed_once() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |index, head| {
        Some(if index == 0 {
            let body = br#"{"code":1010,"message":"link expired"}"#;
            reply(
                "200 OK",
                &[
                    ("content-type", "application/json".into()),
                    ("content-length", body.len().to_string()),
                ],
                body,
            )
        } else {
            cdn(&d, head)
        })
    })
    .await;
    let links = Links::new(&stub);
    let response = get(&links, SIZE, &[]).await.expect("proxied");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await.expect("body"), *data);
    assert_eq!(links.calls(), (2, 1));
}

#[tokio::test]
async fn refused_twice_is_an_error_without_a_body() {
    let stub = Stub::start(|_, _| {
        Some(reply(
            "410 Gone",
            &[("content-length", "4".into())],
            b"gone",
        ))
    })
    .await;
    let links = Links::new(&stub);
    let err = get(&links, SIZE, &[("range", "bytes=0-9")])
        .await
        .expect_err("refused");
    assert!(matches!(err, ProxyError::Refused(_)), "{err:?}");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert!(!err.to_string().contains("secret"), "{err}");
    assert_eq!(stub.heads().len(), 2);
    assert_eq!(links.calls(), (2, 1));
}

#[tokio::test]
async fn upstream_failures_are_retried_twice_with_the_same_link() {
    let stub = Stub::start(|_, _| {
        Some(reply(
            "503 Service Unavailable",
            &[("content-length", "0".into())],
            b"",
        ))
    })
    .await;
    let links = Links::new(&stub);
    let err = get(&links, SIZE, &[]).await.expect_err("503");
    assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
    assert_eq!(stub.heads().len(), 1 + MAX_BUSY_RETRIES as usize);
    assert_eq!(links.calls(), (1, 0));

    // A length mismatch is not the file, and not retried either.
    let stub =
        Stub::start(|_, _| Some(reply("200 OK", &[("content-length", "3".into())], b"abc"))).await;
    let links = Links::new(&stub);
    let err = get(&links, SIZE, &[]).await.expect_err("mismatch");
    assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
    assert_eq!(stub.heads().len(), 1);
}

#[tokio::test]
async fn a_short_upstream_body_cuts_the_response() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |_, _| {
        Some(reply(
            "206 Partial Content",
            &[
                ("content-range", "bytes 0-49/100".into()),
                ("content-length", "50".into()),
            ],
            &d[..20],
        ))
    })
    .await;
    let links = Links::new(&stub);
    let response = get(&links, SIZE, &[("range", "bytes=0-49")])
        .await
        .expect("headers were fine");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header_of(&response, "content-length"), Some("50"));
    let err = body_of(response).await.expect_err("cut");
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[tokio::test]
async fn answered_locally_without_any_link_or_upstream_call() {
    let stub = Stub::start(|_, _| None).await;
    let links = Links::new(&stub);
    let v = Validators::for_entry(&entry(SIZE));
    let etag = v.etag.clone().expect("etag");

    let r = get(&links, SIZE, &[("range", "bytes=100-")])
        .await
        .expect("416");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header_of(&r, "content-range"), Some("bytes */100"));

    let r = get(&links, SIZE, &[("if-none-match", &etag)])
        .await
        .expect("304");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&r, "etag"), Some(etag.as_str()));

    let r = get(&links, SIZE, &[("if-match", "\"nope\"")])
        .await
        .expect("412");
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

    let r = proxy(
        &client(),
        &Method::HEAD,
        &HeaderMap::new(),
        &entry(SIZE),
        &links,
    )
    .await
    .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "content-length"), Some("100"));

    let r = get(&links, 0, &[("range", "bytes=0-")])
        .await
        .expect("empty");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header_of(&r, "content-length"), Some("0"));
    assert!(body_of(r).await.expect("body").is_empty());

    assert_eq!(links.calls(), (0, 0));
    assert!(stub.heads().is_empty());
}

#[tokio::test]
async fn a_stale_if_range_gets_the_whole_file() {
    let data = data();
    let d = data.clone();
    let stub = Stub::start(move |_, head| Some(cdn(&d, head))).await;
    let links = Links::new(&stub);
    let response = get(
        &links,
        SIZE,
        &[("range", "bytes=10-19"), ("if-range", "\"old\"")],
    )
    .await
    .expect("proxied");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await.expect("body"), *data);
    assert!(!stub.heads()[0].contains("\r\nrange:"));
}

#[tokio::test]
async fn link_errors_are_passed_to_the_caller() {
    let stub = Stub::start(|_, _| None).await;
    let mut links = Links::new(&stub);
    links.error = Some(BackendError::NotFound);
    let err = get(&links, SIZE, &[]).await.expect_err("no link");
    assert!(
        matches!(err, ProxyError::Link(BackendError::NotFound)),
        "{err:?}"
    );
    assert!(stub.heads().is_empty());
}

#[tokio::test]
async fn connection_errors_and_timeouts() {
    // Nothing listens on a port we just released.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let links = Links {
        base,
        calls: AtomicUsize::new(0),
        refreshes: AtomicUsize::new(0),
        error: None,
    };
    let err = proxy(
        &client(),
        &Method::GET,
        &HeaderMap::new(),
        &entry(SIZE),
        &links,
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, ProxyError::Upstream(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // A CDN that never answers; the first-byte limit maps to Timeout.
    let stub = Stub::start(|_, _| None).await;
    let links = Links::new(&stub);
    let mut up = client();
    up.timeouts.first_byte = Duration::from_millis(300);
    let err = proxy(&up, &Method::GET, &HeaderMap::new(), &entry(SIZE), &links)
        .await
        .expect_err("timeout");
    assert!(matches!(err, ProxyError::Timeout), "{err:?}");
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
}
