//! Hostile input: encodings that try to climb out of a mount, absurd Range headers, malformed
//! bodies and headers. Each gets a 4xx (or the documented fallback) and the server keeps serving.

use crate::common::*;
use pan123_emulator::EmulatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn env() -> TestEnv {
    TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", bytes_of(1000, 1));
        emu.put_file("/secret/s.txt", b"other mount".to_vec());
        let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        let secret = emu.lookup("/secret").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            open_mount("/m", "proxy", &format!("root_id = {lib}")),
            open_mount("/private", "proxy", &format!("root_id = {secret}"))
        )
    })
    .await
}

/// Sends raw bytes as a request and returns the status line's code (0 when the server closed).
async fn raw(env: &TestEnv, request: &[u8]) -> u16 {
    let addr = env.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(HANG_GUARD, s.read(&mut buf))
        .await
        .expect("answer in time")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn auth() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

#[tokio::test]
async fn traversal_never_escapes_a_mount() {
    let env = env().await;
    for path in [
        "/m/../private/s.txt",
        "/m/%2e%2e/private/s.txt",
        "/m/%2E%2E/private/s.txt",
        "/m/..%2fprivate%2fs.txt",
        "/m/%2e%2e%2fprivate%2fs.txt",
        "/m/..%5cprivate%5cs.txt",
        "/m/a.txt%00.jpg",
        "/m/%ff%fe",
        "/m/./a.txt/..",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n", auth());
        let code = raw(&env, req.as_bytes()).await;
        assert!((400..500).contains(&code), "{path} answered {code}");
    }
    // In Destination too: a MOVE cannot land outside the mount through an encoded `..`.
    for dest in ["/m/%2e%2e/private/x.txt", "/m/../private/x.txt", "/m/a%2fb"] {
        let r = env
            .req("MOVE", "/m/a.txt")
            .header("Destination", env.url(dest))
            .send()
            .await
            .expect("move");
        assert!(r.status().is_client_error(), "{dest}: {}", r.status());
    }
    assert_eq!(
        env.emu.read("/lib/a.txt").expect("still there"),
        bytes_of(1000, 1)
    );
    assert!(env.emu.lookup("/secret/x.txt").is_none());
    // Still serving.
    assert_eq!(
        env.req("GET", "/m/a.txt")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn absurd_ranges_never_give_wrong_bytes() {
    let env = env().await;
    let all = bytes_of(1000, 1);
    let many: String = (0..5000)
        .map(|i| format!("{}-{}", i % 900, i % 900 + 5))
        .collect::<Vec<_>>()
        .join(",");
    for range in [
        format!("bytes={many}"),
        "bytes=500-100".into(),
        "bytes=0-1,0-1".into(),
        "bytes=--5".into(),
        "items=0-5".into(),
        "bytes=99999999999999999999-".into(),
    ] {
        let r = env
            .req("GET", "/m/a.txt")
            .header("Range", &range)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        assert!(
            status == 200 || status == 416,
            "{status} for {}",
            &range[..range.len().min(40)]
        );
        if status == 200 {
            assert_eq!(r.bytes().await.expect("body").as_ref(), all.as_slice());
        }
    }
}

#[tokio::test]
async fn malformed_bodies_and_headers_get_4xx() {
    let env = env().await;
    let propfind = |body: &'static str| {
        env.req("PROPFIND", "/m/")
            .header("Depth", "1")
            .body(body)
            .send()
    };
    assert_eq!(
        propfind("<not xml")
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        400
    );
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol3;</D:displayname></D:prop></D:propfind>"#;
    let status = propfind(laughs).await.expect("propfind").status().as_u16();
    assert!(status == 400 || status == 207, "entity expansion: {status}");
    let huge = "<D:propfind xmlns:D=\"DAV:\"><D:prop>".to_string()
        + &"<D:x/>".repeat(40_000)
        + "</D:prop></D:propfind>";
    let r = env
        .req("PROPFIND", "/m/")
        .header("Depth", "1")
        .body(huge)
        .send()
        .await
        .expect("propfind");
    assert!(
        r.status().is_client_error(),
        "oversized body: {}",
        r.status()
    );
    for depth in ["2", "-1", "one", ""] {
        let r = env
            .req("PROPFIND", "/m/")
            .header("Depth", depth)
            .send()
            .await
            .expect("propfind");
        assert_eq!(r.status().as_u16(), 400, "Depth {depth:?}");
    }
    let r = env
        .req("COPY", "/m/a.txt")
        .header("Destination", env.url("/m/b.txt"))
        .header("Overwrite", "maybe")
        .send()
        .await
        .expect("copy");
    assert!(
        r.status().is_client_error(),
        "Overwrite garbage: {}",
        r.status()
    );
    let r = env
        .req("PUT", "/m/c.txt")
        .header("If", "(<garbage")
        .body("x")
        .send()
        .await
        .expect("put");
    assert!(r.status().is_client_error(), "If garbage: {}", r.status());
    // Oversized headers.
    let big = "x".repeat(200_000);
    let req =
        format!("GET /m/a.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let code = raw(&env, req.as_bytes()).await;
    assert!(
        code == 431 || code == 400 || code == 0,
        "oversized headers: {code}"
    );
    // Still serving.
    assert_eq!(
        env.req("GET", "/m/a.txt")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
}

/// The same defences on a personal-account (`web`) mount, next to an Open mount it must not
/// reach into: encoded traversal is a 4xx (in reads, writes and `Destination`), absurd ranges
/// never give wrong bytes.
#[tokio::test]
async fn a_web_mount_resists_traversal_and_absurd_ranges() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", bytes_of(1000, 1));
        emu.put_file("/secret/s.txt", b"other mount".to_vec());
        let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        let secret = emu.lookup("/secret").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            web_mount("/w", "proxy", &format!("root_id = {lib}")),
            open_mount("/private", "proxy", &format!("root_id = {secret}"))
        )
    })
    .await;
    for path in [
        "/w/../private/s.txt",
        "/w/%2e%2e/private/s.txt",
        "/w/..%2fprivate%2fs.txt",
        "/w/a.txt%00.jpg",
        "/w/%ff%fe",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n", auth());
        let code = raw(&env, req.as_bytes()).await;
        assert!((400..500).contains(&code), "{path} answered {code}");
    }
    let all = bytes_of(1000, 1);
    for range in [
        "bytes=500-100",
        "bytes=--5",
        "items=0-5",
        "bytes=99999999999999999999-",
    ] {
        let r = env
            .req("GET", "/w/a.txt")
            .header("Range", range)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        assert!(status == 200 || status == 416, "{status} for {range}");
        if status == 200 {
            assert_eq!(r.bytes().await.expect("body").as_ref(), all.as_slice());
        }
    }
    // Writes (web mounts write) cannot climb out either: not in the path, not in Destination.
    for path in ["/w/..%2fprivate%2fevil.txt", "/w/%2e%2e/private/evil.txt"] {
        let req = format!("PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx", auth());
        let code = raw(&env, req.as_bytes()).await;
        assert!((400..500).contains(&code), "PUT {path} answered {code}");
    }
    for dest in ["/w/%2e%2e/private/s.txt", "/w/../private/s.txt", "/w/a%2fb"] {
        let r = env
            .req("MOVE", "/w/a.txt")
            .header("Destination", env.url(dest))
            .header("Overwrite", "T")
            .send()
            .await
            .expect("move");
        assert!(r.status().is_client_error(), "{dest}: {}", r.status());
    }
    assert_eq!(env.emu.read("/lib/a.txt").expect("still there"), all);
    assert_eq!(
        env.emu.read("/secret/s.txt").expect("untouched"),
        b"other mount"
    );
    assert!(env.emu.lookup("/secret/evil.txt").is_none());
    assert!(env.emu.lookup("/lib/evil.txt").is_none());
}

/// A chunked PUT body whose chunk size is not hexadecimal is the client's mistake: 400, not a
/// 502 that blames 123. Nothing is stored, and the server keeps serving.
#[tokio::test]
async fn a_malformed_chunk_size_is_400() {
    let env = env().await;
    for body in ["zz\r\nabc\r\n0\r\n\r\n", "3\r\nabc\r\n-1\r\nx\r\n0\r\n\r\n"] {
        let req = format!(
            "PUT /m/chunked.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}",
            auth()
        );
        let code = raw(&env, req.as_bytes()).await;
        assert_eq!(code, 400, "{body:?}");
    }
    assert!(env.emu.lookup("/lib/chunked.txt").is_none());
    assert_eq!(
        env.req("GET", "/m/a.txt")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn repeated_wrong_credentials_lock_the_client_out() {
    let env = env().await;
    // Probes without credentials, as Explorer and Finder send first, never count.
    for _ in 0..15 {
        let r = env
            .client
            .get(env.url("/m/a.txt"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 401);
    }
    assert_eq!(
        env.req("GET", "/m/a.txt")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = env
            .client
            .get(env.url("/m/a.txt"))
            .basic_auth(USER, Some("guess"))
            .send()
            .await
            .expect("get");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        9,
        "{statuses:?}"
    );
    assert!(statuses[9..].iter().all(|s| *s == 429), "{statuses:?}");
    // Locked out: even the right password waits, and is told how long.
    let r = env.req("GET", "/m/a.txt").send().await.expect("get");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn anonymous_reads_only_where_a_mount_says_so() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/pub/a.txt", b"public".to_vec());
        emu.put_file("/priv/b.txt", b"private".to_vec());
        let public = emu.lookup("/pub").map(|e| e.id).unwrap_or(0);
        let private = emu.lookup("/priv").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            open_mount(
                "/pub",
                "proxy",
                &format!("root_id = {public}\nanonymous = true")
            ),
            open_mount("/priv", "proxy", &format!("root_id = {private}"))
        )
    })
    .await;
    let anon = |method: &str, path: &str| {
        env.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("m"),
            env.url(path),
        )
    };
    let r = anon("GET", "/pub/a.txt").send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"public");
    assert_eq!(
        anon("PROPFIND", "/pub/")
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        207
    );
    // Writes still need a user; other mounts still need credentials.
    assert_eq!(
        anon("PUT", "/pub/x.txt")
            .body("x")
            .send()
            .await
            .expect("put")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        anon("GET", "/priv/b.txt")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        anon("PROPFIND", "/")
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn the_lockout_follows_the_client_behind_a_trusted_proxy() {
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/a.txt", b"a".to_vec());
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}"))
        })
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .start()
        .await;
    for _ in 0..10 {
        let r = env
            .client
            .get(env.url("/m/a.txt"))
            .header("X-Forwarded-For", "203.0.113.7")
            .basic_auth(USER, Some("guess"))
            .send()
            .await
            .expect("get");
        assert!(r.status().as_u16() == 401 || r.status().as_u16() == 429);
    }
    let locked = env
        .req("GET", "/m/a.txt")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .expect("get");
    assert_eq!(locked.status().as_u16(), 429);
    // Another client behind the same proxy is not affected.
    let other = env
        .req("GET", "/m/a.txt")
        .header("X-Forwarded-For", "203.0.113.8")
        .send()
        .await
        .expect("get");
    assert_eq!(other.status().as_u16(), 200);
}
