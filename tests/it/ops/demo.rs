//! `pan123-webdav demo` starts, prints its URL and credentials, answers PROPFIND, takes a file
//! through the personal-account mount, serves the share and link mounts, and every mount talks
//! to the 123 host that serves it (the emulator counts none on the wrong host).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo when the test ends, even on a failed assertion.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_starts_and_answers_propfind() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
            .args(["demo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut user, mut password, mut cloud) = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (url.is_none() || user.is_none() || password.is_none() || cloud.is_none())
        && Instant::now() < deadline
    {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let value = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.trim().to_string())
        };
        url = url.or(value("WebDAV URL:"));
        user = user.or(value("user:"));
        password = password.or(value("password:"));
        cloud = cloud.or(value("emulated 123 cloud:")
            .and_then(|v| v.split_whitespace().next().map(str::to_string)));
    }
    let cloud = cloud.expect("the emulated cloud's URL printed");
    let (url, user, password) = (
        url.expect("URL printed"),
        user.expect("user printed"),
        password.expect("password printed"),
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{}open/", url),
        )
        .basic_auth(&user, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(body.contains("Movies"), "{body}");
    // The personal-account mount shows the same account through the web API.
    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{}me/", url),
        )
        .basic_auth(&user, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let body = res.text().await.expect("body");
    assert!(body.contains("Movies"), "{body}");
    // And takes a file, readable at once.
    let res = client
        .put(format!("{}me/hello-from-demo.txt", url))
        .basic_auth(&user, Some(&password))
        .body("hello")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let mut seen = String::new();
    for _ in 0..200 {
        let res = client
            .get(format!("{}me/hello-from-demo.txt", url))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .expect("get");
        if res.status().is_success() {
            seen = res.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "hello");
    // The share and link mounts read through their hosts (web API, hop, CDN; direct links).
    for path in ["share/readme.txt", "links/hello.txt"] {
        let res = client
            .get(format!("{url}{path}"))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .expect("get");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let text = res.text().await.expect("body");
        assert!(!text.is_empty(), "{path}");
    }
    let stats: serde_json::Value = client
        .get(format!("{cloud}/__emulator/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    assert_eq!(stats["wrong_host"], serde_json::json!({}), "{stats}");
    for host in ["/b/api/share/get", "/api/user/sign_in", "direct", "cdn"] {
        assert!(
            stats["calls"][host].as_u64().unwrap_or(0) > 0,
            "{host}: {stats}"
        );
    }
}
